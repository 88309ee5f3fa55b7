"""The dashboard at /ui: static HTML, ES modules and CSS shipped in this package, strict CSP.

The files are public (the login form must load); every call they make goes to the API with
the bearer token the user typed, kept in the tab's sessionStorage and sent in the
Authorization header. No cookie is ever set, so another site cannot make the browser send a
request that carries the user's authority (no CSRF), and the CSP below lets the page run only
its own scripts, talk only to its own origin and not be framed.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
UI_PATH = "/ui"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate (ETag): a new image's files are picked up
}


class SecuredStaticFiles(StaticFiles):
    """StaticFiles whose every answer (404 too) carries the dashboard's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:  # how StaticFiles answers 404 and 405
            response = PlainTextResponse(exc.detail, exc.status_code, exc.headers)
        response.headers.update(SECURITY_HEADERS)
        return response


def install(app: FastAPI) -> None:
    """Serve the dashboard at /ui/ (and redirect /ui there)."""

    @app.get(UI_PATH, include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse(f"{UI_PATH}/", status_code=308)

    app.mount(UI_PATH, SecuredStaticFiles(directory=UI_DIR, html=True), name="ui")
