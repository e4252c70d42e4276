"""Surrogate models: the attacker's proxies, trained per a content-hashed spec and cached by it.

`train_surrogate(spec, images, cache_dir)` is a pure function of its spec and data: it can run in
any process (or a Ray worker); a second call with the same spec loads the cached weights.
Training: Adam until validation AUC stops improving (plateau early stopping under an epoch budget),
the learning rate lowered on plateau, cross-entropy (BCE for multi-label), class-balanced sampling,
augmentation; one fixed validation split per development split and data seed, shared by every model
trained on it whatever its own seed (Bortsova et al. 2021, 3.3 and 4.3).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from medaudit.attackers.zoo import build
from medaudit.core import AuditInputError, atomic_write, auc, code_version, content_key
from medaudit.data import Images
from medaudit.records import EpochRecord, Record
from medaudit.scenario import Init, TrainingSection


class SurrogateSpec(Record):
    """Everything that determines a trained model (a surrogate, or a target the demo trains); its key is the
    cache key, and it names the code that trains it through `cache.content_key`."""

    arch: str  # zoo name (resolved: never `same`)
    init: Init
    split: str  # the development split it learns from: d1 | d2 | d2/2 | d1/10 | full (or an experiment's own)
    seed: int
    training: TrainingSection
    task: str
    n_logits: int
    in_channels: int
    image_size: int
    data_sha256: str  # source file + split ids: the images this model learns from
    split_seed: int = 0  # the data seed that drew the development splits (scenario.seed): fixes the validation split

    @property
    def key(self) -> str:
        """Its cache key, in the one scheme every cache entry uses (`cache.content_key`)."""
        return content_key("surrogate", self.model_dump(mode="json"))

    @property
    def id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.arch}-{self.init}-{self.split.replace('/', 'over')}-s{self.seed}-{digest}"


StopReason = Literal["plateau", "budget"]


class SurrogateRecord(Record):
    """A trained model: where its weights are, how well it learned, how its training went and which code did it."""

    id: str
    arch: str
    init: str
    split: str
    seed: int
    weights_path: str  # set when read back: the cache folder may have moved
    val_auc: float  # best validation AUC (the kept weights' epoch)
    epochs_run: int
    best_epoch: int  # the epoch whose weights were kept
    stop_reason: StopReason  # plateau: `patience` epochs without a new best; budget: ran all `epochs`
    curve: tuple[EpochRecord, ...]  # one entry per epoch run
    n_train: int
    n_val: int
    val_groups_sha256: str  # the validation images' patient ids, hashed: equal for all models validated alike
    train_seconds: float
    device: str
    trained_by: str  # the code commit of the process that trained it (`provenance.code_version`)
    from_cache: bool  # set when read back


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def validation_split(groups: np.ndarray, fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of a split whose images belong to `groups` (patient ids): the
    round(fraction * patients) patients whose keyed hash of (split_seed, id) is smallest go to validation.
    It depends on the patients and the data seed only, so every model trained on a split, whatever its
    own seed, validates on the same images, and a patient keeps its side in any split that holds it."""
    unique = np.unique(groups)
    keys = np.array(
        [
            int.from_bytes(
                hashlib.blake2b(str(g).encode(), digest_size=8, key=str(split_seed).encode()).digest(), "little"
            )
            for g in unique
        ],
        dtype=np.uint64,
    )
    n_val = min(len(unique) - 1, max(1, int(round(len(unique) * fraction))))
    val = np.isin(groups, unique[np.argsort(keys, kind="stable")[:n_val]])
    return np.flatnonzero(~val), np.flatnonzero(val)


