"""Number formatting shared by the notebooks' printed results."""

from __future__ import annotations


def format_bytes(nbytes: float) -> str:
    """Binary units at 3 significant digits: ``65536 -> '64 KiB'``, ``1048576 -> '1 MiB'``,
    ``1081344 -> '1.03 MiB'``, ``512 -> '512 B'``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes:g} B"
