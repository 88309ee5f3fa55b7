"""Pure fire-time math of ``spec.schedules``: next and missed fire times, with an injectable now.

Fire times are wall-clock times of a standard 5-field cron expression in an IANA time zone,
returned as aware UTC datetimes. Daylight-saving time is handled so that every schedule fires at
most once per wall-clock match: a time skipped by a spring-forward jump fires once at the jump
(as Vixie cron does), and a time repeated by a fall-back fires once, at its first occurrence.

A missed fire time is caught up only if it lies within the last ``window`` seconds, and only the
latest one of those: an operator that was down for an hour enqueues at most one job per
schedule when it comes back, never a burst. Exactly-once per fire time across restarts and
replicas comes from the idempotency key (:func:`idempotency_key`) the enqueue carries.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

__all__ = [
    "CRON_PATTERN",
    "CronError",
    "check_cron",
    "due_fire",
    "idempotency_key",
    "next_fire",
    "zone",
]


def _field(value: str) -> str:
    item = rf"(\*|{value}(-{value})?)(/[0-9]{{1,2}})?"
    return rf"{item}(,{item})*"


_NAME: Final = "[A-Za-z]{3}"
#: Five fields (minute hour day-of-month month day-of-week) with their numeric ranges; names of
#: months and weekdays are checked by croniter (the model), not here. No @-macros, no seconds.
CRON_PATTERN: Final = (
    r"^\s*"
    + r"\s+".join(
        (
            _field("[0-5]?[0-9]"),
            _field("(1?[0-9]|2[0-3])"),
            _field("([1-9]|[12][0-9]|3[01])"),
            _field(f"([1-9]|1[0-2]|{_NAME})"),
            _field(f"([0-7]|{_NAME})"),
        )
    )
    + r"\s*$"
)
_CRON_RE: Final = re.compile(CRON_PATTERN)
_PROBE_FROM: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_STEPS: Final = 100_000  # a guard: no valid expression needs this many steps


class CronError(ValueError):
    """A cron expression or time zone that cannot be used."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; :class:`CronError` if there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name!r} (use an IANA name such as UTC)") from exc


def check_cron(expr: str) -> None:
    """Raise :class:`CronError` unless ``expr`` is a standard 5-field cron expression that
    fires at some time (``0 0 31 2 *`` never does)."""
    if not _CRON_RE.match(expr) or not croniter.is_valid(expr):
        raise CronError(f"{expr!r} is not a 5-field cron expression")
    try:
        croniter(expr, _PROBE_FROM).get_next(datetime)
    except Exception as exc:  # croniter raises its own errors for a date that never comes
        raise CronError(f"{expr!r} never fires") from exc


def _repeated(local: datetime) -> bool:
    """The second occurrence of a wall-clock time repeated by a DST fall-back."""
    return local.fold == 1


def next_fire(expr: str, tz: ZoneInfo, after: datetime) -> datetime:
    """The first fire time strictly after ``after`` (aware), in UTC."""
    after = after.astimezone(UTC)
    it = croniter(expr, after.astimezone(tz))
    for _ in range(_MAX_STEPS):
        local: datetime = it.get_next(datetime)
        fire = local.astimezone(UTC)
        if fire > after and not _repeated(fire.astimezone(tz)):
            return fire
    raise CronError(f"{expr!r}: no fire time found after {after.isoformat()}")


def due_fire(
    expr: str,
    tz: ZoneInfo,
    now: datetime,
    *,
    window: float,
    last_fire: datetime | None,
    earliest: datetime | None = None,
) -> datetime | None:
    """The fire time to enqueue now, if any: the latest fire time in ``(lower, now]``, where
    ``lower`` is the later of ``now - window``, ``last_fire`` (already enqueued) and just before
    ``earliest`` (when the schedule started to exist). Older missed fire times are dropped."""
    lower = now - timedelta(seconds=window)
    if last_fire is not None:
        lower = max(lower, last_fire)
    if earliest is not None:
        lower = max(lower, earliest - timedelta(microseconds=1))
    due: datetime | None = None
    fire = next_fire(expr, tz, lower)
    while fire <= now:
        due = fire
        fire = next_fire(expr, tz, fire)
    return due


def isoformat(fire: datetime) -> str:
    """A fire time as RFC 3339 UTC with a Z (status and idempotency keys)."""
    return fire.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time from status; None if absent or unreadable."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def idempotency_key(name: str, fire: datetime) -> str:
    """``schedule:<name>:<fire time>``: a second enqueue of the same fire time is a no-op."""
    return f"schedule:{name}:{isoformat(fire)}"
