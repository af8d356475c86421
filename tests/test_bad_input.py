"""Bad input raises a clear TypeError/ValueError naming the argument, and leaves state unchanged."""

import pytest
import torch

from bbpm import BBPMMemoryFloat, BlockPermutationHash, GlobalAffineHash


@pytest.fixture
def mem():
    m = BBPMMemoryFloat(10_000, 8, 4, 2, GlobalAffineHash(10_000))
    m.write(torch.arange(50), torch.randn(50, 8))
    return m


def snapshot(m):
    return m.memory.clone(), m.counts.clone()


@pytest.mark.parametrize(
    ("keys", "values", "error", "words"),
    [
        (torch.arange(3).float(), torch.randn(3, 8), TypeError, "keys"),
        (torch.tensor([True, False, True]), torch.randn(3, 8), TypeError, "keys"),
        (torch.arange(6).view(2, 3), torch.randn(6, 8), ValueError, "1-D"),
        ([1, 2, 3], torch.randn(3, 8), TypeError, "keys"),
        (torch.arange(3), torch.randn(3, 7), ValueError, "values must have shape"),
        (torch.arange(3), torch.randn(4, 8), ValueError, "values must have shape"),
        (torch.arange(3), torch.randn(3, 8, 1), ValueError, "values must have shape"),
        (torch.arange(3), torch.ones(3, 8, dtype=torch.int64), TypeError, "floating"),
        (torch.arange(3), torch.tensor([[float("nan")] * 8] * 3), ValueError, "NaN"),
        (torch.arange(3), torch.tensor([[float("inf")] * 8] * 3), ValueError, "check_finite=False"),
        (torch.arange(3), "values", TypeError, "values"),
    ],
)
def test_bad_write_raises_and_leaves_memory_unchanged(mem, keys, values, error, words):
    before = snapshot(mem)
    with pytest.raises(error, match=words):
        mem.write(keys, values)
    assert all(torch.equal(a, b) for a, b in zip(before, snapshot(mem)))


def test_keys_and_values_on_different_devices_are_rejected(mem):
    meta_values = torch.empty(3, 8, device="meta")
    before = snapshot(mem)
    with pytest.raises(ValueError, match="same device"):
        mem.write(torch.arange(3), meta_values)
    with pytest.raises(ValueError, match="memory is on"):
        mem.read(torch.arange(3, device="meta"))
    assert all(torch.equal(a, b) for a, b in zip(before, snapshot(mem)))


def test_nan_check_can_be_switched_off_for_speed():
    m = BBPMMemoryFloat(1000, 2, 2, 1, GlobalAffineHash(1000), check_finite=False)
    m.write(torch.tensor([1]), torch.tensor([[float("nan"), 1.0]]))
    assert torch.isnan(m.read(torch.tensor([1]))).any()


def test_negative_and_extreme_int64_keys_hash_fine(mem):
    keys = torch.tensor([-1, -(2**63), 2**63 - 1, 0])
    mem.write(keys, torch.ones(4, 8))
    assert mem.read(keys).shape == (4, 8)
    assert mem.read(torch.tensor([-1], dtype=torch.int32)).shape == (1, 8)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (dict(D=0), ValueError, "D must be a positive int"),
        (dict(D=-5), ValueError, "D must be a positive int"),
        (dict(d=0), ValueError, "d must be a positive int"),
        (dict(K=0), ValueError, "K must be a positive int"),
        (dict(H=-1), ValueError, "H must be a positive int"),
        (dict(K=2.0), TypeError, "K must be a positive int"),
        (dict(write_scale="sqrt"), ValueError, "write_scale must be one of"),
        (dict(dtype=torch.int32), TypeError, "dtype"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, words):
    args = dict(D=1000, d=4, K=2, H=1, hash_fn=GlobalAffineHash(1000)) | kwargs
    with pytest.raises(error, match=words):
        BBPMMemoryFloat(**args)


def test_hash_and_memory_sizes_must_agree():
    with pytest.raises(ValueError, match="same D"):
        BBPMMemoryFloat(1000, 4, 2, 1, GlobalAffineHash(999))


def test_block_size_must_divide_D_and_K_must_fit_in_a_block():
    with pytest.raises(ValueError, match="divisible by block_size"):
        BlockPermutationHash(1000, 64)
    with pytest.raises(ValueError, match="K must be <= block_size"):
        BlockPermutationHash(1024, 64).indices(torch.arange(3), 65, 1)
    with pytest.raises(ValueError, match="H <= n_blocks"):
        BlockPermutationHash(128, 64).indices(torch.arange(3), 4, 3)


def test_hash_rejects_bad_K_H_and_keys():
    h = GlobalAffineHash(100)
    with pytest.raises(ValueError, match="K must be"):
        h.indices(torch.arange(3), 0, 1)
    with pytest.raises(TypeError, match="keys must be an integer"):
        h.indices(torch.rand(3), 2, 1)
    with pytest.raises(ValueError, match="mode must be"):
        GlobalAffineHash(100, mode="fast")
