# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # bench04: Sharded BBPM
#
# **Claim.** Block hashing turns sharding into routing. With `BlockPermutationHash` the $K$
# slots of one (key, hash) pair lie in one block of $L$ slots, so one rank owns all of them.
# `bbpm.distributed.ShardedBBPMMemory` gives every rank a share of the blocks and sends each
# pair to its owner with `torch.distributed.all_to_all_single` (gloo on CPU, NCCL on GPUs).
# It reads what the single-process `BBPMMemoryFloat` reads: bitwise for $H = 1$, within
# float rounding ($\le 10^{-6}$) for $H > 1$, where the mean over $KH$ slots is taken as a
# mean of $H$ per-hash means (`tests/test_distributed.py` checks both, with 2 and 4 ranks).
#
# Its network cost is predictable. A pair is remote with probability $(W-1)/W$ for $W$
# equal shards, and on the wire it is a key (8 bytes), a hash id (1 byte) and, for a write,
# its value ($4d$ bytes in float32); a read answers with $4d$ bytes. So
#
# $$\text{write bytes/item} = H\,\tfrac{W-1}{W}\,(9 + 4d), \qquad
#   \text{read bytes/item} = H\,\tfrac{W-1}{W}\,(9 + 4d),$$
#
# plus a header of $24(W-1)$ bytes per rank per call (pair counts, error flag, operation).
#
# **What is measured and what is projected.** Measured here: throughput (items/s) and the
# bytes moved per item with 1, 2 and 4 gloo processes on *this* machine, both as counted by
# the memory (the bytes handed to the collectives) and as seen by the kernel (bytes passed to
# `write`-type system calls, `wchar` in `/proc/self/io`, which includes gloo's framing).
# Projected, from the cost model: throughput on clusters of 8 to 512 ranks at given link
# speeds. This machine has few CPU cores shared with other jobs, so throughput with more
# processes than cores is **oversubscribed and not a scaling measurement**; the byte counts do
# not depend on the machine.

# %% tags=["parameters"]
seed = 0
D = 262144
block_size = 4096
d = 64
K = 32
H = 2
batch = 2048
n_batches = 20
repeats = 3
world_sizes = [1, 2, 4]
cluster_world_sizes = [8, 64, 512]
link_gbit_per_s = [10, 100, 400]
latency_us = 10.0

# %% tags=["hide-input"]
import json
import os
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import torch
from myst_nb import glue

from bbpm import BlockPermutationHash
from bbpm.distributed import BlockAssignment, cost_model
from bbpm.distributed.bench import rank_batches
from bbpm.hashing import diagnostics
from bbpm.utils import Experiment, progress, show_table

exp = Experiment.from_notebook("bench04_sharded", "notebooks/bench04_sharded.py", globals())
bench_keys = ("D", "d", "K", "H", "block_size", "batch", "n_batches", "seed", "repeats")
bench_config = {k: exp.params[k] for k in bench_keys}
cpu_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
glue("cpu_cores", str(cpu_cores), display=False)

# %% [markdown]
# ## Running the ranks
#
# Each world size is one `python -m bbpm.distributed.bench` subprocess, which spawns $W$ gloo
# processes (`bbpm.distributed.spawn_local`, one thread each). Every rank writes
# `n_batches` batches of `batch` random keys with unit-norm values (all ranks at once, a
# collective call per batch), then reads the same keys back; both loops are timed between
# barriers, and the whole measurement is repeated `repeats` times on a cleared table (the
# best repeat is reported: the machine is shared, and slower repeats measure other jobs). The table is the same for every $W$ ($D$ slots in total, $D/W$ per rank), so more
# ranks also means more items in it.

# %%
runs = {}
for W in progress(world_sizes):
    out_file = exp.results_dir / f"ranks_W{W}.json"
    command = [
        sys.executable,
        "-m",
        "bbpm.distributed.bench",
        "--world-size",
        str(W),
        "--config",
        json.dumps(bench_config),
        "--out",
        str(out_file),
    ]
    completed = subprocess.run(command, cwd=exp.root, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"bench with W={W} failed:\n{completed.stderr[-4000:]}")
    runs[W] = json.loads(out_file.read_text())

