"""The hashing protocol and the input checks shared by every hash family."""

from __future__ import annotations

import numbers
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class HashFunction(Protocol):
    """Maps integer keys to slot indices.

    ``indices(keys, K, H)`` takes ``keys: [B] int64`` and returns ``[B, K*H] int64`` with
    every entry in ``[0, D)``: the K slots of hash 0, then the K slots of hash 1, and so on.
    Implementations are deterministic functions of (key, K, H, their own settings): the same
    indices in every run, process and device. The protocol is ``indices`` alone; the
    built-in hashes also expose ``D`` (checked against the memory's when present),
    ``config()`` (for checkpoints) and ``with_seed(seed)``.
    """

    def indices(self, keys: torch.Tensor, K: int, H: int) -> torch.Tensor: ...


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as int, or raise naming ``name`` when it is not a positive integer
    (Python or NumPy integers, as from a parameter sweep; not bool, not float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


def check_keys(keys: Any) -> torch.Tensor:
    """Validate keys: a 1-D integer tensor (any int64 value, negatives included).

    Narrower integer dtypes (int8-int32, uint8-uint32) are widened to int64, exactly. Float
    and bool keys are rejected because hashing their bit patterns silently would map 1.0 and
    1 to different slots; uint64 is rejected because its upper half would wrap onto negative
    int64 keys.
    """
    if not isinstance(keys, torch.Tensor):
        raise TypeError(f"keys must be a torch.Tensor of int64, got {type(keys).__name__}")
    if keys.dtype == torch.bool or keys.is_floating_point() or keys.is_complex():
        raise TypeError(
            f"keys must be an integer tensor (int64), got {keys.dtype}; "
            "convert ids with keys.long() or hash your objects to integers first"
        )
    if keys.dtype == torch.uint64:
        raise TypeError(
            "keys must be int64, got uint64: values of 2**63 and above would wrap onto negative "
            "int64 keys (2**64-1 onto -1) and share their slots; pass keys.view(torch.int64) "
            "to hash the bit pattern as a signed key, or map the ids into the int64 range"
        )
    if keys.dim() != 1:
        raise ValueError(
            f"keys must be 1-D with shape [B], got shape {tuple(keys.shape)}; use keys.reshape(-1)"
        )
    return keys if keys.dtype == torch.int64 else keys.to(torch.int64)


def check_KH(K: Any, H: Any) -> tuple[int, int]:
    return check_positive_int("K", K), check_positive_int("H", H)
