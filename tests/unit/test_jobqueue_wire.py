"""The RESP reader of jobqueue.wire: every reply type scripts return, split at every byte."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import NoScriptError, ResponseError

from jobqueue.wire import _Incomplete, parse

REPLY = (
    b"*7\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n+OK\r\n$0\r\n\r\n*-1\r\n-ERR nested\r\n_\r\n:7\r\n"
)


def _value(reply: bytes, encoding: str | None = None) -> tuple[Any, int]:
    return parse(reply, 0, encoding)


def test_every_reply_type_scripts_return() -> None:
    value, end = _value(REPLY)
    assert end == len(REPLY) - len(b":7\r\n")
    assert value[:5] == [42, b"hello", None, [b"OK", b""], None]
    assert isinstance(value[5], ResponseError) and str(value[5]) == "nested"
    assert value[6] is None
    assert _value(b"#t\r\n") == (True, 4)
    assert _value(b",1.5\r\n") == (1.5, 6)


def test_text_when_the_client_decodes_responses() -> None:
    value, _ = _value(b"*2\r\n$4\r\nab\xc3\xa9\r\n+OK\r\n", "utf-8")
    assert value == ["ab\u00e9", "OK"]


def test_error_replies_map_to_redis_py_exceptions() -> None:
    error, _ = _value(b"-NOSCRIPT No matching script. Please use EVAL.\r\n")
    assert isinstance(error, NoScriptError)


@pytest.mark.parametrize("cut", range(len(REPLY) - len(b":7\r\n")))
def test_a_reply_cut_anywhere_is_incomplete_with_a_need_past_the_cut(cut: int) -> None:
    with pytest.raises(_Incomplete) as info:
        parse(REPLY[:cut], 0, None)
    assert info.value.need > cut


def test_a_bulk_string_asks_for_all_its_bytes_at_once() -> None:
    big = b"$100000\r\n" + b"x" * 100_000 + b"\r\n"
    with pytest.raises(_Incomplete) as info:
        parse(big[:5000], 0, None)
    assert info.value.need == len(big)


@pytest.mark.parametrize("reply", [b"%1\r\n:1\r\n:2\r\n", b">2\r\n", b"!\r\n"])
def test_reply_types_scripts_never_send_are_refused(reply: bytes) -> None:
    with pytest.raises(ValueError, match="unexpected RESP reply type"):
        parse(reply, 0, None)
