"""The transformers baseline server (pytgi/bench/transformers_server.py): every mode
streams exact token counts and, greedy, the tokens transformers' own non-streamed
`generate` gives; and `pytgi bench` starts it as a baseline and prints ratios."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest

from pytgi.bench.random_model import TINY, ensure_model, random_prompt_ids
from pytgi.bench.server_process import ServerProcess, new_client

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

def streaming_batching_available() -> bool:
    import inspect

    from transformers import GenerationMixin

    init = getattr(GenerationMixin, "init_continuous_batching", None)
    return init is not None and "streaming" in inspect.signature(init).parameters


MODES = (
    "generate",
    "static",
    pytest.param("generate_batch", marks=pytest.mark.skipif(
        not streaming_batching_available(),
        reason="this transformers has no streaming continuous batching (4.x API); the mode refuses to start")),
)
LENGTHS = (5, 3, 8)  # max_tokens per concurrent request


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_model(TINY, tmp_path_factory.mktemp("models"))


def reference(model_dir: Path, prompt: list[int], num_tokens: int) -> list[int]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=num_tokens,
                             min_new_tokens=num_tokens, do_sample=False, pad_token_id=0)
    return out[0, len(prompt):].tolist()


async def stream(client: httpx.AsyncClient, url: str, prompt: list[int], max_tokens: int) -> tuple[str, dict]:
    body = {"prompt": prompt, "max_tokens": max_tokens, "stream": True, "temperature": 0, "ignore_eos": True}
    text, usage, done = "", {}, False
    async with client.stream("POST", f"{url}/v1/completions", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data:"):
                event = json.loads(line[5:])
                assert event.get("object") == "text_completion", event
                text += "".join(c["text"] for c in event["choices"])
                usage = event.get("usage") or usage
    assert done
    return text, usage


async def stream_all(url: str, prompts: list[list[int]]) -> list[tuple[str, dict]]:
    async with new_client(8) as client:
        return await asyncio.gather(*(stream(client, url, p, n) for p, n in zip(prompts, LENGTHS, strict=True)))


@pytest.mark.parametrize("mode", MODES)
def test_modes_stream_exact_greedy_tokens(mode: str, model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    prompts = [random_prompt_ids(6 + i, TINY.vocab_size, seed=i) for i in range(len(LENGTHS))]
    command = [sys.executable, "-m", "pytgi.bench.transformers_server", "--model-dir", str(model_dir), "--mode", mode,
               "--port", "{port}", "--temperature", "0", "--num-blocks", "64", "--max-batch-tokens", "128"]
    with ServerProcess([], tmp_path / "server.log", 2, startup_timeout_s=120, command=command) as server:
        results = asyncio.run(stream_all(server.base_url, prompts))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for prompt, max_tokens, (text, usage) in zip(prompts, LENGTHS, results, strict=True):
        assert usage == {"prompt_tokens": len(prompt), "completion_tokens": max_tokens,
                         "total_tokens": len(prompt) + max_tokens}
        assert text == tokenizer.decode(reference(model_dir, prompt, max_tokens))


def test_pytgi_bench_compares_against_a_started_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytgi.bench import cli

    output = tmp_path / "bench.json"
    code = cli.main(["--api", "openai", "--compare-cmd", "transformers-static", "--scenario", "decode",
                     "--concurrency", "2", "--input-len", "8", "--output-len", "4", "--pairs", "3",
                     "--idle-window-s", "0.1", "--max-idle-wait-s", "0.2", "--warmup", "1", "--no-plot",
                     "--no-progress", "--output", str(output)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "Ratios A / baseline" in printed
    results = json.loads(output.read_text())
    assert results["endpoints"][1]["command"].count("transformers_server --mode static")
    assert {c["baseline"] for c in results["comparisons"]} == {"B"}
