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
# # bench03: The library's kernels against the plain torch ops
#
# **Claim.** BBPM's read and write are memory-bound: a read gathers $B \cdot KH$ rows of $d$
# numbers and does two flops per number; a write adds one. Their speed is therefore bounded
# above by the machine's copy bandwidth divided by the bytes they move, and that bandwidth is
# the fair yardstick, measured here in the same run (`bbpm.bench.copy_bandwidth`, as in
# bench01: buffers at least `bbpm.bench.COPY_CACHE_MULTIPLE` times the last-level cache, at
# each torch thread count the ops run with). We time every path `bbpm.memory.kernels` offers, and the library
# formulations of the write it does not use, against the plain torch definition on the same
# inputs, convert each time into an effective bandwidth (minimum bytes moved per second,
# `bbpm.bench.traffic_bytes`) and place them on a roofline: attained GFLOP/s against
# arithmetic intensity, under the measured copy-bandwidth slope and the measured matmul peak.
#
# | path | read | write |
# |---|---|---|
# | canonical (definition) | `memory[idx] / (counts[idx] + eps)`, mean over $KH$ | values repeated $KH$ times, `index_add_` |
# | torch path without temporaries | `embedding_bag(..., per_sample_weights=1/((c+eps)KH))` | `index_add_` per slot column; for small batches several columns per call, so a call adds at least 8192 rows (default; also timed: 1 column or 32768 rows per call) |
# | other library writes (timed for comparison; `kernels.write` does not use them) | — | `scatter_add_` of the repeated values over the expanded slot ids; `index_put_(accumulate=True)` of the values broadcast over the $KH$ slots; `addmm_` with a sparse COO $[D, B]$ 0/1 matrix (built in every call); counts as in the torch path without temporaries |
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

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import torch

from bbpm import GlobalAffineHash, gpu_bench
from bbpm import bench as bbpm_bench
from bbpm.experiments import bench03_kernels as kb
from bbpm.hashing import diagnostics
from bbpm.memory import kernels
from bbpm.memory.kernels import native
from bbpm.paper import record_metric
from bbpm.utils import Experiment, progress, show_table

exp = Experiment.from_notebook("bench03_kernels", "notebooks/bench03_kernels.py", globals())
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
roofs = kb.measure_roofs(threads_values, copy_mbytes, repeats, matmul_n, cuda=has_cuda)
print("\n".join(kb.roof_lines(roofs)))

# %% [markdown]
# ## Every path on the same inputs
#
# One table per device and dtype, filled once by a canonical write of the largest batch; for
# each batch size B all paths of that device (`kb.path_table`: the table above, plus the
# library writes `kb.write_scatter_add`, `kb.write_index_put`, `kb.write_sparse_addmm`) are
# timed round-robin on the same slot ids (`kb.time_paths`). Each row below is the largest
# batch: time, effective bandwidth, share of the copy bandwidth at the row's thread count,
# and the difference from the canonical result.
#
# Without a CUDA device (the first line above says) the Triton kernels are not timed: the
# tests run their source in Triton's CPU interpreter (`tests/test_triton_kernels.py`), and on
# a GPU `tests/test_gpu_cpu_parity.py` and the CUDA tests of `tests/test_kernels.py` compare
# their results with the CPU ones.

# %%
setting = dict(D=D, d=d, K=K, H=H, B_values=B_values, repeats=repeats, seed=seed)
rows = kb.time_paths("cpu", **setting) + (kb.time_paths("cuda", **setting) if has_cuda else [])
for r in rows:
    r["copy_share"] = r["effective_gbps"] / kb.copy_roof(r, roofs)["copy_gbps"]
print("\n".join(kb.row_line(r) for r in rows if r["B"] == max(B_values)))

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
        f"{r['threads']} thread(s): library read {bbpm_bench.speed_words(r['read_speedup'])}, library write "
        f"{bbpm_bench.speed_words(r['write_speedup'])}; library read {r['read_bytes'] / r['read_fast_median_s'] / 1e9:.2f} GB/s, "
        f"library write {r['write_bytes'] / r['write_fast_median_s'] / 1e9:.2f} GB/s effective, copy at {r['threads']} "
        f"thread(s) {copy_t:.1f} GB/s (load average {r['load_average_1min']})"
    )
keys, _ = bbpm_bench.make_inputs(B_threads, d, seed=seed)
hash_stats = diagnostics.summarize(GlobalAffineHash(D, seed=seed).indices(keys, K, H), D)

# %% [markdown]
# ## Gradients through the fused read
#
# A table `memory` $[D_g, d_g]$ is an `nn.Parameter`; each of $N_g$ keys addresses $K_g$
# slots (non-differentiable addresses, differentiable payload) and reads their mean through
# `kernels.read` (the `embedding_bag` path). We fit random targets with Adam on the mean
# squared error (a row that gets no gradient gets no update), then check that one backward pass puts non-zero
# gradient on exactly the rows the batch addresses and nowhere else (`kb.fit_through_read`).

