"""/invocations (SageMaker) and /vertex over the fake engine."""

from __future__ import annotations

from server_harness import make_client, sse_events


def test_invocations_dispatches_generate_bodies_like_compat() -> None:
    client, _ = make_client()
    response = client.post("/invocations", json={"inputs": "Hi there", "parameters": {"max_new_tokens": 3}})
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list) and body[0]["generated_text"].startswith("Hi there")
    stream = client.post("/invocations", json={"inputs": "Hi there", "stream": True})
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert sse_events(stream.text)[-1]["generated_text"] is not None


def test_invocations_dispatches_chat_and_completion_bodies() -> None:
    client, engine = make_client()
    chat = client.post("/invocations", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
    assert chat.status_code == 200
    assert chat.json()["object"] == "chat.completion"
    assert engine.requests[-1].prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    completion = client.post("/invocations", json={"prompt": "Once", "max_tokens": 2})
    assert completion.status_code == 200 and completion.json()["object"] == "text_completion"
    streamed = client.post("/invocations", json={"prompt": "Once", "max_tokens": 2, "stream": True})
    assert streamed.text.rstrip().endswith("data: [DONE]")
    num_requests = len(engine.requests)
    response = client.post("/invocations", json={"something": 1})
    assert response.status_code == 422
    assert len(engine.requests) == num_requests


def test_vertex_takes_chat_instances() -> None:
    client, engine = make_client()
    body = {"instances": [{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}]}
    response = client.post("/vertex", json=body)
    assert response.status_code == 200
    assert response.json() == {"predictions": ["Hello world"]}
    assert engine.requests[0].add_special_tokens is False


def test_vertex_predictions_and_errors() -> None:
    client, engine = make_client()
    body = {"instances": [{"inputs": "Hi there", "parameters": {"max_new_tokens": 3, "seed": 5}}, {"inputs": "Hey"}]}
    response = client.post("/vertex", json=body)
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 2 and all(isinstance(p, str) for p in predictions)
    # TGI samples Vertex instances and asks for prompt details.
    assert all(r.sampling.do_sample and r.decoder_input_details for r in engine.requests)
    assert engine.requests[0].sampling.seed == 5
    empty = client.post("/vertex", json={"instances": []})
    assert empty.status_code == 422
    assert empty.json() == {"error": "Input validation error", "error_type": "Input validation error"}
    failing = client.post("/vertex", json={"instances": [{"inputs": "x", "parameters": {"max_new_tokens": 0}}]})
    assert failing.status_code == 500
    assert failing.json() == {"error": "Incomplete generation", "error_type": "Incomplete generation"}
