"""H independent hashes from one base family, with distinct salts."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from bbpm.hashing import diagnostics
from bbpm.hashing.base import HashFunction, check_keys, check_KH
from bbpm.hashing.mixing import GOLDEN, splitmix64_int


class MultiHashWrapper:
    """Builds hash h as ``base.with_seed(salt_h)`` with salts from splitmix64 of
    ``(seed, h)``, and concatenates their K-slot blocks: ``indices(keys, K, H)`` is
    ``[base_0.indices(keys, K, 1), ..., base_{H-1}.indices(keys, K, 1)]``.

    Distinct salts approximate independent hash functions; :meth:`diagnostics` measures
    how well (load skew, collisions, and how often two hashes of one key overlap). Each
    member is called with H = 1, so guarantees a base makes across its own H hashes (such
    as ``BlockPermutationHash(distinct_blocks=True)``) do not carry over to the wrapper.
    """

    def __init__(self, base: HashFunction, seed: int = 0) -> None:
        if not hasattr(base, "with_seed"):
            raise TypeError(f"base must provide with_seed(seed), got {type(base).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.base = base
        self.seed = int(seed)
        self.D = base.D
        self._members: dict[int, HashFunction] = {}
        self.member(0)  # a base that cannot be re-seeded fails here, not at the first write

    def member(self, h: int) -> HashFunction:
        """The base hash used for hash index ``h``."""
        if h not in self._members:
            salt = splitmix64_int(self.seed * 1_000_003 + h * GOLDEN)
            self._members[h] = self.base.with_seed(salt)  # type: ignore[attr-defined]
        return self._members[h]

    def indices(self, keys: torch.Tensor, K: int, H: int) -> torch.Tensor:
        keys = check_keys(keys)
        K, H = check_KH(K, H)
        return torch.cat([self.member(h).indices(keys, K, 1) for h in range(H)], dim=1)

    def diagnostics(self, keys: torch.Tensor, K: int, H: int) -> dict[str, Any]:
        """Collision rate, occupancy stats, and cross-hash overlap for these keys.

        ``cross_hash_overlap`` is the share of keys for which some slot of hash h also
        appears among the slots of another hash h' of the same key."""
        idx = self.indices(keys, K, H)
        stats = diagnostics.summarize(idx, self.D)
        per_hash = idx.view(idx.shape[0], H, K)
        overlap = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        for h in range(H):
            for g in range(h + 1, H):
                overlap |= (
                    (per_hash[:, h, :, None] == per_hash[:, g, None, :]).flatten(1).any(dim=1)
                )
        stats["cross_hash_overlap"] = float(overlap.double().mean()) if idx.shape[0] else 0.0
        stats["per_hash_max_load"] = [
            diagnostics.max_load(per_hash[:, h], self.D) for h in range(H)
        ]
        return stats

    def config(self) -> dict[str, Any]:
        return {"type": "MultiHashWrapper", "base": self.base.config(), "seed": self.seed}  # type: ignore[attr-defined]

    def with_seed(self, seed: int) -> MultiHashWrapper:
        return MultiHashWrapper(self.base, seed=seed)

    def __repr__(self) -> str:
        return f"MultiHashWrapper(base={self.base!r}, seed={self.seed})"
