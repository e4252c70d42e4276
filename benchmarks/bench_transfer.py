"""How much DI, TI, momentum and a surrogate ensemble add to plain PGD's transfer, on a pair where it is weak.

The pair comes from experiments/random_init_transfer.py (docs/random_init_transfer.md): a random-init
MobileNetV2 target trained on d1 of PneumoniaMNIST and random-init ResNet-18 surrogates trained on d2
(disjoint images), both to a validation-AUC plateau with medaudit's own `train_surrogate` and defaults,
32 px. Plain PGD from one ResNet-18 moved that target to about 0.91 of its clean AUC at epsilon 0.03:
weak transfer, with room for the stronger methods to show what they add.

Each configuration runs through medaudit's attack path (`Attack.craft`, the code an audit runs) on
all test images at two epsilons. For each we report the target's clean / adversarial / control AUC and
relative AUC with 95% paired-bootstrap intervals, and the paired-bootstrap difference in adversarial
AUC against plain PGD on the same images (negative: the method hurts the target more). Single-surrogate
configurations use the first surrogate seed; ensembles average the logits of all seeds; plain PGD is
also run from every seed alone, so the ensemble can be set against the seeds' spread.

    PYTHONPATH=. python benchmarks/bench_transfer.py /work/shared/data --cache /tmp/bench-transfer-cache

Writes benchmarks/results-transfer.json. Models are cached by content under --cache (a rerun only attacks).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from medaudit.attackers.surrogates import SurrogateSpec, load_surrogate, predict_scores, train_surrogate
from medaudit.attacks import MIFGSM, PGD, Crafting, control_noise
from medaudit.core.metrics import auc, bootstrap_paired_auc, bootstrap_paired_difference
from medaudit.data.audit_data import load_data
from medaudit.scenario.threat_model import DataSection, TrainingSection

HERE = Path(__file__).resolve().parent
SIZE = 32  # image side in pixels (PneumoniaMNIST is 28 px; 32 is the smallest size every zoo model takes)
BATCH = 64  # attack batch size, as the engine's default
EPSILONS = (0.03, 0.05)  # L-inf budgets in [-1, 1] units (3.8 and 6.4 grey levels)
DATA_SEED = 0  # draws the d1/d2 split and the validation split (the engine's scenario.seed)
TARGET = ("mobilenet_v2", 1)  # (architecture, seed): random init, trained on d1
SURROGATE = "resnet18"  # the best random-init attacker of docs/random_init_transfer.md, trained on d2
SURROGATE_SEEDS = (2, 3, 4)
RESAMPLES = 1000  # bootstrap resamples for every interval
# The shipped scenarios' attacks: PGD-20 with step 0.01 (the paper's), and MI-FGSM with DI 0.5 and TI 3.
PGD_STEP, PGD_ITERS = 0.01, 20
MI_STEP, MI_ITERS, MI_DECAY = 0.01, 10, 1.0
DI_PROB = 0.5  # input diversity probability (Xie et al. 2019 use 0.5)
TI_KERNEL = 3  # Gaussian kernel side in pixels, as the shipped scenarios use at 32 px

# the shipped scenarios' strong transfer attack: momentum + input diversity + translation invariance
STRONG = MIFGSM(
    name="mifgsm", step_pm1=MI_STEP, iterations=MI_ITERS, decay=MI_DECAY, diversity_prob=DI_PROB, ti_kernel=TI_KERNEL
)
CONFIGS = {  # name -> (attack, surrogates in the logit ensemble: 1 = first seed, None = every seed)
    "plain PGD": (PGD(name="pgd", step_pm1=PGD_STEP, iterations=PGD_ITERS), 1),
    "PGD + DI": (PGD(name="pgd", step_pm1=PGD_STEP, iterations=PGD_ITERS, diversity_prob=DI_PROB), 1),
    "PGD + TI": (PGD(name="pgd", step_pm1=PGD_STEP, iterations=PGD_ITERS, ti_kernel=TI_KERNEL), 1),
    "MI-FGSM": (MIFGSM(name="mifgsm", step_pm1=MI_STEP, iterations=MI_ITERS, decay=MI_DECAY), 1),
    "MI + DI + TI": (STRONG, 1),
    "ensemble PGD": (PGD(name="pgd", step_pm1=PGD_STEP, iterations=PGD_ITERS), None),
    "ensemble MI + DI + TI": (STRONG, None),
}


def train(arch: str, split: str, seed: int, data, digest: str, cache: Path):
    spec = SurrogateSpec(
        arch=arch,
        init="random",
        split=split,
        seed=seed,
        training=TrainingSection(),
        task="binary",
        n_logits=2,
        in_channels=1,
        image_size=SIZE,
        data_sha256=digest,
        split_seed=DATA_SEED,
    )
    record = train_surrogate(spec, data.development.subset(data.splits[split]), cache, device="cpu")
    return record, load_surrogate(record, spec, "cpu")


def interval(iv) -> dict:
    return {"point": round(float(iv.point), 4), "low": round(float(iv.low), 4), "high": round(float(iv.high), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="folder holding pneumoniamnist.npz")
    parser.add_argument("--cache", type=Path, required=True, help="model cache (outside the repository)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = load_data(
        args.data_dir / "pneumoniamnist.npz", DataSection(task="binary"), image_size=SIZE, channels=1, seed=DATA_SEED
    )
    digest = f"{data.source_sha256}:{data.split_ids_sha256}"
    x, y = data.test.x, data.test.y
    target_record, target = train(TARGET[0], "d1", TARGET[1], data, digest, args.cache)
    trained = [train(SURROGATE, "d2", s, data, digest, args.cache) for s in SURROGATE_SEEDS]
    surrogates = [model for _, model in trained]
    training_s = time.perf_counter() - t0
    clean = predict_scores(target, x, "binary", "cpu")
    models = [
        {
            "role": role,
            "id": record.id,
            "stop_reason": record.stop_reason,
            "epochs_run": record.epochs_run,
            "best_epoch": record.best_epoch,
            "val_auc": round(record.val_auc, 4),
            "test_auc": round(auc(y, predict_scores(model, x, "binary", "cpu")), 4),
            "n_train": record.n_train,
        }
        for role, (record, model) in [("target", (target_record, target))] + [("surrogate", t) for t in trained]
    ]
    print(f"trained/loaded in {training_s:.0f} s: {models}", flush=True)

    runs = [(name, attack, n or len(surrogates), 0) for name, (attack, n) in CONFIGS.items()]
    runs += [("plain PGD", CONFIGS["plain PGD"][0], 1, i) for i in range(1, len(surrogates))]  # the seeds' spread
    adversarial: dict[tuple[str, int, float], np.ndarray] = {}
    rows = []
    for name, attack, n_models, first in runs:
        t = time.perf_counter()
        how = Crafting(n_logits=2, multilabel=False, batch_size=BATCH, seed=DATA_SEED, device="cpu")
        out = attack.craft(surrogates[first : first + n_models], x, y, EPSILONS, how)
        seconds = time.perf_counter() - t
        for eps, perturbed in out.items():
            adv = predict_scores(target, perturbed.x_adv, "binary", "cpu")
            ctrl = predict_scores(target, control_noise(x, perturbed.x_adv, seed=DATA_SEED), "binary", "cpu")
            adversarial[(name, first, eps)] = adv
            paired = bootstrap_paired_auc(y, clean, adv, ctrl, resamples=RESAMPLES, seed=DATA_SEED)
            row = {
                "config": name,
                "attack_id": attack.id,
                "surrogate_seeds": list(SURROGATE_SEEDS[first : first + n_models]),
                "epsilon_pm1": eps,
                "target_auc_clean": interval(paired.clean),
                "target_auc_adversarial": interval(paired.adversarial),
                "target_auc_control": interval(paired.control),
                "relative_auc": interval(paired.relative),
                "adversarial_specific_drop": interval(paired.adversarial_specific_drop),
                # the first surrogate's own AUC under these images (white-box for single-surrogate configs)
                "surrogate_auc_whitebox": round(
                    auc(y, predict_scores(surrogates[first], perturbed.x_adv, "binary", "cpu")), 4
                ),
                "max_abs_delta_pm1": round(perturbed.max_abs_delta, 5),
                "seconds_all_epsilons": round(seconds, 1),
            }
            if (name, first) != ("plain PGD", 0):
                d = bootstrap_paired_difference(
                    y, clean, adv, clean, adversarial[("plain PGD", 0, eps)], resamples=RESAMPLES, seed=DATA_SEED
                )
                row["minus_plain_pgd_auc_adversarial"] = interval(d.auc_adversarial)
            rows.append(row)
            print(json.dumps(row), flush=True)
    record = {
        "part": "transfer",
        "complete": True,
        "data": "pneumoniamnist.npz (image-level splits d1/d2, seed 0; all test images)",
        "image_size": SIZE,
        "test_images": int(len(y)),
        "test_positives": int(y.sum()),
        "training": TrainingSection().model_dump(mode="json"),
        "models": models,
        "epsilons_pm1": list(EPSILONS),
        "bootstrap_resamples": RESAMPLES,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, cpu",
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_end": os.getloadavg()[0],  # 2 cores: above 2 means the machine was shared
        "seconds_training_or_cache": round(training_s, 1),
        "seconds_total": round(time.perf_counter() - t0, 1),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": rows,
    }
    (HERE / "results-transfer.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "rows"}))


if __name__ == "__main__":
    main()
