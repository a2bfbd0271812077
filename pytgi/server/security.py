"""API-key authentication as a pure ASGI middleware.

Pure ASGI (not Starlette's BaseHTTPMiddleware) so that streaming responses and
the disconnect watchers of the routes see the client exactly as without it.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from pytgi.server.responses import json_bytes

# Routes TGI leaves open (health probes, monitoring, documentation); `GET /` is
# the health alias while `POST /` generates and is protected. The chat page (`/chat`
# and its assets under `/chat/`) holds no secret: the API calls it makes carry the key.
PUBLIC_PATHS = frozenset(
    {"/health", "/ping", "/info", "/metrics", "/docs", "/api-doc/openapi.json", "/openapi.json", "/v1/models",
     "/chat"}
)
UNAUTHORIZED_BODY = json_bytes({"error": "Unauthorized", "error_type": "authentication"})


def is_public(method: str, path: str) -> bool:
    return (path in PUBLIC_PATHS or path.startswith(("/docs/", "/chat/"))
            or (path == "/" and method in ("GET", "HEAD")))


class ApiKeyMiddleware:
    """Requires `Authorization: Bearer <key>` on every non-public route."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["method"], scope["path"]) or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
            }
        )
        await send({"type": "http.response.body", "body": UNAUTHORIZED_BODY})

    def _authorized(self, scope: Scope) -> bool:
        values = [value for name, value in scope["headers"] if name == b"authorization"]
        # Exact match, in constant time, so the key cannot be guessed byte by byte.
        return len(values) == 1 and hmac.compare_digest(values[0], self._expected)
