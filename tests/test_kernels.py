"""The fast read/write paths equal the canonical definition (torch_ops.write_index_add /
read_gather_mean), keep gradients, stay exact in counts, and never build [B, M, d]."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from bbpm import BBPMMemoryFloat, GlobalAffineHash
from bbpm import bench as bbpm_bench
from bbpm.memory import kernels
from bbpm.memory.kernels import torch_ops, triton_ops

EPS = 1e-8
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
needs_cuda_triton = pytest.mark.skipif(
    not (torch.cuda.is_available() and kernels.HAS_TRITON), reason="needs CUDA and triton"
)


def filled_table(D=2000, d=16, B=300, M=12, dtype=torch.float32, seed=0, device="cpu"):
    """A table after one canonical write of B items (duplicate slots included), and the
    next batch's slot ids and values (half of them rows that were written)."""
    gen = torch.Generator().manual_seed(seed)
    counts_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    memory = torch.zeros(D, d, dtype=dtype)
    counts = torch.zeros(D, 1, dtype=counts_dtype)
    idx = torch.randint(0, D, (B, M), generator=gen)
    values = torch.randn(B, d, generator=gen).to(dtype)
    torch_ops.write_index_add(memory, counts, idx, values)
    next_idx = torch.cat([idx[: B // 2], torch.randint(0, D, (B - B // 2, M), generator=gen)])
    next_values = torch.randn(B, d, generator=gen).to(dtype)
    return (t.to(device) for t in (memory, counts, next_idx, next_values))


def rel_err(result, reference):
    return bbpm_bench.relative_error(result, reference)


# ------------------------------------------------------------------ equality with canonical
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_read_equals_canonical(dtype):
    memory, counts, idx, _ = filled_table(dtype=dtype)
    fast = kernels.read(memory, counts, idx, EPS, backend="torch")
    canonical = torch_ops.read_gather_mean(memory, counts, idx, EPS)
    assert fast.dtype == canonical.dtype == dtype
    assert rel_err(fast, canonical) < (1e-6 if dtype == torch.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_write_equals_canonical_and_counts_are_identical(dtype):
    memory, counts, idx, values = filled_table(dtype=dtype)
    canon_mem, canon_counts = memory.clone(), counts.clone()
    torch_ops.write_index_add(canon_mem, canon_counts, idx, values)
    kernels.write(memory, counts, idx, values, backend="torch")
    assert rel_err(memory, canon_mem) < (1e-6 if dtype == torch.float32 else 1e-13)
    assert torch.equal(counts, canon_counts)


@pytest.mark.parametrize("group_rows", [1, 1000, 10**6])  # 1, 3 or all 12 columns per call
def test_column_write_equals_canonical_for_any_grouping(group_rows):
    memory, counts, idx, values = filled_table(B=300, M=12)
    canon_mem, canon_counts = memory.clone(), counts.clone()
    torch_ops.write_index_add(canon_mem, canon_counts, idx, values)
    torch_ops.write_columns(memory, counts, idx, values, group_rows=group_rows)
    assert rel_err(memory, canon_mem) < 1e-6
    assert torch.equal(counts, canon_counts)


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 2**-10), (torch.bfloat16, 2**-7)])
def test_low_precision_storage_reads_in_float32(dtype, tol):
    memory, counts, idx, values = filled_table(dtype=dtype)
    fast = kernels.read(memory, counts, idx, EPS)
    # the canonical read does float32 math on the stored fp16/bf16 values
    canonical = torch_ops.read_gather_mean(memory, counts, idx, EPS)
    assert fast.dtype == canonical.dtype == torch.float32
    assert rel_err(fast, canonical) < 1e-6
    # the stored table itself is only as precise as its dtype
    reference, ref_counts, _, _ = filled_table(dtype=torch.float32)
    stored_read = torch_ops.read_gather_mean(reference, ref_counts, idx, EPS)
    assert 0 < rel_err(fast, stored_read) < tol


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 2**-9), (torch.bfloat16, 2**-6)])
def test_low_precision_write_matches_canonical_within_storage_precision(dtype, tol):
    memory, counts, idx, values = filled_table(dtype=dtype)
    canon_mem, canon_counts = memory.clone(), counts.clone()
    torch_ops.write_index_add(canon_mem, canon_counts, idx, values)
    kernels.write(memory, counts, idx, values)
    assert rel_err(memory, canon_mem) < tol
    assert torch.equal(counts, canon_counts)


