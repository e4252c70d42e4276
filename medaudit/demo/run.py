"""The demo: a fundus classifier (referable diabetic retinopathy) audited end to end.

It trains a small EfficientNet-Lite0 target on d1 of the RetinaMNIST photographs (from a data folder, or
downloaded once from the official MedMNIST record: `medaudit.demo.data`), as a vendor would, exports it to ONNX with its card in the metadata (a deployed model), then audits it
with `scenarios/demo_retina.yaml`. Both the target and the surrogates are cached.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from medaudit.data import load_data
from medaudit.export import export_onnx
from medaudit.scenario import Scenario, load_scenario
from medaudit.surrogates import SurrogateRecord, SurrogateSpec, code_version, load_surrogate, train_surrogate

DEMO_SCENARIO = "demo_retina.yaml"
# what the demo's (fictional) manufacturer states; the report quotes it on the verdict card
DEMO_INTENDED_USE = (
    "Demonstration only, not a medical device: flags colour fundus photographs showing referable diabetic "
    "retinopathy (grade 2 or worse) for review by an ophthalmologist; adults in diabetic screening."
)


class _UnitRange(torch.nn.Module):
    """Deployed models usually take [0, 1] images; this wrapper gives the demo target that contract."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * 2 - 1)


def train_target(
    scenario: Scenario, data_path: Path, *, arch: str, init: str, cache_dir: Path, device: str = "cpu", log=print
) -> tuple[SurrogateRecord, SurrogateSpec]:
    """Train (or load from `cache_dir`) a target on the scenario's `target.trained_on` split, on `device`, with the
    scenario's training section: its record (stop reason, learning curve) and spec."""
    size = scenario.data.image_size
    data = load_data(data_path, scenario.data, image_size=size, channels=3, seed=scenario.seed)
    spec = SurrogateSpec(
        arch=arch,
        init=init,
        split=scenario.target.trained_on,
        seed=1000 + scenario.seed,
        training=scenario.training.model_dump(mode="json"),
        task=data.task,
        n_logits=2,
        in_channels=int(data.development.x.shape[1]),
        image_size=size,
        data_sha256=f"{data.source_sha256}:{data.split_ids_sha256}",
        code_version=code_version(),
        split_seed=scenario.seed,
    )
    record = train_surrogate(spec, data.split(spec.split), cache_dir / "target", device=device)
    log(
        f"target {arch}/{init} on {spec.split}: {'cached' if record.from_cache else 'trained'}, "
        f"validation AUC {record.val_auc:.3f}, {record.epochs_run} epochs ({record.stop_reason})"
    )
    return record, spec


def export_target(
    record: SurrogateRecord,
    spec: SurrogateSpec,
    out_path: Path,
    *,
    name: str | None = None,
    class_names: tuple[str, str] = ("negative", "positive"),
    intended_use: str | None = None,
) -> Path:
    """A trained target as a deployed model: an ONNX file taking [0, 1] images, its card in the metadata."""
    model = load_surrogate(record, spec, "cpu")
    card = {
        "name": name or f"{spec.arch} ({spec.init}) trained on {spec.split}",
        "architecture": spec.arch,
        "init": spec.init,
        "value_range": [0, 1],
        "task": "binary",
        "class_names": list(class_names),
        "positive_index": 1,
        **({"intended_use": intended_use} if intended_use else {}),
    }
    return export_onnx(_UnitRange(model), out_path, card=card, channels=spec.in_channels, image_size=spec.image_size)


def build_target(
    scenario: Scenario,
    data_path: Path,
    *,
    arch: str,
    init: str,
    out_path: Path,
    cache_dir: Path,
    name: str | None = None,
    class_names: tuple[str, str] = ("negative", "positive"),
    intended_use: str | None = None,
    device: str = "cpu",
    log=print,
) -> Path:
    """Train a target on the scenario's `target.trained_on` split (on `device`) and export it as an ONNX file
    with card."""
    record, spec = train_target(scenario, data_path, arch=arch, init=init, cache_dir=cache_dir, device=device, log=log)
    return export_target(record, spec, out_path, name=name, class_names=class_names, intended_use=intended_use)


def run_demo(out_dir: Path, cache_dir: Path, data_dir: Path | None = None, log=print) -> int:
    """Build the demo target, run the demo scenario, write the report; return the gate's exit code.
    `data_dir`: folder holding the official retinamnist.npz; None downloads it into the cache."""
    from medaudit.cli import finish
    from medaudit.demo.data import demo_data_path
    from medaudit.engine import RunOptions, run_audit

    scenario_path = Path(str(resources.files("medaudit.scenarios") / DEMO_SCENARIO))
    scenario = load_scenario(scenario_path)
    data_path = demo_data_path(data_dir, cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target_path = build_target(
        scenario,
        data_path,
        arch="efficientnet_lite0",
        init="imagenet",
        out_path=out_dir / "demo_target.onnx",
        cache_dir=cache_dir,
        name="demo fundus classifier (EfficientNet-Lite0, ImageNet init, d1)",
        class_names=("no referable DR", "referable DR"),
        intended_use=DEMO_INTENDED_USE,
        log=log,
    )
    options = RunOptions(out_dir=out_dir, cache_dir=cache_dir, command="medaudit demo")
    results = run_audit(
        scenario,
        scenario_path=scenario_path,
        target_path=target_path,
        data_source=str(data_path),
        options=options,
        log=log,
        progress=lambda phase, done, total: log(f"{phase}: {done}/{total}"),
    )
    return finish(results, out_dir, out_dir / "results.json")
