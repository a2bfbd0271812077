"""Train the bundled demo model from scratch, on CPU, reproducibly.

    python -m pytgi.demo.train [--out DIR] [--steps N]

Steps: build the corpus (pytgi.demo.corpus) -> train a byte-level BPE tokenizer on the training
split -> train a small LlamaForCausalLM for a fixed number of steps -> save it in Hugging Face
layout (bfloat16 safetensors, tokenizer.json, tokenizer_config.json with a ChatML template,
generation_config.json) -> reload it the way users do, measure held-out perplexity and write
greedy samples into training_report.json.

Everything random is seeded and the thread count is fixed, so the same Python version on the
same kind of CPU reproduces the same weights. This is a developer tool: it uses transformers,
which pytgi itself does not need at run time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tokenizers
import torch
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
)

from pytgi.demo import DEMO_MODEL_DIR
from pytgi.demo.artifacts import MODEL_MAX_LENGTH, sample_outputs, save_artifacts, special_id
from pytgi.demo.corpus import ENDOFTEXT, IM_END, SPECIAL_TOKENS, Corpus, build_corpus

# About 7 epochs of the training split; held-out loss stops improving around here (a 1500-step run
# reached its best held-out loss near step 1250, then rose while the training loss kept falling).
# About 14 minutes on two uncontended cores of a current x86 server CPU.
DEFAULT_NUM_STEPS = 1200


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything that determines the trained weights (besides the Python version and the CPU)."""

    seed: int = 1234
    num_steps: int = DEFAULT_NUM_STEPS
    batch_size: int = 16
    seq_len: int = 256
    peak_lr: float = 2e-3
    min_lr_ratio: float = 0.1
    num_warmup_steps: int = 100
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    vocab_size: int = 4096
    heldout_fraction: float = 0.02
    num_threads: int = 2
    log_every_steps: int = 50
    eval_every_steps: int = 250

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"TrainConfig.num_steps must be >= 1, got {self.num_steps}")
        if not 0.0 < self.heldout_fraction < 0.5:
            raise ValueError(f"TrainConfig.heldout_fraction must be in (0, 0.5), got {self.heldout_fraction}")


@dataclass(frozen=True, slots=True)
class LossPoint:
    step: int
    train_loss: float  # mean over the steps since the previous point
    heldout_loss: float | None  # None between evaluations


@dataclass(frozen=True, slots=True)
class TrainResult:
    wall_time_s: float  # includes the periodic held-out evaluations
    num_tokens_seen: int
    final_train_loss: float  # mean over the last log_every_steps steps
    loss_curve: tuple[LossPoint, ...]


def llama_config(tokenizer: Tokenizer) -> LlamaConfig:
    """~4M parameters: 8 MB in bfloat16, and fast enough to train on two CPU cores."""
    eos_token_ids = [special_id(tokenizer, ENDOFTEXT), special_id(tokenizer, IM_END)]
    # `rope_theta` and `attn_implementation`: taken by transformers 4.x and 5, though
    # 5's typed keywords leave them out (5 moves rope_theta into `rope_parameters`).
    return LlamaConfig(  # type: ignore[call-arg]
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=MODEL_MAX_LENGTH,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_token_ids,
        pad_token_id=eos_token_ids[0],
        attn_implementation="sdpa",
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pytgi.demo.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEMO_MODEL_DIR, help="output folder (HF layout)")
    parser.add_argument("--steps", type=int, default=DEFAULT_NUM_STEPS, help="optimizer steps")
    args = parser.parse_args(argv)
    run(TrainConfig(num_steps=args.steps), args.out)


