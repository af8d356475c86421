"""Closed-form predictions for the peer memories (Gaussian crosstalk model).

A read is modelled as ``r = v + n``: the unit signal ``v`` plus isotropic crosstalk ``n`` of
expected energy ``rho = E||n||^2`` (in units of ``||v||^2 = 1``). Then, to first order,

    cos(r, v) ~ 1 / sqrt(1 + rho),

and top-1 cleanup against C random unit codes in d dimensions (wrong-code scores
~ N(0, (1 + rho)/d), true-code score ~ N(1, rho/d)) succeeds with probability

    P(rho) = E_z[ Phi( (1 + sqrt(rho/d) z) / sqrt((1 + rho)/d) ) ^ (C - 1) ],  z ~ N(0, 1).

Per memory: FHRR banks, ``rho = n_b / 2`` with ``n_b ~ Binomial(N-1, 1/G)`` other items
in the key's bank; count sketch, ``rho = f_R (N-1) / (R W)`` with ``f_R = 1`` for the mean
over rows and ``f_R = R Var(median of R N(0,1))`` for the median (its high-load,
Gaussian limit); a FIFO store of ``capacity`` items, accuracy ``min(1, capacity / N)``;
Hebbian fast weights read through k-of-m codes (the fly hash), ``rho_q = (N-1) E[o^2] / k^2``
per key q, with ``o`` the overlap of q's code with another item's, ``E[o] = sum_{u in c_q} p_u``
from the measured unit usage ``p_u`` (``E[o^2] ~ E[o]`` while overlaps are rare), averaged
over keys because popular units make some keys noisier than others.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_HERMITE_NODES = 80


def _as_array(x: float | np.ndarray | list[float]) -> np.ndarray:
    return np.atleast_1d(np.asarray(x, dtype=np.float64))


def expected_cosine_gaussian(rho: float | np.ndarray) -> np.ndarray:
    """First-order ``E cos(r, v) = 1 / sqrt(1 + rho)`` for crosstalk energy ``rho``."""
    return 1.0 / np.sqrt(1.0 + _as_array(rho))


def top1_accuracy_gaussian(rho: float | np.ndarray, d: int, C: int) -> np.ndarray:
    """Probability that the true code is the top-1 of ``C`` random unit codes in ``d``
    dimensions, for crosstalk energy ``rho`` (array in, array out)."""
    if d <= 0 or C <= 0:
        raise ValueError(f"d and C must be positive, got d={d}, C={C}")
    rho = _as_array(rho)
    nodes, weights = np.polynomial.hermite_e.hermegauss(_HERMITE_NODES)  # weight exp(-z^2/2)
    weights = weights / math.sqrt(2.0 * math.pi)
    arg = (1.0 + np.sqrt(rho[:, None] / d) * nodes[None, :]) / np.sqrt((1.0 + rho[:, None]) / d)
    log_phi = torch.special.log_ndtr(torch.from_numpy(arg)).numpy()
    return (np.exp((C - 1) * log_phi) * weights[None, :]).sum(axis=1)


def _binomial_pmf_support(n: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Values and probabilities of Binomial(n, p) within 12 standard deviations of the mean."""
    if n <= 0:
        return np.zeros(1), np.ones(1)
    mean, sd = n * p, math.sqrt(max(n * p * (1 - p), 1e-12))
    lo, hi = max(0, int(mean - 12 * sd - 2)), min(n, int(mean + 12 * sd + 2))
    k = np.arange(lo, hi + 1, dtype=np.float64)
    if p >= 1.0:
        return np.array([float(n)]), np.ones(1)
    log_pmf = (
        torch.lgamma(torch.tensor(n + 1.0, dtype=torch.float64)).item()
        - torch.lgamma(torch.from_numpy(k + 1)).numpy()
        - torch.lgamma(torch.from_numpy(n - k + 1)).numpy()
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    pmf = np.exp(log_pmf)
    return k, pmf / pmf.sum()


def fhrr_banks_prediction(N: int, n_banks: int, d: int, C: int) -> dict[str, float]:
    """FHRR with G banks: ``{"cosine", "accuracy"}`` averaged over the Binomial(N-1, 1/G)
    number of other items in the queried key's bank (crosstalk energy n_b / 2)."""
    others, pmf = _binomial_pmf_support(N - 1, 1.0 / n_banks)
    rho = others / 2.0
    return {
        "cosine": float((expected_cosine_gaussian(rho) * pmf).sum()),
        "accuracy": float((top1_accuracy_gaussian(rho, d, C) * pmf).sum()),
    }


def median_variance_factor(R: int) -> float:
    """``R * Var(median of R iid N(0,1))``: the variance of the median relative to the mean's
    (1 for R <= 2, tends to pi/2). Odd R by numerical integration of the order statistic;
    even R (median = midpoint of the two middles) by a seeded Monte Carlo of 200k draws."""
    if R <= 2:
        return 1.0
    if R % 2 == 0:
        generator = torch.Generator().manual_seed(R)
        draws = torch.randn(200_000, R, generator=generator, dtype=torch.float64).sort(dim=1).values
        return float(R * (0.5 * (draws[:, R // 2 - 1] + draws[:, R // 2])).var())
    m = (R + 1) // 2
    x = np.linspace(-8.0, 8.0, 20001)
    cdf = torch.special.ndtr(torch.from_numpy(x)).numpy()
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    coefficient = math.exp(math.lgamma(R + 1) - math.lgamma(m) - math.lgamma(R - m + 1))
    density = coefficient * cdf ** (m - 1) * (1.0 - cdf) ** (R - m) * pdf
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy >= 2 renamed trapz
    return float(R * trapezoid(x * x * density, x))


def count_sketch_rho(
    N: int | np.ndarray, rows: int, width: int, estimator: str = "median"
) -> np.ndarray:
    """Crosstalk energy of a count-sketch read: ``f_R (N-1) / (R W)``."""
    factor = median_variance_factor(rows) if estimator == "median" else 1.0
    return factor * np.maximum(_as_array(N) - 1.0, 0.0) / (rows * width)


def fifo_accuracy(N: int | np.ndarray, capacity: int) -> np.ndarray:
    """An exact store that keeps the last ``capacity`` of N distinct items: ``min(1, capacity/N)``."""
    return np.minimum(1.0, capacity / np.maximum(_as_array(N), 1.0))


def code_overlap_per_key(codes: torch.Tensor, m: int) -> np.ndarray:
    """``codes [n, k]`` (the k-of-m codes of n random keys) -> ``[n]`` expected overlap of
    each key's code with the code of another random key, ``sum_{u in c_q} p_u``, with the
    unit usage ``p_u`` estimated from the other ``n - 1`` codes (leave-one-out, unbiased)."""
    if codes.dim() != 2 or codes.shape[0] < 2:
        raise ValueError(f"codes must be [n >= 2, k], got shape {tuple(codes.shape)}")
    usage = torch.bincount(codes.reshape(-1), minlength=m).double()
    others = (usage[codes] - 1.0).sum(dim=1) / (codes.shape[0] - 1)
    return others.numpy()


def hebbian_code_prediction(
    N: int, overlap: np.ndarray, k: int, d: int, C: int
) -> dict[str, float]:
    """Mean cosine and top-1 accuracy of a read ``c_q W / k`` after N items, averaged over
    the keys' expected overlaps ``overlap [n]`` (:func:`code_overlap_per_key`)."""
    rho = max(N - 1, 0) * _as_array(overlap) / float(k) ** 2
    return {
        "cosine": float(expected_cosine_gaussian(rho).mean()),
        "accuracy": float(top1_accuracy_gaussian(rho, d, C).mean()),
    }
