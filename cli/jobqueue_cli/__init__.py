"""The `jobqueue` command line: jobs, the dead-letter queue, stats and workers over the HTTP API."""

from __future__ import annotations

from jobqueue_cli.main import cli

__all__ = ["cli"]
