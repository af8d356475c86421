"""Device selection helpers, and large zeroed tables backed by huge pages where possible."""

from __future__ import annotations

import ctypes
import sys

import torch

#: Linux ``MADV_HUGEPAGE``; 2 MiB is the x86-64 / arm64 transparent huge page size.
_MADV_HUGEPAGE = 14
_HUGE_PAGE = 1 << 21
_libc: ctypes.CDLL | None = None


def advise_huge_pages(tensor: torch.Tensor) -> bool:
    """Ask Linux to back the 2 MiB-aligned part of a CPU tensor's memory with transparent
    huge pages (``madvise(MADV_HUGEPAGE)``); call it before the pages are first touched.

    BBPM reads and writes hit random rows of a table far larger than the TLB covers with
    4 KiB pages; with 2 MiB pages the address translations stay cached (bench03 times the
    fused read and the C write on both kinds of pages). Returns True
    when the advice was taken; False (and nothing changes) on other systems, for non-CPU or
    small tensors, or when the kernel refuses. Purely a performance hint: values are unchanged.
    """
    global _libc
    if sys.platform != "linux" or tensor.device.type != "cpu":
        return False
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    aligned = (start + _HUGE_PAGE - 1) & ~(_HUGE_PAGE - 1)
    length = (end - aligned) & ~(_HUGE_PAGE - 1)
    if length <= 0:
        return False
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        status = _libc.madvise(
            ctypes.c_void_p(aligned), ctypes.c_size_t(length), ctypes.c_int(_MADV_HUGEPAGE)
        )
    except (OSError, AttributeError):
        return False
    return status == 0


def zeros_table(*shape: int, dtype: torch.dtype, device: torch.device | str | None = None):
    """``torch.zeros(*shape)``, with :func:`advise_huge_pages` applied before the zeros are
    written on CPU (the memories' ``[D, d]`` tables and counts). ``device`` is checked by
    :func:`check_device` (``ValueError`` naming it)."""
    table = torch.empty(*shape, dtype=dtype, device=check_device(device))
    advise_huge_pages(table)
    return table.zero_()


def check_device(device: object) -> torch.device | None:
    """``device`` (None, a ``torch.device`` or its name) as a ``torch.device`` usable here,
    or None for None. Raises ``ValueError`` naming ``device`` for an unknown name and for a
    CUDA/MPS device this machine does not have (torch itself raises RuntimeError or
    AssertionError, only when the first tensor is made)."""
    if device is None:
        return None
    if isinstance(device, bool) or not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"device must be None, a torch.device or a name such as 'cpu' or 'cuda:0', "
            f"got {type(device).__name__} {device!r}"
        )
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device name; use 'cpu', 'cuda' or 'cuda:N'"
        ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available; use device='cpu'"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} was requested but MPS is not available")
    return resolved


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
