import pytest
import torch


@pytest.fixture(scope="module")
def references() -> dict[str, tuple[list[int], torch.Tensor]]:
    """variant -> transformers' (tokens, logits), computed once per variant and test module."""
    return {}
