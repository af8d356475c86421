"""Small measurements that put the theory next to the real memory (used by the tests and
the exp01/exp02 notebooks).

* :func:`measure_cosines` runs the canonical experiment: write N unit-norm Gaussian values
  under keys ``arange(N)`` in batches, read back a subset, return the cosines.
* :func:`compare_mean_cosine` / :func:`compare_share_above`: prediction vs measurement,
  averaged over seeds (each seed draws new values and, when the hash has ``with_seed``,
  a new hash).
* :func:`compare_occupancy`: :mod:`bbpm.hashing.diagnostics` of real hash indices beside
  :mod:`bbpm.theory.collision_model`.
* :class:`UniformTableHash`: a reference hash with truly random slots (a lookup table),
  the ideal that the theory assumes; it separates errors of the theory from deviations
  of a concrete hash family.

Measurement noise: the cosines of one memory share its values, so when ``(K*H)^2/D`` is
not small (every key's noise is drawn from the same large pool of items) the keys' errors
are correlated and the per-key standard error understates the run-to-run spread. Average
over seeds (``n_seeds > 1``) and use the across-seed standard error there.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from bbpm.hashing import BlockPermutationHash, GlobalAffineHash, HashFunction
from bbpm.hashing import diagnostics as hash_diagnostics
from bbpm.hashing.base import check_keys, check_KH, check_positive_int
from bbpm.memory import BBPMMemoryFloat
from bbpm.theory import collision_model, snr_bounds


class UniformTableHash:
    """Ideal uniform hashing for keys ``0..n_keys-1``: every (key, slot position) gets an
    independent uniform slot from a seeded table ``[n_keys, K*H]`` (built on first use).
    Slots of one key may repeat (with probability ~``(K*H)^2/(2D)``)."""

    def __init__(self, D: int, n_keys: int, seed: int = 0) -> None:
        self.D = check_positive_int("D", D)
        self.n_keys = check_positive_int("n_keys", n_keys)
        self.seed = int(seed)
        self._tables: dict[int, torch.Tensor] = {}

    def indices(self, keys: torch.Tensor, K: int, H: int) -> torch.Tensor:
        keys = check_keys(keys)
        K, H = check_KH(K, H)
        if keys.numel() and (int(keys.min()) < 0 or int(keys.max()) >= self.n_keys):
            raise ValueError(
                f"UniformTableHash keys must lie in [0, {self.n_keys}); build it with a larger n_keys"
            )
        M = K * H
        if M not in self._tables:
            gen = torch.Generator().manual_seed(self.seed)
            self._tables[M] = torch.randint(0, self.D, (self.n_keys, M), generator=gen)
        return self._tables[M][keys.cpu()].to(keys.device)

    def with_seed(self, seed: int) -> UniformTableHash:
        return UniformTableHash(self.D, self.n_keys, seed)

    def config(self) -> dict[str, Any]:
        return {"type": "UniformTableHash", "D": self.D, "n_keys": self.n_keys, "seed": self.seed}


def unit_gaussian_values(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """``[n, d]`` float32 values uniform on the unit sphere (normalized Gaussians)."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(n, d, generator=gen)
    return values / values.norm(dim=1, keepdim=True)


def measure_cosines(
    N: int,
    D: int,
    K: int,
    H: int,
    d: int,
    hash_fn: HashFunction | None = None,
    n_eval: int = 2000,
    seed: int = 0,
    batch_size: int = 10_000,
    write_scale: str = "1/sqrt(KH)",
    eval_keys: str = "first",
    memory: BBPMMemoryFloat | None = None,
) -> np.ndarray:
    """Write N unit-norm Gaussian values (seeded by ``seed``) under keys ``arange(N)`` in
    batches of ``batch_size``, read ``min(N, n_eval)`` keys back; return their cosines
    ``[min(N, n_eval)]`` (float64).

    Args:
        hash_fn: default ``GlobalAffineHash(D)`` (mixed mode).
        eval_keys: ``"first"`` (keys ``0..n_eval-1``, as the prototype) or ``"random"``
            (a seeded random subset of the N keys).
        memory: reuse this memory (it is cleared first) instead of allocating one; its
            D, d, K, H and hash are used.
    """
    collision_model.check_setting(N, D, K, H)
    if eval_keys not in ("first", "random"):
        raise ValueError(f"eval_keys must be 'first' or 'random', got {eval_keys!r}")
    if memory is None:
        hash_fn = GlobalAffineHash(D) if hash_fn is None else hash_fn
        memory = BBPMMemoryFloat(D, d, K, H, hash_fn, write_scale=write_scale, check_finite=False)
    else:
        memory.clear()
    keys = torch.arange(N, dtype=torch.int64)
    values = unit_gaussian_values(N, d, seed)
    with torch.no_grad():
        for start in range(0, N, batch_size):
            memory.write(keys[start : start + batch_size], values[start : start + batch_size])
        n = min(N, n_eval)
        if eval_keys == "first":
            chosen = keys[:n]
        else:
            chosen = torch.randperm(N, generator=torch.Generator().manual_seed(seed + 1))[:n]
        read = memory.read(chosen).double()
    return torch.nn.functional.cosine_similarity(read, values[chosen].double(), dim=1).numpy()


def _seeded_hash(hash_fn: HashFunction | None, D: int, seed: int) -> HashFunction:
    if hash_fn is None:
        return GlobalAffineHash(D, seed=seed)
    with_seed = getattr(hash_fn, "with_seed", None)
    if callable(with_seed) and getattr(hash_fn, "mode", None) != "prototype":
        return with_seed(seed)
    return hash_fn


