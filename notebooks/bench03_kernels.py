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
# # bench03: Fast kernels against the plain torch ops
#
# **Claim.** BBPM's read and write are memory-bound: a read gathers $B \cdot KH$ rows of $d$
# numbers and does two flops per number; a write adds one. Their speed is therefore set by
# how many bytes they move, and the fair yardstick is the machine's copy bandwidth, measured
# here in the same run (`bbpm.bench.copy_bandwidth`, as in bench01: buffers at least
# `bbpm.bench.COPY_CACHE_MULTIPLE` times the last-level cache, at each torch thread count the
# ops run with). We time every path `bbpm.memory.kernels` offers, and the library
# formulations of the write it does not use, against the plain torch definition on the same
# inputs, convert each time into an effective bandwidth (minimum bytes moved per second,
# `bbpm.bench.traffic_bytes`) and place them on a roofline: attained GFLOP/s against
# arithmetic intensity, under the measured copy-bandwidth slope and the measured matmul peak.
#
# | path | read | write |
# |---|---|---|
# | canonical (definition) | `memory[idx] / (counts[idx] + eps)`, mean over $KH$ | values repeated $KH$ times, `index_add_` |
# | torch fast path | `embedding_bag(..., per_sample_weights=1/((c+eps)KH))` | `index_add_` per slot column; for small batches several columns per call, so a call adds at least 8192 rows (default; also timed: 1 column or 32768 rows per call) |
# | other library writes (timed for comparison; `kernels.write` does not use them) | — | `scatter_add_` of the repeated values over the expanded slot ids; `index_put_(accumulate=True)` of the values broadcast over the $KH$ slots; `addmm_` with a sparse COO $[D, B]$ 0/1 matrix (built in every call); counts as in the torch fast path |
# | C kernel (CPU, `kernels.native`; the default CPU write) | — (no C read kernel: the gather and sum stay in `embedding_bag`; only the weights come from C, next row) | one pass over the slot ids with software prefetch; the slot range split across threads, so no two threads touch a row (no atomics; the same sums for any thread count) |
# | `kernels.read` (auto weights) | the same `embedding_bag`, its weights from one C pass on CPU (`native.slot_weights`: the same bits) | — |
# | fp16/bf16 storage | blocks of rows upcast to float32, `bmm` with the weights | as above, in the storage dtype |
# | Triton (CUDA only) | one program per (item, column block), float32 accumulator | `atomic_add` of the value row into each slot |
#
# Every read is compared with the canonical read of the same table, and every write with
# the canonical write: each write path runs once on the same zeroed rows of a check table and
# the rows and counts it leaves are compared.
#
# Every table is allocated as `BBPMMemoryFloat` allocates its own (`bbpm.utils.device.zeros_table`:
# transparent huge pages where Linux grants them); the paths marked "4 KiB pages" run on a
# second float32 table on ordinary pages, to show what the huge pages are worth.
#
# The last section checks that gradients flow through the fused read: training the table
# to fit targets moves exactly the rows the keys address (the prototype's `poc` experiment).

# %% tags=["parameters"]
seed = 0
D = 1000000
d = 64
K = 32
H = 1
B_values = [1024, 4096, 8192]
B_threads = 8192
threads_values = [1, 0]
repeats = 5
copy_mbytes = 256
matmul_n = 1024
grad_D = 4096
grad_d = 16
grad_K = 4
grad_N = 512
grad_steps = 200
grad_lr = 0.05
triton_compile_configs = [[16, 4], [32, 4], [32, 8]]

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from bbpm import GlobalAffineHash, gpu_bench
from bbpm import bench as bbpm_bench
from bbpm.hashing import diagnostics
from bbpm.memory import kernels
from bbpm.memory.base import EPS
from bbpm.memory.kernels import native, torch_ops, triton_ops
from bbpm.utils import Experiment, progress, show_table
from bbpm.utils.device import zeros_table

exp = Experiment.from_notebook("bench03_kernels", "notebooks/bench03_kernels.py", globals())
params = exp.params
default_threads = torch.get_num_threads()
has_cuda = torch.cuda.is_available()
print(
    f"torch {torch.__version__}, {default_threads} threads by default, CUDA: {has_cuda}, triton: {kernels.HAS_TRITON}, "
    f"C kernel: {native.available() or native.unavailable_reason()}"
)

# %% [markdown]
# ## The roofs: copy bandwidth and matmul throughput
#
# Measured at every torch thread count an op below runs with: the default count, and one
# thread (the single-threaded C write and the thread-count comparison).

# %%
roof_threads = sorted(
    {default_threads, 1} | {t if t > 0 else default_threads for t in threads_values}
)
by_threads = {
    str(t): {
        **bbpm_bench.copy_bandwidth(copy_mbytes * 2**20, repeats, threads=t),
        "gflops": bbpm_bench.matmul_gflops(matmul_n, 3, threads=t),
    }
    for t in roof_threads
}
roofs = {"cpu": {**by_threads[str(default_threads)], "by_threads": by_threads}}
if has_cuda:
    roofs["cuda"] = {
        **bbpm_bench.copy_bandwidth(copy_mbytes * 2**20, repeats, "cuda"),
        "gflops": bbpm_bench.matmul_gflops(4 * matmul_n, 3, "cuda"),
    }
