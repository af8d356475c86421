"""Read/write benchmark plumbing (notebook bench01_write_read): the one-variable-at-a-time
configurations and the figures drawn from the benchmark's rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PATH_STYLES = {
    ("read", "canonical"): dict(color="tab:blue", ls="-", marker="o"),
    ("read", "fast"): dict(color="tab:blue", ls="--", marker="s"),
    ("write", "canonical"): dict(color="tab:orange", ls="-", marker="o"),
    ("write", "fast"): dict(color="tab:orange", ls="--", marker="s"),
}
OP_COLORS = {"read": "tab:blue", "write": "tab:orange"}
#: Display names of the paths: ``fast`` (the data key of ``bbpm.bench.compare_paths``) is
#: ``kernels.read`` / ``write``, the library path, whether or not it ran faster.
PATH_LABELS = {"canonical": "canonical", "fast": "library"}


def one_at_a_time(
    base: Mapping[str, Any], sweeps: Mapping[str, Sequence[Any]]
) -> list[tuple[str, Any, dict]]:
    """``("base", None, base)`` followed by ``(name, value, base with name = value)`` for
    every value of every swept variable, in the order given."""
    return [("base", None, dict(base))] + [
        (name, value, {**base, name: value}) for name, values in sweeps.items() for value in values
    ]


def add_copy_floors(rows: list[dict], copy_gbps: float) -> None:
    """Set ``row["read_floor_s"]`` / ``row["write_floor_s"]``: the seconds the op's counted
    bytes (``row["read_bytes"]`` / ``row["write_bytes"]``) take at ``copy_gbps`` GB/s."""
    for row in rows:
        for op in ("read", "write"):
            row[f"{op}_floor_s"] = row[f"{op}_bytes"] / (copy_gbps * 1e9)


def time_vs_variables_figure(
    rows: Sequence[Mapping[str, Any]], variables: Sequence[str], title: str
):
    """One panel per swept variable: median time per call (ms, log scale) of the canonical and
    library (``fast``) read and write, and dotted the copy-bandwidth floor of each op. ``rows`` carry
    ``sweep``, ``value``, ``{op}_{path}_median_s`` and ``{op}_floor_s``; the ``dtype`` panel
    has categorical ticks, the others a log x axis."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(variables), figsize=(4 * len(variables), 4.2))
    for ax, name in zip(np.atleast_1d(axes), variables, strict=True):
        sweep_rows = [r for r in rows if r["sweep"] == name]
        x = np.arange(len(sweep_rows)) if name == "dtype" else [r["value"] for r in sweep_rows]
        for (op, path), style in PATH_STYLES.items():
            times = [r[f"{op}_{path}_median_s"] * 1e3 for r in sweep_rows]
            ax.plot(x, times, label=f"{op} {PATH_LABELS[path]}", **style)
        for op, color in OP_COLORS.items():
            floors = [r[f"{op}_floor_s"] * 1e3 for r in sweep_rows]
            ax.plot(x, floors, color=color, ls=":", alpha=0.6, label=f"{op} at copy bandwidth")
        ax.set_yscale("log")
        if name == "dtype":
            ax.set_xticks(x, [r["value"] for r in sweep_rows])
        else:
            ax.set_xscale("log")
        ax.set(xlabel=name + ("" if name == "dtype" else " (log scale)"), title=f"vs {name}")
        ax.grid(True, which="both", alpha=0.3)
    first = np.atleast_1d(axes)[0]
    first.set_ylabel("time per call (ms, median)")
    first.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


SPLIT_OPS = ["read canonical", "read fast", "write canonical", "write fast"]


def time_split_figure(base: Mapping[str, Any], title: str):
    """One horizontal bar per op at the base setting: hashing (grey) stacked with the memory
    kernel (green), labelled with the total and hashing's share, from a row of
    :func:`bbpm.bench.compare_paths` (``hash_median_s``, ``{op}_{path}_median_s``)."""
    import matplotlib.pyplot as plt

    from bbpm.bench import format_ms

    kernel_ms = [base[f"{op.replace(' ', '_')}_median_s"] * 1e3 for op in SPLIT_OPS]
    hash_ms = [base["hash_median_s"] * 1e3] * len(SPLIT_OPS)
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{op.split()[0]} {PATH_LABELS[op.split()[1]]}" for op in SPLIT_OPS]
    ax.barh(labels, hash_ms, color="tab:gray", label="hash (GlobalAffineHash)")
    ax.barh(labels, kernel_ms, left=hash_ms, color="tab:green", label="memory kernel")
    for i, (h, k) in enumerate(zip(hash_ms, kernel_ms, strict=True)):
        ax.text(
            h + k,
            i,
            f" {format_ms((h + k) / 1e3)} ms ({h / (h + k):.0%} hash)",
            va="center",
            fontsize=9,
        )
    ax.set_xlabel("time per call (ms, median)")
    ax.set_xlim(0, 1.35 * max(h + k for h, k in zip(hash_ms, kernel_ms, strict=True)))
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
