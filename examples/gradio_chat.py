"""The Gradio chat demo of TGI's docs ("Consuming TGI" > Gradio), on pytgi.

    .venv/bin/pip install -e ".[dev,examples]"     # gradio is not a pytgi dependency
    make run                                   # in another terminal
    .venv/bin/python examples/gradio_chat.py   # then open http://127.0.0.1:7860

Updated for current Gradio: `ChatInterface(type="messages")` is gone (Gradio 6
always passes the history as OpenAI-style messages), and the history is sent
to the model, so it remembers the conversation. `--smoke-test` starts the UI on
a free port without blocking, asks it one question through `gradio_client`
(the way a program calls a Gradio app) and exits: that is what the tests run.
PYTGI_URL points it at another server (default http://127.0.0.1:8080).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import gradio as gr
from huggingface_hub import InferenceClient

URL = os.environ.get("PYTGI_URL", "http://127.0.0.1:8080")
SYSTEM_PROMPT = "You are a helpful assistant."


def text_of(content: Any) -> str:
    """A Gradio message's content as text: a string, or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def make_inference(client: InferenceClient, max_tokens: int) -> Any:
    def inference(message: str, history: list[dict[str, Any]]) -> Iterator[str]:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        messages += [{"role": m["role"], "content": text_of(m["content"])} for m in history]
        messages.append({"role": "user", "content": message})
        partial_message = ""
        output = client.chat.completions.create(messages=messages, stream=True, max_tokens=max_tokens)
        for chunk in output:
            partial_message += chunk.choices[0].delta.content or ""
            yield partial_message

    return inference


def build_demo(url: str = URL, max_tokens: int = 1024) -> gr.ChatInterface:
    return gr.ChatInterface(
        make_inference(InferenceClient(base_url=url), max_tokens),
        description="This is the demo for Gradio UI consuming pytgi (a Text Generation Inference server)",
        title="Gradio 🤝 pytgi",
        examples=["What is a Python list?", "How do I open a file?"],
        api_name="chat",  # Gradio 5 named it so by default; Gradio 6 would use the function's name
    )


def smoke_test() -> None:
    from gradio_client import Client

    demo = build_demo(max_tokens=20)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        answer = Client(demo.local_url, verbose=False).predict("What is a tuple?", api_name="/chat")
        print("gradio answer:", repr(answer))
    finally:
        demo.close()


def main() -> None:
    if "--smoke-test" in sys.argv[1:]:
        smoke_test()
        return
    build_demo().queue().launch()


if __name__ == "__main__":
    main()
