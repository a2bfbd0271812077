"""pytgi as LangChain's chat model, through its OpenAI-compatible routes.

    .venv/bin/pip install -e ".[dev,examples]"     # langchain-openai is not a pytgi dependency
    make run                                   # in another terminal
    .venv/bin/python examples/langchain_chat.py

PYTGI_URL points it at another server (default http://127.0.0.1:8080).
"""

from __future__ import annotations

import os

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

URL = os.environ.get("PYTGI_URL", "http://127.0.0.1:8080")


def main() -> None:
    # The model name is echoed back; "tgi" is what TGI's docs use.
    llm = ChatOpenAI(base_url=f"{URL}/v1", api_key="-", model="tgi", max_tokens=20, temperature=0)
    messages = [SystemMessage("You are a helpful assistant."), HumanMessage("What is a list?")]
    answer = llm.invoke(messages)
    print("invoke:", repr(answer.content), answer.response_metadata.get("finish_reason"))

    print("stream: ", end="")
    for chunk in llm.stream([HumanMessage("What is a dictionary?")]):
        print(chunk.content, end="", flush=True)
    print()


if __name__ == "__main__":
    main()
