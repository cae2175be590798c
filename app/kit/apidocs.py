"""`/docs` (Swagger UI) and `/redoc` served with their assets from this service.

FastAPI's own pages load their JS and CSS from a public CDN (and ReDoc its fonts from
Google), so on a network without internet they stay blank. The assets here come from the
`fastapi-offline` wheel (MIT; it ships swagger-ui-dist, Apache-2.0, and ReDoc's standalone
bundle, MIT), installed by pip: upgrading that pin upgrades the UIs. Only its files are used,
not its app factory. The pages need no token, as before; the OpenAPI JSON stays where the app
says (`app.openapi_url`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/docs/static"


def assets_dir() -> Path:
    """The folder of the installed distribution's Swagger UI and ReDoc files."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add the two documentation pages and their static files to an app created with
    ``docs_url=None, redoc_url=None`` (so FastAPI adds no CDN-backed pages of its own)."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("documentation pages need the app's openapi_url")
    oauth2_redirect_url = f"{docs_url}/oauth2-redirect"
    app.mount(STATIC_URL, StaticFiles(directory=assets_dir()), name="docs-static")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            init_oauth=app.swagger_ui_init_oauth,
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
