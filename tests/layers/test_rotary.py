from __future__ import annotations

import pytest
import torch

from pytgi.errors import UnsupportedArchitectureError
from pytgi.layers.rotary import (
    INV_FREQ_FUNCTIONS,
    RopeConfig,
    RotaryEmbedding,
    apply_rotary,
    rope_config_from_hf,
)

LLAMA3 = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}


@pytest.mark.parametrize("scaling", [None, {"type": "linear", "factor": 4.0}, LLAMA3])
def test_inv_freq_matches_transformers(scaling: dict | None) -> None:
    import transformers
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = transformers.LlamaConfig(
        hidden_size=256,
        num_attention_heads=4,
        rope_theta=500000.0,
        max_position_embeddings=1024,
        rope_scaling=scaling,
    )
    # Read back what transformers itself saves (its layout differs across versions).
    rope = rope_config_from_hf(config.to_dict(), rotary_dim=64, max_position_embeddings=1024)
    expected = LlamaRotaryEmbedding(config).inv_freq
    torch.testing.assert_close(INV_FREQ_FUNCTIONS[rope.rope_type](rope), expected, atol=0, rtol=0)


def test_rotation_preserves_norm_and_is_identity_at_zero() -> None:
    rotary = RotaryEmbedding(RopeConfig(rotary_dim=8, base=10000.0, max_position_embeddings=64))
    x = torch.randn(3, 2, 8)
    cos, sin = rotary.cos_sin(torch.tensor([0, 5, 63]), torch.float32)
    rotated = apply_rotary(x, cos, sin)
    torch.testing.assert_close(rotated[0], x[0])
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))


def test_unknown_rope_type_lists_supported() -> None:
    with pytest.raises(UnsupportedArchitectureError, match="llama3"):
        RotaryEmbedding(RopeConfig(8, 10000.0, 64, scaling={"rope_type": "yarn", "factor": 2.0}))
