"""Plotting helpers shared by the notebooks: measured bars beside theory markers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def bars_with_theory(
    ax: Any,
    labels: Sequence[str],
    measured: Sequence[float],
    stderr: Sequence[float],
    theory: Sequence[float],
    colors: Sequence[str] | str = "tab:blue",
    theory_alt: Sequence[float] | None = None,
    other: Sequence[float] | None = None,
    bottom: float = 0.0,
    top: float = 1.05,
) -> None:
    """One bar per setting (error bar: ``stderr``) with a black diamond for ``theory`` beside
    it; optional hollow grey diamonds (``theory_alt``, e.g. a model without a term) and hollow
    red circles (``other``, e.g. a second hash). ``other`` values below ``bottom`` are marked
    by an arrow at the axis edge with their value printed."""
    x = np.arange(len(labels))
    ax.bar(x - 0.17, measured, width=0.34, yerr=stderr, capsize=3, color=colors, edgecolor="black")
    ax.plot(x + 0.12, theory, "D", color="black", ms=6, zorder=4)
    if theory_alt is not None:
        ax.plot(x + 0.12, theory_alt, "D", color="gray", mfc="white", ms=6)
    if other is not None:
        other = np.asarray(other, dtype=float)
        shown = other >= bottom
        ax.plot(x[shown] + 0.3, other[shown], "o", color="tab:red", mfc="white", ms=6)
        for i in np.flatnonzero(~shown):
            ax.annotate(
                f"{other[i]:.2f}",
                (x[i] + 0.3, bottom),
                xytext=(0, 12),
                textcoords="offset points",
                ha="center",
                fontsize=7,
                color="tab:red",
                arrowprops={"arrowstyle": "->", "color": "tab:red"},
            )
    ax.set_ylim(bottom, top)
    ax.set_xticks(x, labels)


def legend_handles(entries: Sequence[tuple[str, dict[str, Any]]]) -> tuple[list, list[str]]:
    """Legend proxies: ``("label", {"patch": "tab:blue"})`` for a bar colour, or
    ``("label", {"marker": "D", "color": "black", ...})`` for a marker style."""
    import matplotlib.lines
    import matplotlib.patches

    handles = []
    for _, style in entries:
        if "patch" in style:
            handles.append(matplotlib.patches.Patch(color=style["patch"]))
        else:
            handles.append(matplotlib.lines.Line2D([], [], ls="", **style))
    return handles, [label for label, _ in entries]
