"""Occupancy benchmark plumbing (notebook bench02_occupancy): the hash families compared,
the key sets, and one measured-vs-theory row per (hash, key kind, load factor)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bbpm.hashing import BlockPermutationHash, GlobalAffineHash, MultiHashWrapper, diagnostics
from bbpm.theory import expected_load_histogram, occupancy_prediction

KEY_KINDS = ("consecutive", "random")


def hash_families(
    D: int, K: int, multi_H: int, block_size: int, seed: int
) -> dict[str, tuple[Any, int, int]]:
    """name -> (hash, slots per hash, hashes): every family places ``K`` slots per key in
    total (the multi-hash families ``K / multi_H`` per hash). Raises ``ValueError`` unless
    ``multi_H`` divides ``K`` and ``block_size`` divides ``D``."""
    if K % multi_H != 0:
        raise ValueError(
            f"K={K} must be divisible by multi_H={multi_H} (the multi-hash uses K/H slots per hash)"
        )
    if D % block_size != 0:
        raise ValueError(f"D={D} must be a multiple of block_size={block_size}")
    per_hash = K // multi_H
    return {
        "global mixed": (GlobalAffineHash(D, seed=seed), K, 1),
        "global prototype": (GlobalAffineHash(D, mode="prototype"), K, 1),
        f"block L={block_size}": (BlockPermutationHash(D, block_size, seed=seed), K, 1),
        f"multi-hash global x{multi_H}": (
            MultiHashWrapper(GlobalAffineHash(D), seed=seed),
            per_hash,
            multi_H,
        ),
        f"multi-hash block x{multi_H}": (
            MultiHashWrapper(BlockPermutationHash(D, block_size), seed=seed),
            per_hash,
            multi_H,
        ),
    }


def make_keys(kind: str, n: int, seed: int) -> torch.Tensor:
    """``[n]`` int64 keys: ``0..n-1`` (``"consecutive"``) or seeded uniform in ``[0, 2**62)``
    (``"random"``)."""
    if kind == "consecutive":
        return torch.arange(n)
    if kind == "random":
        return torch.randint(0, 2**62, (n,), generator=torch.Generator().manual_seed(seed))
    raise ValueError(f"key kind must be 'consecutive' or 'random', got {kind!r}")


def occupancy_row(
    hash_fn: Any, k_per_hash: int, n_hashes: int, keys: torch.Tensor, D: int
) -> tuple[dict, dict]:
    """Hash ``keys`` and compare their slot loads with uniform hashing: the diagnostics of
    :func:`bbpm.hashing.diagnostics.summarize`, their theory values and the total-variation
    distance of the occupancy histogram to the binomial one; and the histogram pair
    (``measured``, ``theory`` over at least 12 loads) for plotting."""
    N = keys.numel()
    idx = hash_fn.indices(keys, k_per_hash, n_hashes)
    hist = diagnostics.occupancy_hist(idx, D).double().numpy()
    theory = occupancy_prediction(N, D, k_per_hash, n_hashes)
    top = max(hist.size, 40)
    expected = expected_load_histogram(N, D, k_per_hash, n_hashes, top - 1)
    padded = np.zeros(top)
    padded[: hist.size] = hist
    row = {
        **diagnostics.summarize(idx, D),
        "gini_theory": diagnostics.gini_of_histogram(expected),
        "max_load_theory": theory["max_load"],
        "q2_theory": theory["q2"],
        "occupied_fraction_theory": theory["occupied_fraction"],
        "tv_distance": 0.5 * float(np.abs(padded / D - expected / D).sum()),
    }
    return row, {"measured": hist.tolist(), "theory": expected[: max(hist.size, 12)].tolist()}


def histogram_figure(metrics: dict, title: str):
    """One panel per (key kind, hash): the measured occupancy histogram at ``hist_load``
    (bars, log scale) and the binomial prediction (black dots), from bench02's metrics."""
    import matplotlib.pyplot as plt

    names, hp = list(metrics["hash_configs"]), metrics["hyperparameters"]
    kinds = hp["key_kinds"]
    fig, axes = plt.subplots(len(kinds), len(names), figsize=(3.6 * len(names), 3.2 * len(kinds)),
                             sharey=True, squeeze=False)  # fmt: skip
    for r, kind in enumerate(kinds):
        for c, name in enumerate(names):
            ax, h = axes[r, c], metrics["histograms"][f"{name}|{kind}"]
            ax.bar(np.arange(len(h["measured"])), h["measured"], color="tab:blue", alpha=0.7,
                   label="measured")  # fmt: skip
            ax.plot(np.arange(len(h["theory"])), h["theory"], "k.", label="binomial theory")
            ax.set(yscale="log", ylim=(0.5, 2 * hp["D"]), xlim=(-0.7, max(len(h["measured"]), 6) + 0.5),
                   xlabel="slot load j (writes)", ylabel="number of slots" if c == 0 else "")  # fmt: skip
            ax.set_title(f"{name}\n{kind} keys", fontsize=10)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


STAT_PANELS = [
    ("max_load", "max_load_theory", "largest slot load"),
    ("gini_load", "gini_theory", "Gini coefficient of slot loads"),
    ("q2", "q2_theory", r"$\hat q_2 \cdot D$ (1 = uniform)"),
    ("tv_distance", None, "TV distance to binomial"),
]


def hash_colors(names) -> dict[str, Any]:
    """One tab10 colour per hash family, in order."""
    import matplotlib.pyplot as plt

    return dict(zip(names, plt.cm.tab10.colors, strict=False))


def skew_figure(metrics: dict):
    """Largest load, Gini, q2 D and TV distance against the load factor: one colour per hash,
    solid consecutive / dashed random keys, the uniform-hashing theory in black."""
    import matplotlib.pyplot as plt

    names, hp = list(metrics["hash_configs"]), metrics["hyperparameters"]
    kinds, colors = hp["key_kinds"], hash_colors(names)
    fig, axes = plt.subplots(1, len(STAT_PANELS), figsize=(18, 4))
    for ax, (stat, theory_stat, label) in zip(axes, STAT_PANELS, strict=True):
        scale = hp["D"] if stat == "q2" else 1.0
        for name in names:
            for kind, ls in zip(kinds, ["-", "--"], strict=False):
                sel = [r for r in metrics["rows"] if r["hash"] == name and r["keys"] == kind]
                ax.plot([r["load_factor"] for r in sel], [r[stat] * scale for r in sel], ls=ls,
                        marker="o", color=colors[name], label=f"{name} ({kind})")  # fmt: skip
        if theory_stat:
            sel = [r for r in metrics["rows"] if r["hash"] == names[0] and r["keys"] == kinds[0]]
            ax.plot([r["load_factor"] for r in sel], [r[theory_stat] * scale for r in sel], "k-",
                    lw=2.5, alpha=0.5, label="uniform hashing (theory)")  # fmt: skip
        ax.set(xscale="log", xlabel=r"load factor $\lambda = NKH/D$ (log scale)", ylabel=label)
        ax.grid(True, alpha=0.3)
    axes[-1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
