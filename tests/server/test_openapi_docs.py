"""/api-doc/openapi.json is valid OpenAPI with the request models; /docs works offline."""

from __future__ import annotations

from openapi_spec_validator import validate
from server_harness import make_client


def test_openapi_document_is_valid_and_describes_bodies() -> None:
    client, _ = make_client()
    document = client.get("/api-doc/openapi.json").json()
    validate(document)
    for path in ("/generate", "/generate_stream", "/", "/tokenize", "/invocations", "/vertex"):
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        name = body["$ref"].rsplit("/", 1)[1]
        assert name in document["components"]["schemas"], path
    parameters = document["components"]["schemas"]["GenerateParameters"]["properties"]
    assert {"max_new_tokens", "top_n_tokens", "watermark", "decoder_input_details"} <= set(parameters)


def test_openapi_document_describes_answers_with_tgi_names() -> None:
    client, _ = make_client()
    document = client.get("/api-doc/openapi.json").json()
    components = document["components"]["schemas"]
    expected = {
        ("/generate", "post"): ("generate", "GenerateResponse"),
        ("/generate_stream", "post"): ("generate_stream", "StreamEvent"),
        ("/", "post"): ("compat_generate", "CompatGenerateResponse"),
        ("/tokenize", "post"): ("tokenize", "TokenizeResponse"),
        ("/info", "get"): ("get_model_info", "Info"),
        ("/vertex", "post"): ("vertex_compatibility", "VertexResponse"),
    }
    for (path, method), (operation_id, model) in expected.items():
        operation = document["paths"][path][method]
        assert operation["operationId"] == operation_id
        content = operation["responses"]["200"]["content"]
        media = "text/event-stream" if path == "/generate_stream" else "application/json"
        schema = content[media]["schema"]
        if media == "text/event-stream":
            schema = schema["properties"]["data"]["contentSchema"]
        assert schema["$ref"].endswith("/" + model), path
        assert model in components
    for path, event in (("/", "StreamEvent"), ("/v1/chat/completions", "ChatStreamEvent"),
                        ("/invocations", "SagemakerStreamEvent")):  # JSON or, with `stream`, SSE events
        content = document["paths"][path]["post"]["responses"]["200"]["content"]
        data = content["text/event-stream"]["schema"]["properties"]["data"]
        schema = data["anyOf"][1] if "anyOf" in data else data  # OpenAI streams may also send [DONE]
        assert schema["contentSchema"]["$ref"].endswith("/" + event), path
    for name in ("StreamResponse", "Details", "Token", "PrefillToken", "BestOfSequence", "StreamDetails", "SimpleToken"):
        assert name in components
    errors = document["paths"]["/generate"]["post"]["responses"]
    assert {"422", "424", "429", "500"} <= set(errors)
    assert errors["429"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


def test_docs_page_uses_local_assets_only() -> None:
    client, _ = make_client(api_key="k")  # docs stay public behind an API key
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    assert "https://" not in page.text.replace("https://swagger.io", "")
    assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 200
    assert client.get("/api-doc/openapi.json").status_code == 200
