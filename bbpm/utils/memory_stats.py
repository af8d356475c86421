"""Measuring what the allocator hands out: storage bytes, free RAM, the peak resident memory
of a block of code, and where a growing size crosses a constant one (exp04)."""

from __future__ import annotations

import ctypes
import gc
import os
import threading
from collections.abc import Sequence
from types import TracebackType

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


def resident_bytes() -> int | None:
    """This process's resident memory now (``/proc/self/statm``); None where it is not
    available (not Linux)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PeakResident:
    """Peak resident memory of the process while a ``with`` block runs, above its start.

    A thread samples ``/proc/self/statm`` every ``interval`` seconds (and once at the end);
    ``peak_bytes`` is the highest sample minus the resident memory at the start, measured after
    :func:`release_freed_memory`. Large torch CPU tensors are ``mmap``-ed and returned to the OS
    when freed, so the reading follows the block's live tensors to within the sampling interval;
    a peak shorter than the interval can be missed. ``peak_bytes`` is None where resident memory
    cannot be read.

    >>> with PeakResident() as peak:
    ...     block = torch.ones(1 << 24)  # 64 MiB
    >>> peak.peak_bytes is None or peak.peak_bytes >= 60 * 2**20
    True
    """

    def __init__(self, interval: float = 0.002) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.interval = interval
        self.start_bytes: int | None = None
        self.peak_bytes: int | None = None
        self._high = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._high = max(self._high, resident_bytes() or 0)

    def __enter__(self) -> PeakResident:
        release_freed_memory()
        self.start_bytes = resident_bytes()
        if self.start_bytes is not None:
            self._high = self.start_bytes
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._thread is not None:
            self._high = max(self._high, resident_bytes() or 0)
            self._stop.set()
            self._thread.join()
            self.peak_bytes = self._high - (self.start_bytes or 0)


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
