"""Real ART attacks on a small trained surrogate (16x16 chest X-rays), and the control noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medaudit import zoo
from medaudit.attacks import art_classifier, attack_id, control_noise, deliver_uint8, make_art_attack, run_attack
from medaudit.metrics import auc
from medaudit.scenario import FGSM, MIFGSM, PGD

ATTACKS = [FGSM(name="fgsm"), PGD(name="pgd", step_pm1=0.01, iterations=5), MIFGSM(name="mifgsm", iterations=5)]


@pytest.fixture(scope="module")
def trained(pneumonia_path):
    """TinyNet trained for a few hundred steps on real chest X-rays, and 96 test images."""
    from medaudit.data import to_canonical

    with np.load(pneumonia_path) as npz:
        x_train = to_canonical(npz["train_images"][:1500], 16)
        y_train = npz["train_labels"][:1500, 0].astype(np.int64)
        x_test = to_canonical(npz["test_images"][:96], 16)
        y_test = npz["test_labels"][:96, 0].astype(np.int64)
    torch.manual_seed(0)
    model = zoo.build("tiny_cnn", init="random", num_outputs=2, in_channels=1, image_size=16)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = np.random.default_rng(0)
    for _ in range(300):
        idx = gen.choice(len(x_train), 64)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x_train[idx])), torch.from_numpy(y_train[idx]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    classifier = art_classifier(model, n_logits=2, input_shape=(1, 16, 16), multilabel=False, device="cpu")
    return model, classifier, x_test, y_test


def _scores(model, x):
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(x)), 1)[:, 1].numpy()


@pytest.mark.parametrize("attack", ATTACKS, ids=attack_id)
def test_every_attack_lowers_the_surrogates_auc_within_its_budget(trained, attack):
    model, classifier, x, y = trained
    clean = auc(y, _scores(model, x))
    assert clean > 0.85  # the surrogate learned something real
    out = run_attack(attack, classifier, x, y, epsilon_pm1=0.05, n_logits=2, multilabel=False)
    assert out.max_abs_delta <= 0.05 + 1e-6 and out.x_adv.min() >= -1 and out.x_adv.max() <= 1
    assert auc(y, _scores(model, out.x_adv)) < clean - 0.2


def test_parameters_are_frozen_and_pgd_runs_in_torch(trained):
    from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (
        ProjectedGradientDescentPyTorch)

    model, classifier, _, _ = trained
    assert not any(p.requires_grad for p in model.parameters())  # ART then skips weight gradients
    pgd = make_art_attack(PGD(name="pgd"), classifier, 0.02, batch_size=32)
    assert isinstance(pgd._attack, ProjectedGradientDescentPyTorch)


def test_attacks_are_seeded(trained):
    _, classifier, x, y = trained
    attack = PGD(name="pgd", iterations=3, random_start=True)
    a = run_attack(attack, classifier, x[:16], y[:16], epsilon_pm1=0.02, n_logits=2, multilabel=False, seed=1)
    b = run_attack(attack, classifier, x[:16], y[:16], epsilon_pm1=0.02, n_logits=2, multilabel=False, seed=1)
    np.testing.assert_array_equal(a.x_adv, b.x_adv)


def test_control_noise_is_the_same_perturbation_shuffled(trained):
    model, classifier, x, y = trained
    x_adv = run_attack(FGSM(name="fgsm"), classifier, x, y, epsilon_pm1=0.03, n_logits=2, multilabel=False).x_adv
    delta = x_adv - x
    # on a mid-grey canvas nothing clips, so the control perturbation is exactly a permutation of delta
    shuffled = control_noise(np.zeros_like(x), delta, seed=0)
    for i in range(len(x)):
        np.testing.assert_array_equal(np.sort(shuffled[i].ravel()), np.sort(delta[i].ravel()))
        assert not np.array_equal(shuffled[i], delta[i])
    np.testing.assert_array_equal(control_noise(np.zeros_like(x), delta, seed=0), shuffled)  # seeded
    # shuffling destroys the adversarial structure: the surrogate barely notices
    x_ctrl = control_noise(x, x_adv, seed=0)
    assert auc(y, _scores(model, x_ctrl)) > auc(y, _scores(model, x_adv)) + 0.15


def test_uint8_delivery_quantises_to_grey_levels():
    x = np.array([[[[-1.0, 0.0, 0.5, 1.0]]]], dtype=np.float32)
    levels = (deliver_uint8(x) + 1) * 127.5
    np.testing.assert_allclose(levels, np.rint(levels), atol=1e-4)
    assert np.abs(deliver_uint8(x) - x).max() <= 1 / 255 + 1e-6


def test_multilabel_surrogate_attack_with_bce(trained):
    _, _, x, y = trained
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 3))
    classifier = art_classifier(model, n_logits=3, input_shape=(1, 16, 16), multilabel=True, device="cpu")
    labels = np.stack([y, 1 - y, y], axis=1)
    out = run_attack(PGD(name="pgd", iterations=3), classifier, x, labels, epsilon_pm1=0.02, n_logits=3,
                     multilabel=True)
    assert 0 < out.max_abs_delta <= 0.02 + 1e-6
    with torch.no_grad():  # the attack raises the multi-label loss of every image's true label vector
        loss = [torch.nn.functional.binary_cross_entropy_with_logits(model(torch.from_numpy(v)),
                                                                     torch.from_numpy(labels).float()).item()
                for v in (x, out.x_adv)]
    assert loss[1] > loss[0]
