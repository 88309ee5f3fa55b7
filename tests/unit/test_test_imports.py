"""How the test tree hangs together: no test module imports another test module (a helper two
of them need lives in tests/support, or in a support module beside them); tests/cluster, which
the demo and the benchmarks use, imports nothing else of tests/; the demo and the benchmarks
import only tests/cluster from it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports (absolute, ``a.b.c``), with its line."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            yield node.lineno, base
            for alias in node.names:  # `from tests.integration import test_x` names a module
                yield node.lineno, f"{base}.{alias.name}"


def is_test_module(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return module.startswith("tests.") and (last.startswith("test_") or last == "conftest")


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def where(path: Path, line: int, module: str) -> str:
    return f"{path.relative_to(REPO)}:{line} imports {module}"


def test_the_walk_sees_every_kind_of_import() -> None:
    module = REPO / "tests" / "unit" / "test_test_imports.py"
    found = {name for _, name in imports(module)}
    assert {"ast", "pathlib.Path", "collections.abc.Iterator"} <= found
    assert is_test_module("tests.integration.test_operator_lifecycle")
    assert is_test_module("tests.reliability.conftest")
    assert not is_test_module("tests.support.jobqueues")
    assert not is_test_module("tests.integration.worker_support")


def test_no_test_module_imports_another_test_module() -> None:
    bad = [
        where(path, line, module)
        for path in sources("tests", "demo", "bench")
        for line, module in imports(path)
        if is_test_module(module)
    ]
    assert not bad, "move what they share to tests/support:\n" + "\n".join(bad)


def test_tests_cluster_imports_nothing_else_of_the_tests() -> None:
    bad = [
        where(path, line, module)
        for path in sources("tests/cluster")
        for line, module in imports(path)
        if module.startswith("tests.") and not module.startswith("tests.cluster")
    ]
    assert not bad, "\n".join(bad)


def test_the_demo_and_the_benchmarks_use_only_tests_cluster() -> None:
    bad = [
        where(path, line, module)
        for path in sources("demo", "bench")
        for line, module in imports(path)
        if (module == "tests" or module.startswith("tests."))
        and not module.startswith("tests.cluster")
    ]
    assert not bad, "\n".join(bad)
