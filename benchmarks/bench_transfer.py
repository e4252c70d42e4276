"""How much DI, TI, momentum and a surrogate ensemble add to plain PGD's transfer, on a pair where it is weak.

Target: one architecture, random init, trained on one half of PneumoniaMNIST's training images.
Surrogates: another architecture, random init, several seeds, trained on the other half. 32x32 px, a few
epochs each (Adam). Each attack runs 10 steps of 0.01 in [-1, 1] units at two epsilons on all 624 test
images; we measure the target's AUC on clean, adversarial and control images (the same perturbation,
pixel positions shuffled) and the first surrogate's own white-box AUC. Single-surrogate attacks use the
first seed; ensembles average the logits of all seeds. Writes benchmarks/results-transfer.json.

    PYTHONPATH=. python benchmarks/bench_transfer.py /work/shared/data [--threads 2]
        [--target tiny_cnn] [--surrogate resnet18] [--seeds 0 1] [--epochs 2]

Defaults are sized for a shared 2-core CPU (training the depthwise mobile nets took over 2 s a step there);
`--target efficientnet_lite0 --surrogate mobilenet_v2 --seeds 0 1 2 --epochs 4` is the pair to run on a
quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from medaudit import zoo
from medaudit.attacks import attack_id, control_noise, craft_adversarial
from medaudit.data import to_canonical
from medaudit.metrics import auc
from medaudit.scenario import MIFGSM, PGD

HERE = Path(__file__).resolve().parent
SIZE = 32  # image side in pixels
BATCH = 64  # training and attack batch size
LR = 1e-3  # Adam learning rate
EPSILONS = (0.02, 0.05)  # L-inf budgets in [-1, 1] units (2.6 and 6.4 grey levels)
STEP, ITERS = 0.01, 10  # every iterative attack: 10 steps of 0.01
DI_PROB = 0.5  # DI's probability (Xie et al. use 0.5)
TI_KERNEL = 5  # Gaussian side in pixels: Dong et al.'s 15 at 299 px, widened to 5 so it smooths at all at 32 px

CONFIGS = {  # name -> (attack, number of surrogates in the logit ensemble)
    "plain PGD": (PGD(name="pgd", step_pm1=STEP, iterations=ITERS), 1),
    "DI": (PGD(name="pgd", step_pm1=STEP, iterations=ITERS, diversity_prob=DI_PROB), 1),
    "TI": (PGD(name="pgd", step_pm1=STEP, iterations=ITERS, ti_kernel=TI_KERNEL), 1),
    "momentum (MI-FGSM)": (MIFGSM(name="mifgsm", step_pm1=STEP, iterations=ITERS), 1),
    "ensemble (PGD)": (PGD(name="pgd", step_pm1=STEP, iterations=ITERS), None),
    "MI + DI + TI + ensemble": (
        MIFGSM(name="mifgsm", step_pm1=STEP, iterations=ITERS, diversity_prob=DI_PROB, ti_kernel=TI_KERNEL),
        None,
    ),
}  # None: every surrogate seed


def train(arch: str, x: np.ndarray, y: np.ndarray, seed: int, epochs: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = zoo.build(arch, init="random", num_outputs=2, in_channels=1, image_size=SIZE)
    optimiser = torch.optim.Adam(model.parameters(), lr=LR)
    gen = np.random.default_rng(seed)
    for _ in range(epochs):
        order = gen.permutation(len(x))
        for s in range(0, len(x) - BATCH + 1, BATCH):
            idx = order[s : s + BATCH]
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval().requires_grad_(False)


def scores(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate(
            [torch.softmax(model(torch.from_numpy(x[s : s + 256])), 1)[:, 1].numpy() for s in range(0, len(x), 256)]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target", default="tiny_cnn")
    parser.add_argument("--surrogate", default="resnet18")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    with np.load(args.data_dir / "pneumoniamnist.npz") as npz:
        x_train, y_train = to_canonical(npz["train_images"], SIZE), npz["train_labels"][:, 0].astype(np.int64)
        x_test, y_test = to_canonical(npz["test_images"], SIZE), npz["test_labels"][:, 0].astype(np.int64)
    half = np.random.default_rng(0).permutation(len(x_train))
    target_idx, surrogate_idx = half[: len(half) // 2], half[len(half) // 2 :]  # disjoint halves
    target = train(args.target, x_train[target_idx], y_train[target_idx], seed=100, epochs=args.epochs)
    print(f"target trained in {time.perf_counter() - t0:.0f} s", flush=True)
    surrogates = [
        train(args.surrogate, x_train[surrogate_idx], y_train[surrogate_idx], seed=s, epochs=args.epochs)
        for s in args.seeds
    ]
    clean_target = auc(y_test, scores(target, x_test))
    clean_surrogates = [auc(y_test, scores(m, x_test)) for m in surrogates]
    print(
        f"trained in {time.perf_counter() - t0:.0f} s: target AUC {clean_target:.3f}, surrogates "
        + ", ".join(f"{a:.3f}" for a in clean_surrogates),
        flush=True,
    )
    rows = []
    for name, (attack, n_models) in CONFIGS.items():
        t = time.perf_counter()
        n_models = n_models or len(surrogates)
        out = craft_adversarial(
            attack,
            surrogates[:n_models],
            x_test,
            y_test,
            epsilons_pm1=EPSILONS,
            n_logits=2,
            multilabel=False,
            batch_size=BATCH,
            seed=0,
            device="cpu",
        )
        for eps, perturbed in out.items():
            x_ctrl = control_noise(x_test, perturbed.x_adv, seed=0)
            row = {
                "config": name,
                "attack_id": attack_id(attack),
                "surrogates": n_models,
                "epsilon_pm1": eps,
                "target_auc_clean": clean_target,
                "target_auc_adversarial": auc(y_test, scores(target, perturbed.x_adv)),
                "target_auc_control": auc(y_test, scores(target, x_ctrl)),
                "surrogate0_auc_whitebox": auc(y_test, scores(surrogates[0], perturbed.x_adv)),
                "max_abs_delta": perturbed.max_abs_delta,
                "seconds_all_epsilons": time.perf_counter() - t,
            }
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    record = {
        "part": "transfer",
        "data": "pneumoniamnist.npz",
        "size": SIZE,
        "epochs": args.epochs,
        "target": f"{args.target} random init, train half A (seed 100)",
        "surrogates": f"{args.surrogate} random init, train half B, seeds {args.seeds}",
        "load_average_1min_end": os.getloadavg()[0],  # 2 cores: above 2 means the machine was shared
        "test_images": len(x_test),
        "step_pm1": STEP,
        "iterations": ITERS,
        "di_prob": DI_PROB,
        "ti_kernel": TI_KERNEL,
        "surrogate_auc_clean": clean_surrogates,
        "torch_threads": torch.get_num_threads(),
        "seconds_total": time.perf_counter() - t0,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": rows,
    }
    (HERE / "results-transfer.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
