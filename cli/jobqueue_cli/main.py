"""The `jobqueue` commands (click): enqueue, get, ls, cancel, dlq, stats, workers.

Each command talks to the HTTP API: at `--url` (env JOBQUEUE_URL) with `--token` (env
JOBQUEUE_TOKEN), or, with `--kube`, to a JobQueue by name through a kubectl port-forward.
With `--kube` the JobQueue's name comes right after the command:
`jobqueue --kube -n shop stats emails`, `jobqueue --kube -n shop dlq ls emails`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from jobqueue.models import Priority
from jobqueue_cli.client import Api, ApiError
from jobqueue_cli.kube import KubeError, KubeTarget, api_port, port_forward
from jobqueue_cli.render import fields, table

DEFAULT_URL = "http://127.0.0.1:8000"
STATES = ("queued", "running", "delayed", "failed", "completed", "cancelled", "dead")
JOB_COLUMNS = [
    ("ID", "id"),
    ("TYPE", "type"),
    ("QUEUE", "queue"),
    ("STATUS", "status"),
    ("PRIORITY", "priority"),
    ("ATTEMPTS", "attempts"),
    ("PROGRESS", "progress"),
    ("CREATED", "created_at"),
    ("ERROR", "error"),
]
JOB_FIELDS = [
    "id",
    "type",
    "queue",
    "status",
    "priority",
    "attempts",
    "max_retries",
    "progress",
    "created_at",
    "started_at",
    "finished_at",
    "run_at",
    "payload",
    "result",
    "error",
]
QUEUE_COLUMNS = [
    ("QUEUE", "name"),
    ("POOL", "pool"),
    ("HIGH", "ready.high"),
    ("NORMAL", "ready.normal"),
    ("LOW", "ready.low"),
    ("IN-FLIGHT", "in_flight"),
    ("DELAYED", "delayed"),
    ("DEAD", "dead"),
    ("OLDEST-S", "oldest_age_seconds"),
    ("ENQUEUED/S", "rates.enqueued_per_s"),
    ("COMPLETED/S", "rates.completed_per_s"),
    ("FAILED/S", "rates.failed_per_s"),
]
WORKER_COLUMNS = [
    ("ID", "id"),
    ("QUEUE", "queue"),
    ("POOL", "pool"),
    ("BUSY", "busy"),
    ("IN-FLIGHT", "in_flight"),
    ("LAST-SEEN", "last_seen"),
]
JOBQUEUE_KEY = "jobqueue_cli.jobqueue"  # ctx.meta: the JobQueue name given after the command
HELP_OPTIONS = ("-h", "--help")


@dataclass
class Options:
    """The group's options, for the commands: where the API is and how to print."""

    url: str
    token: str | None
    kube: bool
    namespace: str | None
    context: str | None
    kubeconfig: str | None
    as_json: bool


class JobQueueGroup(click.Group):
    """With `--kube`, takes the JobQueue name that follows a (leaf) command's name."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        root = ctx.find_root()
        wants_name = root.params.get("kube") and not isinstance(cmd, click.Group)
        asks_help = bool(rest) and rest[0] in HELP_OPTIONS
        if wants_name and JOBQUEUE_KEY not in root.meta and not asks_help:
            if not rest or rest[0].startswith("-"):
                path = " ".join([*ctx.command_path.split()[1:], str(name)])
                raise click.UsageError(
                    f"--kube needs the JobQueue's name after the command, e.g. "
                    f"`jobqueue --kube -n shop {path} emails`",
                    ctx,
                )
            root.meta[JOBQUEUE_KEY] = rest[0]
            rest = rest[1:]
        return name, cmd, rest


def _options(ctx: click.Context) -> Options:
    options: Options = ctx.find_root().obj
    return options


def connect(ctx: click.Context) -> Api:
    """The API client for this invocation: `--url`, or a port-forward with `--kube`."""
    opts = _options(ctx)
    root = ctx.find_root()
    if not opts.kube:
        return root.with_resource(Api(opts.url, opts.token))
    target = KubeTarget(root.meta[JOBQUEUE_KEY], opts.namespace, opts.context, opts.kubeconfig)
    try:
        jobqueue = target.jobqueue()
        token = opts.token if opts.token else target.token(jobqueue)
        url = root.with_resource(port_forward(target, api_port(jobqueue)))
    except KubeError as exc:
        raise click.ClickException(str(exc)) from exc
    return root.with_resource(Api(url, token))


def emit(ctx: click.Context, data: Any, text: str) -> None:
    """`data` as JSON with --json, else `text`."""
    click.echo(json.dumps(data, indent=2) if _options(ctx).as_json else text)


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """An API call; its error becomes the command's error message (exit 1)."""
    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(cls=JobQueueGroup, context_settings={"help_option_names": list(HELP_OPTIONS)})
