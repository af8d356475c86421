"""Needle-in-a-haystack experiment (notebook exp05): a stream of codebook values written into
BBPM memories and queried at checkpoints, against sliding windows that hold the last ``W``
items exactly and guess uniformly at random outside.

:class:`NeedleStream` holds the memories, their codebooks and the read rules;
:func:`run_checkpoints` writes the stream once and scores every checkpoint;
:func:`age_bins` scores success against the age of an item; :func:`single_needle_curve` is
the one-needle test; :func:`needle_figure` draws the four panels from ``metrics.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bbpm.baselines.decode import decode_top1
from bbpm.utils.timing import Timer

BYTES_PER_EXACT_ITEM_KEY = 8  # an int64 key beside each exact float32 value


def check_stream_params(
    N_values: Sequence[int], n_needles: int, needle_key: int, haystack_start: int
) -> None:
    """Raise ``ValueError`` unless the checkpoints increase strictly, the needles fit in the
    smallest checkpoint and ``needle_key`` lies below ``haystack_start``."""
    N_values = list(N_values)
    if sorted(N_values) != N_values or len(set(N_values)) != len(N_values):
        raise ValueError(f"N_values must be strictly increasing, got {N_values}")
    if n_needles > N_values[0]:
        raise ValueError(f"n_needles={n_needles} exceeds the smallest N={N_values[0]}")
    if not 0 <= needle_key < haystack_start:
        raise ValueError(
            "needle_key must lie in [0, haystack_start) so no haystack key equals it, "
            f"got {needle_key}"
        )


def centred_codebook(codebook: torch.Tensor) -> torch.Tensor:
    """``codebook [C, d]`` minus its mean row, each row renormalised to unit length."""
    return torch.nn.functional.normalize(codebook - codebook.mean(dim=0), dim=1)


def exact_window_items(nbytes: int, d: int) -> int:
    """How many exact items (a float32 ``d``-vector plus an int64 key) fit in ``nbytes``."""
    return nbytes // (d * 4 + BYTES_PER_EXACT_ITEM_KEY)


@dataclass
class NeedleStream:
    """Memories (name -> memory), their codebooks (name -> ``[C, d]``), the readers
    (variant -> (memory name, read rule)), the value id of every stream position and the
    generator that draws the windows' random guesses."""

    memories: Mapping[str, Any]
    codebooks: Mapping[str, torch.Tensor]
    readers: Mapping[str, tuple[str, str]]
    value_ids: torch.Tensor
    guess_gen: torch.Generator

    def write(self, start: int, stop: int) -> float:
        """Write positions ``start..stop-1`` into every memory; return the seconds spent."""
        keys = torch.arange(start, stop, dtype=torch.int64)
        seconds = 0.0
        for name, book in self.codebooks.items():
            with Timer() as timer:
                self.memories[name].write(keys, book[self.value_ids[start:stop]])
            seconds += timer.elapsed
        return seconds

    def query(self, variant: str, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Success ``[Q]`` (top-1 decode against the variant's codebook returns the true id)
        and cosine ``[Q]`` to the true code of the keys at ``positions``."""
        book, rule = self.readers[variant]
        truth = self.value_ids[positions]
        reads = self.memories[book].read(positions, read_rule=rule)
        decoded, _, _ = decode_top1(reads, self.codebooks[book])
        codes = self.codebooks[book][truth]
        return decoded == truth, torch.nn.functional.cosine_similarity(reads, codes, dim=1)

    def window(self, positions: torch.Tensor, N: int, W: int) -> torch.Tensor:
        """Success ``[Q]`` of a window holding the last ``W`` of ``N`` items exactly and
        guessing a uniformly random id (from ``guess_gen``) otherwise."""
        truth = self.value_ids[positions]
        n_values = next(iter(self.codebooks.values())).shape[0]
        guesses = torch.randint(n_values, truth.shape, generator=self.guess_gen)
        inside = torch.ones_like(truth, dtype=torch.bool)
        return torch.where(positions >= N - W, inside, guesses == truth)


def query_rows(N, variant, positions, needle, success, cosines) -> list[dict]:
    """One raw row per queried item: checkpoint, variant, position, age, success, cosine."""
    return [
        {
            "N": N,
            "codebook": variant,
            "position": p,
            "age": N - p,
            "needle": needle,
            "success": ok,
            "cos": cos,
        }  # fmt: skip
        for p, ok, cos in zip(positions.tolist(), success.tolist(), cosines.tolist(), strict=True)
    ]


def success_summary(success, cosines, needle_success, needle_cosines) -> dict[str, float]:
    """Success rate with its standard error (sample std / sqrt(Q)), mean cosine, and the
    same for the needles."""
    return {
        "success": float(success.double().mean()),
        "success_sem": float(success.double().std() / math.sqrt(success.numel())),
        "mean_cos": float(cosines.mean()),
        "needle_success": float(needle_success.double().mean()),
        "needle_mean_cos": float(needle_cosines.mean()),
    }


def run_checkpoints(
    stream: NeedleStream,
    N_values: Iterable[int],
    n_queries: int,
    n_needles: int,
    windows: Mapping[str, int],
    batch_size: int,
    seed: int,
    extra: Callable[[int], dict] = lambda N: {},
) -> tuple[list[dict], list[dict], float]:
    """Write the stream in batches of ``batch_size`` and, at each checkpoint ``N``, query
    ``n_queries`` positions drawn by ``randperm(N)`` (generator seeded ``seed + 7919 N``) and
    the ``n_needles`` oldest keys with every reader, and the sampled ones with every window.
    ``extra(N)`` adds entries (theory, diagnostics) to the checkpoint. Returns the raw rows,
    the checkpoints and the seconds spent writing."""
    rows, checkpoints, written, write_seconds = [], [], 0, 0.0
    needles = torch.arange(n_needles, dtype=torch.int64)
    for N in N_values:
        while written < N:
            stop = min(written + batch_size, N)
            write_seconds += stream.write(written, stop)
            written = stop
        query_gen = torch.Generator().manual_seed(seed + 7919 * N)
        sampled = torch.randperm(N, generator=query_gen)[: min(n_queries, N)]
        bbpm = {}
        for name in stream.readers:
            success, cosines = stream.query(name, sampled)
            needle_success, needle_cosines = stream.query(name, needles)
            bbpm[name] = success_summary(success, cosines, needle_success, needle_cosines)
            rows += query_rows(N, name, sampled, False, success, cosines)
            rows += query_rows(N, name, needles, True, needle_success, needle_cosines)
        window_success = {
            name: float(stream.window(sampled, N, W).double().mean()) for name, W in windows.items()
        }
        checkpoints.append({"N": N, "bbpm": bbpm, "window_success": window_success, **extra(N)})
    return rows, checkpoints, write_seconds


def log_uniform_ages(n: int, N_max: int, generator: torch.Generator) -> torch.Tensor:
    """Distinct ages in ``[1, N_max]`` from ``n`` log-uniform draws (duplicates dropped)."""
    log_age = torch.rand(n, generator=generator, dtype=torch.float64) * math.log(N_max + 1)
    return torch.unique(torch.exp(log_age).floor().to(torch.int64).clamp(1, N_max))


def age_bins(
    ages: torch.Tensor,
    bbpm_success: Mapping[str, torch.Tensor],
    window_success: Mapping[str, torch.Tensor],
    N_max: int,
    n_bins: int,
) -> list[dict]:
    """Success per log-spaced age bin (``n_bins`` edges from 1 to ``N_max + 1``, empty bins
    left out): per reader its rate and binomial standard error, per window its rate."""
    edges = np.unique(np.floor(np.logspace(0, math.log10(N_max + 1), n_bins + 1)).astype(np.int64))
    bin_of = np.clip(np.searchsorted(edges, ages.numpy(), side="right") - 1, 0, len(edges) - 2)
    bins = []
    for b in range(len(edges) - 1):
        in_bin = torch.from_numpy(bin_of == b)
        n_in = int(in_bin.sum())
        if n_in == 0:
            continue
        bbpm = {}
        for name, success in bbpm_success.items():
            p = float(success[in_bin].double().mean())
            bbpm[name] = {"success": p, "success_sem": math.sqrt(p * (1 - p) / n_in)}
        bins.append(
            {
                "age_lo": int(edges[b]),
                "age_hi": int(edges[b + 1]) - 1,
                "age_center": math.sqrt(edges[b] * edges[b + 1]),
                "n": n_in,
                "bbpm": bbpm,
                "window_success": {
                    name: float(s[in_bin].double().mean()) for name, s in window_success.items()
                },
            }  # fmt: skip
        )
    return bins


def single_needle_curve(
    memory: Any,
    needle_key: int,
    haystack_start: int,
    haystacks: Iterable[int],
    batch_size: int,
    generator: torch.Generator,
    theory: Callable[[int], float],
) -> list[dict]:
    """Clear ``memory``, write one random unit needle under ``needle_key``, then random unit
    haystack values under ``haystack_start, haystack_start + 1, ...``; after each haystack
    size, the cosine of the needle's read to the needle and ``theory(haystack + 1)``."""
    memory.clear()
    d = memory.d
    needle_value = torch.nn.functional.normalize(torch.randn(1, d, generator=generator), dim=1)
    memory.write(torch.tensor([needle_key]), needle_value)
    curve, written = [], 0
    for haystack in haystacks:
        while written < haystack:
            stop = min(written + batch_size, haystack)
            hay = torch.randn(stop - written, d, generator=generator)
            keys = torch.arange(haystack_start + written, haystack_start + stop)
            memory.write(keys, torch.nn.functional.normalize(hay, dim=1))
            written = stop
        read = memory.read(torch.tensor([needle_key]))
        cos = float(torch.nn.functional.cosine_similarity(read, needle_value).item())
        curve.append(
            {
                "haystack": haystack,
                "needle_cos": cos,
                "expected_cosine_theory": theory(haystack + 1),
            }
        )
    return curve


def pooled(bins: Sequence[dict], success_of: Callable[[dict], float]) -> tuple[float, int]:
    """Success over all queried items of ``bins`` (weighted by items per bin), and the count."""
    n = sum(b["n"] for b in bins)
    return sum(success_of(b) * b["n"] for b in bins) / n, n


def age_comparison(bins: Sequence[dict], window: int, variant: str = "centred") -> dict | None:
    """Pooled success of ``variant`` on items older than ``window`` against younger ones, the
    standard error of the difference (two independent binomial rates) and the verdict
    (difference within 2 s.e. or not); ``None`` when no bin lies wholly on each side."""
    old = [b for b in bins if b["age_lo"] > window]
    recent = [b for b in bins if b["age_hi"] <= window]
    if not (old and recent):
        return None
    (p_old, n_old), (p_recent, n_recent) = (
        pooled(side, lambda b: b["bbpm"][variant]["success"]) for side in (old, recent)
    )
    se = math.sqrt(p_old * (1 - p_old) / n_old + p_recent * (1 - p_recent) / n_recent)
    verdict = (
        "consistent with no dependence on age"
        if abs(p_recent - p_old) <= 2 * se
        else "a dependence on age"
    )
    return {"old": old, "recent": recent, "p_old": p_old, "n_old": n_old,
            "p_recent": p_recent, "n_recent": n_recent, "se": se, "verdict": verdict}  # fmt: skip


def first_below(checkpoints: Sequence[dict], variant: str, level: float = 0.9) -> dict | None:
    """The first checkpoint where ``variant``'s success falls below ``level``, or ``None``."""
    return next((c for c in checkpoints if c["bbpm"][variant]["success"] < level), None)


def decline_sentence(checkpoints: Sequence[dict], variant: str, level: float = 0.9) -> str:
    """Where ``variant``'s success first falls below ``level`` (with the load there), or that it
    never does, and its success at the last checkpoint; the subject is "its success"."""

    def at(c: dict) -> str:
        return f"N = {c['N']:,} (load {c['load']:.1f})"

    below, last = first_below(checkpoints, variant, level), checkpoints[-1]
    final, share = f"{last['bbpm'][variant]['success']:.3f}", f"{level:.0%}"
    if below is None:
        return f"stays at or above {share} at every checkpoint to {at(last)}, where it is {final}"
    if below is last:
        return f"first falls below {share} at the last checkpoint, {at(last)}, where it is {final}"
    return f"first falls below {share} at {at(below)} and is {final} at {at(last)}"


def success_gain_sentence(checkpoints: Sequence[dict], variant: str, base: str) -> str:
    """What reading with ``variant`` instead of ``base`` does to the top-1 success over the
    checkpoints: that it never changes it, or its largest gain (and where) and its worst."""
    gains = [c["bbpm"][variant]["success"] - c["bbpm"][base]["success"] for c in checkpoints]
    if all(g == 0 for g in gains):
        return (
            "never changes the success: at every checkpoint both reads decode the same share of "
            "the queries"
        )
    best = max(range(len(gains)), key=gains.__getitem__)
    return (
        f"gains at most {gains[best]:+.3f} in success (at N = {checkpoints[best]['N']:,}) and "
        f"at worst {min(gains):+.3f}"
    )


VARIANT_STYLES = {
    "centred": dict(color="C0", marker="o", ls="-", label="BBPM (centred codebook)"),
    "raw": dict(color="C0", marker="o", ls="--", mfc="none", label="BBPM, raw codebook"),
    "centred_inverse_noise": dict(
        color="C2", marker="D", ls="-", label="BBPM (centred), inverse-noise read"
    ),
}


def _window_styles(names: Sequence[str]) -> dict[str, dict]:
    return dict(zip(names, (dict(color="C1", marker="s"), dict(color="C2", marker="^"))))


def _success_panel(ax, x, points: Sequence[dict], window_names: Sequence[str]) -> None:
    """Success (with s.e. bars) of every reader and of the windows over ``x``."""
    for name, style in VARIANT_STYLES.items():
        ax.errorbar(x, [p["bbpm"][name]["success"] for p in points],
                    yerr=[p["bbpm"][name]["success_sem"] for p in points], capsize=3, **style)  # fmt: skip
    for name, style in _window_styles(window_names).items():
        ax.plot(x, [p["window_success"][name] for p in points], label=name, **style)
    ax.set_xscale("log")
    ax.set_ylabel("top-1 recall success")
    ax.grid(True, which="both", alpha=0.3)


def needle_figure(m: Mapping[str, Any]):
    """The four panels of exp05 from its ``metrics.json``: (a) success vs N, (b) mean cosine
    vs N with theory, (c) success vs age at the largest N, (d) the single-needle test."""
    import matplotlib.pyplot as plt

    hp, cp, ab, nc = m["hyperparameters"], m["checkpoints"], m["age_bins"], m["single_needle"]
    Ns, window_names = [c["N"] for c in cp], list(m["windows"])
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    ax = axes[0, 0]
    _success_panel(ax, Ns, cp, window_names)
    ax.plot(Ns, [c["bbpm"]["centred"]["needle_success"] for c in cp], "x", color="C3", ms=9,
            mew=2, label=f"BBPM, the {hp['n_needles']} oldest keys (needles)")  # fmt: skip
    ax.axhline(m["chance"], color="grey", ls=":", label=f"chance 1/C = {m['chance']:.4f}")
    ax.set(xlabel="items written N", title="(a) success vs haystack size")
    ax.legend(fontsize=8)
    KH_D = hp["K"] * hp["H"] / hp["D"]
    top = ax.secondary_xaxis("top", functions=(lambda n: n * KH_D, lambda lam: lam / KH_D))
    top.set_xlabel("load λ = NKH/D")
    _cosine_panel(axes[0, 1], Ns, cp)
    ax = axes[1, 0]
    _success_panel(ax, [b["age_center"] for b in ab], ab, window_names)
    ax.axhline(m["chance"], color="grey", ls=":", label="chance")
    ax.set(xlabel="age of the queried item (N - position; 1 = last written)",
           title=f"(c) success vs position in the stream at N = {m['age_bins_N']:,}")  # fmt: skip
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 0.12), framealpha=0.9)
    _needle_panel(axes[1, 1], hp, nc, Ns, cp)
    fig.suptitle(f"Needle in a haystack: D = {hp['D']:,}, d = {hp['d']}, K = {hp['K']}, "
                 f"H = {hp['H']}, C = {hp['n_values']}")  # fmt: skip
    fig.tight_layout()
    return fig


