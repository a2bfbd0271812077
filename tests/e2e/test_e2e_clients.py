"""TGI's own `text-generation` client and huggingface_hub's async client, unmodified,
against the live demo server."""

from __future__ import annotations

import asyncio

from huggingface_hub import AsyncInferenceClient
from text_generation import AsyncClient, Client
from text_generation.errors import ValidationError


def test_text_generation_client(demo_server):
    client = Client(demo_server.url)
    response = client.generate("The list type", max_new_tokens=10, decoder_input_details=True, top_n_tokens=2)
    assert response.details.finish_reason.value in ("length", "eos_token")
    assert len(response.details.tokens) == response.details.generated_tokens
    assert response.details.prefill[0].logprob is None
    assert all(len(top) == 2 for top in response.details.top_tokens)
    streamed = "".join(r.token.text for r in client.generate_stream("The list type", max_new_tokens=10)
                       if not r.token.special)
    assert streamed == client.generate("The list type", max_new_tokens=10).generated_text
    try:
        client.generate("x", top_p=1.0)
    except ValidationError as error:
        assert "`top_p` must be > 0.0 and < 1.0" in str(error)
    else:
        raise AssertionError("top_p=1.0 was accepted")


def test_text_generation_async_client_best_of(demo_server):
    async def scenario():
        client = AsyncClient(demo_server.url)
        response = await client.generate("A dictionary", max_new_tokens=8, do_sample=True, best_of=2)
        assert len(response.details.best_of_sequences) == 1
        pieces = [r.token.text async for r in client.generate_stream("A dictionary", max_new_tokens=8)]
        assert pieces

    asyncio.run(scenario())


def test_hub_async_inference_client(demo_server):
    async def scenario():
        client = AsyncInferenceClient(demo_server.url)
        text = await client.text_generation("A dictionary", max_new_tokens=8)
        pieces = [p async for p in await client.text_generation("A dictionary", max_new_tokens=8, stream=True)]
        assert text == "A dictionary" + "".join(pieces).removesuffix("<|endoftext|>")

    asyncio.run(scenario())
