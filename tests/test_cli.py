"""The command line: exit codes and one-line messages for the mistakes users make."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from medaudit.cli import app
from medaudit.core.errors import AuditInputError
from tests.conftest import TinyNet, export

runner = CliRunner()


def _target(tmp_path, card=None):
    return export(
        TinyNet(),
        tmp_path / "m.onnx",
        torch.zeros(2, 1, 16, 16),
        card=card if card is not None else {"value_range": [-1, 1], "task": "binary"},
    )


def _run(target, scenario, data, out):
    return runner.invoke(
        app, ["run", "--target", str(target), "--scenario", str(scenario), "--data", str(data), "--out", str(out)]
    )


def _rows(output: str) -> dict[str, str]:
    """inspect's table as {card field: the rest of its row}, from rich's box drawing."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 3 and cells[0]:
            rows[cells[0]] = f"{cells[1]} | {cells[2]}"
    return rows


def test_inspect_shows_card_fields_and_their_sources(tmp_path, synthetic_npz):
    path = _target(tmp_path)
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert rows["value_range"] == "(-1.0, 1.0) | onnx metadata" and rows["output_kind"] == "logits | graph (final op)"
    assert rows["layout"] == "NCHW | graph" and rows["positive_index"] == "1 | default (binary: column 1 of two)"
    checked = runner.invoke(app, ["inspect", str(path), "--data", str(synthetic_npz)])
    assert checked.exit_code == 0, checked.output
    assert "check on 32 audit images: passed (2 output column(s)" in checked.output
    assert "); test images 32, development 64; image-level splits" in checked.output


def test_inspect_shows_what_it_read_then_names_each_missing_line(tmp_path):
    class Sigmoid(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = TinyNet()

        def forward(self, x):
            logits = self.net(x)
            return torch.sigmoid(logits[:, 1:] - logits[:, :1])

    path = export(Sigmoid(), tmp_path / "sig.onnx", torch.zeros(2, 1, 16, 16))
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 2
    rows = _rows(result.stdout)
    assert rows["output_kind"] == "sigmoid | graph (final op)" and rows["input_size"] == "(16, 16) | graph"
    assert rows["task"] == "MISSING | add `task: binary`"
    assert rows["value_range"].startswith("MISSING | add `value_range: [0, 1]")
    assert result.stderr.strip() == (
        f"medaudit: error: {path}: 2 card field(s) needed and missing; add `task: binary`; "
        "`value_range: [0, 1]` to scenario `target.card`, sig.onnx.card.yaml, or ONNX "
        "metadata `medaudit.card`"
    )
    (tmp_path / "sig.onnx.card.yaml").write_text("task: binary\nvalue_range: [0, 1]\n")
    complete = runner.invoke(app, ["inspect", str(path)])
    assert complete.exit_code == 0, complete.output
    rows = _rows(complete.stdout)
    assert rows["positive_index"] == "— | not used: one output column"  # no column 1


@pytest.mark.parametrize(
    "kind, said",
    [
        ("state_dict-zip", "a zip written by torch.save (a pickled state_dict or model, no TorchScript code)"),
        ("raw-pickle", "a raw Python pickle"),
        ("empty", "the model file is empty (0 bytes)"),
    ],
)
def test_inspect_says_what_a_non_model_file_is(tmp_path, kind, said):
    path = tmp_path / "weights.pt"
    if kind == "empty":
        path.write_bytes(b"")
    else:
        torch.save(TinyNet().state_dict(), path, _use_new_zipfile_serialization=kind == "state_dict-zip")
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"medaudit: error: {path}: {said}") and len(result.stderr.splitlines()) == 1
    if kind != "empty":
        assert "medaudit never unpickles" in result.stderr and "not a readable ONNX model" not in result.stderr