def test_memory_with_half_storage_round_trips_and_keeps_exact_counts():
    D, d = 1 << 18, 32  # 160 slots in 262k: no collisions, so reads return the values
    mem = BBPMMemoryFloat(D, d, 8, 2, GlobalAffineHash(D), dtype=torch.float16)
    keys, values = torch.arange(10), torch.randn(10, d)
    for _ in range(3):
        mem.write(keys, values)
    out = mem.read(keys)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, values, rtol=2e-3, atol=2e-3)
    assert mem.counts.dtype == torch.float32
    # integers (3 writes per key; a slot shared by two of a key's hashes counts 6)
    assert set(mem.counts.unique().tolist()) <= {0.0, 3.0, 6.0, 9.0}
    assert float(mem.counts.sum()) == 3 * 10 * 8 * 2


def test_float32_counts_are_exact_up_to_2_pow_24():
    limit = torch_ops.EXACT_COUNT_LIMIT[torch.float32]
    memory, counts = torch.zeros(3, 2), torch.full((3, 1), float(limit - 2))
    idx = torch.tensor([[0, 0], [1, 1]])  # slot 0 and slot 1 each hit twice
    kernels.write(memory, counts, idx, torch.ones(2, 2))
    assert counts[0, 0].item() == limit  # 2**24 - 2 + 2: still exact
    kernels.write(memory, counts, torch.tensor([[0]]), torch.ones(1, 2))
    assert counts[0, 0].item() == limit  # 2**24 + 1 is not a float32: the +1 is lost


# ------------------------------------------------------------------ edge cases
def test_duplicate_slots_and_repeated_keys_within_a_batch_add_up():
    memory, counts = torch.zeros(10, 3), torch.zeros(10, 1)
    idx = torch.tensor([[4, 4, 7], [4, 1, 7], [4, 4, 7]])  # self-collisions and shared slots
    values = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0], [1.0, 2.0, 3.0]])
    kernels.write(memory, counts, idx, values)
    assert counts[:, 0].tolist() == [0, 1, 0, 0, 5, 0, 0, 3, 0, 0]
    torch.testing.assert_close(memory[4], 2 * values[0] + values[1] + 2 * values[2])
    torch.testing.assert_close(memory[7], values.sum(0))
    canonical = torch_ops.read_gather_mean(memory, counts, idx, EPS)
    torch.testing.assert_close(kernels.read(memory, counts, idx, EPS), canonical)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_empty_batch_reads_nothing_and_writes_nothing(dtype):
    memory, counts = torch.ones(8, 4, dtype=dtype), torch.ones(8, 1)
    empty = torch.zeros(0, 3, dtype=torch.int64)
    kernels.write(memory, counts, empty, torch.zeros(0, 4, dtype=dtype))
    assert float(memory.sum()) == 32 and float(counts.sum()) == 8
    out = kernels.read(memory, counts, empty, EPS)
    assert out.shape == (0, 4) and out.dtype == torch.float32
    mem = BBPMMemoryFloat(64, 4, 2, 1, GlobalAffineHash(64))
    assert mem.read(torch.zeros(0, dtype=torch.int64)).shape == (0, 4)


def test_chunked_read_spanning_several_blocks_equals_canonical():
    memory, counts, idx, _ = filled_table(dtype=torch.float64, B=50, M=7)
    out = torch_ops.read_chunked(memory, counts, idx, EPS, chunk_slots=20)  # 2 items per block
    assert rel_err(out, torch_ops.read_gather_mean(memory, counts, idx, EPS)) < 1e-13


