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


def test_negative_and_extreme_int64_keys_are_distinct_items():
    keys = torch.tensor([-1, 1, -(2**63), 2**63 - 1, 0, -7919, 7919])
    m = BBPMMemoryFloat(1 << 20, 8, 8, 2, GlobalAffineHash(1 << 20))
    values = torch.eye(8)[: keys.numel()]
    m.write(keys, values)  # k and -k (and the int64 extremes) must not share slots
    torch.testing.assert_close(m.read(keys), values, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.read(torch.tensor([-1], dtype=torch.int32)), m.read(keys[:1]))


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


class _ShapeHash:
    """A custom hash returning the wrong shape/dtype, or an id outside [0, D)."""

    D = 10_000

    def __init__(self, kind):
        self.kind = kind

    def indices(self, keys, K, H):
        idx = GlobalAffineHash(self.D).indices(keys, K, H)
        if self.kind == "good":
            return idx
        if self.kind == "shape":
            return idx[:, :1]
        if self.kind == "dtype":
            return idx.int()
        idx[-1, -1] = self.D  # out of range
        return idx


@pytest.mark.parametrize(
    ("kind", "error", "words"),
    [
        ("shape", ValueError, r"must return \[B, K\*H\] = \[3, 8\]"),
        ("dtype", ValueError, "int32"),
        ("range", IndexError, "outside"),
    ],
)
def test_a_custom_hash_with_bad_output_is_caught_before_writing(kind, error, words):
    with pytest.raises(ValueError, match=r"a HashFunction must return"):
        BBPMMemoryFloat(10_000, 8, 4, 2, _ShapeHash(kind))  # one probe call at construction
    hash_fn = _ShapeHash("good")
    m = BBPMMemoryFloat(10_000, 8, 4, 2, hash_fn)
    hash_fn.kind = kind  # a hash that goes bad later is caught on every call
    before = snapshot(m)
    with pytest.raises(error, match=words):
        m.write(torch.arange(3), torch.randn(3, 8))
    assert all(torch.equal(a, b) for a, b in zip(before, snapshot(m)))
    with pytest.raises(error, match=words):
        m.read(torch.arange(3))
    values = torch.randn(3, 8, requires_grad=True)  # the autograd write checks too
    with pytest.raises(error, match=words):
        m.write(torch.arange(3), values)
    assert all(torch.equal(a, b) for a, b in zip(before, snapshot(m)))


@pytest.mark.parametrize("backend", ["auto", "canonical", "torch"])
def test_kernels_reject_bad_slot_ids_and_values_with_tables_unchanged(backend):
    from bbpm.memory import kernels

    memory, counts = torch.zeros(64, 3), torch.zeros(64, 1)
    good = torch.tensor([[0, 1, 2], [5, 6, 7]])
    for idx in (torch.tensor([[0, 1, 2], [5, 6, 64]]), torch.tensor([[0, 1, 2], [-1, 6, 7]])):
        with pytest.raises(IndexError, match="outside"):
            kernels.write(memory, counts, idx, torch.ones(2, 3), backend=backend)
        with pytest.raises(IndexError, match="outside"):
            kernels.read(memory, counts, idx, backend=backend)
    with pytest.raises(ValueError, match=r"values must be \[B, d\]"):
        kernels.write(memory, counts, good[:1], torch.ones(3), backend=backend)
    with pytest.raises(TypeError, match="memory's dtype"):
        kernels.write(memory, counts, good, torch.ones(2, 3, dtype=torch.float64), backend=backend)
    with pytest.raises(ValueError, match="idx is on meta"):
        kernels.read(memory, counts, good.to("meta"), backend=backend)
    assert not memory.any() and not counts.any()


def test_multihash_rejects_a_seedless_base_and_float_seeds():
    from bbpm import MultiHashWrapper

    with pytest.raises(ValueError, match="ignores seed"):
        MultiHashWrapper(GlobalAffineHash(1000, mode="prototype"))
    with pytest.raises(TypeError, match="seed must be an int"):
        MultiHashWrapper(GlobalAffineHash(1000), seed=1.5)


def test_global_hash_refuses_more_slots_than_the_table_has():
    with pytest.raises(ValueError, match="K <= D"):
        GlobalAffineHash(8).indices(torch.arange(3), 16, 1)
    assert (
        GlobalAffineHash(8)
        .indices(torch.arange(3), 8, 1)
        .sort(dim=1)
        .values.eq(torch.arange(8))
        .all()
    )


def test_numpy_integer_sizes_are_accepted():
    import numpy as np

    m = BBPMMemoryFloat(np.int64(1024), np.int32(4), 2, 1, GlobalAffineHash(np.int64(1024)))
    assert (m.D, m.d) == (1024, 4) and type(m.D) is int


def test_a_hash_with_only_the_spec_protocol_is_a_hash_function():
    from bbpm.hashing.base import HashFunction

    class IndicesOnly:
        def indices(self, keys, K, H):
            return GlobalAffineHash(256).indices(keys, K, H)

    assert isinstance(IndicesOnly(), HashFunction)
    m = BBPMMemoryFloat(256, 4, 2, 1, IndicesOnly())
    m.write(torch.arange(3), torch.eye(4)[:3])
    assert torch.allclose(m.read(torch.arange(3)), torch.eye(4)[:3], atol=1e-6)
