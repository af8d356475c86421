"""Block vs global hashing plumbing (notebook exp03): per-hash summaries of the sweep rows
and the six-panel figure drawn from ``metrics.json``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bbpm.hashing import diagnostics
from bbpm.memory import BBPMMemoryFloat


def by_hash(
    rows: Sequence[Mapping[str, Any]], stat: str, hashes: Iterable[str], N_values: Sequence[int]
) -> dict[str, dict[str, list[float]]]:
    """``{hash: {"mean": [per N], "spread": [max - min over seeds, per N]}}`` of a row
    statistic (NaN where undefined, e.g. no neighbours)."""
    table = {}
    for name in hashes:
        vals = [[r[stat] for r in rows if r["hash"] == name and r["N"] == N] for N in N_values]
        table[name] = {
            "mean": [float(np.mean(v)) for v in vals],
            "spread": [float(np.max(v) - np.min(v)) for v in vals],
        }
    return table


def cosine_row(cosines: torch.Tensor, threshold: float) -> dict[str, float]:
    """Mean, standard error of the mean, minimum and share above ``threshold`` of ``cosines``."""
    return {
        "mean_cos": float(cosines.mean()),
        "sem_cos": float(cosines.std() / math.sqrt(cosines.numel())),
        "min_cos": float(cosines.min()),
        "share_above_threshold": float((cosines > threshold).double().mean()),
    }


def sweep_seed(
    hash_fns: Mapping[str, Any],
    values: torch.Tensor,
    N_values: Sequence[int],
    sizes: tuple[int, int, int, int],
    n_eval: int,
    batch_size: int,
    eval_seed: Any,
    threshold: float,
    hist_N: int | None = None,
    on_step: Any = None,
) -> tuple[list[dict], dict[str, torch.Tensor], dict[str, BBPMMemoryFloat]]:
    """One memory per hash (``sizes = (D, d, K, H)``) filled with ``values`` up to each
    checkpoint N in turn; at each N, ``n_eval`` keys drawn by ``randperm(N)`` with the
    generator seeded ``eval_seed(N)`` are read back. Returns the rows (cosine statistics,
    collision diagnostics and neighbour overlap of all N keys' slots), the occupancy
    histogram per hash at ``N = hist_N``, and the filled memories. ``on_step()`` runs after each (N, hash)."""
    D, d, K, H = sizes
    memories = {name: BBPMMemoryFloat(D, d, K, H, hash_fn) for name, hash_fn in hash_fns.items()}
    rows, occupancy, written = [], {}, 0
    for N in N_values:
        keys = torch.arange(N, dtype=torch.int64)
        eval_rows = torch.randperm(N, generator=torch.Generator().manual_seed(eval_seed(N)))[
            :n_eval
        ]
        for name, memory in memories.items():
            for start in range(written, N, batch_size):
                stop = min(start + batch_size, N)
                memory.write(keys[start:stop], values[start:stop])
            read = memory.read(keys[eval_rows])
            cosines = torch.nn.functional.cosine_similarity(read, values[eval_rows], dim=1).double()
            idx = hash_fns[name].indices(keys, K, H)
            rows.append({"hash": name, "N": N, "load": N * K * H / D, **cosine_row(cosines, threshold),
                         **diagnostics.summarize(idx, D), **diagnostics.neighbour_overlap(idx, eval_rows, D)})  # fmt: skip
            if N == hist_N:
                occupancy[name] = diagnostics.occupancy_hist(idx, D)
            if on_step is not None:
                on_step()
        written = N
    return rows, occupancy, memories


def quartiles(values: Sequence[float]) -> dict[str, float]:
    """Median and the 25% / 75% quantiles of ``values``."""
    return {
        "median": float(np.median(values)),
        "q25": float(np.quantile(values, 0.25)),
        "q75": float(np.quantile(values, 0.75)),
    }


def _sweep_panel(ax, m, styles, stat: str, ylabel: str, title: str, log: bool = False) -> None:
    """Mean over seeds of ``stat`` against N per hash, error bar half the seed spread."""
    per = m["per_hash"]
    for name in m["hashes"]:
        mean = [math.nan if v is None else v for v in per[stat][name]["mean"]]
        half = [0.0 if v is None else v / 2 for v in per[stat][name]["spread"]]
        ax.errorbar(m["N"], mean, yerr=half, label=name, capsize=3, **styles[name])
    ax.set(xlabel="items written N", ylabel=ylabel, title=title, yscale="log" if log else "linear")
    ax.grid(True, alpha=0.3)


def _occupancy_panel(ax, m, styles) -> None:
    for name in m["hashes"]:
        hist = m["occupancy_hist"][name]
        ax.plot(range(len(hist)), hist, ls="none", label=name, **styles[name], mfc="none")
    ax.plot(range(len(m["occupancy_theory"])), m["occupancy_theory"], "k-", lw=1,
            label=f"uniform hashing theory (λ = {m['occupancy_hist_load']:.2f})")  # fmt: skip
    ax.legend(fontsize=8)
    ax.set(yscale="log", ylim=(0.5, None), xlabel="slot load (items in the slot)",
           ylabel="number of slots", title=f"(d) occupancy at N = {m['occupancy_hist_N']:,}")  # fmt: skip
    ax.grid(True, alpha=0.3)


def _speed_panel(ax, m, styles) -> None:
    speed, x = m["speed_items_per_s"], np.arange(len(m["hashes"]))
    for offset, op, hatch in [(-0.2, "write", ""), (0.2, "read", "//")]:
        q = [speed[n][op] for n in m["hashes"]]
        err = [[s["median"] - s["q25"] for s in q], [s["q75"] - s["median"] for s in q]]
        ax.bar(x + offset, [s["median"] for s in q], width=0.4, yerr=err, capsize=3, hatch=hatch,
               color=[styles[n]["color"] for n in m["hashes"]], edgecolor="k", label=op)  # fmt: skip
    ax.set_xticks(x, [n.replace(" (", "\n(") for n in m["hashes"]], fontsize=8)
    ax.set(yscale="log", ylabel="throughput (items / s, CPU)",
           title="(f) write (plain) and read (hatched) speed, median of "
           f"{m['hyperparameters']['timing_rounds']} rounds")  # fmt: skip
    ax.grid(True, axis="y", which="both", alpha=0.3)


def block_vs_global_figure(m: Mapping[str, Any]):
    """(a) mean cosine with theory, (b) share above the threshold, (c) slots shared per
    colliding neighbour, (d) occupancy histogram, (e) max load with theory, (f) speed."""
    import matplotlib.pyplot as plt

    hp = m["hyperparameters"]
    styles = {name: dict(color=f"C{i}", marker="osD^"[i]) for i, name in enumerate(m["hashes"])}
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    _sweep_panel(axes[0, 0], m, styles, "mean_cos", "mean cosine(read, written)",
                 "(a) fidelity (dashed: theory)")  # fmt: skip
    for name, theory in m["expected_cosine_theory"].items():
        axes[0, 0].plot(m["N"], theory, ls="--", color=styles[name]["color"], lw=1.2)
    _sweep_panel(axes[0, 1], m, styles, "share_above_threshold",
                 f"share of items with cosine > {hp['cos_threshold']}", "(b) accuracy")  # fmt: skip
    _sweep_panel(axes[0, 2], m, styles, "shared_slots_per_neighbour",
                 "slots shared per colliding neighbour",
                 "(c) correlated crosstalk: overlap with each neighbour", log=True)  # fmt: skip
    _sweep_panel(axes[1, 1], m, styles, "max_load", "largest slot load (items)",
                 "(e) collision stats: max load")  # fmt: skip
    axes[1, 1].plot(m["N"], m["max_load_theory"], "k--", lw=1, label="uniform hashing theory")
    axes[1, 1].legend(["uniform hashing theory"], fontsize=8, loc="upper left")
    _occupancy_panel(axes[1, 0], m, styles)
    _speed_panel(axes[1, 2], m, styles)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=4, fontsize=10, bbox_to_anchor=(0.5, 1.02))
    fig.suptitle(f"Block vs global hashing at D = {hp['D']:,}, d = {hp['d']}, K = {hp['K']}, "
                 f"H = {hp['H']}", y=1.06)  # fmt: skip
    fig.tight_layout()
    return fig


def accuracy_verdict(
    share_block: float, share_global: float, n_items: int, threshold: float
) -> str:
    """Whether large blocks cost accuracy: the share of ``n_items`` evaluated items whose cosine
    exceeds ``threshold``, block minus global, against two binomial standard errors of that
    difference (unpaired: the two hashes read the same keys, so this errs on the wide side)."""
    diff = share_block - share_global
    se = math.sqrt(
        (share_block * (1 - share_block) + share_global * (1 - share_global)) / max(n_items, 1)
    )
    numbers = (
        f"{share_block:.3f} of the evaluated items above {threshold} against {share_global:.3f} "
        f"with global hashing (block − global {diff:+.3f}; two standard errors {2 * se:.3f})"
    )
    if diff == 0:
        return (
            f"At this load large blocks cost no accuracy: as many evaluated items are above "
            f"{threshold} as with global hashing ({share_block:.3f})."
        )
    if abs(diff) <= 2 * se:
        return f"At this load large blocks cost no accuracy beyond sampling noise: {numbers}."
    if diff < 0:
        return f"At this load large blocks cost accuracy: {numbers}."
    return f"At this load large blocks are more accurate than global hashing: {numbers}."


def share_sentence(
    share_block: float, share_global: float, mean_block: float, mean_global: float, threshold: float
) -> str:
    """How the share above ``threshold`` moves against the mean cosine, both as block minus
    global."""
    share_gap, mean_gap = share_block - share_global, mean_block - mean_global
    if share_gap == 0:
        return f"The share above {threshold} is the same for both: {share_block:.3f}" + (
            " (almost every evaluated item is above the threshold at this load)."
            if share_block >= 0.99
            else "."
        )
    gaps = f"block − global {share_gap:+.3f} against {mean_gap:+.4f}"
    if abs(share_gap) > abs(mean_gap):
        return (
            f"The share above {threshold} moves more than the mean cosine ({gaps}): a small shift "
            "of the cosine distribution moves the items near the threshold across it."
        )
    return f"The share above {threshold} moves no more than the mean cosine ({gaps})."


def occupancy_verdict(
    occupancy_deviation: Mapping[str, float],
    mean_cos: Mapping[str, float],
    gini: Mapping[str, float],
    names: Sequence[str],
    N: int,
) -> str:
    """Whether the slot-load statistics show the damage of small blocks and of the prototype
    formula, at ``N`` items. ``names`` = (global, large block, small block, prototype);
    ``occupancy_deviation`` is each hash's largest relative deviation from the uniform-hashing
    histogram, ``mean_cos`` and ``gini`` its mean cosine and Gini of the loads, all at N."""
    g, b, s, p = names
    occ = occupancy_deviation

    def drop(name: str) -> tuple[float, str]:
        rel = 1 - mean_cos[name] / mean_cos[g]
        pair = f"({mean_cos[name]:.4f} vs {mean_cos[g]:.4f})"
        if rel <= 0:
            return rel, f"not below the global hash's {pair}"
        return rel, f"{rel:.0%} below the global hash's {pair}"

    rel_small, small_words = drop(s)
    size = "a smaller" if occ[s] < rel_small else "no smaller"
    evenness = "more even" if gini[p] < gini[g] else "not more even"
    return (
        f"In this run, at N = {N:,}, the small blocks' slot loads are off the uniform-hashing histogram by at most "
        f"{occ[s]:.1%} (global hash {occ[g]:.1%}, large blocks {occ[b]:.1%}), {size} relative "
        f"change than in their mean cosine, {small_words}; the prototype formula's loads are "
        f"{evenness} than random hashing's (Gini {gini[p]:.3f} vs {gini[g]:.3f}), while its mean "
        f"cosine is {drop(p)[1]}."
    )
