"""The query tier's Square against linear targets whose AUC-optimal attack is known in closed form.

For a linear logit z = w.x + b every image's extremum in the L-inf ball is x - epsilon sign(w) (2y - 1), clipped to
[-1, 1]: positives pushed down, negatives up. Square sees only the target's probabilities and must come close to
that optimum's AUC within its query budget, spending exactly that budget on every image, misclassified ones
included. Generated images only; the whole file runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medaudit.attacks import Crafting, Square
from medaudit.attacks.objective import logits_from_probabilities, margin
from medaudit.attacks.square import QUERIES_BEFORE_STEPS, _share, margin_of_scores
from medaudit.core.metrics import auc, per_class_auc

SIDE = 28  # 28x28x1 images, MedMNIST's size
N_IMAGES = 200  # half positive
QUERIES = 1000  # Square's default budget per image and epsilon
EPSILONS = (0.01, 0.03, 0.05)  # [-1, 1] units
TOLERANCE = 0.03  # Square's AUC may sit this far above the optimum's
NOISE, SIGNAL = 0.15, 0.025  # smooth noise and class pattern amplitudes: clean AUC ~0.87, optimum 0.23 at 0.05
LOGIT_SD = 2.0  # the linear logit's spread over the images: probabilities far from 0 and 1


def _smooth(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """n smooth random 28x28 fields, each scaled to unit standard deviation."""
    f = gaussian_filter(rng.standard_normal((n, SIDE, SIDE)), (0, sigma, sigma), mode="wrap")
    return f / f.std(axis=(1, 2), keepdims=True)


class LinearTarget:
    """A linear model z = W x + b seen through its probabilities; counts every image sent and each batch."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray, head: str):
        self.weights, self.bias, self.head = weights.reshape(len(weights), -1), bias, head  # (K, pixels), (K,)
        self.sent: list[np.ndarray] = []  # a 64-bit hash of each image sent, batch by batch
        self.batches: list[int] = []

    def logits(self, x: np.ndarray) -> np.ndarray:
        # row by row (no BLAS), so an image's score does not depend on the batch it came in
        flat = x.reshape(len(x), 1, -1).astype(np.float64)
        return (flat * self.weights[None]).sum(-1) + self.bias

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x)
        if self.head == "binary":  # one logit, a two-class softmax: [1 - sigmoid(z), sigmoid(z)]
            p = 1 / (1 + np.exp(-np.concatenate([-z, z], 1)))
        elif self.head == "softmax":
            e = np.exp(z - z.max(1, keepdims=True))
            p = e / e.sum(1, keepdims=True)
        else:  # a sigmoid per label
            p = 1 / (1 + np.exp(-z))
        return p.astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.sent.append(_hashes(x))
        self.batches.append(len(x))
        return self.probabilities(x)

    def reset(self) -> None:
        self.sent, self.batches = [], []


HASH_KEYS = np.random.default_rng(12345).integers(1, 2**63, SIDE * SIDE, dtype=np.uint64) | np.uint64(1)


def _hashes(x: np.ndarray) -> np.ndarray:
    """(N,) uint64: a multiply-add hash of each image's float32 bits, modulo 2**64 (equal images, equal hashes)."""
    bits = np.ascontiguousarray(x, np.float32).reshape(len(x), -1).view(np.uint32).astype(np.uint64)
    return (bits * HASH_KEYS).sum(1)


def _sent(target: LinearTarget) -> np.ndarray:
    return np.concatenate(target.sent)


