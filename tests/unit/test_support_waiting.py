"""The test suites' polling helpers (tests.support.waiting): values, timeouts, errors."""

from __future__ import annotations

import pytest

from tests.support.waiting import eventually, wait_for

TINY = 0.001  # seconds: every poll here is in-process, nothing to wait for


class Probe:
    """Falsy (or raising `error`) for the first `misses` calls, then `value`."""

    def __init__(
        self, misses: int, value: object = "ready", error: Exception | None = None
    ) -> None:
        self.misses, self.value, self.error = misses, value, error
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if self.calls <= self.misses:
            if self.error is not None:
                raise self.error
            return None
        return self.value

    async def aio(self) -> object:
        return self()


def test_wait_for_returns_the_first_truthy_value() -> None:
    probe = Probe(misses=3, value={"ready": True})
    assert wait_for("the thing", probe, 60, interval=TINY) == {"ready": True}
    assert probe.calls == 4


def test_wait_for_times_out_naming_what_with_the_diagnosis() -> None:
    probe = Probe(misses=10**9)
    with pytest.raises(pytest.fail.Exception) as failed:
        wait_for("the thing", probe, TINY, interval=TINY, diagnose=lambda: "--- log ---\nboom")
    message = str(failed.value)
    assert "timed out after 0 s waiting for the thing" in message
    assert message.endswith("\n--- log ---\nboom")
    assert "last error" not in message
    assert probe.calls >= 2


def test_wait_for_retries_a_tolerated_error() -> None:
    probe = Probe(misses=3, error=ValueError("not yet"))
    assert wait_for("the thing", probe, 60, interval=TINY, tolerate=(ValueError,)) == "ready"
    assert probe.calls == 4


def test_wait_for_names_the_last_tolerated_error_on_timeout() -> None:
    probe = Probe(misses=10**9, error=ValueError("not yet"))
    with pytest.raises(
        pytest.fail.Exception, match=r"the thing \(last error: ValueError\('not yet'\)\)"
    ):
        wait_for("the thing", probe, TINY, interval=TINY, tolerate=(ValueError,))


def test_wait_for_lets_an_untolerated_error_through_at_once() -> None:
    probe = Probe(misses=3, error=KeyError("gone"))
    with pytest.raises(KeyError, match="gone"):
        wait_for("the thing", probe, 60, interval=TINY, tolerate=(ValueError,))
    assert probe.calls == 1


def test_wait_for_stops_when_check_fails_even_with_everything_tolerated() -> None:
    probe = Probe(misses=10**9)
    rounds: list[int] = []

    def check() -> None:
        rounds.append(len(rounds))
        assert len(rounds) < 3, "refused"

    with pytest.raises(AssertionError, match="refused"):
        wait_for("the thing", probe, 60, interval=TINY, tolerate=(Exception,), check=check)
    assert (len(rounds), probe.calls) == (3, 2)  # checked before every probe


async def test_eventually_returns_the_first_truthy_value() -> None:
    probe = Probe(misses=3, value=7)
    assert await eventually(probe.aio, 60, "the thing", interval=TINY) == 7
    assert probe.calls == 4


async def test_eventually_times_out_naming_what() -> None:
    probe = Probe(misses=10**9)
    with pytest.raises(AssertionError, match=r"^the thing not reached in 0\.001 s$"):
        await eventually(probe.aio, TINY, "the thing", interval=TINY)
    assert probe.calls >= 2


async def test_eventually_lets_an_error_of_the_check_through() -> None:
    probe = Probe(misses=3, error=KeyError("gone"))
    with pytest.raises(KeyError, match="gone"):
        await eventually(probe.aio, 60, "the thing", interval=TINY)
    assert probe.calls == 1
