"""KV-cache vs BBPM memory plumbing (notebook exp04): allocation measurements, the sentences
the chapter glues, and the figure drawn from ``metrics.json``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from bbpm.utils.device import rss_bytes
from bbpm.utils.memory_stats import release_freed_memory, storage_bytes

GB = 1e9


def cuda_peak_bytes(allocate: Callable[[], Any]) -> int:
    """Peak CUDA bytes allocated by ``allocate()`` above what was allocated before (its
    result is freed)."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    allocated = allocate()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del allocated
    torch.cuda.empty_cache()
    return peak


def measure_kv_cache(shape: tuple[int, ...], dtype: torch.dtype, cuda: bool) -> dict[str, Any]:
    """Allocate and zero-fill a KV cache of ``shape`` on the CPU (zero-filled so that its pages
    are committed): its resident-memory growth (``None`` where RSS cannot be read) and its
    tensor storage bytes; with ``cuda`` also the CUDA peak of the same allocation."""
    release_freed_memory()
    before = rss_bytes()
    kv_cache = torch.empty(shape, dtype=dtype).zero_()
    row = {"kv_rss_growth_bytes": None if before is None else rss_bytes() - before}
    row["kv_bytes_storage"] = storage_bytes(kv_cache)
    del kv_cache
    if cuda:
        row["kv_cuda_peak_bytes"] = cuda_peak_bytes(
            lambda: torch.zeros(shape, dtype=dtype, device="cuda")
        )
    return row


def crossover_sentence(m: Mapping[str, Any], t_star: str | None) -> str:
    """Where the KV cache overtakes BBPM: on the grid and interpolated (``t_star``, its
    formatted value), or in closed form only when the grid does not bracket the crossing."""
    if m["crossover_T_interpolated"] is not None:
        return (
            f"The KV cache is larger than BBPM from T = {m['crossover_grid_T']:,} on the grid; "
            f"interpolated, T* = {t_star} tokens (closed form "
            f"{m['crossover_T_closed_form']:,.0f})."
        )
    return (
        "The grid does not bracket the crossing; in closed form "
        f"T* = {m['crossover_T_closed_form']:,.0f} tokens."
    )


def memory_limit_sentence(m: Mapping[str, Any]) -> str:
    """The largest T whose KV cache fits in the memory limit, and BBPM's share of that limit."""
    if m["max_T_that_fits"] is None:
        return "The free memory of this machine could not be read."
    return (
        f"With {m['memory_limit_bytes'] / GB:.1f} GB ({m['memory_limit_source']}), a KV cache fits "
        f"up to T = {m['max_T_that_fits']:,} tokens; BBPM uses "
        f"{m['bbpm_bytes_storage'] / m['memory_limit_bytes']:.1%} of it."
    )


KV_SERIES = [
    ("kv_bytes_storage", dict(marker="o", color="C0"), "KV cache: tensor storage"),
    ("kv_rss_growth_bytes", dict(marker="x", color="C2", ms=8), "KV cache: RSS growth (CPU)"),
    ("kv_cuda_peak_bytes", dict(marker="s", mfc="none", color="C3", ms=8),
     "KV cache: CUDA max allocated"),
]  # fmt: skip
BBPM_SERIES = [
    ("bbpm_bytes_storage", dict(marker="D"), "BBPM: tensor storage"),
    ("bbpm_cuda_peak_bytes", dict(marker="s", mfc="none", ms=8), "BBPM: CUDA max allocated"),
    ("bbpm_rss_growth_bytes", dict(marker="x", ms=8), "BBPM: RSS growth (CPU)"),
]


def kv_memory_figure(m: Mapping[str, Any]):
    """KV-cache bytes against T (analytic line, measured markers; a series with no measured
    point gets no legend entry), BBPM's constant bytes, the crossover and, where it lies on
    the grid, the largest T whose KV cache fits."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(m["T"], [b / GB for b in m["kv_bytes_analytic"]], "-", color="C0",
            label="KV cache (analytic)")  # fmt: skip
    for key, style, label in KV_SERIES:
        pairs = [(T, b / GB) for T, b in zip(m["T"], m[key], strict=True) if b is not None]
        if pairs:
            ax.plot(*zip(*pairs, strict=True), ls="none", label=label, **style)
    ax.axhline(m["bbpm_bytes_analytic"] / GB, color="C1",
               label=f"BBPM D={m['hyperparameters']['bbpm_D']:,} (analytic)")  # fmt: skip
    for key, style, label in BBPM_SERIES:
        if m[key] is not None:
            ax.plot(m["T"][0], m[key] / GB, ls="none", color="C1", label=label, **style)
    if m["crossover_T_interpolated"] is not None:
        ax.axvline(m["crossover_T_interpolated"], color="grey", ls=":",
                   label=f"crossover T* = {m['crossover_T_interpolated']:,.0f}")  # fmt: skip
    if m["max_T_that_fits"] is not None and m["max_T_that_fits"] <= m["T"][-1]:
        ax.axvline(m["max_T_that_fits"], color="black", ls="--",
                   label=f"KV no longer fits ({m['memory_limit_source']})")  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="context length T (tokens)", ylabel="memory (GB)")
    ax.set_title("KV-cache memory grows with T; BBPM memory is constant")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig
