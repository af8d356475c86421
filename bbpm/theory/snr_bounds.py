"""Read fidelity of the count-debiased BBPM read: mean cosine, spread, share above a
threshold, and a tail bound, as functions of N, D, K, H, d (derived in ``book/theory.md``).
The other read rules (``read_rule="mean"`` / ``"inverse_noise"``) and the share of keys read
back exactly (:func:`exact_share`) come from :mod:`bbpm.theory.read_rules` on the same model.

Model. N items with values ``v_y`` uniform on the unit sphere of R^d are written once each
into ``M = K*H`` slots by uniform hashing over D slots. Slot j of key x also holds ``n_j``
entries of other items, ``n_j ~ Binomial((N-1)H, K/D) ~ Poisson(lambda)``,
``lambda = (N-1)KH/D``, nearly independent over j. The read (the write scale cancels) is::

    r = (1/M) sum_j (v + sum_{y in j} v_y) / (1 + n_j) = a v + e = a v + sum_{y != x} c_y v_y,
    a   = (1/M) sum_j w_j,                       w_j = 1/(1 + n_j),
    c_y = (1/M) sum_{j in S_y} w_j               (S_y: the slots of x that item y hits),
    s2  = sum_y c_y^2 = (1/M^2) [sum_j n_j w_j^2 + sum_{j != k} m_jk w_j w_k],

``m_jk`` = items hitting both slot j and k (the *pair part*: matters when ``M^2/D`` is not
small). Given the hash, e is a sum of independent isotropic vectors with
``E||e||^2 = s2``; it is modelled as Gaussian ``N(0, (s2/d) I_d)``. With ``u = <v, e>``::

    cos(r, v) = (a + u) / sqrt((a + u)^2 + ||e_perp||^2),
    u ~ N(0, s2/d),   ||e_perp||^2 ~ (s2/d) chi2_{d-1},   independent,

and ``G(a, s2) = E[cos | a, s2]`` is integrated exactly by quadrature (all finite-d
effects). Averaging G over the across-key law of (a, s2) (exact binomial moments, second
order delta method) gives :func:`expected_cosine`.

Every public function takes scalars (N, D, K, H, d, tau) and returns a float or a dict of
floats unless it says otherwise; arrays are float64 NumPy.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, replace
from functools import cache
from typing import Any

import numpy as np
import torch

from bbpm.theory.collision_model import (
    check_int,
    check_setting,
    key_overlap_statistics,
    other_load_pmf,
)

# ---------------------------------------------------------------------------- quadrature nodes


@cache
def _hermite_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes/weights for E[f(Z)], Z ~ N(0, 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / w.sum()


@cache
def _chi2_nodes(k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes/weights for E[f(X)], X ~ chi2_k (k >= 1), by Golub-Welsch for the generalized
    Laguerre weight y^alpha e^-y with alpha = k/2 - 1 and X = 2Y."""
    alpha = k / 2.0 - 1.0
    i = np.arange(n, dtype=np.float64)
    diag = 2 * i + alpha + 1
    off = np.sqrt(i[1:] * (i[1:] + alpha))
    nodes, vecs = np.linalg.eigh(np.diag(diag) + np.diag(off, 1) + np.diag(off, -1))
    weights = vecs[0] ** 2
    return 2.0 * nodes, weights / weights.sum()


def _perp_nodes(d: int, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes/weights for ``E[f(X)]``, ``X ~ chi2_{d-1}`` (the point 0 when d == 1)."""
    return (np.zeros(1), np.ones(1)) if d == 1 else _chi2_nodes(d - 1, n_nodes)


def _cosine_nodes(a: Any, s2: Any, d: int, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine at every quadrature node and the node weights: ``([..., nz, nx], [nz, nx])``."""
    d = check_int("d", d)
    a, s2 = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(s2, np.float64))
    sigma = np.sqrt(np.maximum(s2, 0.0) / d)[..., None, None]
    zx, zw = _hermite_nodes(n_nodes)
    xx, xw = _perp_nodes(d, n_nodes)
    signal = a[..., None, None] + sigma * zx[:, None]  # [..., nz, 1]
    perp = sigma**2 * xx[None, :]  # [..., 1, nx]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(signal == 0, 0.0, signal / np.sqrt(signal**2 + perp))
    return cos, zw[:, None] * xw[None, :]


def conditional_mean_cosine(a: Any, s2: Any, d: int, n_nodes: int = 48) -> np.ndarray:
    """``G(a, s2) = E[cos | a, s2]`` under the Gaussian noise model, for arrays ``a``,
    ``s2`` (broadcast): ``E[(a + s z) / sqrt((a + s z)^2 + s^2 X)]`` with ``s = sqrt(s2/d)``,
    ``z ~ N(0,1)``, ``X ~ chi2_{d-1}`` independent. Returns an array of the broadcast shape."""
    cos, weights = _cosine_nodes(a, s2, d, n_nodes)
    return (cos * weights).sum(axis=(-2, -1))


