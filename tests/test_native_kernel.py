"""The C write kernel (bbpm.memory.kernels.native): equal to the canonical write, bitwise
the same for every thread count, safe on bad input, and optional (falls back to torch)."""

import os
import shutil
import sys

import pytest
import torch

from bbpm import BBPMMemoryFloat, GlobalAffineHash
from bbpm.memory import kernels
from bbpm.memory.kernels import native, torch_ops

needs_native = pytest.mark.skipif(
    not native.available(), reason=f"native kernel unavailable: {native.unavailable_reason()}"
)


def table(D=3000, d=24, B=400, M=10, dtype=torch.float32, counts_dtype=None, seed=0):
    """A table after one canonical write and the next batch (duplicate slots, repeated rows)."""
    gen = torch.Generator().manual_seed(seed)
    memory = torch.zeros(D, d, dtype=dtype)
    counts = torch.zeros(D, 1, dtype=counts_dtype or dtype)
    idx = torch.randint(0, D, (B, M), generator=gen)
    idx[:, 1] = idx[:, 0]  # a slot twice within one item
    torch_ops.write_index_add(memory, counts, idx, torch.randn(B, d, generator=gen).to(dtype))
    next_idx = torch.cat([idx[: B // 2], torch.randint(0, D, (B - B // 2, M), generator=gen)])
    return memory, counts, next_idx, torch.randn(B, d, generator=gen).to(dtype)


def test_native_kernel_builds_where_a_c_compiler_exists():
    if sys.platform != "linux" or shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler on a Linux machine")
    if os.environ.get("BBPM_NATIVE") == "0":
        pytest.skip("disabled by BBPM_NATIVE=0")
    assert native.available(), native.unavailable_reason()
    assert native.unavailable_reason() is None


DTYPE_PAIRS = [
    (torch.float32, torch.float32),
    (torch.float32, torch.float64),
    (torch.float64, torch.float32),
    (torch.float64, torch.float64),
]


@needs_native
@pytest.mark.parametrize("dtype, counts_dtype", DTYPE_PAIRS)
def test_native_write_equals_canonical_and_counts_are_identical(dtype, counts_dtype):
    memory, counts, idx, values = table(dtype=dtype, counts_dtype=counts_dtype)
    canon_memory, canon_counts = memory.clone(), counts.clone()
    torch_ops.write_index_add(canon_memory, canon_counts, idx, values)
    kernels.write(memory, counts, idx, values, backend="native")
    scale = canon_memory.abs().max()
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert float((memory - canon_memory).abs().max() / scale) < tol
    assert torch.equal(counts, canon_counts)


@needs_native
@pytest.mark.parametrize("dtype, counts_dtype", DTYPE_PAIRS)
@pytest.mark.parametrize("backend", ["native", "torch"])
def test_write_with_a_count_step_equals_canonical(dtype, counts_dtype, backend):
    """A decayed memory's writes add its write weight (here 2**40 / 3) to the counts."""
    memory, counts, idx, values = table(dtype=dtype, counts_dtype=counts_dtype)
    step = 2.0**40 / 3
    canon_memory, canon_counts = memory.clone(), counts.clone()
    torch_ops.write_index_add(canon_memory, canon_counts, idx, values, count_step=step)
    kernels.write(memory, counts, idx, values, backend=backend, count_step=step)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert float((memory - canon_memory).abs().max() / canon_memory.abs().max()) < tol
    assert torch.equal(counts, canon_counts)


@needs_native
def test_native_write_is_bitwise_identical_for_every_thread_count():
    memory, counts, idx, values = table(B=2000, M=16)  # 32000 entries: up to 7 threads
    results = []
    for threads in (1, 2, 3, 7):
        m, c = memory.clone(), counts.clone()
        native.write(m, c, idx, values, threads=threads)
        results.append((m, c))
    for m, c in results[1:]:
        assert torch.equal(m, results[0][0]) and torch.equal(c, results[0][1])


def test_thread_count_is_capped_for_small_writes():
    assert native.thread_count(10, threads=8) == 1
    assert native.thread_count(3 * native.MIN_ENTRIES_PER_THREAD, threads=8) == 3
    assert native.thread_count(10**7, threads=2) == 2


@needs_native
def test_out_of_range_slot_raises_and_leaves_the_table_unchanged():
    memory, counts, idx, values = table()
    before_memory, before_counts = memory.clone(), counts.clone()
    bad = idx.clone()
    bad[-1, -1] = memory.shape[0]  # one past the end, after every valid entry
    with pytest.raises(IndexError, match=r"outside \[0, D=3000\)"):
        native.write(memory, counts, bad, values)
    bad[-1, -1] = -1
    with pytest.raises(IndexError, match="outside"):
        native.write(memory, counts, bad, values)
    assert torch.equal(memory, before_memory) and torch.equal(counts, before_counts)


@needs_native
def test_native_write_marks_the_tensors_modified_for_autograd():
    memory, counts, idx, values = table()
    version = memory._version, counts._version
    native.write(memory, counts, idx, values)
    assert memory._version > version[0] and counts._version > version[1]


@needs_native
def test_unsupported_buffers_are_refused_clearly():
    memory, counts, idx, values = table()
    assert not native.supports_write(memory.half(), counts, values.half())
    assert not native.supports_write(memory, counts, values.double())
    assert not native.supports_write(memory.t(), counts, values)  # not contiguous
    assert not native.supports_write(memory.requires_grad_(), counts, values)
    with pytest.raises(RuntimeError, match="contiguous CPU float32/float64"):
        native.write(memory.half(), counts, idx, values.half())
    with pytest.raises(ValueError, match="write-only"):
        kernels.read(memory, counts, idx, backend="native")


@needs_native
def test_empty_batch_writes_nothing():
    memory, counts, _, values = table()
    before = memory.clone()
    empty = torch.zeros(0, 10, dtype=torch.int64)
    native.write(memory, counts, empty, values[:0])
    assert torch.equal(memory, before)


@needs_native
def test_memory_uses_the_native_write_and_round_trips_at_low_load():
    D, d, K, N = 200_000, 32, 4, 40  # 160 slots in 200k: collision-free for this seed
    mem = BBPMMemoryFloat(D, d, K=K, H=1, hash_fn=GlobalAffineHash(D))
    keys = torch.arange(N)
    assert mem.slots(keys).unique().numel() == N * K
    values = torch.nn.functional.normalize(torch.randn(N, d), dim=1)
    assert kernels.write_backend(mem.memory, mem.counts, values) == "native"
    mem.write(keys, values)
    assert float((mem.read(keys) - values).abs().max()) < 1e-6
    assert float(mem.counts.sum()) == N * K


def test_disabled_kernel_falls_back_to_torch(monkeypatch):
    monkeypatch.setenv("BBPM_NATIVE", "0")
    monkeypatch.setattr(native, "_loaded", False)
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_reason", None)
    memory, counts, idx, values = table()
    assert not native.available()
    assert native.unavailable_reason() == "disabled by BBPM_NATIVE=0"
    assert kernels.write_backend(memory, counts, values) == "torch"
    with pytest.raises(RuntimeError, match="BBPM_NATIVE=0"):
        kernels.write(memory, counts, idx, values, backend="native")


def test_a_broken_compiler_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("BBPM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BBPM_NATIVE", raising=False)
    monkeypatch.setattr(native, "_loaded", False)
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_reason", None)
    assert not native.available()
    assert "no-such-compiler" in native.unavailable_reason()


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_read_weights_are_bitwise_the_torch_weights(dtype):
    memory, counts, idx, _ = table(dtype=dtype, counts_dtype=dtype)
    assert native.supports_weights(memory, counts)
    fast = native.slot_weights(counts, idx, 1e-8)
    assert torch.equal(fast, torch_ops.slot_weights(counts, idx, 1e-8, dtype=dtype))
    read = kernels.read(memory, counts, idx, 1e-8)  # auto: embedding_bag with these weights
    assert torch.equal(read, torch_ops.read_embedding_bag(memory, counts, idx, 1e-8))


@needs_native
def test_native_read_weights_reject_out_of_range_slots():
    memory, counts, idx, _ = table()
    bad = idx.clone()
    bad[3, 2] = memory.shape[0] + 7
    with pytest.raises(IndexError, match="outside"):
        native.slot_weights(counts, bad, 1e-8)
    with pytest.raises(IndexError):
        kernels.read(memory, counts, bad)
    assert not native.supports_weights(memory, counts.double())  # mixed dtypes: torch path
