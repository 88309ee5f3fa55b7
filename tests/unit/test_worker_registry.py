"""Task registration: how a function is called is decided once, and mistakes fail early."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from jobqueue_worker import JobContext, SyncJobContext, TaskRegistry
from jobqueue_worker.registry import TaskModuleError, import_task_modules


def test_async_and_sync_functions_with_and_without_context() -> None:
    reg = TaskRegistry()

    @reg.task("a")
    async def a(payload: Any) -> None: ...

    @reg.task("a_ctx")
    async def a_ctx(payload: Any, ctx: JobContext) -> None: ...

    @reg.task("s")
    def s(payload: Any) -> None: ...

    @reg.task("s_ctx")
    def s_ctx(payload: Any, ctx: SyncJobContext) -> None: ...

    got = {spec.name: (spec.is_async, spec.wants_context) for spec in reg}
    assert got == {
        "a": (True, False),
        "a_ctx": (True, True),
        "s": (False, False),
        "s_ctx": (False, True),
    }
    assert reg.names() == ["a", "a_ctx", "s", "s_ctx"]
    assert "a" in reg and "zzz" not in reg and len(reg) == 4


def test_the_decorator_returns_the_function_unchanged() -> None:
    reg = TaskRegistry()

    def f(payload: int) -> int:
        return payload + 1

    assert reg.task("f")(f) is f
    spec = reg.get("f")
    assert spec is not None and spec.func is f


def test_callable_objects_and_var_args() -> None:
    class AsyncCallable:
        async def __call__(self, payload: Any, ctx: Any) -> None: ...

    reg = TaskRegistry()
    reg.register("obj", AsyncCallable())
    reg.register("var", lambda *args: None)
    obj, var = reg.get("obj"), reg.get("var")
    assert obj is not None and (obj.is_async, obj.wants_context) == (True, True)
    assert var is not None and (var.is_async, var.wants_context) == (False, True)


def test_a_context_parameter_with_a_default_still_gets_the_context() -> None:
    reg = TaskRegistry()
    spec = reg.register("d", lambda payload, ctx=None: None)
    assert spec.wants_context


@pytest.mark.parametrize(
    ("func", "message"),
    [
        (lambda: None, "must take the payload"),
        (lambda payload, ctx, extra: None, "3 required arguments"),
    ],
)
def test_functions_that_cannot_take_a_payload_are_refused(func: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        TaskRegistry().register("bad", func)


@pytest.mark.parametrize("name", ["", "   "])
def test_task_names_must_not_be_empty(name: str) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        TaskRegistry().register(name, lambda payload: None)


def test_two_functions_under_one_name_are_refused() -> None:
    reg = TaskRegistry()

    def first(payload: Any) -> None: ...

    def second(payload: Any) -> None: ...

    reg.register("dup", first)
    reg.register("dup", first)  # the same function again (a module imported twice) is fine
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("dup", second)


def test_a_missing_module_is_named() -> None:
    with pytest.raises(TaskModuleError, match=r"'no_such_pkg_xyz\.tasks' was not found"):
        import_task_modules(["no_such_pkg_xyz.tasks"], TaskRegistry())


def test_a_module_without_tasks_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "empty_tasks_mod", types.ModuleType("empty_tasks_mod"))
    with pytest.raises(TaskModuleError, match="registers no task"):
        import_task_modules(["empty_tasks_mod"], TaskRegistry())


def test_modules_are_imported_in_order_and_fill_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = TaskRegistry()
    reg.register("pre", lambda payload: None)
    monkeypatch.setitem(sys.modules, "mod_a", types.ModuleType("mod_a"))
    assert import_task_modules(["mod_a"], reg) is reg


def test_the_example_module_registers_its_tasks() -> None:
    from jobqueue_worker import default_registry

    import_task_modules(["examples.tasks"])
    assert {"email", "resize", "fail", "flaky", "slow", "noop"} <= set(default_registry.names())
    noop = default_registry.get("noop")
    assert noop is not None and noop.is_async and not noop.wants_context