def conditional_cosine_moments(
    a: Any, s2: Any, d: int, n_nodes: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """``(E[cos | a, s2], Var[cos | a, s2])`` under the Gaussian noise model (broadcast arrays)."""
    cos, weights = _cosine_nodes(a, s2, d, n_nodes)
    mean = (cos * weights).sum(axis=(-2, -1))
    second = (cos * cos * weights).sum(axis=(-2, -1))
    return mean, np.maximum(second - mean * mean, 0.0)


def _normal_cdf(x: Any) -> np.ndarray:
    return torch.special.ndtr(torch.as_tensor(np.asarray(x, np.float64))).numpy()


def _check_tau(tau: float) -> float:
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not 0.0 <= float(tau) < 1.0:
        raise ValueError(f"tau must be a cosine threshold in [0, 1), got {tau!r}")
    return float(tau)


def _threshold_slope(tau: float) -> float:
    """``t = tau / sqrt(1 - tau^2)``: ``cos > tau`` iff signal > t * orthogonal noise."""
    return tau / math.sqrt(1.0 - tau * tau)


def conditional_share_above(tau: float, a: Any, s2: Any, d: int, n_nodes: int = 48) -> np.ndarray:
    """``P(cos > tau | a, s2)`` under the Gaussian noise model, exactly by quadrature:
    ``cos > tau  <=>  a + s z > t s sqrt(X)`` with ``t = tau / sqrt(1 - tau^2)``, so the
    probability is ``E_X[Phi(a/s - t sqrt(X))]``. Broadcast arrays ``a``, ``s2``."""
    tau = _check_tau(tau)
    d = check_int("d", d)
    a, s2 = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(s2, np.float64))
    sigma = np.sqrt(np.maximum(s2, 0.0) / d)
    t = _threshold_slope(tau)
    xx, xw = _perp_nodes(d, n_nodes)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sigma > 0, a / np.where(sigma > 0, sigma, 1.0), np.inf)
    prob = _normal_cdf(ratio[..., None] - t * np.sqrt(xx))
    return (prob * xw).sum(axis=-1)


# ---------------------------------------------------------------------------- load moments


@dataclass(frozen=True)
class LoadMoments:
    """Moments of the per-key load statistics ``a`` and ``s2`` (exact binomial moments per
    slot, with the pair corrections below).

    Per slot: ``w = 1/(1+n)``, ``z = n/(1+n)^2``. Per key: ``a = mean_j w_j`` and
    ``s2 = (1/M^2) sum_y (sum_{j in S_y} w_j)^2`` (``S_y``: the key's slots that item y hits),
    which splits into the slot part ``(1/M^2) sum_j z_j`` and the *pair part*
    ``(1/M^2) sum_{j != k} m_jk w_j w_k`` from items hitting two slots j, k of the key.

    Fields: ``M = K*H``; ``lam``: mean other entries per slot; ``mean_w``, ``var_w``,
    ``mean_z``, ``var_z``, ``cov_wz``: one slot's moments; ``pair_s2``: expected pair part
    of s2; ``corr_w``: mean correlation of ``w_j, w_k`` over the key's slot pairs (nonzero
    for block hashing, where slots of one block share the block's item count).
    """

    M: int
    lam: float
    mean_w: float
    var_w: float
    mean_z: float
    var_z: float
    cov_wz: float
    pair_s2: float = 0.0
    corr_w: float = 0.0

    @property
    def mean_a(self) -> float:
        return self.mean_w

    @property
    def var_a(self) -> float:
        return self.var_w / self.M * (1.0 + (self.M - 1) * self.corr_w)

    @property
    def mean_s2(self) -> float:
        return self.mean_z / self.M + self.pair_s2

    @property
    def var_s2(self) -> float:
        return self.var_z / self.M**3

    @property
    def cov_a_s2(self) -> float:
        return self.cov_wz / self.M**2

    def as_dict(self) -> dict[str, float]:
        out = asdict(self)
        out.update(
            mean_a=self.mean_a,
            var_a=self.var_a,
            mean_s2=self.mean_s2,
            var_s2=self.var_s2,
            cov_a_s2=self.cov_a_s2,
        )
        return out


