"""Plain torch reference ops: the canonical BBPM write and read, line by line.

These are the definitions every fast path is tested against.
"""

from __future__ import annotations

import torch

from bbpm.memory.base import EPS


def write_index_add(memory: torch.Tensor, counts: torch.Tensor, idx: torch.Tensor, values: torch.Tensor) -> None:
    """Canonical write: each value row is repeated K*H times and added with ``index_add_``;
    every addressed slot's count grows by 1 (a slot hit twice counts twice).

    Args:
        memory: ``[D, d]``, updated in place.
        counts: ``[D, 1]``, updated in place.
        idx: ``[B, M]`` int64 slot ids, ``M = K*H``.
        values: ``[B, d]``, already scaled and cast to ``memory.dtype``.
    """
    flat = idx.reshape(-1)
    slots_per_item = idx.shape[1]
    memory.index_add_(0, flat, values.repeat_interleave(slots_per_item, dim=0))
    counts.index_add_(0, flat, torch.ones(flat.numel(), 1, dtype=counts.dtype, device=counts.device))


def read_gather_mean(memory: torch.Tensor, counts: torch.Tensor, idx: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Canonical read: gather ``[B, M, d]`` slots and ``[B, M, 1]`` counts, debias each slot
    by ``memory / (counts + eps)`` and average over the M slots. Returns ``[B, d]``."""
    gathered = memory[idx]
    slot_counts = counts[idx]
    return (gathered / (slot_counts + eps)).mean(dim=1)