for device, roof in roofs.items():
    for t, r in roof.get("by_threads", {"-": roof}).items():
        llc = r["llc_bytes"]
        print(
            f"{device}"
            + (f", {t} thread(s)" if t != "-" else "")
            + f": copy_ {r['copy_gbps']:.1f} GB/s (fastest call {r['copy_gbps_best']:.1f}), clone {r['clone_gbps']:.1f} GB/s, "
            f"matmul {r['gflops']:.0f} GFLOP/s; copy buffers of {r['n_bytes'] / 2**20:.0f} MiB, last-level cache "
            + (f"{llc / 2**20:.0f} MiB" if llc else "size unknown")
        )

# %% [markdown]
# ## Every path on the same inputs
#
# One table per device and dtype, filled once by a canonical write of the largest batch; for
# each batch size B all paths of that device are timed round-robin on the same slot ids.


# %%
def write_scatter_add(m, c, i, v):
    """``scatter_add_`` of the values repeated K*H times, over the slot ids expanded to
    ``[B*K*H, d]`` (torch's CPU scatter has a path for such expanded indices)."""
    flat = i.reshape(-1)
    m.scatter_add_(0, flat[:, None].expand(-1, m.shape[1]), v.repeat_interleave(i.shape[1], dim=0))
    torch_ops.add_counts(c, i)


def write_index_put(m, c, i, v):
    """``index_put_(accumulate=True)`` of the ``[B, d]`` values broadcast over the slots."""
    m.index_put_((i,), v[:, None, :].expand(-1, i.shape[1], -1), accumulate=True)
    torch_ops.add_counts(c, i)


def write_sparse_addmm(m, c, i, v):
    """``memory += S @ values`` with S the sparse COO ``[D, B]`` matrix holding a 1 at
    (slot, item) for every slot entry (duplicates add up), built in every call."""
    B_, M_ = i.shape
    items = torch.arange(B_, device=i.device).repeat_interleave(M_)
    S = torch.sparse_coo_tensor(
        torch.stack([i.reshape(-1), items]),
        torch.ones(B_ * M_, dtype=v.dtype, device=v.device),
        (m.shape[0], B_),
        check_invariants=False,
    )
    m.addmm_(S, v)
    torch_ops.add_counts(c, i)


def path_table(device: str) -> dict[str, dict]:
    """name -> {op, dtype (storage), fn(memory, counts, idx, values), pages ("huge" or "4k"),
    threads (None: torch's default), library (a write formulation kernels.write does not use)}."""

    def path(op, fn, dtype=torch.float32, pages="huge", threads=None, library=False):
        return dict(op=op, fn=fn, dtype=dtype, pages=pages, threads=threads, library=library)

    paths = {
        "read canonical": path("read", lambda m, c, i, v: torch_ops.read_gather_mean(m, c, i)),
        "read embedding_bag": path(
            "read", lambda m, c, i, v: torch_ops.read_embedding_bag(m, c, i)
        ),
        "read embedding_bag (auto weights)": path(
            "read", lambda m, c, i, v: kernels.read(m, c, i, backend="torch")
        ),
        "read canonical fp16": path(
            "read", lambda m, c, i, v: torch_ops.read_gather_mean(m, c, i), torch.float16
        ),
        "read chunked fp16": path(
            "read", lambda m, c, i, v: torch_ops.read_chunked(m, c, i), torch.float16
        ),
        "write canonical": path("write", lambda m, c, i, v: torch_ops.write_index_add(m, c, i, v)),
        "write columns (default)": path(
            "write", lambda m, c, i, v: torch_ops.write_columns(m, c, i, v), library=True
        ),
        "write columns (1 per call)": path(
            "write",
            lambda m, c, i, v: torch_ops.write_columns(m, c, i, v, group_rows=1),
            library=True,
        ),
        "write columns (32k rows per call)": path(
            "write",
            lambda m, c, i, v: torch_ops.write_columns(m, c, i, v, group_rows=32768),
            library=True,
        ),
        "write scatter_add_": path("write", write_scatter_add, library=True),
        "write index_put_ (accumulate)": path("write", write_index_put, library=True),
        "write sparse addmm_": path("write", write_sparse_addmm, library=True),
    }
    if device == "cpu" and native.available():
        paths["write C kernel"] = path("write", lambda m, c, i, v: native.write(m, c, i, v))
        paths["write C kernel (1 thread)"] = path(
            "write", lambda m, c, i, v: native.write(m, c, i, v, threads=1), threads=1
        )
        paths["read embedding_bag (auto weights), 4 KiB pages"] = path(
            "read", lambda m, c, i, v: kernels.read(m, c, i, backend="torch"), pages="4k"
        )
        paths["write C kernel, 4 KiB pages"] = path(
            "write", lambda m, c, i, v: native.write(m, c, i, v), pages="4k"
        )
    if device == "cuda" and kernels.HAS_TRITON:
        paths["read triton"] = path("read", lambda m, c, i, v: triton_ops.read_fused(m, c, i, EPS))
        paths["read triton fp16"] = path(
            "read", lambda m, c, i, v: triton_ops.read_fused(m, c, i, EPS), torch.float16
        )
        paths["write triton"] = path("write", lambda m, c, i, v: triton_ops.write_fused(m, c, i, v))
    return paths