def pair_hit_probabilities(
    N: int, D: int, K: int, H: int, block_size: int | None = None
) -> tuple[float, float]:
    """Probability that one other item hits two given slots j != k of a key:
    ``(p_same, p_cross)`` for j, k from the same hash / from two different hashes of the key.

    Global uniform hashing (K distinct slots per hash, H independent hashes): both equal
    ``H K(K-1) / (D(D-1)) + H(H-1) K^2 / D^2``. Block hashing (``block_size = L``,
    ``n_b = D/L`` blocks, a key's H hashes in distinct blocks): the K slots of one hash lie
    in one block, so ``p_same = (H/n_b) K(K-1) / (L(L-1))`` (about ``n_b/H`` times larger)
    and ``p_cross = H(H-1)/(n_b(n_b-1)) (K/L)^2``.
    """
    N, D, K, H = check_setting(N, D, K, H)
    if block_size is None:
        p = H * K * (K - 1) / (D * (D - 1)) + H * (H - 1) * K * K / D**2 if D > 1 else 0.0
        return p, p
    L = check_int("block_size", block_size)
    if D % L or K > L:
        raise ValueError(f"block_size must divide D and be >= K, got block_size={L}, D={D}, K={K}")
    n_b = D // L
    p_same = (H / n_b) * K * (K - 1) / (L * (L - 1)) if L > 1 else 0.0
    p_cross = H * (H - 1) / (n_b * (n_b - 1)) * (K / L) ** 2 if n_b > 1 else 0.0
    return p_same, p_cross


def load_moments(N: int, D: int, K: int, H: int, block_size: int | None = None) -> LoadMoments:
    """Moments of ``a`` and ``s2`` for one key when each slot's other load is
    ``n ~ Binomial((N-1)H, K/D)``; ``block_size`` switches to the block-hash pair model."""
    N, D, K, H = check_setting(N, D, K, H)
    pmf = other_load_pmf(N, D, K, H)
    n = np.arange(pmf.size, dtype=np.float64)
    w = 1.0 / (1.0 + n)
    z = n * w * w
    mw, mz = float(pmf @ w), float(pmf @ z)
    var_w = max(float(pmf @ (w * w)) - mw * mw, 0.0)
    M = K * H
    # Pair part: an item hitting slots j and k adds 2 w_j w_k / M^2 to s2; given the hit,
    # each of those slots holds it plus n' ~ Binomial((N-2)H, K/D) others: E[1/(2+n')]^2.
    p_same, p_cross = pair_hit_probabilities(N, D, K, H, block_size)
    pmf_rest = other_load_pmf(N - 1, D, K, H) if N > 1 else np.array([1.0])
    inv2 = float(pmf_rest @ (1.0 / (2.0 + np.arange(pmf_rest.size))))
    n_same, n_cross = H * K * (K - 1), H * (H - 1) * K * K
    pair_s2 = (N - 1) * (n_same * p_same + n_cross * p_cross) * inv2**2 / M**2
    corr_w = 0.0
    if block_size is not None and M > 1 and K > 1:
        # Slots of one block share that block's count b ~ Binomial((N-1)H, 1/n_b); given b
        # each is hit with prob p = K/L, both with p2 = K(K-1)/(L(L-1)). corr(w) ~ corr(n).
        L, n_b = block_size, D // block_size
        mean_b = (N - 1) * H / n_b
        var_b = mean_b * (1 - 1 / n_b)
        p, p2 = K / L, K * (K - 1) / (L * (L - 1))
        var_n = mean_b * p * (1 - p) + var_b * p * p
        cov_n = mean_b * (p2 - p * p) + var_b * p * p
        corr_same = cov_n / var_n if var_n > 0 else 0.0
        corr_w = corr_same * H * K * (K - 1) / (M * (M - 1))
    return LoadMoments(
        M=M,
        lam=(N - 1) * K * H / D,
        mean_w=mw,
        var_w=var_w,
        mean_z=mz,
        var_z=max(float(pmf @ (z * z)) - mz * mz, 0.0),
        cov_wz=float(pmf @ (w * z)) - mw * mz,
        pair_s2=pair_s2,
        corr_w=corr_w,
    )


# ---------------------------------------------------------------------------- mean cosine


def _check_d(d: int) -> int:
    return check_int("d", d)


def _check_cosine_setting(N: int, D: int, K: int, H: int, d: int) -> tuple[int, int, int, int, int]:
    """Validated ``(N, D, K, H, d)``: :func:`check_setting` plus the value dimension."""
    return (*check_setting(N, D, K, H), _check_d(d))


def _load_model(
    N: int, D: int, K: int, H: int, block_size: int | None, pair_correction: bool
) -> LoadMoments:
    m = load_moments(N, D, K, H, block_size)
    return m if pair_correction else replace(m, pair_s2=0.0)


