"""Plain torch ops: the canonical BBPM write and read, and fast paths built from library ops.

``write_index_add`` and ``read_gather_mean`` are the canonical definitions, line by line;
every fast path is tested against them. The fast paths compute the same sums with
well-kept torch ops that never materialise the ``[B, M, d]`` tensor of gathered slots:

* :func:`read_embedding_bag`: ``embedding_bag(idx, memory, per_sample_weights=w, mode="sum")``
  with ``w = 1 / ((counts[idx] + eps) * M)`` fuses gather, debias and mean (extra memory
  ``O(B*M)`` weights plus the ``[B, d]`` output). Differentiable w.r.t. ``memory``.
* :func:`read_chunked`: fp16/bf16 storage. ``embedding_bag`` would need the weights in the
  storage dtype (rounding ``1/count`` to 8-11 bits); instead blocks of at most
  ``chunk_slots`` gathered rows are upcast and reduced in float32 (extra memory bounded by
  the block, independent of B).
* :func:`write_columns`: ``index_add_`` of the ``[B, d]`` values per slot column
  ``idx[:, j]`` (a few columns per call for small batches) instead of repeating every value
  ``M`` times first.

Counts are float tensors holding integers: float32 counts are exact up to ``2**24`` writes
per slot (float64: ``2**53``); past that, ``+1`` is lost to rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bbpm.memory.base import EPS, out_of_range_slot

#: Largest write count per slot that float32 / float64 counts hold exactly.
EXACT_COUNT_LIMIT = {torch.float32: 2**24, torch.float64: 2**53}

#: Gathered rows per block in :func:`read_chunked` (bounds its extra memory).
CHUNK_SLOTS = 32768
#: Minimum value rows per ``index_add_`` call in :func:`write_columns` (small batches add
#: several slot columns per call).
GROUP_ROWS = 8192


# ---------------------------------------------------------------------------- canonical
def check_slot_range(idx: torch.Tensor, D: int) -> None:
    """``IndexError`` naming the extreme slot id when one of ``idx`` is outside ``[0, D)``
    (one reduction; on CUDA one device sync). Run before anything is read or written."""
    bad = out_of_range_slot(idx, D)
    if bad is not None:
        raise IndexError(
            f"idx holds slot id {bad}, outside [0, D={D}); nothing was read or written"
        )


def write_index_add(
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    values: torch.Tensor,
    count_step: float = 1.0,
) -> None:
    """Canonical write: each value row is repeated K*H times and added with ``index_add_``;
    every addressed slot's count grows by ``count_step`` (1 by default; a decayed memory's
    write weight), a slot hit twice twice.

    Args:
        memory: ``[D, d]``, updated in place.
        counts: ``[D, 1]``, updated in place.
        idx: ``[B, M]`` int64 slot ids, ``M = K*H``.
        values: ``[B, d]``, already scaled and cast to ``memory.dtype``.
    """
    flat = idx.reshape(-1)
    slots_per_item = idx.shape[1]
    memory.index_add_(0, flat, values.repeat_interleave(slots_per_item, dim=0))
    counts.index_add_(
        0, flat, torch.full((flat.numel(), 1), count_step, dtype=counts.dtype, device=counts.device)
    )


def read_gather_mean(
    memory: torch.Tensor, counts: torch.Tensor, idx: torch.Tensor, eps: float = EPS
) -> torch.Tensor:
    """Canonical read: gather ``[B, M, d]`` slots and ``[B, M, 1]`` counts, debias each slot
    by ``memory / (counts + eps)`` and average over the M slots. Returns ``[B, d]``."""
    gathered = memory[idx]
    slot_counts = counts[idx]
    return (gathered / (slot_counts + eps)).mean(dim=1)


# ---------------------------------------------------------------------------- fast paths
def read_dtype(memory: torch.Tensor, counts: torch.Tensor) -> torch.dtype:
    """The dtype the canonical read returns: ``memory / counts`` type promotion
    (float32 for fp16/bf16 storage with float32 counts)."""
    return torch.promote_types(memory.dtype, counts.dtype)


def slot_weights(
    counts: torch.Tensor, idx: torch.Tensor, eps: float = EPS, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``[B, M]`` pooling weights ``1 / ((counts[idx] + eps) * M)``, computed in ``dtype``
    (default: the counts' dtype); ``counts + eps`` is formed in the counts' dtype, as in
    the canonical read."""
    debias = counts[:, 0].index_select(0, idx.reshape(-1)).view(idx.shape) + eps
    return 1.0 / (debias.to(dtype or counts.dtype) * idx.shape[1])


