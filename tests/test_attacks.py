"""Real ART attacks on small trained models (16x16 chest X-rays): every registered attack in its tier, the transfer
boosters, and the control noise. The table of attacks enrols every entry of `attacks.ATTACKS`."""

from __future__ import annotations

import copy
import math
import typing

import numpy as np
import pytest
import torch

from medaudit.attackers import zoo
from medaudit.attacks import APGD, ATTACKS, FGSM, MIFGSM, PGD, TIERS, AttackSpec, Crafting, Square, control_noise
from medaudit.attacks.base import AT_THE_BOUND, art_classifier, projected
from medaudit.attacks.surrogate import (
    ChannelsLast,
    GradientSmoothing,
    InputDiversity,
    LogitEnsemble,
    diverse_input,
    fold_batchnorm,
    folded_if_exact,
    gaussian_kernel,
    surrogate_model,
)
from medaudit.attacks.transfer import class_loss, shared_gradient
from medaudit.core.errors import AuditInputError
from medaudit.core.metrics import auc
from medaudit.core.pixels import deliver_uint8
from medaudit.scenario.threat_model import load_scenario

pytestmark = pytest.mark.slow  # trains two models, then runs every attack

EPS = 0.05  # L-inf budget of the table test, [-1, 1] units
FAST = {"iterations": 5, "queries_per_image": 400}  # fewer steps than the defaults keep the table fast (APGD keeps 100)
HOW = Crafting(n_logits=2, multilabel=False, batch_size=32, seed=0, device="cpu")


def _every_attack() -> list:
    """Every registered attack with its defaults (iterations and queries cut where allowed); each attack with the
    transfer boosters also with DI, with TI, and with both."""
    attacks = []
    for name, cls in ATTACKS.items():
        fast = {k: v for k, v in FAST.items() if k in cls.model_fields and cls.tier != "whitebox"}
        attacks.append(cls(name=name, **fast))
        if "diversity_prob" in cls.model_fields:
            attacks += [
                cls(name=name, diversity_prob=0.5, **fast),
                cls(name=name, ti_kernel=3, **fast),
                cls(name=name, diversity_prob=0.5, ti_kernel=3, **fast),
            ]
    return attacks


EVERY_ATTACK = _every_attack()


def _id(attack) -> str:
    return attack.id


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
    from medaudit.data.audit_data import to_canonical

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
    """The attack with its tier's victim: the surrogates, the one model white-box, or its probabilities (queries)."""
    how = Crafting(n_logits=2, multilabel=False, batch_size=32, seed=seed, device="cpu")
    if attack.tier == "query":
        (model,) = models
        return attack.craft(lambda images: _probabilities(model, images), x, y, eps, how)
    return attack.craft(list(models), x, y, eps, how)


def _probabilities(model, x):
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(x)), 1).numpy().astype(np.float64)


# ---------------------------------------------------------------- the registry and ids
@pytest.mark.parametrize("name", ATTACKS)
def test_every_registered_attack_is_named_by_its_key_in_one_tier_and_in_the_scenario_union(name):
    cls = ATTACKS[name]
    assert typing.get_args(cls.model_fields["name"].annotation) == (name,)
    assert cls.tier in TIERS and cls.auto_fractions == tuple(sorted(cls.auto_fractions))
    assert AT_THE_BOUND in cls.auto_fractions and max(cls.auto_fractions) == 1.5  # at the bound, and 1.5x beyond
    assert cls in typing.get_args(typing.get_args(AttackSpec)[0])


