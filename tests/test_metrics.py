"""Metrics on hand-worked numbers; the vectorised bootstrap against sklearn on equal resamples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity
from sklearn.metrics import roc_auc_score

from medaudit.core.decisions import harmful_flips, sensitivity_at_threshold, threshold_at_specificity
from medaudit.core.errors import AuditInputError
from medaudit.core.metrics import (
    auc,
    bootstrap_aucs,
    bootstrap_curves,
    bootstrap_mean_drop,
    bootstrap_paired_auc,
    mean_ssim,
    per_class_auc,
    resample_counts,
    ssim_per_image,
)


def _counts(index_matrix: np.ndarray, n: int) -> np.ndarray:
    return np.stack([np.bincount(row, minlength=n) for row in index_matrix])


def _scored(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.round(rng.normal(y * 1.0, 1.0), 1)  # rounded: many tied scores


# --- auc: pairs (positive, negative) counted by hand, ties count one half ---------------------


@pytest.mark.parametrize(
    "y, s, expected",
    [
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),  # .35 loses to .4 only: 3/4
        ([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9], 0.875),  # one tie: (3 + 0.5)/4
        ([0, 1, 0, 1], [0.2, 0.2, 0.2, 0.2], 0.5),  # all tied
        ([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], 0.0),  # perfectly inverted
    ],
)
def test_auc_binary_hand_worked(y, s, expected):
    assert auc(np.array(y), np.array(s)) == pytest.approx(expected, abs=1e-15)
    assert per_class_auc(np.array(y), np.array(s)) == [pytest.approx(expected, abs=1e-15)]


def test_auc_multilabel_excludes_degenerate_class():
    y = np.array([[0, 1, 0], [0, 1, 1], [1, 1, 0], [1, 1, 1]])  # class 1 is all positive
    s = np.array([[0.1, 0.3, 0.2], [0.4, 0.1, 0.6], [0.35, 0.9, 0.1], [0.8, 0.5, 0.9]])
    per_class = per_class_auc(y, s)
    assert per_class[0] == pytest.approx(0.75) and per_class[2] == pytest.approx(1.0)
    assert math.isnan(per_class[1])
    assert auc(y, s) == pytest.approx((0.75 + 1.0) / 2)


def test_auc_undefined_is_nan():
    assert math.isnan(auc(np.array([1, 1, 1]), np.array([0.1, 0.2, 0.3])))
    assert math.isnan(auc(np.ones((3, 2), int), np.zeros((3, 2))))


@pytest.mark.parametrize(
    "y, s",
    [
        (np.array([0, 1]), np.array([0.1, 0.2, 0.3])),  # shape mismatch
        (np.array([0, 2]), np.array([0.1, 0.2])),  # not 0/1
        (np.array([0, 1]), np.array([0.1, np.nan])),  # non-finite score
    ],
)
def test_auc_bad_input_raises(y, s):
    with pytest.raises(AuditInputError):
        auc(y, s)


# --- vectorised bootstrap == sklearn on identical resamples -----------------------------------


@pytest.mark.parametrize("n", [12, 300])
def test_bootstrap_aucs_equal_sklearn_on_same_resamples(n):
    y, s = _scored(n, seed=n)
    index_matrix = np.random.default_rng(0).integers(0, n, size=(200, n))
    expected = np.array([roc_auc_score(y[i], s[i]) if 0 < y[i].sum() < n else np.nan for i in index_matrix])
    got = bootstrap_aucs(y, s, _counts(index_matrix, n))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_bootstrap_aucs_multilabel_equal_auc_on_same_resamples():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=(15, 3))
    y[:, 2] = 1  # a class that is never defined
    s = np.round(rng.normal(y, 1.0), 1)
    index_matrix = rng.integers(0, 15, size=(150, 15))
    expected = np.array([auc(y[i], s[i]) for i in index_matrix])
    got = bootstrap_aucs(y, s, _counts(index_matrix, 15))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_group_resamples_keep_patients_together():
    groups = np.array(["p1", "p1", "p1", "p2", "p3", "p3", "p4"])
    counts = resample_counts(7, resamples=500, seed=1, groups=groups)
    for patient in np.unique(groups):
        members = counts[:, groups == patient]
        assert (members == members[:, :1]).all()  # equal multiplicity for every image
    # four patients drawn per resample, each contributing its image count
    sizes = {"p1": 3, "p2": 1, "p3": 2, "p4": 1}
    first = {p: np.flatnonzero(groups == p)[0] for p in sizes}
    np.testing.assert_array_equal(sum(counts[:, first[p]] for p in sizes), 4)
    assert (counts.sum(axis=1) == sum(counts[:, first[p]] * sizes[p] for p in sizes)).all()


def test_distinct_groups_are_the_image_bootstrap():
    by_image = resample_counts(40, resamples=100, seed=7)
    by_group = resample_counts(40, resamples=100, seed=7, groups=np.arange(40))
    np.testing.assert_array_equal(by_image, by_group)
    assert (by_image.sum(axis=1) == 40).all()


# --- paired bootstrap --------------------------------------------------------------------------


def test_paired_identical_scores_give_exact_ratio_and_zero_drop():
    y, s = _scored(200, seed=5)
    result = bootstrap_paired_auc(y, s, s, s, resamples=300)
    for ratio in (result.relative, result.relative_control):
        assert (ratio.point, ratio.low, ratio.high) == (1.0, 1.0, 1.0)
    drop = result.adversarial_specific_drop
    assert (drop.point, drop.low, drop.high) == (0.0, 0.0, 0.0)
    assert result.clean == result.adversarial == result.control


def test_paired_intervals_contain_points_and_are_seeded():
    y, s = _scored(400, seed=6)
    rng = np.random.default_rng(6)
    adversarial, control = s - 1.5 * y, s + rng.normal(0, 0.3, s.size)
    result = bootstrap_paired_auc(y, s, adversarial, control, resamples=400, seed=3)
    assert result.clean.point == pytest.approx(roc_auc_score(y, s), abs=1e-15)
    for iv in (
        result.clean,
        result.adversarial,
        result.control,
        result.relative,
        result.relative_control,
        result.adversarial_specific_drop,
    ):
        assert iv.low <= iv.point <= iv.high and iv.low < iv.high
        assert (iv.resamples, iv.degenerate, iv.confidence) == (400, 0, 0.95)
    assert result.relative.high < 1.0 and result.adversarial_specific_drop.low > 0.0
    assert bootstrap_paired_auc(y, s, adversarial, control, resamples=400, seed=3) == result
    assert bootstrap_paired_auc(y, s, adversarial, control, resamples=400, seed=4) != result


def test_one_patient_group_gives_zero_width_intervals():
    y, s = _scored(30, seed=8)
    result = bootstrap_paired_auc(y, s, s[::-1], s, resamples=50, groups=np.zeros(30))
    for iv in (result.clean, result.adversarial, result.relative):
        assert iv.low == pytest.approx(iv.point, abs=1e-15)
        assert iv.high == pytest.approx(iv.point, abs=1e-15)


def test_degenerate_resamples_are_counted_and_excluded():
    y = np.zeros(10, int)
    y[9] = 1  # one positive among ten, scored highest: every defined resample has AUC 1
    s = np.arange(10) / 10.0
    result = bootstrap_paired_auc(y, s, s, s, resamples=1000, seed=0)
    missing = (resample_counts(10, resamples=1000, seed=0)[:, 9] == 0).sum()
    assert 250 < missing < 450  # (9/10)**10 = 0.35 of resamples miss the positive
    for iv in (result.clean, result.adversarial, result.control, result.relative):
        assert iv.degenerate == missing and iv.resamples == 1000
    assert (result.clean.low, result.clean.high) == (1.0, 1.0)


def test_clean_auc_zero_gives_undefined_ratio_not_an_error():
    y, s = np.array([1, 1, 1, 0, 0, 0]), np.arange(6.0)  # clean AUC 0: perfectly inverted
    result = bootstrap_paired_auc(y, s, s[::-1], s, resamples=50)
    assert result.clean.point == 0.0 and result.adversarial.point == 1.0
    assert result.relative.point == math.inf and math.isnan(result.relative_control.point)
    assert result.relative.degenerate == 50 and math.isnan(result.relative.low)


def test_one_class_labels_raise():
    with pytest.raises(AuditInputError, match="one class only"):
        bootstrap_paired_auc(np.ones(5, int), np.arange(5.0), np.arange(5.0), np.arange(5.0))


def test_paired_bad_arguments_raise():
    y, s = _scored(20, seed=9)
    with pytest.raises(AuditInputError, match="confidence"):
        bootstrap_paired_auc(y, s, s, s, confidence=95)
    with pytest.raises(AuditInputError, match="adversarial"):
        bootstrap_paired_auc(y, s, s[:10], s)
    with pytest.raises(AuditInputError, match="groups"):
        bootstrap_paired_auc(y, s, s, s, groups=np.zeros(19))


# --- decisions ---------------------------------------------------------------------------------


def test_harmful_flips_hand_worked():
    # labels 1 1 0 0 1 0; at threshold 0.5 the attack misses positive 0 (0.9 -> 0.2) and positive 4 (0.6 -> 0.45),
    # flags negative 2 (0.1 -> 0.7); positive 1 rises (no harm), negative 3 stays below, negative 5 falls
    y = np.array([1, 1, 0, 0, 1, 0])
    clean = np.array([0.9, 0.6, 0.1, 0.2, 0.6, 0.8])
    adv = np.array([0.2, 0.9, 0.7, 0.4, 0.45, 0.3])
    assert harmful_flips(y, clean, adv, 0.5).tolist() == [0, 2, 4]  # score changes 0.7, 0.6, 0.15
    assert harmful_flips(y, clean, clean, 0.5).tolist() == []


def test_mean_drop_over_models_hand_worked():
    # two models; AUC before 1.0 and 0.75, after 0.75 (negative 0.8 now outranks positive 0.2) and 0.75:
    # mean drop (0.25 + 0) / 2 = 0.125
    y = np.array([0, 0, 1, 1])
    before = [np.array([0.1, 0.2, 0.8, 0.9]), np.array([0.1, 0.8, 0.7, 0.9])]
    after = [np.array([0.1, 0.8, 0.2, 0.9]), np.array([0.1, 0.8, 0.7, 0.9])]
    drop = bootstrap_mean_drop(y, before, after, resamples=200, seed=0)
    assert drop.point == pytest.approx(0.125)
    assert drop.low <= 0.125 <= drop.high and drop.resamples == 200
    same = bootstrap_mean_drop(y, before, before, resamples=200, seed=0)
    assert (same.point, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="one `after` per `before`"):
        bootstrap_mean_drop(y, before, after[:1])


def test_curves_are_the_cells_values_on_the_same_resamples():
    rng = np.random.default_rng(3)
    y = np.array([0, 1] * 20)
    clean = y + rng.normal(0, 0.6, 40)
    advs = [clean - 0.4 * k * y for k in (1, 2)]
    ctrls = [clean - 0.1 * k * y for k in (1, 2)]
    curves = bootstrap_curves(y, clean, advs, ctrls, resamples=300, seed=4)
    for k in range(2):
        paired = bootstrap_paired_auc(y, clean, advs[k], ctrls[k], resamples=300, seed=4)
        assert curves.relative_auc[k] == pytest.approx(paired.relative.point)
        assert curves.adversarial_specific_drop[k] == pytest.approx(paired.adversarial_specific_drop.point)
        low, high = np.percentile(curves.resampled_relative_auc[:, k], [2.5, 97.5])
        assert (low, high) == pytest.approx((paired.relative.low, paired.relative.high))
    assert curves.resampled_relative_auc_control.shape == (300, 2)


def test_ssim_counts_only_the_images_the_attack_changed():
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (3, 1, 9, 9)).astype(np.float32)
    p = x.copy()
    p[1] = np.clip(x[1] + 0.3, -1, 1)
    assert mean_ssim(x, p) == pytest.approx(float(ssim_per_image(x[1:2], p[1:2])[0]))
    assert mean_ssim(x, x) == 1.0


# negatives .1 .2 .3 .4, positives .35 .8; decision = score >= threshold
Y_OP = np.array([0, 0, 0, 0, 1, 1])
S_OP = np.array([0.1, 0.2, 0.3, 0.4, 0.35, 0.8])


@pytest.mark.parametrize(
    "specificity, threshold, sensitivity",
    [(0.0, 0.1, 1.0), (0.5, 0.3, 1.0), (0.75, 0.35, 1.0), (0.8, 0.8, 0.5), (1.0, 0.8, 0.5)],
)
def test_threshold_and_sensitivity_hand_worked(specificity, threshold, sensitivity):
    assert threshold_at_specificity(Y_OP, S_OP, specificity) == threshold
    assert sensitivity_at_threshold(Y_OP, S_OP, threshold) == sensitivity


def test_threshold_edge_cases():
    # the top score is a negative: full specificity needs a threshold above every score
    assert threshold_at_specificity(np.array([0, 1, 0]), np.array([0.9, 0.5, 0.1]), 1.0) == math.inf
    assert sensitivity_at_threshold(np.array([0, 1]), np.array([0.9, 0.5]), math.inf) == 0.0
    assert math.isnan(sensitivity_at_threshold(np.zeros(3, int), np.arange(3.0), 0.5))
    with pytest.raises(AuditInputError, match="no negatives"):
        threshold_at_specificity(np.ones(3, int), np.arange(3.0), 0.9)


# --- SSIM --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 1, 28, 28), (2, 3, 28, 28), (3, 1, 8, 8), (2, 3, 5, 6), (1, 1, 3, 3)])
def test_ssim_identical_is_one_and_noise_lowers_it(shape):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    assert mean_ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    small = np.clip(x + rng.normal(0, 0.05, shape), -1, 1).astype(np.float32)
    large = np.clip(x + rng.normal(0, 0.5, shape), -1, 1).astype(np.float32)
    assert 1.0 > mean_ssim(x, small) > mean_ssim(x, large)
    assert ssim_per_image(x, large).shape == (shape[0],)


def test_ssim_constant_images_hand_worked():
    # constant planes: variances vanish, SSIM = (2ab + C1)/(a^2 + b^2 + C1), C1 = (0.01 * 2)^2,
    # with a, b the intensities shifted from [-1, 1] to [0, 2]
    c1 = (0.01 * 2.0) ** 2
    a = np.array([0.0, 0.5, -0.5])
    b = np.array([0.0, 0.0, 0.5])
    per_channel = (2 * (a + 1) * (b + 1) + c1) / ((a + 1) ** 2 + (b + 1) ** 2 + c1)
    x = np.broadcast_to(a[None, :, None, None], (1, 3, 9, 9)).astype(np.float32)
    y = np.broadcast_to(b[None, :, None, None], (1, 3, 9, 9)).astype(np.float32)
    assert mean_ssim(x, y) == pytest.approx(per_channel.mean(), abs=1e-6)
    assert mean_ssim(x[:, 1:2], y[:, 1:2]) == pytest.approx(3.0004 / 3.2504, abs=1e-6)
    assert mean_ssim(x[:, 2:3], y[:, 2:3]) == pytest.approx(1.5004 / 2.5004, abs=1e-6)


def test_ssim_is_the_usual_ssim_of_unit_intensities():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.05, (1, 1, 16, 16))  # mid-grey, where raw [-1, 1] SSIM breaks down
    p = x + rng.choice([-0.06, 0.06], x.shape)
    expected = structural_similarity((x[0, 0] + 1) / 2, (p[0, 0] + 1) / 2, data_range=1.0)
    assert mean_ssim(x, p) == pytest.approx(expected, abs=1e-12)
    assert mean_ssim(x, p) > structural_similarity(x[0, 0], p[0, 0], data_range=2.0)


def test_ssim_bad_shapes_raise():
    with pytest.raises(AuditInputError):
        mean_ssim(np.zeros((1, 1, 2, 2)), np.ones((1, 1, 2, 2)))
    with pytest.raises(AuditInputError):
        mean_ssim(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 9)))


# ---------------------------------------------------------------- operating point and paired differences
def test_specificity_at_threshold_by_hand():
    from medaudit.core.decisions import specificity_at_threshold

    # negatives score 0.1, 0.4, 0.6, 0.9: below 0.5 are two of four
    y = np.array([0, 0, 0, 0, 1])
    s = np.array([0.1, 0.4, 0.6, 0.9, 0.7])
    assert specificity_at_threshold(y, s, 0.5) == 0.5
    assert specificity_at_threshold(y, s, 0.95) == 1.0
    assert np.isnan(specificity_at_threshold(np.ones(3, int), np.array([0.1, 0.2, 0.3]), 0.5))


def test_decision_changes_split_by_true_label():
    from medaudit.core.decisions import decision_changes

    y = np.array([1, 1, 1, 0, 0, 0])
    clean = np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.3])  # at 0.5: flagged 1, 1, 0, 0, 1, 0
    pert = np.array([0.3, 0.8, 0.9, 0.6, 0.2, 0.4])  # at 0.5: flagged 0, 1, 1, 1, 0, 0
    got = decision_changes(y, clean, pert, 0.5)
    # positive 0 lost; positive 2 gained (not a lost TP); negative 3 newly flagged; negative 4 cleared
    assert (got.true_positives_lost, got.true_positives_gained) == (1, 1)
    assert (got.false_positives_created, got.false_positives_removed, got.flips) == (1, 1, 4)


def test_paired_difference_of_identical_settings_is_exactly_zero():
    from medaudit.core.metrics import bootstrap_paired_difference

    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30, int), np.ones(30, int)]
    clean = rng.random(60) + 0.5 * y
    adv = rng.random(60)
    d = bootstrap_paired_difference(y, clean, adv, clean, adv, resamples=200, seed=1)
    assert (d.auc_adversarial.point, d.auc_adversarial.low, d.auc_adversarial.high) == (0.0, 0.0, 0.0)
    assert (d.relative_auc.low, d.relative_auc.high) == (0.0, 0.0)


def test_paired_difference_point_by_hand():
    from medaudit.core.metrics import bootstrap_paired_difference

    y = np.array([0, 0, 1, 1])
    clean = np.array([0.1, 0.2, 0.8, 0.9])  # AUC 1
    adv_a = np.array([0.9, 0.2, 0.1, 0.8])  # pairs (pos > neg): 0.1 vs 0.9, 0.2: 0; 0.8 vs 0.9: 0, vs 0.2: 1 -> 1/4
    adv_b = np.array([0.1, 0.9, 0.8, 0.2])  # 0.8 > 0.1: 1, 0.8 < 0.9; 0.2 > 0.1: 1, < 0.9 -> 2/4
    d = bootstrap_paired_difference(y, clean, adv_a, clean, adv_b, resamples=100, seed=0)
    assert d.auc_adversarial.point == pytest.approx(0.25 - 0.5)
    assert d.relative_auc.point == pytest.approx(0.25 - 0.5)
    assert d.auc_adversarial.low <= d.auc_adversarial.point <= d.auc_adversarial.high