def _problem(n_classes: int, head: str, n: int, seed: int = 0):
    """Images carrying their classes' smooth patterns over smooth noise, and a dense linear target built on them.
    Binary: y in {0, 1}, one logit; softmax: y in 0..K-1; sigmoid: y 0/1 vectors (N, K)."""
    rng = np.random.default_rng(seed)
    patterns = _smooth(rng, n_classes, 3)
    weights = patterns + 0.5 * _smooth(rng, n_classes, 2)  # dense: every pixel weighs, smoothly
    if head == "binary":
        y = np.repeat([0, 1], n // 2)
        signal = (2 * y - 1)[:, None, None] * patterns[0]
    elif head == "softmax":
        y = np.arange(n) % n_classes
        signal = patterns[y]
    else:
        y = rng.integers(0, 2, (n, n_classes))
        signal = np.einsum("nk,khw->nhw", 2 * y - 1, patterns)
    x = np.clip(NOISE * _smooth(rng, n, 2) + SIGNAL * signal, -1, 1).astype(np.float32)[:, None]
    target = LinearTarget(weights, np.zeros(n_classes), head)
    z = target.logits(x)
    target.weights *= (LOGIT_SD / z.std(0))[:, None]
    target.bias = -np.median(target.logits(x), 0)
    return target, x, y


def _how(n_logits: int, *, multilabel: bool = False, batch_size: int = 64, seed: int = 0) -> Crafting:
    return Crafting(n_logits=n_logits, multilabel=multilabel, batch_size=batch_size, seed=seed, device="cpu")


@pytest.fixture(scope="module")
def binary():
    """The binary linear problem attacked at each epsilon, one craft per epsilon with its queries counted."""
    target, x, y = _problem(1, "binary", N_IMAGES)
    crafted, queries = {}, {}
    for eps in EPSILONS:
        target.reset()
        crafted[eps] = Square(name="square", queries_per_image=QUERIES).craft(target, x, y, (eps,), _how(2))[eps]
        queries[eps] = (_sent(target), list(target.batches))
    return target, x, y, crafted, queries


def test_square_comes_within_tolerance_of_the_auc_optimal_attack_on_a_linear_target(binary):
    target, x, y, crafted, _ = binary
    score = lambda images: target.probabilities(images)[:, 1]  # noqa: E731
    clean = auc(y, score(x))
    assert 0.85 <= clean <= 0.95
    w_sign = np.sign(target.weights[0]).reshape(x.shape[1:])
    for eps in EPSILONS:
        optimal = auc(y, score(np.clip(x - eps * w_sign * (2 * y - 1)[:, None, None, None], -1, 1)))
        reached = auc(y, score(crafted[eps].x_adv))
        print(f"eps {eps}: clean AUC {clean:.4f}, optimum {optimal:.4f}, Square {reached:.4f}")
        assert optimal <= reached <= optimal + TOLERANCE
        assert crafted[eps].max_abs_delta <= eps + 1e-6


def test_square_spends_exactly_its_budget_on_every_image_and_sends_no_point_twice(binary):
    _, x, _, _, queries = binary
    for sent, batches in queries.values():
        assert len(sent) == QUERIES * len(x)  # per image: the clean image, the stripes, QUERIES - 2 steps
        assert max(batches) <= 64
        assert len(np.unique(sent)) == len(sent)


def test_every_image_is_pushed_towards_its_wrong_side_misclassified_ones_included(binary):
    target, x, y, crafted, _ = binary
    clean = target.probabilities(x)[:, 1]
    wrong_positives, wrong_negatives = (y == 1) & (clean < 0.5), (y == 0) & (clean > 0.5)
    assert wrong_positives.sum() >= 5 and wrong_negatives.sum() >= 5
    for eps in EPSILONS:
        attacked = target.probabilities(crafted[eps].x_adv)[:, 1]
        assert auc(y, attacked) <= auc(y, clean)
        assert np.all(attacked[y == 1] <= clean[y == 1]) and np.all(attacked[y == 0] >= clean[y == 0])
        assert np.all(attacked[wrong_positives] < clean[wrong_positives])  # already wrong, pushed further
        assert np.all(attacked[wrong_negatives] > clean[wrong_negatives])


def test_an_image_no_perturbation_helps_comes_back_clean():
    _, x, y = _problem(1, "binary", 20)

    def surer(images):  # any change to a test image makes the target surer of its true class
        d2 = ((images.reshape(len(images), 1, -1) - x.reshape(1, len(x), -1)) ** 2).sum(-1)
        z = (1 + 10 * d2.min(1)) * (2 * y[d2.argmin(1)] - 1)
        return (1 / (1 + np.exp(-np.stack([-z, z], 1)))).astype(np.float32)

    out = Square(name="square", queries_per_image=50).craft(surer, x, y, (0.03,), _how(2))[0.03]
    np.testing.assert_array_equal(out.x_adv, x)
    assert out.max_abs_delta == 0.0


def test_multiclass_square_raises_every_margin_and_lowers_each_class_auc():
    target, x, y = _problem(3, "softmax", 90)
    eps, queries = 0.03, 300
    x_adv = Square(name="square", queries_per_image=queries).craft(target, x, y, (eps,), _how(3))[eps].x_adv
    assert len(_sent(target)) == queries * len(x)
    clean, attacked = target.probabilities(x), target.probabilities(x_adv)
    rise = margin_of_scores(attacked, y, False) - margin_of_scores(clean, y, False)
    assert np.all(rise >= 0) and rise.mean() > 1.0
    one_hot = np.eye(3)[y]
    assert np.all(np.array(per_class_auc(one_hot, attacked)) < np.array(per_class_auc(one_hot, clean)) - 0.05)


def test_multilabel_square_pushes_every_label_towards_its_wrong_side():
    target, x, y = _problem(2, "sigmoid", 80)
    eps, queries = 0.03, 300
    how = _how(2, multilabel=True)
    x_adv = Square(name="square", queries_per_image=queries).craft(target, x, y, (eps,), how)[eps].x_adv
    assert len(_sent(target)) == queries * len(x)
    towards_wrong = -(2 * y - 1) * (target.logits(x_adv) - target.logits(x))  # (N, labels), > 0: the wrong way
    assert np.all(towards_wrong.sum(1) >= 0)
    assert np.all(towards_wrong.mean(0) > 0.5) and np.all((towards_wrong > 0).mean(0) > 0.9)
    clean, attacked = per_class_auc(y, target.probabilities(x)), per_class_auc(y, target.probabilities(x_adv))
    assert np.all(np.array(attacked) < np.array(clean) - 0.05)


def test_the_same_seed_gives_the_same_images_whatever_the_batch_size():
    target, x, y = _problem(1, "binary", 40)
    attack = Square(name="square", queries_per_image=60)
    runs = {
        (seed, batch): attack.craft(target, x, y, (0.03,), _how(2, batch_size=batch, seed=seed))[0.03].x_adv
        for seed, batch in [(0, 64), (0, 64), (0, 16), (1, 64)]
    }
    np.testing.assert_array_equal(runs[(0, 16)], runs[(0, 64)])
    again = attack.craft(target, x, y, (0.03,), _how(2))[0.03].x_adv
    np.testing.assert_array_equal(again, runs[(0, 64)])
    assert not np.array_equal(runs[(1, 64)], runs[(0, 64)])  # the seed draws the squares
    # an epsilon is crafted from the seed alone: with others beside it, it comes out the same
    both = attack.craft(target, x, y, (0.01, 0.03), _how(2))
    np.testing.assert_array_equal(both[0.03].x_adv, runs[(0, 64)])


@pytest.mark.parametrize("queries", [QUERIES_BEFORE_STEPS + 1, 12, 57])
def test_small_budgets_are_spent_exactly(queries):
    target, x, y = _problem(1, "binary", 20)
    Square(name="square", queries_per_image=queries).craft(target, x, y, (0.02, 0.04), _how(2, batch_size=7))
    assert len(_sent(target)) == 2 * queries * len(x) and max(target.batches) <= 7


@pytest.mark.parametrize(
    "scores, y, multilabel",
    [
        (np.array([[0.3, 0.7], [1.0, 0.0], [0.0, 1.0]], np.float32), np.array([1, 1, 0]), False),
        (np.array([[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]], np.float32), np.array([2, 0]), False),
        (np.array([[0.9, 0.1], [1.0, 0.0]], np.float32), np.array([[1, 0], [0, 1]]), True),
    ],
    ids=["binary", "multiclass", "multilabel"],
)
def test_square_climbs_the_judging_margin(scores, y, multilabel):
    expected = margin(logits_from_probabilities(torch.from_numpy(scores), multilabel), torch.from_numpy(y), multilabel)
    np.testing.assert_allclose(margin_of_scores(scores, y, multilabel), expected.numpy(), rtol=1e-12)


def test_the_square_shrinks_on_the_papers_schedule_and_the_id_names_the_margin():
    assert [_share(0.8, step, 1000) for step in (0, 1, 2, 999)] == [0.8, 0.8, 0.4, 0.8 / 512]
    assert Square(name="square").id == "square-margin-q1000-p0.8-n200"
    assert Square(name="square", images=None, p_init=0.4).id == "square-margin-q1000-p0.4"
    assert Square(name="square").searched().queries_per_image == 12
