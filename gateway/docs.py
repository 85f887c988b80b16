"""Interactive API docs at /docs: Swagger UI over the gateway's own /openapi.json.

The assets come from the installed `openapi-ui-bundles` package (pinned), never a CDN, so the
page works offline. The page carries a Content-Security-Policy that allows scripts from this
origin only: Swagger UI's start-up code is a served file (`/docs/assets/init.js`), not an
inline script.
"""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Route

DOCS_PATH = "/docs"
ASSETS_PATH = DOCS_PATH + "/assets"
OPENAPI_PATH = "/openapi.json"

# Swagger UI's React components set inline style attributes, so styles (not scripts) may be
# inline; images may be data: URLs (its icons). Everything else comes from this origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

# The vendor files the page uses; nothing else in the package directory is served.
_VENDOR_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}

# Swagger UI's start-up: served as a file so the CSP needs no 'unsafe-inline' for scripts.
INIT_JS = """\
"use strict";
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    displayOperationId: true,
    displayRequestDuration: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    filter: true,
    persistAuthorization: false,
    showExtensions: false,
    tryItOutEnabled: false,
    // No call to swagger.io's online validator: the page must work offline.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""


def vendor_dir() -> Path:
    """Where the installed package keeps Swagger UI's dist files."""
    from openapi_ui_bundles import swagger_ui

    path: Path = swagger_ui.static_path
    return path


def page(title: str) -> str:
    name = html.escape(title)
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{name}: interactive docs</title>
  <link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
  <link rel="icon" type="image/png" sizes="32x32" href="{ASSETS_PATH}/favicon-32x32.png">
</head>
<body>
  <noscript>The interactive docs need JavaScript; the description itself is at
    <a href="{OPENAPI_PATH}">{OPENAPI_PATH}</a>.</noscript>
  <div id="swagger-ui" data-openapi-url="{OPENAPI_PATH}"></div>
  <script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
  <script src="{ASSETS_PATH}/init.js"></script>
</body>
</html>
"""


def routes(title: str) -> list[BaseRoute]:
    body = page(title)
    # Assets are pinned with the package: cacheable for a day, revalidated after that.
    cache = {"Cache-Control": "public, max-age=86400"}

    async def docs(request: Request) -> Response:
        return HTMLResponse(body, headers={**_SECURITY_HEADERS, "Cache-Control": "no-cache"})

    async def init_js(request: Request) -> Response:
        return Response(INIT_JS, media_type="text/javascript; charset=utf-8", headers=cache)

    def asset(name: str, media_type: str) -> Route:
        async def serve(request: Request) -> Response:
            return FileResponse(
                vendor_dir() / name,
                media_type=media_type,
                headers={**cache, "X-Content-Type-Options": "nosniff"},
            )

        return Route(f"{ASSETS_PATH}/{name}", serve, methods=["GET"])

    out: list[BaseRoute] = [
        Route(DOCS_PATH, docs, methods=["GET"]),
        Route(ASSETS_PATH + "/init.js", init_js, methods=["GET"]),
    ]
    # One route per file (not a path parameter): any other name is the gateway's usual 404.
    out.extend(asset(name, media_type) for name, media_type in _VENDOR_FILES.items())
    return out