EXACT_ITEMS = 16
"""Keys with at most this many other entries in their slots are simulated exactly (actual
random unit vectors) by the sampled-loads method: with so few crosstalk terms the Gaussian
model of e is poor in the tails (it matters for shares near a sharp threshold)."""


SMALL_M = 32
"""``K*H`` at or below which ``"auto"`` spreads and shares sample the loads (a is the mean
of only K*H skewed slot terms; the normal approximation is off by a few percent there)."""


def _resolve_method(
    method: str, d: int, M: int, smooth: str, small_M: int = 0, entries: float = math.inf
) -> str:
    """``"auto"`` -> ``smooth`` (delta / normal) unless d <= 2, M <= small_M or the mean
    number of crosstalk entries per key is below ``EXACT_ITEMS`` -> ``"loads"``."""
    if method == "auto":
        return "loads" if (d <= 2 or M <= small_M or entries < EXACT_ITEMS) else smooth
    if method not in (smooth, "loads"):
        raise ValueError(f"method must be 'auto', {smooth!r} or 'loads', got {method!r}")
    return method


def _spread_method(method: str, N: int, D: int, K: int, H: int, d: int, smooth: str) -> str:
    """:func:`_resolve_method` for spreads and shares (``small_M = SMALL_M``, crosstalk
    entries per key ``(N-1) (KH)^2 / D``)."""
    return _resolve_method(method, d, K * H, smooth, SMALL_M, (N - 1) * (K * H) ** 2 / D)


def expected_cosine(
    N: int,
    D: int,
    K: int,
    H: int,
    d: int,
    block_size: int | None = None,
    method: str = "auto",
    pair_correction: bool = True,
    n_samples: int = 20000,
    seed: int = 0,
    read_rule: str = "debiased",
) -> float:
    """Expected cosine between ``read(key)`` and the unit value written under it
    (count-debiased read of :class:`~bbpm.memory.BBPMMemoryFloat`, each key written once;
    ``read_rule="mean"`` / ``"inverse_noise"``: that read, by :mod:`bbpm.theory.read_rules`).

    Args:
        N, D, K, H: items written, slots, slots per hash, hashes.
        d: value dimension (values uniform on the unit sphere).
        block_size: ``None`` for global uniform hashing; the block size L of
            :class:`~bbpm.hashing.BlockPermutationHash` adds its pair / load-correlation terms.
        method: ``"delta"``: ``E[G(a, s2)] ~ G(mu) + 1/2 tr(Hess G . Cov(a, s2))`` with exact
            binomial moments; ``"loads"``: G averaged over ``n_samples`` sampled load vectors
            (Monte Carlo in the loads, quadrature in the noise; keys with at most
            ``EXACT_ITEMS`` crosstalk entries simulated exactly); ``"auto"`` (default):
            delta, or loads when d <= 2 (cosine far from linear in the loads).
        pair_correction: include items that hit two slots of the key (``M^2/D`` terms).
        read_rule: ``"debiased"`` (default), ``"mean"`` or ``"inverse_noise"``; the last
            two use sampled loads (``method`` "auto" or "loads") with the pair correction.
    """
    N, D, K, H, d = _check_cosine_setting(N, D, K, H, d)
    if _other_rule(read_rule, method):
        return _rule_summary(N, D, K, H, d, read_rule, block_size, n_samples, seed)["mean"]
    method = _resolve_method(method, d, K * H, "delta")
    if method == "delta":
        return _delta_mean(_load_model(N, D, K, H, block_size, pair_correction), d)
    if not pair_correction:
        a, s2 = sample_load_statistics(N, D, K, H, n_samples, seed, block_size, pair_correction)
        return float(conditional_mean_cosine(a, s2, d).mean())
    mean, _, _ = _sampled_cosine_terms(N, D, K, H, d, n_samples, seed, block_size)
    return float(mean.mean())


def _other_rule(read_rule: str, method: str) -> bool:
    """True for a rule other than ``"debiased"`` (which :mod:`read_rules` computes)."""
    from bbpm.theory.read_rules import check_rule

    if check_rule(read_rule) == "debiased":
        return False
    if method not in ("auto", "loads"):
        raise ValueError(f"read_rule={read_rule!r} takes method 'auto' or 'loads', got {method!r}")
    return True


def _rule_summary(*args: Any, **kwargs: Any) -> dict[str, float]:
    from bbpm.theory.read_rules import rule_summary

    return rule_summary(*args, **kwargs)


