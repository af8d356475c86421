"""The Triton kernels, run on CPU tensors by Triton's interpreter, equal the canonical
definition (the same kernel source the CUDA path compiles). Skipped without triton.

Triton builds interpreted kernels only when ``TRITON_INTERPRET=1`` is set before triton is
imported (its own library functions, ``tl.sum`` among them, are decorated then), so a plain
``pytest`` runs this file a second time in a subprocess with that variable set
(:func:`test_interpreter_run_of_this_file`). The interpreter runs the programs of a launch
grid one after another in numpy: these tests check the kernels' indexing, masking, tiling
and accumulation, not GPU timing or races."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bbpm.memory import kernels
from bbpm.memory.kernels import torch_ops, triton_ops

EPS = 1e-8
pytestmark = pytest.mark.skipif(not triton_ops.HAS_TRITON, reason="needs triton")
interpreted_only = pytest.mark.triton_interpreter  # deselected outside (tests/conftest.py)
compiled_only = pytest.mark.skipif(
    triton_ops.interpreted(), reason="checks the compiled (not interpreted) kernels"
)


@compiled_only
def test_interpreter_run_of_this_file():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(proc.stdout[-6000:], proc.stderr[-2000:])
    assert proc.returncode == 0, "interpreted Triton kernel tests failed (output above)"
    assert " passed" in proc.stdout and "skipped" in proc.stdout  # this test skips there


def table(D=300, d=40, B=20, M=19, dtype=torch.float32, seed=0):
    """A table after one canonical write of B items, and the next batch's ids and values.
    Every row of ``idx`` repeats one slot id, so duplicates within an item are covered."""
    gen = torch.Generator().manual_seed(seed)
    memory = torch.zeros(D, d, dtype=dtype)
    counts = torch.zeros(D, 1)
    first = torch.randint(0, D, (B, M), generator=gen)
    torch_ops.write_index_add(memory, counts, first, torch.randn(B, d, generator=gen).to(dtype))
    idx = torch.cat([first[: B // 2], torch.randint(0, D, (B - B // 2, M), generator=gen)])
    if M > 1:
        idx[:, -1] = idx[:, 0]
    values = torch.randn(B, d, generator=gen).to(dtype)
    return memory, counts, idx, values


def rel_err(result, reference):
    scale = reference.double().abs().max()
    return float((result.double() - reference.double()).abs().max() / scale)


@interpreted_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "M, d, block_m",
    [(19, 40, None), (32, 64, None), (32, 64, 32), (5, 200, 4), (1, 1, None), (7, 9, 64)],
)
def test_interpreted_read_equals_canonical(dtype, M, d, block_m):
    memory, counts, idx, _ = table(d=d, M=M, dtype=dtype)
    out = triton_ops.read_fused(memory, counts, idx, EPS, block_m=block_m)
    assert out.dtype == torch.float32 and out.shape == (idx.shape[0], d)
    assert rel_err(out, torch_ops.read_gather_mean(memory, counts, idx, EPS)) < 1e-6


@interpreted_only
@pytest.mark.parametrize(
    "M, d, block_m, num_warps",
    [(19, 40, None, None), (32, 64, 8, 2), (5, 200, 4, None), (1, 1, None, 1), (7, 130, 64, 8)],
)
def test_interpreted_write_equals_canonical(M, d, block_m, num_warps):
    memory, counts, idx, values = table(d=d, M=M)
    ref_memory, ref_counts = memory.clone(), counts.clone()
    torch_ops.write_index_add(ref_memory, ref_counts, idx, values)
    triton_ops.write_fused(memory, counts, idx, values, block_m=block_m, num_warps=num_warps)
    assert rel_err(memory, ref_memory) < 1e-6
    # counts: added once per (item, slot) even when d spans several column blocks
    assert torch.equal(counts, ref_counts)


@interpreted_only
def test_interpreted_write_adds_the_count_step_of_a_decayed_memory():
    memory, counts, idx, values = table(d=70, M=19)
    ref_memory, ref_counts = memory.clone(), counts.clone()
    torch_ops.write_index_add(ref_memory, ref_counts, idx, values, count_step=2.5)
    triton_ops.write_fused(memory, counts, idx, values, count_step=2.5)
    assert rel_err(memory, ref_memory) < 1e-6
    assert torch.equal(counts, ref_counts)  # 2.5 per (item, slot), once per column block


@interpreted_only
def test_interpreted_kernels_follow_strides():
    """Rows of a wider buffer, counts as a column of a [D, 2] tensor, idx a transposed view."""
    memory, counts, idx, values = table(d=24, M=8)
    wide = torch.zeros(memory.shape[0], 40)
    wide[:, :24] = memory
    strided_memory = wide[:, :24]
    counts2 = torch.cat([counts, torch.full_like(counts, 7.0)], dim=1)
    strided_counts = counts2[:, :1]
    idx_t = idx.t().contiguous().t()
    assert not idx_t.is_contiguous() and strided_memory.stride(0) == 40
    out = triton_ops.read_fused(strided_memory, strided_counts, idx_t, EPS)
    assert rel_err(out, torch_ops.read_gather_mean(memory, counts, idx, EPS)) < 1e-6
    ref_memory, ref_counts = memory.clone(), counts.clone()
    torch_ops.write_index_add(ref_memory, ref_counts, idx, values)
    triton_ops.write_fused(strided_memory, strided_counts, idx_t, values)
    assert rel_err(strided_memory, ref_memory) < 1e-6
    assert torch.equal(strided_counts, ref_counts)
    assert torch.all(wide[:, 24:] == 0) and torch.all(counts2[:, 1] == 7.0)  # neighbours untouched


@interpreted_only
def test_interpreted_bad_slot_ids():
    """With the check: IndexError and the table untouched. Without: the bad ids are
    skipped, never a write outside the table (guard rows around a row-slice view)."""
    D, d = 50, 8
    buffer = torch.zeros(D + 2, d)
    counts_buffer = torch.zeros(D + 2, 1)
    memory, counts = buffer[1:-1], counts_buffer[1:-1]
    idx = torch.tensor([[0, 3, D], [-1, 4, 4]])
    values = torch.ones(2, d)
    for fn, args in ((triton_ops.write_fused, (values,)), (triton_ops.read_fused, (EPS,))):
        with pytest.raises(IndexError, match=r"outside \[0, D=50\)"):
            fn(memory, counts, idx, *args)
    assert torch.all(buffer == 0) and torch.all(counts_buffer == 0)
    triton_ops.write_fused(memory, counts, idx, values, check_bounds=False)
    assert torch.all(buffer[0] == 0) and torch.all(buffer[-1] == 0)
    assert counts_buffer[0, 0] == 0 and counts_buffer[-1, 0] == 0
    assert counts[[0, 3, 4], 0].tolist() == [1.0, 1.0, 2.0] and counts.sum() == 4
    out = triton_ops.read_fused(memory, counts, idx, EPS, check_bounds=False)
    assert torch.isfinite(out).all()


@interpreted_only
def test_dispatcher_backend_triton_runs_the_kernels():
    """``kernels.read/write(..., backend="triton")`` reach the same kernels (here
    interpreted, on CPU tensors); ``"auto"`` keeps CPU tensors on the CPU paths."""
    memory, counts, idx, values = table(d=16, M=6)
    assert kernels.read_backend(memory, counts) == "torch"
    out = kernels.read(memory, counts, idx, EPS, backend="triton")
    assert rel_err(out, torch_ops.read_gather_mean(memory, counts, idx, EPS)) < 1e-6
    ref_memory, ref_counts = memory.clone(), counts.clone()
    torch_ops.write_index_add(ref_memory, ref_counts, idx, values)
    kernels.write(memory, counts, idx, values, backend="triton")
    assert rel_err(memory, ref_memory) < 1e-6 and torch.equal(counts, ref_counts)


@interpreted_only
def test_interpreted_empty_batch():
    memory, counts, _, _ = table()
    before = memory.clone()
    empty = torch.zeros(0, 5, dtype=torch.int64)
    assert triton_ops.read_fused(memory, counts, empty, EPS).shape == (0, memory.shape[1])
    triton_ops.write_fused(memory, counts, empty, torch.zeros(0, memory.shape[1]))
    assert torch.equal(memory, before)


@interpreted_only
def test_triton_entry_points_reject_bad_arguments_by_name():
    memory, counts, idx, values = table()
    cases = [
        (lambda: triton_ops.read_fused(memory.double(), counts, idx, EPS), "memory"),
        (lambda: triton_ops.read_fused(memory, counts.double(), idx, EPS), "counts"),
        (lambda: triton_ops.read_fused(memory, counts, idx.int(), EPS), "idx"),
        (lambda: triton_ops.read_fused(memory.t(), counts, idx, EPS), "contiguous rows"),
        (lambda: triton_ops.read_fused(memory, counts, idx, EPS, block_m=3), "block_m"),
        (lambda: triton_ops.read_fused(memory, counts, idx, EPS, num_warps=3), "num_warps"),
        (lambda: triton_ops.write_fused(memory.half(), counts, idx, values.half()), "memory"),
        (lambda: triton_ops.write_fused(memory, counts, idx, values.half()), "values"),
        (lambda: triton_ops.write_fused(memory, counts, idx, values[:, :3]), "values"),
    ]
    before = memory.clone(), counts.clone()
    for call, name in cases:
        with pytest.raises(ValueError, match=name):
            call()
    assert torch.equal(memory, before[0]) and torch.equal(counts, before[1])


@compiled_only
def test_compiled_kernels_refuse_cpu_tensors_with_a_clear_error():
    """Outside the interpreter the kernels need CUDA: a ValueError says so and what to use,
    from the module and from the dispatcher's explicit backend='triton'."""
    memory, counts, idx, values = table()
    with pytest.raises(ValueError, match="CUDA"):
        triton_ops.read_fused(memory, counts, idx, EPS)
    with pytest.raises(ValueError, match="CUDA"):
        kernels.write(memory, counts, idx, values, backend="triton")
    assert not triton_ops.supports_read(memory, counts)
    assert kernels.read_backend(memory, counts) == "torch"


@interpreted_only
@pytest.mark.parametrize("rule", ["mean", "inverse_noise"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_interpreted_weighted_read_equals_canonical_rule(rule, dtype):
    """The Triton weighted read with a read rule's weights (duplicate slots in every row)
    equals the rule's canonical gather, and the dispatcher routes rules to it."""
    from bbpm.memory import read_rules

    memory, counts, idx, _ = table(dtype=dtype)
    reference = read_rules.read_reference(memory, counts, idx, rule)
    weights = read_rules.slot_weights(counts, idx, rule, EPS).float()
    assert rel_err(triton_ops.read_weighted(memory, idx, weights, block_m=4), reference) < 1e-6
    routed = kernels.read(memory, counts, idx, EPS, backend="triton", rule=rule)
    assert rel_err(routed, reference) < 1e-6
    with pytest.raises(ValueError, match="weights must be float32"):
        triton_ops.read_weighted(memory, idx, weights.double())
