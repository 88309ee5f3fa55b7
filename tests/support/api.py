"""The API in-process for the integration tests: its settings for a Redis URL and queue, and
the app served over ASGI with its lifespan running. No tests here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from jobqueue_api.app import create_app
from jobqueue_api.settings import Settings
from pydantic import SecretStr


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The app with its lifespan running, reached in-process over ASGI."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client, app


def make_settings(redis_url: str, queue_name: str, **overrides: Any) -> Settings:
    """The API's settings for one Redis and queue (anything else as given, else the default)."""
    return Settings(redis_url=SecretStr(redis_url), queue_name=queue_name, **overrides)