def exact_share(
    N: int,
    D: int,
    K: int,
    H: int,
    read_rule: str = "inverse_noise",
    block_size: int | None = None,
) -> float:
    """Expected share of keys read back exactly: for ``"inverse_noise"`` the keys with at
    least one slot free of other items, for ``"debiased"``/``"mean"`` the keys whose every
    slot is free of them (see :func:`bbpm.theory.read_rules.exact_share`)."""
    from bbpm.theory.read_rules import exact_share as _exact_share

    return _exact_share(N, D, K, H, read_rule, block_size)


def _finite_difference_steps(m: LoadMoments) -> tuple[float, float]:
    """Steps of about one standard deviation, kept inside the domain (a > 0, s2 >= 0)."""
    ha = max(min(math.sqrt(m.var_a), 0.5 * m.mean_a), 1e-9)
    hs = max(min(math.sqrt(m.var_s2), m.mean_s2), 1e-12)
    return ha, hs


def _delta_mean(m: LoadMoments, d: int) -> float:
    mu_a, mu_s = m.mean_a, m.mean_s2
    g0 = float(conditional_mean_cosine(mu_a, mu_s, d))
    if m.var_a == 0 and m.var_s2 == 0:
        return g0
    ha, hs = _finite_difference_steps(m)
    pts_a = np.array([mu_a - ha, mu_a, mu_a + ha])
    pts_s = np.array([mu_s - hs, mu_s, mu_s + hs])
    grid = conditional_mean_cosine(pts_a[:, None], pts_s[None, :], d)  # [3, 3]
    g_aa = (grid[2, 1] - 2 * grid[1, 1] + grid[0, 1]) / ha**2
    g_ss = (grid[1, 2] - 2 * grid[1, 1] + grid[1, 0]) / hs**2
    g_as = (grid[2, 2] - grid[2, 0] - grid[0, 2] + grid[0, 0]) / (4 * ha * hs)
    return float(g0 + 0.5 * (g_aa * m.var_a + 2 * g_as * m.cov_a_s2 + g_ss * m.var_s2))


def sample_loads(
    N: int,
    D: int,
    K: int,
    H: int,
    n_samples: int = 20000,
    seed: int = 0,
    block_size: int | None = None,
) -> np.ndarray:
    """``[n_samples, K*H]`` float64 loads (other entries in each slot of a random key).

    Global hashing: i.i.d. ``Binomial((N-1)H, K/D)``. Block hashing: per hash the block's
    other-entry count ``b ~ Binomial((N-1)H, L/D)``, then each of the K slots gets
    ``Binomial(b, K/L)`` (keeping the within-block correlation of the loads)."""
    N, D, K, H = check_setting(N, D, K, H)
    n_samples = check_int("n_samples", n_samples)
    rng = np.random.default_rng(seed)
    if block_size is None:
        loads = rng.binomial((N - 1) * H, K / D, size=(n_samples, K * H))
    else:
        L = check_int("block_size", block_size)
        in_block = rng.binomial((N - 1) * H, L / D, size=(n_samples, H, 1))
        loads = rng.binomial(np.broadcast_to(in_block, (n_samples, H, K)), K / L).reshape(
            n_samples, K * H
        )
    return loads.astype(np.float64)


