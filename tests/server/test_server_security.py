"""--api-key and --cors-allow-origin over the fake engine."""

from __future__ import annotations

from server_harness import make_client

GENERATE = {"inputs": "Hi there", "parameters": {"max_new_tokens": 3}}


def test_protected_routes_need_the_exact_bearer_key() -> None:
    client, engine = make_client(api_key="s3cret")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "bearer s3cret"}, {"Authorization": "s3cret"}):
        response = client.post("/generate", json=GENERATE, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "Unauthorized", "error_type": "authentication"}
    assert engine.requests == []
    ok = client.post("/generate", json=GENERATE, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    for path in ("/generate_stream", "/", "/tokenize"):
        assert client.post(path, json=GENERATE).status_code == 401, path


def test_public_routes_stay_open_with_a_key() -> None:
    client, _ = make_client(api_key="s3cret")
    for path in ("/", "/health", "/ping", "/info", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_cors_only_for_configured_origins() -> None:
    client, _ = make_client(cors_allow_origins=("http://ok.example",))
    allowed = client.get("/info", headers={"Origin": "http://ok.example"})
    assert allowed.headers["access-control-allow-origin"] == "http://ok.example"
    denied = client.get("/info", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in denied.headers
    preflight = client.options(
        "/generate",
        headers={"Origin": "http://ok.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,authorization"},
    )
    assert preflight.status_code == 200


def test_no_cors_headers_by_default() -> None:
    client, _ = make_client()
    response = client.get("/info", headers={"Origin": "http://any.example"})
    assert "access-control-allow-origin" not in response.headers


def test_draining_refuses_new_work_and_fails_health() -> None:
    client, engine = make_client()
    assert client.get("/health").status_code == 200
    client.app.state.pytgi.limiter.begin_drain()
    assert client.get("/health").status_code == 503
    response = client.post("/generate", json=GENERATE)
    assert response.status_code == 503
    assert response.json() == {"error": "Server is shutting down", "error_type": "unavailable"}
    assert engine.requests == []