def check_writes(paths: dict, memory, counts, idx, values) -> dict[str, dict]:
    """Run every write path once on the same zeroed rows of the check table and compare the
    rows and counts it leaves with the canonical write's: {name: {rel_error, counts_equal}}."""
    touched = idx.reshape(-1).unique()
    out, reference = {}, None
    for name in ["write canonical"] + [n for n, p in paths.items() if p["op"] == "write"]:
        memory[touched], counts[touched] = 0, 0
        paths[name]["fn"](memory, counts, idx, values)
        rows, row_counts = memory[touched].clone(), counts[touched].clone()
        if reference is None:
            reference = rows, row_counts
            continue
        out[name] = {
            "rel_error_vs_canonical": bbpm_bench.relative_error(rows, reference[0]),
            "counts_equal": bool(torch.equal(row_counts, reference[1])),
        }
    return out


def run_device(device: str) -> list[dict]:
    hash_fn = GlobalAffineHash(D, seed=seed)
    keys, values32 = bbpm_bench.make_inputs(max(B_values), d, seed=seed, device=device)
    idx_all = hash_fn.indices(keys, K, H)
    # Tables as BBPMMemoryFloat allocates them (zeros_table: huge pages where Linux grants
    # them), plus, on CPU, a float32 table on ordinary 4 KiB pages ("4k" paths), plus a
    # float32 check table for the write comparison.
    tables = {}
    for dtype, pages in ((torch.float32, "huge"), (torch.float16, "huge"), (torch.float32, "4k")):
        if pages == "4k" and device != "cpu":
            continue
        alloc = zeros_table if pages == "huge" else torch.zeros
        memory = alloc(D, d, dtype=dtype, device=device)
        counts = alloc(D, 1, dtype=torch.float32, device=device)
        kernels.write(memory, counts, idx_all, values32.to(dtype), backend="canonical")
        tables[dtype, pages] = (memory, counts)
    check_table = (
        zeros_table(D, d, dtype=torch.float32, device=device),
        zeros_table(D, 1, dtype=torch.float32, device=device),
    )
    paths = path_table(device)
    out = []
    for B in progress(B_values, desc=f"batch sizes ({device})"):
        idx = idx_all[:B]
        repeated_share = diagnostics.collision_rate(idx)
        ops, reference = {}, {}
        for name, p in paths.items():
            memory, counts = tables[p["dtype"], p["pages"]]
            values = values32[:B].to(p["dtype"])
            ops[name] = lambda fn=p["fn"], m=memory, c=counts, i=idx, v=values: fn(m, c, i, v)
            if p["op"] == "read":
                reference[name] = (
                    p["fn"](memory, counts, idx, values),
                    torch_ops.read_gather_mean(memory, counts, idx),
                )
        write_checks = check_writes(paths, *check_table, idx, values32[:B])
        with torch.no_grad():
            times = bbpm_bench.interleaved_times(ops, repeats, 1, device)
        for name, p in paths.items():
            stats = bbpm_bench.summarize_times(times[name])
            elem = torch.tensor([], dtype=p["dtype"]).element_size()
            nbytes = bbpm_bench.traffic_bytes(p["op"], B, K * H, d, elem)
            nflops = bbpm_bench.flops(p["op"], B, K * H, d)
            row = {
                "device": device,
                "path": name,
                "op": p["op"],
                "dtype": str(p["dtype"]).removeprefix("torch."),
                "pages": p["pages"],
                "library_write": p["library"],
                "threads": (p["threads"] or default_threads) if device == "cpu" else None,
                "B": B,
                **stats,
                "bytes": nbytes,
                "flops": nflops,
                "effective_gbps": nbytes / stats["median_s"] / 1e9,
                "gflops": nflops / stats["median_s"] / 1e9,
                "intensity_flop_per_byte": nflops / nbytes,
                "table_bytes": D * (d * elem + 4),  # table + float32 counts: the random-access data
                "repeated_share": repeated_share,
                **write_checks.get(name, {}),
            }
            if name in reference:
                row["rel_error_vs_canonical"] = bbpm_bench.relative_error(*reference[name])
            out.append(row)
    del tables, check_table
    return out


def copy_roof(row: dict, roofs: dict) -> dict:
    """The copy/matmul roof measured on the row's device at the row's thread count."""
    roof = roofs[row["device"]]
    return roof["by_threads"][str(row["threads"])] if row["threads"] else roof


rows = run_device("cpu") + (run_device("cuda") if has_cuda else [])
for r in rows:
    r["copy_share"] = r["effective_gbps"] / copy_roof(r, roofs)["copy_gbps"]
    if r["B"] == max(B_values):
        check = (
            f", rel. diff. {r['rel_error_vs_canonical']:.1e}"
            if "rel_error_vs_canonical" in r
            else ""
        ) + (f", counts equal {r['counts_equal']}" if "counts_equal" in r else "")
        print(
            f"{r['device']:4s} {r['path']:48s} B={r['B']:6d}: {r['median_s'] * 1e3:8.2f} ms, "
            f"{r['effective_gbps']:6.2f} GB/s effective ({r['copy_share']:.0%} of copy at "
            f"{r['threads'] or '-'} thread(s)){check}"
        )