# %% [markdown]
# ## Throughput and bytes per item
#
# Throughput counts all ranks' keys over the slowest rank's time (best repeat). Bytes per item are summed
# over ranks and divided by all keys: *counted* = payload bytes the ranks handed to the
# collectives for other ranks (the part a rank sends itself is a local copy), *syscall* =
# everything the processes wrote to their sockets in the timed loops (payload, headers,
# barriers and gloo's framing). The model is evaluated twice: with the expected remote share
# $(W-1)/W$, and with the share of pairs that really went to another rank in this run.

# %%
value_bytes = 4  # float32 values and answers
rows, per_world = [], []
for W, run in runs.items():
    ranks = run["ranks"]
    total = {
        op: {k: sum(r["traffic"][op][k] for r in ranks) for k in ranks[0]["traffic"][op]}
        for op in ("write", "read")
    }
    entry = {
        "world_size": W,
        "oversubscribed": W > cpu_cores,
        "launch_seconds": run["launch_seconds"],
    }
    for op in ("write", "read"):
        keys_total = total[op]["keys"]
        seconds = min(
            max(per_repeat) for per_repeat in zip(*(r[f"{op}_seconds"] for r in ranks), strict=True)
        )
        remote_share = total[op]["pairs_remote"] / total[op]["pairs"]
        syscall = [r[f"{op}_syscall_bytes"][-1] for r in ranks]  # last repeat (the bytes repeat)
        entry[op] = {
            "items": keys_total,
            "seconds": seconds,
            "items_per_s": keys_total / seconds,
            "remote_pair_share": remote_share,
            "counted_payload_bytes_per_item": total[op]["payload_bytes_remote"] / keys_total,
            "counted_header_bytes_per_item": total[op]["header_bytes_remote"] / keys_total,
            "syscall_bytes_per_item": None if None in syscall else sum(syscall) / keys_total,
            "model_payload_bytes_per_item": cost_model.payload_bytes_per_item(op, d, H, W),
            "model_payload_bytes_per_item_at_measured_share": cost_model.payload_bytes_per_item(
                op, d, H, W, fraction_remote=remote_share
            ),
            "model_header_bytes_per_item": cost_model.header_bytes_per_call(W) / batch,
        }
    entry["read_cosine_mean"] = float(np.mean([r["read_cosine_last_batch"] for r in ranks]))
    if W == 1:
        keys_1 = entry["write"]["items"]
        entry["plain_write_items_per_s"] = keys_1 / min(ranks[0]["plain_write_seconds"])
        entry["plain_read_items_per_s"] = keys_1 / min(ranks[0]["plain_read_seconds"])
    per_world.append(entry)
    for r in ranks:
        for repeat in range(repeats):
            rows.append(
                {
                    "world_size": W,
                    "rank": r["rank"],
                    "repeat": repeat,
                    **{
                        k: r[k][repeat]
                        for k in (
                            "write_seconds",
                            "read_seconds",
                            "write_syscall_bytes",
                            "read_syscall_bytes",
                        )
                    },
                    **{
                        f"{op}_{k}": v
                        for op in ("write", "read")
                        for k, v in r["traffic"][op].items()
                    },
                }
            )

traffic_table = []
for entry in per_world:
    for op in ("write", "read"):
        e = entry[op]
        # Counted bytes are exactly the model at the measured remote share: each remote pair is one row.
        exact = e["model_payload_bytes_per_item_at_measured_share"]
        assert abs(e["counted_payload_bytes_per_item"] - exact) < 1e-9 * max(1, exact)
        syscall = e["syscall_bytes_per_item"]
        traffic_table.append([entry["world_size"], op, f"{e['items_per_s']:,.0f}",
                              f"{e['counted_payload_bytes_per_item']:.1f}", f"{e['model_payload_bytes_per_item']:.1f}",
                              "n/a" if syscall is None else f"{syscall:.1f}"])  # fmt: skip
