"""Shared checks for the peer memories (the interface is :class:`bbpm.memory.base.AssociativeMemory`)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from bbpm.hashing.base import check_positive_int
from bbpm.memory.base import check_keys_on, check_values, to_storage


def check_budget(nbytes: Any, minimum: int, what: str) -> int:
    """Return the byte budget as int, or raise when it cannot hold ``minimum`` bytes (``what``
    names the smallest unit, e.g. "one bank of 8*d bytes")."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, numbers.Integral):
        raise TypeError(
            f"nbytes must be an int number of bytes, got {type(nbytes).__name__} {nbytes!r}"
        )
    if nbytes < minimum:
        raise ValueError(
            f"nbytes={nbytes} is too small: the memory needs at least {minimum} bytes ({what}); raise the budget"
        )
    return int(nbytes)


def check_positive_finite(name: str, value: Any) -> float:
    """Return ``value`` as float, or raise naming ``name`` unless it is a finite number > 0
    (Python or NumPy ints and floats; not bool, not a tensor, NaN or inf)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a positive finite number, got {type(value).__name__} {value!r}"
        )
    if not math.isfinite(float(value)) or not float(value) > 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_float_dtype(dtype: Any) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"dtype must be a floating torch.dtype such as torch.float32, got {dtype!r}"
        )
    return dtype


def float_itemsize(dtype: Any) -> int:
    """Bytes per element of a floating dtype (validated by :func:`check_float_dtype`)."""
    return torch.empty((), dtype=check_float_dtype(dtype)).element_size()


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    return int(seed)


def check_write(
    keys: Any, values: Any, d: int, device: torch.device, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``keys: [B]`` int64 and ``values: [B, d]`` floating, finite, on ``device``.
    With ``dtype`` (the memory's storage dtype) the values come back cast to it, checked
    after the cast: a value too large for that dtype raises ``OverflowError`` instead of
    being stored as inf (see :func:`bbpm.memory.base.to_storage`)."""
    keys = check_keys_on(keys, device)
    values = check_values(values, keys, d, check_finite=dtype is None)
    if dtype is not None:
        values = to_storage(values, 1.0, dtype)
    return keys, values


def check_read(keys: Any, device: torch.device) -> torch.Tensor:
    return check_keys_on(keys, device)


class ReportsNonfinite:
    """For peers whose cells accumulate sums (count sketch, FHRR, fly-hash): every written
    value is checked against the storage dtype, but a cell's sum can still pass its largest
    finite number after many large writes. Such a write is not refused; it is reported by
    :meth:`nonfinite_slots`, and a read of the cell returns inf/NaN rather than a finite
    wrong number. ``_sum_buffers`` names the buffers (same shape, last dimension ``d``)."""

    _sum_buffers: tuple[str, ...] = ()

    @torch.no_grad()
    def nonfinite_slots(self) -> int:
        """Number of cells (rows of ``d`` numbers; for FHRR a bank's real and imaginary
        parts together) holding inf or NaN; 0 when every sum is finite."""
        bad = None
        for name in self._sum_buffers:
            table = getattr(self, name)
            rows = ~torch.isfinite(table.reshape(-1, table.shape[-1])).all(dim=1)
            bad = rows if bad is None else bad | rows
        return 0 if bad is None else int(bad.sum())


__all__ = [
    "ReportsNonfinite",
    "check_budget",
    "check_float_dtype",
    "check_positive_finite",
    "check_positive_int",
    "check_read",
    "check_seed",
    "check_write",
]