def run(config: TrainConfig, out_dir: Path) -> None:
    start_s = time.perf_counter()
    _seed_everything(config)
    corpus = build_corpus(config.seed, config.heldout_fraction)
    _log(f"corpus: {json.dumps(dataclasses.asdict(corpus.stats))}")
    tokenizer = train_tokenizer(corpus.train_texts, config.vocab_size)
    train_ids = encode_stream(tokenizer, corpus.train_texts)  # [num_train_tokens]
    heldout_ids = encode_stream(tokenizer, corpus.heldout_texts)  # [num_heldout_tokens]
    _log(f"tokens: train {train_ids.numel()}, held-out {heldout_ids.numel()}")

    model = LlamaForCausalLM(llama_config(tokenizer))
    _log(f"model: {sum(p.numel() for p in model.parameters())} parameters")
    result = train(model, train_ids, heldout_ids, config)

    save_artifacts(model, tokenizer, out_dir)
    shipped = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    heldout_loss = evaluate(shipped, heldout_ids, config)
    samples = sample_outputs(out_dir, shipped)
    report = _report(config, corpus, train_ids, heldout_ids, result, heldout_loss)
    report["samples"] = samples
    report["total_wall_time_s"] = round(time.perf_counter() - start_s, 1)
    (out_dir / "training_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _log(f"held-out perplexity {math.exp(heldout_loss):.2f}; samples: {json.dumps(samples, indent=2)}")


def _seed_everything(config: TrainConfig) -> None:
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    # CPU kernels are deterministic for a fixed thread count (two runs give identical weights);
    # use_deterministic_algorithms() is not needed and made steps about 3x slower here.
    torch.set_num_threads(config.num_threads)


# ---------------------------------------------------------------------------------------------
# Tokenizer


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE: every UTF-8 string encodes and decodes losslessly, no unknown token."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    # Keeps offsets pointing at the original characters (pytgi reports byte offsets per token).
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),  # ids 0, 1, 2 in this order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # The trainer does not split out special tokens, so it would learn merges for "<|im_end|>"
    # pieces; they are removed from what it counts.
    special = re.compile("|".join(re.escape(token) for token in SPECIAL_TOKENS))
    tokenizer.train_from_iterator((special.sub("\n", text) for text in texts), trainer=trainer)
    return tokenizer


def encode_stream(tokenizer: Tokenizer, texts: Sequence[str]) -> torch.Tensor:
    """All texts as one token stream (each already ends with <|endoftext|>)."""
    encodings = tokenizer.encode_batch(list(texts))
    return torch.tensor([token_id for encoding in encodings for token_id in encoding.ids], dtype=torch.long)


# ---------------------------------------------------------------------------------------------
# Training


def train(
    model: LlamaForCausalLM, token_ids: torch.Tensor, heldout_ids: torch.Tensor, config: TrainConfig
) -> TrainResult:
    """AdamW with warmup and cosine decay on random windows of the stream, bf16 autocast.

    Every log_every_steps a point goes on the loss curve; every eval_every_steps it also carries
    the held-out loss, which shows whether repeated epochs start to memorize.
    """
    optimizer = _optimizer(model, config)
    batches = torch.Generator().manual_seed(config.seed)
    loss_curve: list[LossPoint] = []
    window_losses: list[float] = []
    start_s = time.perf_counter()
    for step in range(1, config.num_steps + 1):
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        inputs, targets = sample_batch(token_ids, config.batch_size, config.seq_len, batches)
        loss = next_token_loss(model, inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        window_losses.append(loss.item())
        if step % config.log_every_steps == 0 or step == config.num_steps:
            is_eval_step = step % config.eval_every_steps == 0 or step == config.num_steps
            heldout_loss = evaluate(model, heldout_ids, config) if is_eval_step else None
            loss_curve.append(LossPoint(step, sum(window_losses) / len(window_losses), heldout_loss))
            window_losses.clear()
            _log_progress(loss_curve[-1], config, time.perf_counter() - start_s)
    return TrainResult(
        wall_time_s=round(time.perf_counter() - start_s, 1),
        num_tokens_seen=config.num_steps * config.batch_size * config.seq_len,
        final_train_loss=round(loss_curve[-1].train_loss, 4),
        loss_curve=tuple(loss_curve),
    )


def _log_progress(point: LossPoint, config: TrainConfig, elapsed_s: float) -> None:
    tokens_per_s = point.step * config.batch_size * config.seq_len / elapsed_s
    heldout = "" if point.heldout_loss is None else f" held-out {point.heldout_loss:.3f}"
    _log(
        f"step {point.step}/{config.num_steps} loss {point.train_loss:.3f}{heldout} "
        f"lr {learning_rate(point.step, config):.2e} {tokens_per_s:.0f} tok/s {elapsed_s:.0f}s"
    )


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    # Decay matrices (embeddings included), not norm gains: shrinking a gain changes the function.
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": matrices, "weight_decay": config.weight_decay},
        {"params": vectors, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.peak_lr, betas=(0.9, 0.95), eps=1e-8)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warmup to peak_lr, then cosine decay to min_lr_ratio * peak_lr at the last step."""
    if step <= config.num_warmup_steps:
        return config.peak_lr * step / config.num_warmup_steps
    progress = (step - config.num_warmup_steps) / max(1, config.num_steps - config.num_warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.peak_lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)


def sample_batch(
    token_ids: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of the stream; targets are the inputs shifted by one token."""
    starts = torch.randint(0, token_ids.numel() - seq_len - 1, (batch_size,), generator=generator)
    windows = torch.stack([token_ids[start : start + seq_len + 1] for start in starts.tolist()])
    # windows: [batch_size, seq_len + 1]
    return windows[:, :-1], windows[:, 1:]


def next_token_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # bf16 matmuls run on the CPU's AMX/AVX-512 units (about 1.5x fp32 here); the loss is fp32.
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=model.training):
        logits = model(input_ids=inputs).logits  # [batch_size, seq_len, vocab_size]
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


