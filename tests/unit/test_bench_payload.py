"""The payload section's verdict: ours against the peer with the least Redis CPU at 100 KB."""

from __future__ import annotations

from typing import Any

from bench import report


def _row(system: str, size: int, cpu: float) -> dict[str, Any]:
    return {"system": system, "x": size, "redis_cpu_us_per_job": cpu}


ROWS = [
    _row("ours", 100, 50.0),
    _row("arq", 100, 10.0),
    _row("ours", 100_000, 900.0),
    _row("celery", 100_000, 700.0),
    _row("arq", 100_000, 800.0),
    {"system": "rq", "x": 100_000, "error": "failed"},  # a failed run is no best peer
]


def test_ours_is_compared_with_the_cheapest_peer_at_that_size() -> None:
    ratio = report.payload_ratio(ROWS, 100_000)
    assert ratio is not None
    assert ratio["peer"] == "celery" and abs(ratio["ratio"] - 900 / 700) < 1e-9
    assert report.payload_ratio(ROWS, 100)["peer"] == "arq"  # type: ignore[index]
    assert report.payload_ratio(ROWS, 10_000) is None


def test_the_targets_table_judges_the_100_kb_ratio() -> None:
    def verdict(rows: list[dict[str, Any]]) -> str:
        data = {"sections": {"payload": {"data": {"rows": rows}}}}
        line = next(x for x in report._targets(data) if "100 KB payloads" in x)
        return line.rsplit("|", 2)[1].strip()

    assert verdict(ROWS) == "met"
    assert verdict([_row("ours", 100_000, 1500.0), _row("arq", 100_000, 700.0)]) == "**missed**"
    assert verdict([]) == "not measured"
