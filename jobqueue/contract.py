"""The contract between the operator and the images it runs, declared once.

The operator's builders set these environment variables on the API and worker pods, and the
images' settings read them under these names; neither side spells a name itself. Here too: the
defaults and limits both sides must agree on, the Redis URL schemes a pod can be given, and the
JSON log line every image writes (one formatter). tests/unit/test_contract.py builds the
Deployments of a JobQueue and proves their env names are exactly what the images' settings
read, and that the values parse there.

Pure constants and a logging.Formatter: importable by every program (the protocol library
imports none of them).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Final

from jobqueue.connection import URL_SCHEMES
from jobqueue.constants import MAX_QUEUE_NAME_LENGTH

# -- Environment variables the operator sets --------------------------------------------------

ENV_REDIS_URL: Final = "REDIS_URL"
ENV_TASK_QUEUE_URL: Final = "TASK_QUEUE_URL"  # an alias of REDIS_URL (the name seed 001 reads)
ENV_QUEUE_NAME: Final = "QUEUE_NAME"
ENV_PORT: Final = "PORT"  # API: its listen port
ENV_API_TOKEN: Final = "API_TOKEN"  # noqa: S105 - a variable name
ENV_POD_NAME: Final = "POD_NAME"  # worker: its id in its Redis heartbeat (downward API)
ENV_WORKER_CONCURRENCY: Final = "WORKER_CONCURRENCY"
ENV_JOB_TIMEOUT: Final = "JOB_TIMEOUT_SECONDS"
ENV_DRAIN_TIMEOUT: Final = "DRAIN_TIMEOUT_SECONDS"
ENV_HEALTH_PORT: Final = "HEALTH_PORT"  # worker: its /healthz, /readyz and /metrics port
ENV_JOB_ROUTES: Final = "JOB_ROUTES"  # API: JSON {job type: queue name} of the worker pools

#: What the operator sets on an API pod (API_TOKEN only with a token, JOB_ROUTES only with
#: routed pools): every one a field of jobqueue_api.settings.Settings.
API_ENV: Final = frozenset(
    {ENV_REDIS_URL, ENV_TASK_QUEUE_URL, ENV_QUEUE_NAME, ENV_PORT, ENV_API_TOKEN, ENV_JOB_ROUTES}
)
#: What the operator sets on a worker pod: every one a field of
#: jobqueue_worker.settings.WorkerSettings.
WORKER_ENV: Final = frozenset(
    {
        ENV_REDIS_URL,
        ENV_TASK_QUEUE_URL,
        ENV_QUEUE_NAME,
        ENV_WORKER_CONCURRENCY,
        ENV_JOB_TIMEOUT,
        ENV_DRAIN_TIMEOUT,
        ENV_HEALTH_PORT,
        ENV_POD_NAME,
    }
)
#: Names the operator sets itself, so a user's env list (or a copied Secret key) may not use
#: them; in this order in the CRD's validation messages.
RESERVED_ENV: Final = (
    ENV_REDIS_URL,
    ENV_TASK_QUEUE_URL,
    ENV_QUEUE_NAME,
    ENV_PORT,
    ENV_API_TOKEN,
    ENV_POD_NAME,
    ENV_WORKER_CONCURRENCY,
    ENV_JOB_TIMEOUT,
    ENV_DRAIN_TIMEOUT,
    ENV_HEALTH_PORT,
    ENV_JOB_ROUTES,
)

# -- Shared defaults and limits ---------------------------------------------------------------

DEFAULT_QUEUE_NAME: Final = "default"  # QUEUE_NAME unset
QUEUE_NAME_MAX_LENGTH: Final = MAX_QUEUE_NAME_LENGTH
HTTP_PORT: Final = 8080  # the API's PORT and the worker's HEALTH_PORT, in the images and pods
DEFAULT_WORKER_CONCURRENCY: Final = 8  # jobs at once per worker process
MAX_WORKER_CONCURRENCY: Final = 4096
DEFAULT_JOB_TIMEOUT_SECONDS: Final = 300  # 0: no limit
MAX_JOB_TIMEOUT_SECONDS: Final = 86400
DEFAULT_DRAIN_TIMEOUT_SECONDS: Final = 25  # shorter than a pod's default 30 s grace period

# -- Redis URLs -------------------------------------------------------------------------------

#: Every scheme the images' REDIS_URL takes (what jobqueue.connect_any opens).
REDIS_URL_SCHEMES: Final = URL_SCHEMES
#: The schemes a JobQueue's Redis URL may use (``unix://`` names no socket a pod has), in the
#: order the CRD's validation message lists them.
POD_REDIS_URL_SCHEMES: Final = (
    "redis",
    "rediss",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)

# -- The JSON log line ------------------------------------------------------------------------

LOG_TS: Final = "ts"  # ISO 8601, UTC, milliseconds: 2026-01-31T12:00:00.123+00:00
LOG_LEVEL: Final = "level"  # lower case: debug, info, warning, error, critical
LOG_LOGGER: Final = "logger"
LOG_MSG: Final = "msg"
LOG_EXC: Final = "exc"  # the formatted traceback, when the record has one

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD_ATTRS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of msg
}


def log_timestamp(created: float) -> str:
    """The ``ts`` of a log line, from a time.time() value."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def dumps_log(doc: dict[str, Any]) -> str:
    """One log object as compact JSON (UTF-8 kept, anything unknown as its str())."""
    return json.dumps(doc, default=str, ensure_ascii=False, separators=(",", ":"))


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: ts, level, logger, msg, then its extra fields, then exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            LOG_TS: log_timestamp(record.created),
            LOG_LEVEL: record.levelname.lower(),
            LOG_LOGGER: record.name,
            LOG_MSG: record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc[LOG_EXC] = self.formatException(record.exc_info)
        return dumps_log(doc)
