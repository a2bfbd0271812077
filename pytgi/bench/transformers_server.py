"""A transformers baseline for `pytgi bench`: a small OpenAI-completions server
(`POST /v1/completions`, streamed as SSE `text_completion` chunks, `usage` last,
then `data: [DONE]`) over a local model folder, in one of three modes:

- `generate`: one request at a time, `model.generate` streaming token by token;
- `static`: static batches: the requests that arrive within `--batch-window-ms` (up to
  `--batch-size`) are left-padded and run by one `generate` call;
- `generate_batch`: transformers' own continuous batching (`ContinuousBatchingManager`).

    python -m pytgi.bench.transformers_server --model-dir DIR --mode static --port 8001

`ignore_eos` (the vLLM extension `pytgi bench` sends) makes a request run to its
`max_tokens`, so token counts are exact. transformers is not a pytgi dependency: it is
imported only when the server starts (`pip install 'pytgi[bench]'`).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from pytgi.engine.threads import run_on_passing_thread

MODES = ("generate", "static", "generate_batch")
DTYPES = ("float32", "bfloat16")
MISSING = "the transformers baseline needs transformers and torch: pip install 'pytgi[bench]'"


@dataclass
class Served:
    """What the routes need: the model's name, its tokenizer, the backend and EOS ids."""

    name: str
    tokenizer: Any
    backend: Any
    eos_ids: frozenset[int]


def has_streaming_batching(model: Any) -> bool:
    """transformers 4.5x's continuous-batching manager streams per request; 5.x changed
    that API (no `streaming` flag), and this server is not adapted to it yet."""
    init = getattr(model, "init_continuous_batching", None)
    return init is not None and "streaming" in inspect.signature(init).parameters


def paged_attention_name() -> str:
    """transformers 4.x names its paged SDPA "sdpa_paged"; 5.x pages plain "sdpa" itself."""
    import transformers

    return "sdpa_paged" if int(transformers.__version__.split(".")[0]) < 5 else "sdpa"


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:
        raise SystemExit(f"{MISSING} ({error})") from None
    torch.set_num_threads(args.threads)
    extra = {"attn_implementation": paged_attention_name()} if args.mode == "generate_batch" else {}
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=dtype, **extra).eval()
    if model.dtype != dtype:  # transformers < 4.56 took `torch_dtype`: never serve an unasked dtype
        raise SystemExit(f"transformers loaded {model.dtype}, not {args.dtype}; upgrade transformers")
    if args.mode == "generate_batch" and not has_streaming_batching(model):
        import transformers

        raise SystemExit(f"--mode generate_batch needs transformers 4.x's streaming continuous batching "
                         f"(`init_continuous_batching(streaming=True)`), which transformers "
                         f"{transformers.__version__} does not have")
    return model, AutoTokenizer.from_pretrained(args.model_dir)


def eos_ids_of(model: Any, tokenizer: Any) -> frozenset[int]:
    found: set[int] = set()
    for value in (model.generation_config.eos_token_id, model.config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, list):
            found.update(v for v in value if isinstance(v, int))
    return frozenset(found)


def make_backend(args: argparse.Namespace, model: Any, pad_id: int) -> Any:
    from pytgi.bench import transformers_backends as backends

    if args.mode == "generate_batch":
        return backends.ContinuousBackend(model, pad_id, args.temperature, args.top_p,
                                          args.num_blocks, args.max_batch_tokens)
    batch_size = 1 if args.mode == "generate" else args.batch_size
    return backends.BatchingBackend(model, pad_id, batch_size, args.batch_window_ms / 1000.0)


