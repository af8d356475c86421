"""Read rules (exp09): the debiased, mean and inverse-noise reads of the same table.

:func:`load_sweep` fills one table step by step over loads and reads it with every rule;
:func:`kh_grid` does the same over a grid of ``(K, H)``; :func:`repeat_study` writes fresh keys
several times (same or drifting values); :func:`known_key_study` compares the known-key solve
with the per-key inverse-noise read; :func:`debiasing_verdict` and :func:`leader` turn the
measurements into verdicts; :func:`read_rules_figure` draws the chapter's figure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bbpm.hashing import GlobalAffineHash
from bbpm.memory.float_superposition import BBPMMemoryFloat
from bbpm.memory.read_rules import READ_RULES, solve_known_keys
from bbpm.theory import snr_bounds

#: Matplotlib colour of each rule in the figure.
RULE_STYLE = {"debiased": "C0", "mean": "C1", "inverse_noise": "C2"}
#: Cosine above which a read counts as exact (float32 rounding of an exact return).
EXACT = 1 - 1e-6


def unit_values(n: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` random unit vectors of dimension ``dim`` drawn from ``gen``."""
    return F.normalize(torch.randn(n, dim, generator=gen), dim=1)


def fill(memory: Any, values: torch.Tensor, start: int, stop: int, batch_size: int) -> None:
    """Write items ``start..stop-1`` (key = position) in batches of ``batch_size``."""
    for first in range(start, stop, batch_size):
        last = min(first + batch_size, stop)
        memory.write(torch.arange(first, last), values[first:last])


def cosines(memory: Any, keys: torch.Tensor, truth: torch.Tensor, rule: str) -> torch.Tensor:
    """Per-key cosine between ``memory.read(keys, read_rule=rule)`` and ``truth``."""
    return F.cosine_similarity(memory.read(keys, read_rule=rule), truth, dim=1)


def pick(rows: Sequence[Mapping[str, Any]], field: str, **match: Any) -> Any:
    """``field`` of the first row whose items equal ``match`` (KeyError-free lookup by value)."""
    for row in rows:
        if all(row[k] == v for k, v in match.items()):
            return row[field]
    raise LookupError(f"no row with {match}")


def load_sweep(
    D: int,
    d: int,
    K: int,
    loads: Sequence[float],
    n_eval: int,
    seed: int,
    batch_size: int,
    gen: torch.Generator,
) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """One table (``H = 1``, ``GlobalAffineHash(D, seed)``) filled step by step to each load
    ``NK/D``; at each step the first ``n_eval`` keys are read with every rule. Rows: load, N,
    rule, measured mean cosine and exact share, their theory. Returns the rows and the values
    (drawn from ``gen``)."""
    N_of = [max(2, round(lam * D / K)) for lam in loads]
    values = unit_values(N_of[-1], d, gen)
    memory = BBPMMemoryFloat(D, d, K, 1, GlobalAffineHash(D, seed=seed))
    rows, written = [], 0
    for lam, N in zip(loads, N_of, strict=True):
        fill(memory, values, written, N, batch_size)
        written = N
        keys = torch.arange(min(n_eval, N))
        for rule in READ_RULES:
            cos = cosines(memory, keys, values[keys], rule)
            rows.append(
                {
                    "load": lam,
                    "N": N,
                    "rule": rule,
                    "cos": float(cos.mean()),
                    "exact": float((cos > EXACT).double().mean()),
                    "theory_cos": snr_bounds.expected_cosine(N, D, K, 1, d, read_rule=rule),
                    "theory_exact": snr_bounds.exact_share(N, D, K, 1, rule),
                }
            )
    return rows, values


