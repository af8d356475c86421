"""Checkpoints restore a memory that reads identically, hash settings included."""

import io

import pytest
import torch

from bbpm import BBPMMemoryFloat, BlockPermutationHash, GlobalAffineHash, MultiHashWrapper


@pytest.mark.parametrize(
    "hash_fn",
    [
        GlobalAffineHash(8192, seed=11),
        GlobalAffineHash(8192, mode="prototype"),
        BlockPermutationHash(8192, 512, seed=3),
        MultiHashWrapper(BlockPermutationHash(8192, 1024), seed=9),
    ],
    ids=repr,
)
def test_round_trip_through_torch_save(hash_fn):
    mem = BBPMMemoryFloat(8192, 16, 4, 2, hash_fn, write_scale="unit")
    keys = torch.randint(-(10**12), 10**12, (3000,))
    mem.write(keys, torch.randn(3000, 16))
    buffer = io.BytesIO()
    torch.save(mem.state_dict(), buffer)
    buffer.seek(0)
    restored = BBPMMemoryFloat.from_state_dict(torch.load(buffer, weights_only=False))
    assert restored.config() == mem.config()
    assert torch.equal(restored.read(keys), mem.read(keys))


def test_loading_into_a_memory_with_another_hash_is_refused():
    mem = BBPMMemoryFloat(4096, 4, 2, 1, GlobalAffineHash(4096, seed=1))
    other = BBPMMemoryFloat(4096, 4, 2, 1, GlobalAffineHash(4096, seed=2))
    with pytest.raises(ValueError, match="hash"):
        other.load_state_dict(mem.state_dict())


def test_load_state_dict_into_matching_memory():
    mem = BBPMMemoryFloat(4096, 4, 2, 1, GlobalAffineHash(4096))
    mem.write(torch.arange(100), torch.randn(100, 4))
    twin = BBPMMemoryFloat(4096, 4, 2, 1, GlobalAffineHash(4096))
    twin.load_state_dict(mem.state_dict())
    assert torch.equal(twin.read(torch.arange(100)), mem.read(torch.arange(100)))


@pytest.mark.parametrize("other_args", [(4096, 4, 4, 1), (4096, 8, 2, 1)], ids=["K", "d"])
def test_a_refused_load_leaves_the_tables_unchanged(other_args):
    # torch copies buffers before set_extra_state; the config check must come first.
    mem = BBPMMemoryFloat(4096, 4, 2, 1, GlobalAffineHash(4096))
    mem.write(torch.arange(100), torch.randn(100, 4))
    D, d, K, H = other_args
    other = BBPMMemoryFloat(D, d, K, H, GlobalAffineHash(D))
    other.write(torch.arange(7), torch.randn(7, d))
    before = other.memory.clone(), other.counts.clone()
    with pytest.raises(ValueError, match="does not match this memory in"):
        other.load_state_dict(mem.state_dict())
    assert torch.equal(other.memory, before[0]) and torch.equal(other.counts, before[1])


def test_from_state_dict_explains_a_hash_without_config():
    class PlainHash:  # the spec's protocol: indices only
        D = 512

        def indices(self, keys, K, H):
            return GlobalAffineHash(512).indices(keys, K, H)

    mem = BBPMMemoryFloat(512, 4, 2, 1, PlainHash())
    with pytest.raises(ValueError, match="has no config"):
        BBPMMemoryFloat.from_state_dict(mem.state_dict())
    with pytest.raises(ValueError, match="no BBPM config"):
        BBPMMemoryFloat.from_state_dict({"memory": mem.memory})


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_round_trip_keeps_storage_dtype_and_default_scale(dtype):
    mem = BBPMMemoryFloat(4096, 8, 4, 2, GlobalAffineHash(4096, seed=5), dtype=dtype)
    keys = torch.arange(500)
    mem.write(keys, torch.randn(500, 8, dtype=dtype))
    buffer = io.BytesIO()
    torch.save(mem.state_dict(), buffer)
    buffer.seek(0)
    restored = BBPMMemoryFloat.from_state_dict(torch.load(buffer, weights_only=False))
    assert restored.memory.dtype == dtype and restored.write_scale == "1/sqrt(KH)"
    assert torch.equal(restored.memory, mem.memory) and torch.equal(restored.counts, mem.counts)
    assert torch.equal(restored.read(keys), mem.read(keys))