def prompt_ids(tokenizer: Any, prompt: Any) -> list[int]:
    """OpenAI's `prompt`: a string, or token ids (one prompt only)."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return list(tokenizer(prompt)["input_ids"])
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return list(prompt)
    raise ValueError("`prompt` must be one string or one list of token ids")


def make_job(served: Served, body: dict[str, Any], loop: asyncio.AbstractEventLoop) -> Any:
    from pytgi.bench.transformers_backends import Job

    temperature = body.get("temperature")
    max_tokens = int(body.get("max_tokens") or 16)
    if max_tokens < 1:
        raise ValueError("`max_tokens` must be positive")
    return Job(prompt_ids=prompt_ids(served.tokenizer, body.get("prompt")), max_new_tokens=max_tokens,
               ignore_eos=bool(body.get("ignore_eos", False)), eos_ids=served.eos_ids,
               # As OpenAI and pytgi: absent means sampling at 1.0, 0 means greedy.
               temperature=1.0 if temperature is None else float(temperature),
               top_p=float(body.get("top_p") or 1.0), seed=body.get("seed"), loop=loop)


def chunk(base: dict[str, Any], text: str, finish_reason: str | None) -> dict[str, Any]:
    return base | {"choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}]}


async def completion_events(served: Served, job: Any) -> AsyncIterator[dict[str, Any]]:
    """The request's chunks: one per token (text decoded incrementally, so a token that
    completes a multi-byte character or a word piece is shown right), then the finish
    reason, then `usage`."""
    base = {"id": f"cmpl-{job.request_id}", "object": "text_completion", "created": int(time.time()),
            "model": served.name}
    ids: list[int] = []
    shown = ""
    while (item := await job.queue.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        ids.append(item)
        text = served.tokenizer.decode(ids, skip_special_tokens=False)
        piece = text[len(shown):] if text.startswith(shown) else text
        shown = text
        yield chunk(base, piece, None)
    yield chunk(base, "", job.finish_reason)
    yield base | {"choices": [], "usage": {"prompt_tokens": len(job.prompt_ids),
                                           "completion_tokens": job.num_generated,
                                           "total_tokens": len(job.prompt_ids) + job.num_generated}}


def build_app(served: Served) -> Any:
    app = FastAPI(title="pytgi bench transformers baseline")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": served.name, "object": "model", "owned_by": "transformers"}]}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        try:
            body = await request.json()
            job = make_job(served, body, asyncio.get_running_loop())
        except (ValueError, TypeError) as error:
            return JSONResponse({"error": {"message": str(error), "type": "invalid_request_error"}}, 400)
        served.backend.submit(job)
        if body.get("stream"):
            return StreamingResponse(sse(served, job), media_type="text/event-stream")
        return JSONResponse(await collect(served, job))

    return app


async def sse(served: Served, job: Any) -> AsyncIterator[str]:
    try:
        async for event in completion_events(served, job):
            yield f"data: {json.dumps(event)}\n\n"
    except Exception as error:  # noqa: BLE001 - the stream has begun: report in-band
        yield f"data: {json.dumps({'error': {'message': str(error)}})}\n\n"
    finally:
        job.finish()  # a client gone early frees its batch row
    yield "data: [DONE]\n\n"


async def collect(served: Served, job: Any) -> dict[str, Any]:
    text, last = "", {}
    async for event in completion_events(served, job):
        text += "".join(c["text"] for c in event["choices"])
        last = event | {"choices": [{"index": 0, "text": text, "logprobs": None,
                                     "finish_reason": job.finish_reason}]}
    return last


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pytgi.bench.transformers_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="local model folder (HF layout)")
    parser.add_argument("--mode", choices=MODES, default="generate")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or 2),
                        help="torch threads (default: OMP_NUM_THREADS, else 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="static: largest batch (default 32)")
    parser.add_argument("--batch-window-ms", type=float, default=20.0,
                        help="static: how long a batch waits for more requests (default 20)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="generate_batch: the server's sampling (0: greedy; default 1.0)")
    parser.add_argument("--top-p", type=float, default=1.0, help="generate_batch: the server's top_p")
    parser.add_argument("--num-blocks", type=int, default=512, help="generate_batch: KV blocks of 32 tokens")
    parser.add_argument("--max-batch-tokens", type=int, default=512,
                        help="generate_batch: tokens per forward pass")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # As `pytgi serve` does: no OpenMP pool left on the main thread next to the
    # generating thread's, which would make libgomp's workers sleep between ops
    # (pytgi.engine.threads) and understate this baseline.
    model, tokenizer = run_on_passing_thread(lambda: load(args))
    pad_id = next(iter(sorted(eos_ids_of(model, tokenizer))), 0) if tokenizer.pad_token_id is None \
        else int(tokenizer.pad_token_id)
    served = Served(name=args.model_dir.name, tokenizer=tokenizer, backend=make_backend(args, model, pad_id),
                    eos_ids=eos_ids_of(model, tokenizer))
    app = build_app(served)
    app.router.on_startup.append(served.backend.start)
    app.router.on_shutdown.append(served.backend.stop)
    import uvicorn

    print(f"transformers baseline: {args.model_dir} mode {args.mode} dtype {args.dtype} "
          f"threads {args.threads}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