def kh_grid(
    D: int,
    N: int,
    d: int,
    K_values: Sequence[int],
    H_values: Sequence[int],
    seed: int,
    batch_size: int,
) -> list[dict[str, Any]]:
    """``N`` items in ``D`` slots for each ``(K, H)``, all keys read with every rule: measured
    and theory mean cosine per cell."""
    grid = []
    for K in K_values:
        for H in H_values:
            memory = BBPMMemoryFloat(D, d, K, H, GlobalAffineHash(D, seed=seed))
            values = unit_values(N, d, torch.Generator().manual_seed(seed + 1))
            fill(memory, values, 0, N, batch_size)
            keys = torch.arange(N)
            for rule in READ_RULES:
                grid.append(
                    {
                        "K": K,
                        "H": H,
                        "rule": rule,
                        "cos": float(cosines(memory, keys, values, rule).mean()),
                        "theory_cos": snr_bounds.expected_cosine(N, D, K, H, d, read_rule=rule),
                    }
                )
    return grid


def grid_gains(grid: Sequence[Mapping[str, Any]], better: str, base: str) -> list[float]:
    """Per ``(K, H)`` cell: mean cosine of rule ``better`` minus that of rule ``base``."""
    return [
        pick(grid, "cos", K=g["K"], H=g["H"], rule=better) - g["cos"]
        for g in grid
        if g["rule"] == base
    ]


def repeat_study(
    memory: Any,
    first_key: int,
    n_keys: int,
    repeat_counts: Sequence[int],
    drift: float,
    d: int,
    seed: int,
) -> list[dict[str, Any]]:
    """``n_keys`` fresh keys from ``first_key`` written ``r`` times each into a copy of
    ``memory``, the same value each time or a drifting one (each write adds ``drift`` times a
    fresh unit vector, renormalised); rows give the mean cosine of each rule's read to the last
    value written."""
    rows = []
    keys = torch.arange(first_key, first_key + n_keys)
    for r in repeat_counts:
        for drifting in (False, True):
            mem_r = copy.deepcopy(memory)
            value = unit_values(n_keys, d, torch.Generator().manual_seed(seed + 7))
            step_gen = torch.Generator().manual_seed(seed + 11)
            for _ in range(r):
                mem_r.write(keys, value)
                last = value
                if drifting:
                    value = F.normalize(value + drift * unit_values(n_keys, d, step_gen), dim=1)
            for rule in READ_RULES:
                cos_last = float(cosines(mem_r, keys, last, rule).mean())
                rows.append({"r": r, "drifting": drifting, "rule": rule, "cos_last": cos_last})
            del mem_r
    return rows


def leader(gap: float) -> str:
    """Verdict on ``gap`` = inverse-noise minus debiased mean cosine."""
    if abs(gap) < 5e-5:
        return "inverse noise and debiased agree to four decimals"
    ahead = "the inverse-noise read" if gap > 0 else "the debiased read"
    return f"{ahead} leads by {abs(gap):.4f}"


def known_key_study(
    D: int, d: int, K: int, loads: Sequence[float], iterations: int, seed: int, batch_size: int
) -> list[dict[str, Any]]:
    """For each load a fresh table (``H = 1``): the known-key solve
    (``solve_known_keys``, ``iterations`` passes) against the inverse-noise read, mean cosine
    and exact share (solve: cosine > 1 - 1e-4; read: > 1 - 1e-6)."""
    known = []
    for lam in loads:
        N = max(2, round(lam * D / K))
        memory = BBPMMemoryFloat(D, d, K, 1, GlobalAffineHash(D, seed=seed))
        values = unit_values(N, d, torch.Generator().manual_seed(seed + 13))
        fill(memory, values, 0, N, batch_size)
        keys = torch.arange(N)
        solved = F.cosine_similarity(solve_known_keys(memory, keys, iterations), values, dim=1)
        per_key = cosines(memory, keys, values, "inverse_noise")
        known.append(
            {
                "load": lam,
                "N": N,
                "solve_cos": float(solved.mean()),
                "solve_exact": float((solved > 1 - 1e-4).double().mean()),
                "inverse_noise_cos": float(per_key.mean()),
                "inverse_noise_exact": float((per_key > EXACT).double().mean()),
            }
        )
        del memory
    return known


