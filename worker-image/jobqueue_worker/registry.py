"""Task registration by name (`@task("email")`) and the import of the TASKS_MODULE(s)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class TaskModuleError(Exception):
    """TASKS_MODULE cannot be imported, or it registers no task; the message says which."""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One registered task: how the runtime calls it is decided once, here."""

    name: str
    func: Callable[..., Any]
    is_async: bool  # a coroutine function: runs on the event loop, else in the thread pool
    wants_context: bool  # takes a second positional argument: the job context

    @property
    def qualname(self) -> str:
        module = getattr(self.func, "__module__", None) or "?"
        return f"{module}.{getattr(self.func, '__qualname__', repr(self.func))}"


def _is_async(func: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - an instance with `async def __call__`
    return call is not None and inspect.iscoroutinefunction(call)


def _wants_context(name: str, func: Callable[..., Any]) -> bool:
    """True when `func` takes (payload, ctx); raises TypeError when it cannot take a payload."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: assume payload only
        return False
    positional = [p for p in params if p.kind in _POSITIONAL]
    var_positional = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    if not positional and not var_positional:
        raise TypeError(f"task {name!r}: the function must take the payload as its first argument")
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    if len(required) > 2:
        raise TypeError(
            f"task {name!r}: the function may take (payload) or (payload, ctx), "
            f"not {len(required)} required arguments"
        )
    return len(positional) >= 2 or var_positional


def make_spec(name: str, func: Callable[..., Any]) -> TaskSpec:
    """Inspect `func` once and describe how to call it."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a task name must be a non-empty string, e.g. @task('email')")
    if not callable(func):
        raise TypeError(f"task {name!r}: {func!r} is not callable")
    return TaskSpec(name, func, _is_async(func), _wants_context(name, func))


class TaskRegistry:
    """Task functions by job type. The module-level `task` decorator fills `default_registry`."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskSpec] = {}

    def register(self, name: str, func: Callable[..., Any]) -> TaskSpec:
        spec = make_spec(name, func)
        old = self._tasks.get(name)
        if old is not None and old.qualname != spec.qualname:
            raise ValueError(
                f"task {name!r} is registered twice: {old.qualname} and {spec.qualname}"
            )
        self._tasks[name] = spec
        return spec

    def task(self, name: str) -> Callable[[F], F]:
        """Decorator: `@registry.task("email")` registers a sync or async function as "email"."""

        def decorate(func: F) -> F:
            self.register(name, func)
            return func

        return decorate

    def get(self, name: str) -> TaskSpec | None:
        return self._tasks.get(name)

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(list(self._tasks.values()))


default_registry = TaskRegistry()


def task(name: str) -> Callable[[F], F]:
    """Register a task function under `name`: `@task("email") def send(payload, ctx): ...`."""
    return default_registry.task(name)


def import_task_modules(
    modules: Sequence[str], registry: TaskRegistry = default_registry
) -> TaskRegistry:
    """Import the TASKS_MODULE(s) (they register with `@task`); fail clearly if none did."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
                raise TaskModuleError(
                    f"TASKS_MODULE {module!r} was not found; is it installed or on PYTHONPATH?"
                ) from None
            raise TaskModuleError(
                f"importing TASKS_MODULE {module!r} failed: it needs {exc.name!r}, "
                "which is not installed"
            ) from exc
        except Exception as exc:  # user code: any error while importing it is a setup error
            raise TaskModuleError(
                f"importing TASKS_MODULE {module!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
    if not len(registry):
        raise TaskModuleError(
            f"TASKS_MODULE {','.join(modules)!r} registers no task; "
            "decorate functions with @task('name') (from jobqueue_worker import task)"
        )
    return registry