def sample_load_statistics(
    N: int,
    D: int,
    K: int,
    H: int,
    n_samples: int = 20000,
    seed: int = 0,
    block_size: int | None = None,
    pair_correction: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(a, s2)`` of ``n_samples`` keys with loads from :func:`sample_loads`, each
    ``[n_samples]`` (s2 plus the expected pair part)."""
    loads = sample_loads(N, D, K, H, n_samples, seed, block_size)
    w = 1.0 / (1.0 + loads)
    pair = _load_model(N, D, K, H, block_size, pair_correction).pair_s2
    return w.mean(axis=1), (loads * w * w).sum(axis=1) / (K * H) ** 2 + pair


def _sampled_cosine_terms(
    N: int,
    D: int,
    K: int,
    H: int,
    d: int,
    n_samples: int,
    seed: int,
    block_size: int | None,
    taus: tuple[float, ...] = (),
) -> tuple[np.ndarray, np.ndarray, dict[float, np.ndarray]]:
    """Per sampled key: ``E[cos]``, ``E[cos^2]`` and ``P(cos > tau)`` given its loads.

    Keys with many crosstalk entries use the Gaussian quadrature; keys with at most
    ``EXACT_ITEMS`` entries get one exact draw (random unit values, each other entry a
    distinct item), an unbiased 0/1 or single-value estimate of the same quantities.
    Returns ``([S], [S], {tau: [S]})``."""
    from bbpm.theory.read_rules import cosine_terms

    loads = sample_loads(N, D, K, H, n_samples, seed, block_size)
    w = 1.0 / (1.0 + loads)  # the debiased read's slot weights, before the 1/M
    pair_s2 = _load_model(N, D, K, H, block_size, True).pair_s2
    return cosine_terms(loads, w.mean(axis=1), w / (K * H), pair_s2, d, seed, taus)


def cosine_std(
    N: int,
    D: int,
    K: int,
    H: int,
    d: int,
    block_size: int | None = None,
    method: str = "auto",
    n_samples: int = 20000,
    seed: int = 0,
    read_rule: str = "debiased",
) -> float:
    """Standard deviation of the cosine across keys of one memory.

    ``Var(cos) = E[Var(cos | a, s2)] + Var(G(a, s2))``: the first term by quadrature at the
    mean loads, the second by the delta method ``grad G . Cov(a, s2) . grad G``.
    ``method="loads"`` averages both over sampled loads instead; ``"auto"`` uses it when
    ``K*H <= SMALL_M``, ``d <= 2`` or a key has fewer than ``EXACT_ITEMS`` crosstalk
    entries on average (a skewed, G far from linear, crosstalk far from Gaussian).
    ``read_rule``: as in :func:`expected_cosine`."""
    N, D, K, H, d = _check_cosine_setting(N, D, K, H, d)
    if _other_rule(read_rule, method):
        return _rule_summary(N, D, K, H, d, read_rule, block_size, n_samples, seed)["std"]
    method = _spread_method(method, N, D, K, H, d, "delta")
    if method == "loads":
        mean, second, _ = _sampled_cosine_terms(N, D, K, H, d, n_samples, seed, block_size)
        return float(math.sqrt(max(second.mean() - mean.mean() ** 2, 0.0)))
    m = load_moments(N, D, K, H, block_size)
    _, var_noise = conditional_cosine_moments(m.mean_a, m.mean_s2, d)
    ha, hs = _finite_difference_steps(m)
    pts = conditional_mean_cosine(
        np.array([m.mean_a - ha, m.mean_a + ha, m.mean_a, m.mean_a]),
        np.array([m.mean_s2, m.mean_s2, m.mean_s2 - hs, m.mean_s2 + hs]),
        d,
    )
    g_a, g_s = (pts[1] - pts[0]) / (2 * ha), (pts[3] - pts[2]) / (2 * hs)
    var_loads = g_a * g_a * m.var_a + 2 * g_a * g_s * m.cov_a_s2 + g_s * g_s * m.var_s2
    return float(math.sqrt(max(float(var_noise) + var_loads, 0.0)))


def _chi_mean(k: int) -> float:
    """``E[chi_k] = sqrt(2) Gamma((k+1)/2) / Gamma(k/2)``."""
    return (
        math.sqrt(2.0) * math.exp(math.lgamma((k + 1) / 2) - math.lgamma(k / 2)) if k > 0 else 0.0
    )


def share_above(
    tau: float,
    N: int,
    D: int,
    K: int,
    H: int,
    d: int,
    block_size: int | None = None,
    method: str = "auto",
    n_samples: int = 20000,
    seed: int = 0,
    read_rule: str = "debiased",
) -> float:
    """Expected share of keys whose read has cosine above ``tau`` (``0 <= tau < 1``).
    ``read_rule``: as in :func:`expected_cosine` (sampled loads for the other rules).

    ``method="normal"``: Geary-Hinkley normal approximation of the ratio. With signal
    ``X = a + u`` and orthogonal noise ``Y = ||e_perp|| = sqrt(s2/d) chi_{d-1}``,
    ``cos > tau <=> Z = X - t Y > 0`` (``t = tau/sqrt(1-tau^2)``). Z is nearly linear in
    the loads and the noise, so ``P ~ Phi(E[Z] / sd(Z))`` with E, Var by the delta method.
    ``method="loads"``: exact conditional probability (quadrature) averaged over sampled
    load vectors (keys with at most ``EXACT_ITEMS`` crosstalk entries simulated exactly,
    since the Gaussian model of a few-term crosstalk is poor near a sharp threshold). ``"auto"`` (default): normal, or loads when ``K*H <= SMALL_M`` or
    ``d <= 2`` (the skew of a, a mean of few slot terms, then moves the share visibly).
    """
    tau = _check_tau(tau)
    N, D, K, H, d = _check_cosine_setting(N, D, K, H, d)
    if _other_rule(read_rule, method):
        summary = _rule_summary(N, D, K, H, d, read_rule, block_size, n_samples, seed, (tau,))
        return summary[f"share_{tau:g}"]
    method = _spread_method(method, N, D, K, H, d, "normal")
    if method == "loads":
        _, _, shares = _sampled_cosine_terms(N, D, K, H, d, n_samples, seed, block_size, (tau,))
        return float(shares[tau].mean())
    m = load_moments(N, D, K, H, block_size)
    if m.mean_s2 <= 0:
        return 1.0
    t = _threshold_slope(tau)
    chi = _chi_mean(d - 1) / math.sqrt(d)
    mean_sqrt_s2 = math.sqrt(m.mean_s2) * max(1.0 - m.var_s2 / (8 * m.mean_s2**2), 0.5)
    mean_y = mean_sqrt_s2 * chi
    var_y = max(m.mean_s2 * (d - 1) / d - mean_y * mean_y, 0.0)
    cov_xy = m.cov_a_s2 / (2 * math.sqrt(m.mean_s2)) * chi
    var_x = m.var_a + m.mean_s2 / d
    mean_z = m.mean_a - t * mean_y
    var_z = var_x + t * t * var_y - 2 * t * cov_xy
    if var_z <= 0:
        return float(mean_z > 0)
    return float(_normal_cdf(mean_z / math.sqrt(var_z)))


# ---------------------------------------------------------------------------- tail bound


def _log_mgf(values: np.ndarray, pmf: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``log E exp(theta f)`` for f with law ``pmf`` on ``values``; ``theta: [T]`` -> ``[T]``."""
    exps = theta[:, None] * values[None, :]
    top = exps.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.exp(exps - top) @ pmf)