if not has_cuda:
    print(
        "No CUDA device here: the Triton kernels are not timed in this run (the tests run their source in "
        "Triton's CPU interpreter, tests/test_triton_kernels.py; on a GPU, tests/test_gpu_cpu_parity.py and the "
        "CUDA tests of tests/test_kernels.py compare its results with the CPU ones)."
    )

# %% [markdown]
# ## Thread count
#
# torch uses one thread per core by default (the count is printed at the top). Every parallel region waits for its
# slowest thread, so when other processes share the cores an op made of many short parallel
# regions suffers more than one long region. We rerun the reference comparison
# (`bbpm.bench.compare_paths`: canonical vs `kernels.read`/`write` with `backend="auto"`)
# at each thread count (0 = torch's default).

# %%
thread_rows = []
for n_threads in progress(threads_values, desc="thread counts"):
    torch.set_num_threads(n_threads if n_threads > 0 else default_threads)
    thread_rows.append(
        bbpm_bench.compare_paths(D=D, d=d, K=K, H=H, B=B_threads, repeats=repeats, seed=seed)
    )
torch.set_num_threads(default_threads)
for r in thread_rows:
    copy_t = roofs["cpu"]["by_threads"][str(r["threads"])]["copy_gbps"]
    print(
        f"{r['threads']} thread(s): fast read {bbpm_bench.speed_words(r['read_speedup'])}, fast write "
        f"{bbpm_bench.speed_words(r['write_speedup'])}; fast read {r['read_bytes'] / r['read_fast_median_s'] / 1e9:.2f} GB/s, "
        f"fast write {r['write_bytes'] / r['write_fast_median_s'] / 1e9:.2f} GB/s effective, copy at {r['threads']} "
        f"thread(s) {copy_t:.1f} GB/s (load average {r['load_average_1min']})"
    )

# %%
keys, _ = bbpm_bench.make_inputs(B_threads, d, seed=seed)
hash_stats = diagnostics.summarize(GlobalAffineHash(D, seed=seed).indices(keys, K, H), D)

# %% [markdown]
# ## Gradients through the fused read
#
# A table `memory` $[D_g, d_g]$ is an `nn.Parameter`; each of $N_g$ keys addresses $K_g$
# slots (non-differentiable addresses, differentiable payload) and reads their mean through
# `kernels.read` (the `embedding_bag` path). We fit random targets with Adam on the mean
# squared error (a row that gets no gradient gets no update), then check that one backward pass puts non-zero
# gradient on exactly the rows the batch addresses and nowhere else.

# %%
gen = torch.Generator().manual_seed(seed)
grad_hash = GlobalAffineHash(grad_D, seed=seed)
grad_keys = torch.randint(0, 2**62, (grad_N,), generator=gen)
grad_idx = grad_hash.indices(grad_keys, grad_K, 1)
targets = torch.randn(grad_N, grad_d, generator=gen)
table = torch.nn.Parameter(torch.zeros(grad_D, grad_d))
ones = torch.ones(grad_D, 1)  # counts of 1: the read is the plain mean of the K rows
optimizer = torch.optim.Adam([table], lr=grad_lr)
losses = []
for step in progress(range(grad_steps), desc="training"):
    optimizer.zero_grad()
    loss = F.mse_loss(kernels.read(table, ones, grad_idx), targets)
    loss.backward()
    if step == 0:
        rows_with_grad = torch.nonzero(table.grad.abs().sum(dim=1)).flatten()
        addressed = torch.unique(grad_idx)
        grad_rows_exact = bool(torch.equal(rows_with_grad, addressed))
        grad_summary = {
            "rows_with_grad": int(rows_with_grad.numel()),
            "rows_addressed": int(addressed.numel()),
            "rows_total": grad_D,
            "exact_match": grad_rows_exact,
        }
    optimizer.step()
    losses.append(loss.item())
untouched = torch.ones(grad_D, dtype=torch.bool)
untouched[torch.unique(grad_idx)] = False
grad_summary["untouched_rows_still_zero"] = bool((table.detach()[untouched] == 0).all())
grad_summary["loss_first"], grad_summary["loss_last"] = losses[0], losses[-1]
print(grad_summary)

# %%
metrics_json = exp.save_metrics(
    {
        "threads_default": default_threads,
        "load_average_1min": bbpm_bench.load_average(),
        "roofs": roofs,
        "rows": rows,
        "thread_rows": thread_rows,
        "hash_diagnostics": hash_stats,
        "gradient": {**grad_summary, "losses": losses},
    }
)
raw_csv = exp.save_raw(rows)

# %% [markdown]
# ## Roofline and effective bandwidth
#
# Left: attained GFLOP/s against arithmetic intensity (flops per byte of minimum traffic),
# log-log; the roof is $\min(\text{matmul peak}, \text{intensity} \times \text{copy bandwidth})$,
# both measured above (solid: torch's default thread count; dotted: one thread). Right:
# effective bandwidth against batch size, with the copy bandwidth as lines. Each point is
# compared with the roof measured at its own thread count; where the points sit relative to
# the ridge and to the slope is printed below the figure, from the data.

