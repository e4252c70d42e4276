"""Do TrainingSection's defaults converge on the shipped data? (issue 10, item 1; a measurement, not a test)

Trains EfficientNet-Lite0 and MobileNetV2, ImageNet and random init, on d2 of PneumoniaMNIST at 32 px
(data seed 0, surrogate seed 0) with the default TrainingSection, and records per model the stop reason,
epochs run, best epoch, best validation AUC, the validation-AUC curve and seconds.

    python benchmarks/convergence.py /work/shared/data --out benchmarks/results-convergence.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from medaudit.attackers.surrogates import SurrogateSpec, train_surrogate
from medaudit.data.audit_data import load_data
from medaudit.scenario.threat_model import DataSection, TrainingSection

MODELS = (
    ("efficientnet_lite0", "imagenet"),
    ("mobilenet_v2", "imagenet"),
    ("efficientnet_lite0", "random"),
    ("mobilenet_v2", "random"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", type=Path, help="folder holding pneumoniamnist.npz")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", default="d2")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the machine is shared: two threads spin-wait each other when oversubscribed
    data = load_data(
        args.data_dir / "pneumoniamnist.npz", DataSection(task="binary"), image_size=32, channels=1, seed=0
    )
    training = TrainingSection()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for arch, init in MODELS:
            spec = SurrogateSpec(
                arch=arch,
                init=init,
                split=args.split,
                seed=0,
                training=training,
                task="binary",
                n_logits=2,
                in_channels=1,
                image_size=32,
                data_sha256=f"{data.source_sha256}:{data.split_ids_sha256}",
                split_seed=0,
            )
            started = time.perf_counter()
            record = train_surrogate(spec, data.split(args.split), Path(cache), device="cpu")
            row = {
                "arch": arch,
                "init": init,
                "split": args.split,
                "stop_reason": record.stop_reason,
                "epochs_run": record.epochs_run,
                "best_epoch": record.best_epoch,
                "val_auc": record.val_auc,
                "n_train": record.n_train,
                "n_val": record.n_val,
                "seconds": time.perf_counter() - started,
                "curve": [asdict(e) for e in record.curve],
            }
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
            print("  val AUC per epoch:", " ".join(f"{e.val_auc:.3f}" for e in record.curve), flush=True)
            args.out.write_text(
                json.dumps(
                    {
                        "training": training.model_dump(mode="json"),
                        "image_size": 32,
                        "data": "pneumoniamnist.npz",
                        "device": "cpu, 1 thread, 2-core machine shared with other jobs",
                        "models": rows,
                    },
                    indent=1,
                )
            )


if __name__ == "__main__":
    main()
