"""The executor: runs the model over one scheduled step and samples.

`create_model_runner` loads a model folder onto a device and sizes the KV
cache; `ModelRunner.execute` implements `pytgi.step.Executor`. What leaves a
step is Python ints and floats, read back from the device in one copy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from pytgi.config import cuda_graph_sizes
from pytgi.executor.cuda_graphs import DecodeGraphs
from pytgi.executor.device import DTYPE_NAMES, available_memory_bytes, resolve_device, resolve_dtype
from pytgi.executor.forward_batch import LogitsSpan, build_forward_batch
from pytgi.executor.kv_tensors import (
    KVCache,
    activation_reserve_bytes,
    allocate_kv_cache,
    bytes_per_block,
    plan_num_blocks,
)
from pytgi.layers.attention_backends import DEFAULT_ATTENTION_BACKEND, get_attention_backend
from pytgi.models.interface import CausalLM
from pytgi.models.registry import architecture_of, resolve_model_class
from pytgi.sampling import ops
from pytgi.sampling.sampler import AllowedTokens, RequestSamplingState, Sampler, SamplerOutput
from pytgi.sampling.watermark import WatermarkConfig
from pytgi.step import (
    KVCacheSpec,
    NewRequestData,
    SampledToken,
    ScheduledChunk,
    SchedulerOutput,
    StepResult,
    TokenBitmask,
)
from pytgi.weights.safetensors import SafetensorsWeights

# On a CPU the KV cache shares RAM with everything else on the machine, and
# far fewer tokens are in flight than on a GPU: a quarter of free RAM would be
# gigabytes of idle zeros. `--max-batch-total-tokens` sets any size explicitly.
CPU_KV_CACHE_MAX_BYTES = 1 << 30


@dataclass(slots=True)
class RequestState:
    """What the runner keeps for a request between steps."""

    prompt_token_ids: tuple[int, ...]
    want_prompt_logprobs: bool
    sampling: RequestSamplingState
    # Logprob of the prompt token at `position`, computed from the last logits
    # of the previous prompt chunk: (position, logprob).
    pending_prompt_logprob: tuple[int, float] | None = None


class ModelRunner:
    """Implements `pytgi.step.Executor`. Owns the model, the KV tensors and the
    per-request sampling state; called from the engine thread only."""

    def __init__(
        self,
        model: CausalLM,
        kv_cache: KVCache,
        *,
        device: torch.device,
        dtype: torch.dtype,
        architecture: str,
        watermark: WatermarkConfig | None = None,
        decode_graphs: DecodeGraphs | None = None,
    ) -> None:
        self.model = model
        self.decode_graphs = decode_graphs
        self.kv_cache = kv_cache
        self.device = device
        self.dtype = dtype
        self._architecture = architecture
        self._sampler = Sampler(watermark)
        self._requests: dict[str, RequestState] = {}

    @property
    def kv_cache_spec(self) -> KVCacheSpec:
        return self.kv_cache.spec

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES[self.dtype]

    @property
    def device_name(self) -> str:
        return str(self.device)

    @property
    def architecture(self) -> str:
        return self._architecture

    @property
    def max_position_embeddings(self) -> int:
        """The model's context length (for `resolve_limits`)."""
        return self.model.shape.max_position_embeddings

    @property
    def vocab_size(self) -> int:
        return self.model.shape.vocab_size

    def execute(self, step: SchedulerOutput) -> StepResult:
        for request_id in step.finished_request_ids:
            self._requests.pop(request_id, None)
        for new in step.new_requests:
            self._requests[new.request_id] = self._new_state(new)
        if step.is_empty:
            return StepResult(sampled={}, prompt_logprobs={})
        states = [self._state_of(chunk.request_id) for chunk in step.chunks]
        all_logits = [
            s.want_prompt_logprobs and c.start_position < len(s.prompt_token_ids)
            for c, s in zip(step.chunks, states, strict=True)
        ]
        with torch.inference_mode():
            forward = self._forward(step.chunks, all_logits)
            if forward is None:  # only intermediate prefill chunks
                return StepResult(sampled={}, prompt_logprobs={})
            logits, sample_chunk_ids, spans = forward
            num_sampled = len(sample_chunk_ids)
            sample_request_ids = [step.chunks[i].request_id for i in sample_chunk_ids]
            sampled = None
            if num_sampled:
                sampled = self._sampler(
                    logits[:num_sampled],
                    [states[i].sampling for i in sample_chunk_ids],
                    # The token before the one being chosen: the chunk's last input.
                    [step.chunks[i].token_ids[-1] for i in sample_chunk_ids],
                    allowed_rows(step.token_bitmask, sample_request_ids),
                )
            prompt_lps = self._prompt_logprobs(logits[num_sampled:], spans, step.chunks, states)
            host = copy_to_host(sampled, prompt_lps)
        num_prompt_values = prompt_lps.shape[0] if prompt_lps is not None else 0
        return StepResult(
            sampled=unpack_sampled(host, sampled, sample_request_ids),
            prompt_logprobs=self._unpack_prompt_logprobs(
                host[len(host) - num_prompt_values :], spans, step.chunks, states
            ),
        )

    def _forward(
        self, chunks: Sequence[ScheduledChunk], all_logits: Sequence[bool]
    ) -> tuple[torch.Tensor, tuple[int, ...], tuple[LogitsSpan, ...]] | None:
        """The step's logits: sampled rows first, then prompt-logprob spans. None
        when no chunk needs logits. Pure decode steps replay a CUDA graph where one applies."""
        if self.decode_graphs is not None and self.decode_graphs.applies(chunks, all_logits):
            return self.decode_graphs.run(chunks), tuple(range(len(chunks))), ()
        batch = build_forward_batch(chunks, all_logits, self.kv_cache.spec.block_size, self.device)
        hidden = self.model.forward(batch.token_ids, batch.positions, batch.attention, self.kv_cache.layers)
        if batch.num_logits == 0:
            return None
        logits = self.model.compute_logits(hidden[batch.logits_indices])  # [num_logits, vocab] float32
        return logits, batch.sample_chunk_ids, batch.all_logits_spans

    def _new_state(self, new: NewRequestData) -> RequestState:
        sampling = RequestSamplingState(new.sampling, new.prompt_token_ids, self.vocab_size, self.device)
        return RequestState(tuple(new.prompt_token_ids), new.want_prompt_logprobs, sampling)

    def _state_of(self, request_id: str) -> RequestState:
        try:
            return self._requests[request_id]
        except KeyError:
            raise KeyError(
                f"chunk for unknown request {request_id!r}: it was never in `new_requests`"
            ) from None

    def _prompt_logprobs(
        self,
        logits: torch.Tensor,  # [num_prompt_rows, vocab], the rows of `spans`
        spans: Sequence[LogitsSpan],
        chunks: Sequence[ScheduledChunk],
        states: Sequence[RequestState],
    ) -> torch.Tensor | None:
        """Row j of a span predicts the token at the chunk's position j + 1:
        the chunk's own next token, or for its last row the next prompt token
        (kept as pending for the next chunk)."""
        if not spans:
            return None
        targets: list[int] = []
        for span in spans:
            chunk, prompt = chunks[span.chunk_id], states[span.chunk_id].prompt_token_ids
            next_position = chunk.start_position + len(chunk.token_ids)
            targets.extend(chunk.token_ids[1:])
            targets.append(prompt[next_position] if next_position < len(prompt) else 0)
        target_t = torch.tensor(targets, dtype=torch.int64).to(self.device)  # [num_prompt_rows]
        return ops.chosen_logprobs(logits, target_t)

    def _unpack_prompt_logprobs(
        self,
        values: Sequence[float],
        spans: Sequence[LogitsSpan],
        chunks: Sequence[ScheduledChunk],
        states: Sequence[RequestState],
    ) -> dict[str, tuple[float, ...]]:
        result: dict[str, tuple[float, ...]] = {}
        offset = 0
        for span in spans:
            chunk, state = chunks[span.chunk_id], states[span.chunk_id]
            span_values = values[offset : offset + span.length]
            offset += span.length
            pending = state.pending_prompt_logprob
            # The first prompt token has no logprob; a chunk after a cached prefix has
            # none for its first token either (its predecessor's logits were never computed).
            first = pending[1] if pending is not None and pending[0] == chunk.start_position else math.nan
            result[chunk.request_id] = (first, *span_values[:-1])
            next_position = chunk.start_position + len(chunk.token_ids)
            has_next = next_position < len(state.prompt_token_ids)
            state.pending_prompt_logprob = (next_position, span_values[-1]) if has_next else None
        return result