# %%
grad_summary, losses = kb.fit_through_read(
    grad_D, grad_d, grad_K, grad_N, grad_steps, grad_lr, seed
)
print(grad_summary)
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
# the ridge and to the slope is said in the Discussion, from the data.

# %%
metrics = exp.load_metrics()
title = f"Roofline (D={D:,}, d={d}, K*H={K * H}; marker size grows with B)"
exp.save_figure(kb.plot_roofline(metrics, min(B_values), title), "roofline.png")
plt.show()
roofline_lines, roofline_summary = kb.roofline_statements(metrics)

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
compile_rows = kb.compile_reports(triton_compile_configs)
print(
    "\n".join(kb.compile_line(report) for report in compile_rows)
    or "triton is not installed (or runs interpreted): nothing compiled."
)

# %%
gpu_records = gpu_bench.load_records(exp.root / "book" / "gpu")
if not gpu_records:
    print(
        "No GPU record yet: scripts/gpu_check.sh has not been run on a CUDA machine, so the Triton "
        "kernels' speed on CUDA is unmeasured (their results are checked in the interpreter)."
    )
for i, record in enumerate(gpu_records):
    print(gpu_bench.format_targets(record))
    exp.save_figure(gpu_bench.plot_record(record), f"cuda_record_{i}.png")
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
B_max = max(B_values)
timings = kb.Timings(metrics["rows"])
cpu_roof = metrics["roofs"]["cpu"]
copy_text = ", ".join(
    f"{r['copy_gbps']:.1f} GB/s at {t} thread(s)" for t, r in cpu_roof["by_threads"].items()
)
show_table(*timings.table(B_max))
exp.record("copy_text", copy_text + f" (buffers of {cpu_roof['n_bytes'] / 2**20:.0f} MiB"
           + (f", last-level cache {cpu_roof['llc_bytes'] / 2**20:.0f} MiB)" if cpu_roof["llc_bytes"] else ")"),
           "", "copy bandwidth per thread count")  # fmt: skip
exp.record("b_max", B_max, ",d", "largest batch")
_ = exp.record("roofline_text", " ".join(roofline_lines), "", "roofline statements")

# %% [markdown]
# {glue:text}`roofline_text`
#
# {glue:text}`discussion_text` {glue:text}`busy_note`

# %% tags=["hide-input"]
target = {"D": D, "d": d, "K": K, "H": H, "dtype": "float32", "device": "cpu"}
writes = kb.library_writes(timings, target, B_values)
headline, *paired = kb.speedup_lines(timings, B_max)
lines = [headline, *kb.library_write_lines(timings, writes, target), *paired]
lines += [
    f"At B = {B_threads} with {r['threads']} thread(s) (load average {r['load_average_1min']}): "
    f"read {bbpm_bench.speed_words(r['read_speedup'])}, write {bbpm_bench.speed_words(r['write_speedup'])}."
    for r in metrics["thread_rows"]
]
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
busy = bbpm_bench.busy_machine_note(metrics["load_average_1min"], metrics["threads_default"])
exp.record("busy_note", busy, "", "machine load")
metrics_json = exp.save_metrics(
    {**exp.load_metrics(), "roofline": roofline_summary, "library_writes": writes}
)

# %% [markdown]
# ## Records for the paper
#
# The numbers the paper quotes, read from this run's `metrics.json` and recorded by name
# (`results/bench03_kernels/records.json`); a number this run did not produce is not recorded, and the
# paper shows a placeholder for it.

# %% tags=["hide-input"]
pm = exp.load_metrics()
largest_batch = max(r["B"] for r in timings.rows)
at_largest = {r["path"]: r for r in timings.rows if r["B"] == largest_batch}
record_metric(exp, "largest_batch", lambda: largest_batch, ",d", "largest CPU batch timed")
cpu_copy = lambda: pm["roofs"]["cpu"]["copy_gbps"]  # noqa: E731
record_metric(exp, "copy_gbps", cpu_copy, ".1f", "copy bandwidth (GB/s)")
for label, slow, fast in (
    ("read", "read canonical", "read embedding_bag (auto weights)"),
    ("write", "write canonical", "write C kernel"),
):
    speedup = lambda s=slow, f=fast: at_largest[s]["median_s"] / at_largest[f]["median_s"]  # noqa: E731
    record_metric(exp, f"{label}_speedup", speedup, ".1f", f"{fast} over {slow}, largest batch")
    gbps = lambda f=fast: at_largest[f]["effective_gbps"]  # noqa: E731
    record_metric(exp, f"{label}_gbps", gbps, ".2f", f"{fast}: effective bandwidth (GB/s)")
exact = lambda: "yes" if pm["gradient"]["exact_match"] else "no"  # noqa: E731
_ = record_metric(exp, "gradient_exact", exact, "", "rows with gradient equal the addressed rows")
