"""Read/write kernels behind one call. ``read`` and ``write`` pick the fastest available
path for the tensors' device; every path equals :mod:`torch_ops`' canonical definition."""

from __future__ import annotations

import torch

from bbpm.memory.base import EPS
from bbpm.memory.kernels import torch_ops


def write(memory: torch.Tensor, counts: torch.Tensor, idx: torch.Tensor, values: torch.Tensor) -> None:
    """Add ``values [B, d]`` into the ``idx [B, M]`` slots and bump their counts."""
    torch_ops.write_index_add(memory, counts, idx, values)


def read(memory: torch.Tensor, counts: torch.Tensor, idx: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Count-debiased mean over the ``idx [B, M]`` slots, ``[B, d]``."""
    return torch_ops.read_gather_mean(memory, counts, idx, eps)


__all__ = ["read", "torch_ops", "write"]
