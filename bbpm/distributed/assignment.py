"""Which rank owns which block of a sharded BBPM table.

A :class:`~bbpm.hashing.BlockPermutationHash` table of ``D = n_blocks * L`` slots is cut
into blocks of ``L`` consecutive slots, and the K slots of one (key, hash) pair always lie
in one block. A block is therefore the unit of ownership: each rank stores the blocks it
owns, back to back, as its local ``[n_local_blocks * L, d]`` table.

Two rules (``strategy``):

* ``"contiguous"`` (default): rank ``r`` owns blocks ``[floor(r*n/W), floor((r+1)*n/W))``,
  a contiguous range; ranks differ by at most one block.
* ``"modulo"``: block ``b`` belongs to rank ``b % W`` and is its local block ``b // W``.

Hashing spreads keys uniformly over blocks, so both rules balance the load; contiguous
ranges make a rank's slice of a single-process table one contiguous slice.
"""

from __future__ import annotations

from typing import Any

import torch

from bbpm.hashing.base import check_positive_int

STRATEGIES = ("contiguous", "modulo")


class BlockAssignment:
    """Block -> (owner rank, local block index) for ``n_blocks`` blocks over ``world_size`` ranks.

    Args:
        n_blocks: blocks in the whole table (``D // block_size``).
        world_size: number of ranks ``W``.
        strategy: ``"contiguous"`` or ``"modulo"`` (see the module docstring).
    """

    def __init__(self, n_blocks: int, world_size: int, strategy: str = "contiguous") -> None:
        self.n_blocks = check_positive_int("n_blocks", n_blocks)
        self.world_size = check_positive_int("world_size", world_size)
        if strategy not in STRATEGIES:
            raise ValueError(f"assignment strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        # starts[r] = first block of rank r (contiguous rule); starts[W] = n_blocks.
        self._starts = torch.tensor(
            [r * n_blocks // world_size for r in range(world_size + 1)], dtype=torch.int64
        )

    def owner(self, blocks: torch.Tensor) -> torch.Tensor:
        """Owner rank of each block id (any shape, int64) -> same shape, int64."""
        if self.strategy == "modulo":
            return torch.remainder(blocks, self.world_size)
        # the largest r with floor(r*n/W) <= b, i.e. r*n <= (b+1)*W - 1
        return torch.div((blocks + 1) * self.world_size - 1, self.n_blocks, rounding_mode="floor")

    def local_index(self, blocks: torch.Tensor) -> torch.Tensor:
        """Position of each block inside its owner's local table (same shape, int64)."""
        if self.strategy == "modulo":
            return torch.div(blocks, self.world_size, rounding_mode="floor")
        return blocks - self._starts.to(blocks.device)[self.owner(blocks)]

    def local_index_on(self, rank: int, blocks: torch.Tensor) -> torch.Tensor:
        """:meth:`local_index` for blocks known to belong to ``rank`` (no owner lookup)."""
        if self.strategy == "modulo":
            return torch.div(blocks, self.world_size, rounding_mode="floor")
        return blocks - int(self._starts[rank])

    def blocks_of(self, rank: int) -> torch.Tensor:
        """``[n_local_blocks]`` global ids of the blocks ``rank`` owns, in local order."""
        if not 0 <= rank < self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size}), got {rank}")
        if self.strategy == "modulo":
            return torch.arange(rank, self.n_blocks, self.world_size, dtype=torch.int64)
        return torch.arange(int(self._starts[rank]), int(self._starts[rank + 1]), dtype=torch.int64)

    def n_local_blocks(self, rank: int) -> int:
        return int(self.blocks_of(rank).numel())

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (stored in checkpoint metadata): the rule and, per rank,
        the blocks it owns (``[start, stop)`` ranges for contiguous, ``start::step`` for modulo)."""
        if self.strategy == "contiguous":
            per_rank = [
                [int(self._starts[r]), int(self._starts[r + 1])] for r in range(self.world_size)
            ]
            rule = "rank r owns blocks [floor(r*n_blocks/W), floor((r+1)*n_blocks/W))"
        else:
            per_rank = [[r, self.n_blocks, self.world_size] for r in range(self.world_size)]
            rule = "block b belongs to rank b % W, local block b // W"
        return {
            "strategy": self.strategy,
            "n_blocks": self.n_blocks,
            "world_size": self.world_size,
            "rule": rule,
            "blocks_per_rank": per_rank,
        }

    def __repr__(self) -> str:
        return f"BlockAssignment(n_blocks={self.n_blocks}, world_size={self.world_size}, strategy={self.strategy!r})"