def read_embedding_bag(
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    eps: float = EPS,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused read, ``[B, d]``: one ``embedding_bag`` gathers, weights and sums the M slots of
    each item without building ``[B, M, d]``. fp16/bf16 storage goes to :func:`read_chunked`
    (float32 accumulation). Equals :func:`read_gather_mean` up to float rounding.
    ``weights``: the :func:`slot_weights` of ``idx`` if already computed (``kernels.read``
    passes the C kernel's, the same bits)."""
    if memory.dtype in (torch.float16, torch.bfloat16):
        return read_chunked(memory, counts, idx, eps)
    out_dtype = read_dtype(memory, counts)
    if idx.shape[0] == 0:
        return memory.new_zeros(0, memory.shape[1], dtype=out_dtype)
    if weights is None:
        weights = slot_weights(counts, idx, eps, dtype=memory.dtype)
    out = F.embedding_bag(idx, memory, per_sample_weights=weights, mode="sum")
    return out if out.dtype == out_dtype else out.to(out_dtype)


def read_chunked(
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    eps: float = EPS,
    chunk_slots: int = CHUNK_SLOTS,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Read with float32 (or wider) accumulation for low-precision storage, ``[B, d]``.

    Items are processed in blocks of ``max(1, chunk_slots // M)``; each block's gathered
    rows are upcast once and reduced with a batched ``weights @ rows`` product, so the
    extra memory is about ``chunk_slots * d`` floats whatever B is. ``weights``: ``[B, M]``
    slot weights in the accumulation dtype (default: the count-debiased mean's)."""
    B, M = idx.shape
    acc_dtype = read_dtype(memory, counts)
    if B == 0:
        return memory.new_zeros(0, memory.shape[1], dtype=acc_dtype)
    if weights is None:
        weights = slot_weights(counts, idx, eps, dtype=acc_dtype)
    items_per_block = max(1, chunk_slots // M)
    blocks = []
    for start in range(0, B, items_per_block):
        block_idx = idx[start : start + items_per_block]
        rows = (
            memory.index_select(0, block_idx.reshape(-1))
            .view(block_idx.shape[0], M, -1)
            .to(acc_dtype)
        )
        blocks.append(torch.bmm(weights[start : start + items_per_block, None, :], rows)[:, 0])
    if len(blocks) == 1:
        return blocks[0]
    # concatenating the blocks (not writing into a preallocated output) keeps autograd simple
    return torch.cat(blocks, dim=0)


def add_counts(counts: torch.Tensor, idx: torch.Tensor, step: float = 1.0) -> None:
    """``counts[idx] += step`` for every entry of ``idx`` (duplicates add twice), without
    allocating a ``[B*M, 1]`` tensor (the steps are an expanded scalar)."""
    flat = idx.reshape(-1)
    steps = torch.full((), step, dtype=counts.dtype, device=counts.device).expand(flat.numel())
    counts[:, 0].index_add_(0, flat, steps)


def write_columns(
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    values: torch.Tensor,
    group_rows: int = GROUP_ROWS,
    count_step: float = 1.0,
) -> None:
    """Fast write, same result as :func:`write_index_add` up to the order of float additions.

    ``memory.index_add_(0, idx[:, j], values)`` for the M slot columns ``j``: each call reads
    the ``[B, d]`` values straight from their buffer, where the canonical write first copies
    them M times (``B*M*d`` elements on fresh pages, every call). ``index_add_`` accumulates
    duplicate slots, so repeated keys and self-collisions add up as in the canonical write.
    Counts get ``+1`` per entry via :func:`add_counts`.

    Every ``index_add_`` call has a fixed cost, so batches smaller than ``group_rows`` add ``g = group_rows // B``
    columns per call, with the values tiled g times (a buffer of about ``group_rows`` rows).
    Larger ``group_rows`` means fewer calls, which also helps when several torch threads
    compete with other processes for the cores (bench03); ``group_rows=1`` is one column
    per call."""
    B, M = idx.shape
    if B == 0:
        return
    columns = idx.t().contiguous()
    group = max(1, min(M, group_rows // B))
    for first in range(0, M, group):
        block = columns[first : first + group]
        source = values if block.shape[0] == 1 else values.repeat(block.shape[0], 1)
        memory.index_add_(0, block.reshape(-1), source)
    add_counts(counts, idx, count_step)


__all__ = [
    "CHUNK_SLOTS",
    "EXACT_COUNT_LIMIT",
    "GROUP_ROWS",
    "add_counts",
    "read_chunked",
    "read_dtype",
    "read_embedding_bag",
    "read_gather_mean",
    "slot_weights",
    "write_columns",
    "write_index_add",
]