def allowed_rows(bitmask: TokenBitmask | None, sample_request_ids: Sequence[str]) -> AllowedTokens | None:
    """The step's grammar masks, addressed by sampler row instead of request id."""
    if bitmask is None:
        return None
    row_of = {request_id: row for row, request_id in enumerate(sample_request_ids)}
    return AllowedTokens(tuple(row_of[request_id] for request_id in bitmask.request_ids), bitmask.bits)


def copy_to_host(sampled: SamplerOutput | None, prompt_logprobs: torch.Tensor | None) -> list[float]:
    """Everything a step returns, in one device -> host copy. float64 holds
    token ids exactly. Layout: ids, logprobs, top ids, top logprobs, prompt logprobs."""
    parts: list[torch.Tensor] = []
    if sampled is not None:
        parts += [sampled.token_ids, sampled.logprobs]
        if sampled.top_ids is not None and sampled.top_logprobs is not None:
            parts += [sampled.top_ids.flatten(), sampled.top_logprobs.flatten()]
    if prompt_logprobs is not None:
        parts.append(prompt_logprobs)
    if not parts:
        return []
    return torch.cat([p.to(torch.float64) for p in parts]).cpu().tolist()


def unpack_sampled(
    host: Sequence[float], sampled: SamplerOutput | None, request_ids: Sequence[str]
) -> dict[str, SampledToken]:
    if sampled is None:
        return {}
    batch = len(request_ids)
    token_ids, logprobs = host[:batch], host[batch : 2 * batch]
    top_width = sampled.top_ids.shape[1] if sampled.top_ids is not None else 0
    top_ids = host[2 * batch : 2 * batch + batch * top_width]
    top_lps = host[2 * batch + batch * top_width : 2 * batch + 2 * batch * top_width]
    result = {}
    for row, request_id in enumerate(request_ids):
        first = row * top_width
        top = tuple((int(top_ids[first + j]), top_lps[first + j]) for j in range(sampled.top_n[row]))
        result[request_id] = SampledToken(token_id=int(token_ids[row]), logprob=logprobs[row], top_tokens=top)
    return result


