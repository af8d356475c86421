"""Wall-clock timing that is honest on CUDA (synchronises before reading the clock)."""

from __future__ import annotations

import time

import torch


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Context manager measuring elapsed seconds.

    >>> with Timer() as t:
    ...     _ = sum(range(1000))
    >>> t.elapsed >= 0.0
    True

    Pass ``device="cuda"`` to synchronise the device on entry and exit, so queued
    kernels are counted.
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = device
        self.start: float | None = None
        self.elapsed: float = 0.0

    def __enter__(self) -> Timer:
        _sync(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        _sync(self.device)
        assert self.start is not None
        self.elapsed = time.perf_counter() - self.start
