"""Error messages that reach status and Events never carry a secret."""

from __future__ import annotations

import asyncio

from jobqueue_operator.material import RedisUrls
from jobqueue_operator.redisops import describe, redact


def test_url_passwords_are_masked() -> None:
    text = "cannot connect to redis://app:hunter22@db:6379/0 (refused)"
    assert redact(text) == "cannot connect to redis://app:***@db:6379/0 (refused)"


def test_given_secrets_are_masked_wherever_they_appear() -> None:
    url = "redis://:p%40ss-w0rd@db:6379/0"
    out = redact(f"AUTH failed for p%40ss-w0rd via {url}", [url, "p%40ss-w0rd"])
    assert "p%40ss-w0rd" not in out


def test_describe_names_the_error_type() -> None:
    assert describe(ConnectionError("Error 111 connecting to db:6379.")) == (
        "ConnectionError: Error 111 connecting to db:6379."
    )


async def test_the_url_board_wakes_a_waiter_on_change_only() -> None:
    board = RedisUrls()
    key = ("ns", "q")
    first = asyncio.create_task(board.wait_change(key, None))
    await asyncio.sleep(0)
    assert not first.done()
    board.publish(key, "redis://a")
    await asyncio.wait_for(first, 1)
    same = asyncio.create_task(board.wait_change(key, "redis://a"))
    board.publish(key, "redis://a")  # unchanged: no wake-up
    await asyncio.sleep(0.01)
    assert not same.done()
    board.publish(key, "redis://b")
    await asyncio.wait_for(same, 1)
    assert board.get(key) == "redis://b"
    gone = asyncio.create_task(board.wait_change(key, "redis://b"))
    await asyncio.sleep(0)
    board.forget(key)
    await asyncio.wait_for(gone, 1)
