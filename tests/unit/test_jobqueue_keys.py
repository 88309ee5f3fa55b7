"""The key layout: one place, one hash tag per queue, every key in the queue's slot (no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from jobqueue import QueueKeys
from jobqueue.keys import COLUMNS, validate_queue_name

names = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), blacklist_characters="{}"
    ),
    min_size=1,
    max_size=60,
).filter(lambda s: all(c.isprintable() and not c.isspace() for c in s))


@given(names)
def test_every_key_shares_the_queue_hash_tag_and_slot(name: str) -> None:
    keys = QueueKeys.for_queue(name)
    slots = {key_slot(k.encode()) for k in (*keys.all_keys, keys.events)}
    assert slots == {key_slot(name.encode())}
    for k in keys.all_keys:
        assert k.startswith(f"jq:{{{name}}}:")


@given(names)
def test_keys_are_distinct(name: str) -> None:
    keys = QueueKeys.for_queue(name)
    assert len(set(keys.all_keys)) == len(keys.all_keys)
    assert keys.events not in keys.all_keys


def test_layout_names() -> None:
    keys = QueueKeys.for_queue("shop/emails")
    assert keys.events == "jq:{shop/emails}:events"
    assert keys.ready == (
        "jq:{shop/emails}:ready:high",
        "jq:{shop/emails}:ready:normal",
        "jq:{shop/emails}:ready:low",
    )
    assert keys.lease == "jq:{shop/emails}:lease"
    assert keys.columns == tuple(f"jq:{{shop/emails}}:job:{c}" for c in COLUMNS)
    assert set(keys.columns) <= set(keys.all_keys)


def test_two_queues_never_share_a_key() -> None:
    a, b = QueueKeys.for_queue("ns/a"), QueueKeys.for_queue("ns/b")
    assert not set(a.all_keys) & set(b.all_keys)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "non-empty"),
        ("a{b", "must not contain"),
        ("a}b", "must not contain"),
        ("a b", "whitespace"),
        ("a\nb", "whitespace"),
        ("x" * 201, "longer than 200"),
    ],
)
def test_bad_queue_names_are_rejected(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_queue_name(name)


def test_key_lookup_by_attribute_name() -> None:
    keys = QueueKeys.for_queue("q")
    assert keys.key("lease") == keys.lease
    with pytest.raises(KeyError):
        keys.key("name")
    with pytest.raises(KeyError):
        keys.key("nope")
