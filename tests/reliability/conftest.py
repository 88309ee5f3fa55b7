"""Fixtures and markers of the reliability suite (tests/reliability).

Two sizes. Tests parametrized with ``sizes(fast, full)`` run the small variant (marked
``chaos_fast``) in `make test` and the large one (marked ``chaos_full``) only in `make chaos`.
``chaos_full`` items are deselected unless env ``JQ_CHAOS=full`` is set or the ``-m``
expression names ``chaos_full``; so a plain ``pytest tests`` runs the fast subset only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.redis_server import RedisServer
from tests.reliability.support import Figures, record_figures
from tests.reliability.support import sizes as sizes  # moved there; kept for old imports

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos_full: full-size reliability run (make chaos only)")
    config.addinivalue_line(
        "markers", "chaos_fast: small variant of a chaos_full test (make test; make chaos skips)"
    )


def _full_requested(config: pytest.Config) -> bool:
    return os.environ.get("JQ_CHAOS") == "full" or "chaos_full" in (config.option.markexpr or "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _full_requested(config):
        return
    keep, drop = [], []
    for item in items:
        ours = HERE in Path(str(item.fspath)).resolve().parents
        (drop if ours and item.get_closest_marker("chaos_full") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[OUTCOME] = report.outcome
    return report


OUTCOME = pytest.StashKey[str]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """The test's figures; written to the figures file when the test ends, with its outcome."""
    section = getattr(request.module, "SECTION", request.module.__name__)
    fig = Figures(test=request.node.nodeid, section=section)
    yield fig
    outcome = request.node.stash.get(OUTCOME, "error")
    record_figures(fig.test, fig.section, {"outcome": outcome, **fig.values})


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Logs and the chaos task module of this test's processes."""
    return tmp_path


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-servers (for tests that kill or restart Redis); all cleaned up."""
    servers: list[RedisServer] = []

    def make(*extra_args: str, password: str | None = None) -> RedisServer:
        server = RedisServer(password=password, extra_args=tuple(extra_args)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.cleanup()
