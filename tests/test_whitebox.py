"""The white-box tier's door on real ONNX and TorchScript files: the deployed target as a differentiable torch
function on canonical images, checked against the black-box runner, or refused in one line.

One seeded network is deployed under many input/output contracts (those of test_target.py and more); through
every one the torch module must give the runner's raw outputs, logits whose softmax is the target's score, and
a gradient at the canonical input.
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pytest
import torch

from medaudit.scenario.threat_model import CardFields
from medaudit.target.black_box import load_target, to_target
from medaudit.target.card import TargetCard
from medaudit.target.differentiable import (
    WHITEBOX_TOLERANCE,
    CanonicalTarget,
    WhiteboxModel,
    WhiteboxUnavailable,
    differentiable_target,
    input_gradient,
    loss_logits,
    straight_through_text,
)
from medaudit.target.straight_through import StraightThrough
from tests.conftest import TinyNet, export, synthetic_images
from tests.test_target import CONTRACTS, Contract

RGB_MEAN, RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's, per channel


class TwoOutputs(torch.nn.Module):
    """TinyNet on [-1, 1] NCHW giving (logits, softmax)."""

    def __init__(self):
        super().__init__()
        self.net = TinyNet()

    def forward(self, x):
        logits = self.net(x)
        return logits, torch.softmax(logits, 1)


class HalfNet(torch.nn.Module):
    """TinyNet with float16 weights on a float16 [0, 1] NCHW input, softmax out."""

    def __init__(self):
        super().__init__()
        self.net = TinyNet().half()

    def forward(self, x):
        return torch.softmax(self.net(x * 2 - 1), 1)


def _rgb_decode(x):
    std, mean = torch.tensor(RGB_STD).reshape(1, 3, 1, 1), torch.tensor(RGB_MEAN).reshape(1, 3, 1, 1)
    return ((x * std + mean) * 2 - 1).mean(1, keepdim=True)


def _deployment(name: str):
    """(module, dummy input, metadata card, export keywords, card overrides) for one ONNX deployment."""
    if name in CONTRACTS:
        decode, dummy, card, head = CONTRACTS[name]
        return Contract(decode, head), dummy, card, {}, None
    grey01, fixed = torch.zeros(2, 1, 16, 16), torch.zeros(3, 1, 16, 16)
    return {
        # a flatten with the batch written in, as graphs exported with a fixed batch have
        "fixed-batch-3": (
            Contract(lambda x: x.reshape(3, 256).reshape(3, 1, 16, 16) * 2 - 1),
            fixed,
            {"value_range": [0, 1]},
            {"dynamic": False},
            None,
        ),
        "two-outputs": (
            TwoOutputs(),
            grey01,
            {"value_range": [-1, 1]},
            {"output_names": ("logits", "probs")},
            CardFields(output_name="probs"),
        ),
        "positive-first": (
            Contract(lambda x: x * 2 - 1, "logits"),
            grey01,
            {"value_range": [0, 1], "positive_index": 0},
            {},
            None,
        ),
        "rgb-meanstd": (Contract(_rgb_decode), torch.zeros(2, 3, 16, 16), {"mean": RGB_MEAN, "std": RGB_STD}, {}, None),
        "rgb-255-nhwc": (
            Contract(lambda x: (x.permute(0, 3, 1, 2) / 127.5 - 1).mean(1, keepdim=True), "logits"),
            torch.zeros(2, 16, 16, 3),
            {"value_range": [0, 255]},
            {},
            None,
        ),
        "float64": (Contract(lambda x: (x * 2 - 1).float()), grey01.double(), {"value_range": [0, 1]}, {}, None),
        "float16": (HalfNet(), grey01.half(), {"value_range": [0, 1]}, {}, None),
    }[name]


ONNX_DEPLOYMENTS = [
    *CONTRACTS,
    "fixed-batch-3",
    "two-outputs",
    "positive-first",
    "rgb-meanstd",
    "rgb-255-nhwc",
    "float64",
    "float16",
]
TORCHSCRIPT_DEPLOYMENTS = {
    # name: (module, card from the scenario)
    "torchscript-01": (
        lambda: Contract(lambda x: x * 2 - 1),
        CardFields(input_size=(16, 16), channels=1, value_range=(0, 1), output_kind="softmax"),
    ),
    "torchscript-tuple": (
        TwoOutputs,
        CardFields(input_size=(16, 16), channels=1, value_range=(-1, 1), output_kind="softmax", output_name="1"),
    ),
}


def _deploy(name: str, tmp_path):
    """A real target file for one deployment, loaded by medaudit as a black box."""
    if name in TORCHSCRIPT_DEPLOYMENTS:
        build, card = TORCHSCRIPT_DEPLOYMENTS[name]
        path = tmp_path / f"{name}.pt"
        torch.jit.save(torch.jit.trace(build().eval(), torch.zeros(2, 1, 16, 16)), str(path))
        return path, load_target(path, card, task="binary")
    module, dummy, card, keywords, overrides = _deployment(name)
    path = export(module, tmp_path / f"{name}.onnx", dummy, card={**card, "task": "binary"}, **keywords)
    return path, load_target(path, overrides)


@pytest.mark.parametrize("name", [*ONNX_DEPLOYMENTS, *TORCHSCRIPT_DEPLOYMENTS])
def test_whitebox_module_is_the_deployed_target(name, tmp_path, canonical_batch):
    path, target = _deploy(name, tmp_path)
    target = target.checked(canonical_batch)
    model = differentiable_target(path, target.card, reference=target.raw_outputs, check_images_pm1=canonical_batch)
    assert isinstance(model, WhiteboxModel), model
    assert model.converter.startswith("torchscript" if name.startswith("torchscript") else "onnx2torch ")
    assert model.check_images == 8 and 0 <= model.max_abs_difference <= model.tolerance
    assert model.straight_through == ()  # a gradient reaches the input as converted
    x = torch.from_numpy(canonical_batch).requires_grad_(True)
    logits = model.module(x)
    assert logits.shape == (8, 2)
    # the logits' softmax is the black-box score (the runner's float16 output rounds to float16 ulps)
    atol = 1e-3 if name == "float16" else 1e-5
    np.testing.assert_allclose(
        torch.softmax(logits, 1)[:, 1].detach().numpy(), target.scores(canonical_batch), atol=atol
    )
    (gradient,) = torch.autograd.grad(logits.sum(), x)
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0
    assert input_gradient(model.module, x).abs().sum() > 0


@pytest.mark.parametrize("name", [*ONNX_DEPLOYMENTS, *TORCHSCRIPT_DEPLOYMENTS])
def test_torch_input_mapping_is_to_target(name, tmp_path):
    card = _deploy(name, tmp_path)[1].card  # the card medaudit resolved for the deployed file
    x = np.random.default_rng(0).uniform(-1, 1, (5, 1, 16, 16)).astype(np.float32)
    ours = CanonicalTarget(torch.nn.Identity(), card, 0).target_input(torch.from_numpy(x)).numpy()
    expected = to_target(x, card)
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    if card.dtype == "uint8":  # the straight-through rounding gives the very grey levels, as floats
        np.testing.assert_array_equal(ours, expected.astype(np.float32))
    else:  # the module casts to the model's dtype after the mapping, as to_target does
        np.testing.assert_allclose(ours.astype(expected.dtype), expected, rtol=1e-6, atol=1e-6)


def test_uint8_rounding_passes_the_gradient_straight_through():
    card = TargetCard(channels=1, layout="NCHW", dtype="uint8", value_range=(0, 255), task="binary")
    x = torch.full((1, 1, 2, 2), 0.3, requires_grad=True)
    y = CanonicalTarget(torch.nn.Identity(), card, 0).target_input(x)
    assert y.flatten().tolist() == [166.0] * 4  # (0.3 + 1) / 2 * 255 = 165.75, rounded
    (gradient,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(gradient, torch.full_like(gradient, 127.5))  # d/dx of (x + 1) / 2 * 255


@pytest.mark.parametrize(
    "kind, task, raw, positive, expected",
    [
        ("logits", "binary", [[2.0]], None, [[0.0, 2.0]]),
        ("sigmoid", "binary", [[0.75]], None, [[0.0, np.log(3.0)]]),  # log 0.75 - log 0.25
        ("softmax", "binary", [[0.2, 0.8]], 1, [[np.log(0.2), np.log(0.8)]]),
        ("logits", "binary", [[1.0, -1.0]], 0, [[-1.0, 1.0]]),  # positive class first: columns swap
        ("sigmoid", "binary", [[0.9, 0.5]], 1, [[0.0, 0.0]]),  # two sigmoids: the positive one's logit
        ("softmax", "multiclass", [[0.5, 0.25, 0.25]], None, [[np.log(0.5), np.log(0.25), np.log(0.25)]]),
        ("sigmoid", "multiclass", [[0.5, 0.8, 0.2]], None, [[0.0, np.log(4.0), -np.log(4.0)]]),
        ("softmax", "binary", [[1.0, 0.0]], 1, [[0.0, np.log(np.finfo(np.float32).tiny)]]),  # floor, not -inf
    ],
)
def test_loss_logits_worked_by_hand(kind, task, raw, positive, expected):
    card = TargetCard(output_kind=kind, task=task, positive_index=positive)
    logits = loss_logits(torch.tensor(raw, dtype=torch.float32), card)
    np.testing.assert_allclose(logits.numpy(), np.array(expected), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- refusals, each one line
def test_operator_onnx2torch_lacks_is_named(tmp_path, canonical_batch):
    path = tmp_path / "opset18.onnx"  # TinyNet's mean pooling is ReduceMean-18 (axes as an input) at opset 18
    torch.onnx.export(
        TinyNet().eval(), (torch.zeros(1, 1, 16, 16),), str(path), input_names=["image"], opset_version=18, dynamo=False
    )
    target = load_target(path, CardFields(value_range=(-1, 1), output_kind="logits"), task="binary")
    target = target.checked(canonical_batch)  # onnxruntime runs it
    model = differentiable_target(path, target.card, reference=target.raw_outputs, check_images_pm1=canonical_batch)
    assert isinstance(model, WhiteboxUnavailable)
    assert "cannot convert operator ReduceMean version 18 (the model's opset is 18)" in model.reason
    assert "\n" not in model.reason


def test_outputs_past_the_tolerance_are_refused(tmp_path, canonical_batch):
    path, target = _deploy("nhwc-255", tmp_path)
    model = differentiable_target(
        path, target.card, reference=lambda x: target.raw_outputs(x) + 1e-2, check_images_pm1=canonical_batch
    )
    assert isinstance(model, WhiteboxUnavailable)
    scale = max(1.0, float(np.abs(target.raw_outputs(canonical_batch)).max()))
    assert f"differs from the black-box runner by 0.01 > tolerance {WHITEBOX_TOLERANCE * scale:.3g}" in model.reason


def test_torchscript_that_casts_its_input_to_integers_is_refused(tmp_path, canonical_batch):
    quantised = Contract(lambda x: x.to(torch.uint8).float() / 127.5 - 1, "logits")  # no gradient past the cast
    path = tmp_path / "q.pt"
    torch.jit.save(torch.jit.trace(quantised.eval(), torch.zeros(2, 1, 16, 16)), str(path))
    card = CardFields(input_size=(16, 16), channels=1, value_range=(0, 255), output_kind="logits")
    target = load_target(path, card, task="binary")
    model = differentiable_target(path, target.card, reference=target.raw_outputs, check_images_pm1=canonical_batch)
    assert isinstance(model, WhiteboxUnavailable) and "no usable gradient reaches the input" in model.reason
    assert "a TorchScript graph cannot be made straight-through" in model.reason and "\n" not in model.reason


def test_graph_with_nothing_to_make_straight_through_is_refused(tmp_path, canonical_batch):
    thresholded = Contract(lambda x: (x > 0).float() * 2 - 1, "logits")  # a comparison: not made straight-through
    path = export(thresholded, tmp_path / "t.onnx", torch.zeros(2, 1, 16, 16), card={"value_range": [-1, 1]})
    target = load_target(path, task="binary")
    model = differentiable_target(path, target.card, reference=target.raw_outputs, check_images_pm1=canonical_batch)
    assert isinstance(model, WhiteboxUnavailable)
    assert (
        "(zero: it has no Round, Floor, Ceil, Sign or integer Cast on floats to make straight-through)" in model.reason
    )


def test_straight_through_that_changes_the_outputs_is_refused(tmp_path, canonical_batch):
    # int32 wraps past 2**31 (x * 4e9), the straight-through cast's float32 does not
    wrapping = Contract(lambda x: ((x * 1e9).to(torch.int32) * 4).float() / 4e9, "logits")
    path = export(wrapping, tmp_path / "w.onnx", torch.zeros(2, 1, 16, 16), card={"value_range": [-1, 1]})
    target = load_target(path, task="binary")
    model = differentiable_target(path, target.card, reference=target.raw_outputs, check_images_pm1=canonical_batch)
    assert isinstance(model, WhiteboxUnavailable)
    assert "the onnx2torch " in model.reason
    assert " model with straight-through for 1 Cast differs from the black-box runner by " in model.reason


def test_straight_through_that_fails_on_the_audit_images_is_refused(tmp_path, canonical_batch):
    levels = torch.linspace(-1, 1, 8)  # a look-up: the cast's integers index a Gather, which refuses floats
    lookup = Contract(lambda x: levels[((x + 1) * 3.5).long()], "logits")
    path = export(lookup, tmp_path / "g.onnx", torch.zeros(2, 1, 16, 16), card={"value_range": [-1, 1]})
    target = load_target(path, task="binary")
    model = differentiable_target(path, target.card, reference=target.raw_outputs, check_images_pm1=canonical_batch)
    assert isinstance(model, WhiteboxUnavailable)
    assert " model made straight-through fails on the audit images (" in model.reason and "\n" not in model.reason


def test_converted_graph_failing_on_the_audit_images_is_refused(tmp_path, canonical_batch):
    path, target = _deploy("fixed-batch-3", tmp_path)
    card = target.card.model_copy(update={"batch_size": None})  # unpadded, 8 images meet a batch of 3 written in
    model = differentiable_target(path, card, reference=target.raw_outputs, check_images_pm1=canonical_batch)
    assert isinstance(model, WhiteboxUnavailable)
    assert f"the onnx2torch {version('onnx2torch')} model fails on the audit images (RuntimeError: " in model.reason
    assert "\n" not in model.reason


def test_multilabel_task_is_refused(tmp_path, canonical_batch):
    path, target = _deploy("nchw-01", tmp_path)
    card = target.card.model_copy(update={"task": "multilabel"})
    model = differentiable_target(path, card, reference=target.raw_outputs, check_images_pm1=canonical_batch)
    assert isinstance(model, WhiteboxUnavailable) and "binary and multiclass" in model.reason


# ---------------------------------------------------------------- ART attacks the module
def test_art_apgd_on_the_module_flips_the_black_box(tmp_path, canonical_batch):
    from art.attacks.evasion import AutoProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    decode, dummy, _, head = CONTRACTS["uint8-nhwc"]  # the runner feeds 8-bit NHWC grey levels to onnxruntime
    deployed = Contract(decode, head)
    with torch.no_grad():  # untrained, so move the head's bias until the images sit on both sides of 0.5, within reach
        logits = deployed.net(torch.from_numpy(canonical_batch))
        deployed.net.head.bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    path = export(deployed, tmp_path / "u8.onnx", dummy, card={"task": "binary"})
    target = load_target(path)
    model = differentiable_target(path, target.card, reference=target.raw_outputs, check_images_pm1=canonical_batch)
    assert isinstance(model, WhiteboxModel), model
    classifier = PyTorchClassifier(
        model=model.module,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 16, 16),
        nb_classes=2,
        clip_values=(-1.0, 1.0),
        preprocessing=None,
    )
    clean = target.scores(canonical_batch) > 0.5
    assert 0 < clean.sum() < 8
    np.random.seed(0)  # ART's random start draws from numpy's global generator
    attack = AutoProjectedGradientDescent(
        classifier,
        norm=np.inf,
        eps=0.1,
        eps_step=0.05,
        max_iter=3,
        batch_size=8,
        loss_type="cross_entropy",
        verbose=False,
    )
    x_adv = attack.generate(canonical_batch, y=clean.astype(np.int64))  # away from the target's own decisions
    assert np.abs(x_adv - canonical_batch).max() <= 0.1 + 1e-6
    flipped = (target.scores(x_adv) > 0.5) != clean
    assert flipped.all(), flipped  # decisions of the deployed ONNX model, through its own 8-bit input


# ---------------------------------------------------------------- straight-through (BPDA) past quantising graphs
QUANTISED = {
    # name: (decode from [-1, 1], the straight-through op types expected)
    "round-8bit": (lambda x: torch.round(x * 127.5) / 127.5, ("Round",)),
    "floor-8bit": (lambda x: torch.floor((x + 1) * 127.5) / 127.5 - 1, ("Floor",)),
    "ceil-16-levels": (lambda x: torch.ceil(x * 8) / 8, ("Ceil",)),
    "sign-binarise": (lambda x: torch.sign(x - 0.2), ("Sign",)),  # (a graph with a gradient path too is left as it is)
    "cast-uint8": (lambda x: ((x + 1) * 127.5).to(torch.uint8).float() / 127.5 - 1, ("Cast",)),
    "cast-int64": (lambda x: ((x + 1) * 127.5).long().float() / 127.5 - 1, ("Cast",)),
    # integer division: Cast, Div, then Cast/Cast back, which meet floats only once the first Cast is rewritten
    "int-division": (lambda x: (((x + 1) * 127.5).to(torch.int32) // 2).float() / 63.5 - 1, ("Cast", "Cast", "Cast")),
    "posterise-twice": (lambda x: torch.round(torch.round(x * 127.5) / 127.5 * 8) / 8, ("Round", "Round")),
}


def _quantised(name: str, tmp_path):
    """(path, black-box target) of TinyNet behind one quantising decode on [-1, 1] NCHW, logits out."""
    path = export(
        Contract(QUANTISED[name][0], "logits"),
        tmp_path / f"{name}.onnx",
        torch.zeros(2, 1, 16, 16),
        card={"value_range": [-1, 1], "task": "binary"},
    )
    return path, load_target(path)


@pytest.mark.parametrize("name", QUANTISED)
def test_quantising_graph_is_attacked_straight_through(name, tmp_path, canonical_batch):
    path, target = _quantised(name, tmp_path)
    target = target.checked(canonical_batch)
    model = differentiable_target(path, target.card, reference=target.raw_outputs, check_images_pm1=canonical_batch)
    assert isinstance(model, WhiteboxModel), model
    assert model.straight_through == QUANTISED[name][1]
    assert model.max_abs_difference <= model.tolerance
    # the forward is onnxruntime's off the check images too, where an attack takes them
    noisy = np.clip(canonical_batch + np.random.default_rng(1).uniform(-0.05, 0.05, canonical_batch.shape), -1, 1)
    for x in (canonical_batch, noisy.astype(np.float32)):
        with torch.no_grad():
            ours = model.module.raw(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ours, target.raw_outputs(x), rtol=0, atol=model.tolerance)
    gradient = input_gradient(model.module, torch.from_numpy(canonical_batch))
    assert torch.isfinite(gradient).all() and (gradient.flatten(1).abs().sum(1) > 0).all()


def test_straight_through_gradient_lowers_the_true_class_margin(tmp_path, canonical_batch):
    path, target = _quantised("round-8bit", tmp_path)
    model = differentiable_target(path, target.card, reference=target.raw_outputs, check_images_pm1=canonical_batch)
    assert isinstance(model, WhiteboxModel) and model.straight_through == ("Round",)
    labels = torch.from_numpy(synthetic_images(8, 16)[1].astype(np.int64))  # the classes canonical_batch was made with

    def margin(logits):  # true-class logit minus the other's
        return (logits[:, 1] - logits[:, 0]) * (2 * labels - 1)

    clean = torch.from_numpy(canonical_batch)
    x, epsilon, step = clean.clone(), 0.05, 0.02
    for _ in range(5):  # PGD with signed gradients in the L-inf ball
        x.requires_grad_(True)
        (gradient,) = torch.autograd.grad(margin(model.module(x)).sum(), x)
        x = (x.detach() - step * gradient.sign()).clamp(clean - epsilon, clean + epsilon).clamp(-1, 1)
    before = margin(torch.from_numpy(target.raw_outputs(canonical_batch)))
    after = margin(torch.from_numpy(target.raw_outputs(x.numpy())))  # the deployed ONNX model, rounding included
    assert (after < before).sum() >= 6, (before, after)


@pytest.mark.parametrize(
    "names, expected",
    [
        ((), None),
        (("Round",), "straight-through for 1 Round"),
        (("Cast", "Round", "Round"), "straight-through for 2 Round, 1 Cast"),  # most common first
        (("Floor", "Cast"), "straight-through for 1 Cast, 1 Floor"),  # a tie goes by name
        (("Sign", "Cast", "Round", "Cast", "Round"), "straight-through for 2 Cast, 2 Round, 1 Sign"),
    ],
)
def test_straight_through_text_worked_by_hand(names, expected):
    assert straight_through_text(names) == expected


def test_straight_through_forward_is_the_operator_backward_the_identity():
    from onnx.onnx_pb import TensorProto
    from onnx2torch.node_converters.cast import OnnxCast
    from onnx2torch.node_converters.functions import OnnxFunction

    sign = StraightThrough(OnnxFunction("Sign"), "Sign")
    x = torch.tensor([-1e10, -0.3, 0.0, 0.3, 1e10], requires_grad=True)
    y = sign(x)  # x + (sign(x) - x) would give 0 at 1e10
    assert y.tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0]
    assert torch.autograd.grad(y.sum(), x)[0].tolist() == [1.0] * 5
    cast = StraightThrough(OnnxCast(int(TensorProto.UINT8)), "Cast")
    x = torch.tensor([0.2, 1.7, 254.9], requires_grad=True)
    y = cast(x)  # the grey levels as float32, as the graph's cast back to float gives them
    assert y.dtype == torch.float32 and y.tolist() == [0.0, 1.0, 254.0]
    assert torch.autograd.grad(y.sum(), x)[0].tolist() == [1.0] * 3
    shape = torch.tensor([2, 3])  # integer shape arithmetic keeps the operator as it is
    assert cast(shape).dtype == torch.uint8 and cast(shape).tolist() == [2, 3]