# %%
metrics = exp.load_metrics()
result_rows = metrics["rows"]
path_names = list(dict.fromkeys(r["path"] for r in result_rows))
colors = dict(zip(path_names, plt.cm.tab20.colors, strict=False))  # up to 20 paths
markers = {"cpu": "o", "cuda": "^"}
fig, (ax_roof, ax_bw) = plt.subplots(1, 2, figsize=(17, 5.5))
intensity = np.logspace(-2.5, 2.5, 200)
for device, roof in metrics["roofs"].items():
    for t, r in roof.get("by_threads", {str(None): roof}).items():
        default = t in (str(None), str(metrics["threads_default"]))
        ls = ("-" if default else ":") if device == "cpu" else "--"
        who = f"{device}" + (f", {t} thread(s)" if t != str(None) else "")
        ceiling = np.minimum(r["gflops"], intensity * r["copy_gbps"])
        ax_roof.plot(
            intensity,
            ceiling,
            color="k",
            ls=ls,
            lw=2 if default else 1.2,
            label=f"{who} roof: {r['copy_gbps']:.1f} GB/s copy, {r['gflops']:.0f} GFLOP/s matmul",
        )
        ax_bw.axhline(r["copy_gbps"], color="k", ls=ls, label=f"{who} copy_ bandwidth")
        if default:
            ax_bw.axhline(
                r["clone_gbps"], color="gray", ls="-.", label=f"{who} clone (fresh pages)"
            )
for name in path_names:
    for device in metrics["roofs"]:
        sel = [r for r in result_rows if r["path"] == name and r["device"] == device]
        if not sel:
            continue
        label = f"{name} ({device})"
        ax_roof.scatter(
            [r["intensity_flop_per_byte"] for r in sel],
            [r["gflops"] for r in sel],
            color=colors[name],
            marker=markers[device],
            s=[20 + 10 * np.log2(r["B"] / min(B_values) + 1) for r in sel],
            label=label,
        )
        ax_bw.plot(
            [r["B"] for r in sel],
            [r["effective_gbps"] for r in sel],
            marker=markers[device],
            color=colors[name],
            ls="--" if "canonical" in name else "-",
            label=label,
        )
ax_roof.set_xscale("log")
ax_roof.set_yscale("log")
ax_roof.set_xlabel("arithmetic intensity (flop / byte of minimum traffic)")
ax_roof.set_ylabel("attained GFLOP/s")
ax_roof.set_title(f"Roofline (D={D:,}, d={d}, K*H={K * H}; marker size grows with B)")
ax_roof.legend(fontsize=6, loc="lower right")
ax_roof.grid(True, which="both", alpha=0.3)
ax_bw.set_xscale("log")
ax_bw.set_yscale("log")
ax_bw.set_xlabel("batch size B (items per call, log scale)")
ax_bw.set_ylabel("effective bandwidth (GB/s, minimum traffic / time)")
ax_bw.set_title(f"Effective bandwidth ({metrics['threads_default']} threads unless named)")
ax_bw.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
ax_bw.grid(True, which="both", alpha=0.3)
fig.tight_layout()
exp.save_figure(fig, "roofline.png")
plt.show()


# %%
def roof_of(row: dict) -> dict:
    return copy_roof(row, metrics["roofs"])


roofline_lines, roofline_summary = [], {}
for device in metrics["roofs"]:
    dev_rows = [r for r in result_rows if r["device"] == device]
    ridges = {id(r): roof_of(r)["gflops"] / roof_of(r)["copy_gbps"] for r in dev_rows}
    left = [r for r in dev_rows if r["intensity_flop_per_byte"] < ridges[id(r)]]
    lo = min(r["intensity_flop_per_byte"] for r in dev_rows)
    hi = max(r["intensity_flop_per_byte"] for r in dev_rows)
    margin = min(ridges[id(r)] / r["intensity_flop_per_byte"] for r in dev_rows)
    ridge_text = ", ".join(
        f"{t} thread(s) {r['gflops'] / r['copy_gbps']:.2f}"
        for t, r in metrics["roofs"][device]
        .get("by_threads", {"-": metrics["roofs"][device]})
        .items()
    )
    if len(left) == len(dev_rows):
        roofline_lines.append(
            f"{device}: every op's arithmetic intensity ({lo:.3f} to {hi:.3f} flop/byte) is left of the ridge "
            f"(matmul peak / copy bandwidth = {ridge_text} flop/byte), by a factor of {margin:.1f} or more: "
            "their roof is the bandwidth slope, and a point's height below it is the share of the copy "
            "bandwidth the op attains."
        )
    else:
        right = sorted({r["path"] for r in dev_rows if r not in left})
        roofline_lines.append(
            f"{device}: {len(dev_rows) - len(left)} of {len(dev_rows)} points are at or right of the ridge "
            f"({ridge_text} flop/byte; intensities {lo:.3f} to {hi:.3f}): {', '.join(right)}; their roof is the "
            "matmul peak, not the bandwidth."
        )
    per_thread = metrics["roofs"][device].get("by_threads", {})
    if "1" in per_thread:
        for t, r in per_thread.items():
            if int(t) > 1 and r["gflops"] < per_thread["1"]["gflops"]:
                roofline_lines.append(
                    f"{device}: CAUTION: the matmul peak measured at {t} threads ({r['gflops']:.0f} GFLOP/s) is below "
                    f"the one-thread peak ({per_thread['1']['gflops']:.0f} GFLOP/s), which more threads should not give on an idle "
                    f"machine: other processes most likely slowed that measurement (load average {metrics['load_average_1min']} when the timings "
                    f"were saved), so "
                    f"the {t}-thread compute roof and ridge above are understated."
                )
    below = [r for r in dev_rows if r["copy_share"] < 1]
    above = [r for r in dev_rows if r["copy_share"] >= 1]
    shares = [r["copy_share"] for r in dev_rows]
    roofline_lines.append(
        f"{device}: {len(below)} of {len(dev_rows)} (path, B) points attain less than the copy bandwidth at "
        f"their thread count, {len(above)} attain it or more (share of copy from {min(shares):.0%} to {max(shares):.0%})."
    )
    reasons: dict[str, list[str]] = {}
    for r in above:
        reason = bbpm_bench.beyond_copy_reason(
            r["table_bytes"], roof_of(r)["llc_bytes"], r["repeated_share"]
        )
        reasons.setdefault(reason, []).append(f"{r['path']} at B={r['B']} ({r['copy_share']:.0%})")
    for reason, who in reasons.items():
        roofline_lines.append(
            f"{device}: above the copy roof: {'; '.join(who)}. Effective bandwidth counts bytes, it does not "
            f"measure them, and here {reason}."
        )
    roofline_summary[device] = {
        "points": len(dev_rows),
        "left_of_ridge": len(left),
        "ridge_margin_min": margin,
        "below_copy": len(below),
        "above_copy": [(r["path"], r["B"]) for r in above],
    }

