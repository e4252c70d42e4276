"""The audit engine: surrogates x attacks x epsilons, measured on the black-box target.

Each surrogate is a pure function of its `SurrogateSpec` and each cell of its `CellSpec`; the engine
only orders them, skips finished cells on resume and saves after every cell (atomically).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import platform
import re
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medaudit import zoo
from medaudit.attacks import AttackParams, art_classifier, attack_id, control_noise, deliver_uint8, run_attack
from medaudit.data import AuditData, load_data
from medaudit.errors import AuditInputError, look_up_option
from medaudit.files import atomic_write
from medaudit.metrics import (bootstrap_paired_auc, flips, mean_ssim, per_class_auc, sensitivity_at_threshold,
                              threshold_at_specificity, auc)
from medaudit.results import (AuditResults, CellRecord, EpsilonChoice, Example, IntervalRecord, SurrogateResult,
                              write_results, read_results)
from medaudit.scenario import Scenario, SurrogateRow
from medaudit.surrogates import (SurrogateSpec, code_version, default_device, load_surrogate, predict_scores,
                                 train_surrogate)
from medaudit.target import Target, load_target

PACKAGES = ("medaudit", "torch", "torchvision", "onnxruntime", "onnx", "adversarial-robustness-toolbox", "numpy",
            "scikit-learn", "scikit-image", "scipy", "pydantic", "jinja2", "weasyprint", "matplotlib")
EXAMPLES_PER_CELL = 3


@dataclass(frozen=True)
class CellSpec:
    """One grid cell: a trained surrogate, an attack and an epsilon."""

    surrogate_id: str
    attack: AttackParams
    epsilon_pm1: float

    @property
    def id(self) -> str:
        return f"{self.surrogate_id}/{attack_id(self.attack)}/eps{self.epsilon_pm1:g}"


# ---------------------------------------------------------------- set-up
def prepare(scenario: Scenario, target_path: Path, data_source: str | None) -> tuple[Target, AuditData]:
    """Load the target and the data, check one against the other; raise AuditInputError on a mismatch."""
    overrides = scenario.target.card
    if scenario.data.image_size and overrides.input_size is None:
        overrides = overrides.model_copy(update={"input_size": (scenario.data.image_size,) * 2})
    target = load_target(target_path, overrides, task=scenario.data.task)
    height, width = target.card.input_size
    if height != width:
        raise AuditInputError(f"{target_path}: input size {height}x{width}; medaudit audits square inputs")
    source = data_source or scenario.data.source
    if source is None:
        raise AuditInputError("no data: give --data PATH or `data.source` in the scenario")
    data = load_data(source, scenario.data, image_size=height, channels=target.card.channels, seed=scenario.seed,
                     class_names=target.card.class_names or ())
    target.check(data.test.x[:32])
    return target, data


def resolve_arch(row: SurrogateRow, target: Target) -> str:
    """`same` -> the target's architecture; `different` -> a zoo model of another family."""
    if row.arch == "same":
        if not target.card.architecture:
            raise AuditInputError(f"{target.path}: surrogate `arch: same` needs the target card's `architecture` "
                                  f"(one of {', '.join(zoo.ARCHITECTURES)})")
        return look_up_option(target.card.architecture, zoo.ARCHITECTURES, what="architecture", where=f"{target.path} card `architecture`")
    if row.arch == "different":
        if not target.card.architecture:
            raise AuditInputError(f"{target.path}: surrogate `arch: different` needs the target card's `architecture`")
        own = zoo.family(look_up_option(target.card.architecture, zoo.ARCHITECTURES, what="architecture", where=f"{target.path} card `architecture`"))
        return "mobilenet_v2" if own != "mobilenet" else "efficientnet_lite0"
    return look_up_option(row.arch, zoo.ARCHITECTURES, what="architecture", where="scenario `surrogates.arch`")


def row_id(row: SurrogateRow) -> str:
    return f"{row.arch}-{row.init}-{row.data}"


def atlas_ids(row: SurrogateRow, trained_on: str) -> list[str]:
    """MITRE ATLAS techniques: black-box transfer, plus how the proxy model was made."""
    ids = ["AML.T0043.002"]
    ids.append("AML.T0005.000" if row.data in (trained_on, "full") else "AML.T0005.001")
    if row.init == "imagenet":
        ids.append("AML.T0005.002")
    return ids


def n_logits(task: str, n_classes: int) -> int:
    return 2 if task == "binary" else n_classes


# ---------------------------------------------------------------- one cell
def _interval(iv) -> IntervalRecord:
    return IntervalRecord(point=iv.point, low=iv.low, high=iv.high, confidence=iv.confidence,
                          resamples=iv.resamples, degenerate=iv.degenerate)


