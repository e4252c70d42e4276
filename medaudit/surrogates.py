"""Surrogate models: the attacker's proxies, trained per a content-hashed spec and cached by it.

`train_surrogate(spec, images, cache_dir)` is a pure function of its spec and data: it can run in
any process (or a Ray worker); a second call with the same spec loads the cached weights.
Training: Adam with exponential learning-rate decay, cross-entropy (BCE for multi-label),
class-balanced sampling, augmentation, early stopping on validation AUC (Bortsova et al. 2021, 3.3).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medaudit import zoo
from medaudit.data import Images
from medaudit.errors import AuditInputError
from medaudit.files import atomic_write
from medaudit.metrics import auc
from medaudit.scenario import TrainingSection


@functools.cache
def code_version() -> str:
    """Hash of the code that defines a trained surrogate: a change here invalidates the cache. Taken
    once per process, so editing the files during a run cannot split one run's cache keys."""
    h = hashlib.sha256()
    for module in (zoo, __import__(__name__, fromlist=["_"])):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class SurrogateSpec:
    """Everything that determines a trained surrogate; its id is the cache key."""

    arch: str  # zoo name (resolved: never `same`)
    init: str  # imagenet | random
    split: str  # d1 | d2 | d2/2 | d1/10 | full
    seed: int
    training: dict  # TrainingSection as plain data
    task: str
    n_logits: int
    in_channels: int
    image_size: int
    data_sha256: str  # source file + split ids: the images this surrogate learns from
    code_version: str

    @property
    def id(self) -> str:
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.arch}-{self.init}-{self.split.replace('/', 'over')}-s{self.seed}-{digest}"


@dataclass(frozen=True)
class SurrogateRecord:
    """A trained surrogate: where its weights are and how well it learned."""

    id: str
    arch: str
    init: str
    split: str
    seed: int
    weights_path: str
    val_auc: float  # on its own held-out validation images (early-stopping criterion)
    epochs_run: int
    best_epoch: int
    n_train: int
    n_val: int
    train_seconds: float
    device: str
    from_cache: bool


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _val_split(images: Images, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    groups = np.unique(images.groups)
    order = groups[np.random.default_rng(seed + 7919).permutation(len(groups))]
    n_val = max(1, int(round(len(order) * fraction)))
    val = np.isin(images.groups, order[:n_val])
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
            xb = torch.from_numpy(x[start:start + batch_size]).to(device).contiguous(memory_format=torch.channels_last)
            logits = model(xb).float()
            probs = torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, 1)
            out.append(probs.cpu().numpy().astype(np.float64))
    probs = np.concatenate(out)
    return probs[:, 1] if task == "binary" else probs


def build_surrogate(spec: SurrogateSpec, weights_dir: Path | None = None) -> torch.nn.Module:
    return zoo.build(spec.arch, init=spec.init, num_outputs=spec.n_logits, in_channels=spec.in_channels,
                     image_size=spec.image_size, weights_dir=weights_dir)


def load_surrogate(record: SurrogateRecord, spec: SurrogateSpec, device: str) -> torch.nn.Module:
    model = zoo.build(spec.arch, init="random", num_outputs=spec.n_logits, in_channels=spec.in_channels,
                      image_size=spec.image_size)
    model.load_state_dict(torch.load(record.weights_path, map_location="cpu", weights_only=True))
    return model.to(device).to(memory_format=torch.channels_last).eval()


def train_surrogate(spec: SurrogateSpec, images: Images, cache_dir: Path, *, weights_dir: Path | None = None,
                    device: str | None = None, progress=None) -> SurrogateRecord:
    """Train (or load from `cache_dir`) the surrogate `spec` describes on `images` (its split)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    record_path = cache_dir / f"{spec.id}.json"
    weights_path = cache_dir / f"{spec.id}.pt"
    if record_path.is_file() and weights_path.is_file():  # paths are relative to the cache: it can move
        return SurrogateRecord(**{**json.loads(record_path.read_text()), "from_cache": True,
                                  "weights_path": str(weights_path)})
    device = device or default_device()
    cfg = TrainingSection(**spec.training)
    torch.manual_seed(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    train_idx, val_idx = _val_split(images, cfg.val_fraction, spec.seed)
    x_tr, y_tr = images.x[train_idx], images.y[train_idx]
    x_val, y_val = images.x[val_idx], images.y[val_idx]

    model = build_surrogate(spec, weights_dir).to(device).to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=cfg.lr_decay)
    if cfg.balanced_sampling and spec.task != "multilabel":
        counts = np.bincount(y_tr.astype(np.int64), minlength=spec.n_logits).astype(np.float64)
        weights = 1.0 / np.maximum(counts, 1)[y_tr.astype(np.int64)]
        weights /= weights.sum()
    else:
        weights = None
    steps = max(1, len(x_tr) // cfg.batch_size)
    best_auc, best_state, best_epoch, stale, epoch = -1.0, None, 0, 0, 0
    started = time.perf_counter()
    task_id = progress.add_task(f"train {spec.id}", total=cfg.epochs) if progress else None
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for _ in range(steps):
            idx = rng.choice(len(x_tr), size=min(cfg.batch_size, len(x_tr)), replace=weights is not None, p=weights)
            xb = _augment(torch.from_numpy(x_tr[idx]), cfg.augment, gen).to(device)
            xb = xb.contiguous(memory_format=torch.channels_last)
            loss = _loss(model(xb), torch.from_numpy(y_tr[idx]).to(device), spec.task)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        scheduler.step()
        val_auc = _safe_auc(y_val, predict_scores(model, x_val, spec.task, device), spec.task)
        if progress:
            progress.update(task_id, advance=1, description=f"train {spec.id} val AUC {val_auc:.3f}")
        if val_auc > best_auc:
            best_auc, best_epoch, stale = val_auc, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if progress:
        progress.update(task_id, completed=cfg.epochs)
    atomic_write(weights_path, lambda f: torch.save(best_state, f))
    record = SurrogateRecord(id=spec.id, arch=spec.arch, init=spec.init, split=spec.split, seed=spec.seed,
                             weights_path=str(weights_path), val_auc=best_auc, epochs_run=epoch,
                             best_epoch=best_epoch, n_train=len(x_tr), n_val=len(x_val),
                             train_seconds=time.perf_counter() - started, device=device, from_cache=False)
    atomic_write(record_path, json.dumps(asdict(record), indent=1))
    return record


def _safe_auc(y: np.ndarray, scores: np.ndarray, task: str) -> float:
    """Validation AUC (the early-stopping criterion); a validation set with one class cannot rank."""
    y_eval = np.eye(scores.shape[1], dtype=np.int64)[y] if task == "multiclass" else y
    value = auc(y_eval, scores)
    if math.isnan(value):
        raise AuditInputError(f"surrogate validation images ({len(y)}) hold one class only; raise "
                              "`training.val_fraction` or use a larger development split")
    return value
