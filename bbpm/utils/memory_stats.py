"""Measuring what the allocator hands out: storage bytes, free RAM, and where a growing size
crosses a constant one (exp04)."""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Sequence

import torch


def storage_bytes(*tensors: torch.Tensor) -> int:
    """Bytes of the storage behind the tensors (what the allocator really handed out)."""
    return sum(t.untyped_storage().nbytes() for t in tensors)


def available_ram_bytes() -> int | None:
    """Memory the OS could still hand to this process (psutil, else /proc/meminfo)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        try:
            with open("/proc/meminfo") as meminfo:
                fields = dict(line.split(":", 1) for line in meminfo)
            return int(fields["MemAvailable"].split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            return None


def release_freed_memory() -> None:
    """Collect garbage and give freed heap pages back to the OS (glibc ``malloc_trim``), so
    the next resident-memory reading starts from a clean baseline."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def crossing(
    xs: Sequence[float], ys: Sequence[float], level: float
) -> tuple[float | None, float | None]:
    """Where an increasing series ``ys`` over the grid ``xs`` first exceeds ``level``:
    ``(grid x, linearly interpolated x)``. ``(None, None)`` when it never does on the grid;
    ``(xs[0], None)`` when it is already above at the first point (the crossing lies below
    the grid)."""
    above = [y > level for y in ys]
    if not any(above):
        return None, None
    i = above.index(True)
    if i == 0:
        return xs[0], None
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return xs[i], x0 + (level - y0) * (x1 - x0) / (y1 - y0)
