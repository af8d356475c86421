"""The sharded-memory benchmark (notebooks/bench04_sharded.py): one ``python -m
bbpm.distributed.bench`` subprocess per world size, the per-world summary of its ranks' timings
and byte counts, the cluster projection of :mod:`bbpm.distributed.cost_model`, and the
chapter's figures, tables and sentences drawn from ``metrics.json``.

A per-world entry is ``{world_size, oversubscribed, launch_seconds, read_cosine_mean,
write: {...}, read: {...}[, plain_write_items_per_s, plain_read_items_per_s]}`` with, per
op, ``items, seconds, items_per_s, remote_pair_share, counted_payload_bytes_per_item,
counted_header_bytes_per_item, syscall_bytes_per_item, model_payload_bytes_per_item,
model_payload_bytes_per_item_at_measured_share, model_header_bytes_per_item``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bbpm.distributed import cost_model

OPS = ("write", "read")
_TIMED = ("write_seconds", "read_seconds", "write_syscall_bytes", "read_syscall_bytes")


def run_world(W: int, config: Mapping[str, Any], out_file: Path, cwd: Path) -> dict:
    """Run ``python -m bbpm.distributed.bench`` with ``W`` gloo ranks and ``config``; its
    JSON output. ``RuntimeError`` with the end of its stderr when it fails."""
    command = [sys.executable, "-m", "bbpm.distributed.bench", "--world-size", str(W)]
    command += ["--config", json.dumps(dict(config)), "--out", str(out_file)]
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"bench with W={W} failed:\n{completed.stderr[-4000:]}")
    return json.loads(Path(out_file).read_text())


def _op_summary(op: str, ranks: list[dict], W: int, d: int, H: int, batch: int) -> dict:
    total = {k: sum(r["traffic"][op][k] for r in ranks) for k in ranks[0]["traffic"][op]}
    keys_total = total["keys"]
    seconds = min(  # best repeat of the slowest rank
        max(per_repeat) for per_repeat in zip(*(r[f"{op}_seconds"] for r in ranks), strict=True)
    )
    remote_share = total["pairs_remote"] / total["pairs"]
    syscall = [r[f"{op}_syscall_bytes"][-1] for r in ranks]  # last repeat (the bytes repeat)
    return {
        "items": keys_total,
        "seconds": seconds,
        "items_per_s": keys_total / seconds,
        "remote_pair_share": remote_share,
        "counted_payload_bytes_per_item": total["payload_bytes_remote"] / keys_total,
        "counted_header_bytes_per_item": total["header_bytes_remote"] / keys_total,
        "syscall_bytes_per_item": None if None in syscall else sum(syscall) / keys_total,
        "model_payload_bytes_per_item": cost_model.payload_bytes_per_item(op, d, H, W),
        "model_payload_bytes_per_item_at_measured_share": cost_model.payload_bytes_per_item(
            op, d, H, W, fraction_remote=remote_share
        ),
        "model_header_bytes_per_item": cost_model.header_bytes_per_call(W) / batch,
    }


def summarize_world(W: int, run: dict, d: int, H: int, batch: int, cpu_cores: int) -> dict:
    """The per-world entry of one run: throughput over all ranks' keys (the slowest rank's
    time, best repeat), bytes per item counted, seen by the kernel and modelled, the read-back
    cosine, and at W = 1 the plain ``BBPMMemoryFloat`` speeds."""
    ranks = run["ranks"]
    entry = {"world_size": W, "oversubscribed": W > cpu_cores}
    entry["launch_seconds"] = run["launch_seconds"]
    for op in OPS:
        entry[op] = _op_summary(op, ranks, W, d, H, batch)
    entry["read_cosine_mean"] = float(np.mean([r["read_cosine_last_batch"] for r in ranks]))
    if W == 1:
        keys_1 = entry["write"]["items"]
        entry["plain_write_items_per_s"] = keys_1 / min(ranks[0]["plain_write_seconds"])
        entry["plain_read_items_per_s"] = keys_1 / min(ranks[0]["plain_read_seconds"])
    return entry


def rank_rows(W: int, run: dict, repeats: int) -> list[dict]:
    """One raw row per (rank, repeat): times, syscall bytes and the rank's traffic counters."""
    return [
        {
            "world_size": W,
            "rank": r["rank"],
            "repeat": repeat,
            **{k: r[k][repeat] for k in _TIMED},
            **{f"{op}_{k}": v for op in OPS for k, v in r["traffic"][op].items()},
        }
        for r in run["ranks"]
        for repeat in range(repeats)
    ]


