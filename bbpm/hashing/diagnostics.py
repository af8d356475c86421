"""Collision and load diagnostics of an index set, as defined in the BBPM spec.

Every function takes ``indices`` of any shape (typically ``[B, K*H]`` from a hash) holding
slot ids in ``[0, D)``; the load of slot i is ``c_i``, the number of times i occurs.
"""

from __future__ import annotations

import numbers

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
