"""A built single-page web app, served from a directory (LEARNFLOW_GATEWAY_STATIC_DIR).

The gateway knows nothing of the app: it serves the directory's files, and answers a browser's
navigation to any other path (a client-side route such as `/courses/42`) with `index.html`.
API routes always win: the site is only asked about GET/HEAD requests no API route matched,
so an API read never pays for a file-system look-up. A non-navigation miss (a script, an image,
`curl` asking for JSON) stays the API's JSON 404.

Files whose names carry a content hash (what bundlers emit, e.g. `index-3f9a1c2b.js`) never
change under that name: they are cached for a year. Everything else, `index.html` first, is
revalidated on every load so a deploy is seen at once. Every answer carries the configured
Content-Security-Policy.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

# A bundler's content hash: a dash or dot, then 8+ URL-safe characters, before the extension.
_HASHED = re.compile(r"[.-][A-Za-z0-9_-]{8,}\.[A-Za-z0-9]+$")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

# Scripts, styles, fonts and API calls from this origin only; no inline script or <style>
# (style attributes set through the DOM are not affected); images and media may come from
# any https origin (avatars, lesson videos), embedded players from https frames.
DEFAULT_CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' https: data:",
        "media-src 'self' https:",
        "frame-src https:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


class StaticSite:
    """The app's files under `root`, with an `index.html` fallback for navigations."""

    def __init__(self, root: Path, content_security_policy: str) -> None:
        if not (root / "index.html").is_file():
            raise ValueError(f"{root} has no index.html: build the web app first")
        self.root = root
        self.files = StaticFiles(directory=root)
        self.headers = {
            "Content-Security-Policy": content_security_policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "strict-origin-when-cross-origin",
        }

    async def serve(self, request: Request) -> Response | None:
        """The file at the request's path; `index.html` for a browser navigation to a path
        with no file; None otherwise (the caller answers 404)."""
        path = request.url.path.lstrip("/")
        response = await self._file(path, request)
        if response is None and _is_navigation(request):
            response = await self._file("index.html", request)
        return response

    async def _file(self, path: str, request: Request) -> Response | None:
        try:
            response = await self.files.get_response(path or "index.html", request.scope)
        except HTTPException:
            return None
        if response.status_code not in (200, 304):
            return None
        response.headers.update(self.headers)
        response.headers["Cache-Control"] = IMMUTABLE if _HASHED.search(path) else REVALIDATE
        return response


def _is_navigation(request: Request) -> bool:
    """A browser loading a page (not fetching a script, an image or JSON)."""
    mode = request.headers.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate"
    return "text/html" in request.headers.get("accept", "")