def create_model_runner(
    model_dir: Path,
    *,
    dtype: str | None,
    device: str | None,
    block_size: int,
    max_batch_total_tokens: int | None,
    kv_cache_memory_fraction: float,
    max_num_batched_tokens: int,
    attention_backend: str = DEFAULT_ATTENTION_BACKEND,
    watermark_gamma: float = 0.5,
    watermark_delta: float = 2.0,
    show_progress: bool = False,
    cuda_graphs: str | None = None,
) -> ModelRunner:
    """Load `model_dir` (HF layout: config.json + safetensors) and allocate the
    KV cache. Raises UnsupportedArchitectureError / ConfigError on bad input.
    `show_progress`: a progress bar on stderr while the weights load.
    `cuda_graphs`: TGI's batch-size list for decode graphs (None: the default
    list, "0": none); only used on a CUDA device."""
    model_dir = Path(model_dir)
    hf_config = json.loads((model_dir / "config.json").read_text())
    architecture = architecture_of(hf_config)
    model_cls = resolve_model_class(architecture)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device, hf_config)

    with torch.device(torch_device):
        model = model_cls.from_hf_config(
            hf_config, dtype=torch_dtype, attention_backend=get_attention_backend(attention_backend)
        )
    with torch.inference_mode():
        model.load_weights(SafetensorsWeights(model_dir, show_progress=show_progress))

    block_bytes = bytes_per_block(model.kv_layout, block_size, torch_dtype)
    num_blocks = plan_num_blocks(
        block_bytes=block_bytes,
        block_size=block_size,
        max_batch_total_tokens=max_batch_total_tokens,
        kv_cache_memory_fraction=kv_cache_memory_fraction,
        available_bytes=available_memory_bytes(torch_device) if max_batch_total_tokens is None else 0,
        reserve_bytes=activation_reserve_bytes(model.shape, max_num_batched_tokens, torch_dtype),
        max_bytes=CPU_KV_CACHE_MAX_BYTES if torch_device.type == "cpu" else None,
    )
    graph_sizes = cuda_graph_sizes(cuda_graphs) if torch_device.type == "cuda" else ()
    kv_cache = allocate_kv_cache(
        model.kv_layout, num_blocks, block_size, torch_dtype, torch_device, scratch_blocks=1 if graph_sizes else 0
    )
    decode_graphs = (
        DecodeGraphs(model, kv_cache, graph_sizes, scratch_block=num_blocks, device=torch_device)
        if graph_sizes
        else None
    )
    return ModelRunner(
        model,
        kv_cache,
        device=torch_device,
        dtype=torch_dtype,
        architecture=architecture,
        watermark=WatermarkConfig(watermark_gamma, watermark_delta),
        decode_graphs=decode_graphs,
    )
