"""Real ART attacks on small trained surrogates (16x16 chest X-rays), the transfer boosters, and the control noise."""

from __future__ import annotations

import copy
import math
import typing

import numpy as np
import pytest
import torch

from medaudit import zoo
from medaudit.attacks import (
    ChannelsLast,
    GradientSmoothing,
    InputDiversity,
    LogitEnsemble,
    art_classifier,
    attack_id,
    attacked_model,
    control_noise,
    craft_adversarial,
    deliver_uint8,
    diverse_input,
    fold_batchnorm,
    gaussian_kernel,
    make_art_attack,
    run_attack,
)
from medaudit.errors import AuditInputError
from medaudit.metrics import auc
from medaudit.scenario import FGSM, MIFGSM, PGD, AttackSpec, load_scenario

EPS = 0.05  # L-inf budget of the table test, [-1, 1] units
FAST = {"iterations": 5}  # fewer steps than the defaults keep the table fast


def _every_attack() -> list:
    """Every spec of the scenario's AttackSpec union with its defaults (iterations cut to 5); each spec with
    the transfer boosters also with DI, with TI, and with both."""
    union = typing.get_args(typing.get_args(AttackSpec)[0])
    attacks = []
    for cls in union:
        name = typing.get_args(cls.model_fields["name"].annotation)[0]
        fast = {k: v for k, v in FAST.items() if k in cls.model_fields}
        attacks.append(cls(name=name, **fast))
        if "diversity_prob" in cls.model_fields:
            attacks += [
                cls(name=name, diversity_prob=0.5, **fast),
                cls(name=name, ti_kernel=3, **fast),
                cls(name=name, diversity_prob=0.5, ti_kernel=3, **fast),
            ]
    return attacks


ATTACKS = _every_attack()


def _train(x_train: np.ndarray, y_train: np.ndarray, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = zoo.build("tiny_cnn", init="random", num_outputs=2, in_channels=1, image_size=16)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = np.random.default_rng(seed)
    for _ in range(300):
        idx = gen.choice(len(x_train), 64)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x_train[idx])), torch.from_numpy(y_train[idx]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained(pneumonia_path):
    """Two TinyNets (seeds 0 and 1) trained for 300 steps on real chest X-rays, and 96 test images."""
    from medaudit.data import to_canonical

    with np.load(pneumonia_path) as npz:
        x_train = to_canonical(npz["train_images"][:1500], 16)
        y_train = npz["train_labels"][:1500, 0].astype(np.int64)
        x_test = to_canonical(npz["test_images"][:96], 16)
        y_test = npz["test_labels"][:96, 0].astype(np.int64)
    return _train(x_train, y_train, 0), _train(x_train, y_train, 1), x_test, y_test


def _scores(model, x):
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(x)), 1)[:, 1].numpy()


def _craft(attack, models, x, y, eps=(EPS,), seed=0):
    return craft_adversarial(
        attack, models, x, y, epsilons_pm1=eps, n_logits=2, multilabel=False, batch_size=32, seed=seed, device="cpu"
    )


# ---------------------------------------------------------------- ids
def test_attack_ids_are_built_from_the_fields_and_name_boosters_only_when_on():
    assert attack_id(FGSM(name="fgsm")) == "fgsm"
    assert attack_id(PGD(name="pgd")) == "pgd-step0.01-it20"
    assert attack_id(PGD(name="pgd", random_start=True, diversity_prob=0.0, ti_kernel=0)) == "pgd-step0.01-it20-rs"
    assert attack_id(MIFGSM(name="mifgsm")) == "mifgsm-step0.01-it10-mu1"
    assert attack_id(MIFGSM(name="mifgsm", diversity_prob=0.5, ti_kernel=5)) == "mifgsm-step0.01-it10-mu1-di0.5-ti5"
    assert attack_id(PGD(name="pgd", ti_kernel=3)) == "pgd-step0.01-it20-ti3"
    assert len({attack_id(a) for a in ATTACKS}) == len(ATTACKS)


