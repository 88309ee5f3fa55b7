"""`python -m demo`: the whole system working, visibly, on one machine (`make demo`).

    python -m demo [--burst N] [--no-live] [--keep] [--no-node] [--summary-json PATH]
        local cluster + node + images + the operator (Helm) + two JobQueues, then a burst of
        jobs, live; a summary; teardown (unless --keep, or KEEP=1 with make)
    python -m demo attach [--kubeconfig PATH] [--burst N] [--no-live] [--keep]
        the same burst on a cluster that has the operator installed (make kind-demo)
    python -m demo manifests [--external-redis-url URL] [--redis-image REF] [--no-managed]
        print the manifests the demo applies (the examples with the demo's settings)

Exit status: 0 when every job ended as planned (all completed, the one DLQ job dead) and the
workers went back to their minimum; 1 otherwise; 2 on a set-up error; 130 on Ctrl+C; 3 when
the demo passed but its teardown left a process running (named). A clean-up step that fails
without leaving anything running is reported in one line and does not change the status.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.logging import RichHandler
from rich.panel import Panel
from rich.text import Text

from demo import constants as c
from demo import manifests as m
from demo.run import DemoEnv, RunResult, run

if TYPE_CHECKING:
    from demo.local import TeardownReport

EXIT_OK, EXIT_FAILED, EXIT_SETUP, EXIT_LEFT_RUNNING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
PROGRESS_LOGGERS = ("jq", "tests.cluster")
PLAIN_WIDTH = 120  # columns when the output is not a terminal (a log, a pipe, CI)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "mode", nargs="?", default="local", choices=["local", "attach", "manifests"]
    )
    parser.add_argument("--burst", type=int, default=c.DEFAULT_BURST, help="jobs in the burst")
    parser.add_argument("--no-live", action="store_true", help="status lines, no live dashboard")
    parser.add_argument(
        "--keep",
        action="store_true",
        default=os.environ.get("KEEP", "") not in ("", "0"),
        help="leave everything running at the end (also KEEP=1)",
    )
    parser.add_argument("--no-node", action="store_true", help="local processes, no node")
    parser.add_argument("-v", "--verbose", action="store_true", help="every set-up step's log")
    parser.add_argument("--summary-json", type=Path, help="write the result as JSON here")
    parser.add_argument("--state-dir", type=Path, default=c.REPO / ".cluster")
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=Path(os.environ.get("KUBECONFIG", Path.home() / ".kube/config")),
    )
    parser.add_argument("--external-redis-url", default="redis://redis.example.svc:6379/0")
    parser.add_argument("--redis-image", default=None)
    parser.add_argument("--no-managed", action="store_true")
    return parser


def _logging(console: Console, verbose: bool) -> None:
    handler = RichHandler(
        console=console,
        show_path=False,
        markup=False,
        show_level=False,
        log_time_format="[%H:%M:%S]",
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in PROGRESS_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)


#: Image builds, the node, helm, kubectl: their messages say what failed and where the log is.
SETUP_ERRORS = (RuntimeError, OSError, subprocess.SubprocessError)


def _setup_failed(console: Console, exc: BaseException, verbose: bool) -> None:
    if verbose:
        console.print_exception()
    console.print(Text.assemble(("set-up failed: ", "bold red"), str(exc)))


def _poke(console: Console, env: DemoEnv, keep: bool) -> None:
    head = (
        "It is still running (--keep / KEEP=1). Poke at it by hand:"
        if keep
        else "Poke at it by hand next time with `make demo KEEP=1`, then:"
    )
    body = "\n".join(f"  {line}" for line in env.poke)
    tail = "\nStop it all later with: make cluster-down" if keep else ""
    console.print(Panel(Text(f"{head}\n{body}{tail}"), border_style="dim"), highlight=False)


def _run(env: DemoEnv, args: argparse.Namespace, console: Console, live: bool) -> RunResult:
    result = asyncio.run(run(env, args.burst, console, live=live, summary_json=args.summary_json))
    _poke(console, env, args.keep)
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.mode == "manifests":
        docs = m.demo_manifests(
            [*m.load(c.EXAMPLE_MANAGED), *m.load(c.EXAMPLE_SECRET)],
            external_redis_url=args.external_redis_url,
            redis_image=args.redis_image,
            managed=not args.no_managed,
        )
        sys.stdout.write(m.dump([m.namespace_manifest(), *docs]))
        return EXIT_OK
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=PLAIN_WIDTH)
    live = not args.no_live and console.is_terminal
    _logging(console, args.verbose)
    if args.mode == "attach":
        from demo.attach import Attached

        attached = Attached(args.kubeconfig.resolve(), console)
        try:
            try:
                env = attached.setup()
            except SETUP_ERRORS as exc:
                _setup_failed(console, exc, args.verbose)
                return EXIT_SETUP
            result = _run(env, args, console, live)
            return EXIT_OK if result.ok else EXIT_FAILED
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            return EXIT_INTERRUPTED
        finally:
            attached.teardown(keep=args.keep)

    from demo.local import LocalDemo

    demo = LocalDemo(args.state_dir.resolve(), console)
    try:
        try:
            env = demo.setup(force_no_node=args.no_node)
        except SETUP_ERRORS as exc:
            _setup_failed(console, exc, args.verbose)
            code = EXIT_SETUP
        else:
            code = EXIT_OK if _run(env, args, console, live).ok else EXIT_FAILED
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        code = EXIT_INTERRUPTED
    if args.keep:
        console.print("[dim]--keep: left as it is; `make cluster-down` stops it all[/]")
        return code
    return exit_after_teardown(code, demo.teardown(), console)


def exit_after_teardown(code: int, report: TeardownReport, console: Console) -> int:
    """The demo's own exit status, unless the teardown left something running (named): a
    clean-up step that failed but left nothing behind was reported and changes nothing."""
    if not report.left_running:
        return code
    names = ", ".join(report.left_running)
    console.print(f"[red]left running after the teardown:[/] {names} (`make cluster-down`)")
    return code if code != EXIT_OK else EXIT_LEFT_RUNNING


if __name__ == "__main__":
    sys.exit(main())
