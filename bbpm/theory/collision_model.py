"""Slot occupancy and collisions of hashed writes, uniform and non-uniform.

Setting. N items are written, each into ``M = K*H`` slots of a table of D slots. Under
*uniform hashing* every hash draws a key's K slots uniformly at random and distinct (the
default :class:`~bbpm.hashing.GlobalAffineHash` behaves so), independently across keys and
hashes, so a fixed slot is hit by one item's hash with probability ``K/D`` and its load is

    c ~ Binomial(N*H, K/D)  ~  Poisson(lambda),    lambda = N*K*H/D  (the load factor).

Under *non-uniform* hashing slot i receives each of the ``T = N*K*H`` write entries with
probability ``q_i`` (``sum_i q_i = 1``), treated as independent draws; then
``c_i ~ Binomial(T, q_i)`` and two independent entries land in the same slot with
probability ``sum_i q_i^2`` (``1/D`` when uniform), the quantity that
:func:`bbpm.hashing.diagnostics.estimate_q2` estimates.

Every function returns plain floats or NumPy arrays (float64); ``q`` arguments are
``[D]`` arrays (NumPy or torch) of nonnegative slot probabilities summing to 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_setting(N: int, D: int, K: int, H: int) -> tuple[int, int, int, int]:
    """Validate a memory setting: ``N >= 1`` items, ``D >= 1`` slots, ``1 <= K <= D``, ``H >= 1``."""
    N, D, K, H = (check_int(n, v) for n, v in (("N", N), ("D", D), ("K", K), ("H", H)))
    if K > D:
        raise ValueError(f"K must be <= D (K distinct slots per hash), got K={K}, D={D}")
    return N, D, K, H


def check_q(q: Any) -> np.ndarray:
    """``q`` as a float64 ``[D]`` array of slot probabilities (nonnegative, summing to 1)."""
    if isinstance(q, torch.Tensor):
        q = q.detach().cpu().double().numpy()
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 1 or q.size == 0:
        raise ValueError(f"q must be a 1-D array of D slot probabilities, got shape {q.shape}")
    if (q < 0).any() or not np.isfinite(q).all():
        raise ValueError("q must hold finite nonnegative probabilities")
    total = float(q.sum())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"q must sum to 1, got {total:.6g}; pass loads / loads.sum()")
    return q


def q_from_loads(loads: Any) -> np.ndarray:
    """Empirical slot distribution ``q_i = c_i / sum(c)`` from ``[D]`` loads
    (e.g. :func:`bbpm.hashing.diagnostics.slot_loads`)."""
    if isinstance(loads, torch.Tensor):
        loads = loads.detach().cpu().double().numpy()
    loads = np.asarray(loads, dtype=np.float64)
    total = loads.sum()
    if total <= 0:
        raise ValueError("loads must have a positive sum")
    return loads / total


# ---------------------------------------------------------------------------- distributions
def binomial_pmf(n_trials: int, p: float, max_value: int | None = None) -> np.ndarray:
    """``P(X = j)`` for ``X ~ Binomial(n_trials, p)``, ``j = 0..max_value`` (default: up to
    where the remaining tail mass is below 1e-16). Computed in log space (stable for
    n_trials in the billions)."""
    n_trials = check_int("n_trials", n_trials, minimum=0)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    if max_value is None:
        mean, sd = n_trials * p, math.sqrt(n_trials * p * (1 - p))
        max_value = int(mean + 12 * sd + 30)
    max_value = min(max_value, n_trials)
    j = np.arange(max_value + 1, dtype=np.float64)
    if p == 0.0 or p == 1.0:
        pmf = np.zeros(max_value + 1)
        if p == 0.0:
            pmf[0] = 1.0
        elif n_trials <= max_value:
            pmf[n_trials] = 1.0
        return pmf
    log_choose = np.array(
        [math.lgamma(n_trials + 1) - math.lgamma(k + 1) - math.lgamma(n_trials - k + 1) for k in j]
    )
    return np.exp(log_choose + j * math.log(p) + (n_trials - j) * math.log1p(-p))


def slot_load_pmf(N: int, D: int, K: int, H: int, max_load: int | None = None) -> np.ndarray:
    """``[max_load + 1]``: distribution of the load of one fixed slot after N items under
    uniform hashing, ``Binomial(N*H, K/D)``."""
    N, D, K, H = check_setting(N, D, K, H)
    return binomial_pmf(N * H, K / D, max_load)


def other_load_pmf(N: int, D: int, K: int, H: int, max_load: int | None = None) -> np.ndarray:
    """``[max_load + 1]``: distribution of the number of *other* items' entries in one slot
    of a given key, ``Binomial((N-1)*H, K/D)`` (the load seen by a read)."""
    N, D, K, H = check_setting(N, D, K, H)
    return binomial_pmf((N - 1) * H, K / D, max_load)


# ---------------------------------------------------------------------------- uniform hashing
def load_factor(N: int, D: int, K: int, H: int) -> float:
    """``lambda = N*K*H/D``: mean writes per slot."""
    N, D, K, H = check_setting(N, D, K, H)
    return N * K * H / D


def expected_occupied_fraction(N: int, D: int, K: int, H: int) -> float:
    """Expected share of slots hit at least once: ``1 - (1 - K/D)^(N*H)`` (~ ``1 - exp(-lambda)``)."""
    N, D, K, H = check_setting(N, D, K, H)
    return -math.expm1(N * H * math.log1p(-K / D)) if K < D else 1.0


def expected_load_histogram(
    N: int, D: int, K: int, H: int, max_load: int | None = None
) -> np.ndarray:
    """``[max_load + 1]``: expected number of slots with load exactly j, ``D * P(c = j)``.
    Compare with :func:`bbpm.hashing.diagnostics.occupancy_hist`."""
    return D * slot_load_pmf(N, D, K, H, max_load)


def prob_slot_shared(N: int, D: int, K: int, H: int) -> float:
    """Probability that a given slot of a given key also holds at least one other item:
    ``1 - (1 - K/D)^((N-1)*H)``."""
    N, D, K, H = check_setting(N, D, K, H)
    return -math.expm1((N - 1) * H * math.log1p(-K / D)) if K < D else float(N > 1)


def prob_key_collides(N: int, D: int, K: int, H: int) -> float:
    """Probability that at least one of a key's ``K*H`` slots is shared with another item,
    ``1 - (1 - p_shared)^(K*H)`` (slots treated as independent)."""
    p = prob_slot_shared(N, D, K, H)
    return -math.expm1(K * H * math.log1p(-p)) if p < 1 else 1.0


def expected_collision_rate(N: int, D: int, K: int, H: int) -> float:
    """Expected :func:`bbpm.hashing.diagnostics.collision_rate` of all ``T = N*K*H``
    indices: ``1 - E[#occupied] / T``."""
    N, D, K, H = check_setting(N, D, K, H)
    return 1.0 - D * expected_occupied_fraction(N, D, K, H) / (N * K * H)


def expected_q2_estimate(N: int, D: int, K: int, H: int) -> float:
    """Expected :func:`bbpm.hashing.diagnostics.estimate_q2` of the ``T = N*K*H`` indices
    under uniform hashing with K distinct slots per hash: ``1/D + (1 - K/D)/T``.

    Derivation: ``c_i`` is a sum of ``N*H`` independent Bernoulli(K/D), so
    ``E[c_i^2] = N*H*(K/D)(1 - K/D) + (T/D)^2`` and ``sum_i E[c_i^2] / T^2`` gives the result.
    """
    N, D, K, H = check_setting(N, D, K, H)
    T = N * K * H
    return 1.0 / D + (1.0 - K / D) / T


def expected_max_load(N: int, D: int, K: int, H: int) -> float:
    """Approximate expected maximum slot load, ``sum_{j>=1} P(max >= j)`` with
    ``P(max >= j) = 1 - (1 - P(c >= j))^D`` (slot loads treated as independent)."""
    pmf = slot_load_pmf(N, D, K, H)
    return _expected_max_from_pmfs(pmf[None, :], np.array([D]))


def _expected_max_from_pmfs(pmfs: np.ndarray, multiplicity: np.ndarray) -> float:
    """``pmfs: [G, J]`` load pmfs of G slot groups, ``multiplicity: [G]`` slots per group."""
    tail = np.clip(1.0 - np.cumsum(pmfs, axis=1), 0.0, 1.0)  # P(c > j) = P(c >= j+1)
    # P(max >= j+1) = 1 - prod_g (1 - P(c_g >= j+1))^{m_g}
    with np.errstate(divide="ignore"):  # tail == 1 gives log 0 = -inf: P(max >= j) = 1
        log_none = (multiplicity[:, None] * np.log1p(-tail)).sum(axis=0)
    return float((-np.expm1(log_none)).sum())


# ---------------------------------------------------------------------------- non-uniform q
def pairwise_collision_probability(q: Any) -> float:
    """``sum_i q_i^2``: probability that two independent write entries share a slot
    (``1/D`` for uniform q). :func:`bbpm.hashing.diagnostics.estimate_q2` estimates it."""
    q = check_q(q)
    return float(np.dot(q, q))


def expected_q2_estimate_nonuniform(q: Any, n_draws: int) -> float:
    """Expected ``estimate_q2`` of ``n_draws`` independent entries drawn from q:
    ``sum q_i^2 + (1 - sum q_i^2) / n_draws`` (the estimator's upward bias)."""
    q2 = pairwise_collision_probability(q)
    n_draws = check_int("n_draws", n_draws)
    return q2 + (1.0 - q2) / n_draws


def effective_slots(q: Any) -> float:
    """``1 / sum q_i^2``: the number of uniform slots with the same pairwise collision
    probability (D for uniform q, smaller when occupancy is skewed)."""
    return 1.0 / pairwise_collision_probability(q)


def expected_occupied_fraction_nonuniform(q: Any, n_draws: int) -> float:
    """Expected share of the D slots hit at least once by ``n_draws`` independent entries
    drawn from q: ``(1/D) sum_i [1 - (1 - q_i)^n_draws]``."""
    q = check_q(q)
    n_draws = check_int("n_draws", n_draws, minimum=0)
    return float(np.mean(-np.expm1(n_draws * np.log1p(-np.minimum(q, 1 - 1e-16)))))


def expected_load_histogram_nonuniform(
    q: Any, n_draws: int, max_load: int | None = None
) -> np.ndarray:
    """``[max_load + 1]``: expected number of slots with load j, ``sum_i P(Binomial(n_draws, q_i) = j)``."""
    q = check_q(q)
    n_draws = check_int("n_draws", n_draws, minimum=0)
    values, multiplicity = np.unique(q, return_counts=True)
    if max_load is None:
        top = float(values.max()) * n_draws
        max_load = int(top + 12 * math.sqrt(top + 1) + 30)
    hist = np.zeros(max_load + 1)
    for value, count in zip(values, multiplicity, strict=True):
        pmf = binomial_pmf(n_draws, float(value), max_load)
        hist[: pmf.size] += count * pmf
    return hist


def prob_slot_shared_nonuniform(q: Any, n_other: int) -> float:
    """Probability that one write entry drawn from q lands in a slot that at least one of
    ``n_other`` other independent entries also hits: ``sum_i q_i [1 - (1 - q_i)^n_other]``.
    (Uniform q with ``n_other = (N-1)*K*H`` recovers :func:`prob_slot_shared`.)"""
    q = check_q(q)
    n_other = check_int("n_other", n_other, minimum=0)
    return float(np.dot(q, -np.expm1(n_other * np.log1p(-np.minimum(q, 1 - 1e-16)))))


def expected_max_load_nonuniform(q: Any, n_draws: int) -> float:
    """Approximate expected maximum load of ``n_draws`` entries drawn from q (slot loads
    treated as independent binomials)."""
    q = check_q(q)
    n_draws = check_int("n_draws", n_draws, minimum=0)
    values, multiplicity = np.unique(q, return_counts=True)
    top = float(values.max()) * n_draws
    J = int(top + 12 * math.sqrt(top + 1) + 30)
    pmfs = np.stack([binomial_pmf(n_draws, float(v), J) for v in values])
    return _expected_max_from_pmfs(pmfs, multiplicity.astype(np.float64))


def occupancy_prediction(N: int, D: int, K: int, H: int) -> dict[str, float]:
    """Uniform-hashing predictions of the fields of
    :func:`bbpm.hashing.diagnostics.summarize` for the ``N*K*H`` indices of N items."""
    N, D, K, H = check_setting(N, D, K, H)
    T = N * K * H
    occupied = expected_occupied_fraction(N, D, K, H)
    return {
        "load_factor": T / D,
        "occupied_fraction": occupied,
        "mean_load_occupied": T / (D * occupied) if occupied > 0 else 0.0,
        "max_load": expected_max_load(N, D, K, H),
        "collision_rate": expected_collision_rate(N, D, K, H),
        "q2": expected_q2_estimate(N, D, K, H),
        "q2_uniform": 1.0 / D,
        "prob_slot_shared": prob_slot_shared(N, D, K, H),
        "prob_key_collides": prob_key_collides(N, D, K, H),
    }


# ---------------------------------------------------------------------------- per-key overlap
def key_overlap_statistics(
    indices: torch.Tensor, rows: torch.Tensor, D: int
) -> dict[str, np.ndarray]:
    """Exact read coefficients and overlap pattern of some keys, given the hash.

    Args:
        indices: ``[N, M]`` int64 slots of every written item (row y = item y, e.g.
            ``hash_fn.indices(arange(N), K, H)``), each item written once.
        rows: ``[B]`` int64 items to analyse (rows of ``indices``).
        D: table size.

    The count-debiased read of item x is ``r_x = sum_y c_xy v_y`` with
    ``c_xy = (1/M) sum_j (#entries of y in slot_j(x)) / count(slot_j(x))``; the signal is
    ``a = c_xx`` and the noise energy (for random unit values) ``s2 = sum_{y != x} c_xy^2``.
    ``m_xy`` is the number of x's slot positions that item y also occupies.

    Returns ``[B]`` float64 arrays: ``a``, ``s2``, ``n_items`` (distinct other items
    sharing a slot), ``sum_m`` (``sum_y m_xy``, other entries in x's slots),
    ``sum_m2`` (``sum_y m_xy^2``), ``max_m`` (largest overlap with a single other item).
    Uniform hashing gives ``sum_m2 ~ sum_m`` (overlaps of 1); structured hashes that
    make the same partners share many slots give ``sum_m2 >> sum_m`` and a large ``s2``.
    """
    if not isinstance(indices, torch.Tensor) or indices.dim() != 2:
        raise ValueError("indices must be a [N, M] int64 tensor of slots")
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise TypeError(f"indices must be integer slot ids, got {indices.dtype}")
    D = check_int("D", D)
    rows = torch.as_tensor(rows)
    if rows.is_floating_point() or rows.is_complex() or rows.dtype == torch.bool:
        raise TypeError(
            f"rows must be integer item ids (rows of indices), got {rows.dtype}; "
            "a float id would be truncated to another item"
        )
    rows = rows.to(torch.int64).reshape(-1)
    N, M = indices.shape
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= N):
        raise IndexError(
            f"rows must lie in [0, N) = [0, {N}), got range [{int(rows.min())}, {int(rows.max())}]"
        )
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= D):
        raise ValueError(f"indices must lie in [0, D) = [0, {D})")
    indices = indices.to(torch.int64).cpu()
    flat = indices.reshape(-1)
    counts = torch.bincount(flat, minlength=D)
    order = torch.argsort(flat, stable=True)
    items_sorted = order // M  # item id of each sorted entry
    starts = torch.cumsum(counts, 0) - counts
    slots = indices[rows]  # [B, M]
    lengths = counts[slots].reshape(-1)  # entries in each of the B*M slot positions
    total = int(lengths.sum())
    offsets = torch.cumsum(lengths, 0) - lengths
    within = torch.arange(total) - torch.repeat_interleave(offsets, lengths)
    pos = torch.repeat_interleave(starts[slots].reshape(-1), lengths) + within
    other = items_sorted[pos]
    key_of = torch.repeat_interleave(torch.arange(rows.numel()).repeat_interleave(M), lengths)
    weight = torch.repeat_interleave((1.0 / counts[slots].double()).reshape(-1), lengths) / M
    pair = key_of * N + other
    uniq, inverse = torch.unique(pair, return_inverse=True)
    coef = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, weight)
    mult = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(
        0, inverse, torch.ones_like(weight)
    )
    pair_key, pair_item = uniq // N, uniq % N
    is_self = pair_item == rows[pair_key]
    B = rows.numel()

    def per_key(values: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        return (
            torch.zeros(B, dtype=torch.float64).index_add_(0, pair_key[mask], values[mask]).numpy()
        )

    others = ~is_self
    max_m = torch.zeros(B, dtype=torch.float64).scatter_reduce_(
        0, pair_key[others], mult[others], reduce="amax", include_self=True
    )
    return {
        "a": per_key(coef, is_self),
        "s2": per_key(coef * coef, others),
        "n_items": per_key(torch.ones_like(coef), others),
        "sum_m": per_key(mult, others),
        "sum_m2": per_key(mult * mult, others),
        "max_m": max_m.numpy(),
    }
