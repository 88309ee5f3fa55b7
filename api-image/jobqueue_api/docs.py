"""/docs: Swagger UI served by the API itself, so it works in a cluster with no internet.

FastAPI's default /docs and /redoc pages load their JavaScript and CSS from a CDN. Following
FastAPI's "self-hosting JavaScript and CSS for docs" recipe, the page is built with
``get_swagger_ui_html`` pointing at files this package ships (``static/swagger-ui``: Swagger
UI 5 from the pinned npm package swagger-ui-dist, see its VERSION note; version 5 because
FastAPI writes OpenAPI 3.1, which Swagger UI 4 cannot render). ReDoc is not offered: it
would be a second bundle to vendor for the same document.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).parent / "static" / "swagger-ui"
ASSETS_PATH = "/docs-assets"


def install(app: FastAPI, title: str) -> None:
    """Serve /docs and its assets (the app must be built with docs_url=None)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
        )