def _auc_labels(y: np.ndarray, task: str, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.int64)[y] if task == "multiclass" else y


def run_cell(spec: CellSpec, *, row: SurrogateRow, classifier, model, scenario: Scenario, target: Target,
             data: AuditData, clean_scores: np.ndarray, surrogate_clean_auc: float, k: int, device: str,
             batch_size: int, adv_cache: Path | None = None) -> tuple[CellRecord, dict]:
    """Attack the surrogate, transfer to the target, measure; returns the record and per-image arrays."""
    started = time.perf_counter()
    task, test = data.task, data.test
    multilabel = task == "multilabel"
    x_adv = craft(spec, classifier, test.x, test.y, n_logits=n_logits(task, k), multilabel=multilabel,
                  batch_size=batch_size, seed=scenario.seed, adv_cache=adv_cache)
    x_ctrl = control_noise(test.x, x_adv, seed=scenario.seed)
    if scenario.delivery == "uint8":
        x_adv, x_ctrl = deliver_uint8(x_adv), deliver_uint8(x_ctrl)
    queries_before = target.queries
    adv_scores = target.scores(x_adv)
    ctrl_scores = target.scores(x_ctrl)
    y_auc = _auc_labels(test.y, task, k)
    paired = bootstrap_paired_auc(y_auc, clean_scores, adv_scores, ctrl_scores,
                                  resamples=scenario.bootstrap.resamples, confidence=scenario.bootstrap.confidence,
                                  seed=scenario.seed, groups=test.groups if data.patient_level else None)
    whitebox = auc(y_auc, predict_scores(model, x_adv, task, device))
    flip_counts = {"pos_to_neg": 0, "neg_to_pos": 0}
    ctrl_flips = 0
    sens_clean = sens_adv = threshold = None
    if task == "binary":
        flip_counts = flips(clean_scores >= 0.5, adv_scores >= 0.5)
        ctrl = flips(clean_scores >= 0.5, ctrl_scores >= 0.5)
        ctrl_flips = ctrl["pos_to_neg"] + ctrl["neg_to_pos"]
        threshold = threshold_at_specificity(test.y, clean_scores, scenario.gate.specificity)
        sens_clean = sensitivity_at_threshold(test.y, clean_scores, threshold)
        sens_adv = sensitivity_at_threshold(test.y, adv_scores, threshold)
    record = CellRecord(
        id=spec.id, surrogate_id=spec.surrogate_id, row_id=row_id(row), attack_id=attack_id(spec.attack),
        attack=spec.attack.model_dump(), epsilon_pm1=spec.epsilon_pm1, epsilon_grey_levels=spec.epsilon_pm1 * 127.5,
        auc_clean=_interval(paired.clean), auc_adversarial=_interval(paired.adversarial),
        auc_control=_interval(paired.control), relative_auc=_interval(paired.relative),
        relative_auc_control=_interval(paired.relative_control),
        adversarial_specific_drop=_interval(paired.adversarial_specific_drop),
        per_class_auc_clean=per_class_auc(y_auc, clean_scores), per_class_auc_adversarial=per_class_auc(y_auc, adv_scores),
        surrogate_auc_clean=surrogate_clean_auc, surrogate_auc_whitebox=whitebox,
        whitebox_flag=bool(paired.adversarial.point < whitebox - 0.05),
        flips_pos_to_neg=flip_counts["pos_to_neg"], flips_neg_to_pos=flip_counts["neg_to_pos"], flips_control=ctrl_flips,
        sensitivity_clean=sens_clean, sensitivity_adversarial=sens_adv, threshold_at_specificity=threshold,
        mean_ssim=mean_ssim(test.x, x_adv), mean_ssim_control=mean_ssim(test.x, x_ctrl),
        max_abs_delta=float(np.max(np.abs(x_adv - test.x))), target_queries=target.queries - queries_before,
        seconds=time.perf_counter() - started)
    arrays = {"adversarial_scores": adv_scores, "control_scores": ctrl_scores,
              "example_adversarial": x_adv[example_indices(test.y)]}
    return record, arrays