@click.option(
    "--url",
    envvar="JOBQUEUE_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="The job API (env JOBQUEUE_URL).",
)
@click.option("--token", envvar="JOBQUEUE_TOKEN", help="Its bearer token (env JOBQUEUE_TOKEN).")
@click.option(
    "--kube",
    is_flag=True,
    help="Reach a JobQueue by name through Kubernetes (kubectl port-forward); its name "
    "follows the command. The token is read from spec.api.authTokenSecretRef unless given.",
)
@click.option("-n", "--namespace", help="With --kube: the JobQueue's namespace.")
@click.option("--context", "kube_context", help="With --kube: the kubeconfig context.")
@click.option("--kubeconfig", help="With --kube: the kubeconfig file.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.pass_context
def cli(
    ctx: click.Context,
    url: str,
    token: str | None,
    kube: bool,
    namespace: str | None,
    kube_context: str | None,
    kubeconfig: str | None,
    as_json: bool,
) -> None:
    """Background jobs of a JobQueue: enqueue, look, cancel, retry.

    \b
    jobqueue --url http://localhost:8000 stats
    jobqueue --kube -n shop stats emails
    """
    ctx.obj = Options(url, token, kube, namespace, kube_context, kubeconfig, as_json)


def _payload(value: str | None) -> Any:
    """A JSON payload: the text itself, `@path` for a file, `-` for stdin."""
    if value is None:
        return None
    if value == "-":
        value = sys.stdin.read()
    elif value.startswith("@"):
        value = Path(value[1:]).read_text()
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="PAYLOAD") from exc


@cli.command()
@click.argument("job_type", metavar="TYPE")
@click.argument("payload", required=False)
@click.option(
    "--priority", type=click.Choice([p.value for p in Priority]), default=Priority.NORMAL.value
)
@click.option("--delay", type=click.FloatRange(min=0), default=0.0, help="Seconds to wait.")
@click.option("--idempotency-key", help="Same key, same job.")
@click.option("--max-retries", type=click.IntRange(min=0), help="Retries before the DLQ.")
@click.pass_context
def enqueue(
    ctx: click.Context,
    job_type: str,
    payload: str | None,
    priority: str,
    delay: float,
    idempotency_key: str | None,
    max_retries: int | None,
) -> None:
    """Enqueue a job of TYPE; PAYLOAD is JSON, @file or - (stdin). Prints its id."""
    job: dict[str, Any] = {"type": job_type, "payload": _payload(payload), "priority": priority}
    if delay:
        job["delay_seconds"] = delay
    if idempotency_key is not None:
        job["idempotency_key"] = idempotency_key
    if max_retries is not None:
        job["max_retries"] = max_retries
    accepted = call(connect(ctx).enqueue, job)
    suffix = "" if accepted.get("created", True) else "  (existing job: same idempotency key)"
    emit(ctx, accepted, f"{accepted['job_id']}{suffix}")


@cli.command()
@click.argument("job_id")
@click.pass_context
def get(ctx: click.Context, job_id: str) -> None:
    """Show one job: status, attempts, progress, payload, result, error, timestamps."""
    job = call(connect(ctx).get, job_id)
    emit(ctx, job, fields(job, JOB_FIELDS))


