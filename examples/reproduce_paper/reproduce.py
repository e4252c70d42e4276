"""Reproduce the paper's four experiments on one real modality: `python reproduce.py pneumonia|retina|derma`.

Trains the targets the experiments need (EfficientNet-Lite0 and MobileNetV2, ImageNet-pretrained and
random, on d1; the same on d1/10 for Table 5), exports them to ONNX with their cards, and runs the four
shipped scenarios against them with medaudit's engine. Resumable: targets, surrogates, adversarial
images and cells are cached by content under --cache. Results JSON land in docs/reproduction/<modality>/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from importlib import resources
from pathlib import Path

import torch

from medaudit.demo.run import build_target
from medaudit.engine import RunOptions, run_audit
from medaudit.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
MODALITIES = {
    "pneumonia": {"file": "pneumoniamnist.npz", "positive": None, "negative": None, "classes": ("normal", "pneumonia")},
    "retina": {
        "file": "retinamnist.npz",
        "positive": (2, 3, 4),
        "negative": None,
        "classes": ("no referable DR", "referable DR"),
    },
    "derma": {"file": "dermamnist_jpeg.npz", "positive": (4,), "negative": (5,), "classes": ("nevus", "melanoma")},
}
ARCHS = ("efficientnet_lite0", "mobilenet_v2")
# Small enough for well under an hour per modality on 2 CPU cores (see docs/reproduction.md). The larger
# sets get fewer epochs: 5 epochs of PneumoniaMNIST's d1 are already 2x the images of 10 of RetinaMNIST's.
SETTINGS = {"image_size": 32, "test_limit": 400, "patience": 3}
EPOCHS = {"retina": 10, "pneumonia": 5, "derma": 4}
EXPERIMENTS = {  # scenario -> targets it is run against: (arch, init, trained_on)
    "perturbation_degree": [(a, "random", "d1") for a in ARCHS],
    "pretraining": [(a, i, "d1") for a in ARCHS for i in ("imagenet", "random")],
    "data_disparity": [(a, "random", "d1") for a in ARCHS],
    "small_data": [(a, i, "d1/10") for a in ARCHS for i in ("imagenet", "random")],
}


def scenario_for(name: str, modality: str):
    cfg = MODALITIES[modality]
    scenario = load_scenario(Path(str(resources.files("medaudit.scenarios") / f"{name}.yaml")))
    data = scenario.data.model_copy(
        update={
            "positive_labels": cfg["positive"],
            "negative_labels": cfg["negative"],
            "image_size": SETTINGS["image_size"],
            "test_limit": SETTINGS["test_limit"],
        }
    )
    training = scenario.training.model_copy(update={"epochs": EPOCHS[modality], "patience": SETTINGS["patience"]})
    return scenario.model_copy(update={"name": f"{name}-{modality}", "data": data, "training": training})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("modality", choices=list(MODALITIES))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "medaudit-reproduction")
    parser.add_argument("--work", type=Path, default=Path("/tmp/medaudit-reproduction"))
    parser.add_argument("--only", nargs="*", choices=list(EXPERIMENTS), default=list(EXPERIMENTS))
    args = parser.parse_args()
    cfg = MODALITIES[args.modality]
    data_path = DATA / cfg["file"]
    out = ROOT / "docs" / "reproduction" / args.modality
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    timings = {}
    for name in args.only:
        scenario = scenario_for(name, args.modality)
        for arch, init, split in EXPERIMENTS[name]:
            tag = f"{arch}-{init}-{split.replace('/', 'over')}"
            t = time.perf_counter()
            target_scenario = scenario.model_copy(
                update={"target": scenario.target.model_copy(update={"trained_on": split})}
            )
            target = build_target(
                target_scenario,
                data_path,
                arch=arch,
                init=init,
                out_path=args.work / args.modality / f"{tag}.onnx",
                cache_dir=args.cache,
                name=f"{args.modality} target {tag}",
                class_names=cfg["classes"],
            )
            run_dir = args.work / args.modality / f"{name}__{tag}"
            scenario_path = run_dir / "scenario.json"
            run_dir.mkdir(parents=True, exist_ok=True)
            scenario_path.write_text(scenario.model_dump_json(indent=1))
            options = RunOptions(
                out_dir=run_dir,
                cache_dir=args.cache,
                device=device,
                command=f"python examples/reproduce_paper/reproduce.py {args.modality}",
            )
            results = run_audit(
                target_scenario,
                scenario_path=scenario_path,
                target_path=target,
                data_source=str(data_path),
                options=options,
            )
            shutil.copy(run_dir / "results.json", out / f"{name}__{tag}.json")
            timings[f"{name}__{tag}"] = time.perf_counter() - t
            print(
                f"{name} vs {tag}: clean AUC {results.target.clean_auc:.3f}, "
                f"{len(results.cells)} cells, {timings[f'{name}__{tag}']:.0f} s",
                flush=True,
            )
    summary = {
        "modality": args.modality,
        "device": device,
        "settings": {**SETTINGS, "epochs": EPOCHS[args.modality]},
        "total_seconds": time.perf_counter() - started,
        "runs_seconds": timings,
    }
    (out / "run_info.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