# %% [markdown]
# ## Fitting a table through the fused read

# %%
g = metrics["gradient"]
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(np.arange(1, len(g["losses"]) + 1), g["losses"], color="tab:purple")
ax.set_yscale("log")
ax.set_xlabel("gradient step")
ax.set_ylabel("mean squared error (log scale)")
ax.set_title(
    f"{grad_N} keys x {grad_K} slots in a {grad_D}-row table: "
    f"{g['rows_with_grad']} rows get gradient, {g['rows_addressed']} addressed"
)
ax.grid(True, which="both", alpha=0.3)
fig.tight_layout()
exp.save_figure(fig, "gradient_fit.png")
plt.show()

# %% [markdown]
# ## CUDA: recorded GPU runs
#
# The machine that builds this book may have no GPU, so this section times nothing: it
# draws the records that `python -m bbpm.gpu_bench --out book/gpu/NAME.json` wrote on a GPU
# (`scripts/gpu_check.sh` runs it after the CUDA tests). Each record names its device, date,
# torch and triton versions and commit; its numbers are from that run alone. The targets
# (stated for an H100): Triton read at least 1.8 TB/s effective and at least 65% of the
# copy bandwidth measured in the same run, at D from 1M to 16M, d = 64, K = 32, B = 65,536;
# Triton write at least 2x the plain `repeat_interleave` + `index_add_` write.
#
# Independently of any GPU, the test suite runs the Triton kernels' source on CPU tensors
# in Triton's interpreter (`tests/test_triton_kernels.py`) against the canonical definition:
# that checks their indexing, tiling, masking and accumulation, not their speed.

# %% [markdown]
# ### The kernels compiled for Hopper, here
#
# Triton can compile without a GPU: `triton_ops.compile_report` builds each kernel for
# compute capability 9.0 (H100/H200) with the argument specialisation a launch at d = 64,
# K = 32 would get, and reads the machine code's resource use with the `cuobjdump` that
# Triton ships. No spills (local bytes 0), 128-bit row loads (`LDG.E.128`) and, in the write,
# vector reductions that return nothing (`REDG.E.ADD.F32x4`: four floats per instruction,
# no value sent back) are what the kernels' design counts on; tests
# (`tests/test_triton_compile.py`) assert them for the pinned triton version. These are
# properties of the code, not timings: how fast it runs needs a GPU (next cell).

# %%
compile_rows = []
if kernels.HAS_TRITON and not triton_ops.interpreted():
    stand_in = torch.zeros(1024, 64)
    stand_in_counts = torch.zeros(1024, 1)
    stand_in_idx = torch.zeros(4, 32, dtype=torch.int64)
    for block_m, warps in progress(triton_compile_configs, desc="compiling for sm_90"):
        for op, dtype in (
            ("read", torch.float32),
            ("read", torch.float16),
            ("read", torch.bfloat16),
            ("write", torch.float32),
        ):
            report = triton_ops.compile_report(
                op,
                stand_in.to(dtype),
                stand_in_counts,
                stand_in_idx,
                torch.zeros(4, 64, dtype=dtype) if op == "write" else None,
                block_m=block_m,
                num_warps=warps,
            )
            compile_rows.append(report)
            memory_ops = ", ".join(f"{k} x{v}" for k, v in sorted(report["sass"].items()))
            print(
                f"{op:5s} {report['dtype']:8s} block_m={report['BLOCK_M']:2d} warps={report['num_warps']}: "
                f"{report['registers']} registers, local (spill) {report['local_bytes']} B, "
                f"shared {report['shared_bytes']} B | in the code (static counts): {memory_ops}"
            )
