"""Triton kernels for CUDA: the fused read and the scatter-add write.

Importing this module never fails: without triton, :data:`HAS_TRITON` is False and the
entry points raise ``RuntimeError``. :mod:`bbpm.memory.kernels` calls them only for CUDA
tensors of supported dtypes (see :func:`supports_read` / :func:`supports_write`).

* ``_read_kernel``: one program per (item b, block of ``BLOCK_D`` columns). It loads the
  item's slot ids ``BLOCK_M`` at a time, gathers their counts and ``[BLOCK_M, BLOCK_D]``
  rows (any float storage, upcast to float32), adds ``rows / (counts + eps)`` into a float32
  accumulator and stores ``acc / M``: the canonical read, with no ``[B, M, d]`` tensor.
* ``_write_kernel``: one program per (item b, block of columns); it loads the value row once
  and ``atomic_add``-s it into the item's M slots (duplicates add up, as ``index_add_``
  does); the column-block-0 program also adds 1 to each slot's count.

Float atomics make the order of additions (hence the last bits of a slot shared by
several items) vary from run to run; counts are integers and stay exact below 2**24.
"""

from __future__ import annotations

import torch

try:  # triton is optional: CPU installs and macOS have none
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the install
    triton = None
    tl = None
    HAS_TRITON = False

#: Storage dtypes each kernel handles (others fall back to the torch fast paths).
READ_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
WRITE_DTYPES = (torch.float32,)

if HAS_TRITON:

    @triton.jit
    def _read_kernel(
        memory_ptr,
        counts_ptr,
        idx_ptr,
        out_ptr,
        M,
        d,
        stride_memory,
        stride_counts,
        stride_idx,
        stride_out,
        eps,
        BLOCK_M: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        item = tl.program_id(0).to(tl.int64)
        cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        col_mask = cols < d
        acc = tl.zeros([BLOCK_D], dtype=tl.float32)
        for first in range(0, M, BLOCK_M):
            offs = first + tl.arange(0, BLOCK_M)
            slot_mask = offs < M
            slots = tl.load(idx_ptr + item * stride_idx + offs, mask=slot_mask, other=0).to(
                tl.int64
            )
            slot_counts = tl.load(counts_ptr + slots * stride_counts, mask=slot_mask, other=1.0).to(
                tl.float32
            )
            rows = tl.load(
                memory_ptr + slots[:, None] * stride_memory + cols[None, :],
                mask=slot_mask[:, None] & col_mask[None, :],
                other=0.0,
            ).to(tl.float32)
            acc += tl.sum(rows / (slot_counts[:, None] + eps), axis=0)
        tl.store(out_ptr + item * stride_out + cols, acc / M, mask=col_mask)

    @triton.jit
    def _write_kernel(
        memory_ptr,
        counts_ptr,
        idx_ptr,
        values_ptr,
        M,
        d,
        stride_memory,
        stride_counts,
        stride_idx,
        stride_values,
        BLOCK_M: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        item = tl.program_id(0).to(tl.int64)
        col_block = tl.program_id(1)
        cols = col_block * BLOCK_D + tl.arange(0, BLOCK_D)
        col_mask = cols < d
        value = tl.load(values_ptr + item * stride_values + cols, mask=col_mask, other=0.0)
        tile = tl.zeros([BLOCK_M, BLOCK_D], dtype=value.dtype) + value[None, :]
        for first in range(0, M, BLOCK_M):
            offs = first + tl.arange(0, BLOCK_M)
            slot_mask = offs < M
            slots = tl.load(idx_ptr + item * stride_idx + offs, mask=slot_mask, other=0).to(
                tl.int64
            )
            tl.atomic_add(
                memory_ptr + slots[:, None] * stride_memory + cols[None, :],
                tile,
                mask=slot_mask[:, None] & col_mask[None, :],
            )
            if col_block == 0:
                tl.atomic_add(
                    counts_ptr + slots * stride_counts,
                    tl.full([BLOCK_M], 1.0, dtype=tl.float32),
                    mask=slot_mask,
                )


def _blocks(M: int, d: int) -> tuple[int, int]:
    """Tile sizes: up to 16 slots x 128 columns per step (powers of two, as tl.arange needs)."""
    block_m = min(16, triton.next_power_of_2(max(M, 1)))
    block_d = min(128, triton.next_power_of_2(max(d, 1)))
    return block_m, block_d


def _require_triton() -> None:
    if not HAS_TRITON:
        raise RuntimeError(
            "triton is not installed; use bbpm.memory.kernels.read/write, which fall back to torch"
        )


def supports_read(memory: torch.Tensor, counts: torch.Tensor) -> bool:
    """True when :func:`read_fused` handles these buffers: CUDA, rows contiguous,
    fp32/fp16/bf16 storage with float32 counts."""
    return (
        HAS_TRITON
        and memory.is_cuda
        and memory.dtype in READ_DTYPES
        and counts.dtype == torch.float32
        and memory.dim() == 2
        and memory.stride(1) == 1
    )


def supports_write(memory: torch.Tensor, counts: torch.Tensor, values: torch.Tensor) -> bool:
    """True when :func:`write_fused` handles these buffers: CUDA, rows contiguous, float32
    storage, counts and values (float atomics in other dtypes are not on every GPU)."""
    return (
        HAS_TRITON
        and memory.is_cuda
        and memory.dtype in WRITE_DTYPES
        and counts.dtype == torch.float32
        and values.dtype == memory.dtype
        and memory.dim() == 2
        and memory.stride(1) == 1
    )


def read_fused(
    memory: torch.Tensor, counts: torch.Tensor, idx: torch.Tensor, eps: float
) -> torch.Tensor:
    """Fused read on CUDA, ``[B, d]`` float32. ``memory [D, d]``, ``counts [D, 1]``,
    ``idx [B, M]`` int64. Not differentiable (the dispatcher uses ``embedding_bag`` when
    gradients are needed)."""
    _require_triton()
    idx = idx.contiguous()
    B, M = idx.shape
    d = memory.shape[1]
    out = torch.empty(B, d, dtype=torch.float32, device=memory.device)
    if B == 0:
        return out
    block_m, block_d = _blocks(M, d)
    grid = (B, triton.cdiv(d, block_d))
    _read_kernel[grid](
        memory,
        counts,
        idx,
        out,
        M,
        d,
        memory.stride(0),
        counts.stride(0),
        idx.stride(0),
        out.stride(0),
        float(eps),
        BLOCK_M=block_m,
        BLOCK_D=block_d,
    )
    return out


def write_fused(
    memory: torch.Tensor, counts: torch.Tensor, idx: torch.Tensor, values: torch.Tensor
) -> None:
    """Scatter-add write on CUDA: ``memory[idx[b, j]] += values[b]`` and
    ``counts[idx[b, j]] += 1`` for all b, j, with float atomics (in place)."""
    _require_triton()
    idx = idx.contiguous()
    values = values.contiguous()
    B, M = idx.shape
    d = memory.shape[1]
    if B == 0:
        return
    block_m, block_d = _blocks(M, d)
    grid = (B, triton.cdiv(d, block_d))
    _write_kernel[grid](
        memory,
        counts,
        idx,
        values,
        M,
        d,
        memory.stride(0),
        counts.stride(0),
        idx.stride(0),
        values.stride(0),
        BLOCK_M=block_m,
        BLOCK_D=block_d,
    )


__all__ = [
    "HAS_TRITON",
    "READ_DTYPES",
    "WRITE_DTYPES",
    "read_fused",
    "supports_read",
    "supports_write",
    "write_fused",
]
