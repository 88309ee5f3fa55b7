"""The host programs the project runs, read from hack/host-tools.txt (the one list), looked up.

`require(program)` is how the cluster, image and demo code finds a program: a missing one
raises :class:`HostToolMissing` naming its Debian package and `make setup`, never a bare
FileNotFoundError. `find(program)` is for the programs the list marks optional: None means
there is nothing for it to do. Both refuse a program the list does not name (a bug to fix in
the list, which `make deps` installs from).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

LIST_FILE = Path(__file__).resolve().parents[2] / "hack" / "host-tools.txt"

Source = Literal["deb", "build", "prereq"]


class HostToolMissing(RuntimeError):
    """A required host program is not installed; the message says which package brings it."""


@dataclass(frozen=True, slots=True)
class HostTool:
    program: str  # a name looked up on PATH, an absolute path, or "-" (a package only)
    source: Source
    package: str  # the Debian package, build.sh component, or "-"
    optional: bool

    def how_to_install(self) -> str:
        if self.source == "deb":
            return f"Debian package {self.package}: run `make setup` (hack/install-deps.sh)"
        if self.source == "build":
            return f"built by `make binaries` (tests/cluster/build.sh {self.package})"
        return "a prerequisite of `make setup`: install it first (see the README)"


def parse(text: str) -> tuple[HostTool, ...]:
    """The entries of a host-tools list. Pure; raises ValueError on a malformed line."""
    tools = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if len(words) != 4 or words[1] not in ("deb", "build", "prereq"):
            raise ValueError(f"{LIST_FILE.name}:{number}: want `program source package need`")
        if words[3] not in ("required", "optional"):
            raise ValueError(f"{LIST_FILE.name}:{number}: need is required or optional")
        source: Source = words[1]  # type: ignore[assignment]  # checked just above
        tools.append(HostTool(words[0], source, words[2], words[3] == "optional"))
    return tuple(tools)


@cache
def tools() -> dict[str, HostTool]:
    """program -> entry, for every line of hack/host-tools.txt that names a program."""
    return {t.program: t for t in parse(LIST_FILE.read_text()) if t.program != "-"}


def entry(program: str) -> HostTool:
    try:
        return tools()[program]
    except KeyError:
        raise KeyError(f"{program!r} is not in {LIST_FILE}: add it (and its package)") from None


def _locate(program: str) -> str | None:
    if program.startswith("/"):
        return program if Path(program).exists() else None
    return shutil.which(program)


def find(program: str) -> str | None:
    """The path of an optional program, or None when it is not installed."""
    entry(program)
    return _locate(program)


def require(program: str) -> str:
    """The path of a program; raises HostToolMissing (with its package) when it is absent."""
    tool = entry(program)
    found = _locate(program)
    if found is None:
        raise HostToolMissing(f"{program} is not installed ({tool.how_to_install()})")
    return found


def missing(programs: tuple[str, ...] | list[str]) -> list[str]:
    """Those of programs that are not installed, each with how to install it."""
    return [f"{p} ({entry(p).how_to_install()})" for p in programs if _locate(p) is None]