else:
    print("triton is not installed (or runs interpreted): nothing compiled.")

# %%
gpu_records = gpu_bench.load_records(exp.root / "book" / "gpu")
if not gpu_records:
    print(
        "No GPU record yet: no session with a GPU has run scripts/gpu_check.sh, so the Triton "
        "kernels' speed on CUDA is unmeasured (their results are checked in the interpreter)."
    )
for i, record in enumerate(gpu_records):
    print(gpu_bench.format_targets(record))
    fig = gpu_bench.plot_record(record)
    exp.save_figure(fig, f"cuda_record_{i}.png")
    plt.show()
metrics_json = exp.save_metrics(
    {
        **exp.load_metrics(),
        "triton_sm90_compile": compile_rows,
        "gpu_records": [
            {"info": r["info"], "copy": r["copy"], "targets": r["targets"]} for r in gpu_records
        ],
    }
)

# %% [markdown]
# ## Discussion
#
# At the largest CPU batch, $B$ = {glue:text}`b_max`, with the copy bandwidth
# {glue:text}`copy_text`, every path on the same inputs:


# %% tags=["hide-input"]
def row_at(path: str, B: int, device: str = "cpu") -> dict:
    return next(
        r for r in result_rows if r["path"] == path and r["B"] == B and r["device"] == device
    )


B_max = max(B_values)
words = bbpm_bench.speed_words
cpu_roof = metrics["roofs"]["cpu"]
copy_text = ", ".join(
    f"{r['copy_gbps']:.1f} GB/s at {t} thread(s)" for t, r in cpu_roof["by_threads"].items()
)
show_table(
    ["path", "ms", "GB/s", "share of copy", "threads", "rel. diff. from canonical", "counts equal"],
    [[name, f"{r['median_s'] * 1e3:.3f}", f"{r['effective_gbps']:.2f}", f"{r['copy_share']:.0%}", r["threads"],
      f"{r['rel_error_vs_canonical']:.1e}" if "rel_error_vs_canonical" in r else "",
      str(r["counts_equal"]) if "counts_equal" in r else ""]
     for name in path_names if any(x["path"] == name and x["device"] == "cpu" for x in result_rows)
     for r in [row_at(name, B_max)]],
)  # fmt: skip
exp.record("copy_text", copy_text + f" (buffers of {cpu_roof['n_bytes'] / 2**20:.0f} MiB"
           + (f", last-level cache {cpu_roof['llc_bytes'] / 2**20:.0f} MiB)" if cpu_roof["llc_bytes"] else ")"),
           "", "copy bandwidth per thread count")  # fmt: skip
exp.record("b_max", B_max, ",d", "largest batch")
exp.record("roofline_text", " ".join(roofline_lines), "", "roofline statements")
lines = []

# %% [markdown]
# {glue:text}`roofline_text`
#
# {glue:text}`discussion_text` {glue:text}`busy_note`

# %% tags=["hide-input"]
fast_read = (  # what kernels.read runs on CPU (C weights where the C kernel is available)
    "read embedding_bag (auto weights)"
    if any(r["path"] == "read embedding_bag (auto weights)" for r in result_rows)
    else "read embedding_bag"
)
timed_paths = {r["path"] for r in result_rows if r["device"] == "cpu"}


def time_ratio(slow: str, fast: str, B: int = B_max) -> float | None:
    """slow's time / fast's time at B on CPU (above 1: `fast` ran faster; None if not timed)."""
    if not {slow, fast} <= timed_paths:
        return None
    return row_at(slow, B)["median_s"] / row_at(fast, B)["median_s"]


lines.append(
    f"At B = {B_max}: read ({fast_read}) {words(time_ratio('read canonical', fast_read))}; "
    f"fp16 read (chunked) {words(time_ratio('read canonical fp16', 'read chunked fp16'))} (canonical fp16); "
    f"write (torch, default column grouping) {words(time_ratio('write canonical', 'write columns (default)'))}"
    + (
        f"; write (C kernel) {words(time_ratio('write canonical', 'write C kernel'))}."
        if "write C kernel" in timed_paths
        else "; no C kernel in this run."
    )
)
# The library write formulations against the write target (stated at one setting).
library = [
    n for n in path_names if any(r["path"] == n and r.get("library_write") for r in result_rows)
]
setting = {"D": D, "d": d, "K": K, "H": H, "dtype": "float32", "device": "cpu"}
on_target_setting = all(bbpm_bench.TARGET_SETTING[key] == value for key, value in setting.items())
B_target = bbpm_bench.TARGET_SETTING["B"]
B_check = B_target if on_target_setting and B_target in B_values else B_max
gains = {n: time_ratio("write canonical", n, B_check) for n in library}
best = max(gains, key=gains.get)
reached = [n for n, g in gains.items() if g >= bbpm_bench.WRITE_TARGET]
all_equal = all(
    r["rel_error_vs_canonical"] < 1e-5 and r["counts_equal"]
    for r in result_rows
    if r["op"] == "write" and "counts_equal" in r
)
lines.append(
    f"Library writes at B = {B_check} against the canonical write: "
    + "; ".join(f"{n.removeprefix('write ')} {words(g)}" for n, g in gains.items())
    + f". Every write path left the same rows as the canonical write (rel. diff. < 1e-5) and the same counts, "
    f"at every B: {all_equal}."
)
if on_target_setting and B_check == B_target:
    lines.append(
        f"The write target ({bbpm_bench.WRITE_TARGET:.0f}x over the canonical write at D = {D:,}, d = {d}, "
        f"K = {K}, H = {H}, B = {B_target}) is "
        + (
            f"reached by the library formulation(s) {', '.join(reached)}."
            if reached
            else f"reached by none of the library formulations (best: {best.removeprefix('write ')}, {gains[best]:.2f}x)"
        )
        + (
            f"; the C kernel: {time_ratio('write canonical', 'write C kernel', B_check):.2f}x "
            f"({'reached' if time_ratio('write canonical', 'write C kernel', B_check) >= bbpm_bench.WRITE_TARGET else 'NOT reached'})."
            if "write C kernel" in timed_paths
            else "."
        )
    )