show_table(
    ["W", "op", "items/s", "counted B/item", "model B/item", "syscall B/item"], traffic_table
)

# %% [markdown]
# ## Load balance and collisions
#
# The byte model assumes every rank owns the same share of the pairs. Here is the share each
# rank owns among all keys of the largest run, and the collision diagnostics of one rank's
# first batch (`bbpm.hashing.diagnostics.summarize`).

# %%
hash_fn = BlockPermutationHash(D, block_size, seed=seed)
W_max = max(world_sizes)
all_keys = torch.cat([torch.cat(rank_batches(bench_config, rank)[0]) for rank in range(W_max)])
owners = BlockAssignment(D // block_size, W_max).owner(
    hash_fn.indices(all_keys, 1, H) // block_size
)
owner_share = (
    torch.bincount(owners.reshape(-1), minlength=W_max).double() / owners.numel()
).tolist()
first_batch = rank_batches(bench_config, 0)[0][0]
collision_stats = diagnostics.summarize(hash_fn.indices(first_batch, K, H), D)
show_table(
    [f"rank {r}" for r in range(W_max)] + ["ideal"],
    [[f"{v:.4f}" for v in owner_share] + [f"{1 / W_max:.4f}"]],
)

# %% [markdown]
# ## Projection to a cluster (a model, not a measurement)
#
# `bbpm.distributed.cost_model.project` assumes: each rank has its own full-duplex link of the
# given speed into a non-blocking network; an all-to-all costs `latency_us` per peer
# ($W-1$ peers, 2 collectives per write, 3 per read); compute and communication do not
# overlap; each rank's compute per item is what one process measured here alone ($W = 1$,
# hashing, routing and the kernels). Every remote pair is counted as crossing the network,
# even between ranks of the same node. The figure also draws the two bounds of the model:
# compute only (no network) and network only (latency and transfer, no compute).

# %%
compute_s_per_item = (
    {op: 1 / per_world[0][op]["items_per_s"] for op in ("write", "read")}
    if world_sizes[0] == 1
    else None
)
projection = {}
if compute_s_per_item is not None:
    for op in ("write", "read"):
        projection[op] = {
            f"{gbit:g}": [
                cost_model.project(
                    op, d, H, W, batch, gbit * 1e9 / 8, latency_us * 1e-6, compute_s_per_item[op]
                )
                for W in cluster_world_sizes
            ]
            for gbit in link_gbit_per_s
        }
        projection[op]["compute_bound_items_per_s"] = [
            W / compute_s_per_item[op] for W in cluster_world_sizes
        ]
        projection[op]["network_bound_items_per_s"] = {
            f"{gbit:g}": [
                cost_model.project(op, d, H, W, batch, gbit * 1e9 / 8, latency_us * 1e-6, 0.0)[
                    "items_per_s"
                ]
                for W in cluster_world_sizes
            ]
            for gbit in link_gbit_per_s
        }
        # per-rank speed at which moving the bytes takes as long as the compute (W -> infinity, no latency)
        projection[op]["break_even_items_per_s_per_rank"] = {
            f"{gbit:g}": gbit
            * 1e9
            / 8
            / cost_model.payload_bytes_per_item(op, d, H, 2, fraction_remote=1.0)
            for gbit in link_gbit_per_s
        }

raw_csv = exp.save_raw(rows)
metrics_json = exp.save_metrics(
    {
        "cpu_cores": cpu_cores,
        "per_world": per_world,
        "owner_share_at_max_world": owner_share,
        "collision_diagnostics_first_batch": collision_stats,
        "compute_seconds_per_item_W1": compute_s_per_item,
        "projection": projection,
    }
)

