"""Read fidelity of the ``"mean"`` and ``"inverse_noise"`` read rules
(:mod:`bbpm.memory.read_rules`), from the slot-load model of :mod:`bbpm.theory.snr_bounds`.

Model (as for the debiased read): N items with unit values written once each; slot j of a
key also holds ``n_j`` other items. Every rule reads ``r = sum_j alpha_j slot_j`` with
weights of unit gain (``sum_j alpha_j = 1``) for these two rules, so::

    r = v + e,   e = sum_y c_y v_y,   s2 = E||e||^2 = sum_j n_j alpha_j^2 + pair part,
    "mean":           alpha_j = 1/M
    "inverse_noise":  alpha_j = (1/n_j) / sum_k (1/n_k)   (no clean slot; else r = v exactly)

and the cosine given ``(a = 1, s2)`` is integrated by the same quadrature. The pair part
(one item in two slots j, k of the key, adding ``2 alpha_j alpha_k``) is taken at its
conditional mean ``pi_jk n_j n_k / mu^2`` (``pi_jk = (N-1) P(an item hits j and k)``, ``mu``
the mean load; :func:`bbpm.theory.snr_bounds.pair_hit_probabilities`).

Exact recall. The inverse-noise read returns the value exactly when one of the key's slots
holds no other item. :func:`exact_share` computes that probability without the independence
approximation: the number of the key's slots still unhit by other items is a Markov chain
over the other items' hashes (each covers a hypergeometric number of them: K distinct slots
of the block of L slots, or of all D for global hashing), so ``P = e_M T^n`` with a matrix
power. For the other rules "exact" means every slot clean.

For the inverse-noise cosine, ``E[cos] = P_exact + (1 - P_exact) E[cos | no clean slot]``;
the conditional term samples slot loads from the model conditioned on every load >= 1
(zero-truncated binomials, drawn exactly by the first-success trick; block hashing
importance-weights the block loads by the probability of no clean slot).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bbpm.theory.collision_model import check_int, check_setting

RULES = ("debiased", "mean", "inverse_noise")


def check_rule(read_rule: object) -> str:
    if not isinstance(read_rule, str) or read_rule not in RULES:
        raise ValueError(f"read_rule must be one of {RULES}, got {read_rule!r}")
    return read_rule


# ---------------------------------------------------------------------------- exact recall
def _log_choose(n: float, k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, np.float64)
    out = np.full(k.shape, -np.inf)
    ok = (k >= 0) & (k <= n)
    out[ok] = (
        math.lgamma(n + 1)
        - np.vectorize(math.lgamma)(k[ok] + 1)
        - np.vectorize(math.lgamma)(n - k[ok] + 1)
    )
    return out


def coverage_matrix(L: int, S: int, K: int) -> np.ndarray:
    """``[S+1, S+1]`` transition matrix of the number ``u`` of a key's ``S`` slots (of a
    region of ``L`` slots) not yet hit, when one more item hits ``K`` distinct slots of the
    region uniformly: ``T[u, u - x] = C(u, x) C(L - u, K - x) / C(L, K)``."""
    T = np.zeros((S + 1, S + 1))
    log_total = _log_choose(L, np.array([K]))[0]
    for u in range(S + 1):
        x = np.arange(0, min(u, K) + 1)
        logp = _log_choose(u, x) + _log_choose(L - u, K - x) - log_total
        T[u, u - x] = np.exp(logp)
    return T


def exact_share(
    N: int,
    D: int,
    K: int,
    H: int,
    read_rule: str = "inverse_noise",
    block_size: int | None = None,
) -> float:
    """Expected share of keys read back exactly (each of N keys written once).

    ``"inverse_noise"``: at least one of the key's K*H slots holds no other item.
    ``"debiased"`` and ``"mean"``: every slot holds no other item. Global hashing
    (``block_size=None``): the other ``(N-1)H`` hashes each hit K distinct slots of D;
    block hashing: each lands in the key's block (one per hash, blocks distinct) with
    probability ``L/D`` and hits K distinct slots of its L. Exact under that model (a
    Markov chain over the unhit slots, by matrix power), up to a key's own hashes meeting."""
    N, D, K, H = check_setting(N, D, K, H)
    read_rule = check_rule(read_rule)
    others = (N - 1) * H
    if block_size is None:
        S, region, parts, q = K * H, D, 1, 1.0
    else:
        L = check_int("block_size", block_size)
        if D % L or K > L:
            raise ValueError(f"block_size must divide D and be >= K, got {L}, D={D}, K={K}")
        S, region, parts, q = K, L, H, L / D
    T = coverage_matrix(region, S, K)
    step = (1.0 - q) * np.eye(S + 1) + q * T
    final = np.linalg.matrix_power(step, others)[S]  # law of the unhit count, from all unhit
    if read_rule == "inverse_noise":
        return float(1.0 - min(max(final[0], 0.0), 1.0) ** parts)
    return float(min(max(final[S], 0.0), 1.0) ** parts)


