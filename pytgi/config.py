"""Start-up configuration: frozen dataclasses whose field names are TGI's
launcher flags (`max_batch_prefill_tokens` -> `--max-batch-prefill-tokens`,
env `MAX_BATCH_PREFILL_TOKENS`). The CLI is generated from these fields, so
this file is the one source of truth for flags, defaults and help texts.

Facts found at start-up (KV capacity, the model's context length) are not
written back here: see `ServingLimits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from pytgi.errors import ConfigError

DType = Literal["float32", "bfloat16", "float16"]


def flag(help_text: str, **extra: object) -> dict[str, object]:
    """Field metadata read by the CLI generator."""
    return {"help": help_text, **extra}


@dataclass(frozen=True, slots=True)
class ModelConfig:
    model_id: str | None = field(
        default=None,
        metadata=flag("Local folder (Hugging Face layout) or Hub id. Default: the bundled demo model."),
    )
    revision: str | None = field(default=None, metadata=flag("Hub revision (branch, tag or commit)."))
    dtype: DType | None = field(
        default=None,
        metadata=flag(
            "Weights and KV dtype. Default: bfloat16 on a CPU with native bf16, else float32; "
            "the model's dtype on GPU.",
            choices=("float32", "bfloat16", "float16"),
        ),
    )
    huggingface_hub_cache: str | None = field(
        default=None, metadata=flag("Hub cache folder (else HF_HUB_CACHE / HF_HOME rules).")
    )
    device: str | None = field(default=None, metadata=flag("cpu or cuda. Default: cuda when available."))
    trust_remote_code: bool = field(
        default=False, metadata=flag("Refused: pytgi never runs code shipped with a model.")
    )
    quantize: str | None = field(default=None, metadata=flag("Not supported yet: any value is refused."))
    tokenizer_config_path: str | None = field(
        default=None, metadata=flag("A tokenizer_config.json to use instead of the model's.")
    )
    lora_adapters: str | None = field(default=None, metadata=flag("Not supported yet: any value is refused."))
    cuda_graphs: str | None = field(
        default=None,
        metadata=flag(
            "Decode batch sizes captured as CUDA graphs (comma list; 0 disables). "
            "Default: 1,2,4,8,16,32. Only used on a CUDA device."
        ),
    )


@dataclass(frozen=True, slots=True)
class CacheConfig:
    block_size: int = field(default=16, metadata=flag("Tokens per KV-cache block."))
    max_batch_total_tokens: int | None = field(
        default=None,
        metadata=flag(
            "KV-cache capacity in tokens. Default: a share of free memory "
            "(on CPU at most 1 GiB of KV)."
        ),
    )
    kv_cache_memory_fraction: float = field(
        default=0.25,
        metadata=flag("Share of available memory given to the KV cache when its size is not set."),
    )
    prefix_caching: bool = field(default=True, metadata=flag("Reuse the KV of repeated prompt prefixes."))


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    max_batch_prefill_tokens: int | None = field(
        default=None,
        metadata=flag(
            "Token budget of one forward pass (prefill chunks + decodes). Default: 512 on a CPU, "
            "whose matrix products reach their full rate at a few hundred rows (a bigger step only "
            "makes the first requests of a burst wait for the rest), which a step with nothing "
            "decoding may pass by an eighth to finish a prompt; 2048 on a GPU. A set value is exact."
        ),
    )
    max_batch_size: int | None = field(default=None, metadata=flag("Most requests in one batch."))
    max_prefill_tokens_while_decoding: int | None = field(
        default=None,
        metadata=flag(
            "Prompt tokens one step may prefill while other requests decode (chunks the rest): "
            "bounds the inter-token latency new arrivals cause. Default: on a CPU, 2 per decoding "
            "request and at least 64, and an eighth more to finish a prompt rather than leave a few "
            "of its tokens for another step; on a GPU, the whole budget. A set value is exact."
        ),
    )
    speculate: int | None = field(default=None, metadata=flag("Not supported yet: any value is refused."))
    waiting_served_ratio: float = field(
        default=0.3,
        metadata=flag("Accepted for TGI compatibility; without effect, as in TGI with chunked prefill."),
    )
    max_waiting_tokens: int = field(
        default=20,
        metadata=flag("Accepted for TGI compatibility; without effect, as in TGI with chunked prefill."),
    )


# The step budget when `--max-batch-prefill-tokens` is not given (docs/profile.md,
# seventh pass: bf16 GEMMs of SmolLM2-135M reach 97% of their 2,048-row rate at 512 rows).
CPU_STEP_BUDGET = 512
GPU_STEP_BUDGET = 2048
# How far a default limit on a step's prompt tokens (the CPU step budget, the
# while-decoding cap) may stretch to finish a prompt rather than leave its last
# few tokens for another step (docs/profile.md, eighth pass).
PROMPT_TAIL_SHARE = 0.125


def resolve_step_budget(config: SchedulerConfig, device_type: str) -> int:
    """The tokens of one step on `device_type`: the configured budget, else its default."""
    if config.max_batch_prefill_tokens is not None:
        return config.max_batch_prefill_tokens
    return CPU_STEP_BUDGET if device_type == "cpu" else GPU_STEP_BUDGET


def resolve_budget_tail(config: SchedulerConfig, device_type: str) -> int:
    """Tokens a step with no decoding request may go past its budget to finish a prompt
    (`PROMPT_TAIL_SHARE` of the CPU default: a prompt's first token would otherwise
    wait a whole step for its last few); none for a budget that was set, or on a
    GPU, whose activations are sized by the budget."""
    if config.max_batch_prefill_tokens is not None or device_type != "cpu":
        return 0
    return int(CPU_STEP_BUDGET * PROMPT_TAIL_SHARE)


@dataclass(frozen=True, slots=True)
class SamplingConfig:
    watermark_gamma: float = field(
        default=0.5, metadata=flag("Share of the vocabulary in each watermark green list.")
    )
    watermark_delta: float = field(default=2.0, metadata=flag("Logit bias of watermark green-list tokens."))


@dataclass(frozen=True, slots=True)
class ParallelConfig:
    num_shard: int | None = field(
        default=None, metadata=flag("Devices to shard the model over. Only 1 is supported yet.")
    )


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_concurrent_requests: int = field(
        default=128, metadata=flag("Requests in flight; beyond it a request gets 429 at once.")
    )
    max_best_of: int = field(default=2, metadata=flag("Largest allowed best_of."))
    max_stop_sequences: int = field(default=4, metadata=flag("Most stop sequences per request."))
    max_top_n_tokens: int = field(default=5, metadata=flag("Largest allowed top_n_tokens."))
    max_input_tokens: int | None = field(
        default=None, metadata=flag("Longest prompt in tokens. Default: max_total_tokens - 1.")
    )
    max_total_tokens: int | None = field(
        default=None,
        metadata=flag("Longest prompt + generation. Default: min(KV capacity, model context)."),
    )
    max_client_batch_size: int = field(default=4, metadata=flag("Most prompts per /v1/completions call."))


@dataclass(frozen=True, slots=True)
class ServerConfig:
    hostname: str = field(default="127.0.0.1", metadata=flag("Address to listen on."))
    port: int = field(default=8080, metadata=flag("Port to listen on.", short="-p"))
    api_key: str | None = field(
        default=None,
        metadata=flag("Require `Authorization: Bearer <key>` on every route but health, info, metrics, docs."),
    )
    cors_allow_origin: tuple[str, ...] = field(
        default=(),
        metadata=flag("Origin allowed to call from a browser (repeat the flag; env: comma-separated). "
                      "Default: none (TGI allows any)."),
    )
    payload_limit: int = field(default=2_000_000, metadata=flag("Largest request body in bytes (413 beyond)."))
    validation_workers: int = field(
        default=2, metadata=flag("Threads that tokenize and validate requests off the event loop.")
    )
    enable_prefill_logprobs: bool = field(
        default=False,
        metadata=flag("Accepted for TGI compatibility: pytgi computes prompt logprobs whenever asked."),
    )
    json_output: bool = field(default=False, metadata=flag("Log one JSON object per line."))
    env: bool = field(default=False, metadata=flag("Print the runtime environment at start.", short="-e"))
    otlp_endpoint: str | None = field(
        default=None,
        metadata=flag("OpenTelemetry collector (OTLP over gRPC, e.g. http://localhost:4317) to send traces to."),
    )
    otlp_service_name: str = field(
        default="text-generation-inference.router",
        metadata=flag("Service name of the traces sent to --otlp-endpoint."),
    )
    disable_grammar_support: bool = field(
        default=False,
        metadata=flag("Refuse `grammar`, `response_format` and tools (422 `grammar is not supported`)."),
    )
    graceful_termination_timeout: int = field(
        default=90,
        metadata=flag("Seconds running requests get to finish after SIGTERM.", short="-g"),
    )


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Everything `pytgi serve` is configured with."""

    model: ModelConfig = field(default_factory=ModelConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    server: ServerConfig = field(default_factory=ServerConfig)

    def __post_init__(self) -> None:
        refuse_unsupported(self)
        check_positive(self.cache, "block_size", "max_batch_total_tokens")
        check_positive(self.scheduler, "max_batch_prefill_tokens", "max_batch_size")
        check_positive(self.scheduler, "max_prefill_tokens_while_decoding")
        check_positive(self.server, "payload_limit", "graceful_termination_timeout", "validation_workers")
        check_positive(
            self.limits,
            "max_concurrent_requests",
            "max_best_of",
            "max_input_tokens",
            "max_total_tokens",
            "max_client_batch_size",
        )
        lim = self.limits
        if (
            lim.max_input_tokens is not None
            and lim.max_total_tokens is not None
            and lim.max_input_tokens >= lim.max_total_tokens
        ):
            raise ConfigError(
                f"`max_input_tokens`({lim.max_input_tokens}) must be < "
                f"`max_total_tokens`({lim.max_total_tokens})"
            )
        if not 0.0 < self.sampling.watermark_gamma <= 1.0:
            raise ConfigError(f"`watermark_gamma` must be in (0, 1]. Given: {self.sampling.watermark_gamma}")
        if not 0.0 < self.cache.kv_cache_memory_fraction <= 1.0:
            raise ConfigError(
                f"`kv_cache_memory_fraction` must be in (0, 1]. Given: {self.cache.kv_cache_memory_fraction}"
            )
        cuda_graph_sizes(self.model.cuda_graphs)


SECTIONS: tuple[tuple[str, type], ...] = tuple(
    (f.name, f.type if isinstance(f.type, type) else globals()[str(f.type)])  # type: ignore[misc]
    for f in fields(EngineConfig)
)


def refuse_unsupported(config: EngineConfig) -> None:
    """TGI launcher flags for features pytgi does not have yet fail at start,
    with the reason, rather than being accepted and silently ignored."""
    model = config.model
    if model.trust_remote_code:
        raise ConfigError("`--trust-remote-code` is refused: pytgi never runs code shipped with a model")
    not_yet = {
        "--quantize": model.quantize,
        "--lora-adapters": model.lora_adapters,
        "--speculate": config.scheduler.speculate,
    }
    for name, value in not_yet.items():
        if value is not None:
            raise ConfigError(f"`{name}` is not supported by pytgi yet. Given: {value}")
    num_shard = config.parallel.num_shard
    if num_shard is not None and num_shard != 1:
        raise ConfigError(f"`--num-shard` > 1 is not supported by pytgi yet (one device). Given: {num_shard}")


DEFAULT_CUDA_GRAPH_SIZES = (1, 2, 4, 8, 16, 32)


def cuda_graph_sizes(value: str | None) -> tuple[int, ...]:
    """TGI's `--cuda-graphs`: a comma list of decode batch sizes, `0` for none."""
    if value is None:
        return DEFAULT_CUDA_GRAPH_SIZES
    try:
        sizes = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"`cuda_graphs` must be a comma list of batch sizes. Given: {value!r}") from None
    if sizes == [0]:
        return ()
    if not sizes or sizes[0] < 1:
        raise ConfigError(f"`cuda_graphs` sizes must be >= 1, or the single value 0. Given: {value!r}")
    return tuple(sizes)


