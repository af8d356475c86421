"""BBPM sized from a byte budget, so it can stand beside the peers at equal bytes."""

from __future__ import annotations

import math

import torch

from bbpm.baselines.base import check_budget, check_float_dtype, check_positive_int
from bbpm.hashing import BlockPermutationHash, GlobalAffineHash
from bbpm.memory import BBPMMemoryFloat

HASHES = ("global", "block")


def bbpm_slots_for_budget(nbytes: int, d: int, dtype: torch.dtype = torch.float32) -> int:
    """Slots D that fit: each slot holds d values plus one count, ``D = nbytes // (d*itemsize + count_itemsize)``."""
    dtype = check_float_dtype(dtype)
    itemsize = torch.empty((), dtype=dtype).element_size()
    count_itemsize = 8 if dtype == torch.float64 else 4
    per_slot = check_positive_int("d", d) * itemsize + count_itemsize
    return (
        check_budget(nbytes, per_slot, f"one slot of d*itemsize + 4 = {per_slot} bytes") // per_slot
    )


def bbpm_from_budget(
    nbytes: int,
    d: int,
    K: int = 4,
    H: int = 1,
    hash: str = "global",
    block_size: int = 4096,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    read_rule: str = "debiased",
) -> BBPMMemoryFloat:
    """A :class:`~bbpm.memory.BBPMMemoryFloat` whose ``memory`` and ``counts`` fit in ``nbytes``.

    ``hash="global"``: :class:`~bbpm.hashing.GlobalAffineHash` over all D slots.
    ``hash="block"``: :class:`~bbpm.hashing.BlockPermutationHash`; D must be a multiple of the
    block size, so the table is split into ``ceil(D / block_size)`` equal blocks of at most
    ``block_size`` slots (losing fewer than one slot per block to rounding).
    ``read_rule``: the memory's read rule (:mod:`bbpm.memory.read_rules`).
    """
    D = bbpm_slots_for_budget(nbytes, d, dtype)
    if hash == "global":
        hash_fn = GlobalAffineHash(D, seed=seed)
    elif hash == "block":
        block_size = check_positive_int("block_size", block_size)
        n_blocks = math.ceil(D / block_size)
        if H > n_blocks:  # distinct blocks per hash need H blocks
            n_blocks = H
        size = D // n_blocks
        if size < K:
            raise ValueError(
                f"budget too small for K={K} distinct slots per block (block of {size} slots); raise nbytes or lower K"
            )
        D = n_blocks * size
        hash_fn = BlockPermutationHash(D, block_size=size, seed=seed)
    else:
        raise ValueError(f"hash must be one of {HASHES}, got {hash!r}")
    if K * H > D:
        raise ValueError(
            f"K*H={K * H} slots per item exceed the D={D} slots the budget allows; raise nbytes or lower K, H"
        )
    return BBPMMemoryFloat(D, d, K, H, hash_fn, dtype=dtype, device=device, read_rule=read_rule)
