"""Occupancy benchmark plumbing (notebook bench02_occupancy): the hash families compared,
the key sets, and one measured-vs-theory row per (hash, key kind, load factor)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bbpm.hashing import BlockPermutationHash, GlobalAffineHash, MultiHashWrapper, diagnostics
from bbpm.theory import expected_load_histogram, occupancy_prediction

KEY_KINDS = ("consecutive", "random")


def hash_families(
    D: int, K: int, multi_H: int, block_size: int, seed: int
) -> dict[str, tuple[Any, int, int]]:
    """name -> (hash, slots per hash, hashes): every family places ``K`` slots per key in
    total (the multi-hash families ``K / multi_H`` per hash). Raises ``ValueError`` unless
    ``multi_H`` divides ``K`` and ``block_size`` divides ``D``."""
    if K % multi_H != 0:
        raise ValueError(
            f"K={K} must be divisible by multi_H={multi_H} (the multi-hash uses K/H slots per hash)"
        )
    if D % block_size != 0:
        raise ValueError(f"D={D} must be a multiple of block_size={block_size}")
    per_hash = K // multi_H
    return {
        "global mixed": (GlobalAffineHash(D, seed=seed), K, 1),
        "global prototype": (GlobalAffineHash(D, mode="prototype"), K, 1),
        f"block L={block_size}": (BlockPermutationHash(D, block_size, seed=seed), K, 1),
        f"multi-hash global x{multi_H}": (
            MultiHashWrapper(GlobalAffineHash(D), seed=seed),
            per_hash,
            multi_H,
        ),
        f"multi-hash block x{multi_H}": (
            MultiHashWrapper(BlockPermutationHash(D, block_size), seed=seed),
            per_hash,
            multi_H,
        ),
    }


def make_keys(kind: str, n: int, seed: int) -> torch.Tensor:
    """``[n]`` int64 keys: ``0..n-1`` (``"consecutive"``) or seeded uniform in ``[0, 2**62)``
    (``"random"``)."""
    if kind == "consecutive":
        return torch.arange(n)
    if kind == "random":
        return torch.randint(0, 2**62, (n,), generator=torch.Generator().manual_seed(seed))
    raise ValueError(f"key kind must be 'consecutive' or 'random', got {kind!r}")


def occupancy_row(
    hash_fn: Any, k_per_hash: int, n_hashes: int, keys: torch.Tensor, D: int
) -> tuple[dict, dict]:
    """Hash ``keys`` and compare their slot loads with uniform hashing: the diagnostics of
    :func:`bbpm.hashing.diagnostics.summarize`, their theory values and the total-variation
    distance of the occupancy histogram to the binomial one; and the histogram pair
    (``measured``, ``theory`` over at least 12 loads) for plotting."""
    N = keys.numel()
    idx = hash_fn.indices(keys, k_per_hash, n_hashes)
    hist = diagnostics.occupancy_hist(idx, D).double().numpy()
    theory = occupancy_prediction(N, D, k_per_hash, n_hashes)
    top = max(hist.size, 40)
    expected = expected_load_histogram(N, D, k_per_hash, n_hashes, top - 1)
    padded = np.zeros(top)
    padded[: hist.size] = hist
    row = {
        **diagnostics.summarize(idx, D),
        "gini_theory": diagnostics.gini_of_histogram(expected),
        "max_load_theory": theory["max_load"],
        "q2_theory": theory["q2"],
        "occupied_fraction_theory": theory["occupied_fraction"],
        "tv_distance": 0.5 * float(np.abs(padded / D - expected / D).sum()),
    }
    return row, {"measured": hist.tolist(), "theory": expected[: max(hist.size, 12)].tolist()}
