"""K x H ablation plumbing (notebook exp02): one write/read run, per-seed summaries and the
bar figure of measured values beside the theory."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bbpm.hashing import diagnostics
from bbpm.theory import collision_model, snr_bounds
from bbpm.utils.plots import bars_with_theory, legend_handles


def write_then_read_cosines(
    memory: Any, keys: torch.Tensor, values: torch.Tensor, eval_keys: torch.Tensor, batch_size: int
) -> tuple[np.ndarray, float]:
    """Write ``values [N, d]`` under ``keys [N]`` in batches of ``batch_size``, read
    ``eval_keys`` back; return the cosine (float64) of each read to its written value and the
    seconds the writes took."""
    started = time.perf_counter()
    for start in range(0, keys.numel(), batch_size):
        memory.write(keys[start : start + batch_size], values[start : start + batch_size])
    write_seconds = time.perf_counter() - started
    read = memory.read(eval_keys).double()
    cos = torch.nn.functional.cosine_similarity(read, values[eval_keys].double(), dim=1).numpy()
    return cos, write_seconds


def cosine_stats(cos: np.ndarray, taus: Sequence[float]) -> dict[str, float]:
    """Mean and standard deviation of ``cos`` and the share above each threshold ``tau``
    (keys ``share_above_{tau:g}``)."""
    stats = {"mean_cos": float(cos.mean()), "std_cos": float(cos.std())}
    stats.update({f"share_above_{tau:g}": float((cos > tau).mean()) for tau in taus})
    return stats


def seed_mean(values: Sequence[float]) -> tuple[float, float]:
    """Mean over seeds and its standard error (sample std / sqrt(n); 0 for one seed)."""
    vals = np.asarray(values, dtype=float)
    stderr = float(vals.std(ddof=1) / math.sqrt(vals.size)) if vals.size > 1 else 0.0
    return float(vals.mean()), stderr


def hash_diagnostics(
    hash_fn: Any, keys: torch.Tensor, eval_keys: torch.Tensor, D: int, K: int, H: int, d: int
) -> dict[str, float]:
    """Collision diagnostics of all ``keys``' K*H indices (:func:`diagnostics.summarize`), the
    per-key overlap of ``eval_keys`` (overlap concentration sum m^2 / sum m, partners per key)
    and the mean cosine the measured overlap predicts
    (:func:`snr_bounds.conditional_mean_cosine`)."""
    idx = hash_fn.indices(keys, K, H)
    overlap = collision_model.key_overlap_statistics(idx, eval_keys, D)
    sum_m = float(overlap["sum_m"].mean())
    given = snr_bounds.conditional_mean_cosine(overlap["a"], overlap["s2"], d).mean()
    concentration = float(overlap["sum_m2"].mean()) / sum_m if sum_m > 0 else math.nan
    return {
        **diagnostics.summarize(idx, D),
        "overlap_concentration": concentration,
        "partners_per_key": float(overlap["n_items"].mean()),
        "cosine_given_hash": float(given),
    }


def ablation_figure(
    cfg: Sequence[Mapping[str, Any]], taus: Sequence[float], with_prototype: bool, title: str
):
    """One panel per threshold (share of keys above it) and one of the mean cosine: a bar per
    (K, H) for the mixed hash (blue H = 1, orange otherwise) with its standard error, black
    diamonds for the theory, grey for the theory without the pair term (mean cosine only) and
    hollow red circles for the prototype formula when ``with_prototype``."""
    import matplotlib.pyplot as plt

    labels = [f"K={e['K']}\nH={e['H']}" for e in cfg]
    colors = ["tab:blue" if e["H"] == 1 else "tab:orange" for e in cfg]
    panels = [(f"share_above_{tau:g}", f"share of keys with cosine > {tau:g}") for tau in taus]
    panels.append(("mean_cos", "mean cosine(read, written)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5))
    for ax, (metric, ylabel) in zip(axes, panels, strict=True):
        meas = np.array([e[f"mixed_{metric}"] for e in cfg])
        is_cos = metric == "mean_cos"
        theory = np.array([e["theory"]["mean_cosine" if is_cos else metric] for e in cfg])
        bars_with_theory(
            ax, labels, meas, [e[f"mixed_{metric}_stderr"] for e in cfg], theory, colors,
            theory_alt=[e["theory"]["mean_cosine_no_pair"] for e in cfg] if is_cos else None,
            other=[e[f"prototype_{metric}"] for e in cfg] if with_prototype else None,
            bottom=max(0.0, min(meas.min(), theory.min()) - 0.02) if is_cos else 0.0,
            top=1.002 if is_cos else 1.05,
        )  # fmt: skip
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel)
    legend = [
        ("measured, mixed hash, H = 1", {"patch": "tab:blue"}),
        ("measured, mixed hash, H = 3", {"patch": "tab:orange"}),
        ("theory", {"marker": "D", "color": "black"}),
        ("theory without pair term (mean only)", {"marker": "D", "color": "gray", "mfc": "white"}),
    ]
    if with_prototype:
        legend.append(
            ("measured, prototype formula", {"marker": "o", "color": "tab:red", "mfc": "white"})
        )
    fig.legend(*legend_handles(legend), fontsize=8, loc="lower center", ncol=len(legend),
               bbox_to_anchor=(0.5, -0.06))  # fmt: skip
    fig.suptitle(title)
    fig.tight_layout()
    return fig