_THETA = np.concatenate([[0.0], np.geomspace(1e-3, 1e6, 500)])


def chernoff_lower(values: np.ndarray, pmf: np.ndarray, M: int, x: np.ndarray) -> np.ndarray:
    """Chernoff bound on ``P(mean of M i.i.d. f <= x)`` for ``x: [T]`` (law ``pmf`` on
    ``values``): ``exp(min_theta M [theta x + log E exp(-theta f)])``. Also valid for
    negatively associated variables (e.g. multinomial slot loads mapped by a monotone f)."""
    log_mgf = _log_mgf(values, pmf, -_THETA)
    logs = M * (_THETA[None, :] * np.asarray(x, np.float64)[:, None] + log_mgf[None, :])
    return np.exp(np.minimum(logs.min(axis=1), 0.0))


def chernoff_upper(values: np.ndarray, pmf: np.ndarray, M: int, x: np.ndarray) -> np.ndarray:
    """Chernoff bound on ``P(mean of M i.i.d. f >= x)`` for ``x: [T]``."""
    log_mgf = _log_mgf(values, pmf, _THETA)
    logs = M * (-_THETA[None, :] * np.asarray(x, np.float64)[:, None] + log_mgf[None, :])
    return np.exp(np.minimum(logs.min(axis=1), 0.0))


def share_below_bound(tau: float, N: int, D: int, K: int, H: int, d: int) -> dict[str, float]:
    """Upper bound on the share of keys with cosine below ``tau`` (global uniform hashing).

    Given the loads, ``cos < tau`` forces ``f(e) := t ||e_perp|| - <v, e> > a`` with
    ``t = tau/sqrt(1-tau^2)``; f is convex and ``sqrt(1+t^2)``-Lipschitz in e. The noise
    e is the conditional expectation of the Gaussian vector
    ``G = sum_y c_y g_y / (sqrt(d) kappa_d)`` (``v_y = g_y/||g_y||``,
    ``kappa_d = E||g|| / sqrt(d)``), so by Jensen ``E exp(theta f(e)) <= E exp(theta f(G))``,
    and Gaussian concentration of Lipschitz functions gives::

        P(cos < tau | a, s2) <= exp(-(a - c sqrt(s2))_+^2 / (2 (1+t^2) s2 / (d kappa_d^2))),
        c = t E[chi_{d-1}] / (sqrt(d) kappa_d)   (~ t).

    Over the loads, for any ``alpha, S``::

        P(cos < tau) <= P(a <= alpha) + P(s2 >= S) + exp(-(alpha - c sqrt(S))_+^2 / (2 (1+t^2) S / (d kappa_d^2)))

    with Chernoff bounds for ``a`` (exact per-slot law of ``w = 1/(1+n)``; valid for the
    negatively associated multinomial loads since w is monotone in n) and for the slot part
    of s2 (loads treated as independent; the pair part added at its mean). ``alpha`` and
    ``S`` are optimized on a grid. Returns ``dict(bound, p_a, p_s2, p_noise, alpha, S)``;
    ``bound`` is capped at 1 (it is uninformative when the mean cosine is close to tau).
    """
    tau = _check_tau(tau)
    N, D, K, H, d = _check_cosine_setting(N, D, K, H, d)
    M = K * H
    pmf = other_load_pmf(N, D, K, H)
    n = np.arange(pmf.size, dtype=np.float64)
    w, z = 1.0 / (1.0 + n), n / (1.0 + n) ** 2
    m = load_moments(N, D, K, H)
    t = _threshold_slope(tau)
    kappa = _chi_mean(d) / math.sqrt(d)
    c = t * (_chi_mean(d - 1) if d > 1 else 0.0) / (math.sqrt(d) * kappa)
    slot_mean = m.mean_z / M
    slot_levels = np.unique(
        np.concatenate([np.geomspace(max(slot_mean, 1e-12), 0.25 / M, 80), [0.25 / M]])
    )
    p_s = chernoff_upper(z, pmf, M, slot_levels * M)  # [nS]
    S = slot_levels + m.pair_s2
    alpha = np.linspace(0.0, 1.0, 1025)
    p_a = chernoff_lower(w, pmf, M, alpha)  # [nA]
    gap = np.maximum(alpha[None, :] - c * np.sqrt(S)[:, None], 0.0)
    p_noise = np.exp(-(gap**2) * d * kappa**2 / (2 * (1 + t * t) * S[:, None]))  # [nS, nA]
    total = p_a[None, :] + p_s[:, None] + p_noise
    i, j = np.unravel_index(int(np.argmin(total)), total.shape)
    return {
        "bound": float(min(total[i, j], 1.0)),
        "p_a": float(p_a[j]),
        "p_s2": float(p_s[i]),
        "p_noise": float(p_noise[i, j]),
        "alpha": float(alpha[j]),
        "S": float(S[i]),
    }


