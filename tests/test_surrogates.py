"""Surrogate training to a validation-AUC plateau: stop reasons, learning curves, the fixed validation split,
the cache key and the learning-rate schedule. Tiny CNNs on 16x16 generated images (seconds each)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medaudit.attackers.surrogates import SurrogateSpec, next_learning_rate, train_surrogate, validation_split
from medaudit.data.audit_data import Images
from medaudit.scenario.threat_model import TrainingSection


def square_problem(n: int, *, amplitude: float, noise: float, seed: int = 0) -> Images:
    """Grey 16x16 images of noise; positives carry a brighter 4x4 square at a fixed place. Two images per patient."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, noise, (n, 1, 16, 16))
    x[y == 1, :, 4:8, 4:8] += amplitude
    return Images(np.clip(x, -1, 1).astype(np.float32), y, np.array([f"p{i // 2}" for i in range(n)]))


def spec(training: TrainingSection, *, seed: int = 0, split_seed: int = 0) -> SurrogateSpec:
    return SurrogateSpec(
        arch="tiny_cnn",
        init="random",
        split="d2",
        seed=seed,
        training=training,
        task="binary",
        n_logits=2,
        in_channels=1,
        image_size=16,
        data_sha256="generated",
        split_seed=split_seed,
    )


def test_learnable_problem_rises_then_stops_on_plateau(tmp_path):
    images = square_problem(400, amplitude=0.25, noise=0.5)
    training = TrainingSection(learning_rate=3e-4, batch_size=32, augment=(), patience=3, min_steps_before_plateau=0)
    record = train_surrogate(spec(training), images, tmp_path, device="cpu")
    aucs = [e.val_auc for e in record.curve]
    assert record.stop_reason == "plateau"
    assert record.epochs_run == len(record.curve) == record.best_epoch + training.patience < training.epochs
    assert record.val_auc == max(aucs) > aucs[0] + 0.05  # it rose ...
    assert max(aucs[record.best_epoch :]) <= record.val_auc + training.min_delta_auc  # ... then stayed flat
    assert [e.epoch for e in record.curve] == list(range(1, record.epochs_run + 1))
    assert all(e.train_loss > 0 and e.seconds > 0 for e in record.curve)
    assert record.curve[0].learning_rate == training.learning_rate > record.curve[-1].learning_rate


def test_epochs_without_a_new_best_count_only_after_min_steps_before_plateau(tmp_path):
    images = square_problem(200, amplitude=0.25, noise=0.5)  # 180 training images: min_steps_per_epoch, 10 steps
    # min_delta_auc 1.0: no epoch after the first is a new best, so every later epoch that counts is stale
    base = dict(augment=(), patience=3, lr_plateau_patience=2, min_delta_auc=1.0, learning_rate=1e-3)
    early = train_surrogate(spec(TrainingSection(**base, min_steps_before_plateau=0)), images, tmp_path, device="cpu")
    late = train_surrogate(spec(TrainingSection(**base, min_steps_before_plateau=30)), images, tmp_path, device="cpu")
    # counting from epoch 2: stale 1, 2 (rate halved), 3 -> stop after epoch 4
    assert (early.stop_reason, early.epochs_run, early.best_epoch) == ("plateau", 4, 1)
    assert [e.learning_rate for e in early.curve] == [1e-3, 1e-3, 1e-3, 5e-4]
    # epochs 1-2 are 10 and 20 steps (< 30): they do not count; epochs 3, 4 (halved after), 5 -> stop after epoch 5
    assert (late.stop_reason, late.epochs_run, late.best_epoch) == ("plateau", 5, 1)
    assert [e.learning_rate for e in late.curve] == [1e-3, 1e-3, 1e-3, 1e-3, 5e-4]