# ---------------------------------------------------------------------------- cosine terms
def _truncated_binomial(rng: np.random.Generator, n: np.ndarray, p: float) -> np.ndarray:
    """Draws of ``Binomial(n, p)`` conditioned on ``>= 1`` (``n >= 1``): the first success
    at trial ``g`` (inverse CDF of the truncated geometric) plus ``Binomial(n - g, p)``."""
    u = rng.random(n.shape)
    mass = -np.expm1(n * math.log1p(-p))  # P(at least one success)
    g = np.ceil(np.log1p(-u * mass) / math.log1p(-p))
    g = np.clip(g, 1, n).astype(np.int64)
    return 1 + rng.binomial(n - g, p)


def loaded_rows(
    N: int, D: int, K: int, H: int, n_samples: int, seed: int, block_size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(loads [S, K*H], weights [S])``: slot loads of keys conditioned on no clean slot,
    with importance weights (constant for global hashing)."""
    rng = np.random.default_rng(seed)
    M = K * H
    if block_size is None:
        trials = np.full((n_samples, M), (N - 1) * H, dtype=np.int64)
        return _truncated_binomial(rng, trials, K / D).astype(np.float64), np.ones(n_samples)
    L = block_size
    in_block = rng.binomial((N - 1) * H, L / D, size=(n_samples, H, 1))
    p = K / L
    weights = np.prod((-np.expm1(in_block[..., 0] * math.log1p(-p))) ** K, axis=1)
    trials = np.broadcast_to(np.maximum(in_block, 1), (n_samples, H, K))
    loads = _truncated_binomial(rng, np.ascontiguousarray(trials), p).reshape(n_samples, M)
    return loads.astype(np.float64), weights


def rule_coefficients(loads: np.ndarray, read_rule: str) -> tuple[np.ndarray, np.ndarray]:
    """``(a [S], alpha [S, M])``: signal gain and slot weights of ``read_rule`` given the
    other-item loads (``"inverse_noise"``: loads >= 1)."""
    M = loads.shape[1]
    if read_rule == "mean":
        return np.ones(loads.shape[0]), np.full(loads.shape, 1.0 / M)
    if read_rule == "inverse_noise":
        inv = 1.0 / loads
        return np.ones(loads.shape[0]), inv / inv.sum(axis=1, keepdims=True)
    w = 1.0 / (1.0 + loads)
    return w.mean(axis=1), w / M


def pair_part(
    alpha: np.ndarray, loads: np.ndarray, N: int, D: int, K: int, H: int, block_size: int | None
) -> np.ndarray:
    """``[S]`` expected pair part of s2 given the loads: ``sum_{j != k} alpha_j alpha_k
    pi_jk n_j n_k / mu^2``."""
    from bbpm.theory.snr_bounds import pair_hit_probabilities

    mu = (N - 1) * H * K / D
    if mu == 0:
        return np.zeros(loads.shape[0])
    p_same, p_cross = pair_hit_probabilities(N, D, K, H, block_size)
    x = alpha * loads / mu
    per_hash = x.reshape(x.shape[0], H, K).sum(axis=2)
    squares, hash_squares = (x * x).sum(axis=1), (per_hash**2).sum(axis=1)
    same = (hash_squares - squares) * (N - 1) * p_same
    cross = (x.sum(axis=1) ** 2 - hash_squares) * (N - 1) * p_cross
    return same + cross


def cosine_terms(
    loads: np.ndarray,
    a: np.ndarray,
    alpha: np.ndarray,
    pair: np.ndarray,
    d: int,
    seed: int,
    taus: tuple[float, ...] = (),
) -> tuple[np.ndarray, np.ndarray, dict[float, np.ndarray]]:
    """Per sampled key: ``E[cos]``, ``E[cos^2]``, ``P(cos > tau)`` given its loads and
    weights (Gaussian quadrature; keys with at most ``EXACT_ITEMS`` crosstalk entries get
    one exact draw of random unit values, as in :mod:`snr_bounds`)."""
    from bbpm.theory.snr_bounds import (
        EXACT_ITEMS,
        conditional_cosine_moments,
        conditional_share_above,
    )

    s2 = (loads * alpha * alpha).sum(axis=1) + pair
    # keys with the same loads (as a multiset) share one integral
    pairs, inverse = np.unique(np.stack([a, s2], axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n_nodes = 24 if d >= 4 else 48
    means, variances, shares_u = [], [], {tau: [] for tau in taus}
    for start in range(0, pairs.shape[0], 2048):
        chunk = pairs[start : start + 2048]
        m, v = conditional_cosine_moments(chunk[:, 0], chunk[:, 1], d, n_nodes)
        means.append(m)
        variances.append(v)
        for tau in taus:
            shares_u[tau].append(conditional_share_above(tau, chunk[:, 0], chunk[:, 1], d, n_nodes))
    mean_u, var_u = np.concatenate(means), np.concatenate(variances)
    mean, second = mean_u[inverse], (var_u + mean_u * mean_u)[inverse]
    shares = {tau: np.concatenate(shares_u[tau])[inverse] for tau in taus}
    exact = np.flatnonzero(loads.sum(axis=1) <= EXACT_ITEMS)
    if exact.size:
        M = loads.shape[1]
        gen = torch.Generator().manual_seed(seed + 1)
        sub = loads[exact].astype(np.int64).reshape(-1)
        coef = torch.from_numpy(np.repeat(alpha[exact].reshape(-1), sub).astype(np.float32))
        owner = torch.from_numpy(np.repeat(np.repeat(np.arange(exact.size), M), sub))
        values = torch.randn(coef.numel(), d, generator=gen)
        values *= (coef / values.norm(dim=1))[:, None]
        read = torch.zeros(exact.size, d)
        read[:, 0] = torch.from_numpy(a[exact].astype(np.float32))
        read.index_add_(0, owner, values)
        cos = (read[:, 0] / read.norm(dim=1)).double().numpy()
        mean[exact], second[exact] = cos, cos * cos
        for tau in taus:
            shares[tau][exact] = (cos > tau).astype(np.float64)
    return mean, second, shares


def rule_summary(
    N: int,
    D: int,
    K: int,
    H: int,
    d: int,
    read_rule: str,
    block_size: int | None = None,
    n_samples: int = 20000,
    seed: int = 0,
    taus: tuple[float, ...] = (),
) -> dict[str, float]:
    """``{"mean", "std", "exact", "share_<tau>"...}`` of the cosine under ``"mean"`` or
    ``"inverse_noise"`` (sampled loads, quadrature in the noise)."""
    from bbpm.theory.snr_bounds import sample_loads

    N, D, K, H = check_setting(N, D, K, H)
    d = check_int("d", d)
    read_rule = check_rule(read_rule)
    if read_rule == "debiased":
        raise ValueError("rule_summary covers 'mean' and 'inverse_noise'; see snr_bounds")
    exact = exact_share(N, D, K, H, read_rule, block_size)
    if read_rule == "inverse_noise":
        if exact >= 1.0 - 1e-12:
            return {"mean": 1.0, "std": 0.0, "exact": exact, **{f"share_{t:g}": 1.0 for t in taus}}
        loads, weights = loaded_rows(N, D, K, H, n_samples, seed, block_size)
        clean_part = exact
    else:
        loads = sample_loads(N, D, K, H, n_samples, seed, block_size)
        weights, clean_part = np.ones(n_samples), 0.0
    a, alpha = rule_coefficients(loads, read_rule)
    pair = pair_part(alpha, loads, N, D, K, H, block_size)
    mean, second, shares = cosine_terms(loads, a, alpha, pair, d, seed, taus)
    total = weights.sum()
    if total <= 0:  # no sample with every slot loaded: the share without a clean slot is nil
        weights, total = np.ones(n_samples), float(n_samples)
    rest = 1.0 - clean_part
    e_cos = clean_part + rest * float(weights @ mean) / total
    e_cos2 = clean_part + rest * float(weights @ second) / total
    out = {"mean": e_cos, "std": math.sqrt(max(e_cos2 - e_cos**2, 0.0)), "exact": exact}
    for tau in taus:
        out[f"share_{tau:g}"] = clean_part + rest * float(weights @ shares[tau]) / total
    return out


__all__ = [
    "RULES",
    "check_rule",
    "coverage_matrix",
    "exact_share",
    "loaded_rows",
    "pair_part",
    "rule_coefficients",
    "rule_summary",
]
