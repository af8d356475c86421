"""Figures of the equal-bytes peer comparison (notebook exp08), drawn from a run's metrics.

Each function takes the dict of ``results/exp08_peer_memories/metrics.json`` (``m``) and
the method labels (:func:`bbpm.baselines.peers.method_labels`) and returns the figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bbpm.baselines.peers import COLORS
from bbpm.utils.formatting import format_bytes


def series(m: Mapping[str, Any], method: str, budget: int, column: str) -> tuple[list, list]:
    """(N, value) of the sweep rows of ``method`` at ``budget`` where ``column`` is not None."""
    points = [
        (r["N"], r[column])
        for r in m["sweep"]
        if r["method"] == method and r["budget_bytes"] == budget and r[column] is not None
    ]
    return [p[0] for p in points], [p[1] for p in points]


def accuracy_vs_n(m: Mapping[str, Any], labels: Mapping[str, str]) -> Any:
    """Per budget (columns): top-1 accuracy (top row) and mean cosine (bottom row) against N,
    measured (markers), predicted (dashed) and the capacity bisection's probes (crosses)."""
    import matplotlib.pyplot as plt

    hp, budgets = m["hyperparameters"], m["hyperparameters"]["budgets_bytes"]
    fig, axes = plt.subplots(
        2, len(budgets), figsize=(4.2 * len(budgets), 7.5), squeeze=False, sharey="row"
    )
    panels = [
        ("accuracy", "accuracy", "top-1 decode accuracy"),
        ("mean_cosine", "cosine", "mean cos(read, true code)"),
    ]
    for col, budget in enumerate(budgets):
        curves, slots = m["theory"][str(budget)], m["value_slots"][str(budget)]
        for row_i, (column, quantity, ylabel) in enumerate(panels):
            ax = axes[row_i, col]
            for method in hp["methods"]:
                color = COLORS[method]
                xs, ys = series(m, method, budget, column)
                if xs:
                    ax.plot(xs, ys, "o-", ms=3, lw=1, color=color, label=labels[method])
                if f"{method}_{quantity}" in curves:
                    ax.plot(
                        curves["N"],
                        curves[f"{method}_{quantity}"],
                        "--",
                        lw=1.2,
                        color=color,
                        alpha=0.7,
                    )
                entry = m["capacity"][method][str(budget)]
                if row_i == 0 and entry and entry["probes"]:
                    probes = entry["probes"]
                    ax.plot(
                        [p["N"] for p in probes],
                        [p["accuracy"] for p in probes],
                        "x",
                        ms=4,
                        color=color,
                    )
            ax.set_xscale("log")
            ax.grid(True, which="both", alpha=0.3)
            if row_i == 0:
                ax.axhline(hp["capacity_accuracy"], ls=":", color="grey", lw=1)
                ax.set_title(f"{format_bytes(budget)} ({slots:,} value vectors)")
                top = ax.secondary_xaxis(
                    "top",
                    functions=(
                        lambda n, s=slots: np.asarray(n) / s,
                        lambda x, s=slots: np.asarray(x) * s,
                    ),
                )
                top.set_xlabel("load N·4d/bytes")
            else:
                ax.set_xlabel("items written N")
            if col == 0:
                ax.set_ylabel(ylabel)
    handles, names = axes[0, 0].get_legend_handles_labels()
    handles += [
        plt.Line2D([], [], ls="--", color="grey"),
        plt.Line2D([], [], ls="none", marker="x", color="grey"),
    ]
    names += [
        "theory (same colour)",
        f"capacity bisection (target {hp['capacity_accuracy']:.0%}, dotted)",
    ]
    fig.legend(handles, names, loc="lower center", ncol=5, fontsize=9, bbox_to_anchor=(0.5, -0.07))
    fig.suptitle(
        f"Peer memories at equal bytes: d={hp['d']}, {hp['codebook_size']} codes, top-1 cleanup",
        y=1.0,
    )
    fig.tight_layout()
    return fig  # fmt: skip


def false_recall(m: Mapping[str, Any], labels: Mapping[str, str]) -> Any:
    """Per budget: the share of unseen keys accepted at the threshold keeping ``hit_keep`` of
    the true hits, with the score (top row) and the cosine (bottom row) as confidence."""
    import matplotlib.pyplot as plt

    hp, budgets = m["hyperparameters"], m["hyperparameters"]["budgets_bytes"]
    fig, axes = plt.subplots(
        2, len(budgets), figsize=(4.2 * len(budgets), 7), squeeze=False, sharey=True
    )
    panels = [
        ("false_recall", "false recall (score threshold)"),
        ("false_recall_cos", "false recall (cosine threshold)"),
    ]
    for col, budget in enumerate(budgets):
        for row_i, (column, ylabel) in enumerate(panels):
            ax = axes[row_i, col]
            for method in hp["methods"]:
                xs, ys = series(m, method, budget, column)
                if xs:
                    ax.plot(xs, ys, "o-", ms=3, lw=1, color=COLORS[method], label=labels[method])
            ax.set_xscale("log")
            ax.set_ylim(-0.03, 1.03)
            ax.grid(True, which="both", alpha=0.3)
            if row_i == 0:
                ax.set_title(format_bytes(budget))
            else:
                ax.set_xlabel("items written N")
            if col == 0:
                ax.set_ylabel(ylabel)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.07))
    fig.suptitle(
        f"Unseen keys accepted at the threshold keeping {hp['hit_keep']:.0%} of true hits", y=1.0
    )
    fig.tight_layout()
    return fig  # fmt: skip