def test_inspect_unreadable_model_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    result = runner.invoke(app, ["inspect", str(bad)])
    assert result.exit_code == 2 and "not a readable ONNX model" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_debug_flag_shows_the_exception(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    result = runner.invoke(app, ["--debug", "inspect", str(bad)])
    assert isinstance(result.exception, AuditInputError)


def test_run_without_data_or_with_unresolvable_surrogate(tmp_path, synthetic_npz):
    path = _target(tmp_path)
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nsurrogates: [{arch: same}]\n")
    no_data = runner.invoke(
        app, ["run", "--target", str(path), "--scenario", str(scenario), "--out", str(tmp_path / "o")]
    )
    assert no_data.exit_code == 2 and "no data: give --data PATH" in no_data.output
    same = runner.invoke(
        app,
        [
            "run",
            "--target",
            str(path),
            "--scenario",
            str(scenario),
            "--data",
            str(synthetic_npz),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert same.exit_code == 2 and "`arch: same` needs the target card's `architecture`" in same.output
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_run_missing_target_file_is_a_one_line_usage_error(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\n")
    result = runner.invoke(app, ["run", "--target", str(tmp_path / "nope.onnx"), "--scenario", str(scenario)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        f"medaudit: error: Invalid value for '--target': file '{tmp_path / 'nope.onnx'}' does not "
        "exist. (see `root run --help`)\n"
    )


@pytest.mark.parametrize(
    "args, said",
    [
        (["run", "--bogus"], "No such option: --bogus"),
        (["nonsense"], "No such command 'nonsense'"),
        (["run", "--batch-size", "0", "--target", "x", "--scenario", "y"], "Invalid value for '--batch-size'"),
    ],
)
def test_usage_errors_are_one_line(args, said):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"medaudit: error: {said}") and len(result.stderr.splitlines()) == 1


def test_third_party_deprecation_warnings_only_with_debug(tmp_path, recwarn):
    # recwarn records every warning that reaches the terminal's warning machinery (pytest captures the terminal).
    # --debug goes first: the quiet run installs its filters for the rest of the process, as one CLI call would.
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.trace(TinyNet().eval(), torch.zeros(2, 1, 16, 16)), str(path))
    card = tmp_path / "model.pt.card.yaml"
    card.write_text("input_size: [16, 16]\nchannels: 1\nvalue_range: [-1, 1]\noutput_kind: logits\ntask: binary\n")
    recwarn.clear()
    loud = runner.invoke(app, ["--debug", "inspect", str(path)])
    assert loud.exit_code == 0, loud.output
    assert any("`torch.jit.load` is deprecated" in str(w.message) for w in recwarn)
    recwarn.clear()
    quiet = runner.invoke(app, ["inspect", str(path)])
    assert quiet.exit_code == 0, quiet.output
    assert [str(w.message) for w in recwarn] == []


def test_report_of_missing_or_foreign_json(tmp_path):
    other = tmp_path / "results.json"
    other.write_text('{"hello": 1}')
    result = runner.invoke(app, ["report", str(other)])
    assert result.exit_code == 2 and "results schema version None" in result.output


def test_run_refuses_missing_imagenet_weights_before_writing(tmp_path, synthetic_npz):
    path = _target(tmp_path)
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nsurrogates: [{arch: resnet18, init: imagenet}]\nweights_dir: %s\n" % tmp_path)
    result = _run(path, scenario, synthetic_npz, tmp_path / "o")
    assert result.exit_code == 2 and "resnet18-f37072fd.pth not found in weights_dir" in result.output
    assert not (tmp_path / "o").exists()


def test_run_refuses_data_size_that_contradicts_the_model(tmp_path, synthetic_npz):
    path = _target(tmp_path)
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\ndata: {image_size: 32}\n")
    result = _run(path, scenario, synthetic_npz, tmp_path / "o")
    assert result.exit_code == 2 and "card `input_size` is (32, 32) (scenario) but the model input" in result.output


def test_bare_command_prints_the_help():
    result = runner.invoke(app, [])
    assert result.exit_code == 0 and "Usage:" in result.output and "inspect" in result.output


def test_run_help_names_each_flag_once_and_keeps_brackets():
    text = runner.invoke(app, ["run", "--help"]).output
    assert "--no-report" in text and "--no-no-report" not in text
    assert "pip install 'medaudit[ray]'" in text  # not swallowed as markup


def test_inspect_of_a_one_sigmoid_torchscript_model_with_its_card(tmp_path):
    class Sigmoid(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = TinyNet()

        def forward(self, x):
            logits = self.net(x)
            return torch.sigmoid(logits[:, 1:] - logits[:, :1])

    path = tmp_path / "sig.pt"
    torch.jit.save(torch.jit.trace(Sigmoid().eval(), torch.zeros(2, 1, 16, 16)), str(path))
    (tmp_path / "sig.pt.card.yaml").write_text(
        "input_size: [16, 16]\nchannels: 1\nvalue_range: [-1, 1]\noutput_kind: sigmoid\ntask: binary\n"
    )
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert _rows(result.stdout)["positive_index"] == "— | not used: one output column"


def test_the_package_licence_is_an_spdx_expression():
    from pathlib import Path

    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"  # a table is deprecated by setuptools (and warns at every install)
