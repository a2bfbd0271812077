"""pytgi through huggingface_hub's `InferenceClient`, as in TGI's docs.

    make run                                   # in another terminal
    .venv/bin/python examples/inference_client.py

PYTGI_URL points it at another server (default http://127.0.0.1:8080).
"""

from __future__ import annotations

import os

from huggingface_hub import InferenceClient

URL = os.environ.get("PYTGI_URL", "http://127.0.0.1:8080")


def main() -> None:
    client = InferenceClient(base_url=URL)

    # POST / (TGI's compat route): the generated text.
    text = client.text_generation("Python lists are", max_new_tokens=20)
    print("text_generation:", repr(text))

    # The same route with "stream": true: one token at a time over SSE.
    print("stream: ", end="")
    for token in client.text_generation("A dictionary maps", max_new_tokens=20, stream=True):
        print(token, end="", flush=True)
    print()

    # details=True: finish reason, seed and every token with its logprob.
    output = client.text_generation("The with statement", max_new_tokens=10, details=True)
    details = output.details
    assert details is not None
    print("details:", details.finish_reason, details.generated_tokens, [t.text for t in details.tokens])

    # The Messages API (/v1/chat/completions); temperature 0 is greedy.
    chat = client.chat_completion(
        messages=[{"role": "user", "content": "What is a tuple?"}], max_tokens=20, temperature=0
    )
    print("chat_completion:", repr(chat.choices[0].message.content), chat.usage)

    print("chat stream: ", end="")
    for chunk in client.chat_completion(
        messages=[{"role": "user", "content": "What is a set?"}], max_tokens=20, stream=True
    ):
        print(chunk.choices[0].delta.content or "", end="", flush=True)
    print()


if __name__ == "__main__":
    main()
