"""The chat page's routes over the fake engine: content types, caching, public with --api-key."""

from __future__ import annotations

import pytest
from server_harness import make_client

ASSETS = {
    "/chat": "text/html; charset=utf-8",
    "/chat/chat.css": "text/css; charset=utf-8",
    "/chat/chat.js": "text/javascript; charset=utf-8",
}


@pytest.mark.parametrize("path", sorted(ASSETS))
def test_assets_are_served_with_their_content_type_and_revalidated(path: str) -> None:
    client, _ = make_client()
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == ASSETS[path]
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    again = client.get(path, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_page_links_only_its_own_assets() -> None:
    client, _ = make_client()
    page = client.get("/chat").text
    assert 'href="chat/chat.css"' in page and 'src="chat/chat.js"' in page
    assert "http://" not in page and "https://" not in page  # works offline: no CDN
    assert "default-src 'self'" in client.get("/chat").headers["content-security-policy"]


def test_chat_page_is_public_but_the_api_it_calls_is_not() -> None:
    client, _ = make_client(api_key="s3cret")
    for path in ASSETS:
        assert client.get(path).status_code == 200, path
    body = {"messages": [{"role": "user", "content": "Hi"}], "stream": True}
    assert client.post("/v1/chat/completions", json=body).status_code == 401
    assert client.get("/chat/other.js").status_code == 404  # public prefix, but nothing else is served


def test_chat_page_is_not_in_the_api_document() -> None:
    client, _ = make_client()
    paths = client.get("/api-doc/openapi.json").json()["paths"]
    assert not any(path.startswith("/chat") and path != "/chat_tokenize" for path in paths)
