"""Attack speed: medaudit's attack path (`Attack.craft`) against torchattacks and a default ART script, in one run.

PGD-10 (step 0.01, eps 0.03 in [-1, 1] units, no random start) and FGSM on the same surrogate and the same
images: 256 PneumoniaMNIST test images at 64x64, EfficientNet-Lite0 and MobileNetV2 (random init, 2 logits),
batches of 64. torchattacks runs twice, on NCHW weights and inputs and on channels_last weights and inputs
(its best case); the default ART script is what a user would write from ART's docs (PyTorchClassifier,
ProjectedGradientDescent / FastGradientMethod with their default batch size). Every variant runs `--repeats`
times, interleaved; we report min and median img/s and medaudit's ratio to the fastest torchattacks variant
(by median). Needs the `bench` extra (torchattacks). Writes benchmarks/results-attacks.json.

    PYTHONPATH=. python benchmarks/bench_attacks.py /work/shared/data [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from medaudit.attackers import zoo
from medaudit.attacks import FGSM, PGD, Crafting
from medaudit.data.audit_data import to_canonical

HERE = Path(__file__).resolve().parent
N_IMAGES = 256  # test images attacked per measurement (--images)
WARM_UP_IMAGES = 16  # images of the untimed first call of each variant
SIZE = 64  # image side in pixels
BATCH = 64  # images per attack batch, medaudit's CLI default; torchattacks gets the same batches
EPS_PM1 = 0.03  # L-inf budget in [-1, 1] units
STEP_PM1 = 0.01  # PGD step in [-1, 1] units
ITERATIONS = 10  # PGD-10
ARCHS = ("efficientnet_lite0", "mobilenet_v2")


def _images(data_dir: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(data_dir / "pneumoniamnist.npz") as npz:
        return to_canonical(npz["test_images"][:n], SIZE), npz["test_labels"][:n, 0].astype(np.int64)


def _model(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return zoo.build(arch, init="random", num_outputs=2, in_channels=1, image_size=SIZE).eval().requires_grad_(False)


def medaudit_runner(attack, model, x, y) -> Callable[[], np.ndarray]:
    def run() -> np.ndarray:
        how = Crafting(n_logits=2, multilabel=False, batch_size=BATCH, seed=0, device="cpu")
        return attack.craft([model], x, y, [EPS_PM1], how)[EPS_PM1].x_adv

    return run


def torchattacks_runner(kind: str, model, x, y, channels_last: bool) -> Callable[[], np.ndarray]:
    import torchattacks

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = _copy(model).to(memory_format=fmt)
    # torchattacks works on [0, 1]; its normalisation (mean = std = 0.5) maps our [-1, 1] onto that
    atk = (
        torchattacks.PGD(net, eps=EPS_PM1 / 2, alpha=STEP_PM1 / 2, steps=ITERATIONS, random_start=False)
        if kind == "pgd"
        else torchattacks.FGSM(net, eps=EPS_PM1 / 2)
    )
    atk.set_normalization_used(mean=[0.5], std=[0.5])

    def run() -> np.ndarray:
        out = []
        for s in range(0, len(x), BATCH):
            xb = torch.from_numpy(x[s : s + BATCH]).contiguous(memory_format=fmt)
            out.append(atk(xb, torch.from_numpy(y[s : s + BATCH])).numpy())
        return np.concatenate(out)

    return run


def art_default_runner(kind: str, model, x, y) -> Callable[[], np.ndarray]:
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model=_copy(model),
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=x.shape[1:],
        nb_classes=2,
        clip_values=(-1.0, 1.0),
    )
    atk = (
        ProjectedGradientDescent(classifier, eps=EPS_PM1, eps_step=STEP_PM1, max_iter=ITERATIONS, verbose=False)
        if kind == "pgd"
        else FastGradientMethod(classifier, eps=EPS_PM1)
    )

    def run() -> np.ndarray:
        return atk.generate(x=x, y=y)

    return run


def _copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=N_IMAGES)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = _images(args.data_dir, args.images)
    load_before = os.getloadavg()
    results = []
    for arch in ARCHS:
        model = _model(arch)
        pgd = PGD(name="pgd", step_pm1=STEP_PM1, iterations=ITERATIONS)
        for kind, attack in (("pgd", pgd), ("fgsm", FGSM(name="fgsm"))):
            for part in (slice(WARM_UP_IMAGES), slice(None)):  # untimed warm-up: allocations, lazy imports
                xs, ys = x[part], y[part]
                runners = {
                    "medaudit": medaudit_runner(attack, model, xs, ys),
                    "torchattacks": torchattacks_runner(kind, model, xs, ys, channels_last=False),
                    "torchattacks_channels_last": torchattacks_runner(kind, model, xs, ys, channels_last=True),
                    "art_default": art_default_runner(kind, model, xs, ys),
                }
                if part.stop == WARM_UP_IMAGES:
                    for run in runners.values():
                        run()
            seconds: dict[str, list[float]] = {name: [] for name in runners}
            adv: dict[str, np.ndarray] = {}
            for _ in range(args.repeats):
                for name, run in runners.items():
                    t = time.perf_counter()
                    adv[name] = run()
                    seconds[name].append(time.perf_counter() - t)
            n = len(x)
            rates = {
                name: {
                    "img_per_s_min": n / max(s),
                    "img_per_s_median": n / statistics.median(s),
                    "img_per_s_max": n / min(s),
                    "seconds": s,
                }
                for name, s in seconds.items()
            }
            median = {name: r["img_per_s_median"] for name, r in rates.items()}
            best_peer = max(median["torchattacks"], median["torchattacks_channels_last"])
            row = {
                "arch": arch,
                "attack": kind,
                "rates": rates,
                "ratio_medaudit_over_best_torchattacks": rates["medaudit"]["img_per_s_median"] / best_peer,
                "ratio_medaudit_over_art_default": median["medaudit"] / median["art_default"],
                "max_abs_diff_medaudit_vs_torchattacks": float(np.abs(adv["medaudit"] - adv["torchattacks"]).max()),
            }
            results.append(row)
            print(
                json.dumps(
                    {k: v for k, v in row.items() if k != "rates"}
                    | {n: round(r["img_per_s_median"], 1) for n, r in rates.items()}
                ),
                flush=True,
            )
    record = {
        "part": "attacks",
        "images": len(x),
        "size": SIZE,
        "batch": BATCH,
        "iterations": ITERATIONS,
        "load_average_1min_before_after": [load_before[0], os.getloadavg()[0]],  # 2 cores: > 2 means shared
        "epsilon_pm1": EPS_PM1,
        "step_pm1": STEP_PM1,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.platform()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "results": results,
    }
    (HERE / "results-attacks.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
