"""A Bloom-filter-like binary variant: one *bit* per slot, packed eight to a byte."""

from __future__ import annotations

import math

import torch

from bbpm.hashing.base import HashFunction
from bbpm.memory.base import (
    MutationLock,
    check_hash_output,
    check_keys_on,
    check_sizes,
    hashed_slots,
    locked,
)
from bbpm.utils.device import check_device

_BIT_VALUES = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.int32)


class BinaryBloomMemory(MutationLock):
    """Set membership over integer keys in ``D`` bits stored as ``ceil(D / 8)`` uint8 bytes.

    ``write(keys)`` sets the K*H bits ``hash_fn.indices(keys, K, H)``; ``contains(keys)``
    is True when all of a key's bits are set (no false negatives; false positives at rate
    about ``(1 - exp(-K*H*n/D))**(K*H)`` after n distinct keys); ``set_fraction(keys)`` is
    the share of a key's bits that are set.

    (The prototype stored one uint8 per bit, 8x the memory it claimed; here ``nbytes`` is
    the real ``ceil(D/8)``.)

    Threads: ``write`` and ``clear`` hold ``self.lock`` (setting bits is a read-modify-write
    of whole bytes, so two unlocked writers could drop each other's bits); several threads
    may write at once with no false negatives. ``contains`` does not take the lock.
    """

    def __init__(
        self,
        D: int,
        K: int,
        H: int,
        hash_fn: HashFunction,
        device: torch.device | str | None = None,
    ) -> None:
        self._init_lock()
        self.D, _, self.K, self.H = check_sizes(D, 1, K, H)
        if not callable(getattr(hash_fn, "indices", None)):
            raise TypeError(
                f"hash_fn must provide indices(keys, K, H), got {type(hash_fn).__name__}; "
                "pass a hash such as GlobalAffineHash(D)"
            )
        if getattr(hash_fn, "D", D) != D:
            raise ValueError(f"hash_fn addresses D={hash_fn.D} slots but the memory has D={D} bits")
        self.hash_fn = hash_fn
        self.bits = torch.zeros(math.ceil(D / 8), dtype=torch.uint8, device=check_device(device))
        check_hash_output(hash_fn, self.K, self.H, self.D, self.bits.device)
        self.n_written = 0

    @property
    def nbytes(self) -> int:
        return self.bits.numel()

    @locked
    def clear(self) -> None:
        self.bits.zero_()
        self.n_written = 0

    def _split(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = check_keys_on(keys, self.bits.device)
        idx = hashed_slots(self.hash_fn, keys, self.K, self.H, self.D, check_range=True)
        return idx >> 3, (idx & 7)

    @locked
    def write(self, keys: torch.Tensor) -> None:
        """Set the bits of ``keys: [B]`` integer."""
        byte_idx, bit_idx = self._split(keys)
        # OR-reduce per byte: the distinct (byte, bit) pairs' bit values sum to their OR.
        pairs = torch.unique(byte_idx.reshape(-1) * 8 + bit_idx.reshape(-1))
        bytes_touched, inverse = torch.unique(pairs >> 3, return_inverse=True)
        masks = torch.zeros(bytes_touched.numel(), dtype=torch.int32, device=self.bits.device)
        masks.index_add_(0, inverse, _BIT_VALUES.to(self.bits.device)[pairs & 7])
        self.bits[bytes_touched] |= masks.to(torch.uint8)
        self.n_written += int(keys.shape[0])

    def _bits_set(self, keys: torch.Tensor) -> torch.Tensor:
        byte_idx, bit_idx = self._split(keys)
        return ((self.bits[byte_idx].to(torch.int32) >> bit_idx.to(torch.int32)) & 1).bool()

    def contains(self, keys: torch.Tensor) -> torch.Tensor:
        """``[B]`` bool: all of the key's bits are set."""
        return self._bits_set(keys).all(dim=1)

    def set_fraction(self, keys: torch.Tensor) -> torch.Tensor:
        """``[B]`` float: share of the key's K*H bits that are set."""
        return self._bits_set(keys).float().mean(dim=1)

    def fill_ratio(self) -> float:
        """Share of all D bits that are set."""
        unpacked = (
            self.bits[:, None].to(torch.int32) >> torch.arange(8, device=self.bits.device)
        ) & 1
        return float(unpacked.reshape(-1)[: self.D].double().mean())

    def false_positive_theory(self, n_items: int | None = None) -> float:
        """``(1 - exp(-k n / D))**k`` with ``k = K*H`` and ``n = n_items`` distinct keys,
        by default ``n_written``: every key written, repeats included (an overestimate of n
        when keys were written twice; pass the distinct count then)."""
        n = self.n_written if n_items is None else n_items
        k = self.K * self.H
        return (1.0 - math.exp(-k * n / self.D)) ** k
