"""The built-in chat page: `GET /chat` and its two assets, shipped in `pytgi/web/`.

The page is static and holds no secret, so these routes stay public even with
`--api-key` (security.is_public); the API calls the page makes carry the key.
Files are read once, when the app is built: a missing file fails at start-up,
not on a user's first visit. `Cache-Control: no-cache` with an ETag lets a
browser keep its copy but revalidate it, so an upgraded server is seen at once.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

# pytgi/web/ is package data of `pytgi` (pyproject.toml), not a package of its own.
WEB_DIR = importlib.resources.files("pytgi").joinpath("web")
PAGE_PATH = "/chat"
# URL path -> (file in pytgi/web, content type). Nothing else is served: no directory listing,
# no path built from the request.
ASSETS = {
    PAGE_PATH: ("chat.html", "text/html; charset=utf-8"),
    f"{PAGE_PATH}/chat.css": ("chat.css", "text/css; charset=utf-8"),
    f"{PAGE_PATH}/chat.js": ("chat.js", "text/javascript; charset=utf-8"),
}
# Only the page's own files and this server's API; no inline script, no framing by other sites.
CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def load_static_file(file_name: str, content_type: str) -> StaticFile:
    body = WEB_DIR.joinpath(file_name).read_bytes()
    return StaticFile(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


class WebRoutes:
    """Serves the chat page and its assets from memory."""

    def __init__(self) -> None:
        self.files = {path: load_static_file(name, kind) for path, (name, kind) in ASSETS.items()}

    def router(self) -> APIRouter:
        router = APIRouter()
        for path, static in self.files.items():
            router.add_api_route(path, static_endpoint(static), methods=["GET"], include_in_schema=False,
                                 response_class=Response)
        return router


def static_endpoint(static: StaticFile) -> Callable[[Request], Awaitable[Response]]:
    headers = {
        "cache-control": "no-cache",
        "etag": static.etag,
        "x-content-type-options": "nosniff",
        "content-security-policy": CONTENT_SECURITY_POLICY,
    }

    async def serve(request: Request) -> Response:
        if request.headers.get("if-none-match") == static.etag:
            return Response(status_code=304, headers=headers)
        return Response(static.body, media_type=static.content_type, headers=headers)

    return serve
