"""What a fresh machine needs: every host program the code runs is in hack/host-tools.txt,
`make setup` installed the required ones, and `make help` lists every target."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

from tests.cluster import binaries, host_tools, node

REPO = Path(__file__).resolve().parents[2]
#: Where the code that runs host programs lives (the packages run only Python).
SCANNED = ("tests", "demo", "bench", "hack")
#: Calls whose first argument (a list, or a name for the `_sh`-style ones) names a program.
RUNNERS = {
    "run",
    "output",
    "_sh",
    "Popen",
    "check_output",
    "check_call",
    "call",
    "create_subprocess_exec",
    "start",
}
BY_NAME = {"_sh", "which", "find", "require"}
#: A function returning a command line (buildah_cmd, ctr_cmd, ...).
COMMAND_FUNCTION = re.compile(r"(^|_)(cmd|command|argv)s?$")


def _first_string(node: ast.expr) -> str | None:
    if isinstance(node, ast.List | ast.Tuple) and node.elts:
        head = node.elts[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return head.value
    return None


def programs_run(tree: ast.AST) -> set[str]:
    """Program names a module runs: literal command lines given to a runner or returned by a
    `*_cmd` function, and names given to `_sh`, `shutil.which` and host_tools lookups. Pure."""
    found: set[str] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and COMMAND_FUNCTION.search(fn.name):
            for ret in ast.walk(fn):
                if isinstance(ret, ast.Return) and ret.value is not None:
                    name = _first_string(ret.value)
                    if name:
                        found.add(name)
        if not isinstance(fn, ast.Call) or not fn.args:
            continue
        func = fn.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        arg = fn.args[0]
        if called in RUNNERS and (name := _first_string(arg)):
            found.add(name)
        elif called in BY_NAME and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found.add(arg.value)
        elif called in BY_NAME | RUNNERS and isinstance(arg, ast.JoinedStr):
            found.add(ast.unparse(arg))  # a computed name can't be checked: spell it out
    return found


def test_programs_run_reads_every_form() -> None:
    code = """
def buildah_cmd():
    return ["buildah", "--root", x]
run(["gcc", "-static"])
_sh("ip", "link")
shutil.which("wrk")
host_tools.find("nft")
subprocess.Popen(["kubectl", "get"])
_sh(f"{tool}-save")
print(["not", "a", "command"])
"""
    assert programs_run(ast.parse(code)) == {
        "buildah",
        "gcc",
        "ip",
        "wrk",
        "nft",
        "kubectl",
        "f'{tool}-save'",  # as ast.unparse spells it
    }


def _code_programs() -> dict[str, str]:
    """program -> one module that runs it, over the whole scanned tree."""
    seen: dict[str, str] = {}
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            if ".envs" in path.parts or "node_modules" in path.parts:
                continue
            if path.resolve() == Path(__file__).resolve():
                continue  # this module's own example strings
            for name in programs_run(ast.parse(path.read_text(), str(path))):
                if "/" not in name or name.startswith("/usr/"):
                    seen.setdefault(name, str(path.relative_to(REPO)))
    return seen


def test_every_program_the_code_runs_is_in_the_install_list() -> None:
    listed = host_tools.tools()
    unlisted = {p: where for p, where in _code_programs().items() if p not in listed}
    assert not unlisted, (
        f"programs run by the code but missing from {host_tools.LIST_FILE} "
        f"(a fresh machine would lack them): {unlisted}"
    )


def test_node_commands_are_in_the_install_list() -> None:
    for program in (*node.HOST_COMMANDS, *node.KUBE_ROUTER_COMMANDS):
        assert host_tools.entry(program).source == "deb", program


def test_every_required_host_program_is_installed() -> None:
    """`make setup` ran before the tests: a required program missing here is a gap in the
    list or in hack/install-deps.sh (the run fails, it never skips)."""
    needed = [
        t.program
        for t in host_tools.tools().values()
        if t.source in ("deb", "prereq") and not t.optional and t.program != "go"
    ]
    assert host_tools.missing(needed) == []


def test_built_programs_match_build_sh_components() -> None:
    for tool in host_tools.tools().values():
        if tool.source == "build":
            assert tool.program in binaries.COMPONENTS[tool.package], tool
    built = {b for names in binaries.COMPONENTS.values() for b in names}
    assert built <= set(host_tools.tools()), built - set(host_tools.tools())


def test_install_script_installs_from_the_list() -> None:
    script = (REPO / "hack" / "install-deps.sh").read_text()
    assert "hack/host-tools.txt" in script
    assert "apt-get install" in script


@pytest.mark.parametrize(
    "line",
    [
        "ip deb iproute2",  # no need column
        "ip apt iproute2 required",  # unknown source
        "ip deb iproute2 maybe",  # unknown need
    ],
)
def test_parse_refuses_a_malformed_line(line: str) -> None:
    with pytest.raises(ValueError, match=r"host-tools\.txt:1"):
        host_tools.parse(line)


def test_parse_drops_comments() -> None:
    parsed = host_tools.parse("# x\nnft deb nftables optional  # why\n\n")
    assert parsed == (host_tools.HostTool("nft", "deb", "nftables", optional=True),)


def test_a_missing_required_program_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(host_tools.HostToolMissing, match=r"Debian package iproute2.*make setup"):
        node._sh("ip", "link")


def test_a_program_not_in_the_list_is_a_bug() -> None:
    with pytest.raises(KeyError, match=r"not in .*host-tools\.txt"):
        host_tools.require("no-such-tool")


def test_without_nft_there_is_nothing_to_remove(monkeypatch: pytest.MonkeyPatch) -> None:
    """The teardown crash of issue 18: nft is optional, its absence is a no-op."""
    assert shutil.which("nft") is not None  # installed by make setup: this test removes it
    monkeypatch.setenv("PATH", "/nonexistent")
    assert host_tools.find("nft") is None
    assert node.remove_empty_nft_tables("iptables", keep=()) == []


def test_make_help_lists_every_target() -> None:
    makefile = (REPO / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*?)(?<!\\)$", makefile, re.M | re.S)
    assert phony is not None
    targets = phony.group(1).replace("\\", " ").split()
    described = set(re.findall(r"^([a-z][a-z0-9-]*):.*## \S", makefile, re.M))
    assert set(targets) - described == set()
