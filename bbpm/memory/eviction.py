"""Eviction policies for a :class:`~bbpm.memory.float_superposition.BBPMMemoryFloat`.

A fixed-size memory fills up; these policies trade old items for new ones:

* :func:`decay` forgets exponentially: an item written t decays ago weighs ``gamma**t``
  against a fresh write in any shared slot. It raises the memory's write weight by
  ``1 / gamma`` rather than shrinking the table, so reads are exactly unchanged by any
  number of decays.
* :func:`clip` rescales slots whose debiased value norm exceeds ``max_norm``.
* :class:`TTLEviction` zeroes slots not written during the last ``ttl`` steps.

Every argument is checked before anything is touched: a wrong type (bool, tensor, None,
str, ...) raises ``TypeError``, a NaN, infinite or out-of-range number ``ValueError``, and
the memory's buffers stay bit-identical.

Each policy holds the memory's ``lock`` while it changes the tables, so it is safe to run
while other threads write into the same memory.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from bbpm.memory.base import WEIGHT_CAP
from bbpm.memory.float_superposition import BBPMMemoryFloat

_F = TypeVar("_F", bound=Callable[..., Any])


def _memory_lock(memory: Any) -> Any:
    lock = getattr(memory, "lock", None)
    return lock if lock is not None else contextlib.nullcontext()


def _holding_memory_lock(fn: _F) -> _F:
    """Run an eviction ``fn(memory, ...)`` (or a method of an object with ``.memory``)
    holding the memory's lock, so it never interleaves with a write from another thread."""

    @functools.wraps(fn)
    def wrapper(first: Any, *args: Any, **kwargs: Any) -> Any:
        memory = first.memory if isinstance(first, TTLEviction) else first
        with _memory_lock(memory):
            return fn(first, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _check_memory(memory: Any, sharded_ok: bool = True) -> None:
    """``TypeError`` unless ``memory`` is a BBPM float memory (or, with ``sharded_ok``, one
    rank's :class:`~bbpm.distributed.ShardedBBPMMemory`)."""
    from bbpm.distributed.sharded_memory import ShardedBBPMMemory  # lazy: no import cycle

    accepted = (BBPMMemoryFloat, ShardedBBPMMemory) if sharded_ok else (BBPMMemoryFloat,)
    if not isinstance(memory, accepted):
        names = " or ".join(cls.__name__ for cls in accepted)
        raise TypeError(f"memory must be a {names}, got {type(memory).__name__}")


def _check_real(name: str, value: Any, allowed: str) -> float:
    """``value`` as a finite float: a Python or NumPy real number (not bool, not a tensor)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        hint = "; pass a Python number (tensor.item())" if isinstance(value, torch.Tensor) else ""
        raise TypeError(
            f"{name} must be a number {allowed}, got {type(value).__name__} {value!r}{hint}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number {allowed}, got {value}")
    return value


@_holding_memory_lock
@torch.no_grad()
def decay(memory: BBPMMemoryFloat, gamma: float) -> None:
    """Forget by ``gamma`` in (0, 1]: what is stored now weighs ``gamma`` against later writes.

    Equivalent to multiplying ``memory`` and ``counts`` by ``gamma``, but done by dividing
    the memory's ``write_weight`` by ``gamma`` (later writes are stored heavier): the table is
    untouched, so every read is bit-identical after any number of decays, in every storage
    dtype. The table is rescaled by a power of two only at a later write, once the weight
    leaves its range (:func:`bbpm.memory.base.write_weight_range`); past ``WEIGHT_CAP`` the
    weight stops growing (a fold there floors every slot anyway). O(1): no pass over the
    table. For a :class:`~bbpm.distributed.ShardedBBPMMemory`, decay is local: call it on
    every rank with the same ``gamma`` (as ``clear``)."""
    _check_memory(memory)
    gamma = _check_real("gamma", gamma, "in (0, 1]")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    memory.write_weight.fill_(min(float(memory.write_weight) / gamma, WEIGHT_CAP))


@_holding_memory_lock
@torch.no_grad()
def clip(memory: BBPMMemoryFloat, max_norm: float) -> int:
    """Rescale every slot whose debiased value ``memory / counts`` has an L2 norm above
    ``max_norm`` (in stored units) down to ``max_norm``. Returns the number of slots clipped."""
    _check_memory(memory)
    max_norm = _check_real("max_norm", max_norm, "> 0")
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    debiased_norm = memory.memory.float().norm(dim=1, keepdim=True) / (memory.counts + memory.eps)
    factor = torch.clamp(max_norm / (debiased_norm + 1e-12), max=1.0)
    memory.memory.mul_(factor.to(memory.memory.dtype))
    return int((factor < 1.0).sum())


class TTLEviction:
    """Forget slots that have not been written for more than ``ttl`` steps.

    Call :meth:`write` instead of ``memory.write`` (it records the step of each slot),
    and :meth:`step` once per time step; slots whose last write is older than ``ttl``
    steps are zeroed, memory and counts alike. ``ttl``: a positive int (Python or NumPy).
    """

    def __init__(self, memory: BBPMMemoryFloat, ttl: int) -> None:
        _check_memory(memory, sharded_ok=False)
        if isinstance(ttl, bool) or not isinstance(ttl, numbers.Integral):
            raise TypeError(f"ttl must be a positive int, got {type(ttl).__name__} {ttl!r}")
        if ttl <= 0:
            raise ValueError(f"ttl must be a positive int, got {ttl!r}")
        self.memory = memory
        self.ttl = int(ttl)
        self.now = 0
        self.last_write = torch.full(
            (memory.D,), -1, dtype=torch.int64, device=memory.memory.device
        )

    @_holding_memory_lock
    def write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.memory.write(keys, values)
        self.last_write[self.memory.slots(keys).reshape(-1)] = self.now

    @_holding_memory_lock
    @torch.no_grad()
    def step(self) -> int:
        """Advance time by one step and evict expired slots. Returns how many were evicted."""
        self.now += 1
        expired = (self.last_write >= 0) & (self.now - self.last_write > self.ttl)
        n = int(expired.sum())
        if n:
            self.memory.memory[expired] = 0
            self.memory.counts[expired] = 0
            self.last_write[expired] = -1
        return n