def traffic_table(per_world: Sequence[dict]) -> tuple[list[str], list[list]]:
    """Throughput and bytes per item (counted, model, syscall) per world size and op. Asserts
    that the counted bytes are exactly the model at the measured remote share (each remote
    pair is one row)."""
    rows = []
    for entry in per_world:
        for op in OPS:
            e = entry[op]
            exact = e["model_payload_bytes_per_item_at_measured_share"]
            assert abs(e["counted_payload_bytes_per_item"] - exact) < 1e-9 * max(1, exact)
            syscall = e["syscall_bytes_per_item"]
            rows.append([entry["world_size"], op, f"{e['items_per_s']:,.0f}",
                         f"{e['counted_payload_bytes_per_item']:.1f}", f"{e['model_payload_bytes_per_item']:.1f}",
                         "n/a" if syscall is None else f"{syscall:.1f}"])  # fmt: skip
    return ["W", "op", "items/s", "counted B/item", "model B/item", "syscall B/item"], rows


def project(
    per_world: Sequence[dict],
    d: int,
    H: int,
    batch: int,
    cluster_world_sizes: Sequence[int],
    link_gbit_per_s: Sequence[float],
    latency_us: float,
) -> tuple[dict | None, dict]:
    """The cluster projection from the W = 1 compute time per item (first entry; none when
    the first world size is not 1): per op, items/s per link speed and world size
    (``cost_model.project``), the compute-only and network-only bounds, and the per-rank
    speed at which moving the bytes takes as long as the compute. Returns
    (compute seconds per item, projection)."""
    if per_world[0]["world_size"] != 1:
        return None, {}
    compute = {op: 1 / per_world[0][op]["items_per_s"] for op in OPS}
    latency, projection = latency_us * 1e-6, {}
    for op in OPS:
        speeds = {f"{gbit:g}": gbit * 1e9 / 8 for gbit in link_gbit_per_s}
        projection[op] = {
            link: [cost_model.project(op, d, H, W, batch, bps, latency, compute[op])
                   for W in cluster_world_sizes]
            for link, bps in speeds.items()
        }  # fmt: skip
        projection[op]["compute_bound_items_per_s"] = [W / compute[op] for W in cluster_world_sizes]
        projection[op]["network_bound_items_per_s"] = {
            link: [cost_model.project(op, d, H, W, batch, bps, latency, 0.0)["items_per_s"]
                   for W in cluster_world_sizes]
            for link, bps in speeds.items()
        }  # fmt: skip
        # W -> infinity, no latency: all pairs remote
        pair = cost_model.payload_bytes_per_item(op, d, H, 2, fraction_remote=1.0)
        projection[op]["break_even_items_per_s_per_rank"] = {
            link: bps / pair for link, bps in speeds.items()
        }
    return compute, projection


def _throughput_panel(ax, m: dict, Ws: list[int], hp: dict) -> None:
    for op, color in (("write", "C0"), ("read", "C1")):
        ax.plot(Ws, [e[op]["items_per_s"] for e in m["per_world"]], "o-", color=color,
                label=f"sharded {op} (measured)")  # fmt: skip
        if "plain_write_items_per_s" in m["per_world"][0]:
            ax.axhline(m["per_world"][0][f"plain_{op}_items_per_s"], color=color, ls=":",
                       label=f"BBPMMemoryFloat {op}, 1 process")  # fmt: skip
    if max(Ws) > m["cpu_cores"]:
        ax.axvspan(m["cpu_cores"] + 0.5, max(Ws) + 0.5, color="grey", alpha=0.2,
                   label=f"> {m['cpu_cores']} cores: oversubscribed")  # fmt: skip
    ax.set_xticks(Ws)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("world size W (gloo processes on one machine)")
    ax.set_ylabel("throughput, all ranks (items/s)")
    ax.set_title(
        f"Measured throughput (d={hp['d']}, K={hp['K']}, H={hp['H']}, {hp['batch']} keys/rank/call)",
        fontsize=10,
    )


