"""Lua scripts of the protocol: loaded once, KEYS bound by name, run by EVALSHA.

Each ``lua/<name>.lua`` declares the queue keys it touches in header lines::

    --! KEYS: ready_high lease @columns

Names are ``QueueKeys`` attributes; ``@columns`` stands for every ``job_*`` column (and
also defines the Lua table ``JOB_COLUMNS``), ``@all`` for every key of the queue. From the
header this module generates the preamble ``local k_<name> = KEYS[i]`` and, per queue, the
KEYS tuple in the same order, so the key order is written in exactly one place and no key
name is ever built inside Lua.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from jobqueue.keys import CHANNELS, COLUMNS, QueueKeys

_HEADER_RE = re.compile(r"^--!\s*KEYS:(.*)$", re.MULTILINE)
_COLUMN_NAMES: tuple[str, ...] = tuple(f"job_{c}" for c in COLUMNS)
_NOT_KEYS = ("name", "prefix")
_ALL_NAMES: tuple[str, ...] = tuple(
    name for name in QueueKeys.__dataclass_fields__ if name not in (*_NOT_KEYS, *CHANNELS)
)

SCRIPT_NAMES: tuple[str, ...] = (
    "enqueue",
    "enqueue_one",
    "claim",
    "complete",
    "fail",
    "release",
    "renew",
    "progress",
    "cancel",
    "stats",
    "peek",
    "read",
    "retry_dead",
    "purge_dead",
    "purge",
    "heartbeat",
    "workers",
    "browse",
    "delete_dead",
)


@dataclass(frozen=True, slots=True)
class LuaScript:
    """One script: its full source (preamble + library + body), SHA1 and KEYS names."""

    name: str
    source: str
    sha: str
    key_names: tuple[str, ...]

    def keys_for(self, keys: QueueKeys) -> tuple[str, ...]:
        """The KEYS argument of this script for one queue."""
        return tuple(keys.key(n) for n in self.key_names)


def _read(name: str) -> str:
    return resources.files("jobqueue").joinpath("lua", f"{name}.lua").read_text("utf-8")


def parse_key_names(body: str) -> tuple[tuple[str, ...], bool]:
    """KEYS names declared by a script's header, and whether it asked for ``@columns``."""
    names: list[str] = []
    wants_columns = False
    for line in _HEADER_RE.findall(body):
        for word in line.split():
            if word == "@columns":
                wants_columns = True
                names.extend(_COLUMN_NAMES)
            elif word == "@all":
                wants_columns = True
                names.extend(_ALL_NAMES)
            else:
                names.append(word)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate KEYS names in script header: {names}")
    unknown = [n for n in names if n not in QueueKeys.__dataclass_fields__ or n in _NOT_KEYS]
    if unknown:
        raise ValueError(f"unknown KEYS names in script header: {unknown}")
    return tuple(names), wants_columns


def build(name: str) -> LuaScript:
    """Assemble script ``name`` from its file and the shared library."""
    body = _read(name)
    key_names, wants_columns = parse_key_names(body)
    lines = [f"local k_{n} = KEYS[{i}]" for i, n in enumerate(key_names, start=1)]
    if wants_columns:
        lines.append("local JOB_COLUMNS = {" + ", ".join(f"k_{n}" for n in _COLUMN_NAMES) + "}")
    source = "\n".join([*lines, _read("_lib"), body])
    sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()
    return LuaScript(name=name, source=source, sha=sha, key_names=key_names)


@cache
def script(name: str) -> LuaScript:
    """The assembled script ``name`` (built once per process)."""
    if name not in SCRIPT_NAMES:
        raise KeyError(f"no Lua script named {name!r}")
    return build(name)
