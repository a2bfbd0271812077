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


def test_docs_page_uses_local_assets_only() -> None:
    client, _ = make_client(api_key="k")  # docs stay public behind an API key
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    assert "https://" not in page.text.replace("https://swagger.io", "")
    assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 200
    assert client.get("/api-doc/openapi.json").status_code == 200