def test_attack_ids_are_built_from_the_fields_and_name_boosters_only_when_on():
    assert FGSM(name="fgsm").id == "fgsm"
    assert PGD(name="pgd").id == "pgd-step0.01-it20"
    assert PGD(name="pgd", random_start=True, diversity_prob=0.0, ti_kernel=0).id == "pgd-step0.01-it20-rs"
    assert MIFGSM(name="mifgsm").id == "mifgsm-it10-mu1"  # its step is epsilon / iterations unless given
    assert MIFGSM(name="mifgsm", step_pm1=0.01).id == "mifgsm-step0.01-it10-mu1"
    assert MIFGSM(name="mifgsm", diversity_prob=0.5, ti_kernel=5).id == "mifgsm-it10-mu1-di0.5-ti5"
    assert PGD(name="pgd", ti_kernel=3).id == "pgd-step0.01-it20-ti3"
    assert ATTACKS["apgd"](name="apgd").id == "apgd-margin+ce-it100-r1"
    assert Square(name="square").id == "square-margin-q1000-p0.8-n200"
    assert len({a.id for a in EVERY_ATTACK}) == len(EVERY_ATTACK)


@pytest.mark.parametrize(
    "text, field, why",
    [
        ("  - name: apgd\n    iterations: 20\n", r"attacks\.0\.apgd\.iterations", "greater than or equal to 100"),
        ("  - name: square\n    queries_per_image: 0\n", r"attacks\.0\.square\.queries_per_image", "greater than 2"),
        ("  - name: cw\n", r"attacks\.0", "'fgsm', 'pgd', 'mifgsm', 'apgd', 'square'"),
        (
            "  - name: apgd\n    losses: [margin, dlr]\n",
            r"attacks\.0\.apgd\.losses",
            "unknown loss 'dlr'; the losses are margin, ce",
        ),
    ],
)
def test_a_bad_attack_is_one_line_naming_the_field(tmp_path, text, field, why):
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nattacks:\n" + text)
    with pytest.raises(AuditInputError, match=rf"s\.yaml.*{field}.*{why}") as err:
        load_scenario(path)
    assert "\n" not in str(err.value)


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
    di = InputDiversity(1.0)
    outs = []
    for step in range(20):
        di.reseed(seed=0, iteration=step)
        outs.append(di(x))
        assert torch.equal(di(x), outs[-1])  # every forward of one step draws the same transform
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
    # the white-box tier's copy of a target attacks such a model unfolded, with the target's own logits
    x = torch.randn(2, 1, 3, 3)
    kept = folded_if_exact(Residual(), x)
    assert isinstance(kept.body[1], torch.nn.BatchNorm2d)


def test_the_whitebox_copy_is_folded_where_exact_and_a_torchscript_target_is_left_as_it_is():
    x = torch.randn(2, 1, 3, 3)
    net = _conv_bn(2.0)
    folded = folded_if_exact(net, x)
    assert isinstance(folded[1], torch.nn.Identity) and folded[0].weight.item() == 0.5
    assert isinstance(net[1], torch.nn.BatchNorm2d)  # a copy: the caller's target is untouched
    scripted = torch.jit.script(_conv_bn(2.0))
    kept = folded_if_exact(scripted, x)  # no hook sees inside a TorchScript module
    assert kept is not scripted and torch.equal(kept(x), scripted(x))


def test_apgd_attacks_a_batchnorm_target_folded_as_it_would_unfolded(monkeypatch):
    """Folding moves logits in their last bits only: APGD's images on a trained conv-BatchNorm model are, nearly
    pixel for pixel, those it crafts on the unfolded model, and they lower the model's AUC as far."""
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 64)
    x = np.clip(rng.normal(0, 0.4, (128, 1, 8, 8)) + 0.2 * (2 * y[:, None, None, None] - 1), -1, 1).astype(np.float32)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    )
    optimiser = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(100):
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        optimiser.zero_grad(), loss.backward(), optimiser.step()
    model.eval().requires_grad_(False)
    assert auc(y, _scores(model, x)) > 0.9
    attack = APGD(name="apgd", iterations=100, restarts=1, losses=("margin",))
    eps = 0.15  # a budget that moves this model, not one that breaks every image
    folded = attack.craft((model,), x, y, (eps,), HOW)[eps].x_adv
    monkeypatch.setattr("medaudit.attacks.apgd.folded_if_exact", lambda m, example: copy.deepcopy(m))
    unfolded = attack.craft((model,), x, y, (eps,), HOW)[eps].x_adv
    assert isinstance(model[1], torch.nn.BatchNorm2d)  # the caller's model is untouched
    assert np.mean(np.abs(folded - unfolded) <= 1e-5) > 0.95
    assert auc(y, _scores(model, folded)) == pytest.approx(auc(y, _scores(model, unfolded)), abs=0.02)
    assert auc(y, _scores(model, folded)) < auc(y, _scores(model, x)) - 0.1