def capacity_vs_budget(m: Mapping[str, Any], labels: Mapping[str, str]) -> Any:
    """Capacity (bracket midpoint, the bracket as error bar; open markers: censored) per
    method against the budget, beside the dict's stored capacity b/(8+4d)."""
    import matplotlib.pyplot as plt

    hp, budgets = m["hyperparameters"], m["hyperparameters"]["budgets_bytes"]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for method in hp["methods"]:
        entries = [(b, m["capacity"][method][str(b)]) for b in budgets]
        entries = [(b, e) for b, e in entries if e is not None and e["N"] is not None]
        closed = [(b, e) for b, e in entries if not e["censored"]]
        censored = [(b, e) for b, e in entries if e["censored"]]
        if closed:
            ys = [e["N"] for _, e in closed]
            yerr = [
                [e["N"] - e["N_lo"] for _, e in closed],
                [e["N_hi"] - e["N"] for _, e in closed],
            ]
            ax.errorbar(
                [b for b, _ in closed],
                ys,
                yerr=yerr,
                fmt="o-",
                capsize=2,
                color=COLORS[method],
                label=labels[method],
            )
        if censored:
            ax.plot(
                [b for b, _ in censored],
                [e["N"] for _, e in censored],
                "o",
                mfc="none",
                color=COLORS[method],
            )
    bx = np.array(budgets, dtype=float)
    ax.plot(
        bx,
        bx / (8 + 4 * hp["d"]),
        "-",
        color="grey",
        lw=3,
        alpha=0.4,
        label="dict capacity b/(8+4d)",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(budgets, [format_bytes(b) for b in budgets])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("memory budget")
    ax.set_ylabel(f"items at ≥ {hp['capacity_accuracy']:.0%} top-1 accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_title("Capacity at equal bytes")
    return fig  # fmt: skip


def throughput(m: Mapping[str, Any], labels: Mapping[str, str]) -> Any:
    """Write and read items/s per method (bars, one per budget; log scale)."""
    import matplotlib.pyplot as plt

    methods, budgets = m["hyperparameters"]["methods"], m["hyperparameters"]["budgets_bytes"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    width, x = 0.8 / len(budgets), np.arange(len(methods))
    for ax, column, title in zip(
        axes, ("write_items_per_s", "read_items_per_s"), ("write", "read"), strict=True
    ):
        for j, budget in enumerate(budgets):
            heights = [m["throughput"][method][str(budget)][column] for method in methods]
            color = plt.cm.viridis(j / max(1, len(budgets) - 1))
            ax.bar(
                x + (j - (len(budgets) - 1) / 2) * width,
                heights,
                width,
                label=format_bytes(budget),
                color=color,
            )
        ax.set_xticks(x)
        ax.set_xticklabels([labels[mm] for mm in methods], rotation=35, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"{title} throughput")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("items / second")
    axes[1].legend(title="budget", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig  # fmt: skip


def k_ablation(m: Mapping[str, Any]) -> Any:
    """BBPM's mean cosine (codebook vs independent values), accuracy and the snr_bounds
    cosine against K."""
    import matplotlib.pyplot as plt

    ablation = m["k_ablation"]
    rows, fig = ablation["rows"], plt.figure(figsize=(6, 4))
    ax, ks = fig.add_subplot(), [r["K"] for r in ablation["rows"]]
    lines = [("cosine_independent", "o-", "C0", "mean cos, independent values"),
             ("cosine_codebook", "s-", "C3", "mean cos, codebook values"),
             ("accuracy_codebook", "^-", "C2", "top-1 accuracy, codebook values"),
             ("cosine_theory", "--", "C0", "snr_bounds.expected_cosine")]  # fmt: skip
    for column, style, color, label in lines:
        if column in rows[0]:
            ax.plot(ks, [r[column] for r in rows], style, color=color, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("K (slots per item, H = 1)")
    ax.set_ylabel("cosine / accuracy")
    load = m["hyperparameters"]["k_ablation_load"]
    ax.set_title(
        f"BBPM at {format_bytes(ablation['budget'])}, N = {ablation['N']:,} (load {load:g})"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig
