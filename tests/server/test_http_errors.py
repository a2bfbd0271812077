"""HTTP-level rejections over the fake engine: bad bodies, unknown routes, server bugs.
All answer TGI's status codes with a JSON `{error, error_type}` body."""

from __future__ import annotations

from server_harness import make_client


def test_malformed_json_is_400_json() -> None:
    client, engine = make_client()
    response = client.post("/generate", content=b'{"inputs": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"].startswith("Failed to parse the request body as JSON: ")
    assert response.json()["error_type"] == "invalid_json"
    response = client.post(
        "/generate", content=b'{"inputs": NaN}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert engine.requests == []


def test_wrong_shape_is_422_json() -> None:
    client, _ = make_client()
    cases = [
        ({"parameters": {}}, "missing field `inputs`"),
        ({"inputs": 3}, "inputs: "),
        ({"inputs": "x", "parameters": {"max_new_tokens": "5"}}, "parameters.max_new_tokens: "),
        ({"inputs": "x", "parameters": {"max_new_tokens": 5.0}}, "parameters.max_new_tokens: "),
        ({"inputs": "x", "parameters": {"seed": -1}}, "parameters.seed: "),
        ({"inputs": "x", "parameters": {"do_sample": "yes"}}, "parameters.do_sample: "),
        (["x"], ""),
    ]
    for body, fragment in cases:
        response = client.post("/generate", json=body)
        assert response.status_code == 422, body
        assert response.json()["error_type"] == "validation"
        assert response.json()["error"].startswith(
            "Failed to deserialize the JSON body into the target type: " + fragment
        )


def test_missing_content_type_is_415() -> None:
    client, _ = make_client()
    response = client.post("/generate", content=b'{"inputs": "x"}')
    assert response.status_code == 415
    assert response.json() == {
        "error": "Expected request with `Content-Type: application/json`",
        "error_type": "unsupported_media_type",
    }
    ok = client.post(
        "/generate", content=b'{"inputs": "x"}', headers={"content-type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200


def test_payload_limit_is_413() -> None:
    client, _ = make_client(payload_limit=100)
    response = client.post("/generate", json={"inputs": "x" * 200})
    assert response.status_code == 413
    assert response.json() == {
        "error": "Failed to buffer the request body: length limit exceeded",
        "error_type": "payload_too_large",
    }


def test_unknown_route_and_wrong_method_are_json() -> None:
    client, _ = make_client()
    missing = client.post("/nope", json={})
    assert missing.status_code == 404
    assert missing.json() == {"error": "Not Found", "error_type": "not_found"}
    wrong = client.get("/generate")
    assert wrong.status_code == 405
    assert wrong.json() == {"error": "Method Not Allowed", "error_type": "method_not_allowed"}
    assert wrong.headers["allow"] == "POST"
    # `/` is served by two routes: the answer names both methods (Starlette's names only the first).
    options = client.request("OPTIONS", "/")
    assert options.status_code == 405
    assert options.headers["allow"] == "GET, POST"


def test_deeply_nested_json_is_a_client_error() -> None:
    client, engine = make_client()
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post("/generate", content=deep.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error_type"] == "invalid_json"
    nested = '{"inputs": "x", "parameters": ' + '{"a": ' * 3000 + "1" + "}" * 3000 + "}"
    response = client.post("/generate", content=nested.encode(), headers={"content-type": "application/json"})
    assert response.status_code in (400, 422)
    assert "error" in response.json()
    assert engine.requests == []


def test_unexpected_error_is_json_500_without_traceback() -> None:
    from fastapi.testclient import TestClient
    from server_harness import make_app

    app, engine = make_app()

    async def broken(text: str):
        raise RuntimeError("/secret/path/boom")

    engine.tokenize = broken  # type: ignore[method-assign]
    client = TestClient(app, raise_server_exceptions=False)
    response = client.post("/tokenize", json={"inputs": "x"})
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error", "error_type": "internal"}
