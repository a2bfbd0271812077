"""pytgi through the `openai` client: chat, streaming chat, completions, models.

    make run                                   # in another terminal
    .venv/bin/python examples/openai_client.py

PYTGI_URL points it at another server (default http://127.0.0.1:8080). The API
key is not checked unless the server runs with --api-key; "-" is what TGI's docs use.
"""

from __future__ import annotations

import os

from openai import OpenAI

URL = os.environ.get("PYTGI_URL", "http://127.0.0.1:8080")


def main() -> None:
    client = OpenAI(base_url=f"{URL}/v1", api_key=os.environ.get("PYTGI_API_KEY", "-"))

    # "tgi" (or any name) selects the one model the server serves.
    chat = client.chat.completions.create(
        model="tgi",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is a list?"},
        ],
        max_tokens=20,
        temperature=0,
    )
    print("chat:", repr(chat.choices[0].message.content), chat.choices[0].finish_reason, chat.usage)

    print("chat stream: ", end="")
    stream = client.chat.completions.create(
        model="tgi",
        messages=[{"role": "user", "content": "What is a dictionary?"}],
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices:
            print(chunk.choices[0].delta.content or "", end="", flush=True)
        elif chunk.usage is not None:  # the last chunk, asked for with include_usage
            print(f"\n  usage: {chunk.usage}", end="")
    print()

    completion = client.completions.create(model="tgi", prompt="Python lists are", max_tokens=20, seed=42)
    print("completion:", repr(completion.choices[0].text), completion.choices[0].finish_reason)

    print("models:", [model.id for model in client.models.list()])


if __name__ == "__main__":
    main()
