"""`python -m jobqueue_api`: read the settings, set up JSON logs, serve with uvicorn."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI

from jobqueue import ConfigError
from jobqueue_api.app import connect_redis, create_app, on_shutdown_signal
from jobqueue_api.logs import configure_logging
from jobqueue_api.settings import SettingsError, load_settings

EXIT_CONFIG = 2
EXIT_STARTUP = 3
GRACEFUL_SHUTDOWN_SECONDS = 20


def _exit_zero(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app when a shutdown starts (see on_shutdown_signal)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        on_shutdown_signal(self._app)


def main() -> int:
    """Serve until SIGTERM (drain, exit 0); exit 2 on bad configuration, 3 if startup failed."""
    try:
        settings = load_settings()
        connect_redis(settings)  # builds, does not connect: checks the URL's options now
    except (SettingsError, ConfigError) as exc:  # messages never hold the password
        configure_logging("INFO")
        logging.getLogger("jobqueue_api").critical(str(exc))
        return EXIT_CONFIG
    configure_logging(settings.log_level)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="auto",  # uvloop when installed
        http="auto",  # httptools when installed
        lifespan="on",
        log_config=None,
        access_log=settings.access_log,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _Server(config, app)
    # uvicorn drains on SIGTERM, then re-raises it to the handler found at startup: make that
    # one exit 0, so a normal shutdown (Kubernetes stopping the pod) reads as a success.
    signal.signal(signal.SIGTERM, _exit_zero)
    server.run()
    return 0 if server.started else EXIT_STARTUP


if __name__ == "__main__":
    sys.exit(main())
