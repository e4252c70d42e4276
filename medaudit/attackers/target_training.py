"""Training a target as a vendor would, and deploying it: the demo's target, the paper reproduction's targets and
the benchmarks' all come from here.

A target is trained like a surrogate (`surrogates.train_surrogate`, cached by its spec) on the scenario's
`target.trained_on` split, with a seed of its own, then exported to ONNX taking [0, 1] images with its card in
the metadata (a deployed model).
"""

from __future__ import annotations

from pathlib import Path

import torch

from medaudit.attackers.surrogates import SurrogateRecord, SurrogateSpec, load_surrogate, train_surrogate
from medaudit.data import load_data
from medaudit.scenario import Init, Scenario
from medaudit.target import export_onnx

TARGET_SEED_OFFSET = 1000  # a target's training seed is this plus the scenario's seed: never a surrogate's seed


class UnitRange(torch.nn.Module):
    """Deployed models usually take [0, 1] images; this wrapper gives a trained model that contract."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * 2 - 1)


def train_target(
    scenario: Scenario,
    data_path: Path,
    *,
    arch: str,
    init: Init,
    cache_dir: Path,
    channels: int = 3,
    device: str = "cpu",
    seed: int | None = None,
    log=print,
) -> tuple[SurrogateRecord, SurrogateSpec]:
    """Train (or load from `cache_dir`) a binary target on the scenario's `target.trained_on` split, on `device`,
    with the scenario's training section: its record (stop reason, learning curve) and spec. `seed` is the
    training seed (default `TARGET_SEED_OFFSET` plus the scenario's seed); the split stays the scenario's."""
    size = scenario.data.image_size
    if size is None:
        raise ValueError("training a target needs the scenario's data.image_size")
    data = load_data(data_path, scenario.data, image_size=size, channels=channels, seed=scenario.seed)
    spec = SurrogateSpec(
        arch=arch,
        init=init,
        split=scenario.target.trained_on,
        seed=TARGET_SEED_OFFSET + scenario.seed if seed is None else seed,
        training=scenario.training,
        task=data.task,
        n_logits=2,
        in_channels=int(data.development.x.shape[1]),
        image_size=size,
        data_sha256=f"{data.source_sha256}:{data.split_ids_sha256}",
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
    return export_onnx(UnitRange(model), out_path, card=card, channels=spec.in_channels, image_size=spec.image_size)


def build_target(
    scenario: Scenario,
    data_path: Path,
    *,
    arch: str,
    init: Init,
    out_path: Path,
    cache_dir: Path,
    name: str | None = None,
    class_names: tuple[str, str] = ("negative", "positive"),
    intended_use: str | None = None,
    channels: int = 3,
    device: str = "cpu",
    log=print,
) -> Path:
    """Train a target on the scenario's `target.trained_on` split (on `device`) and export it as an ONNX file
    with its card."""
    record, spec = train_target(
        scenario, data_path, arch=arch, init=init, cache_dir=cache_dir, channels=channels, device=device, log=log
    )
    return export_target(record, spec, out_path, name=name, class_names=class_names, intended_use=intended_use)
