"""The codec refuses NaN and Infinity (orjson would write null) and keeps every other value."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobqueue import codec

NON_FINITE = (math.nan, math.inf, -math.inf)


class Ratio(float, enum.Enum):
    HALF = 0.5
    UNKNOWN = math.nan


class Tag(enum.Enum):
    BAD = ("x", math.inf)


class Doc(dict[str, Any]):
    pass


@dataclass(slots=True)
class Slotted:
    name: str
    score: float
    _private: float = math.nan  # orjson leaves names starting with "_" out


@dataclass
class Plain:
    name: str
    score: float
    extra: list[Any] = field(default_factory=list)


def test_the_installed_backend_is_orjson() -> None:
    # The check below exists for orjson; the stdlib branch refuses NaN on its own.
    assert codec.JSON_BACKEND == "orjson"


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize(
    "wrap",
    [
        lambda x: x,
        lambda x: {"a": 1, "b": x},
        lambda x: [None, "null", [1, {"deep": [x]}]],
        lambda x: (None, x),
        lambda x: {"nested": {"k": None, "v": [0.5, x]}},
        lambda x: Doc(v=x, n=None),
        lambda x: [None, Plain("p", x)],
        lambda x: [None, Plain("p", 1.0, [None, x])],
        lambda x: {"s": Slotted("s", x)},
    ],
    ids=["bare", "dict", "list", "tuple", "nested", "dict-subclass", "dataclass",
         "dataclass-deep", "slots-dataclass"],
)  # fmt: skip
def test_non_finite_floats_are_refused_wherever_they_are(bad: float, wrap: Any) -> None:
    with pytest.raises(ValueError, match=r"^value is not JSON-serialisable: .*NaN or Infinity"):
        codec.dumps(wrap(bad))


@pytest.mark.parametrize("value", [Ratio.UNKNOWN, [None, Ratio.UNKNOWN], {"t": Tag.BAD, "n": None}])
def test_enum_members_holding_non_finite_values_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="NaN or Infinity"):
        codec.dumps(value)


def test_the_message_names_the_value() -> None:
    with pytest.raises(ValueError) as info:
        codec.dumps({"x": None, "y": -math.inf})
    assert str(info.value) == (
        "value is not JSON-serialisable: -inf is not a JSON number (JSON has no NaN or Infinity)"
    )


def test_non_finite_floats_fail_like_other_unserialisable_values() -> None:
    # The same exception type and prefix as a set: callers need one except clause.
    with pytest.raises(ValueError, match=r"^value is not JSON-serialisable: .*set"):
        codec.dumps({"s": {1, 2}})
    with pytest.raises(ValueError, match=r"^value is not JSON-serialisable: "):
        codec.dumps({"s": math.nan})


@pytest.mark.parametrize(
    "value",
    [
        None,
        [None, None],
        {"a": None, "b": "null", "c": 1.5, "d": -0.0, "e": 1e308},
        "null",
        [1, 2.5, "x", True, False, {"k": [None]}],
        {"ratio": Ratio.HALF, "n": None},
    ],
)
def test_null_and_finite_floats_are_kept(value: Any) -> None:
    out = codec.dumps(value)
    expected = value.value if isinstance(value, enum.Enum) else value
    assert codec.loads(out) == _plain(expected)


def test_objects_orjson_encodes_are_walked_as_orjson_sees_them() -> None:
    # The NaN sits in a "_" attribute orjson does not write: nothing is changed, so it passes.
    assert codec.loads(codec.dumps([None, Slotted("s", 2.0)])) == [
        None,
        {"name": "s", "score": 2.0},
    ]
    assert codec.loads(codec.dumps({"p": Plain("p", 1.0, [None])})) == {
        "p": {"name": "p", "score": 1.0, "extra": [None]}
    }


def test_find_non_finite() -> None:
    assert codec.find_non_finite({"a": [None, 1.0, "x"], "b": (2, True)}) is None
    assert codec.find_non_finite({"a": [None, 1.0, {"c": math.inf}]}) == math.inf
    found = codec.find_non_finite([Ratio.UNKNOWN])
    assert found is not None and math.isnan(found)
    assert codec.find_non_finite(object()) is None  # orjson refuses it anyway


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


json_leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5)
finite_json = st.recursive(
    json_leaves | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(finite_json)
def test_any_finite_json_value_round_trips(value: Any) -> None:
    assert codec.loads(codec.dumps(value)) == value


def _insert(value: Any, bad: float, path: list[int]) -> Any:
    """``value`` with ``bad`` put somewhere inside it (chosen by ``path``)."""
    if isinstance(value, list) and value:
        i = path[0] % (len(value) + 1) if path else 0
        if i == len(value):
            return [*value, bad]
        return [*value[:i], _insert(value[i], bad, path[1:]), *value[i + 1 :]]
    if isinstance(value, dict) and value:
        keys = sorted(value)
        key = keys[path[0] % len(keys)] if path else keys[0]
        return {**value, key: _insert(value[key], bad, path[1:])}
    return [value, bad]


@given(finite_json, st.sampled_from(NON_FINITE), st.lists(st.integers(0, 10), max_size=6))
def test_a_non_finite_float_anywhere_is_refused(value: Any, bad: float, path: list[int]) -> None:
    with pytest.raises(ValueError, match="NaN or Infinity"):
        codec.dumps(_insert(value, bad, path))