# %% [markdown]
# ## Figures
#
# Drawn from `results/bench04_sharded/metrics.json`. Left: measured throughput; the grey
# band marks world sizes with more processes than this machine has cores. Middle: bytes per
# item, the model line beside the counted and syscall measurements. Right: how far the
# measurements are from the model: counted bytes differ from the expected-share model only by
# the random share of remote pairs in this run, and not at all from the model evaluated at
# the measured share; syscall bytes add gloo's framing, headers and barriers.

# %% tags=["hide-input"]
m = exp.load_metrics()
hp = m["hyperparameters"]
Ws = [e["world_size"] for e in m["per_world"]]
fig, (ax_tp, ax_bytes, ax_dev) = plt.subplots(1, 3, figsize=(17, 4.8))
for op, color in (("write", "C0"), ("read", "C1")):
    ax_tp.plot(
        Ws,
        [e[op]["items_per_s"] for e in m["per_world"]],
        "o-",
        color=color,
        label=f"sharded {op} (measured)",
    )
    if "plain_write_items_per_s" in m["per_world"][0]:
        ax_tp.axhline(
            m["per_world"][0][f"plain_{op}_items_per_s"],
            color=color,
            ls=":",
            label=f"BBPMMemoryFloat {op}, 1 process",
        )
if max(Ws) > m["cpu_cores"]:
    ax_tp.axvspan(
        m["cpu_cores"] + 0.5,
        max(Ws) + 0.5,
        color="grey",
        alpha=0.2,
        label=f"> {m['cpu_cores']} cores: oversubscribed",
    )
ax_tp.set_xticks(Ws)
ax_tp.set_ylim(bottom=0)
ax_tp.set_xlabel("world size W (gloo processes on one machine)")
ax_tp.set_ylabel("throughput, all ranks (items/s)")
ax_tp.set_title(
    f"Measured throughput (d={hp['d']}, K={hp['K']}, H={hp['H']}, {hp['batch']} keys/rank/call)",
    fontsize=10,
)
ax_tp.grid(alpha=0.3)
ax_tp.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)

W_line = np.linspace(1, max(Ws), 100)
pair = {op: cost_model.pair_bytes(op, hp["d"]) for op in ("write", "read")}
model_label = (
    " = ".join(f"{op} {pair[op]} B" for op in pair) if pair["write"] == pair["read"] else None
)
for op, color, marker in (("write", "C0", "o"), ("read", "C1", "s")):
    if model_label is None or op == "write":
        label = (
            f"model H(W-1)/W x ({model_label} per pair)"
            if model_label
            else f"{op}: model H(W-1)/W x {pair[op]} B"
        )
        ax_bytes.plot(
            W_line,
            hp["H"] * (W_line - 1) / W_line * pair[op],
            "-",
            color="grey" if model_label else color,
            label=label,
        )
    ax_bytes.plot(
        Ws,
        [e[op]["counted_payload_bytes_per_item"] for e in m["per_world"]],
        marker,
        color=color,
        ms=5,
        ls="none",
        label=f"{op}: counted payload",
    )
    syscall = [e[op]["syscall_bytes_per_item"] for e in m["per_world"]]
    if None not in syscall:
        ax_bytes.plot(
            Ws,
            syscall,
            marker,
            mfc="none",
            ms=11,
            color=color,
            ls="none",
            label=f"{op}: syscall bytes (with framing)",
        )
ax_bytes.set_xticks(Ws)
ax_bytes.set_xlabel("world size W")
ax_bytes.set_ylabel("bytes sent to other ranks per item (B)")
ax_bytes.set_title("Bytes moved per item: model vs measured", fontsize=10)
ax_bytes.grid(alpha=0.3)
ax_bytes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)

