"""Speed measurements for the engine issue (not tests): run `python benchmarks/run_benchmarks.py [part ...]`.

Parts: `attack` (ART PGD vs a hand-written torch loop of the same steps), `target` (onnxruntime vs eager
torch), `audit` / `audit-ray` (the shipped data_disparity.yaml on PneumoniaMNIST at 32 px, 300 test images, cold
cache then warm cache, local or Ray executor).
Prints one JSON line per measurement and writes benchmarks/results-<part>.json.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from medaudit.attackers import zoo
from medaudit.attacks import PGD, Crafting
from medaudit.data.audit_data import to_canonical

HERE = Path(__file__).resolve().parent
PNEUMONIA = HERE.parents[1] / "shared" / "data" / "pneumoniamnist.npz"
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _images(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(PNEUMONIA) as npz:
        return to_canonical(npz["test_images"][:n], size), npz["test_labels"][:n, 0].astype(np.int64)


def _model(size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = zoo.build("efficientnet_lite0", init="imagenet", num_outputs=2, in_channels=1, image_size=size)
    return model.eval().to(DEVICE).to(memory_format=torch.channels_last)


def _hand_pgd(model, x: np.ndarray, y: np.ndarray, eps: float, step: float, iters: int, batch: int) -> np.ndarray:
    """The same L-inf PGD (no random start, sign steps, projection, clip) written directly in torch."""
    out = []
    for s in range(0, len(x), batch):
        x0 = torch.from_numpy(x[s : s + batch]).to(DEVICE)
        yb = torch.from_numpy(y[s : s + batch]).to(DEVICE)
        adv = x0.clone()
        for _ in range(iters):
            adv.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(adv.contiguous(memory_format=torch.channels_last)), yb)
            (grad,) = torch.autograd.grad(loss, adv)
            adv = (adv.detach() + step * grad.sign()).clamp(x0 - eps, x0 + eps).clamp(-1, 1)
        out.append(adv.cpu().numpy())
    return np.concatenate(out)


def bench_attack(n: int = 128, size: int = 64, iters: int = 20) -> dict:
    x, y = _images(n, size)
    model = _model(size)
    attack = PGD(name="pgd", step_pm1=0.01, iterations=iters)
    how = Crafting(n_logits=2, multilabel=False, batch_size=64, seed=0, device=DEVICE)
    attack.craft([model], x[:16], y[:16], [0.02], how)  # warm-up
    timings = {"art": [], "hand": []}
    for _ in range(3):
        t = time.perf_counter()
        art_adv = attack.craft([model], x, y, [0.02], how)[0.02].x_adv
        timings["art"].append(time.perf_counter() - t)
        t = time.perf_counter()
        hand_adv = _hand_pgd(model, x, y, 0.02, 0.01, iters, 64)
        timings["hand"].append(time.perf_counter() - t)
    art_s, hand_s = float(np.median(timings["art"])), float(np.median(timings["hand"]))
    return {
        "part": "attack",
        "device": DEVICE,
        "images": n,
        "size": size,
        "iterations": iters,
        "art_img_per_s": n / art_s,
        "hand_img_per_s": n / hand_s,
        "art_over_hand_time": art_s / hand_s,
        "max_abs_diff_art_vs_hand": float(np.max(np.abs(art_adv - hand_adv))),
    }


def bench_target(n: int = 512) -> dict:
    from medaudit.target.black_box import load_target
    from medaudit.target.export import export_onnx

    rows = []
    for size in (64, 224):
        x, _ = _images(n if size == 64 else 128, size)
        model = _model(size).cpu()
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(
                model,
                Path(tmp) / "t.onnx",
                card={"value_range": [-1, 1], "task": "binary"},
                channels=1,
                image_size=size,
            )
            target = load_target(path)
            target.scores(x[:8])
            t = time.perf_counter()
            onnx_scores = target.scores(x, batch_size=64)
            ort_s = time.perf_counter() - t
        with torch.inference_mode():
            model(torch.from_numpy(x[:8]).contiguous(memory_format=torch.channels_last))
            t = time.perf_counter()
            eager = torch.cat(
                [
                    torch.softmax(
                        model(torch.from_numpy(x[s : s + 64]).contiguous(memory_format=torch.channels_last)), 1
                    )
                    for s in range(0, len(x), 64)
                ]
            )
            eager_s = time.perf_counter() - t
        rows.append(
            {
                "part": "target",
                "size": size,
                "images": len(x),
                "onnxruntime_img_per_s": len(x) / ort_s,
                "eager_torch_img_per_s": len(x) / eager_s,
                "ort_speedup": eager_s / ort_s,
                "max_score_diff": float(np.max(np.abs(onnx_scores - eager[:, 1].double().numpy()))),
            }
        )
    return {"part": "target", "rows": rows}


# The audit benchmark runs the shipped data_disparity scenario as it is (6 rows x 3 seeds, their ensembles,
# FGSM, PGD-20 and MI-FGSM with DI and TI, 3 epsilons, training to a plateau) on PneumoniaMNIST; only the
# image size and the test subset are set here, so that a cold run fits a CPU session.
AUDIT_IMAGE_SIZE = 32
AUDIT_TEST_LIMIT = 300


def bench_audit(executor: str = "local", one_seed: bool = False) -> dict:
    from medaudit.attackers.target_training import build_target
    from medaudit.audit.run import run_audit
    from medaudit.engine.plan import RunOptions
    from medaudit.scenario.threat_model import load_scenario

    scenario_path = Path(str(resources.files("medaudit.scenarios") / "data_disparity.yaml"))
    scenario = load_scenario(scenario_path)
    scenario = scenario.model_copy(
        update={
            "data": scenario.data.model_copy(update={"image_size": AUDIT_IMAGE_SIZE, "test_limit": AUDIT_TEST_LIMIT})
        }
    )
    if one_seed:  # the grid with one seed per row and no ensembles: 6 surrogates instead of 18 (+6 ensembles)
        scenario = scenario.model_copy(
            update={"surrogates": scenario.surrogates.model_copy(update={"seed": (0,)}), "ensembles": ()}
        )
    work = Path(tempfile.mkdtemp(prefix="medaudit-bench-"))
    run_scenario = work / "data_disparity.yaml"
    run_scenario.write_text(scenario.model_dump_json())  # JSON is YAML: the exact scenario the runs used
    t = time.perf_counter()
    target = build_target(
        scenario,
        PNEUMONIA,
        arch="efficientnet_lite0",
        init="random",
        out_path=work / "target.onnx",
        cache_dir=work / "target-cache",
        class_names=("normal", "pneumonia"),
    )
    target_s = time.perf_counter() - t
    runs, breakdown = {}, {}
    for label in ("cold", "warm"):
        t = time.perf_counter()
        results = run_audit(
            scenario,
            scenario_path=run_scenario,
            target_path=target,
            data_source=str(PNEUMONIA),
            options=RunOptions(
                out_dir=work / f"out-{label}", cache_dir=work / "cache", executor=executor, device=DEVICE
            ),
        )
        runs[label] = time.perf_counter() - t
        breakdown[label] = results.timings.model_dump()
    summary = {
        "part": "audit-1seed" if one_seed else "audit",
        "device": DEVICE,
        "executor": executor,
        "image_size": AUDIT_IMAGE_SIZE,
        "test_limit": AUDIT_TEST_LIMIT,
        "cpu_threads": torch.get_num_threads(),
        "target_training_s": target_s,
        "cold_s": runs["cold"],
        "warm_s": runs["warm"],
        "warm_speedup": runs["cold"] / runs["warm"],
        "cells": len(results.cells),
        "surrogates": [
            (s.id, round(s.test_auc.point, 3), s.stop_reason, s.epochs_run, round(s.train_seconds, 1))
            for s in results.surrogates
        ],
        "unfit_surrogates": {  # why a surrogate is not evidence of robustness
            s.id: list(s.fitness.reasons) for s in results.surrogates if s.fitness is not None and not s.fitness.fit
        },
        "verdict": results.verdict,
        "rows": {  # each row's outcome over every attack (the gate's worst-over-attacks rules)
            r.id: f"{r.status}: {r.message}" for r in results.gate if r.attack_id == "worst-over-attacks"
        },
        "timings": breakdown,
        "target_clean_auc": results.target.clean_auc,
    }
    shutil.rmtree(work)
    return summary


def main(parts: list[str]) -> None:
    torch.set_num_threads(torch.get_num_threads())
    benches = {
        "attack": bench_attack,
        "target": bench_target,
        "audit": bench_audit,
        "audit-ray": lambda: bench_audit("ray"),
        "audit-1seed": lambda: bench_audit(one_seed=True),
    }
    for part in parts or ["attack", "target", "audit"]:
        result = benches[part]()
        print(json.dumps(result), flush=True)
        (HERE / f"results-{part}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
