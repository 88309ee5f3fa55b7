"""The README's measured figures are generated from bench/results.json, never typed by hand."""

from __future__ import annotations

import json

import pytest

from bench import report
from bench.constants import RESULTS_JSON


def test_the_readme_block_is_the_one_results_json_gives() -> None:
    data = json.loads(RESULTS_JSON.read_text())
    readme = report.README.read_text()
    assert report.readme_block(data) in readme, (
        "README.md's measured figures are stale: run `python -m bench --report`"
    )
    assert report.with_readme_block(readme, data) == readme


def test_replacing_the_block_keeps_the_rest_of_the_readme() -> None:
    data = {"sections": {}}
    text = f"intro\n{report.README_BEGIN}\nold figures\n{report.README_END}\noutro\n"
    out = report.with_readme_block(text, data)
    assert out.startswith("intro\n") and out.endswith("\noutro\n")
    assert "old figures" not in out and "not measured" in out


def test_a_readme_without_the_markers_is_an_error() -> None:
    with pytest.raises(ValueError, match="bench:targets:begin"):
        report.with_readme_block("no markers here", {"sections": {}})