else:
    lines.append(
        f"This run is not at the write target's setting (D = 1,000,000, d = 64, K = 32, H = 1, B = {B_target}), "
        "so these ratios do not test it."
    )
for slow, fast, what, than in (
    (
        "read embedding_bag",
        "read embedding_bag (auto weights)",
        "Read with its weights from the C pass",
        "with torch's weights",
    ),
    (
        "read embedding_bag (auto weights), 4 KiB pages",
        "read embedding_bag (auto weights)",
        "Read on huge pages",
        "on 4 KiB pages",
    ),
    ("write C kernel, 4 KiB pages", "write C kernel", "C write on huge pages", "on 4 KiB pages"),
):
    gain = time_ratio(slow, fast)
    if gain is not None:
        lines.append(f"{what}: {words(gain, than)} ('{fast}' vs '{slow}').")
for r in metrics["thread_rows"]:
    lines.append(
        f"At B = {B_threads} with {r['threads']} thread(s) (load average {r['load_average_1min']}): "
        f"read {words(r['read_speedup'])}, write {words(r['write_speedup'])}."
    )
lines.append(
    f"Gradients: {g['rows_with_grad']} rows received gradient, {g['rows_addressed']} rows are addressed "
    f"(exact match: {g['exact_match']}); rows never addressed are still zero after training: "
    f"{g['untouched_rows_still_zero']}; loss {g['loss_first']:.3e} -> {g['loss_last']:.3e} in {len(g['losses'])} steps."
)
if "cuda" not in metrics["roofs"]:
    lines.append(
        "No GPU in this run: the Triton paths are untimed here"
        + (f" (GPU records above: {len(gpu_records)})." if gpu_records else "; no GPU record yet.")
    )
exp.record("discussion_text", " ".join(lines), "", "speedups, library writes, threads, gradients")
exp.record(
    "busy_note",
    bbpm_bench.busy_machine_note(metrics["load_average_1min"], metrics["threads_default"]),
    "",
    "machine load",
)
metrics_json = exp.save_metrics(
    {
        **exp.load_metrics(),
        "roofline": roofline_summary,
        "library_writes": {
            "B": B_check,
            "on_target_setting": on_target_setting and B_check == B_target,
            "speedup_vs_canonical": gains,
            "reached_target": reached,
            "all_writes_equal_canonical": all_equal,
        },
    }
)


# %% [markdown]
# ## Records for the paper
#
# The numbers the paper quotes, read from this run's `metrics.json` and recorded by name
# (`results/bench03_kernels/records.json`); a number this run did not produce is not recorded, and the
# paper shows a placeholder for it.

# %% tags=["hide-input"]
from bbpm.paper import record_metric  # noqa: E402

paper_metrics = exp.load_metrics()
pm = paper_metrics
cpu_rows = [r for r in pm["rows"] if r.get("device") == "cpu"]
largest_batch = max(r["B"] for r in cpu_rows)
at_largest = {r["path"]: r for r in cpu_rows if r["B"] == largest_batch}
record_metric(exp, "largest_batch", lambda: largest_batch, ",d", "largest CPU batch timed")
record_metric(
    exp, "copy_gbps", lambda: pm["roofs"]["cpu"]["copy_gbps"], ".1f", "copy bandwidth (GB/s)"
)
for label, slow, fast in (
    ("read", "read canonical", "read embedding_bag (auto weights)"),
    ("write", "write canonical", "write C kernel"),
):
    record_metric(
        exp,
        f"{label}_speedup",
        lambda s=slow, f=fast: at_largest[s]["median_s"] / at_largest[f]["median_s"],
        ".1f",
        f"{fast} over {slow}, largest batch",
    )
    record_metric(
        exp,
        f"{label}_gbps",
        lambda f=fast: at_largest[f]["effective_gbps"],
        ".2f",
        f"{fast}: effective bandwidth (GB/s)",
    )
record_metric(
    exp,
    "gradient_exact",
    lambda: "yes" if pm["gradient"]["exact_match"] else "no",
    "",
    "rows with gradient equal the addressed rows",
)