# ---------------------------------------------------------------- the table of attacks
@pytest.mark.parametrize("attack", EVERY_ATTACK, ids=_id)
def test_every_attack_lowers_its_victims_auc_within_its_budget(trained, attack):
    model, _, x, y = trained
    clean = auc(y, _scores(model, x))
    assert clean > 0.85  # the model learned something real
    out = _craft(attack, [model], x, y)[EPS]
    assert out.max_abs_delta <= EPS + 1e-6 and out.x_adv.min() >= -1 and out.x_adv.max() <= 1
    assert np.abs(out.x_adv - x).max() == out.max_abs_delta
    assert auc(y, _scores(model, out.x_adv)) < clean - 0.2


TRANSFER = [a for a in EVERY_ATTACK if a.tier == "transfer"]


@pytest.mark.parametrize("attack", [TRANSFER[0], TRANSFER[1], TRANSFER[-1]], ids=_id)
def test_an_ensemble_of_two_differs_from_each_and_lowers_both_models_auc(trained, attack):
    m0, m1, x, y = trained
    both = _craft(attack, [m0, m1], x, y)[EPS].x_adv
    assert not np.array_equal(both, _craft(attack, [m0], x, y)[EPS].x_adv)
    assert not np.array_equal(both, _craft(attack, [m1], x, y)[EPS].x_adv)
    for model in (m0, m1):
        assert auc(y, _scores(model, both)) < auc(y, _scores(model, x)) - 0.2


@pytest.mark.parametrize("attack", [TRANSFER[0], TRANSFER[1], TRANSFER[-1]], ids=_id)
def test_an_ensemble_of_one_model_twice_is_the_plain_attack_bit_for_bit(trained, attack):
    model, _, x, y = trained
    np.testing.assert_array_equal(
        _craft(attack, [model, model], x, y)[EPS].x_adv, _craft(attack, [model], x, y)[EPS].x_adv
    )


def test_a_single_surrogate_is_plain_art_pgd_on_the_channels_last_model(trained):
    from art.attacks.evasion import ProjectedGradientDescent

    model, _, x, y = trained
    classifier = art_classifier(
        ChannelsLast(copy.deepcopy(model)), n_logits=2, input_shape=(1, 16, 16), multilabel=False, device="cpu"
    )
    np.random.seed(0), torch.manual_seed(0)
    plain = ProjectedGradientDescent(
        classifier, norm=np.inf, eps=0.02, eps_step=0.01, max_iter=3, num_random_init=0, batch_size=32, verbose=False
    ).generate(x=x, y=np.eye(2, dtype=np.float32)[y])
    crafted = _craft(PGD(name="pgd", iterations=3), [model], x, y, eps=(0.02,))[0.02].x_adv
    np.testing.assert_array_equal(crafted, np.clip(np.clip(plain, x - 0.02, x + 0.02), -1, 1))


def test_logit_ensemble_averages_logits():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    torch.testing.assert_close(LogitEnsemble([a, b])(x), (a(x) + b(x)) / 2)