def _bytes_panel(ax, m: dict, Ws: list[int], hp: dict) -> None:
    W_line = np.linspace(1, max(Ws), 100)
    pair = {op: cost_model.pair_bytes(op, hp["d"]) for op in OPS}
    same = (
        " = ".join(f"{op} {pair[op]} B" for op in pair) if pair["write"] == pair["read"] else None
    )
    for op, color, marker in (("write", "C0", "o"), ("read", "C1", "s")):
        if same is None or op == "write":
            label = (
                f"model H(W-1)/W x ({same} per pair)"
                if same
                else f"{op}: model H(W-1)/W x {pair[op]} B"
            )
            ax.plot(W_line, hp["H"] * (W_line - 1) / W_line * pair[op], "-",
                    color="grey" if same else color, label=label)  # fmt: skip
        ax.plot(Ws, [e[op]["counted_payload_bytes_per_item"] for e in m["per_world"]], marker,
                color=color, ms=5, ls="none", label=f"{op}: counted payload")  # fmt: skip
        syscall = [e[op]["syscall_bytes_per_item"] for e in m["per_world"]]
        if None not in syscall:
            ax.plot(Ws, syscall, marker, mfc="none", ms=11, color=color, ls="none",
                    label=f"{op}: syscall bytes (with framing)")  # fmt: skip
    ax.set_xticks(Ws)
    ax.set_xlabel("world size W")
    ax.set_ylabel("bytes sent to other ranks per item (B)")
    ax.set_title("Bytes moved per item: model vs measured", fontsize=10)


def _deviation_panel(ax, m: dict) -> None:
    remote_Ws = [e["world_size"] for e in m["per_world"] if e["world_size"] > 1]
    for op, color, marker in (("write", "C0", "o"), ("read", "C1", "s")):
        entries = [e[op] for e in m["per_world"] if e["world_size"] > 1]
        counted = [x["counted_payload_bytes_per_item"] for x in entries]
        at_share = [x["model_payload_bytes_per_item_at_measured_share"] for x in entries]
        expected = [x["model_payload_bytes_per_item"] for x in entries]
        deviation = lambda xs, ys: [100 * (x / y - 1) for x, y in zip(xs, ys, strict=True)]  # noqa: E731
        ax.plot(remote_Ws, deviation(counted, expected), marker + "-", color=color, ms=5,
                label=f"{op}: counted vs model at (W-1)/W")  # fmt: skip
        ax.plot(remote_Ws, deviation(counted, at_share), marker, mfc="none", ms=11, color=color,
                ls="none", label=f"{op}: counted vs model at measured share")  # fmt: skip
        syscall = [x["syscall_bytes_per_item"] for x in entries]
        if None not in syscall:
            ax.plot(remote_Ws, deviation(syscall, at_share), marker + ":", color=color,
                    alpha=0.6, label=f"{op}: syscall vs model at measured share")  # fmt: skip
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(remote_Ws)
    ax.set_xlabel("world size W")
    ax.set_ylabel("measured / model - 1 (%)")
    ax.set_title("Deviation from the byte model", fontsize=10)


def plot_throughput_and_bytes(m: dict):
    """Measured throughput (oversubscribed world sizes shaded), bytes per item against the
    model, and the measured bytes' deviation from the model, from ``metrics.json``."""
    import matplotlib.pyplot as plt

    hp, Ws = m["hyperparameters"], [e["world_size"] for e in m["per_world"]]
    fig, (ax_tp, ax_bytes, ax_dev) = plt.subplots(1, 3, figsize=(17, 4.8))
    _throughput_panel(ax_tp, m, Ws, hp)
    _bytes_panel(ax_bytes, m, Ws, hp)
    _deviation_panel(ax_dev, m)
    for ax in (ax_tp, ax_bytes, ax_dev):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
    return fig