@cli.command("ls")
@click.option("--state", type=click.Choice(STATES), default="queued", show_default=True)
@click.option("--type", "job_type", help="Only jobs of this type.")
@click.option("--queue", help="Only this queue (a pool's queue).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--cursor", help="The next page: the cursor the previous page printed.")
@click.pass_context
def list_jobs(
    ctx: click.Context,
    state: str,
    job_type: str | None,
    queue: str | None,
    limit: int,
    cursor: str | None,
) -> None:
    """List jobs in a state, newest first for finished ones; one page at a time."""
    api = connect(ctx)
    page = call(api.jobs, state=state, type=job_type, queue=queue, limit=limit, cursor=cursor)
    text = table(page["jobs"], JOB_COLUMNS)
    if page.get("next_cursor"):
        text += f"\nmore: --cursor {page['next_cursor']}"
    emit(ctx, page, text)


@cli.command()
@click.argument("job_id")
@click.pass_context
def cancel(ctx: click.Context, job_id: str) -> None:
    """Cancel a queued, delayed or running job (a running one stops cooperatively)."""
    job = call(connect(ctx).cancel, job_id)
    emit(ctx, job, f"{job['id']} {job['status']}")


@cli.group(cls=JobQueueGroup)
def dlq() -> None:
    """The dead-letter queue: ls, retry, rm, purge."""


QUEUE_OPTION = click.option("--queue", help="Only this queue or pool (default: every one).")


@dlq.command("ls")
@click.option("--offset", type=click.IntRange(min=0), default=0)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@QUEUE_OPTION
@click.pass_context
def dlq_ls(ctx: click.Context, offset: int, limit: int, queue: str | None) -> None:
    """List dead jobs, oldest death first, with their last error."""
    page = call(connect(ctx).dead, offset, limit, queue)
    text = table(page["jobs"], JOB_COLUMNS) + f"\n{page['total']} dead"
    emit(ctx, page, text)


@dlq.command("retry")
@click.argument("job_id", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Every dead job.")
@QUEUE_OPTION
@click.pass_context
def dlq_retry(ctx: click.Context, job_id: str | None, retry_all: bool, queue: str | None) -> None:
    """Re-enqueue one dead job (JOB_ID) or every one (--all), with a fresh attempt budget."""
    if (job_id is None) == (not retry_all):
        raise click.UsageError("give a JOB_ID or --all (not both)")
    api = connect(ctx)
    done = call(api.retry_all_dead, queue) if job_id is None else call(api.retry_dead, job_id)
    emit(ctx, done, f"retried {done['retried']}")


@dlq.command("rm")
@click.argument("job_id")
@click.pass_context
def dlq_rm(ctx: click.Context, job_id: str) -> None:
    """Delete one dead job and its record."""
    done = call(connect(ctx).delete_dead, job_id)
    emit(ctx, done, f"deleted {job_id}")


@dlq.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@QUEUE_OPTION
@click.pass_context
def dlq_purge(ctx: click.Context, yes: bool, queue: str | None) -> None:
    """Delete every dead job (asks first unless --yes)."""
    api = connect(ctx)
    if not yes:
        where = f"queue {queue}" if queue else "every queue"
        click.confirm(f"Delete every dead job of {where}?", abort=True, err=True)
    done = call(api.purge_dead, queue)
    emit(ctx, done, f"purged {done['purged']}")


@cli.command()
@click.option("--watch", "-w", is_flag=True, help="Refresh until interrupted.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True)
@click.option("--count", type=click.IntRange(min=1), help="With --watch: stop after N refreshes.")
@click.pass_context
def stats(ctx: click.Context, watch: bool, interval: float, count: int | None) -> None:
    """Every queue (the default one and each pool's): depth by priority and state, rates."""
    api = connect(ctx)
    shown = 0
    try:
        while True:
            queues = call(api.queues)
            stamp = datetime.now().astimezone().strftime("%H:%M:%S")
            text = table(queues, QUEUE_COLUMNS)
            if watch and not _options(ctx).as_json:
                click.clear()
                text = f"{stamp}  {api.url}  (every {interval:g} s, Ctrl-C stops)\n{text}"
            emit(ctx, {"queues": queues}, text)
            shown += 1
            if not watch or (count is not None and shown >= count):
                return
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@cli.command()
@click.pass_context
def workers(ctx: click.Context) -> None:
    """The workers that heartbeat: pool, busy, jobs in flight, last seen."""
    found = call(connect(ctx).workers)
    emit(ctx, {"workers": found}, table(found, WORKER_COLUMNS))


def main(argv: Sequence[str] | None = None) -> None:
    """The console script's entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="jobqueue")