def test_ti_kernel_1_is_the_plain_attack(trained):
    model, _, x, y = trained
    for name in ("pgd", "mifgsm"):
        np.testing.assert_array_equal(
            _craft(ATTACKS[name](name=name, iterations=3, ti_kernel=1), [model], x, y)[EPS].x_adv,
            _craft(ATTACKS[name](name=name, iterations=3), [model], x, y)[EPS].x_adv,
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


def test_surrogates_are_frozen_copies_in_channels_last(trained):
    model, _, _, _ = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attacked = surrogate_model([model], np.zeros((2, 1, 16, 16), np.float32), "cpu")
    assert not any(p.requires_grad for p in attacked.parameters())
    conv = next(p for p in attacked.parameters() if p.ndim == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model is untouched
    assert next(p for p in model.parameters() if p.ndim == 4).is_contiguous()


@pytest.mark.parametrize(
    "attack",
    [PGD(name="pgd", iterations=5), MIFGSM(name="mifgsm", iterations=5), MIFGSM(name="mifgsm", step_pm1=0.004)],
    ids=lambda a: a.id,
)
def test_pgd_and_mifgsm_take_arts_steps_bit_for_bit(trained, attack):
    """Our loop against ART 1.20's own ProjectedGradientDescent / MomentumIterativeMethod on the same surrogate:
    the same images, to the last bit, at two epsilons (one below the step, one above)."""
    from art.attacks.evasion import MomentumIterativeMethod, ProjectedGradientDescent

    model, _, x, y = trained
    x, y = x[:32], y[:32]
    how = Crafting(n_logits=2, multilabel=False, batch_size=16, seed=0, device="cpu")
    ours = attack.craft([model], x, y, (0.005, 0.03), how)
    classifier = art_classifier(
        surrogate_model([model], x, "cpu"), n_logits=2, input_shape=x.shape[1:], multilabel=False, device="cpu"
    )
    for eps in (0.005, 0.03):
        common = dict(norm=np.inf, eps=eps, max_iter=attack.iterations, batch_size=16, verbose=False)
        step = attack.step_pm1 if attack.step_pm1 is not None else eps / attack.iterations
        art = (
            ProjectedGradientDescent(classifier, eps_step=step, num_random_init=0, **common)
            if attack.name == "pgd"
            else MomentumIterativeMethod(classifier, eps_step=step, decay=attack.decay, **common)
        )
        theirs = art.generate(x=x, y=np.eye(2, dtype=np.float32)[y])
        np.testing.assert_array_equal(ours[eps].x_adv, projected(x, theirs, eps).x_adv)


@pytest.mark.parametrize(
    "attack",
    [
        PGD(name="pgd", iterations=4, random_start=True, diversity_prob=0.5, ti_kernel=3),
        PGD(name="pgd", iterations=4),  # no random start, a fixed step: rows share gradients (`shared_gradient`)
        MIFGSM(name="mifgsm", iterations=4),
        APGD(name="apgd", iterations=100),
    ],
    ids=lambda a: a.id,
)
def test_a_grid_in_one_pass_is_bit_identical_to_each_epsilon_alone(attack):
    """The batched pass (epsilons repeated along the batch, 7 rows a pass, so passes mix epsilons and the last is
    padded) gives exactly the images of crafting each epsilon on its own, on a zoo model."""
    torch.manual_seed(0)
    model = zoo.build("mobilenet_v2", init="random", num_outputs=2, in_channels=1, image_size=32).eval()
    x = np.random.default_rng(0).uniform(-1, 1, (12, 1, 32, 32)).astype(np.float32)
    y = np.arange(12) % 2
    how = Crafting(n_logits=2, multilabel=False, batch_size=7, seed=3, device="cpu")
    victim = (model,) if attack.tier == "whitebox" else [model]
    grid = (0.004, 0.01, 0.03)
    together = attack.craft(victim, x, y, grid, how)
    for eps in grid:
        alone = attack.craft(victim, x, y, (eps,), how)[eps].x_adv
        np.testing.assert_array_equal(together[eps].x_adv, alone)
        assert together[eps].max_abs_delta <= eps + 1e-7
    assert together[0.03].max_abs_delta > 0 or attack.tier == "whitebox"  # a random-init net can be flat for APGD


def test_rows_at_the_same_point_share_one_gradient_equal_to_their_own():
    """Two images at three epsilons (rows epsilon-major: 0, 1 at the first epsilon; 2, 3; 4, 5). Image 0's rows all
    sit at one point (a chain 4 -> 2 -> 0), image 1's last two at another: three distinct points, three gradients,
    each bit-identical to what a padded pass of the same size gives the row alone."""
    torch.manual_seed(0)
    model = zoo.build("mobilenet_v2", init="random", num_outputs=2, in_channels=1, image_size=32).eval()
    a, b, c = torch.rand((3, 1, 1, 32, 32)) * 2 - 1
    point = torch.cat([a, b, a, c, a, c])
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    previous = torch.arange(6) - 2
    gradients, which = shared_gradient(model, class_loss, point, y, previous, rows_per_pass=4)
    assert which.tolist() == [0, 1, 0, 2, 0, 2]
    assert len(gradients) == 3
    for row in range(6):
        alone = point[row : row + 1].repeat(4, 1, 1, 1).requires_grad_(True)
        (own,) = torch.autograd.grad(class_loss(model(alone), y[row : row + 1].repeat(4)), alone)
        assert torch.equal(gradients[which[row]], own[0])


def test_pgd_over_a_curve_differentiates_fewer_points_than_rows():
    """PGD-10, step 0.01, no random start, over the 6-epsilon curve, 12 images in passes of 12: without sharing,
    60 passes. Every row starts at its clean image (1 point per image at the first step, not 6) and the ball stops
    the rows one epsilon at a time, so at most 60 - 5 passes are made; fewer where the ball has not stopped a row."""
    torch.manual_seed(0)
    model = zoo.build("mobilenet_v2", init="random", num_outputs=2, in_channels=1, image_size=32).eval()
    x = np.random.default_rng(0).uniform(-1, 1, (12, 1, 32, 32)).astype(np.float32)
    y = np.arange(12) % 2
    how = Crafting(n_logits=2, multilabel=False, batch_size=12, seed=3, device="cpu")
    rows = []  # rows per forward of the surrogate's attack copy, which keeps the hook
    model.register_forward_hook(lambda module, args, out: rows.append(len(args[0])))
    PGD(name="pgd", iterations=10).craft([model], x, y, (0.005, 0.01, 0.02, 0.03, 0.05, 0.08), how)
    passes = rows.count(12)  # the other two forwards are the BatchNorm fold's check, before and after, on 8 images
    assert len(rows) - passes == 2
    assert passes <= 60 - 5


def test_surrogate_model_stacks_ti_then_di_then_the_ensemble(trained):
    m0, m1, _, _ = trained
    blank = np.zeros((2, 1, 16, 16), np.float32)
    stack = surrogate_model([m0, m1], blank, "cpu", ti_kernel=3, diversity_prob=0.3)
    assert [type(layer) for layer in stack] == [GradientSmoothing, InputDiversity, LogitEnsemble]
    with pytest.raises(ValueError, match="at least one surrogate"):
        surrogate_model([], blank, "cpu")


def test_square_spends_at_most_its_query_budget_per_image(trained):
    model, _, x, y = trained
    calls = []

    def target(images):
        calls.append(len(images))
        return _probabilities(model, images)

    budget = 40
    Square(name="square", queries_per_image=budget).craft(target, x[:16], y[:16], (0.05,), HOW)
    assert sum(calls) == budget * 16  # every image spends its whole budget: no flip stop


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
    how = Crafting(n_logits=3, multilabel=True, batch_size=32, seed=0, device="cpu")
    out = PGD(name="pgd", iterations=3).craft([model], x, labels, [0.02], how)[0.02]
    assert 0 < out.max_abs_delta <= 0.02 + 1e-6
    with torch.no_grad():  # the attack raises the multi-label loss of every image's true label vector
        loss = [
            torch.nn.functional.binary_cross_entropy_with_logits(
                model(torch.from_numpy(v)), torch.from_numpy(labels).float()
            ).item()
            for v in (x, out.x_adv)
        ]
    assert loss[1] > loss[0]
