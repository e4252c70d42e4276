"""A realistic `AuditResults` for report and gate tests: 2 scenario rows, 2 attacks, 3 epsilons.

Numbers follow the paper's shape (Bortsova et al. 2021, Tables 2 and 4): adversarial AUC falls with
epsilon, control noise barely moves it, a disjoint-data surrogate transfers less. Example images are
skimage's camera() downsized to 32x32 grey, attacked by a fixed sign pattern.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image
from skimage import data as skdata
from skimage.transform import resize

from medaudit.gate import evaluate_gate
from medaudit.results import (AuditResults, CellRecord, EpsilonChoice, Example, IntervalRecord, SurrogateResult)

TARGET_SHA256 = "3f5a9c0d1e2b4a6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"
EPSILONS = (0.01, 0.02, 0.03)
ATTACKS = {"fgsm": {"name": "fgsm"},
           "pgd-step0.01-it20": {"name": "pgd", "step_pm1": 0.01, "iterations": 20, "random_start": False}}
ROWS = {  # row id -> (surrogate arch, split, adversarial AUC per attack per epsilon)
    "same-random-d2": ("densenet121", "d2", {"fgsm": (0.62, 0.50, 0.43), "pgd-step0.01-it20": (0.70, 0.56, 0.47)}),
    "different-random-d2/2": ("resnet18", "d2/2", {"fgsm": (0.80, 0.74, 0.69), "pgd-step0.01-it20": (0.82, 0.77, 0.72)}),
}
SSIM = {"fgsm": (0.972, 0.915, 0.861), "pgd-step0.01-it20": (0.978, 0.931, 0.880)}
CLEAN = 0.86


def iv(point: float, low: float | None = None, high: float | None = None, half: float = 0.03) -> IntervalRecord:
    """An interval record; by default symmetric with half-width `half`."""
    return IntervalRecord(point=point, low=point - half if low is None else low, high=point + half if high is None else high,
                          confidence=0.95, resamples=1000, degenerate=0)


def make_cell(row_id: str, surrogate_id: str, attack_id: str, eps: float, adv: float, *, clean: float = CLEAN,
              control: float | None = None, relative: IntervalRecord | None = None,
              drop: IntervalRecord | None = None, ssim: float = 0.93) -> CellRecord:
    control = clean - 0.004 - 0.05 * eps if control is None else control
    return CellRecord(
        id=f"{surrogate_id}/{attack_id}/eps{eps:g}", surrogate_id=surrogate_id, row_id=row_id, attack_id=attack_id,
        attack=ATTACKS.get(attack_id, {"name": attack_id}), epsilon_pm1=eps, epsilon_grey_levels=eps * 127.5,
        auc_clean=iv(clean), auc_adversarial=iv(adv, half=0.035), auc_control=iv(control),
        relative_auc=relative or iv(round(adv / clean, 4), half=0.04),
        relative_auc_control=iv(round(control / clean, 4), half=0.01),
        adversarial_specific_drop=drop or iv(round(control - adv, 4), half=0.035),
        per_class_auc_clean=[clean], per_class_auc_adversarial=[adv],
        surrogate_auc_clean=0.84, surrogate_auc_whitebox=max(0.0, adv - 0.3), whitebox_flag=False,
        flips_pos_to_neg=int(400 * (clean - adv)), flips_neg_to_pos=int(250 * (clean - adv)), flips_control=2,
        sensitivity_clean=0.71, sensitivity_adversarial=round(0.71 * adv / clean - 0.1, 3), threshold_at_specificity=0.62,
        mean_ssim=ssim, mean_ssim_control=ssim + 0.01, max_abs_delta=eps, target_queries=2 * 624, seconds=3.2)


def _png(grey: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.rint((grey + 1) * 127.5).clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def make_examples(attack_ids=tuple(ATTACKS), eps: float = 0.02) -> list[Example]:
    camera = resize(skdata.camera().astype(np.float64) / 127.5 - 1.0, (32, 32), anti_aliasing=True)
    out = []
    for k, attack_id in enumerate(attack_ids):
        sign = np.sign(np.random.default_rng(k).normal(size=camera.shape))
        adversarial = np.clip(camera + eps * sign, -1, 1)
        amplification = float(np.floor(0.5 / eps))
        out.append(Example(row_id="same-random-d2", attack_id=attack_id, epsilon_pm1=eps, label=1,
                           original_png=_png(camera), adversarial_png=_png(adversarial),
                           perturbation_png=_png(np.clip((adversarial - camera) * amplification, -1, 1)),
                           amplification=amplification, score_clean=0.91, score_adversarial=0.23 + 0.1 * k))
    return out


def scenario_dict(name: str = "data_disparity", gate: dict | None = None) -> dict:
    return {
        "name": name, "description": "Does an attacker without the target's development data still fool it?",
        "goal": "untargeted",
        "capabilities": {"queries_to_target": 0, "input_edit": "inference_time", "norm": "linf"},
        "target": {"card": {}, "trained_on": "d1"},
        "data": {"source": "medmnist:pneumoniamnist", "task": "binary", "test_limit": None},
        "surrogates": {"arch": ["same", "different"], "init": ["random"], "data": ["d2", "d2/2"], "seed": [0]},
        "training": {"epochs": 10, "batch_size": 64, "learning_rate": 0.001, "lr_decay": 0.9, "patience": 3,
                     "balanced_sampling": True, "augment": ["flip", "translate"], "val_fraction": 0.1},
        "attacks": list(ATTACKS.values()), "epsilons_pm1": list(EPSILONS),
        "perceptibility": {"metric": "ssim", "min_mean_ssim": 0.9}, "delivery": "float",
        "bootstrap": {"resamples": 1000, "confidence": 0.95}, "seed": 0,
        "gate": gate if gate is not None else {"min_relative_auc": 0.6, "max_adversarial_specific_drop": 0.25,
                                               "specificity": 0.9},
    }


def make_results(*, name: str = "data_disparity", gate: dict | None = None, examples: bool = True,
                 judged: bool = True) -> AuditResults:
    """The full record as `medaudit run` writes it; `judged` stores the gate as the engine's finish() does."""
    surrogates, cells = [], []
    for r, (row_id, (arch, split, advs)) in enumerate(ROWS.items()):
        sid = f"{arch}-random-{split.replace('/', 'over')}-s0-{'a1b2c3d4e5' if r == 0 else '0f9e8d7c6b'}"
        surrogates.append(SurrogateResult(
            id=sid, row_id=row_id, arch=arch, family=arch.rstrip("0123456789"), init="random", split=split, seed=0,
            n_train=2112 // (r + 1), n_val=234 // (r + 1), val_auc=0.88 - 0.03 * r, test_auc=0.84 - 0.03 * r,
            epochs_run=7, best_epoch=4, train_seconds=41.5, from_cache=bool(r),
            atlas=["AML.T0043.002", "AML.T0005.001"]))
        for attack_id, values in advs.items():
            for eps, adv in zip(EPSILONS, values):
                cells.append(make_cell(row_id, sid, attack_id, eps, adv, ssim=SSIM[attack_id][EPSILONS.index(eps)]))
    choices = [EpsilonChoice(attack_id=a, curve=list(zip(EPSILONS, SSIM[a])), bound=0.9, chosen_epsilon_pm1=0.02,
                             reason="largest epsilon with mean SSIM ≥ 0.9 (0.02: 0.915; 0.03: 0.861 below)")
               for a in ATTACKS]
    results = AuditResults(
        status="complete", scenario_path="scenarios/data_disparity.yaml", scenario=scenario_dict(name, gate),
        scenario_sha256="b" * 64, command="medaudit run --target models/pneumonia.onnx --scenario "
                                          "scenarios/data_disparity.yaml --out audit",
        target={"path": "models/pneumonia.onnx", "name": "pneumonia-densenet", "sha256": TARGET_SHA256,
                "card": {"name": "pneumonia-densenet", "architecture": "densenet121", "init": "random",
                         "input_size": [28, 28], "channels": 1, "layout": "NCHW", "dtype": "float32",
                         "value_range": [0.0, 1.0], "mean": None, "std": None, "output_kind": "logits",
                         "task": "binary", "class_names": ["pneumonia"], "positive_index": 1,
                         "input_name": "image", "output_name": "logits"},
                "card_sources": {"name": "sidecar", "architecture": "sidecar", "init": "sidecar",
                                 "input_size": "graph", "channels": "graph", "layout": "graph", "dtype": "graph",
                                 "value_range": "onnx metadata", "output_kind": "graph (final op)", "task": "sidecar",
                                 "class_names": "sidecar", "positive_index": "default (binary: column 1 of two)",
                                 "input_name": "graph", "output_name": "graph"},
                "load_check": {"images": 64, "output_columns": 2, "deterministic_max_diff": 0.0, "passed": True},
                "device": "cpu", "clean_auc": CLEAN},
        data={"source": "medmnist:pneumoniamnist", "sha256": "c" * 64, "split_ids_sha256": "d" * 64,
              "patient_level": False, "task": "binary", "class_names": ["negative", "positive"], "image_size": 28,
              "channels": 1, "split_sizes": {"d1": 2353, "d2": 2353, "d2/2": 1176, "d1/10": 235, "full": 4706},
              "test_size": 624, "test_positives": 390, "test_selection": "all",
              "notes": ["no patient ids: splits are image-level, so one patient may sit in several splits"]},
        surrogates=surrogates, cells=cells, epsilon_choice=choices, examples=make_examples() if examples else [],
        target_queries=sum(c.target_queries for c in cells) + 624 + 128,
        environment={"packages": {"medaudit": "0.1.0", "torch": "2.14.1", "adversarial-robustness-toolbox": "1.20.1",
                                  "weasyprint": "70.0"},
                     "python": "3.11.2", "platform": "Linux-6.1-x86_64", "device": "cpu", "gpu": None,
                     "cpu_threads": 8},
        timings={"load_seconds": 2.1, "train_seconds": 83.0, "cells_seconds": 38.4, "total_seconds": 124.9},
        started_at="2025-11-25T10:00:00+00:00", finished_at="2025-11-25T10:02:05+00:00")
    if judged:
        results.gate, results.verdict, results.worst_case = evaluate_gate(results)
    return results