def debiasing_verdict(
    sweep: Sequence[Mapping[str, Any]], grid: Sequence[Mapping[str, Any]]
) -> dict[str, tuple[Any, str, str]]:
    """Does count debiasing destroy signal? Over every measured point (load sweep and (K, H)
    grid): how often the debiased read beats the raw mean, the smallest debiased-minus-mean
    gap, how often inverse noise >= debiased over the loads, and the verdict;
    ``{name: (value, fmt, description)}`` for ``Experiment.record``."""
    loads = list(dict.fromkeys(r["load"] for r in sweep))
    gaps = [
        pick(sweep, "cos", load=lam, rule="debiased") - pick(sweep, "cos", load=lam, rule="mean")
        for lam in loads
    ]
    gaps += grid_gains(grid, "debiased", "mean")
    wins = sum(g > 0 for g in gaps)
    inv_wins = sum(
        pick(sweep, "cos", load=lam, rule="inverse_noise")
        >= pick(sweep, "cos", load=lam, rule="debiased")
        for lam in loads
    )
    verdict = (
        "No: on every measured point the count-debiased read beats the raw mean"
        if wins == len(gaps)
        else f"Not everywhere: the raw mean wins on {len(gaps) - wins} of {len(gaps)} points"
    )
    return {
        "debiased_beats_mean": (
            f"{wins} of {len(gaps)}",
            "",
            "measured points where the debiased read beats the raw mean",
        ),
        "debiased_minus_mean_min": (
            min(gaps),
            "+.4f",
            "smallest debiased minus mean cosine, all points",
        ),
        "inverse_noise_beats_debiased": (
            f"{inv_wins} of {len(loads)}",
            "",
            "loads where inverse noise >= debiased",
        ),
        "verdict_debiasing": (
            verdict,
            "",
            "verdict on the claim that count debiasing destroys signal",
        ),
    }


def read_rules_figure(
    sweep: Sequence[Mapping[str, Any]],
    grid: Sequence[Mapping[str, Any]],
    repeats: Sequence[Mapping[str, Any]],
    titles: Sequence[str],
) -> Any:
    """2x2 figure: mean cosine and exact share over load (markers measured, lines theory), the
    (K, H) grid as bars (dashes: theory), and the repeated-write study; ``titles`` are the four
    panel titles."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    repeat_counts = sorted({x["r"] for x in repeats})
    for rule, color in RULE_STYLE.items():
        rows = [r for r in sweep if r["rule"] == rule]
        lam = [r["load"] for r in rows]
        axes[0, 0].plot(
            lam, [r["theory_cos"] for r in rows], "-", color=color, label=f"{rule} (theory)"
        )
        axes[0, 0].plot(lam, [r["cos"] for r in rows], "o", color=color, label=f"{rule} (measured)")
        axes[0, 1].plot(lam, [r["theory_exact"] for r in rows], "-", color=color)
        axes[0, 1].plot(lam, [r["exact"] for r in rows], "o", color=color, label=rule)
        cells = [g for g in grid if g["rule"] == rule]
        x = np.arange(len(cells)) + 0.27 * (READ_RULES.index(rule) - 1)
        axes[1, 0].bar(x, [g["cos"] for g in cells], width=0.27, color=color, label=rule)
        axes[1, 0].plot(x, [g["theory_cos"] for g in cells], "k_", ms=10)
        for drifting, ls in ((False, "-"), (True, "--")):
            cos = [
                pick(repeats, "cos_last", r=r, drifting=drifting, rule=rule) for r in repeat_counts
            ]
            axes[1, 1].plot(
                repeat_counts,
                cos,
                ls,
                marker="o",
                color=color,
                label=f"{rule}, {'drifting' if drifting else 'same'} value",
            )
    axes[0, 0].set(xscale="log", xlabel="load $\\lambda = NKH/D$", ylabel="mean cosine")
    axes[0, 1].set(xscale="log", xlabel="load $\\lambda$", ylabel="share read exactly")
    axes[1, 0].set_xticks(
        np.arange(len(cells)), [f"K={g['K']}, H={g['H']}" for g in cells], rotation=30
    )
    axes[1, 0].set(ylabel="mean cosine")
    axes[1, 0].set_ylim(min(g["cos"] for g in grid) - 0.05, 1.01)
    axes[1, 1].set(xscale="log", xlabel="writes per key r", ylabel="cosine to the last value")
    for ax, title in zip(axes.flat, titles, strict=True):
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
