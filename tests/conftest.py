import pytest
import torch

from bbpm.memory.kernels import triton_ops


def tiny_llama(hidden_size: int, attn_implementation: str) -> torch.nn.Module:
    """A randomly initialised two-layer Llama (vocabulary 128, grouped-query attention),
    seeded, in eval mode: the stand-in model of the KV-cache and press tests."""
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=128,
        max_position_embeddings=512,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    model.set_attn_implementation(attn_implementation)
    return model


def pytest_collection_modifyitems(config, items):
    """Tests marked ``triton_interpreter`` run only where Triton builds interpreted kernels
    (``TRITON_INTERPRET=1`` before import: the subprocess that
    tests/test_triton_kernels.py starts); elsewhere they are deselected, not skipped, so a
    plain run's summary lists them once, as that subprocess's result."""
    if triton_ops.interpreted():
        return
    keep = [item for item in items if item.get_closest_marker("triton_interpreter") is None]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield


def unit_vectors(n: int, d: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return (v / v.norm(dim=1, keepdim=True)).to(dtype)