def test_budget_of_two_epochs_reports_budget_and_reloads_from_cache(tmp_path):
    images = square_problem(200, amplitude=0.25, noise=0.5)
    training = TrainingSection(epochs=2, augment=())
    record = train_surrogate(spec(training), images, tmp_path, device="cpu")
    assert (record.stop_reason, record.epochs_run, len(record.curve), record.from_cache) == ("budget", 2, 2, False)
    cached = train_surrogate(spec(training), images, tmp_path, device="cpu")
    assert cached == record.model_copy(update={"from_cache": True})  # the curve survives the JSON round trip, typed
    assert json.loads((tmp_path / f"{spec(training).key}.json").read_text())["stop_reason"] == "budget"


def test_validation_split_is_fixed_by_patients_and_data_seed_not_by_model_seed(tmp_path):
    images = square_problem(200, amplitude=0.25, noise=0.5)
    training = TrainingSection(epochs=1, augment=())
    runs = [train_surrogate(spec(training, seed=s), images, tmp_path, device="cpu") for s in (0, 1)]
    assert runs[0].val_groups_sha256 == runs[1].val_groups_sha256 and runs[0].id != runs[1].id
    other_seed = train_surrogate(spec(training, split_seed=1), images, tmp_path, device="cpu")
    assert other_seed.val_groups_sha256 != runs[0].val_groups_sha256
    other_split = train_surrogate(spec(training), images.subset(np.arange(100, 200)), tmp_path / "d1", device="cpu")
    assert other_split.val_groups_sha256 != runs[0].val_groups_sha256


def test_validation_split_keeps_patients_whole_and_ignores_image_order():
    groups = np.array(["a", "a", "b", "c", "c", "c", "d", "e", "f", "g"])  # 7 patients
    train, val = validation_split(groups, 0.3, split_seed=0)  # round(7 * 0.3) = 2 patients
    assert len(np.unique(groups[val])) == 2 and not set(groups[val]) & set(groups[train])
    assert sorted(np.concatenate([train, val])) == list(range(10))
    order = np.random.default_rng(0).permutation(10)
    _, val_shuffled = validation_split(groups[order], 0.3, split_seed=0)
    assert set(groups[order][val_shuffled]) == set(groups[val])
    assert validation_split(np.array(["a", "a"]), 0.3, split_seed=0)[1].size == 0  # one patient: all train


def test_cache_key_changes_with_training_settings_and_split_seed():
    base = spec(TrainingSection())
    assert (spec(TrainingSection()).id, spec(TrainingSection()).key) == (base.id, base.key)
    for changed in (
        spec(TrainingSection(patience=6)),
        spec(TrainingSection(lr_plateau_factor=0.2)),
        spec(TrainingSection(epochs=30)),
        spec(TrainingSection(), split_seed=1),
    ):
        assert changed.id != base.id and changed.key != base.key


@pytest.mark.parametrize(("stale", "expected"), [(0, 9e-4), (1, 9e-4), (2, 4.5e-4), (3, 9e-4), (4, 4.5e-4)])
def test_learning_rate_decays_each_epoch_and_halves_every_second_stale_epoch(stale, expected):
    training = TrainingSection(learning_rate=1e-3, lr_decay=0.9, lr_plateau_factor=0.5, lr_plateau_patience=2)
    assert next_learning_rate(1e-3, stale, training) == pytest.approx(expected)


def test_learning_rate_too_small_to_learn_leaves_the_curve_flat(tmp_path):
    """The model stays at its random initialisation: its validation AUC does not move from epoch to epoch."""
    images = square_problem(200, amplitude=0.6, noise=0.3)
    record = train_surrogate(
        spec(TrainingSection(learning_rate=1e-7, epochs=3, augment=())), images, tmp_path, device="cpu"
    )
    aucs = [e.val_auc for e in record.curve]
    assert max(aucs) - min(aucs) < 0.01
    learned = train_surrogate(
        spec(TrainingSection(learning_rate=1e-2, epochs=3, augment=())), images, tmp_path, device="cpu"
    )
    assert learned.val_auc > 0.95 > record.val_auc + 0.3
