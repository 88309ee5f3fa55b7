"""`python -m jobqueue_cli`: the same program as the `jobqueue` script."""

from __future__ import annotations

from jobqueue_cli.main import cli

if __name__ == "__main__":
    cli()
