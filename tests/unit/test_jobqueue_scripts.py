"""The Lua scripts declare every key they use; KEYS are bound by name (no I/O)."""

from __future__ import annotations

import re

import pytest

from jobqueue import QueueKeys
from jobqueue.keys import COLUMNS
from jobqueue.scripts import SCRIPT_NAMES, build, parse_key_names, script

_USED = re.compile(r"\bk_([a-z_]+)\b")
_GLOBAL_KEY_ACCESS = re.compile(r"KEYS\[")


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_every_key_used_in_a_script_is_declared(name: str) -> None:
    s = script(name)
    body = s.source.split("\n", len(s.key_names) + 1)[-1]
    used = set(_USED.findall(body))
    assert used <= set(s.key_names), f"{name} uses undeclared keys {used - set(s.key_names)}"


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_scripts_only_read_keys_through_the_generated_preamble(name: str) -> None:
    s = script(name)
    preamble_lines = len(s.key_names) + (1 if "JOB_COLUMNS" in s.source else 0)
    rest = "\n".join(s.source.splitlines()[preamble_lines:])
    rest = re.sub(r"--[^\n]*", "", rest)  # comments may mention KEYS
    # purge passes every key to UNLINK at once; nobody else indexes KEYS directly
    assert name == "purge" or not _GLOBAL_KEY_ACCESS.search(rest)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_no_key_name_is_built_inside_lua(name: str) -> None:
    assert "jq:" not in script(name).source


def test_keys_are_bound_in_header_order() -> None:
    keys = QueueKeys.for_queue("shop/emails")
    s = script("complete")
    bound = s.keys_for(keys)
    assert bound[0] == keys.lease
    assert len(bound) == len(s.key_names)
    assert s.source.startswith("local k_lease = KEYS[1]\n")


def test_columns_macro_expands_to_every_column() -> None:
    names, wants = parse_key_names("--! KEYS: dead @columns\n")
    assert wants
    assert names == ("dead", *(f"job_{c}" for c in COLUMNS))


def test_unknown_or_duplicate_key_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        parse_key_names("--! KEYS: lease nonsense\n")
    with pytest.raises(ValueError, match="duplicate"):
        parse_key_names("--! KEYS: lease lease\n")


def test_sha_is_stable_and_distinct() -> None:
    shas = {script(n).sha for n in SCRIPT_NAMES}
    assert len(shas) == len(SCRIPT_NAMES)
    assert build("claim").sha == script("claim").sha
