"""The Triton kernels compile for Hopper (compute capability 9.0, the H100/H200) on this
machine, without a GPU, through Triton's ahead-of-time path (triton_ops.compile_report),
and the machine code has the properties the kernels rely on. Skipped without triton.

These pin codegen facts of the triton version in constraints.txt: a newer triton that
spills registers or stops vectorising the row loads fails here, before any GPU run."""

import pytest
import torch

from bbpm.memory.kernels import triton_ops

pytestmark = [
    pytest.mark.skipif(not triton_ops.HAS_TRITON, reason="needs triton"),
    pytest.mark.skipif(triton_ops.interpreted(), reason="needs the compiled kernels"),
]


def buffers(dtype=torch.float32, d=64, M=32):
    """Stand-ins with the issue's shapes (d = 64, K*H = 32); only strides, dtypes and
    alignment matter to the compile."""
    memory = torch.zeros(1024, d, dtype=dtype)
    counts = torch.zeros(1024, 1)
    idx = torch.zeros(4, M, dtype=torch.int64)
    return memory, counts, idx, torch.zeros(4, d, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("block_m, num_warps", [(None, None), (32, 8)])
def test_read_kernel_compiles_for_sm90_without_spills(dtype, block_m, num_warps):
    memory, counts, idx, _ = buffers(dtype)
    report = triton_ops.compile_report(
        "read", memory, counts, idx, block_m=block_m, num_warps=num_warps
    )
    assert report["cubin_bytes"] > 0 and report["capability"] == 90
    assert report["BLOCK_M"] == (block_m or 16) and report["BLOCK_D"] == 64
    assert report["local_bytes"] == 0 and report["stack_bytes"] == 0  # no register spills
    assert 0 < report["registers"] <= 128
    assert report["sass"].get("LDG.E.128", 0) > 0  # rows gathered 16 bytes per load
    assert not any(op.startswith(("RED", "ATOM")) for op in report["sass"])


@pytest.mark.parametrize("block_m, num_warps", [(None, None), (8, 2), (32, 8)])
def test_write_kernel_compiles_to_no_return_reductions(block_m, num_warps):
    memory, counts, idx, values = buffers()
    report = triton_ops.compile_report(
        "write", memory, counts, idx, values, block_m=block_m, num_warps=num_warps
    )
    assert report["local_bytes"] == 0 and report["stack_bytes"] == 0
    ops = report["sass"]
    assert any(op.startswith("REDG.E.ADD.F32x4") for op in ops)  # fire-and-forget, 4 floats each
    assert not any(op.startswith("ATOM") for op in ops)  # no atomics that return a value


def test_compile_report_rejects_bad_arguments():
    memory, counts, idx, values = buffers()
    with pytest.raises(ValueError, match="op must be"):
        triton_ops.compile_report("gather", memory, counts, idx)
    with pytest.raises(ValueError, match="values is required"):
        triton_ops.compile_report("write", memory, counts, idx)
    with pytest.raises(ValueError, match="memory"):
        triton_ops.compile_report("write", memory.double(), counts, idx, values.double())
