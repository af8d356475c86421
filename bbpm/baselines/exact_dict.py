"""Exact dictionary: the oracle. Stores each key (8 bytes) and its value (d floats).

Unbounded (``capacity=None``) it never errs and its bytes grow with the number of keys.
Bounded (:meth:`ExactDictMemory.from_budget`) it holds ``capacity`` items in preallocated
tables and evicts first-in-first-out: writing a new key when full overwrites the oldest
item, which is then forgotten (reads of it return zeros). Rewriting a stored key replaces
its value in place (a dict assignment, not a sum as in the superposition memories).
"""

from __future__ import annotations

import torch
from torch import nn

from bbpm.baselines.base import (
    check_budget,
    check_float_dtype,
    check_positive_int,
    check_read,
    check_write,
    float_itemsize,
)
from bbpm.memory.base import MutationLock, locked
from bbpm.utils.device import check_device

KEY_BYTES = 8


class ExactDictMemory(MutationLock, nn.Module):
    """``key -> value`` lookup table (a Python dict from key to row of a value table).

    Args:
        d: value dimension.
        capacity: most items held (FIFO eviction beyond it); ``None`` = unbounded.
        dtype, device: of the value table.

    ``nbytes`` counts what is stored: ``8 + d * itemsize`` bytes per item (the allocated
    capacity when bounded, the stored items when unbounded); Python's dict overhead is not
    counted. Unseen keys read as zero vectors.
    """

    load_state_dict = locked(nn.Module.load_state_dict)

    def __init__(
        self,
        d: int,
        capacity: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self._init_lock()
        device = check_device(device)
        self.d = check_positive_int("d", d)
        self.capacity = None if capacity is None else check_positive_int("capacity", capacity)
        dtype = check_float_dtype(dtype)
        rows = self.capacity if self.capacity is not None else 0
        self.register_buffer("keys", torch.zeros(rows, dtype=torch.int64, device=device))
        self.register_buffer("values", torch.zeros(rows, d, dtype=dtype, device=device))
        self._row_of: dict[int, int] = {}
        self._key_at_row: list[int | None] = [None] * rows
        self._next = 0  # next row to fill (bounded: ring pointer over [0, capacity))

    @classmethod
    def from_budget(
        cls,
        nbytes: int,
        d: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> ExactDictMemory:
        """The largest bounded dict whose tables fit in ``nbytes``: capacity = nbytes // (8 + d*itemsize)."""
        d = check_positive_int("d", d)
        per_item = KEY_BYTES + d * float_itemsize(dtype)
        nbytes = check_budget(nbytes, per_item, f"one item of 8 + d*itemsize = {per_item} bytes")
        return cls(d, capacity=nbytes // per_item, dtype=dtype, device=device)

    @property
    def device(self) -> torch.device:
        return self.values.device

    @locked
    def clear(self) -> None:
        """Forget every item (the bounded tables stay allocated)."""
        self._row_of.clear()
        self._key_at_row = [None] * len(self._key_at_row)
        self._next = 0
        if self.capacity is None:
            self.keys = self.keys[:0].clone()
            self.values = self.values[:0].clone()
        else:
            self.keys.zero_()
            self.values.zero_()

    @locked
    @torch.no_grad()
    def write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store ``values: [B, d]`` under ``keys: [B]`` int64 (later writes of a key win)."""
        keys, values = check_write(keys, values, self.d, self.device, self.values.dtype)
        key_list = keys.tolist()
        if self._all_new(key_list):
            if self.capacity is not None and len(key_list) > self.capacity:
                # more new keys than rows: only the last `capacity` survive the ring, at the
                # rows they would reach one by one (the pointer first passes the others)
                skip = len(key_list) - self.capacity
                self._next = (self._next + skip) % self.capacity
                key_list, keys, values = key_list[skip:], keys[skip:], values[skip:]
            self._append_new(key_list, keys, values)
            return
        row_of = self._row_of
        rows: dict[int, int] = {}  # row -> position in the batch of the item that ends up there
        if self.capacity is None:
            for position, key in enumerate(key_list):
                row = row_of.get(key)
                if row is None:
                    row = row_of[key] = self._next
                    self._next += 1
                rows[row] = position
            self._grow(self._next)
        else:
            key_at_row = self._key_at_row
            for position, key in enumerate(key_list):
                row = row_of.get(key)
                if row is None:
                    row = self._next
                    evicted = key_at_row[row]
                    if evicted is not None:  # full: the oldest item goes (FIFO)
                        del row_of[evicted]
                    row_of[key] = row
                    key_at_row[row] = key
                    self._next = (self._next + 1) % self.capacity
                rows[row] = position
        if rows:
            target = torch.tensor(list(rows.keys()), dtype=torch.int64, device=self.device)
            source = torch.tensor(list(rows.values()), dtype=torch.int64, device=self.device)
            self.keys[target] = keys[source]
            self.values[target] = values[source].to(self.values.dtype)

    def _all_new(self, key_list: list[int]) -> bool:
        """True when the batch's keys are distinct and none is stored: then rows can be
        assigned in bulk."""
        return len(set(key_list)) == len(key_list) and self._row_of.keys().isdisjoint(key_list)

    def _grow(self, rows: int) -> None:
        """Unbounded: make the tables hold at least ``rows`` rows (capacity doubling)."""
        if rows > self.keys.shape[0]:
            size = max(rows, 2 * self.keys.shape[0])
            self.keys = torch.cat([self.keys, self.keys.new_zeros(size - self.keys.shape[0])])
            self.values = torch.cat(
                [self.values, self.values.new_zeros(size - self.values.shape[0], self.d)]
            )

    def _append_new(self, key_list: list[int], keys: torch.Tensor, values: torch.Tensor) -> None:
        """Bulk path of :meth:`write` for a batch of distinct new keys."""
        n = len(key_list)
        if self.capacity is None:
            start = self._next
            self._grow(start + n)
            row_list = list(range(start, start + n))
            self._next += n
            target = torch.arange(start, start + n, device=self.device)
        else:
            target = (self._next + torch.arange(n, device=self.device)) % self.capacity
            row_list = target.tolist()
            key_at_row = self._key_at_row
            for evicted in (key_at_row[row] for row in row_list):  # FIFO: the oldest items go
                if evicted is not None:
                    del self._row_of[evicted]
            for row, key in zip(row_list, key_list, strict=True):
                key_at_row[row] = key
            self._next = (self._next + n) % self.capacity
        self._row_of.update(zip(key_list, row_list, strict=True))
        self.keys[target] = keys
        self.values[target] = values.to(self.values.dtype)

    @torch.no_grad()
    def read(self, keys: torch.Tensor) -> torch.Tensor:
        """``keys: [B]`` -> ``[B, d]`` stored values (zeros for keys not held)."""
        keys = check_read(keys, self.device)
        rows = torch.tensor(
            [self._row_of.get(k, -1) for k in keys.tolist()], dtype=torch.int64, device=self.device
        )
        found = rows >= 0
        out = torch.zeros(keys.shape[0], self.d, dtype=self.values.dtype, device=self.device)
        out[found] = self.values[rows[found]]
        return out

    def forward(self, keys: torch.Tensor) -> torch.Tensor:
        return self.read(keys)

    def __len__(self) -> int:
        return len(self._row_of)

    @property
    def nbytes(self) -> int:
        """Bytes of stored keys and values (allocated capacity when bounded)."""
        rows = self.capacity if self.capacity is not None else len(self._row_of)
        return rows * (KEY_BYTES + self.d * self.values.element_size())

    def extra_repr(self) -> str:
        return f"d={self.d}, capacity={self.capacity}, nbytes={self.nbytes}"