def _augment(x: torch.Tensor, kinds: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """Random flips, small rotations/translations and brightness/contrast changes; stays in [-1, 1]."""
    n = x.shape[0]
    if "flip" in kinds:
        flip = torch.rand(n, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if "rotate" in kinds or "translate" in kinds:
        angle = (torch.rand(n, generator=gen) - 0.5) * (math.pi / 9 if "rotate" in kinds else 0.0)  # +/-10 deg
        shift = (torch.rand(n, 2, generator=gen) - 0.5) * (0.2 if "translate" in kinds else 0.0)  # +/-5% side
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x + 1, grid, padding_mode="zeros", align_corners=False) - 1  # pad with black
    if "colour" in kinds:
        scale = 1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.2
        offset = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.2
        x = (x * scale + offset).clamp(-1, 1)
    return x


def _loss(logits: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(logits, y.float())
    return F.cross_entropy(logits, y.long())


def predict_scores(model: torch.nn.Module, x: np.ndarray, task: str, device: str, batch_size: int = 256) -> np.ndarray:
    """Surrogate scores in the target's score space: P(positive) for binary, (N, K) otherwise."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            xb = (
                torch.from_numpy(x[start : start + batch_size]).to(device).contiguous(memory_format=torch.channels_last)
            )
            logits = model(xb).float()
            probs = torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, 1)
            out.append(probs.cpu().numpy().astype(np.float64))
    probs = np.concatenate(out)
    return probs[:, 1] if task == "binary" else probs


def build_surrogate(spec: SurrogateSpec, weights_dir: Path | None = None) -> torch.nn.Module:
    return build(
        spec.arch,
        init=spec.init,
        num_outputs=spec.n_logits,
        in_channels=spec.in_channels,
        image_size=spec.image_size,
        weights_dir=weights_dir,
    )


def load_surrogate(record: SurrogateRecord, spec: SurrogateSpec, device: str) -> torch.nn.Module:
    model = build(
        spec.arch, init="random", num_outputs=spec.n_logits, in_channels=spec.in_channels, image_size=spec.image_size
    )
    model.load_state_dict(torch.load(record.weights_path, map_location="cpu", weights_only=True))
    return model.to(device).to(memory_format=torch.channels_last).eval()


def next_learning_rate(lr: float, stale_epochs: int, cfg: TrainingSection) -> float:
    """The learning rate for the next epoch: times `lr_decay` always, and times `lr_plateau_factor`
    each time the epochs without a new best reach a multiple of `lr_plateau_patience`."""
    lr *= cfg.lr_decay
    if stale_epochs > 0 and stale_epochs % cfg.lr_plateau_patience == 0:
        lr *= cfg.lr_plateau_factor
    return lr


def train_surrogate(
    spec: SurrogateSpec,
    images: Images,
    cache_dir: Path,
    *,
    weights_dir: Path | None = None,
    device: str | None = None,
    progress=None,
) -> SurrogateRecord:
    """Train (or load from `cache_dir`) the surrogate `spec` describes on `images` (its split)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    record_path = cache_dir / f"{spec.key}.json"
    weights_path = cache_dir / f"{spec.key}.pt"
    if record_path.is_file() and weights_path.is_file():  # paths are relative to the cache: it can move
        stored = SurrogateRecord.model_validate_json(record_path.read_text())
        return stored.model_copy(update={"weights_path": str(weights_path), "from_cache": True})
    device = device or default_device()
    cfg = spec.training
    torch.manual_seed(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    train_idx, val_idx = validation_split(images.groups, cfg.val_fraction, spec.split_seed)
    x_tr, y_tr = images.x[train_idx], images.y[train_idx]
    x_val, y_val = images.x[val_idx], images.y[val_idx]

    model = build_surrogate(spec, weights_dir).to(device).to(memory_format=torch.channels_last)
    lr = cfg.learning_rate
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    if cfg.balanced_sampling and spec.task != "multilabel":
        counts = np.bincount(y_tr.astype(np.int64), minlength=spec.n_logits).astype(np.float64)
        weights = 1.0 / np.maximum(counts, 1)[y_tr.astype(np.int64)]
        weights /= weights.sum()
    else:
        weights = None
    steps = max(cfg.min_steps_per_epoch, len(x_tr) // cfg.batch_size)
    best_auc, best_state, best_epoch, stale = -1.0, None, 0, 0
    curve: list[EpochRecord] = []
    stop_reason: StopReason = "budget"
    started = time.perf_counter()
    task_id = progress.add_task(f"train {spec.id}", total=cfg.epochs) if progress else None
    for epoch in range(1, cfg.epochs + 1):
        epoch_started = time.perf_counter()
        for group in optimiser.param_groups:
            group["lr"] = lr
        model.train()
        losses = []
        for _ in range(steps):
            idx = rng.choice(len(x_tr), size=min(cfg.batch_size, len(x_tr)), replace=weights is not None, p=weights)
            xb = _augment(torch.from_numpy(x_tr[idx]), cfg.augment, gen).to(device)
            xb = xb.contiguous(memory_format=torch.channels_last)
            loss = _loss(model(xb), torch.from_numpy(y_tr[idx]).to(device), spec.task)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        val_auc = _safe_auc(y_val, predict_scores(model, x_val, spec.task, device), spec.task)
        curve.append(
            EpochRecord(
                epoch=epoch,
                train_loss=float(np.mean(losses)),
                val_auc=val_auc,
                learning_rate=lr,
                seconds=time.perf_counter() - epoch_started,
            )
        )
        if progress:
            progress.update(task_id, advance=1, description=f"train {spec.id} val AUC {val_auc:.3f}")
        if val_auc > best_auc + cfg.min_delta_auc or best_state is None:
            best_auc, best_epoch, stale = val_auc, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        elif epoch * steps >= cfg.min_steps_before_plateau:  # earlier epochs' validation AUC may be noise
            stale += 1
            if stale >= cfg.patience:
                stop_reason = "plateau"
                break
        lr = next_learning_rate(lr, stale, cfg)
    if progress:
        progress.update(task_id, completed=cfg.epochs)
    atomic_write(weights_path, lambda f: torch.save(best_state, f))
    record = SurrogateRecord(
        id=spec.id,
        arch=spec.arch,
        init=spec.init,
        split=spec.split,
        seed=spec.seed,
        weights_path=str(weights_path),
        val_auc=best_auc,
        epochs_run=len(curve),
        best_epoch=best_epoch,
        stop_reason=stop_reason,
        curve=tuple(curve),
        n_train=len(x_tr),
        n_val=len(x_val),
        val_groups_sha256=_groups_sha256(images.groups[val_idx]),
        train_seconds=time.perf_counter() - started,
        device=device,
        trained_by=str(code_version()),
        from_cache=False,
    )
    atomic_write(record_path, record.model_dump_json(indent=1))
    return record


def _groups_sha256(groups: np.ndarray) -> str:
    return hashlib.sha256("\n".join(sorted(map(str, np.unique(groups)))).encode()).hexdigest()


def _safe_auc(y: np.ndarray, scores: np.ndarray, task: str) -> float:
    """Validation AUC (the early-stopping criterion); a validation set with one class cannot rank."""
    y_eval = np.eye(scores.shape[1], dtype=np.int64)[y] if task == "multiclass" else y
    value = auc(y_eval, scores)
    if math.isnan(value):
        raise AuditInputError(
            f"surrogate validation images ({len(y)}) hold one class only; raise "
            "`training.val_fraction` or use a larger development split"
        )
    return value