remote_Ws = [e["world_size"] for e in m["per_world"] if e["world_size"] > 1]
for op, color, marker in (("write", "C0", "o"), ("read", "C1", "s")):
    entries = [e[op] for e in m["per_world"] if e["world_size"] > 1]
    expected = [x["model_payload_bytes_per_item"] for x in entries]
    ax_dev.plot(
        remote_Ws,
        [
            100 * (x["counted_payload_bytes_per_item"] / y - 1)
            for x, y in zip(entries, expected, strict=True)
        ],
        marker + "-",
        color=color,
        ms=5,
        label=f"{op}: counted vs model at (W-1)/W",
    )
    ax_dev.plot(
        remote_Ws,
        [
            100
            * (
                x["counted_payload_bytes_per_item"]
                / x["model_payload_bytes_per_item_at_measured_share"]
                - 1
            )
            for x in entries
        ],
        marker,
        mfc="none",
        ms=11,
        color=color,
        ls="none",
        label=f"{op}: counted vs model at measured share",
    )
    if all(x["syscall_bytes_per_item"] is not None for x in entries):
        ax_dev.plot(
            remote_Ws,
            [
                100
                * (
                    x["syscall_bytes_per_item"]
                    / x["model_payload_bytes_per_item_at_measured_share"]
                    - 1
                )
                for x in entries
            ],
            marker + ":",
            color=color,
            alpha=0.6,
            label=f"{op}: syscall vs model at measured share",
        )
ax_dev.axhline(0, color="black", lw=0.8)
ax_dev.set_xticks(remote_Ws)
ax_dev.set_xlabel("world size W")
ax_dev.set_ylabel("measured / model - 1 (%)")
ax_dev.set_title("Deviation from the byte model", fontsize=10)
ax_dev.grid(alpha=0.3)
ax_dev.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
throughput_png = exp.save_figure(fig, "throughput_and_bytes.png")

# %% [markdown]
# The projection: aggregate items/s a cluster would reach under the model's assumptions, per
# link speed, with the compute-only ceiling ($W$ times one rank's measured speed).

# %%
if m["projection"]:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, op in zip(axes, ("write", "read"), strict=True):
        proj = m["projection"][op]
        for i, gbit in enumerate(hp["link_gbit_per_s"]):
            color = f"C{i + 2}"
            ax.plot(
                hp["cluster_world_sizes"],
                [p["items_per_s"] for p in proj[f"{gbit:g}"]],
                "os^"[i % 3] + "-",
                ms=9 - 2 * i,
                color=color,
                label=f"{gbit:g} Gbit/s links: model",
            )
            ax.plot(
                hp["cluster_world_sizes"],
                proj["network_bound_items_per_s"][f"{gbit:g}"],
                "--",
                color=color,
                alpha=0.7,
                label=f"{gbit:g} Gbit/s: network only",
            )
        ax.plot(
            hp["cluster_world_sizes"],
            proj["compute_bound_items_per_s"],
            "k:",
            label="compute only (W x measured 1-rank speed)",
        )
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
    projection_png = exp.save_figure(fig, "cluster_projection.png")

# %% [markdown]
# ## What the run shows
#
# Measured on {glue:text}`cpu_cores` shared cores with gloo over loopback:

# %% tags=["hide-input"]
cores = m["cpu_cores"]
show_table(
    ["W", "write items/s", "read items/s", "read-back cosine", "note"],
    [[e["world_size"], f"{e['write']['items_per_s']:,.0f}", f"{e['read']['items_per_s']:,.0f}",
      f"{e['read_cosine_mean']:.4f}",
      "oversubscribed: more processes than cores, not a scaling measurement" if e["oversubscribed"] else ""]
     for e in m["per_world"]],
)  # fmt: skip
e1 = m["per_world"][0]
if "plain_write_items_per_s" in e1:
    routing = (
        f"One process: sharded write {e1['write']['items_per_s']:,.0f} vs BBPMMemoryFloat "
        f"{e1['plain_write_items_per_s']:,.0f} items/s; read {e1['read']['items_per_s']:,.0f} vs "
        f"{e1['plain_read_items_per_s']:,.0f} items/s (the difference is the routing overhead)."
    )