def check_positive(section: object, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if value is not None and value <= 0:
            raise ConfigError(f"`{name}` must be > 0. Given: {value}")


@dataclass(frozen=True, slots=True)
class ServingLimits:
    """Limits resolved at start-up from the config and what the model and KV
    cache allow. Passed to validation and the engine; never mutated."""

    max_input_tokens: int
    max_total_tokens: int
    max_batch_total_tokens: int
    max_concurrent_requests: int
    max_best_of: int
    max_stop_sequences: int
    max_top_n_tokens: int
    max_client_batch_size: int
    # --disable-grammar-support: validation refuses `grammar` (and chat's response_format/tools).
    disable_grammar_support: bool = False


def resolve_limits(config: EngineConfig, kv_capacity_tokens: int, model_max_tokens: int) -> ServingLimits:
    """TGI's rule: max_total_tokens defaults to min(KV capacity, model context);
    max_input_tokens to max_total_tokens - 1. Explicit values must fit."""
    lim = config.limits
    total = lim.max_total_tokens or min(kv_capacity_tokens, model_max_tokens)
    if total > kv_capacity_tokens:
        raise ConfigError(
            f"`max_total_tokens` must be <= `max_batch_total_tokens`. Given: {total} and {kv_capacity_tokens}"
        )
    max_input = lim.max_input_tokens or total - 1
    if max_input >= total:
        raise ConfigError(f"`max_input_tokens`({max_input}) must be < `max_total_tokens`({total})")
    return ServingLimits(
        max_input_tokens=max_input,
        max_total_tokens=total,
        max_batch_total_tokens=kv_capacity_tokens,
        max_concurrent_requests=lim.max_concurrent_requests,
        max_best_of=lim.max_best_of,
        max_stop_sequences=lim.max_stop_sequences,
        max_top_n_tokens=lim.max_top_n_tokens,
        max_client_batch_size=lim.max_client_batch_size,
        disable_grammar_support=config.server.disable_grammar_support,
    )
