"""The command line: exit codes and one-line messages for the mistakes users make."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from medaudit.cli import app
from medaudit.errors import AuditInputError
from tests.conftest import TinyNet, export

runner = CliRunner()


def _target(tmp_path, card=None):
    return export(TinyNet(), tmp_path / "m.onnx", torch.zeros(2, 1, 16, 16),
                  card=card if card is not None else {"value_range": [-1, 1], "task": "binary"})


def test_inspect_shows_card_fields_and_their_sources(tmp_path, pneumonia_path):
    path = _target(tmp_path)
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "onnx metadata" in result.output and "graph (final op)" in result.output and "NCHW" in result.output
    checked = runner.invoke(app, ["inspect", str(path), "--data", str(pneumonia_path)])
    assert checked.exit_code == 0 and "passed" in checked.output


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


def test_run_without_data_or_with_unresolvable_surrogate(tmp_path, pneumonia_path):
    path = _target(tmp_path)
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nsurrogates: [{arch: same}]\n")
    no_data = runner.invoke(app, ["run", "--target", str(path), "--scenario", str(scenario), "--out", str(tmp_path / "o")])
    assert no_data.exit_code == 2 and "no data: give --data PATH" in no_data.output
    same = runner.invoke(app, ["run", "--target", str(path), "--scenario", str(scenario), "--data", str(pneumonia_path),
                               "--out", str(tmp_path / "o")])
    assert same.exit_code == 2 and "`arch: same` needs the target card's `architecture`" in same.output
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_run_missing_target_file_is_a_usage_error(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\n")
    result = runner.invoke(app, ["run", "--target", str(tmp_path / "nope.onnx"), "--scenario", str(scenario)])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_report_of_missing_or_foreign_json(tmp_path):
    other = tmp_path / "results.json"
    other.write_text('{"hello": 1}')
    result = runner.invoke(app, ["report", str(other)])
    assert result.exit_code == 2 and "results schema version None" in result.output


def test_run_refuses_missing_imagenet_weights_before_writing(tmp_path, pneumonia_path):
    path = _target(tmp_path)
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nsurrogates: [{arch: resnet18, init: imagenet}]\nweights_dir: %s\n" % tmp_path)
    result = runner.invoke(app, ["run", "--target", str(path), "--scenario", str(scenario), "--data",
                                 str(pneumonia_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "resnet18-f37072fd.pth not found in weights_dir" in result.output
    assert not (tmp_path / "o").exists()


def test_run_refuses_data_size_that_contradicts_the_model(tmp_path, pneumonia_path):
    path = _target(tmp_path)
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\ndata: {image_size: 32}\n")
    result = runner.invoke(app, ["run", "--target", str(path), "--scenario", str(scenario), "--data",
                                 str(pneumonia_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "card `input_size` is (32, 32) (scenario) but the model input" in result.output