else:
    routing = "The run has no one-process baseline (the first world size is not 1)."
exp.record("routing_sentence", routing, "", "sharded vs plain memory in one process")
exp.record(
    "pair_share_min", min(m["owner_share_at_max_world"]), ".4f", "smallest pair share per rank"
)
exp.record(
    "pair_share_max", max(m["owner_share_at_max_world"]), ".4f", "largest pair share per rank"
)
exp.record("pair_share_ideal", 1 / max(Ws), ".4f", "ideal pair share per rank")
exp.record("w_max", max(Ws), "d", "largest world size run")  # fmt: skip

# %% [markdown]
# Bytes per item for $W > 1$: counted, the model at the expected remote share $(W-1)/W$ and at
# the measured share (an exact match), the header bytes, and what the sockets carried:

# %% tags=["hide-input"]
bytes_table = []
for e in m["per_world"][1:]:
    for op in ("write", "read"):
        x = e[op]
        counted = x["counted_payload_bytes_per_item"] + x["counted_header_bytes_per_item"]
        syscall = x["syscall_bytes_per_item"]
        bytes_table.append([e["world_size"], op, f"{x['counted_payload_bytes_per_item']:.2f}",
                            f"{x['model_payload_bytes_per_item']:.2f}",
                            f"{x['model_payload_bytes_per_item_at_measured_share']:.2f}",
                            f"{x['remote_pair_share']:.4f}", f"{x['counted_header_bytes_per_item']:.3f}",
                            "n/a" if syscall is None else f"{syscall:.2f} ({syscall / counted - 1:+.2%})"])  # fmt: skip
show_table(["W", "op", "counted B/item", "model, share (W-1)/W", "model, measured share",
            "measured share", "header B/item", "syscall B/item (framing, barriers)"], bytes_table)  # fmt: skip

# %% [markdown]
# {glue:text}`routing_sentence` At $W$ = {glue:text}`w_max` each rank owns between
# {glue:text}`pair_share_min` and {glue:text}`pair_share_max` of the pairs (ideal
# {glue:text}`pair_share_ideal`). The table is fixed, so a larger $W$ stores more items and
# the read-back cosine falls as the load grows.
#
# **Projected to a cluster (a model, not a measurement).** {glue:text}`projection_sentences`

# %% [markdown]
# The projected time per call splits into transfer, latency and compute:

# %% tags=["hide-input"]
if m["projection"]:
    show_table(
        ["op", "link (Gbit/s)", "W", "items/s", "transfer", "latency", "compute"],
        [[op, f"{gbit:g}", W, f"{p['items_per_s']:.3g}"]
         + [f"{p[k] / p['seconds_per_call']:.0%}" for k in ("network_seconds", "latency_seconds", "compute_seconds")]
         for op in ("write", "read") for gbit in hp["link_gbit_per_s"]
         for W, p in zip(hp["cluster_world_sizes"], m["projection"][op][f"{gbit:g}"], strict=True)],
    )  # fmt: skip


# %% tags=["hide-input"]
def largest_terms(op: str) -> str:
    """Per cluster world size, the largest of the three terms of the projected time per call."""
    largest = {}
    for gbit in hp["link_gbit_per_s"]:
        for W, p in zip(hp["cluster_world_sizes"], m["projection"][op][f"{gbit:g}"], strict=True):
            terms = {
                "transfer": p["network_seconds"],
                "latency": p["latency_seconds"],
                "compute": p["compute_seconds"],
            }
            term = max(terms, key=terms.get)
            largest.setdefault(W, []).append((gbit, term, terms[term] / p["seconds_per_call"]))
    parts = []
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


# %% tags=["hide-input"]
projected = []
for op in ("write", "read") if m["projection"] else ():
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
    projected.append(largest_terms(op))
no_projection = "No projection: the run has no one-process measurement (W = 1)."
exp.record(
    "projection_sentences",
    " ".join(projected) or no_projection,
    "",
    "the cluster projection (a model)",
)