@torch.no_grad()
def evaluate(model: torch.nn.Module, token_ids: torch.Tensor, config: TrainConfig) -> float:
    """Mean next-token loss (nats) over consecutive, non-overlapping windows, in fp32."""
    model.eval()
    num_windows = (token_ids.numel() - 1) // config.seq_len
    total_loss, total_tokens = 0.0, 0
    for first in range(0, num_windows, config.batch_size):
        starts = range(
            first * config.seq_len,
            min(first + config.batch_size, num_windows) * config.seq_len,
            config.seq_len,
        )
        windows = torch.stack([token_ids[start : start + config.seq_len + 1] for start in starts])
        loss = next_token_loss(model, windows[:, :-1], windows[:, 1:])
        total_loss += loss.item() * windows[:, 1:].numel()
        total_tokens += windows[:, 1:].numel()
    return total_loss / total_tokens


def _report(
    config: TrainConfig,
    corpus: Corpus,
    train_ids: torch.Tensor,
    heldout_ids: torch.Tensor,
    result: TrainResult,
    heldout_loss: float,
) -> dict[str, Any]:
    last_heldout_loss = result.loss_curve[-1].heldout_loss  # the last step always evaluates
    return {
        "train_config": dataclasses.asdict(config),
        "seeds": {
            "corpus_split_and_chat": config.seed,
            "model_init": config.seed,
            "batch_sampling": config.seed,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "corpus": dataclasses.asdict(corpus.stats),
        "num_train_tokens": train_ids.numel(),
        "num_heldout_tokens": heldout_ids.numel(),
        "num_steps": config.num_steps,
        "num_tokens_seen": result.num_tokens_seen,
        "num_epochs": round(result.num_tokens_seen / train_ids.numel(), 2),
        "train_wall_time_s": result.wall_time_s,
        "final_train_loss": result.final_train_loss,
        "heldout_loss": round(heldout_loss, 4),
        "heldout_perplexity": round(math.exp(heldout_loss), 2),
        # Before rounding the weights to bfloat16 for shipping.
        "heldout_perplexity_fp32_weights": None
        if last_heldout_loss is None
        else round(math.exp(last_heldout_loss), 2),
        "loss_curve": [
            {
                "step": point.step,
                "train_loss": round(point.train_loss, 4),
                "heldout_loss": None if point.heldout_loss is None else round(point.heldout_loss, 4),
            }
            for point in result.loss_curve
        ],
    }


def _log(message: str) -> None:
    print(f"[demo.train {time.strftime('%H:%M:%S')}] {message}", flush=True)


if __name__ == "__main__":
    main()