def measure_over_seeds(
    N: int,
    D: int,
    K: int,
    H: int,
    d: int,
    hash_fn: HashFunction | None = None,
    n_eval: int = 2000,
    seeds: int | list[int] = 1,
    **kwargs: Any,
) -> list[np.ndarray]:
    """:func:`measure_cosines` for several seeds (an int n means seeds ``0..n-1``); seed s
    draws new values and re-seeds the hash (``hash_fn.with_seed(s)``, except the
    seedless prototype formula). Returns one ``[n_eval]`` array per seed."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("seeds must name at least one seed")
    return [
        measure_cosines(
            N, D, K, H, d, hash_fn=_seeded_hash(hash_fn, D, s), n_eval=n_eval, seed=s, **kwargs
        )
        for s in seed_list
    ]


def _block_size(hash_fn: HashFunction | None) -> int | None:
    return hash_fn.block_size if isinstance(hash_fn, BlockPermutationHash) else None


def _stderr(values: np.ndarray) -> float:
    """Standard error of the mean of ``values``: ``sd (ddof=1) / sqrt(n)``."""
    return float(values.std(ddof=1) / math.sqrt(values.size))


def student_t_quantile(q: float, dof: int) -> float:
    """Quantile ``q`` (0.5 < q < 1) of Student's t with ``dof`` degrees of freedom: the
    bound a mean over ``dof + 1`` seeds may differ from the truth by, in standard errors,
    with probability ``2q - 1``. Bisection on the CDF, integrated by the trapezoid rule
    (20,001 points; accurate to about 1e-6 for the quantiles used here)."""
    if not 0.5 < q < 1.0:
        raise ValueError(f"q must lie in (0.5, 1), got {q}")
    dof = check_positive_int("dof", dof)
    log_c = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)

    def cdf(x: float) -> float:
        grid = np.linspace(0.0, x, 20001)
        pdf = np.exp(log_c - (dof + 1) / 2 * np.log1p(grid**2 / dof))
        return 0.5 + float((pdf[:-1] + pdf[1:]).sum()) * (grid[1] - grid[0]) / 2

    lo, hi = 0.0, 1.0
    while cdf(hi) < q:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
    return (lo + hi) / 2


def compare_mean_cosine(
    N: int,
    D: int,
    K: int,
    H: int,
    d: int,
    hash_fn: HashFunction | None = None,
    n_eval: int = 2000,
    seed: int = 0,
    n_seeds: int = 1,
    **kwargs: Any,
) -> dict[str, float]:
    """Predicted (:func:`bbpm.theory.snr_bounds.expected_cosine`; uniform hashing, with the
    block correction for a :class:`~bbpm.hashing.BlockPermutationHash`) vs measured mean cosine.

    Returns ``dict(predicted, measured, stderr, error, n_seeds, n_eval)`` with
    ``error = measured - predicted``; ``stderr`` is across seeds when ``n_seeds > 1``,
    else ``sd / sqrt(n)`` of the keys' cosines (see the module note on correlation).
    """
    runs = measure_over_seeds(
        N, D, K, H, d, hash_fn, n_eval, list(range(seed, seed + n_seeds)), **kwargs
    )
    means = np.array([c.mean() for c in runs])
    if n_seeds > 1:
        stderr = _stderr(means)
    else:
        stderr = _stderr(runs[0]) if runs[0].size > 1 else 0.0
    predicted = snr_bounds.expected_cosine(N, D, K, H, d, block_size=_block_size(hash_fn))
    measured = float(means.mean())
    return {
        "predicted": predicted,
        "measured": measured,
        "stderr": stderr,
        "error": measured - predicted,
        "n_seeds": n_seeds,
        "n_eval": int(runs[0].size),
    }


def compare_share_above(
    tau: float,
    N: int,
    D: int,
    K: int,
    H: int,
    d: int,
    hash_fn: HashFunction | None = None,
    n_eval: int = 2000,
    seed: int = 0,
    n_seeds: int = 1,
    **kwargs: Any,
) -> dict[str, float]:
    """Predicted vs measured share of keys with cosine above ``tau``, with the tail bound:
    ``dict(predicted, measured, stderr, measured_below, bound_below)``."""
    runs = measure_over_seeds(
        N, D, K, H, d, hash_fn, n_eval, list(range(seed, seed + n_seeds)), **kwargs
    )
    shares = np.array([(c > tau).mean() for c in runs])
    pooled = np.concatenate(runs)
    stderr = (
        _stderr(shares)
        if n_seeds > 1
        else float(math.sqrt(max(shares[0] * (1 - shares[0]), 1e-12) / pooled.size))
    )
    return {
        "predicted": snr_bounds.share_above(tau, N, D, K, H, d, block_size=_block_size(hash_fn)),
        "measured": float(shares.mean()),
        "stderr": stderr,
        "measured_below": float((pooled < tau).mean()),
        "bound_below": snr_bounds.share_below_bound(tau, N, D, K, H, d)["bound"],
    }


def compare_occupancy(
    N: int, D: int, K: int, H: int, hash_fn: HashFunction | None = None
) -> dict[str, dict[str, float]]:
    """Diagnostics of the ``N*K*H`` indices of keys ``arange(N)`` under ``hash_fn``
    (default ``GlobalAffineHash(D)``) beside the uniform-hashing predictions:
    ``{"measured": diagnostics.summarize(...), "predicted": occupancy_prediction(...)}``."""
    collision_model.check_setting(N, D, K, H)
    hash_fn = GlobalAffineHash(D) if hash_fn is None else hash_fn
    idx = hash_fn.indices(torch.arange(N, dtype=torch.int64), K, H)
    return {
        "measured": hash_diagnostics.summarize(idx, D),
        "predicted": collision_model.occupancy_prediction(N, D, K, H),
    }
