"""Global (whole-table) affine hashing."""

from __future__ import annotations

import functools
import numbers
from typing import Any

import torch

from bbpm.hashing.base import check_keys, check_KH, check_positive_int
from bbpm.hashing.mixing import splitmix64, splitmix64_int, uniform_mod


@functools.lru_cache(maxsize=64)
def prime_factors(n: int, limit: int = 10**12) -> tuple[int, ...] | None:
    """The distinct prime factors of ``n`` by trial division, or None when ``n > limit``."""
    if n > limit:
        return None
    factors = []
    p = 2
    while p * p <= n:
        if n % p == 0:
            factors.append(p)
            while n % p == 0:
                n //= p
        p += 1 if p == 2 else 2
    if n > 1:
        factors.append(n)
    return tuple(factors)


PROTOTYPE_SALT_MUL = 123456789
PROTOTYPE_SALT_ADD = 987654321
PROTOTYPE_OFFSET_STEP = 1337
_MODES = ("mixed", "prototype")


class GlobalAffineHash:
    """Slots anywhere in ``[0, D)`` via an affine step in the offset k.

    ``mode="mixed"`` (default): per hash h the key is mixed with splitmix64 under a
    seed-derived salt, giving a start ``a`` and a stride ``b`` in ``[1, D)`` (double hashing,
    Kirsch & Mitzenmacher 2006)::

        m_h  = splitmix64(key XOR salt_h)
        slot = (a(m_h) + k * b(m_h)) mod D,   k = 0..K-1

    The stride is coprime to D, so a key's K slots are distinct (for K <= D), and every key
    gets its own stride, so two keys that share one slot rarely share another:
    the slots behave like independent uniform draws, which is what ``bbpm.theory`` assumes.

    ``mode="prototype"`` reproduces the prototype's salted formula exactly (kept for
    comparison; it does not use ``seed``)::

        salt_h = h * 123456789 + 987654321
        slot   = (key * salt_h + k * 1337) mod D

    With consecutive integer keys that formula collides in structured, non-random ways:
    keys t apart share slots whenever ``t * salt_h = (k' - k) * 1337 (mod D)``.
    """

    def __init__(self, D: int, seed: int = 0, mode: str = "mixed") -> None:
        self.D = check_positive_int("D", D)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.seed = int(seed)
        self.mode = mode

    def salt(self, h: int) -> int:
        """The signed 64-bit salt of hash ``h`` (mixed mode)."""
        return splitmix64_int(splitmix64_int(self.seed) + h)

    def indices(self, keys: torch.Tensor, K: int, H: int) -> torch.Tensor:
        """``keys: [B] int64`` -> ``[B, K*H] int64`` slots in ``[0, D)``."""
        keys = check_keys(keys)
        K, H = check_KH(K, H)
        if K > self.D:
            raise ValueError(
                f"K={K} slots per hash cannot be distinct in D={self.D} slots; use K <= D"
            )
        if K * self.D >= 2**62:
            raise ValueError(
                f"K * D must be < 2**62 to avoid int64 overflow, got K={K}, D={self.D}"
            )
        k = torch.arange(K, dtype=torch.int64, device=keys.device)
        blocks = []
        for h in range(H):
            if self.mode == "prototype":
                salt = h * PROTOTYPE_SALT_MUL + PROTOTYPE_SALT_ADD
                slots = torch.remainder(
                    keys[:, None] * salt + k[None, :] * PROTOTYPE_OFFSET_STEP, self.D
                )
            else:
                mixed = splitmix64(keys ^ self.salt(h))
                start = uniform_mod(mixed, self.D)
                stride = self._coprime_stride(mixed)
                # start + k * stride in one fused int64 pass (same values, fewer passes)
                slots = torch.addcmul(start[:, None], k[None, :], stride[:, None]).remainder_(
                    self.D
                )
            blocks.append(slots)
        return torch.cat(blocks, dim=1)

    def _coprime_stride(self, mixed: torch.Tensor) -> torch.Tensor:
        """A stride in ``[1, D)`` coprime to D, so the K slots ``a + k*b`` are distinct for K <= D.
        Strides sharing a factor with D are stepped to the next value until coprime (a few
        passes at most; 1 always qualifies)."""
        if self.D == 1:
            return torch.zeros_like(mixed)
        stride = 1 + uniform_mod(splitmix64(mixed), self.D - 1)
        primes = prime_factors(self.D)
        while True:
            if primes is None:  # D too large to factor cheaply
                shared = torch.gcd(stride, torch.full_like(stride, self.D)) != 1
            else:  # cheaper than gcd: D has at most a dozen distinct prime factors
                shared = torch.zeros_like(stride, dtype=torch.bool)
                for prime in primes:
                    shared |= stride % prime == 0
            if not bool(shared.any()):
                return stride
            stride = torch.where(shared, stride % (self.D - 1) + 1, stride)

    def config(self) -> dict[str, Any]:
        return {"type": "GlobalAffineHash", "D": self.D, "seed": self.seed, "mode": self.mode}

    def with_seed(self, seed: int) -> GlobalAffineHash:
        """The same hash under another seed (mixed mode only: the prototype formula has no
        seed, so re-seeding it would return the same slots under a new name)."""
        if self.mode == "prototype":
            raise ValueError(
                "mode='prototype' ignores seed, so with_seed cannot give a new hash; its H hashes "
                "come from indices(keys, K, H) itself (salt h), or use mode='mixed'"
            )
        return GlobalAffineHash(self.D, seed=seed, mode=self.mode)

    def __repr__(self) -> str:
        return f"GlobalAffineHash(D={self.D}, seed={self.seed}, mode={self.mode!r})"
