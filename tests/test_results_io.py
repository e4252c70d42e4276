"""results.json round trip with the values a target at chance produces: +inf thresholds and undefined bounds."""

from __future__ import annotations

import json
import math

from medaudit.records.results import read_results, write_results
from medaudit.report.render import render_html
from tests.fixtures_results import make_results


def _at_chance(results):
    """The fixture run as a constant-score target leaves it: no clean score reaches the specificity, so the
    threshold is +inf, and every bootstrap resample of one cell is degenerate, so its bounds are nan."""
    first = results.cells[0]
    op = first.operating_point.model_copy(update={"threshold": math.inf})
    undefined = first.relative_auc.model_copy(update={"low": math.nan, "high": math.nan})
    cell = first.model_copy(update={"operating_point": op, "relative_auc": undefined})
    return results.model_copy(update={"cells": (cell, *results.cells[1:])})


def test_non_finite_values_are_written_as_standard_json_and_read_back(tmp_path):
    results = _at_chance(make_results())
    path = tmp_path / "results.json"
    write_results(results, path)
    raw = json.loads(path.read_text())  # strict JSON: no bare Infinity / NaN literals
    assert raw["cells"][0]["operating_point"]["threshold"] == "Infinity"
    assert raw["cells"][0]["relative_auc"]["low"] == "NaN"
    assert "Infinity," not in path.read_text() and "NaN," not in path.read_text()
    back = read_results(path)
    assert back.cells[0].operating_point.threshold == math.inf
    assert math.isnan(back.cells[0].relative_auc.low) and math.isnan(back.cells[0].relative_auc.high)
    assert back.cells[1:] == results.cells[1:]
    assert "interval undefined" in render_html(back)