def plot_projection(m: dict):
    """Projected aggregate items/s per link speed (model and network-only bound) with the
    compute-only ceiling, write and read side by side."""
    import matplotlib.pyplot as plt

    hp, Ws = m["hyperparameters"], m["hyperparameters"]["cluster_world_sizes"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, op in zip(axes, OPS, strict=True):
        proj = m["projection"][op]
        for i, gbit in enumerate(hp["link_gbit_per_s"]):
            color = f"C{i + 2}"
            ax.plot(Ws, [p["items_per_s"] for p in proj[f"{gbit:g}"]], "os^"[i % 3] + "-",
                    ms=9 - 2 * i, color=color, label=f"{gbit:g} Gbit/s links: model")  # fmt: skip
            ax.plot(Ws, proj["network_bound_items_per_s"][f"{gbit:g}"], "--", color=color,
                    alpha=0.7, label=f"{gbit:g} Gbit/s: network only")  # fmt: skip
        ax.plot(Ws, proj["compute_bound_items_per_s"], "k:",
                label="compute only (W x measured 1-rank speed)")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("world size W (ranks)")
        ax.set_title(
            f"{op}: PROJECTED, latency {hp['latency_us']:g} µs/peer, {hp['batch']} keys/rank/call",
            fontsize=10,
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("throughput, all ranks (items/s)")
    return fig


def bytes_table(per_world: Sequence[dict]) -> tuple[list[str], list[list]]:
    """For W > 1: counted bytes, the model at the expected and the measured remote share, the
    measured share, header bytes and syscall bytes (with their excess over counted)."""
    rows = []
    for e in per_world[1:]:
        for op in OPS:
            x = e[op]
            counted = x["counted_payload_bytes_per_item"] + x["counted_header_bytes_per_item"]
            syscall = x["syscall_bytes_per_item"]
            rows.append([e["world_size"], op, f"{x['counted_payload_bytes_per_item']:.2f}",
                         f"{x['model_payload_bytes_per_item']:.2f}",
                         f"{x['model_payload_bytes_per_item_at_measured_share']:.2f}",
                         f"{x['remote_pair_share']:.4f}", f"{x['counted_header_bytes_per_item']:.3f}",
                         "n/a" if syscall is None else f"{syscall:.2f} ({syscall / counted - 1:+.2%})"])  # fmt: skip
    header = ["W", "op", "counted B/item", "model, share (W-1)/W", "model, measured share",
              "measured share", "header B/item", "syscall B/item (framing, barriers)"]  # fmt: skip
    return header, rows


def projection_table(m: dict) -> tuple[list[str], list[list]]:
    """The projected time per call split into transfer, latency and compute."""
    hp = m["hyperparameters"]
    header = ["op", "link (Gbit/s)", "W", "items/s", "transfer", "latency", "compute"]
    return header, [
        [op, f"{gbit:g}", W, f"{p['items_per_s']:.3g}"]
        + [f"{p[k] / p['seconds_per_call']:.0%}" for k in ("network_seconds", "latency_seconds", "compute_seconds")]
        for op in OPS for gbit in hp["link_gbit_per_s"]
        for W, p in zip(hp["cluster_world_sizes"], m["projection"][op][f"{gbit:g}"], strict=True)
    ]  # fmt: skip


def _largest(m: dict, op: str) -> dict[int, list[tuple]]:
    """Per cluster world size: (link speed, largest term, its share of the time per call)."""
    hp, largest = m["hyperparameters"], {}
    for gbit in hp["link_gbit_per_s"]:
        for W, p in zip(hp["cluster_world_sizes"], m["projection"][op][f"{gbit:g}"], strict=True):
            terms = {
                "transfer": p["network_seconds"],
                "latency": p["latency_seconds"],
                "compute": p["compute_seconds"],
            }
            term = max(terms, key=terms.get)
            largest.setdefault(W, []).append((gbit, term, terms[term] / p["seconds_per_call"]))
    return largest


def largest_terms(m: dict, op: str) -> str:
    """Per cluster world size, the largest of the three terms of the projected time per call."""
    hp, largest, parts = m["hyperparameters"], _largest(m, op), []
    for W, cases in largest.items():
        names_W, shares_W = {term for _, term, _ in cases}, [share for _, _, share in cases]
        if len(names_W) == 1:
            lo, hi = f"{min(shares_W):.0%}", f"{max(shares_W):.0%}"
            parts.append(
                f"W={W}: {names_W.pop()} ({lo if lo == hi else f'{lo}-{hi}'} of the time at every link speed)"
            )
        else:
            parts.append(
                f"W={W}: " + ", ".join(f"{t} at {g:g} Gbit/s ({sh:.0%})" for g, t, sh in cases)
            )
    notes = []
    latency_Ws = [W for W, cases in largest.items() if any(t == "latency" for _, t, _ in cases)]
    transfer_Ws = [W for W, cases in largest.items() if any(t == "transfer" for _, t, _ in cases)]
    if latency_Ws:
        notes.append(
            f"Where latency is largest (W = {', '.join(map(str, latency_Ws))}), a call waits longer on the "
            f"{cost_model.COLLECTIVES_PER_CALL[op]} collectives x (W-1) per-peer latencies "
            f"({hp['latency_us']:g} us each, independent of the link speed) than it computes its "
            f"{hp['batch']} keys per rank; in the model more keys per call amortise it"
        )
    if transfer_Ws:
        notes.append(
            f"the links themselves are the bottleneck at W = {', '.join(map(str, transfer_Ws))}"
        )
    return (f"{op}: largest term of the time per call, " + "; ".join(parts) + (". " + "; ".join(notes) if notes else "")
            + ". Ranks that compute faster (e.g. GPUs, not measured here) shift the time further to latency and transfer.")  # fmt: skip


def projection_sentences(m: dict) -> str:
    """What the projection says, per op: the break-even per-rank speed at each link speed
    against one rank's measured speed, and the largest term of the time per call."""
    projected = []
    for op in OPS if m["projection"] else ():
        break_even = m["projection"][op]["break_even_items_per_s_per_rank"]
        one_rank = 1 / m["compute_seconds_per_item_W1"][op]
        slower_links = [gbit for gbit, v in break_even.items() if v < one_rank]
        verdict = ("stays below compute at every link speed above" if not slower_links
                   else f"exceeds compute on {', '.join(slower_links)} Gbit/s links")  # fmt: skip
        projected.append(
            f"{op}: transfer time equals compute time once a rank handles (items/s) "
            + ", ".join(f"{gbit} Gbit/s: {v:.3g}" for gbit, v in break_even.items())
            + f"; one rank here handles {one_rank:,.0f} items/s, so for ranks as fast as this one "
            f"transfer alone {verdict}."
        )
        projected.append(largest_terms(m, op))
    return " ".join(projected) or "No projection: the run has no one-process measurement (W = 1)."


def routing_sentence(first: dict) -> str:
    """The sharded memory against the plain one in one process (the routing overhead)."""
    if "plain_write_items_per_s" not in first:
        return "The run has no one-process baseline (the first world size is not 1)."
    return (
        f"One process: sharded write {first['write']['items_per_s']:,.0f} vs BBPMMemoryFloat "
        f"{first['plain_write_items_per_s']:,.0f} items/s; read {first['read']['items_per_s']:,.0f} vs "
        f"{first['plain_read_items_per_s']:,.0f} items/s (the difference is the routing overhead)."
    )


def and_list(values: Sequence[Any]) -> str:
    """``[1, 2, 4]`` as ``"1, 2 and 4"`` (``"1"`` for one value, ``"none"`` for none): a
    parameter list written into prose."""
    words = [str(v) for v in values]
    if not words:
        return "none"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