def craft(spec: CellSpec, classifier, x: np.ndarray, y: np.ndarray, *, n_logits: int, multilabel: bool,
          batch_size: int, seed: int, adv_cache: Path | None) -> np.ndarray:
    """Adversarial images for one cell. They depend on the surrogate, attack, epsilon and test images but
    not on the target, so audits of several targets share them through `adv_cache`."""
    path = None
    if adv_cache is not None:
        key = f"{spec.id}|{seed}|{x.shape}|{_measurement_code_version()}"
        digest = hashlib.sha256(key.encode() + x.tobytes() + y.tobytes()).hexdigest()
        path = adv_cache / f"{digest}.npy"
        if path.is_file():
            return np.load(path)
    x_adv = run_attack(spec.attack, classifier, x, y, epsilon_pm1=spec.epsilon_pm1, n_logits=n_logits,
                       multilabel=multilabel, batch_size=batch_size, seed=seed).x_adv
    if path is not None:
        atomic_write(path, lambda f: np.save(f, x_adv))
    return x_adv


def example_indices(y: np.ndarray) -> np.ndarray:
    """A few fixed test images for the report: the first positives (not cherry-picked by effect)."""
    key = y if y.ndim == 1 else y.max(axis=1)
    pos = np.flatnonzero(key > 0)
    chosen = pos[:EXAMPLES_PER_CELL] if len(pos) >= EXAMPLES_PER_CELL else np.arange(min(EXAMPLES_PER_CELL, len(y)))
    return chosen


# ---------------------------------------------------------------- the whole grid
def environment(device: str) -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {"packages": versions, "python": sys.version.split()[0], "platform": platform.platform(),
            "device": device, "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
            "cpu_threads": torch.get_num_threads()}


