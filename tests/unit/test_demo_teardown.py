"""A teardown never turns a finished demo into a traceback; only something left running
changes the exit status (issue 18: a missing `nft` crashed a passed demo)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from demo.__main__ import EXIT_FAILED, EXIT_LEFT_RUNNING, EXIT_OK, exit_after_teardown
from demo.local import TeardownReport, _attempt_all
from tests.cluster.node import Attempts, TeardownIncomplete


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200), out


def _fails(message: str) -> None:
    raise FileNotFoundError(message)


def test_a_failing_step_is_one_line_and_the_next_steps_still_run() -> None:
    attempts = Attempts()
    ran = []
    attempts("first", lambda: _fails("[Errno 2] No such file or directory: 'nft'\nmore"))
    attempts("second", lambda: ran.append("second") or ["did second"])
    assert ran == ["second"]
    assert attempts.problems == ["first: [Errno 2] No such file or directory: 'nft'"]


def test_attempt_all_reports_every_problem_of_an_incomplete_teardown() -> None:
    def down() -> None:
        raise TeardownIncomplete(["a: x", "b: y"])

    assert _attempt_all("teardown", down) == ["a: x", "b: y"]
    assert _attempt_all("teardown", lambda: _fails("gone\ntrace")) == ["teardown: gone"]
    assert _attempt_all("teardown", lambda: None) == []


@pytest.mark.parametrize("code", [EXIT_OK, EXIT_FAILED])
def test_clean_up_problems_without_leftovers_keep_the_demo_status(code: int) -> None:
    console, out = _console()
    report = TeardownReport(problems=["remove empty iptables nf_tables tables: nft missing"])
    assert exit_after_teardown(code, report, console) == code
    assert out.getvalue() == ""


def test_a_process_left_running_is_named_and_fails_a_passed_demo() -> None:
    console, out = _console()
    report = TeardownReport(left_running=["kubelet (pid 42)"])
    assert exit_after_teardown(EXIT_OK, report, console) == EXIT_LEFT_RUNNING
    assert "kubelet (pid 42)" in out.getvalue()
    assert exit_after_teardown(EXIT_FAILED, report, console) == EXIT_FAILED
