"""Two-stage modern Hopfield store (the NuoNuo single-hop memory: nearest-neighbour
top-k, then a softmax "settle" over those candidates).

Each write stores the key's pattern ``x(k)`` (a unit vector of dimension ``key_dim``
generated from the key id) and the value. Retrieval for a query pattern ``q``::

    stage 1:  C = top_k stored patterns by cosine  cos(q, x_i)
    stage 2:  w = softmax(beta * cos(q, x_i), i in C);   read = sum_{i in C} w_i v_i

With ``settle_steps > 1`` the query is first moved ``q <- normalise(sum_i w_i x_i)``
(the modern-Hopfield update of Ramsauer et al. 2021) before the final readout.

Capacity is fixed by the budget: ``capacity = nbytes // ((key_dim + d) * itemsize)``.
When full, a new write overwrites the oldest pattern (FIFO ring buffer), so the store is
exact for the most recent ``capacity`` items and has forgotten everything older. The store
has no notion of key identity: rewriting a key stores a second pattern. An unseen key still
retrieves a softmax mixture of its nearest stored patterns (there is no "not found").
"""

from __future__ import annotations

import torch
from torch import nn

from bbpm.baselines.base import (
    check_budget,
    check_float_dtype,
    check_positive_finite,
    check_positive_int,
    check_read,
    check_seed,
    check_write,
    float_itemsize,
)
from bbpm.baselines.keycodes import key_gaussian, stream_salt
from bbpm.memory.base import MutationLock, locked
from bbpm.utils.device import check_device

_STREAM_PATTERN = 3


class HopfieldMemory(MutationLock, nn.Module):
    """Bounded two-stage Hopfield store.

    Args:
        d: value dimension.
        capacity: number of stored patterns (FIFO beyond it).
        key_dim: dimension of the key patterns.
        top_k: stage-1 candidates (clipped to the number stored).
        beta: inverse temperature of the stage-2 softmax over cosines.
        settle_steps: softmax passes (1 = read values directly).
        seed: seeds the key -> pattern map.
        query_chunk: queries scored at once (bounds the ``[chunk, capacity]`` score matrix).

    Buffers: ``patterns [capacity, key_dim]`` (unit rows), ``values [capacity, d]``.
    """

    load_state_dict = locked(nn.Module.load_state_dict)

    def __init__(
        self,
        d: int,
        capacity: int,
        key_dim: int = 64,
        top_k: int = 20,
        beta: float = 16.0,
        settle_steps: int = 1,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        query_chunk: int = 1024,
    ) -> None:
        super().__init__()
        self._init_lock()
        device = check_device(device)
        self.d = check_positive_int("d", d)
        self.capacity = check_positive_int("capacity", capacity)
        self.key_dim = check_positive_int("key_dim", key_dim)
        self.top_k = check_positive_int("top_k", top_k)
        self.settle_steps = check_positive_int("settle_steps", settle_steps)
        self.query_chunk = check_positive_int("query_chunk", query_chunk)
        self.beta = check_positive_finite("beta", beta)
        self.seed = check_seed(seed)
        dtype = check_float_dtype(dtype)
        self._salt = stream_salt(seed, _STREAM_PATTERN)
        self.register_buffer("patterns", torch.zeros(capacity, key_dim, dtype=dtype, device=device))
        self.register_buffer("values", torch.zeros(capacity, d, dtype=dtype, device=device))
        self.n_stored = 0
        self._next = 0

    @classmethod
    def from_budget(
        cls, nbytes: int, d: int, key_dim: int = 64, dtype: torch.dtype = torch.float32, **kwargs
    ) -> HopfieldMemory:
        """The largest store that fits: ``capacity = nbytes // ((key_dim + d) * itemsize)``."""
        d = check_positive_int("d", d)
        key_dim = check_positive_int("key_dim", key_dim)
        per_item = (key_dim + d) * float_itemsize(dtype)
        nbytes = check_budget(
            nbytes, per_item, f"one pattern + value of (key_dim + d) * itemsize = {per_item} bytes"
        )
        return cls(d, capacity=nbytes // per_item, key_dim=key_dim, dtype=dtype, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.values.device

    def key_patterns(self, keys: torch.Tensor) -> torch.Tensor:
        """``keys: [B]`` -> ``[B, key_dim]`` unit-norm patterns."""
        keys = check_read(keys, self.device)
        x = key_gaussian(keys, self._salt, self.key_dim, self.patterns.dtype)
        return torch.nn.functional.normalize(x, dim=1)

    @locked
    @torch.no_grad()
    def clear(self) -> None:
        self.patterns.zero_()
        self.values.zero_()
        self.n_stored = 0
        self._next = 0

    @locked
    @torch.no_grad()
    def write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Append patterns and values, overwriting the oldest when full."""
        keys, values = check_write(keys, values, self.d, self.device, self.values.dtype)
        if keys.shape[0] > self.capacity:  # only the last `capacity` items of the batch survive
            keys, values = keys[-self.capacity :], values[-self.capacity :]
        n = keys.shape[0]
        rows = (self._next + torch.arange(n, device=self.device)) % self.capacity
        self.patterns[rows] = self.key_patterns(keys)
        self.values[rows] = values.to(self.values.dtype)
        self._next = (self._next + n) % self.capacity
        self.n_stored = min(self.capacity, self.n_stored + n)

    @torch.no_grad()
    def read(self, keys: torch.Tensor) -> torch.Tensor:
        """Top-k cosine candidates, softmax(beta * cos) over them, weighted sum of values: ``[B, d]``."""
        keys = check_read(keys, self.device)
        out = torch.zeros(keys.shape[0], self.d, dtype=self.values.dtype, device=self.device)
        if self.n_stored == 0:
            return out
        patterns, values = self.patterns[: self.n_stored], self.values[: self.n_stored]
        k = min(self.top_k, self.n_stored)
        for start in range(0, keys.shape[0], self.query_chunk):
            query = self.key_patterns(keys[start : start + self.query_chunk])
            for step in range(self.settle_steps):
                cos, cand = (query @ patterns.T).topk(k, dim=1)
                weights = torch.softmax(self.beta * cos, dim=1)
                if step + 1 < self.settle_steps:
                    query = torch.nn.functional.normalize(
                        torch.einsum("bk,bkc->bc", weights, patterns[cand]), dim=1
                    )
            out[start : start + self.query_chunk] = torch.einsum(
                "bk,bkd->bd", weights, values[cand]
            )
        return out

    def forward(self, keys: torch.Tensor) -> torch.Tensor:
        return self.read(keys)

    def __len__(self) -> int:
        return self.n_stored

    @property
    def nbytes(self) -> int:
        return (
            self.patterns.numel() * self.patterns.element_size()
            + self.values.numel() * self.values.element_size()
        )

    def extra_repr(self) -> str:
        return (
            f"d={self.d}, capacity={self.capacity}, key_dim={self.key_dim}, top_k={self.top_k}, "
            f"beta={self.beta}, settle_steps={self.settle_steps}, nbytes={self.nbytes}"
        )
