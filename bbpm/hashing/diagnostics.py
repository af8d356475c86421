"""Collision and load diagnostics of an index set, as defined in the BBPM spec.

Every function takes ``indices`` of any shape (typically ``[B, K*H]`` from a hash) holding
slot ids in ``[0, D)``; the load of slot i is ``c_i``, the number of times i occurs.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch


def _check_indices(indices: torch.Tensor) -> None:
    if (
        not isinstance(indices, torch.Tensor)
        or indices.is_floating_point()
        or indices.is_complex()
        or indices.dtype == torch.bool
    ):
        raise TypeError("indices must be an integer torch.Tensor of slot ids")


def _loads(indices: torch.Tensor, D: int) -> torch.Tensor:
    _check_indices(indices)
    if isinstance(D, bool) or not isinstance(D, numbers.Integral) or D <= 0:
        raise ValueError(f"D must be a positive int, got {D!r}")
    D = int(D)
    flat = indices.reshape(-1).to(torch.int64)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= D):
        raise ValueError(
            f"indices must lie in [0, D) = [0, {D}), got range [{int(flat.min())}, {int(flat.max())}]"
        )
    return torch.bincount(flat, minlength=D)


def slot_loads(indices: torch.Tensor, D: int) -> torch.Tensor:
    """``[D]`` int64: how many indices hit each slot (``c_i``)."""
    return _loads(indices, D)


def occupancy_hist(indices: torch.Tensor, D: int) -> torch.Tensor:
    """Histogram of slot loads: entry ``j`` is the number of slots hit exactly ``j`` times
    (entry 0 counts empty slots). Length ``max_load + 1``; sums to ``D``."""
    return torch.bincount(_loads(indices, D))


def max_load(indices: torch.Tensor, D: int) -> int:
    """The largest slot load ``max_i c_i``."""
    return int(_loads(indices, D).max())


def gini_load(indices: torch.Tensor, D: int) -> float:
    """Gini coefficient of the slot loads over all D slots: 0 for perfectly even loads,
    approaching 1 when a few slots take everything."""
    loads = torch.sort(_loads(indices, D).to(torch.float64)).values
    total = float(loads.sum())
    if total == 0.0:
        return 0.0
    n = loads.numel()
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    return float((2.0 * (ranks * loads).sum()) / (n * total) - (n + 1.0) / n)


def collision_rate(indices: torch.Tensor) -> float:
    """Within-batch duplicates: the share of indices that repeat an earlier one,
    ``1 - n_unique / n_total`` (0 when all distinct)."""
    _check_indices(indices)
    flat = indices.reshape(-1)
    if flat.numel() == 0:
        return 0.0
    return 1.0 - torch.unique(flat).numel() / flat.numel()


def estimate_q2(indices: torch.Tensor, D: int) -> float:
    """``sum_i (c_i / total)^2``, a proxy for ``sum_i q_i^2`` (the collision probability of
    two independent draws from the slot distribution q). Uniform hashing gives about
    ``1/D + 1/total``; larger values mean skewed occupancy."""
    loads = _loads(indices, D).to(torch.float64)
    total = loads.sum()
    if total == 0:
        return 0.0
    return float(((loads / total) ** 2).sum())


def self_collision_rate(indices: torch.Tensor) -> float:
    """Share of rows (keys) whose own K*H slots are not all distinct."""
    _check_indices(indices)
    if indices.dim() != 2 or indices.shape[0] == 0:
        return 0.0
    sorted_rows = torch.sort(indices, dim=1).values
    repeats = (sorted_rows[:, 1:] == sorted_rows[:, :-1]).any(dim=1)
    return float(repeats.double().mean())


def summarize(indices: torch.Tensor, D: int) -> dict[str, float]:
    """All diagnostics in one dict (for metrics.json)."""
    loads = _loads(indices, D)
    nonzero = loads[loads > 0]
    return {
        "n_indices": int(indices.numel()),
        "occupied_fraction": float((loads > 0).double().mean()),
        "mean_load_occupied": float(nonzero.double().mean()) if nonzero.numel() else 0.0,
        "max_load": int(loads.max()),
        "gini_load": gini_load(indices, D),
        "collision_rate": collision_rate(indices),
        "q2": estimate_q2(indices, D),
        "q2_uniform": 1.0 / D,
        "self_collision_rate": self_collision_rate(indices),
    }


def neighbour_overlap(idx: torch.Tensor, eval_rows: torch.Tensor, D: int) -> dict[str, float]:
    """Slot sharing between the evaluated items and all written items.

    Args:
        idx: ``[N, M]`` int64 slots in ``[0, D)`` of every written item (M = K*H).
        eval_rows: ``[E]`` rows of ``idx`` to evaluate.
        D: table size.

    Returns:
        mean number of distinct neighbours (other items sharing >= 1 slot) per evaluated item,
        mean slots shared per (item, neighbour) pair, and mean over items of the largest
        number of slots shared with a single neighbour.
    """
    n_items, slots_per_item = idx.shape
    eval_slots = idx[eval_rows].reshape(-1)
    eval_owner = torch.arange(eval_rows.numel()).repeat_interleave(slots_per_item)
    touched = torch.zeros(D, dtype=torch.bool)
    touched[eval_slots] = True
    flat = idx.reshape(-1)
    hit = touched[flat]
    other_slots = flat[hit]
    other_owner = torch.arange(n_items).repeat_interleave(slots_per_item)[hit]
    order = torch.argsort(eval_slots)
    sorted_slots, sorted_owner = eval_slots[order], eval_owner[order]
    lo = torch.searchsorted(sorted_slots, other_slots, right=False)
    hi = torch.searchsorted(sorted_slots, other_slots, right=True)
    reps = hi - lo  # >= 1: every selected slot belongs to at least one evaluated item
    pos = torch.repeat_interleave(lo, reps) + (
        torch.arange(int(reps.sum())) - torch.repeat_interleave(torch.cumsum(reps, 0) - reps, reps)
    )
    pair_eval = sorted_owner[pos]
    pair_other = torch.repeat_interleave(other_owner, reps)
    not_self = pair_other != eval_rows[pair_eval]
    pair_ids = pair_eval[not_self] * n_items + pair_other[not_self]
    pairs, shared = torch.unique(pair_ids, return_counts=True)
    pair_item = pairs // n_items
    n_eval_items = eval_rows.numel()
    neighbours = torch.bincount(pair_item, minlength=n_eval_items).double()
    max_shared = torch.zeros(n_eval_items, dtype=torch.int64).scatter_reduce(
        0, pair_item, shared, reduce="amax"
    )
    return {
        "neighbours_per_item": float(neighbours.mean()),
        "shared_slots_per_neighbour": float(shared.double().mean()) if shared.numel() else math.nan,
        "max_shared_slots": float(max_shared.double().mean()),
    }


def gini_of_histogram(hist: np.ndarray) -> float:
    """Gini coefficient of loads given ``hist[j]`` = number (or expected number) of slots
    with load j: ``sum_{j,k} h_j h_k |j - k| / (2 S^2 mean)`` with S = sum h."""
    hist = np.asarray(hist, dtype=np.float64)
    loads = np.arange(hist.size)
    total, mass = hist.sum(), (hist * loads).sum()
    if mass == 0:
        return 0.0
    diff = np.abs(loads[:, None] - loads[None, :])
    return float((hist[:, None] * hist[None, :] * diff).sum() / (2 * total * mass))
