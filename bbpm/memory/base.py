"""The associative-memory interface and the write-scale convention."""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch

from bbpm.hashing.base import check_keys

WRITE_SCALES = ("unit", "1/sqrt(KH)")
EPS = 1e-8


@runtime_checkable
class AssociativeMemory(Protocol):
    """What every memory in bbpm (BBPM and the peer baselines) offers."""

    def write(self, keys: torch.Tensor, values: torch.Tensor) -> None: ...

    def read(self, keys: torch.Tensor) -> torch.Tensor: ...

    def clear(self) -> None: ...

    @property
    def nbytes(self) -> int: ...


def write_scale_factor(write_scale: str, K: int, H: int) -> float:
    """The factor ``s`` each value is multiplied by on write.

    ``"unit"``: s = 1. ``"1/sqrt(KH)"``: s = 1/sqrt(K*H), so an item spreads unit energy
    over its K*H slots (sum of squares written = ||v||^2), keeping the table's scale
    independent of K and H. Reads divide by s again, so ``read(write(v)) == v`` at low load
    under both settings (the count-debiased mean is linear in what was stored).
    """
    if write_scale == "unit":
        return 1.0
    if write_scale == "1/sqrt(KH)":
        return 1.0 / math.sqrt(K * H)
    raise ValueError(f"write_scale must be one of {WRITE_SCALES}, got {write_scale!r}")


def check_values(values: object, keys: torch.Tensor, d: int, check_finite: bool) -> torch.Tensor:
    """Validate ``values: [B, d]`` floating point, on the keys' device, finite (unless
    ``check_finite`` is False)."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(
            f"values must be a torch.Tensor of shape [B, d], got {type(values).__name__}"
        )
    if not values.is_floating_point():
        raise TypeError(
            f"values must be a floating-point tensor, got {values.dtype}; use values.float()"
        )
    if values.dim() != 2 or values.shape[1] != d or values.shape[0] != keys.shape[0]:
        raise ValueError(
            f"values must have shape [B, d] = [{keys.shape[0]}, {d}] to match keys, got {tuple(values.shape)}"
        )
    if values.device != keys.device:
        raise ValueError(
            f"keys and values must be on the same device, got keys on {keys.device} and values on {values.device}"
        )
    if check_finite and values.numel() and not bool(torch.isfinite(values).all()):
        raise ValueError(
            "values contain NaN or inf; clean them or pass check_finite=False to skip this check"
        )
    return values


def check_keys_on(keys: object, device: torch.device) -> torch.Tensor:
    keys = check_keys(keys)
    if keys.device != device:
        raise ValueError(
            f"keys are on {keys.device} but the memory is on {device}; move them with keys.to({str(device)!r})"
        )
    return keys
