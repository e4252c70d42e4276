"""A run that runs out of device memory is bad input with a fix: one line naming the batch sizes, exit 2."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import medaudit.audit
from medaudit.cli import app
from medaudit.core import AuditInputError

runner = CliRunner()


def _out_of_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.parametrize(
    "batch, training_batch, said",
    [
        (
            64,
            32,
            "cuda ran out of memory; lower `--batch-size` (attack rows per pass, now 64) or the scenario's "
            "`training.batch_size` (now 32)",
        ),
        (
            1,
            1,
            "cuda ran out of memory with one image in flight (`--batch-size 1`, `training.batch_size: 1`); run on a "
            "device with more memory (`--device cpu` uses the host's)",
        ),
    ],
)
def test_out_of_memory_names_the_batch_sizes_in_one_line(tmp_path, monkeypatch, batch, training_batch, said):
    monkeypatch.setattr(medaudit.audit, "run_audit", _out_of_memory)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"name: s\ntraining: {{batch_size: {training_batch}}}\n")
    target = tmp_path / "model.onnx"
    target.write_bytes(b"")
    args = ["run", "--target", str(target), "--scenario", str(scenario), "--device", "cuda"]
    result = runner.invoke(app, [*args, "--batch-size", str(batch), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"medaudit: error: {said}\n"


def test_out_of_memory_with_debug_is_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(medaudit.audit, "run_audit", _out_of_memory)
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\n")
    target = tmp_path / "model.onnx"
    target.write_bytes(b"")
    result = runner.invoke(app, ["--debug", "run", "--target", str(target), "--scenario", str(scenario)])
    assert isinstance(result.exception, AuditInputError) and "ran out of memory" in str(result.exception)
