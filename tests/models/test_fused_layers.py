"""The compiled layer stack against the module path it replaces: the same
tokens and (near) the same logits, for every Llama-family variant it takes, at
one row (the small-batch kernel) and at several (torch's GEMM), in decode
steps and in steps with prefill chunks (fresh or continuing a cached prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from executor_helpers import BLOCK_SIZE, COMMON, LogitsRecorder, TinyDriver, save_tiny_model

from pytgi import kernels
from pytgi.executor.model_runner import ModelRunner, create_model_runner
from pytgi.layers import linear as linear_module
from pytgi.models import fused_layers, llama

pytestmark = pytest.mark.skipif(kernels.cpu_kernels() is None, reason="the CPU kernels could not be built")

PROMPTS = [list(range(3, 20)), [7, 100, 42, 9, 250, 31, 8, 2, 77, 15, 61], [5, 6, 200, 13, 13, 90, 1]]
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("llama", {}),
    "llama_bias_head_dim": ("llama", {"head_dim": 32, "attention_bias": True, "mlp_bias": True}),
    "mistral_window": ("mistral", {"sliding_window": 8}),
    "qwen2": ("qwen2", {}),
}
# RoPE on 8 of each head's 16 channels; Phi3Config's default pad id would not fit the vocab.
PHI3_PARTIAL_ROTARY: dict[str, Any] = {**COMMON, "pad_token_id": 0, "partial_rotary_factor": 0.5}


def save_variant(variant: str, folder: Path) -> None:
    if variant == "phi3_partial_rotary":
        import transformers

        torch.manual_seed(0)
        config = transformers.Phi3Config(**PHI3_PARTIAL_ROTARY)
        transformers.AutoModelForCausalLM.from_config(config).save_pretrained(folder, safe_serialization=True)
        return
    kind, overrides = VARIANTS[variant]
    save_tiny_model(kind, folder, **overrides)


def runner(folder: Path, dtype: str, backend: str = "batched") -> ModelRunner:
    return create_model_runner(
        folder,
        dtype=dtype,
        device="cpu",
        block_size=BLOCK_SIZE,
        max_batch_total_tokens=1024,
        kv_cache_memory_fraction=0.1,
        max_num_batched_tokens=512,
        attention_backend=backend,
    )


def generate(
    folder: Path,
    dtype: str,
    num_prompts: int,
    fused: bool,
    monkeypatch: pytest.MonkeyPatch,
    chunk_size: int | None = None,
) -> tuple[dict[str, list[int]], list[torch.Tensor], int]:
    """(tokens, logits of every sampling step, fused steps) for 12 new tokens,
    prompts prefilled `chunk_size` tokens a step."""
    monkeypatch.setenv("PYTGI_FUSED_LAYERS", "1" if fused else "0")
    model_runner = runner(folder, dtype)
    recorder = LogitsRecorder(model_runner)
    fused_steps: list[int] = []
    stack = model_runner.model.model.fused_layers  # type: ignore[union-attr]
    original = stack.forward

    def counted(*args: Any) -> torch.Tensor:
        fused_steps.append(args[0].shape[0])
        return original(*args)

    stack.forward = counted
    driver = TinyDriver(model_runner)
    for i, prompt in enumerate(PROMPTS[:num_prompts]):
        driver.add(f"r{i}", prompt)
    tokens = driver.generate(12, chunk_size)
    return tokens, recorder.calls, len(fused_steps)


@pytest.mark.parametrize("variant", [*sorted(VARIANTS), "phi3_partial_rotary"])
@pytest.mark.parametrize("num_prompts", [1, 3])
def test_fused_layers_match_the_module_path_in_float32(
    variant: str, num_prompts: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_variant(variant, tmp_path)
    tokens, logits, fused_steps = generate(tmp_path, "float32", num_prompts, True, monkeypatch)
    ref_tokens, ref_logits, ref_fused_steps = generate(tmp_path, "float32", num_prompts, False, monkeypatch)
    assert fused_steps == 12 and ref_fused_steps == 0  # every step, the prefill too
    assert tokens == ref_tokens
    for got, expected in zip(logits, ref_logits, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("num_prompts", [1, 3])
def test_fused_layers_keep_the_bfloat16_roundings(
    num_prompts: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_tiny_model("qwen2", tmp_path)
    tokens, logits, fused_steps = generate(tmp_path, "bfloat16", num_prompts, True, monkeypatch)
    ref_tokens, ref_logits, _ = generate(tmp_path, "bfloat16", num_prompts, False, monkeypatch)
    assert fused_steps == 12
    assert tokens == ref_tokens
    for got, expected in zip(logits, ref_logits, strict=True):
        torch.testing.assert_close(got, expected, atol=2e-2, rtol=2e-2)


def test_only_the_plain_llama_layer_on_the_default_backend_is_fused(tmp_path: Path) -> None:
    save_tiny_model("llama", tmp_path)
    assert runner(tmp_path, "float32").model.model.fused_layers is not None  # type: ignore[union-attr]
    assert runner(tmp_path, "float32", backend="reference").model.model.fused_layers is None  # type: ignore[union-attr]

    class OtherLayer(llama.LlamaDecoderLayer):
        pass

    layer = runner(tmp_path, "float32").model.model.layers[0]  # type: ignore[union-attr,index]
    assert llama.fusable(layer)
    layer.__class__ = OtherLayer
    assert not llama.fusable(layer)


@pytest.mark.parametrize("variant", ["llama", "mistral_window"])
def test_steps_with_prefill_chunks_match_the_module_path(
    variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks of 4: the shortest prompt decodes while the others prefill chunks
    # that continue their cached positions (past the 8-token window for Mistral).
    save_variant(variant, tmp_path)
    tokens, logits, fused_steps = generate(tmp_path, "float32", 3, True, monkeypatch, chunk_size=4)
    ref_tokens, ref_logits, _ = generate(tmp_path, "float32", 3, False, monkeypatch, chunk_size=4)
    assert fused_steps == 16  # 5 steps to prefill the longest prompt, then 11
    assert tokens == ref_tokens
    for got, expected in zip(logits, ref_logits, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_other_dtypes_and_the_off_switch_take_the_module_path(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = fused_layers.FusedLayers([])
    assert stack.applies(torch.zeros(1, 8))
    assert stack.applies(torch.zeros(1, 8, dtype=torch.bfloat16))
    assert not stack.applies(torch.zeros(1, 8, dtype=torch.float16))
    monkeypatch.setenv("PYTGI_FUSED_LAYERS", "0")
    assert not stack.applies(torch.zeros(1, 8))


def test_layer_stack_refuses_inputs_it_cannot_take() -> None:
    module = kernels.cpu_kernels()
    with pytest.raises(RuntimeError, match="one window per layer"):
        module.LayerStack([], [0], 4, 2, 16, 16, 1e-6, 0.25, 1, False)
    with pytest.raises(RuntimeError, match="16 tensors"):
        module.LayerStack([[torch.zeros(4)]], [0], 4, 2, 16, 16, 1e-6, 0.25, 1, False)
    with pytest.raises(RuntimeError, match="rotary_dim"):
        module.LayerStack([], [], 4, 2, 16, 15, 1e-6, 0.25, 1, False)


def test_bfloat16_prefill_chunks_over_cached_keys_keep_the_roundings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks after the first attend to their cached keys and to their own in two
    # flash calls merged in the stack; the module path makes one masked call.
    save_tiny_model("llama", tmp_path)
    tokens, logits, fused_steps = generate(tmp_path, "bfloat16", 3, True, monkeypatch, chunk_size=4)
    ref_tokens, ref_logits, _ = generate(tmp_path, "bfloat16", 3, False, monkeypatch, chunk_size=4)
    assert fused_steps == 16
    assert tokens == ref_tokens
    for got, expected in zip(logits, ref_logits, strict=True):
        torch.testing.assert_close(got, expected, atol=2e-2, rtol=2e-2)


@pytest.mark.skipif(
    kernels.cpu_kernels() is None or not kernels.cpu_kernels().prefill_attention_available(),
    reason="no AVX512-BF16 prefill kernel in this build",
)
@pytest.mark.parametrize("chunk_size", [None, 4])
def test_bfloat16_prefill_kernel_matches_sdpa_in_the_stack(
    chunk_size: int | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Head size 64, so the kernel takes the chunks (fresh, and over cached keys
    # with chunks of 4); PYTGI_PREFILL_KERNEL=0 gives torch's SDPA in the same
    # stack. Two bf16 paths round differently, so each is held to float32's logits.
    save_tiny_model("llama", tmp_path, hidden_size=128, head_dim=64)
    _, exact, _ = generate(tmp_path, "float32", 3, True, monkeypatch, chunk_size)
    monkeypatch.setenv("PYTGI_PREFILL_KERNEL", "1")
    tokens, logits, fused_steps = generate(tmp_path, "bfloat16", 3, True, monkeypatch, chunk_size)
    monkeypatch.setenv("PYTGI_PREFILL_KERNEL", "0")
    ref_tokens, ref_logits, _ = generate(tmp_path, "bfloat16", 3, True, monkeypatch, chunk_size)
    assert fused_steps == (16 if chunk_size else 12)
    assert tokens == ref_tokens
    for got, expected, truth in zip(logits, ref_logits, exact, strict=True):
        error, sdpa_error = ((x.float() - truth).abs() for x in (got, expected))
        assert error.max() <= 1.5 * sdpa_error.max() + 1e-2
        assert error.mean() <= 1.25 * sdpa_error.mean() + 1e-3


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="no oneDNN bf16 on this CPU")
def test_prepacked_bfloat16_weights_change_no_bit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_tiny_model("llama", tmp_path, attention_bias=True, mlp_bias=True)
    built: list[bool] = []
    original = fused_layers.packed_copies_fit
    monkeypatch.setattr(
        fused_layers, "packed_copies_fit", lambda layers: built.append(original(layers)) or built[-1]
    )
    monkeypatch.setenv("PYTGI_PACKED_WEIGHTS", "1")
    tokens, logits, fused_steps = generate(tmp_path, "bfloat16", 3, True, monkeypatch, chunk_size=4)
    monkeypatch.setenv("PYTGI_PACKED_WEIGHTS", "0")
    ref_tokens, ref_logits, _ = generate(tmp_path, "bfloat16", 3, True, monkeypatch, chunk_size=4)
    assert built[0] and fused_steps == 16
    assert tokens == ref_tokens
    for got, expected in zip(logits, ref_logits, strict=True):
        assert torch.equal(got, expected)


def test_prepacked_copies_are_skipped_when_memory_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = llama.LlamaDecoderLayer  # only the weights' sizes are read
    monkeypatch.setattr(linear_module, "PACKED_MEMORY_SHARE", 0.0)
    weights = (torch.zeros(4, 4, dtype=torch.bfloat16),) * 4
    monkeypatch.setattr(fused_layers, "linear_weights", lambda _layer: weights)
    assert not fused_layers.packed_copies_fit([layer])  # type: ignore[list-item]
    monkeypatch.setattr(linear_module, "PACKED_MEMORY_SHARE", 0.25)
    assert fused_layers.packed_copies_fit([layer])  # type: ignore[list-item]