def _largest_allocation(fn) -> int:
    """Bytes of the largest CPU allocation made by one op inside ``fn``."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(event.cpu_memory_usage for event in prof.events())


def test_fused_read_never_allocates_the_gathered_slots():
    D, d, B, M = 5000, 64, 256, 64
    memory, counts, idx, _ = filled_table(D=D, d=d, B=B, M=M)
    gathered_bytes = B * M * d * 4
    # the check can fail: the canonical read does allocate [B, M, d]
    assert (
        _largest_allocation(lambda: torch_ops.read_gather_mean(memory, counts, idx, EPS))
        >= gathered_bytes
    )
    assert _largest_allocation(lambda: kernels.read(memory, counts, idx, EPS)) <= 2 * B * d * 4
    half = memory.half()
    chunked = _largest_allocation(
        lambda: torch_ops.read_chunked(half, counts, idx, EPS, chunk_slots=1024)
    )
    assert chunked <= 1024 * d * 4


# ------------------------------------------------------------------ gradients
def test_gradcheck_fused_read_wrt_memory():
    memory, counts, idx, _ = filled_table(D=40, d=3, B=6, M=4, dtype=torch.float64)
    memory.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda m: kernels.read(m, counts, idx, EPS), (memory,))


def test_gradcheck_chunked_read_wrt_memory():
    memory, counts, idx, _ = filled_table(D=40, d=3, B=6, M=4, dtype=torch.float64)
    memory.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda m: torch_ops.read_chunked(m, counts, idx, EPS, chunk_slots=8), (memory,)
    )


def test_gradcheck_read_wrt_written_values():
    D, d, K, H = 50, 3, 3, 2
    keys = torch.tensor([1, 2, 3, 2])  # a repeated key: its two values share the slots

    def write_then_read(values):
        mem = BBPMMemoryFloat(D, d, K, H, GlobalAffineHash(D), dtype=torch.float64)
        mem.write(keys, values)
        return mem.read(keys[:3])

    values = torch.randn(4, d, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(write_then_read, (values,))


def test_clear_after_a_gradient_write_releases_the_graph():
    mem = BBPMMemoryFloat(64, 3, 2, 1, GlobalAffineHash(64))
    values = torch.randn(4, 3, requires_grad=True)
    mem.write(torch.arange(4), values)
    assert mem.memory.grad_fn is not None  # the table is a graph output until clear()
    mem.clear()
    assert mem.memory.grad_fn is None and not mem.memory.requires_grad
    assert not mem.memory.any() and not mem.counts.any()
    assert "memory" in dict(mem.named_buffers())
    mem.write(torch.arange(4), values.detach())  # a plain write again (fast path)
    assert torch.allclose(mem.read(torch.arange(4)), values.detach(), atol=1e-6)


def test_gradients_reach_exactly_the_addressed_rows():
    memory, counts, idx, _ = filled_table(D=500, d=8, B=5, M=6)
    memory.requires_grad_(True)
    kernels.read(memory, counts, idx, EPS).sum().backward()
    rows_with_grad = set(torch.nonzero(memory.grad.abs().sum(1)).flatten().tolist())
    assert rows_with_grad == set(idx.flatten().tolist())


# ------------------------------------------------------------------ dispatch and imports
def test_cpu_tensors_use_the_embedding_bag_read_and_the_native_write():
    memory, counts, idx, values = filled_table()
    import importlib.util

    assert kernels.HAS_TRITON == (importlib.util.find_spec("triton") is not None)
    assert kernels.read_backend(memory, counts) == "torch"
    expected = "native" if kernels.native.available() else "torch"
    assert kernels.write_backend(memory, counts, values) == expected
    assert kernels.write_backend(memory.half(), counts, values.half()) == "torch"


def test_triton_entry_points_fail_clearly_without_triton(monkeypatch):
    monkeypatch.setattr(triton_ops, "HAS_TRITON", False)  # as on an install without triton
    monkeypatch.setattr(kernels, "HAS_TRITON", False)
    memory, counts, idx, values = filled_table()
    assert not triton_ops.supports_read(memory, counts)
    with pytest.raises(RuntimeError, match="triton"):
        triton_ops.read_fused(memory, counts, idx, EPS)
    with pytest.raises(RuntimeError, match="triton"):
        kernels.read(memory, counts, idx, EPS, backend="triton")


def test_bad_backend_and_shapes_are_rejected():
    memory, counts, idx, values = filled_table()
    with pytest.raises(ValueError, match="backend"):
        kernels.read(memory, counts, idx, EPS, backend="fast")
    with pytest.raises(ValueError, match="idx"):
        kernels.write(memory, counts, idx.int(), values)
    with pytest.raises(ValueError, match="counts"):
        kernels.read(memory, counts[:10], idx, EPS)


def test_bench_cli_prints_speedups_and_errors(capsys):
    assert (
        bbpm_bench.main(["--D", "4096", "--d", "8", "--K", "4", "--B", "64", "--repeats", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert "read" in out and "write" in out and "speedup" in out and "max rel err" in out
    result = bbpm_bench.compare_paths(D=4096, d=8, K=4, B=64, repeats=1)
    assert (
        result["read_rel_error"] < 1e-5
        and result["write_rel_error"] < 1e-5
        and result["counts_equal"]
    )


# ------------------------------------------------------------------ Triton / CUDA
@needs_cuda_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_triton_read_on_cuda_equals_cpu_canonical(dtype):
    memory, counts, idx, _ = filled_table(D=5000, d=72, B=400, M=24, dtype=dtype)
    assert kernels.read_backend(memory.cuda(), counts.cuda()) == "triton"
    out = kernels.read(memory.cuda(), counts.cuda(), idx.cuda(), EPS).cpu()
    assert rel_err(out, torch_ops.read_gather_mean(memory, counts, idx, EPS)) < 1e-6


@needs_cuda_triton
def test_triton_write_on_cuda_equals_cpu_canonical():
    memory, counts, idx, values = filled_table(D=5000, d=72, B=400, M=24)
    gpu = [t.cuda() for t in (memory, counts, idx, values)]
    assert kernels.write_backend(gpu[0], gpu[1], gpu[3]) == "triton"
    kernels.write(*gpu)
    torch_ops.write_index_add(memory, counts, idx, values)
    assert rel_err(gpu[0].cpu(), memory) < 1e-6
    assert torch.equal(gpu[1].cpu(), counts)


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_torch_fast_paths_on_cuda_equal_cpu_canonical(dtype):
    memory, counts, idx, values = filled_table(D=5000, d=40, B=400, M=24, dtype=dtype)
    gpu = [t.cuda() for t in (memory, counts, idx, values)]
    out = kernels.read(gpu[0], gpu[1], gpu[2], EPS, backend="torch").cpu()
    assert rel_err(out, torch_ops.read_gather_mean(memory, counts, idx, EPS)) < 1e-5
    kernels.write(*gpu, backend="torch")
    torch_ops.write_index_add(memory, counts, idx, values)
    low_precision = dtype in (torch.float16, torch.bfloat16)
    assert rel_err(gpu[0].cpu(), memory) < (2**-6 if low_precision else 1e-5)
    assert torch.equal(gpu[1].cpu(), counts)


@needs_cuda
def test_read_on_cuda_keeps_gradients_wrt_memory():
    memory, counts, idx, _ = filled_table(D=500, d=8, B=5, M=6, device="cuda")
    memory.requires_grad_(True)
    assert kernels.read_backend(memory, counts) == "torch"  # triton kernel has no backward
    kernels.read(memory, counts, idx, EPS).sum().backward()
    rows_with_grad = set(torch.nonzero(memory.grad.abs().sum(1)).flatten().tolist())
    assert rows_with_grad == set(idx.flatten().tolist())