def _cosine_panel(ax, Ns, cp) -> None:
    for name, style in VARIANT_STYLES.items():
        ax.plot(Ns, [c["bbpm"][name]["mean_cos"] for c in cp], **style)
    ax.plot(Ns, [c["expected_cosine_theory"] for c in cp], "k:", lw=2,
            label="theory: snr_bounds.expected_cosine")  # fmt: skip
    ax.plot(Ns, [c["expected_cosine_theory_inverse_noise"] for c in cp], ":", color="C2", lw=2,
            label="theory, inverse-noise read")  # fmt: skip
    ax.set_xscale("log")
    ax.set(xlabel="items written N", ylabel="mean cosine(read, true code)",
           title="(b) fidelity of the read vector")  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def _needle_panel(ax, hp, nc, Ns, cp) -> None:
    hay = [r["haystack"] for r in nc]
    ax.plot(hay, [r["needle_cos"] for r in nc], "o-", color="C3",
            label=f"needle key {hp['needle_key']} (one item)")  # fmt: skip
    ax.plot(hay, [r["expected_cosine_theory"] for r in nc], "k--", label="theory: expected cosine")
    ax.plot(Ns, [c["bbpm"]["centred"]["mean_cos"] for c in cp], ":", color="C0",
            label="mean over random keys, panel (b)")  # fmt: skip
    ax.set_xscale("log")
    ax.set(xlabel=f"haystack size (noise keys from {hp['haystack_start']:,})",
           ylabel="cosine(read, needle)", title="(d) the prototype's single-needle test")  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
