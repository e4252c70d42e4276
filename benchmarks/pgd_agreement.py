"""Why medaudit's PGD and torchattacks' PGD return different images from the same model, steps and ε.

`bench_attacks.py` times both on the same surrogates; their images differ at up to 2ε per pixel. This script
finds where the difference comes from. Each bench surrogate (EfficientNet-Lite0, MobileNetV2, random init) is
first trained for `TRAIN_STEPS` Adam steps, because an untrained one's input gradient is float noise; then, on
its BatchNorm-folded form (the model medaudit attacks):
- the first step's gradient signs of both losses (medaudit: cross-entropy summed on [-1, 1] inputs; torchattacks:
  cross-entropy averaged on [0, 1] images normalised back to [-1, 1]);
- PGD-10 written out four ways (sum or mean, stepping on [-1, 1] or on [0, 1]), each compared with medaudit's
  `PGD.craft` and with torchattacks' PGD: the fraction of pixels that differ by more than 1e-6;
- the surrogate's own AUC under each tool's images, so a difference in images can be told from one in strength.

    PYTHONPATH=. python benchmarks/pgd_agreement.py /work/shared/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_attacks as bench  # noqa: E402  (the same models, images and attack settings as the timing)

from medaudit.attacks.surrogate import surrogate_model  # noqa: E402

N_IMAGES = 64  # test images attacked
TRAIN_STEPS = 60  # Adam steps on 512 training images: enough for a gradient above float noise
EPS_PM1 = bench.APGD_EPS_PM1  # the ε whose images `bench_attacks.py` compares
DIFFERS = 1e-6  # a pixel "differs" by more than this, in [-1, 1] units


def trained(arch: str, x_train: torch.Tensor, y_train: torch.Tensor) -> torch.nn.Module:
    model = bench._model(arch).requires_grad_(True).train()
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    torch.manual_seed(0)
    for _ in range(TRAIN_STEPS):
        i = torch.randint(len(x_train), (bench.BATCH,))
        loss = F.cross_entropy(model(x_train[i]), y_train[i])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval().requires_grad_(False)


def written_out(model, x: torch.Tensor, y: torch.Tensor, reduction: str, on_unit: bool) -> np.ndarray:
    """PGD-10 as both tools take it, differing only in the loss's reduction and the space it steps in."""
    to_unit, from_unit = (lambda t: t * 0.5 + 0.5), (lambda t: (t - 0.5) / 0.5)
    eps, step = (EPS_PM1 / 2, bench.STEP_PM1 / 2) if on_unit else (EPS_PM1, bench.STEP_PM1)
    low, high = (0.0, 1.0) if on_unit else (-1.0, 1.0)
    start = to_unit(x) if on_unit else x
    point = start.clone()
    for _ in range(bench.ITERATIONS):
        point = point.detach().requires_grad_(True)
        logits = model(from_unit(point) if on_unit else point)
        (gradient,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction=reduction), point)
        point = torch.clamp(point.detach() + step * gradient.sign(), low, high)
        point = torch.clamp(start + torch.clamp(point - start, -eps, eps), low, high)
    return (from_unit(point) if on_unit else point).numpy()


def auc(model, x: np.ndarray, y: np.ndarray) -> float:
    return float(roc_auc_score(y, torch.softmax(model(torch.from_numpy(x)), 1)[:, 1].numpy()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a folder holding pneumoniamnist.npz")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = bench._images(args.data, "test", N_IMAGES)
    x_train, y_train = (torch.from_numpy(a) for a in bench._images(args.data, "train", bench.TRAIN_IMAGES))
    xt, yt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last), torch.from_numpy(y)
    for arch in bench.ARCHS:
        model = trained(arch, x_train, y_train)
        folded = surrogate_model([model], x, "cpu")
        ours, theirs = bench.medaudit_pgd(model, x, y)(), bench.torchattacks_pgd(folded, x, y)()
        first = xt.clone().requires_grad_(True)
        (g_ours,) = torch.autograd.grad(F.cross_entropy(folded(first), yt, reduction="sum"), first)
        unit = (xt * 0.5 + 0.5).requires_grad_(True)
        (g_theirs,) = torch.autograd.grad(F.cross_entropy(folded((unit - 0.5) / 0.5), yt), unit)
        print(
            f"{bench.LABELS[arch]}: first-step signs agree at {(g_ours.sign() == g_theirs.sign()).float().mean():.4f} "
            f"of pixels; medaudit vs torchattacks differ at {(np.abs(ours - theirs) > DIFFERS).mean():.4f} "
            f"(max {np.abs(ours - theirs).max():.3f}); surrogate AUC clean {auc(folded, x, y):.3f}, "
            f"under medaudit's {auc(folded, ours, y):.3f}, under torchattacks' {auc(folded, theirs, y):.3f}"
        )
        for reduction in ("sum", "mean"):
            for on_unit in (False, True):
                mine = written_out(folded, xt, yt, reduction, on_unit)
                print(
                    f"  {reduction} on {'[0, 1]' if on_unit else '[-1, 1]'}: differs from medaudit at "
                    f"{(np.abs(mine - ours) > DIFFERS).mean():.4f}, from torchattacks at "
                    f"{(np.abs(mine - theirs) > DIFFERS).mean():.4f}"
                )


if __name__ == "__main__":
    main()