# ---------------------------------------------------------------------------- given the hash


def cosine_given_hash(indices: torch.Tensor, rows: Any, D: int, d: int) -> np.ndarray:
    """Predicted mean cosine of each analysed key *given the hash's actual slots*:
    ``G(a_x, s2_x)`` with the exact ``a_x, s2_x`` of
    :func:`bbpm.theory.collision_model.key_overlap_statistics` (only the values are
    random). Works for any hash (prototype, block, ...). ``indices: [N, M]``,
    ``rows: [B]`` -> ``[B]``."""
    stats = key_overlap_statistics(indices, rows, D)
    return conditional_mean_cosine(stats["a"], stats["s2"], _check_d(d))


# ---------------------------------------------------------------------------- summary


def prototype_guess(N: int, D: int, K: int) -> float:
    """The prototype's sketched 'theory' ``sqrt(D / (N K))``: not derived, not a cosine
    (it exceeds 1 at low load); kept only to draw it for reference."""
    N, D, K, _ = check_setting(N, D, K, 1)
    return math.sqrt(D / (N * K))


def high_load_cosine(N: int, D: int, K: int, H: int) -> float:
    """The heavy-load limit ``1 / sqrt(1 + (N/D) (1 + (KH)^2/D))`` of the mean cosine (large
    lambda and d): the signal ``a ~ 1/lambda`` against noise ``s2 ~ (1 + M^2/D) / (M lambda)``,
    so K and H cancel except through the pair term ``M^2/D``."""
    N, D, K, H = check_setting(N, D, K, H)
    return 1.0 / math.sqrt(1.0 + (N / D) * (1.0 + (K * H) ** 2 / D))


def predict(
    N: int,
    D: int,
    K: int,
    H: int,
    d: int,
    taus: tuple[float, ...] = (0.9,),
    block_size: int | None = None,
    bounds: bool = True,
) -> dict[str, Any]:
    """Every prediction for one setting (for metrics.json): load factor, load moments,
    mean and sd of the cosine, share above each tau, the tail bound on the share below
    each tau (global hashing, ``bounds=True``), and the prototype's guess."""
    m = load_moments(N, D, K, H, block_size)
    out: dict[str, Any] = {
        "N": N,
        "D": D,
        "K": K,
        "H": H,
        "d": d,
        "block_size": block_size,
        "load_factor": N * K * H / D,
        "mean_a": m.mean_a,
        "mean_s2": m.mean_s2,
        "pair_s2": m.pair_s2,
        "mean_cosine": expected_cosine(N, D, K, H, d, block_size),
        "mean_cosine_no_pair": expected_cosine(N, D, K, H, d, block_size, pair_correction=False),
        "std_cosine": cosine_std(N, D, K, H, d, block_size),
        "high_load_limit": high_load_cosine(N, D, K, H),
        "prototype_guess": prototype_guess(N, D, K),
    }
    for tau in taus:
        out[f"share_above_{tau:g}"] = share_above(tau, N, D, K, H, d, block_size)
        if bounds and block_size is None:
            out[f"share_below_{tau:g}_bound"] = share_below_bound(tau, N, D, K, H, d)["bound"]
    return out
