"""Device selection helpers."""

from __future__ import annotations

import torch


def get_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Resolve a device name.

    Args:
        preference: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or a ``torch.device``.

    Raises:
        ValueError: CUDA was asked for but is not available.
    """
    if preference is None or preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={preference!r} was requested but CUDA is not available; "
            "use device='cpu' or 'auto'"
        )
    return device


def device_name(device: torch.device | str) -> str:
    """A human-readable name for reports: the GPU model on CUDA, the CPU otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine() or "cpu"


def rss_bytes() -> int | None:
    """Resident set size of this process in bytes (psutil, else /proc; None where neither exists)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        import os

        try:
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return None
