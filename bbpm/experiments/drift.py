"""Key-drift plumbing (notebook exp06): key sharing of projection keys at t = 0 and the
six-panel figure drawn from ``metrics.json``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch


def key_sharing(keys: torch.Tensor, n_bits: int) -> dict[str, float | int]:
    """Share of the ``keys [n]`` that another key equals (``measured``), the same share for
    uniformly spread ``n_bits``-bit codes, ``1 - (1 - 2^-b)^(n-1)``, and the number of
    distinct keys."""
    _, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    return {
        "measured": float((counts[inverse] > 1).double().mean()),
        "uniform_theory": 1.0 - (1.0 - 2.0**-n_bits) ** (keys.numel() - 1),
        "distinct_keys": int(counts.numel()),
    }


def _styles(hp: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    sigma_color = {str(s): f"C{i + 1}" for i, s in enumerate(hp["sigmas"])}
    bits_style = {str(b): ["-", "--", "-.", ":"][i % 4] for i, b in enumerate(hp["bits_values"])}
    bits_marker = {str(b): "os^D"[i % 4] for i, b in enumerate(hp["bits_values"])}
    return sigma_color, bits_style, bits_marker


def _time_panels(axes, m, sigma_color) -> None:
    """(a) recall and (b) fidelity over time for the main bit width."""
    hp, t_axis, mb = m["hyperparameters"], m["t"], str(m["hyperparameters"]["main_bits"])
    main = m["curves"][mb]
    for ax, field, ylabel, title in [
        (axes[0, 0], "success", "top-1 recall of the t = 0 items", f"(a) recall vs time, {mb}-bit keys"),
        (axes[0, 1], "mean_cos", "mean cosine(read, true code)", f"(b) fidelity vs time, {mb}-bit keys"),
    ]:  # fmt: skip
        ax.plot(t_axis, main[f"stable_{field}"], "o-", color="k", ms=3, label="stable keys")
        for s, c in main["drift"].items():
            ax.plot(t_axis, c[field], "o-", ms=3, color=sigma_color[s], label=f"drift σ = {s}")
            if field == "success":
                ax.plot(t_axis, c["success_predicted"], ":", lw=2, color=sigma_color[s])
        ax.plot(t_axis, m["refresh"][field], "s--", ms=3, color="C5",
                label=f"drift σ = {hp['refresh_sigma']} + re-write every {hp['refresh_every']} steps")  # fmt: skip
        ax.set(xlabel="time step t", ylabel=ylabel, title=title)
        ax.grid(True, alpha=0.3)
    axes[0, 0].plot([], [], "k:", lw=2, label="theory: P(key unchanged) x stable + rest x 1/C")
    axes[0, 0].legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 0.1), framealpha=0.9)
    (theory_line,) = axes[0, 1].plot(t_axis, m["stable_cos_theory"], "k--", lw=1)
    axes[0, 1].legend([theory_line], ["theory, stable keys (assumes distinct keys); other lines as in (a)"],
                      fontsize=8)  # fmt: skip
    KH_D, n0, per = hp["K"] * hp["H"] / hp["D"], hp["n_items"], hp["fill_per_step"]
    axes[0, 0].secondary_xaxis(
        "top", functions=(lambda t: (n0 + t * per) * KH_D, lambda lam: (lam / KH_D - n0) / per)
    ).set_xlabel("memory load λ = NKH/D")


def _key_panels(axes, m, sigma_color, bits_style, bits_marker) -> None:
    """(c) bit flip rate, (d) keys unchanged against theory."""
    t_axis, mb = m["t"], str(m["hyperparameters"]["main_bits"])
    ax = axes[0, 2]
    for s, c in m["curves"][mb]["drift"].items():
        ax.plot(
            t_axis, c["bit_flip_rate"], "o", ms=4, color=sigma_color[s], label=f"measured, σ = {s}"
        )
        ax.plot(t_axis, m["theory_flip_rate"][s], "-", color=sigma_color[s], lw=1)
    ax.plot([], [], "k-", lw=1, label="theory arctan(σ√t)/π")
    ax.set(xlabel="time step t", ylabel="share of key bits flipped since t = 0",
           title=f"(c) key-bit flip rate ({mb} bits)")  # fmt: skip
    ax = axes[1, 0]
    for b, curve in m["curves"].items():
        for s, c in curve["drift"].items():
            ax.plot(t_axis, c["key_unchanged"], bits_marker[b], ms=3, color=sigma_color[s])
            ax.plot(t_axis, c["key_unchanged_theory"], bits_style[b], lw=1, color=sigma_color[s])
    for s in m["curves"][mb]["drift"]:
        ax.plot([], [], "-", color=sigma_color[s], label=f"σ = {s}")
    for b in m["curves"]:
        ax.plot([], [], bits_style[b] + bits_marker[b], color="grey", ms=4,
                label=f"{b} bits (line: (1-θ/π)^b)")  # fmt: skip
    ax.set(xlabel="time step t", ylabel="P(key_t = key_0)",
           title="(d) keys that survive the drift: measured vs theory")  # fmt: skip


def _bits_panels(axes, m, sigma_color) -> None:
    """(e) recall at the last step against the key length, (f) key sharing at t = 0."""
    hp, t_axis, mb = m["hyperparameters"], m["t"], str(m["hyperparameters"]["main_bits"])
    bits_axis = [int(b) for b in m["curves"]]
    curves = m["curves"]
    ax = axes[1, 1]
    ax.plot(bits_axis, [curves[str(b)]["stable_success"][-1] for b in bits_axis], "o-", color="k",
            label="stable keys")  # fmt: skip
    for s in curves[mb]["drift"]:
        drift = [curves[str(b)]["drift"][s] for b in bits_axis]
        ax.plot(bits_axis, [c["success"][-1] for c in drift], "o-", color=sigma_color[s],
                label=f"drift σ = {s}")  # fmt: skip
        ax.plot(
            bits_axis, [c["success_predicted"][-1] for c in drift], ":", lw=2, color=sigma_color[s]
        )
    ax.plot([], [], "k:", lw=2, label="theory")
    ax.set(xlabel="key bits b", ylabel=f"top-1 recall at t = {t_axis[-1]}",
           title="(e) short keys survive drift, long keys stay distinct", xticks=bits_axis)  # fmt: skip
    ax = axes[1, 2]
    ks = m["key_sharing_t0"]
    ax.plot(bits_axis, [ks[str(b)]["measured"] for b in bits_axis], "o-", color="k",
            label="measured (SimHash of Gaussian x)")  # fmt: skip
    ax.plot(bits_axis, [ks[str(b)]["uniform_theory"] for b in bits_axis], "k--", lw=1,
            label="uniform codes: 1-(1-2^-b)^(n-1)")  # fmt: skip
    ax.set(xlabel="key bits b", ylabel=f"share of the {hp['n_items']} items sharing their key",
           title="(f) cost of short keys at t = 0: distinct items share a key", xticks=bits_axis)  # fmt: skip


def drift_figure(m: Mapping[str, Any]):
    """The six panels of exp06 from its ``metrics.json``: (a) recall and (b) fidelity over
    time for the main bit width, (c) the key-bit flip rate, (d) keys unchanged, (e) recall at
    the last step against the key length, (f) key sharing at t = 0; measured with theory."""
    import matplotlib.pyplot as plt

    hp = m["hyperparameters"]
    sigma_color, bits_style, bits_marker = _styles(hp)
    fig, axes = plt.subplots(2, 3, figsize=(18, 10))
    _time_panels(axes, m, sigma_color)
    _key_panels(axes, m, sigma_color, bits_style, bits_marker)
    _bits_panels(axes, m, sigma_color)
    for ax in [axes[0, 2], *axes[1]]:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, ncol=2 if ax is axes[1, 0] else 1)
    fig.suptitle(f"Key drift: D = {hp['D']:,}, d = {hp['d']}, K = {hp['K']}, H = {hp['H']}, "
                 f"C = {hp['n_values']}, n = {hp['n_items']} tracked items, "
                 f"{hp['fill_per_step']:,} new items per step")  # fmt: skip
    fig.tight_layout()
    return fig


def recall_rows(
    t: int,
    n_written: int,
    memories: Mapping[int, Any],
    recall: Any,
    projection_keys: Mapping[int, Any],
    x0: torch.Tensor,
    x_t: Mapping[float, torch.Tensor],
) -> list[dict]:
    """Stable and drifting recall at step ``t`` of every bit width's memory: ``recall(memory,
    keys)`` -> (success rate, mean cosine) read under the ``t = 0`` keys of ``x0`` (mode
    ``stable``) and under the keys of each drifted ``x_t[sigma]`` (mode ``drift``, with the
    share of key bits flipped, of keys unchanged and the mean angle between ``x_t`` and
    ``x0``)."""
    out = []
    for b, memory in memories.items():
        pk = projection_keys[b]
        keys0, bits0 = pk(x0), pk.bits(x0)
        success, cos = recall(memory, keys0)
        out.append({"t": t, "bits": b, "mode": "stable", "sigma": 0.0, "n_written": n_written,
                    "success": success, "mean_cos": cos, "bit_flip_rate": 0.0, "key_unchanged": 1.0})  # fmt: skip
        for sigma, x in x_t.items():
            keys_t = pk(x)
            success, cos = recall(memory, keys_t)
            cos_x = torch.nn.functional.cosine_similarity(x, x0, dim=1).clamp(-1, 1)
            out.append({"t": t, "bits": b, "mode": "drift", "sigma": sigma, "n_written": n_written,
                        "success": success, "mean_cos": cos,
                        "bit_flip_rate": float((pk.bits(x) != bits0).double().mean()),
                        "key_unchanged": float((keys_t == keys0).double().mean()),
                        "mean_angle": float(torch.arccos(cos_x).mean())})  # fmt: skip
    return out


def drift_angles(sigmas, steps) -> dict[float, list[float]]:
    """``theta_t = arctan(sigma sqrt(t))``: the expected angle between ``x_t`` and ``x_0`` after
    ``t`` steps of Gaussian drift of scale ``sigma`` (per coordinate, relative to ``|x_0|``)."""
    return {sigma: [math.atan(sigma * math.sqrt(t)) for t in steps] for sigma in sigmas}


def _series(rows, mode: str, bits: int, sigma: float, field: str) -> list[float]:
    return [r[field] for r in rows if (r["mode"], r["bits"], r["sigma"]) == (mode, bits, sigma)]


DRIFT_FIELDS = ("success", "mean_cos", "bit_flip_rate", "key_unchanged", "mean_angle")


def drift_curves(rows, bits_values, angles: Mapping[float, list[float]], n_values: int) -> dict:
    """Per bit width b: the stable recall and mean cosine over time and, per sigma, the
    drifting series of ``rows`` with the theory: ``P(key unchanged) = (1 - theta/pi)^b`` and
    the predicted recall ``P * stable + (1 - P) / n_values`` (a changed key reads noise)."""
    curves = {}
    for b in bits_values:
        stable = _series(rows, "stable", b, 0.0, "success")
        drift = {}
        for sigma, theta in angles.items():
            survive = [(1 - a / math.pi) ** b for a in theta]
            drift[str(sigma)] = {f: _series(rows, "drift", b, sigma, f) for f in DRIFT_FIELDS} | {
                "key_unchanged_theory": survive,
                "success_predicted": [
                    p * s + (1 - p) / n_values for p, s in zip(survive, stable, strict=True)
                ],
            }
        curves[b] = {
            "stable_success": stable,
            "stable_mean_cos": _series(rows, "stable", b, 0.0, "mean_cos"),
            "drift": drift,
        }
    return curves
