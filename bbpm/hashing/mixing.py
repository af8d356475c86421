"""64-bit integer mixing on int64 tensors, without overflow errors.

torch has no uint64 arithmetic on every device, so the splitmix64 finalizer is computed on
int64 with two's-complement wrap-around (multiplication and addition wrap identically on
CPU and CUDA). Constants above 2**63 are passed as their signed equivalents (passing the
Python int ``0x9E3779B97F4A7C15`` to torch raises "Overflow when unpacking long", the
prototype's bug), and right shifts are made logical by masking off the sign-extended bits.
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1
INT63_MASK = (1 << 63) - 1


def as_int64(value: int) -> int:
    """The signed int64 with the same low 64 bits as ``value`` (any Python int)."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


GOLDEN = as_int64(0x9E3779B97F4A7C15)
_M1 = as_int64(0xBF58476D1CE4E5B9)
_M2 = as_int64(0x94D049BB133111EB)


def _shr(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns."""
    return (x >> shift) & ((1 << (64 - shift)) - 1)


def splitmix64(x: torch.Tensor) -> torch.Tensor:
    """splitmix64 (Steele, Lea & Flood 2014): add the golden gamma, then the finalizer.

    Args:
        x: int64 tensor of any shape.

    Returns:
        int64 tensor of the same shape holding the 64-bit mixed bit patterns.
    """
    z = x + GOLDEN
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


def splitmix64_int(x: int) -> int:
    """splitmix64 on a Python int, returning a signed int64 value (for deriving salts)."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return as_int64(z ^ (z >> 31))


def uniform_mod(mixed: torch.Tensor, modulus: int) -> torch.Tensor:
    """Map mixed 64-bit patterns to ``[0, modulus)`` (drop the sign bit, then reduce).
    The bias is at most modulus / 2**63, negligible for any table size."""
    return (mixed & INT63_MASK) % modulus
