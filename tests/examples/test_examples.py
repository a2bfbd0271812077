"""Every example in examples/ runs against the live demo-model server, as a user
would run it: a subprocess with PYTGI_URL set. Optional clients (gradio,
langchain-openai: the `examples` extra) are skipped when not installed."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(args: list[str], url: str, timeout_s: float = 120.0) -> str:
    env = {**os.environ, "PYTGI_URL": url, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout_s, cwd=EXAMPLES.parent)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def needs(module: str) -> pytest.MarkDecorator:
    missing = importlib.util.find_spec(module) is None
    return pytest.mark.skipif(missing, reason=f"{module} is not installed (pip install -e '.[dev,examples]')")


def test_inference_client(demo_server):
    out = run_example([sys.executable, str(EXAMPLES / "inference_client.py")], demo_server.url)
    for label in ("text_generation:", "stream:", "details: length 10", "chat_completion:", "chat stream:"):
        assert label in out


def test_openai_client(demo_server):
    out = run_example([sys.executable, str(EXAMPLES / "openai_client.py")], demo_server.url)
    for label in ("chat:", "chat stream:", "usage:", "completion:", "models: ['pytgi/demo']"):
        assert label in out


@needs("langchain_openai")
def test_langchain_chat(demo_server):
    out = run_example([sys.executable, str(EXAMPLES / "langchain_chat.py")], demo_server.url)
    assert re.search(r"invoke: (['\"]).+\1 (stop|length)", out), out  # repr quotes with " when the text has a '
    assert "stream: " in out


@needs("gradio")
def test_gradio_chat_interface_answers_through_its_api(demo_server):
    out = run_example([sys.executable, str(EXAMPLES / "gradio_chat.py"), "--smoke-test"], demo_server.url)
    assert re.search(r"gradio answer: (['\"]).+\1", out), out  # repr quotes with " when the text has a '


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_script_calls_every_route(demo_server):
    out = run_example(["bash", str(EXAMPLES / "curl.sh")], demo_server.url)
    routes = ("POST /generate", "POST /generate_stream", "POST / ", "POST /tokenize", "GET /info",
              "GET /health", "GET /metrics", "POST /v1/chat/completions", "POST /v1/completions",
              "GET /v1/models", "POST /chat_tokenize")
    for route in routes:
        assert f"== {route}" in out
    assert "data: [DONE]" in out and '"generated_text"' in out and "tgi_request_count" in out


def chatui_models() -> list[dict]:
    text = (EXAMPLES / "chatui.env.local").read_text()
    match = re.search(r"^MODELS=`(.*?)`", text, re.S | re.M)
    assert match is not None
    return json.loads(match.group(1))


def test_chatui_snippet_endpoints_work(demo_server):
    """The snippet's two endpoint types, called with the body chat-ui sends."""
    models = chatui_models()
    endpoints = {m["endpoints"][0]["type"]: m for m in models}
    assert set(endpoints) == {"tgi", "openai"}
    tgi = endpoints["tgi"]
    path = httpx.URL(tgi["endpoints"][0]["url"]).path
    body = {"inputs": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            "parameters": {**tgi["parameters"], "max_new_tokens": 5, "return_full_text": False},
            "stream": True}
    with httpx.stream("POST", demo_server.url + path, json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    assert events and events[-1]["generated_text"] is not None
    openai = endpoints["openai"]["endpoints"][0]
    assert openai["baseURL"].endswith("/v1")
    models_path = httpx.URL(openai["baseURL"]).path + "/models"
    listed = httpx.get(demo_server.url + models_path, timeout=10).json()
    assert listed["data"][0]["id"] == "pytgi/demo"
