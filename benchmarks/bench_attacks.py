"""Attack and training speed: medaudit's paths against torchattacks and a plain torch loop, as ratios in one run.

Three measurements on the same random-init surrogates (EfficientNet-Lite0 and MobileNetV2, 2 logits, from
`medaudit.attackers.zoo`) and the same PneumoniaMNIST images at 64x64, every variant run `--repeats` times,
interleaved, so each repeat gives one ratio of two runs made side by side (the machine may be shared):
- PGD-10 over a 6-epsilon curve on 256 test images: medaudit's attack path (`PGD.craft`, every epsilon in one
  call, rows of 64) against torchattacks' PGD with channels_last weights and inputs, looping over the epsilons
  in batches of 64 (its best case); ratio = torchattacks' seconds / medaudit's (> 1: medaudit is faster).
- APGD (the white-box tier's `APGD.craft`, 100 iterations of the margin loss, one start, at one epsilon) on the
  same images and model: its seconds per image-iteration over PGD's (< 1: cheaper per step than PGD), and per
  pass it differentiates over PGD's (PGD's rows of one image at two epsilons share a gradient while they sit at
  the same point, so it differentiates fewer passes than it has rows; both counted, untimed, by a forward hook).
- Surrogate training: `train_surrogate` (the loop the audit trains every surrogate with; augmentation off) against
  a plain torch loop (NCHW, Adam, the same batch size, steps per epoch and validation pass) on 512 training
  images; ratio = medaudit's epochs/s over the plain loop's.
Needs the `bench` extra (torchattacks). Writes benchmarks/results-attacks.json; `--table` prints the README's table
from it.

    PYTHONPATH=. python benchmarks/bench_attacks.py /work/shared/data [--repeats 3] [--threads 2]
    PYTHONPATH=. python benchmarks/bench_attacks.py --table
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medaudit.attackers import SurrogateSpec, train_surrogate, zoo
from medaudit.attackers.surrogates import validation_split
from medaudit.attacks import APGD, PGD, Crafting
from medaudit.data import Images
from medaudit.data.audit_data import to_canonical
from medaudit.scenario import TrainingSection

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results-attacks.json"
N_IMAGES = 256  # test images attacked per measurement (--images)
WARM_UP_IMAGES = 16  # images of the untimed first call of each variant
SIZE = 64  # image side in pixels
BATCH = 64  # rows per pass, medaudit's CLI default; torchattacks gets batches of the same size
EPSILONS_PM1 = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08)  # the curve, L-inf in [-1, 1] units
STEP_PM1 = 0.01  # PGD step in [-1, 1] units
ITERATIONS = 10  # PGD-10
APGD_EPS_PM1 = 0.03  # APGD's one epsilon: its cost per step does not depend on it
APGD_ITERATIONS = 100  # APGD's minimum (`apgd.MIN_ITERATIONS`)
TRAIN_IMAGES = 512  # PneumoniaMNIST training images the surrogate learns from (10% of them validate)
TRAIN_EPOCHS = 2  # epochs per training run
ARCHS = ("efficientnet_lite0", "mobilenet_v2")
LABELS = {"efficientnet_lite0": "EfficientNet-Lite0", "mobilenet_v2": "MobileNetV2"}


def _images(data_dir: Path, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(data_dir / "pneumoniamnist.npz") as npz:
        return to_canonical(npz[f"{split}_images"][:n], SIZE), npz[f"{split}_labels"][:n, 0].astype(np.int64)


def _model(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return zoo.build(arch, init="random", num_outputs=2, in_channels=1, image_size=SIZE).eval().requires_grad_(False)


def _how() -> Crafting:
    return Crafting(n_logits=2, multilabel=False, batch_size=BATCH, seed=0, device="cpu")


def medaudit_pgd(model, x, y) -> Callable[[], np.ndarray]:
    pgd = PGD(name="pgd", step_pm1=STEP_PM1, iterations=ITERATIONS)
    return lambda: pgd.craft([model], x, y, EPSILONS_PM1, _how())[APGD_EPS_PM1].x_adv


def medaudit_apgd(model, x, y) -> Callable[[], np.ndarray]:
    apgd = APGD(name="apgd", iterations=APGD_ITERATIONS, restarts=1, losses=("margin",))
    return lambda: apgd.craft((model,), x, y, (APGD_EPS_PM1,), _how())[APGD_EPS_PM1].x_adv


def torchattacks_pgd(model, x, y) -> Callable[[], np.ndarray]:
    import torchattacks

    net = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def run() -> np.ndarray:
        adv = {}
        for eps in EPSILONS_PM1:
            atk = torchattacks.PGD(net, eps=eps / 2, alpha=STEP_PM1 / 2, steps=ITERATIONS, random_start=False)
            # torchattacks attacks on [0, 1]: told that our [-1, 1] inputs are its images normalised with mean = std
            # = 0.5, it maps them back, steps there and hands back [-1, 1] images
            atk.set_normalization_used(mean=[0.5], std=[0.5])
            out = []
            for s in range(0, len(x), BATCH):
                xb = torch.from_numpy(x[s : s + BATCH]).contiguous(memory_format=torch.channels_last)
                out.append(atk(xb, torch.from_numpy(y[s : s + BATCH])).numpy())
            adv[eps] = np.concatenate(out)
        return adv[APGD_EPS_PM1]

    return run


def _training() -> TrainingSection:
    """The audit's training section, for TRAIN_EPOCHS epochs and without augmentation (the plain loop has none)."""
    return TrainingSection(epochs=TRAIN_EPOCHS, patience=TRAIN_EPOCHS + 1, augment=())