def _safe_name(cell_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", cell_id)


def run_audit(scenario: Scenario, *, scenario_path: Path, target_path: Path, data_source: str | None, out_dir: Path,
              cache_dir: Path, resume: bool = False, device: str | None = None, batch_size: int = 64,
              command: str = "", progress=None, log=print) -> AuditResults:
    """Run the scenario's grid and write `results.json` after every cell; return the complete record.

    Finished cells come from the content cache, so a re-run (or `resume`, which first checks that the
    scenario, target and data are those of the interrupted run) computes nothing twice."""
    t0 = time.perf_counter()
    device = device or default_device()
    target, data = prepare(scenario, target_path, data_source)
    rows = scenario.surrogate_rows()
    archs = [resolve_arch(row, target) for row in rows]  # every input is checked before anything is written
    weights_dir = Path(scenario.weights_dir) if scenario.weights_dir else None
    for row, arch in zip(rows, archs):
        zoo.require_weights(arch, row.init, weights_dir)
    results_path = out_dir / "results.json"
    if resume:
        _check_resumable(results_path, scenario, target, data)
    per_image_dir = out_dir / "per_image"
    per_image_dir.mkdir(parents=True, exist_ok=True)

    if scenario.delivery == "uint8":
        data = replace(data, test=replace(data.test, x=deliver_uint8(data.test.x)))
    test = data.test
    k = len(target.card.class_names or ()) or 1
    clean_scores = target.scores(test.x)
    clean_auc = auc(_auc_labels(test.y, data.task, k), clean_scores)
    shown = example_indices(test.y)
    np.savez_compressed(per_image_dir / "clean.npz", scores=clean_scores, labels=test.y, groups=test.groups,
                        example_index=shown, example_original=test.x[shown])
    results = _new_results(scenario, scenario_path, command, target, data, clean_auc, device)
    log(f"plan: {len(rows)} surrogate(s) x {len(scenario.attacks)} attack(s) x {len(scenario.epsilons_pm1)} epsilon(s) "
        f"= {len(rows) * len(scenario.attacks) * len(scenario.epsilons_pm1)} cells on {len(test)} test images; "
        f"target clean AUC {clean_auc:.3f}; device {device}")

    version = code_version()
    timings = {"load_seconds": time.perf_counter() - t0, "train_seconds": 0.0, "cells_seconds": 0.0}
    for row, arch in zip(rows, archs):
        spec = SurrogateSpec(arch=arch, init=row.init, split=row.data, seed=row.seed,
                             training=scenario.training.model_dump(mode="json"), task=data.task,
                             n_logits=n_logits(data.task, k), in_channels=int(test.x.shape[1]),
                             image_size=int(test.x.shape[-1]),
                             data_sha256=f"{data.source_sha256}:{data.split_ids_sha256}", code_version=version)
        t_train = time.perf_counter()
        trained = train_surrogate(spec, data.split(row.data), cache_dir / "surrogates", device=device,
                                  progress=progress, weights_dir=weights_dir)
        timings["train_seconds"] += time.perf_counter() - t_train
        cells = [CellSpec(trained.id, attack, eps) for attack in scenario.attacks for eps in scenario.epsilons_pm1]
        keys = [cell_cache_key(cell, target, data, scenario, version) for cell in cells]
        cached = {key: _cached_cell(cache_dir, key) for key in keys}
        model = classifier = None
        if all(hit is not None for hit in cached.values()):  # a warm re-run never loads the surrogate
            surrogate_auc = next(iter(cached.values()))[0].surrogate_auc_clean
        else:
            model = load_surrogate(trained, spec, device)
            surrogate_auc = auc(_auc_labels(test.y, data.task, k), predict_scores(model, test.x, data.task, device))
            classifier = art_classifier(model, n_logits=spec.n_logits, input_shape=tuple(test.x.shape[1:]),
                                        multilabel=data.task == "multilabel", device=device)
        results.surrogates.append(SurrogateResult(
            id=trained.id, row_id=row_id(row), arch=arch, family=zoo.family(arch), init=row.init, split=row.data,
            seed=row.seed, n_train=trained.n_train, n_val=trained.n_val, val_auc=trained.val_auc,
            test_auc=surrogate_auc, epochs_run=trained.epochs_run, best_epoch=trained.best_epoch,
            train_seconds=trained.train_seconds, from_cache=trained.from_cache,
            atlas=atlas_ids(row, scenario.target.trained_on)))
        log(f"surrogate {trained.id}: {'cached' if trained.from_cache else f'trained in {trained.train_seconds:.0f} s'}, "
            f"test AUC {surrogate_auc:.3f}")
        task_id = progress.add_task(f"attack {trained.id}", total=len(cells)) if progress else None
        for cell, key in zip(cells, keys):
            t_cell = time.perf_counter()
            if cached[key] is None:
                cell_record, arrays = run_cell(cell, row=row, classifier=classifier, model=model, scenario=scenario,
                                               target=target, data=data, clean_scores=clean_scores,
                                               surrogate_clean_auc=surrogate_auc, k=k, device=device,
                                               batch_size=batch_size, adv_cache=cache_dir / "adversarial")
                _store_cell(cache_dir, key, cell_record, arrays)
            else:
                cell_record, arrays = cached[key]
            np.savez_compressed(per_image_dir / f"{_safe_name(cell.id)}.npz", **arrays)
            results.cells.append(cell_record)
            results.target_queries = target.queries
            write_results(results, results_path)
            timings["cells_seconds"] += time.perf_counter() - t_cell
            if progress:
                progress.update(task_id, advance=1)
    results.epsilon_choice = choose_epsilons(results.cells, scenario)
    results.examples = make_examples(results, per_image_dir)
    results.target_queries = target.queries
    timings["total_seconds"] = time.perf_counter() - t0
    results.timings = timings
    results.status = "complete"
    results.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_results(results, results_path)
    return results


def _new_results(scenario: Scenario, scenario_path: Path, command: str, target: Target, data: AuditData,
                 clean_auc: float, device: str) -> AuditResults:
    """The run's record before any cell: scenario, target card and checks, data provenance, environment."""
    test = data.test
    notes = list(data.notes)
    if data.task == "binary" and clean_auc < 0.5:
        notes.append(f"target clean AUC {clean_auc:.3f} < 0.5: check the card's positive_index and the labels")
    return AuditResults(
        status="running", scenario_path=str(scenario_path), scenario=scenario.model_dump(mode="json"),
        scenario_sha256=scenario.content_hash(), command=command,
        target={"path": str(target.path), "name": target.card.name or target.path.name, "sha256": target.sha256,
                "card": target.card.model_dump(mode="json", exclude={"sources"}), "card_sources": target.card.sources,
                "load_check": target.check_report, "device": target.device, "clean_auc": clean_auc},
        data={"source": data.source, "sha256": data.source_sha256, "split_ids_sha256": data.split_ids_sha256,
              "patient_level": data.patient_level, "task": data.task, "class_names": list(data.class_names),
              "image_size": int(test.x.shape[-1]), "channels": int(test.x.shape[1]),
              "split_sizes": {name: int(len(idx)) for name, idx in data.splits.items()},
              "test_size": len(test), "test_positives": int(np.sum(test.y > 0)) if test.y.ndim == 1 else None,
              "test_selection": data.test_selection, "notes": notes},
        environment=environment(device), started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def cell_cache_key(cell: CellSpec, target: Target, data: AuditData, scenario: Scenario, version: str) -> str:
    """Content hash of everything a cell's numbers depend on: a re-run with the same inputs reuses them."""
    parts = [cell.id, target.sha256, data.source_sha256, data.split_ids_sha256, data.test_selection,
             scenario.delivery, scenario.bootstrap.model_dump_json(), str(scenario.seed), str(scenario.gate.specificity),
             version, _measurement_code_version()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


@functools.cache
def _measurement_code_version() -> str:
    """Hash of the code that turns a surrogate into a cell's numbers: changing it invalidates cached cells."""
    from medaudit import attacks, metrics, target

    h = hashlib.sha256()
    for module in (attacks, metrics, target, sys.modules[__name__]):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:12]


def _cached_cell(cache_dir: Path, key: str) -> tuple[CellRecord, dict] | None:
    record_path, arrays_path = cache_dir / "cells" / f"{key}.json", cache_dir / "cells" / f"{key}.npz"
    if not (record_path.is_file() and arrays_path.is_file()):
        return None
    with np.load(arrays_path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return CellRecord.model_validate_json(record_path.read_text()), arrays


def _store_cell(cache_dir: Path, key: str, record: CellRecord, arrays: dict) -> None:
    """Arrays first, then the record, each atomically: a record on disk always has its arrays."""
    folder = cache_dir / "cells"
    atomic_write(folder / f"{key}.npz", lambda f: np.savez_compressed(f, **arrays))
    atomic_write(folder / f"{key}.json", record.model_dump_json())


def _check_resumable(path: Path, scenario: Scenario, target: Target, data: AuditData) -> None:
    """--resume continues the run in `path` only if the scenario, target and data are unchanged."""
    if not path.is_file():
        return
    previous = read_results(path)
    for what, old, new in (("scenario", previous.scenario_sha256, scenario.content_hash()),
                           ("target", previous.target["sha256"], target.sha256),
                           ("data", previous.data["split_ids_sha256"], data.split_ids_sha256)):
        if old != new:
            raise AuditInputError(f"{path}: cannot resume: the {what} changed since that run; use another --out "
                                  "or drop --resume to start over")


def choose_epsilons(cells: list[CellRecord], scenario: Scenario) -> list[EpsilonChoice]:
    """Per attack, the largest epsilon whose mean SSIM (over surrogates) stays at or above the bound."""
    bound = scenario.perceptibility.min_mean_ssim
    choices = []
    for attack in dict.fromkeys(c.attack_id for c in cells):
        curve = [(eps, float(np.mean([c.mean_ssim for c in cells if c.attack_id == attack and c.epsilon_pm1 == eps])))
                 for eps in sorted({c.epsilon_pm1 for c in cells if c.attack_id == attack})]
        under = [eps for eps, ssim in curve if ssim >= bound]
        if under:
            chosen = max(under)
            ssim = dict(curve)[chosen]
            reason = f"largest epsilon with mean SSIM >= {bound:g} (SSIM {ssim:.3f} at epsilon {chosen:g})"
        else:
            chosen, reason = None, (f"no epsilon kept mean SSIM >= {bound:g} (SSIM {curve[0][1]:.3f} at the smallest, "
                                    f"{curve[0][0]:g}); extend `epsilons_pm1` downward")
        choices.append(EpsilonChoice(attack_id=attack, curve=curve, bound=bound, chosen_epsilon_pm1=chosen,
                                     reason=reason))
    return choices


def _png(x_pm1: np.ndarray) -> str:
    arr = np.rint((np.asarray(x_pm1).transpose(1, 2, 0) + 1) * 127.5).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def make_examples(results: AuditResults, per_image_dir: Path) -> list[Example]:
    """Original, adversarial and amplified perturbation at each attack's chosen epsilon (first row's surrogate)."""
    clean = np.load(per_image_dir / "clean.npz")
    examples = []
    for choice in results.epsilon_choice:
        if choice.chosen_epsilon_pm1 is None:
            continue
        cell = next(c for c in results.cells if c.attack_id == choice.attack_id and c.epsilon_pm1 == choice.chosen_epsilon_pm1)
        arrays = np.load(per_image_dir / f"{_safe_name(cell.id)}.npz")
        amplification = float(np.floor(0.5 / max(cell.max_abs_delta, 1e-6)))
        for j, index in enumerate(clean["example_index"]):
            original, adversarial = clean["example_original"][j], arrays["example_adversarial"][j]
            label = clean["labels"][index]
            examples.append(Example(
                row_id=cell.row_id, attack_id=cell.attack_id, epsilon_pm1=cell.epsilon_pm1,
                label=label.tolist() if np.ndim(label) else int(label), original_png=_png(original),
                adversarial_png=_png(adversarial), perturbation_png=_png(np.clip((adversarial - original) * amplification, -1, 1)),
                amplification=amplification, score_clean=float(np.ravel(clean["scores"][index])[0]),
                score_adversarial=float(np.ravel(arrays["adversarial_scores"][index])[0])))
    return examples