def test_an_even_ti_kernel_is_refused_naming_file_field_and_fix(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nattacks:\n  - name: pgd\n    ti_kernel: 4\n")
    with pytest.raises(AuditInputError, match=r"s\.yaml.*attacks\.0\.pgd\.ti_kernel.*must be odd.*use 5 or 0"):
        load_scenario(path)


# ---------------------------------------------------------------- DI and TI, by hand
def test_diverse_input_shrinks_and_pads_with_mid_grey():
    x = torch.ones(1, 1, 4, 4)
    out = diverse_input(x, side=2, top=1, left=2)
    expected = torch.zeros(1, 1, 4, 4)
    expected[..., 1:3, 2:4] = 1  # a 2x2 block of ones, top-left corner at row 1, column 2
    assert torch.equal(out, expected)
    assert torch.equal(diverse_input(x * 0.3, side=4, top=0, left=0), x * 0.3)  # full side, no shift: identity


def test_input_diversity_keeps_shape_and_range_and_is_the_identity_at_prob_0():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    assert InputDiversity(0.0)(x) is x
    outs = [InputDiversity(1.0)(x) for _ in range(20)]
    assert all(o.shape == x.shape and o.min() >= -1 and o.max() <= 1 for o in outs)
    assert sum(not torch.equal(o, x) for o in outs) >= 5  # side 29..32 at a random offset: the identity 1 in 4


def test_gaussian_kernel_is_normalised_symmetric_and_worked_by_hand():
    assert torch.equal(gaussian_kernel(1), torch.ones(1, 1))
    # side 3 spans -3, 0, +3 standard deviations: weights e^-4.5, 1, e^-4.5 per axis
    g = torch.tensor([math.exp(-4.5), 1.0, math.exp(-4.5)], dtype=torch.float64)
    torch.testing.assert_close(gaussian_kernel(3), (torch.outer(g, g) / g.sum() ** 2).float())
    k = gaussian_kernel(7)
    assert abs(k.sum().item() - 1) < 1e-6 and torch.equal(k, k.T) and torch.equal(k, k.flip(0))
    assert k.argmax().item() == 24  # the centre of 7x7


def test_gradient_smoothing_is_the_identity_forward_and_convolves_the_gradient_backward():
    x = torch.randn(1, 2, 9, 9, requires_grad=True)
    smooth = GradientSmoothing(3)
    y = smooth(x)
    assert torch.equal(y, x)
    weight = torch.zeros(1, 2, 9, 9)
    weight[0, 1, 4, 4] = 1.0  # the loss reads one pixel of channel 1
    (y * weight).sum().backward()
    expected = torch.zeros(1, 2, 9, 9)
    expected[0, 1, 3:6, 3:6] = gaussian_kernel(3)  # that pixel's gradient spread over its 3x3 neighbourhood
    torch.testing.assert_close(x.grad, expected)


def _conv_bn(weight: float) -> torch.nn.Sequential:
    """y = BN(w x) with running mean 1, variance 3, eps 1, scale 0.5, shift 0.25."""
    conv = torch.nn.Conv2d(1, 1, 1, bias=False)
    bn = torch.nn.BatchNorm2d(1, eps=1.0)
    with torch.no_grad():
        conv.weight.fill_(weight)
        bn.running_mean.fill_(1.0), bn.running_var.fill_(3.0), bn.weight.fill_(0.5), bn.bias.fill_(0.25)
    return torch.nn.Sequential(conv, bn)


def test_fold_batchnorm_folds_by_hand_and_leaves_the_original_alone():
    net = _conv_bn(2.0)
    folded = fold_batchnorm(net, torch.randn(2, 1, 3, 3))
    # 0.5 * (2x - 1) / sqrt(3 + 1) + 0.25 = 0.5x: the folded conv has weight 0.5 and bias 0
    assert folded[0].weight.item() == 0.5 and folded[0].bias.item() == 0.0 and isinstance(folded[1], torch.nn.Identity)
    assert isinstance(net[1], torch.nn.BatchNorm2d) and net[0].weight.item() == 2.0


def test_fold_batchnorm_refuses_a_conv_whose_output_is_also_read_elsewhere():
    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _conv_bn(2.0)

        def forward(self, x):
            c = self.body[0](x)
            return self.body[1](c) + c  # the conv output feeds the BN and the sum

    with pytest.raises(RuntimeError, match="folding BatchNorm changed the surrogate's logits"):
        fold_batchnorm(Residual(), torch.randn(2, 1, 3, 3))


# ---------------------------------------------------------------- the table of attacks
@pytest.mark.parametrize("attack", ATTACKS, ids=attack_id)
def test_every_attack_lowers_the_surrogates_auc_within_its_budget(trained, attack):
    model, _, x, y = trained
    clean = auc(y, _scores(model, x))
    assert clean > 0.85  # the surrogate learned something real
    out = _craft(attack, [model], x, y)[EPS]
    assert out.max_abs_delta <= EPS + 1e-6 and out.x_adv.min() >= -1 and out.x_adv.max() <= 1
    assert np.abs(out.x_adv - x).max() == out.max_abs_delta
    assert auc(y, _scores(model, out.x_adv)) < clean - 0.2


@pytest.mark.parametrize("attack", [ATTACKS[0], ATTACKS[1], ATTACKS[-1]], ids=attack_id)
def test_an_ensemble_of_two_differs_from_each_and_lowers_both_models_auc(trained, attack):
    m0, m1, x, y = trained
    both = _craft(attack, [m0, m1], x, y)[EPS].x_adv
    assert not np.array_equal(both, _craft(attack, [m0], x, y)[EPS].x_adv)
    assert not np.array_equal(both, _craft(attack, [m1], x, y)[EPS].x_adv)
    for model in (m0, m1):
        assert auc(y, _scores(model, both)) < auc(y, _scores(model, x)) - 0.2


@pytest.mark.parametrize("attack", [ATTACKS[0], ATTACKS[1], ATTACKS[-1]], ids=attack_id)
def test_an_ensemble_of_one_model_twice_is_the_plain_attack_bit_for_bit(trained, attack):
    model, _, x, y = trained
    np.testing.assert_array_equal(
        _craft(attack, [model, model], x, y)[EPS].x_adv, _craft(attack, [model], x, y)[EPS].x_adv
    )


def test_a_single_surrogate_is_plain_art_on_the_channels_last_model(trained):
    model, _, x, y = trained
    classifier = art_classifier(
        ChannelsLast(copy.deepcopy(model)), n_logits=2, input_shape=(1, 16, 16), multilabel=False, device="cpu"
    )
    attack = PGD(name="pgd", iterations=3)
    plain = run_attack(attack, classifier, x, y, epsilon_pm1=0.02, n_logits=2, multilabel=False, batch_size=32)
    np.testing.assert_array_equal(_craft(attack, [model], x, y, eps=(0.02,))[0.02].x_adv, plain.x_adv)


def test_logit_ensemble_averages_logits():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    torch.testing.assert_close(LogitEnsemble([a, b])(x), (a(x) + b(x)) / 2)


def test_ti_kernel_1_is_the_plain_attack(trained):
    model, _, x, y = trained
    for spec in (PGD, MIFGSM):
        name = typing.get_args(spec.model_fields["name"].annotation)[0]
        np.testing.assert_array_equal(
            _craft(spec(name=name, iterations=3, ti_kernel=1), [model], x, y)[EPS].x_adv,
            _craft(spec(name=name, iterations=3), [model], x, y)[EPS].x_adv,
        )


def test_fgsm_takes_one_gradient_for_every_epsilon(trained):
    model, _, x, y = trained
    out = _craft(FGSM(name="fgsm"), [model], x, y, eps=(0.01, 0.03))
    # one gradient sign, two step lengths: wherever neither clip bites, delta(0.03) = 3 delta(0.01)
    d1, d3 = out[0.01].x_adv - x, out[0.03].x_adv - x
    free = np.abs(x) < 0.97
    np.testing.assert_allclose(d3[free], 3 * d1[free], atol=1e-6)
    assert set(out) == {0.01, 0.03}


def test_each_epsilon_is_the_same_whichever_others_are_asked_for(trained):
    model, _, x, y = trained
    attack = PGD(name="pgd", iterations=3, random_start=True, diversity_prob=0.5)
    together = _craft(attack, [model], x[:32], y[:32], eps=(0.01, 0.03), seed=1)
    alone = _craft(attack, [model], x[:32], y[:32], eps=(0.03,), seed=1)
    np.testing.assert_array_equal(together[0.03].x_adv, alone[0.03].x_adv)
    assert not np.array_equal(
        _craft(attack, [model], x[:32], y[:32], eps=(0.03,), seed=2)[0.03].x_adv, alone[0.03].x_adv
    )  # the seed matters: random start and DI draw from it


def test_surrogates_are_frozen_copies_in_channels_last_and_pgd_runs_in_arts_torch_loop(trained):
    from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (
        ProjectedGradientDescentPyTorch,
    )

    model, _, _, _ = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attacked = attacked_model(PGD(name="pgd"), [model], torch.zeros(2, 1, 16, 16))
    assert not any(p.requires_grad for p in attacked.parameters())  # ART then skips weight gradients
    conv = next(p for p in attacked.parameters() if p.ndim == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model is untouched
    assert next(p for p in model.parameters() if p.ndim == 4).is_contiguous()
    classifier = art_classifier(attacked, n_logits=2, input_shape=(1, 16, 16), multilabel=False, device="cpu")
    pgd = make_art_attack(PGD(name="pgd"), classifier, 0.02, batch_size=32)
    assert isinstance(pgd._attack, ProjectedGradientDescentPyTorch)


def test_attacked_model_stacks_ti_then_di_then_the_ensemble(trained):
    m0, m1, _, _ = trained
    stack = attacked_model(MIFGSM(name="mifgsm", diversity_prob=0.3, ti_kernel=3), [m0, m1], torch.zeros(2, 1, 16, 16))
    assert [type(layer) for layer in stack] == [GradientSmoothing, InputDiversity, LogitEnsemble]
    with pytest.raises(ValueError, match="at least one surrogate"):
        attacked_model(FGSM(name="fgsm"), [], torch.zeros(2, 1, 16, 16))


# ---------------------------------------------------------------- control and delivery
def test_control_noise_is_the_same_perturbation_shuffled(trained):
    model, _, x, y = trained
    x_adv = _craft(FGSM(name="fgsm"), [model], x, y, eps=(0.03,))[0.03].x_adv
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
    labels = np.stack([y, 1 - y, y], axis=1)
    out = craft_adversarial(
        PGD(name="pgd", iterations=3),
        [model],
        x,
        labels,
        epsilons_pm1=[0.02],
        n_logits=3,
        multilabel=True,
        batch_size=32,
        seed=0,
        device="cpu",
    )[0.02]
    assert 0 < out.max_abs_delta <= 0.02 + 1e-6
    with torch.no_grad():  # the attack raises the multi-label loss of every image's true label vector
        loss = [
            torch.nn.functional.binary_cross_entropy_with_logits(
                model(torch.from_numpy(v)), torch.from_numpy(labels).float()
            ).item()
            for v in (x, out.x_adv)
        ]
    assert loss[1] > loss[0]