def medaudit_training(arch: str, images: Images) -> Callable[[], float]:
    spec = SurrogateSpec(
        arch=arch,
        init="random",
        split="d2",
        seed=0,
        training=_training(),
        task="binary",
        n_logits=2,
        in_channels=1,
        image_size=SIZE,
        data_sha256="bench",
    )

    def run() -> float:
        with tempfile.TemporaryDirectory() as cache:  # a fresh cache: train, never load
            record = train_surrogate(spec, images, Path(cache), device="cpu")
        return sum(epoch.seconds for epoch in record.curve)

    return run


def plain_training(arch: str, images: Images) -> Callable[[], float]:
    """What a user would write: NCHW, shuffled batches, Adam, cross-entropy, a validation pass each epoch."""
    cfg = _training()
    train, val = validation_split(images.groups, cfg.val_fraction, 0)
    x_tr, y_tr = torch.from_numpy(images.x[train]), torch.from_numpy(images.y[train])
    x_val = torch.from_numpy(images.x[val])
    steps = max(cfg.min_steps_per_epoch, len(train) // cfg.batch_size)

    def run() -> float:
        torch.manual_seed(0)
        model = zoo.build(arch, init="random", num_outputs=2, in_channels=1, image_size=SIZE)
        optimiser = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
        started = time.perf_counter()
        for _ in range(cfg.epochs):
            model.train()
            for _ in range(steps):
                idx = torch.randint(len(x_tr), (min(cfg.batch_size, len(x_tr)),))
                loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
            model.eval()
            with torch.inference_mode():
                torch.cat([model(chunk).softmax(1)[:, 1] for chunk in x_val.split(256)])
        return time.perf_counter() - started

    return run


def _differentiated_passes(model: torch.nn.Module, run: Callable[[], np.ndarray]) -> int:
    """How many forward passes `run` makes with gradients on, each of BATCH rows, counted by a hook that the
    attacks' copies of `model` inherit."""
    passes = []
    hook = model.register_forward_hook(lambda module, args, out: passes.append(torch.is_grad_enabled()))
    try:
        run()
    finally:
        hook.remove()
    return sum(passes)


def _timed(runners: dict[str, Callable], repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Each runner `repeats` times, interleaved: seconds per run (a runner returning a float reports its own
    seconds) and each runner's last output."""
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    last = {}
    for _ in range(repeats):
        for name, run in runners.items():
            t = time.perf_counter()
            last[name] = run()
            took = time.perf_counter() - t
            seconds[name].append(last[name] if isinstance(last[name], float) else took)
            print(f"{name}: {seconds[name][-1]:.2f} s (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
    return seconds, last


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def spread_text(spread: dict) -> str:
    """A `_spread` as the README's tables give it: `min / **median** / max`."""
    return f"{spread['min']:.2f} / **{spread['median']:.2f}** / {spread['max']:.2f}"


def measure_arch(arch: str, x, y, train_images: Images, repeats: int) -> dict:
    model = _model(arch)
    kinds = {
        "medaudit_pgd": medaudit_pgd,
        "torchattacks_channels_last": torchattacks_pgd,
        "medaudit_apgd": medaudit_apgd,
    }
    for run in [make(model, x[:WARM_UP_IMAGES], y[:WARM_UP_IMAGES]) for make in kinds.values()]:
        run()  # untimed warm-up: allocations, lazy imports
    seconds, adv = _timed({name: make(model, x, y) for name, make in kinds.items()}, repeats)
    pgd_rows = len(x) * len(EPSILONS_PM1) * ITERATIONS  # image-iterations of one PGD curve
    apgd_rows = len(x) * APGD_ITERATIONS
    # untimed: the passes each attack differentiates (PGD's rows at one point share a gradient)
    pgd_passes = _differentiated_passes(model, medaudit_pgd(model, x, y))
    apgd_passes = _differentiated_passes(model, medaudit_apgd(model, x, y))
    med, peer, apgd = seconds["medaudit_pgd"], seconds["torchattacks_channels_last"], seconds["medaudit_apgd"]
    train = {"medaudit": medaudit_training(arch, train_images), "plain_torch": plain_training(arch, train_images)}
    train_seconds, _ = _timed(train, repeats)
    return {
        "arch": arch,
        "seconds": seconds | {f"training_{k}": v for k, v in train_seconds.items()},
        "pgd_speed_ratio_over_torchattacks_channels_last": _spread([p / m for p, m in zip(peer, med)]),
        "apgd_cost_per_image_iteration_over_pgd": _spread(
            [(a / apgd_rows) / (m / pgd_rows) for a, m in zip(apgd, med)]
        ),
        "apgd_cost_per_differentiated_pass_over_pgd": _spread(
            [(a / apgd_passes) / (m / pgd_passes) for a, m in zip(apgd, med)]
        ),
        "pgd_differentiated_passes": pgd_passes,
        "pgd_passes_without_sharing": ITERATIONS * len(EPSILONS_PM1) * -(-len(x) // BATCH),
        "apgd_differentiated_passes": apgd_passes,
        "training_epochs_per_s_ratio_over_plain_torch": _spread(
            [p / m for m, p in zip(train_seconds["medaudit"], train_seconds["plain_torch"])]
        ),
        "medaudit_pgd_image_iterations_per_s_median": pgd_rows / statistics.median(med),
        "training_medaudit_epochs_per_s_median": TRAIN_EPOCHS / statistics.median(train_seconds["medaudit"]),
        # the same first step; torchattacks steps on [0, 1], whose rounding turns later signs (pgd_agreement.py)
        "max_abs_diff_medaudit_vs_torchattacks_at_0.03": float(
            np.abs(adv["medaudit_pgd"] - adv["torchattacks_channels_last"]).max()
        ),
    }


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def table(record: dict) -> str:
    """The README's table of ratios (min / median / max over the repeats) from a results record."""
    lines = [
        f"{record['images']} test images. Measured on {record['machine']}, torch {record['torch']}, "
        f"{record['torch_threads']} threads (OMP_WAIT_POLICY {record['omp_wait_policy']}), "
        f"{record['repeats']} interleaved repeats; 1-minute load average {record['load_average_1min_before_after'][0]:.2f}"
        f" before, {record['load_average_1min_before_after'][1]:.2f} after (2 cores: above 2 the machine was shared).",
        "",
        "| surrogate | PGD-10, 6-ε curve: torchattacks (channels_last) s / medaudit s | PGD passes differentiated "
        "| APGD s per image-iteration / PGD's | APGD s per differentiated pass / PGD's "
        "| training epochs/s: medaudit / plain torch |",
        "|---|---|---|---|---|---|",
    ]

    for row in record["results"]:
        lines.append(
            f"| {LABELS[row['arch']]} | {spread_text(row['pgd_speed_ratio_over_torchattacks_channels_last'])} "
            f"| {row['pgd_differentiated_passes']} of {row['pgd_passes_without_sharing']} "
            f"| {spread_text(row['apgd_cost_per_image_iteration_over_pgd'])} "
            f"| {spread_text(row['apgd_cost_per_differentiated_pass_over_pgd'])} "
            f"| {spread_text(row['training_epochs_per_s_ratio_over_plain_torch'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, nargs="?")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=N_IMAGES)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the README table from --out and stop")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return
    torch.set_num_threads(args.threads)
    x, y = _images(args.data_dir, "test", args.images)
    x_train, y_train = _images(args.data_dir, "train", TRAIN_IMAGES)
    train_images = Images(x_train, y_train, np.arange(len(x_train)))
    load_before = os.getloadavg()
    results = []
    for arch in ARCHS:
        results.append(measure_arch(arch, x, y, train_images, args.repeats))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "seconds"}), flush=True)
    record = {
        "part": "attacks",
        "images": len(x),
        "size": SIZE,
        "rows_per_pass": BATCH,
        "epsilons_pm1": EPSILONS_PM1,
        "pgd_iterations": ITERATIONS,
        "step_pm1": STEP_PM1,
        "apgd": {"epsilon_pm1": APGD_EPS_PM1, "iterations": APGD_ITERATIONS, "restarts": 1, "losses": ["margin"]},
        "training": {"images": TRAIN_IMAGES, "epochs": TRAIN_EPOCHS, "section": _training().model_dump(mode="json")},
        "load_average_1min_before_after": [load_before[0], os.getloadavg()[0]],  # 2 cores: > 2 means shared
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),  # PASSIVE: waiting threads yield the core
        "torch": torch.__version__,
        "machine": f"{_cpu_name()}, {platform.machine()}, {os.cpu_count()} cpus, {platform.platform()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "results": results,
    }
    args.out.write_text(json.dumps(record, indent=1))
    print(table(record))


if __name__ == "__main__":
    main()
