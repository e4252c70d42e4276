"""The target loader on real ONNX and TorchScript files whose input/output contracts differ.

One seeded network is deployed under many contracts (layout, value range, dtype, fixed batch,
output kind, several outputs); medaudit must give the same scores through every one of them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medaudit.core.errors import AuditInputError
from medaudit.core.pixels import deliver_uint8
from medaudit.scenario.threat_model import CardFields
from medaudit.target.black_box import TargetQueries, from_target, load_target, to_target
from tests.conftest import TinyNet, export

MEAN, STD = (0.485,), (0.229,)


class Contract(torch.nn.Module):
    """TinyNet behind a deployed input contract; `decode` maps the contract back to [-1, 1] NCHW."""

    def __init__(self, decode, head="softmax"):
        super().__init__()
        self.net, self.decode, self.head = TinyNet(), decode, head

    def forward(self, x):
        logits = self.net(self.decode(x))
        if self.head == "softmax":
            return torch.softmax(logits, 1)
        if self.head == "sigmoid":
            return torch.sigmoid(logits[:, 1:] - logits[:, :1])
        return logits


CONTRACTS = {
    # name: (decode, dummy input, card, head)
    "nchw-01": (lambda x: x * 2 - 1, torch.zeros(2, 1, 16, 16), {"value_range": [0, 1]}, "softmax"),
    "nhwc-255": (
        lambda x: x.permute(0, 3, 1, 2) / 127.5 - 1,
        torch.zeros(2, 16, 16, 1),
        {"value_range": [0, 255]},
        "logits",
    ),
    "meanstd": (
        lambda x: (x * STD[0] + MEAN[0]) * 2 - 1,
        torch.zeros(2, 1, 16, 16),
        {"mean": MEAN, "std": STD},
        "softmax",
    ),
    "sigmoid-1out": (lambda x: x, torch.zeros(2, 1, 16, 16), {"value_range": [-1, 1]}, "sigmoid"),
    "uint8-nhwc": (
        lambda x: x.permute(0, 3, 1, 2).float() / 127.5 - 1,
        torch.zeros(2, 16, 16, 1, dtype=torch.uint8),
        {},
        "softmax",
    ),
}


def reference_scores(x_pm1: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(TinyNet()(torch.from_numpy(x_pm1)), 1)[:, 1].double().numpy()


@pytest.mark.parametrize("name", CONTRACTS)
def test_same_network_same_scores_under_every_contract(name, tmp_path, canonical_batch):
    decode, dummy, card, head = CONTRACTS[name]
    path = export(Contract(decode, head), tmp_path / f"{name}.onnx", dummy, card={**card, "task": "binary"})
    target = load_target(path).checked(canonical_batch)
    assert (target.load_check.images, target.load_check.output_columns) == (
        len(canonical_batch),
        2 - (head == "sigmoid"),
    )
    expected_input = deliver_uint8(canonical_batch) if name.startswith("uint8") else canonical_batch
    queries = TargetQueries(target)
    np.testing.assert_allclose(queries.scores(canonical_batch), reference_scores(expected_input), atol=1e-5)
    assert queries.images == len(canonical_batch)  # every image scored is a query
    kind = {"softmax": "softmax", "sigmoid": "sigmoid", "logits": "logits"}[head]
    assert target.card.output_kind == kind and target.card.sources["output_kind"] == "graph (final op)"
    assert target.card.sources["layout"] == "graph"


def test_fixed_batch_graph_is_padded(tmp_path, canonical_batch):
    path = export(
        Contract(lambda x: x * 2 - 1),
        tmp_path / "fixed.onnx",
        torch.zeros(3, 1, 16, 16),
        card={"value_range": [0, 1], "task": "binary"},
        dynamic=False,
    )
    target = load_target(path)
    assert target.card.batch_size == 3
    queries = TargetQueries(target)
    np.testing.assert_allclose(queries.scores(canonical_batch), reference_scores(canonical_batch), atol=1e-5)
    assert queries.images == 8 and queries.calls == 3  # 8 images in batches of 3; padding is not counted


def test_torchscript_target_with_card_from_scenario(tmp_path, canonical_batch):
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.trace(Contract(lambda x: x * 2 - 1).eval(), torch.zeros(2, 1, 16, 16)), str(path))
    card = CardFields(input_size=(16, 16), channels=1, value_range=(0, 1), output_kind="softmax")
    target = load_target(path, card, task="binary").checked(canonical_batch)
    np.testing.assert_allclose(target.scores(canonical_batch), reference_scores(canonical_batch), atol=1e-5)
    assert target.card.sources["value_range"] == "scenario"
    assert target.card.positive_index == 1 and target.card.sources["positive_index"].startswith("default")


def test_a_one_sigmoid_torchscript_model_is_read_as_one_column(tmp_path, canonical_batch):
    path = tmp_path / "sigmoid.pt"
    torch.jit.save(torch.jit.trace(Contract(lambda x: x, "sigmoid").eval(), torch.zeros(2, 1, 16, 16)), str(path))
    card = CardFields(input_size=(16, 16), channels=1, value_range=(-1, 1), output_kind="sigmoid")
    target = load_target(path, card, task="binary").checked(canonical_batch)
    assert target.card.positive_index is None  # the blank probe saw one column: no column 1 of two to default to
    assert target.card.sources["positive_index"] == "not used: one output column"
    np.testing.assert_allclose(target.scores(canonical_batch), reference_scores(canonical_batch), atol=1e-5)


def test_sidecar_card_is_read(tmp_path, canonical_batch):
    path = export(Contract(lambda x: x * 2 - 1), tmp_path / "side.onnx", torch.zeros(2, 1, 16, 16))
    (tmp_path / "side.onnx.card.yaml").write_text("value_range: [0, 1]\ntask: binary\narchitecture: tiny_cnn\n")
    target = load_target(path)
    assert target.card.sources["value_range"] == "sidecar" and target.card.architecture == "tiny_cnn"


@pytest.mark.parametrize("name", ["nchw-01", "nhwc-255", "meanstd"])
def test_contract_conversion_round_trips(name, canonical_batch):
    card = CardFields(
        channels=1,
        layout="NHWC" if "nhwc" in name else "NCHW",
        dtype="float32",
        **{k: tuple(v) for k, v in CONTRACTS[name][2].items()},
    )
    np.testing.assert_allclose(from_target(to_target(canonical_batch, card), card), canonical_batch, atol=1e-5)


def test_grey_images_are_repeated_for_a_colour_target(canonical_batch):
    card = CardFields(channels=3, layout="NCHW", dtype="float32", value_range=(0, 1))
    x = to_target(canonical_batch, card)
    assert x.shape == (8, 3, 16, 16) and np.array_equal(x[:, 0], x[:, 2])


# ---------------------------------------------------------------- errors, each one clear line
def _two_outputs(tmp_path):
    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = TinyNet()

        def forward(self, x):
            logits = self.net(x)
            return logits, torch.softmax(logits, 1)

    return export(
        Two(),
        tmp_path / "two.onnx",
        torch.zeros(2, 1, 16, 16),
        card={"value_range": [-1, 1]},
        output_names=("logits", "probs"),
    )


def test_several_outputs_need_output_name(tmp_path, canonical_batch):
    path = _two_outputs(tmp_path)
    with pytest.raises(AuditInputError, match=r"2 outputs \(logits, probs\); set target card `output_name`"):
        load_target(path, task="binary")
    target = load_target(path, CardFields(output_name="probs"), task="binary")
    assert target.card.output_kind == "softmax"
    np.testing.assert_allclose(target.scores(canonical_batch), reference_scores(canonical_batch), atol=1e-5)


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("missing", "target model file not found"),
        ("garbage", "not a readable ONNX model"),
        ("channels", r"card `channels` is 3 \(scenario\) but the model input .* says 1"),
        ("no-range", "no input value range; add `value_range: \\[0, 1\\]`"),
        ("bad-softmax", "card says output_kind softmax but rows sum to 1"),
    ],
)
def test_bad_targets_fail_with_one_clear_line(case, pattern, tmp_path, canonical_batch):
    path = tmp_path / "m.onnx"
    card = CardFields()
    if case == "garbage":
        path.write_bytes(b"\x08\x01this is not a model")
    elif case != "missing":
        head = "logits" if case == "bad-softmax" else "softmax"
        export(
            Contract(lambda x: x, head),
            path,
            torch.zeros(2, 1, 16, 16),
            card=None if case == "no-range" else {"value_range": [-1, 1]},
        )
        card = (
            CardFields(channels=3)
            if case == "channels"
            else CardFields(output_kind="softmax")
            if case == "bad-softmax"
            else card
        )
    with pytest.raises(AuditInputError, match=pattern) as info:
        load_target(path, card, task="binary").checked(canonical_batch)
    assert "\n" not in str(info.value)


def test_nondeterministic_model_is_refused(tmp_path, canonical_batch):
    class Noisy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = TinyNet()

        def forward(self, x):
            return torch.softmax(self.net(torch.nn.functional.dropout(x, 0.5, training=True)), 1)

    path = tmp_path / "noisy.pt"
    torch.jit.save(torch.jit.script(Noisy()), str(path))
    card = CardFields(input_size=(16, 16), channels=1, value_range=(-1, 1), output_kind="softmax")
    with pytest.raises(AuditInputError, match="same input gave outputs differing"):
        load_target(path, card, task="binary").checked(canonical_batch)


def test_bad_sidecar_card_names_the_field(tmp_path):
    path = export(Contract(lambda x: x * 2 - 1), tmp_path / "side.onnx", torch.zeros(2, 1, 16, 16))
    (tmp_path / "side.onnx.card.yaml").write_text("value_range: [0, 1]\noutput_kind: probabilities\n")
    with pytest.raises(AuditInputError, match=r"side.onnx.card.yaml: card field `output_kind`: Input should be"):
        load_target(path)


def test_float64_input_graph(tmp_path, canonical_batch):
    path = export(
        Contract(lambda x: (x * 2 - 1).float()),
        tmp_path / "f64.onnx",
        torch.zeros(2, 1, 16, 16, dtype=torch.float64),
        card={"value_range": [0, 1], "task": "binary"},
    )
    target = load_target(path)
    assert target.card.dtype == "float64" and target.card.sources["dtype"] == "graph"
    np.testing.assert_allclose(target.scores(canonical_batch), reference_scores(canonical_batch), atol=1e-5)


def test_the_card_metadata_key_is_the_one_deployed_files_carry():
    from medaudit.target.runners import CARD_METADATA_KEY

    assert CARD_METADATA_KEY == "medaudit.card"  # written into users' ONNX files: renaming it orphans their cards
