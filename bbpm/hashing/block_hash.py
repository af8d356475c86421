"""Block hashing: a key picks a block, then a permutation of the block picks its K slots."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from bbpm.hashing.base import check_keys, check_KH, check_positive_int
from bbpm.hashing.mixing import splitmix64, splitmix64_int, uniform_mod


def units_mod(n: int) -> torch.Tensor:
    """All integers in ``[1, n)`` coprime to ``n`` (``[1]`` when n == 1): the strides for
    which ``k -> (a + k * s) mod n`` is a permutation of ``[0, n)``."""
    if n == 1:
        return torch.ones(1, dtype=torch.int64)
    candidates = np.arange(1, n, dtype=np.int64)
    return torch.from_numpy(candidates[np.gcd(candidates, n) == 1].copy())


class BlockPermutationHash:
    """``D = n_blocks * L`` slots split into blocks of ``L`` consecutive slots.

    For hash h, the key picks ``block_h`` and an affine permutation of ``[0, L)``,
    ``offset_k = (a + k * s) mod L`` with ``s`` coprime to ``L``; its K slots are
    ``block_h * L + offset_k`` for ``k < K``. Because the permutation is a bijection, the K
    offsets are pairwise distinct for every ``L`` (power of two or not) as long as
    ``K <= L``: a key never collides with itself inside one hash.

    ``distinct_blocks=True`` (default) also removes self-collisions across the H hashes:
    the blocks are ``(b0 + h * t) mod n_blocks`` with ``t`` coprime to ``n_blocks``, so the
    H blocks of a key are distinct (needs ``H <= n_blocks``). With ``False`` each hash
    draws its block independently and two hashes may land in the same block.

    All K slots of one hash lie in one block of contiguous memory (cache friendly, and
    the unit of ownership when the table is sharded).
    """

    def __init__(
        self, D: int, block_size: int = 4096, seed: int = 0, distinct_blocks: bool = True
    ) -> None:
        self.D = check_positive_int("D", D)
        self.block_size = check_positive_int("block_size", block_size)
        if D % block_size != 0:
            raise ValueError(
                f"D must be divisible by block_size, got D={D}, block_size={block_size}; "
                f"use D={max(1, D // block_size) * block_size} or a block_size that divides D"
            )
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = int(seed)
        self.distinct_blocks = bool(distinct_blocks)
        self.n_blocks = D // block_size
        self._offset_strides = units_mod(block_size)
        self._block_strides = units_mod(self.n_blocks)
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _strides(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._cache:
            self._cache[device] = (self._offset_strides.to(device), self._block_strides.to(device))
        return self._cache[device]

    def salt(self, h: int) -> int:
        return splitmix64_int(splitmix64_int(self.seed ^ 0x5BD1E995) + h)

    def indices(self, keys: torch.Tensor, K: int, H: int) -> torch.Tensor:
        """``keys: [B] int64`` -> ``[B, K*H] int64`` slots in ``[0, D)``."""
        keys = check_keys(keys)
        K, H = check_KH(K, H)
        L = self.block_size
        if K > L:
            raise ValueError(
                f"K must be <= block_size for distinct offsets, got K={K}, block_size={L}"
            )
        if self.distinct_blocks and H > self.n_blocks:
            raise ValueError(
                f"distinct_blocks=True needs H <= n_blocks, got H={H}, n_blocks={self.n_blocks}; "
                "use more blocks or distinct_blocks=False"
            )
        offset_strides, block_strides = self._strides(keys.device)
        k = torch.arange(K, dtype=torch.int64, device=keys.device)
        if self.distinct_blocks:
            block_mix = splitmix64(keys ^ self.salt(-1))
            first_block = uniform_mod(block_mix, self.n_blocks)
            block_step = block_strides[uniform_mod(splitmix64(block_mix), block_strides.numel())]
        slots = []
        for h in range(H):
            mixed = splitmix64(keys ^ self.salt(h))
            if self.distinct_blocks:
                block = torch.remainder(first_block + h * block_step, self.n_blocks)
            else:
                block = uniform_mod(mixed, self.n_blocks)
            offset_mix = splitmix64(mixed)
            start = uniform_mod(offset_mix, L)
            stride = offset_strides[uniform_mod(splitmix64(offset_mix), offset_strides.numel())]
            # start + k * stride in one fused int64 pass (same values, fewer passes)
            offsets = torch.addcmul(start[:, None], k[None, :], stride[:, None]).remainder_(L)
            slots.append(block[:, None] * L + offsets)
        return torch.cat(slots, dim=1)

    def block_of(self, keys: torch.Tensor, H: int = 1) -> torch.Tensor:
        """``[B, H]`` block ids of each key (the shard owner in a sharded memory)."""
        return self.indices(keys, 1, H) // self.block_size

    def config(self) -> dict[str, Any]:
        return {
            "type": "BlockPermutationHash",
            "D": self.D,
            "block_size": self.block_size,
            "seed": self.seed,
            "distinct_blocks": self.distinct_blocks,
        }

    def with_seed(self, seed: int) -> BlockPermutationHash:
        return BlockPermutationHash(
            self.D, self.block_size, seed=seed, distinct_blocks=self.distinct_blocks
        )

    def __repr__(self) -> str:
        return (
            f"BlockPermutationHash(D={self.D}, block_size={self.block_size}, seed={self.seed}, "
            f"distinct_blocks={self.distinct_blocks})"
        )
