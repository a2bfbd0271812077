"""The composition root: turns an `EngineConfig` into a running engine.

This is the one module of the engine that names the executor's concrete
class; everything else sees it through `step.Executor`.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytgi import envs
from pytgi.config import EngineConfig, ServingLimits, resolve_budget_tail, resolve_limits, resolve_step_budget
from pytgi.engine.client import ModelInfo
from pytgi.engine.engine import Engine
from pytgi.engine.input_processor import InputProcessor
from pytgi.engine.output_processor import OutputProcessor
from pytgi.grammar.cache import GrammarCache
from pytgi.grammar.llguidance_backend import LLGuidanceBackend
from pytgi.kv_cache.manager import KVCacheManager
from pytgi.scheduler.scheduler import ProportionalCap, Scheduler
from pytgi.tokenizer.tokenizer import Tokenizer, read_json

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BuiltEngine:
    engine: Engine
    input_processor: InputProcessor
    tokenizer: Tokenizer
    model_info: ModelInfo
    limits: ServingLimits


def resolve_model(config: EngineConfig) -> tuple[str, Path]:
    """(model id as shown to users, local folder)."""
    from pytgi.weights.hub import resolve_model_dir

    model = config.model
    if model.model_id is None:
        from pytgi.demo import DEMO_MODEL_DIR

        return "pytgi/demo", DEMO_MODEL_DIR
    # TGI's token names (HF_TOKEN, HF_API_TOKEN, HUGGING_FACE_HUB_TOKEN), not only huggingface_hub's.
    token = envs.hf_token()
    return model.model_id, resolve_model_dir(model.model_id, model.revision, model.huggingface_hub_cache, token)


def eos_token_ids(model_dir: Path, tokenizer: Tokenizer) -> frozenset[int]:
    """EOS ids from generation_config.json, config.json and the tokenizer, merged."""
    ids: set[int] = set()
    for source in (read_json(model_dir / "generation_config.json"), read_json(model_dir / "config.json")):
        ids.update(as_int_list(source.get("eos_token_id")))
    if tokenizer.eos_token is not None:
        eos = tokenizer.token_to_id(tokenizer.eos_token)
        if eos is not None:
            ids.add(eos)
    return frozenset(ids)


def as_int_list(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int)]
    return []


def model_context_length(model_dir: Path, tokenizer: Tokenizer) -> int:
    config = read_json(model_dir / "config.json")
    lengths = [
        value
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length")
        if isinstance(value := config.get(key), int) and value > 0
    ]
    if tokenizer.model_max_length is not None:
        lengths.append(tokenizer.model_max_length)
    return min(lengths) if lengths else 4096


def build_grammar_cache(
    model_dir: Path, tokenizer: Tokenizer, model_vocab_size: int, eos_ids: frozenset[int]
) -> GrammarCache | None:
    """Structured output for this model, or None when it has no EOS token
    (a grammar could then never end its output)."""
    if not eos_ids:
        logger.warning("the model has no EOS token: `grammar` requests will be refused")
        return None
    # The mask spans the logits; a model may pad its vocabulary past the tokenizer's.
    vocab_size = max(model_vocab_size, tokenizer.vocab_size)
    tokenizer_json = (model_dir / "tokenizer.json").read_text(encoding="utf-8")
    return GrammarCache(LLGuidanceBackend(tokenizer_json, vocab_size, eos_ids))


def wants_progress_bar(config: EngineConfig) -> bool:
    """A loading bar helps a person at a terminal; in JSON-log mode or with stderr
    redirected (a service, a test) it would only add noise to the log."""
    return not config.server.json_output and sys.stderr.isatty()


def default_prefill_cap(device_type: str) -> ProportionalCap | None:
    """The cap on prompt tokens per step while others decode, when none is set.
    On a CPU every prompt token costs compute a decode step then waits for; a
    GPU step is bound by reading the weights, so prompt tokens ride along."""
    return ProportionalCap() if device_type == "cpu" else None


def build_engine(config: EngineConfig) -> BuiltEngine:
    from pytgi.executor.device import resolve_device
    from pytgi.executor.model_runner import create_model_runner

    device_type = resolve_device(config.model.device).type
    step_budget = resolve_step_budget(config.scheduler, device_type)
    budget_tail = resolve_budget_tail(config.scheduler, device_type)
    scheduler_config = dataclasses.replace(config.scheduler, max_batch_prefill_tokens=step_budget)
    model_id, model_dir = resolve_model(config)
    config_path = config.model.tokenizer_config_path
    tokenizer = Tokenizer(model_dir, Path(config_path) if config_path is not None else None)
    runner = create_model_runner(
        model_dir,
        dtype=config.model.dtype,
        device=config.model.device,
        block_size=config.cache.block_size,
        max_batch_total_tokens=config.cache.max_batch_total_tokens,
        kv_cache_memory_fraction=config.cache.kv_cache_memory_fraction,
        max_num_batched_tokens=step_budget + budget_tail,
        watermark_gamma=config.sampling.watermark_gamma,
        watermark_delta=config.sampling.watermark_delta,
        show_progress=wants_progress_bar(config),
        cuda_graphs=config.model.cuda_graphs,
    )
    spec = runner.kv_cache_spec
    capacity = spec.num_blocks * spec.block_size
    limits = resolve_limits(config, capacity, model_context_length(model_dir, tokenizer))
    kv_cache = KVCacheManager(spec.num_blocks, spec.block_size, config.cache.prefix_caching)
    eos_ids = eos_token_ids(model_dir, tokenizer)
    grammars = None
    if not limits.disable_grammar_support:
        grammars = build_grammar_cache(model_dir, tokenizer, runner.vocab_size, eos_ids)
    engine = Engine(
        Scheduler(scheduler_config, kv_cache, default_prefill_cap(device_type), budget_tail),
        runner,
        OutputProcessor(tokenizer),
        eos_ids,
        grammars.backend if grammars is not None else None,
    )
    info = ModelInfo(
        model_id=model_id,
        model_sha=None,
        model_pipeline_tag=None,
        dtype=runner.dtype_name,
        device=runner.device_name,
        max_position_embeddings=model_context_length(model_dir, tokenizer),
    )
    logger.info(
        "loaded %s (%s) from %s: dtype %s on %s; KV cache %d blocks x %d = %d tokens (%.1f MiB); "
        "max_input_tokens %d, max_total_tokens %d",
        model_id,
        runner.architecture,
        model_dir,
        runner.dtype_name,
        runner.device_name,
        spec.num_blocks,
        spec.block_size,
        capacity,
        spec.num_blocks * spec.bytes_per_block / 2**20,
        limits.max_input_tokens,
        limits.max_total_tokens,
    )
    return BuiltEngine(engine, InputProcessor(tokenizer, limits, grammars), tokenizer, info, limits)
