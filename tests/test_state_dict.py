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
