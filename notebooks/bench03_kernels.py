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
# here in the same run. We time every path `bbpm.memory.kernels` offers against the plain
# torch definition on the same inputs, convert each time into an effective bandwidth
# (minimum bytes moved per second, `bbpm.bench.traffic_bytes`) and place them on a roofline:
# attained GFLOP/s against arithmetic intensity, under the measured copy-bandwidth slope and
# the measured matmul peak.
#
# | path | read | write |
# |---|---|---|
# | canonical (definition) | `memory[idx] / (counts[idx] + eps)`, mean over $KH$ | values repeated $KH$ times, `index_add_` |
# | torch fast path | `embedding_bag(..., per_sample_weights=1/((c+eps)KH))` | `index_add_` per slot column; for small batches several columns per call, so a call adds at least 8192 rows (default; also timed: 1 column or 32768 rows per call) |
# | C kernel (CPU, `kernels.native`; the default CPU write) | — (a C loop was tried: not faster than `embedding_bag`) | one pass over the slot ids with software prefetch; the slot range split across threads, so no two threads touch a row (no atomics; the same sums for any thread count) |
# | `kernels.read` (auto weights) | the same `embedding_bag`, its weights from one C pass on CPU (`native.slot_weights`: the same bits) | — |
# | fp16/bf16 storage | blocks of rows upcast to float32, `bmm` with the weights | as above, in the storage dtype |
# | Triton (CUDA only) | one program per (item, column block), float32 accumulator | `atomic_add` of the value row into each slot |
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
B_values = [1024, 4096, 16384]
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
from tqdm.auto import tqdm

from bbpm import GlobalAffineHash, gpu_bench
from bbpm import bench as bbpm_bench
from bbpm.hashing import diagnostics
from bbpm.memory import kernels
from bbpm.memory.base import EPS
from bbpm.memory.kernels import native, torch_ops, triton_ops
from bbpm.utils import Experiment
from bbpm.utils.device import zeros_table

params = dict(
    seed=seed,
    D=D,
    d=d,
    K=K,
    H=H,
    B_values=B_values,
    B_threads=B_threads,
    threads_values=threads_values,
    repeats=repeats,
    copy_mbytes=copy_mbytes,
    matmul_n=matmul_n,
    grad_D=grad_D,
    grad_d=grad_d,
    grad_K=grad_K,
    grad_N=grad_N,
    grad_steps=grad_steps,
    grad_lr=grad_lr,
    triton_compile_configs=triton_compile_configs,
)
exp = Experiment("bench03_kernels", params)
default_threads = torch.get_num_threads()
has_cuda = torch.cuda.is_available()
print(
    f"torch {torch.__version__}, {default_threads} threads by default, CUDA: {has_cuda}, triton: {kernels.HAS_TRITON}, "
    f"C kernel: {native.available() or native.unavailable_reason()}"
)

# %% [markdown]
# ## The roofs: copy bandwidth and matmul throughput

# %%
roofs = {
    "cpu": {
        **bbpm_bench.copy_bandwidth(copy_mbytes * 2**20, repeats),
        "gflops": bbpm_bench.matmul_gflops(matmul_n, 3),
    }
}
if has_cuda:
    roofs["cuda"] = {
        **bbpm_bench.copy_bandwidth(copy_mbytes * 2**20, repeats, "cuda"),
        "gflops": bbpm_bench.matmul_gflops(4 * matmul_n, 3, "cuda"),
    }
for device, roof in roofs.items():
    print(
        f"{device}: copy_ {roof['copy_gbps']:.1f} GB/s, clone {roof['clone_gbps']:.1f} GB/s, matmul {roof['gflops']:.0f} GFLOP/s"
    )

# %% [markdown]
# ## Every path on the same inputs
#
# One table per device and dtype, filled once by a canonical write of the largest batch; for
# each batch size B all paths of that device are timed round-robin on the same slot ids.


# %%
def path_table(device: str) -> dict[str, tuple[str, torch.dtype, object]]:
    """name -> (op, storage dtype, callable(memory, counts, idx, values))."""
    paths = {
        "read canonical": (
            "read",
            torch.float32,
            lambda m, c, i, v: torch_ops.read_gather_mean(m, c, i),
        ),
        "read embedding_bag": (
            "read",
            torch.float32,
            lambda m, c, i, v: torch_ops.read_embedding_bag(m, c, i),
        ),
        "read embedding_bag (auto weights)": (
            "read",
            torch.float32,
            lambda m, c, i, v: kernels.read(m, c, i, backend="torch"),
        ),
        "read canonical fp16": (
            "read",
            torch.float16,
            lambda m, c, i, v: torch_ops.read_gather_mean(m, c, i),
        ),
        "read chunked fp16": (
            "read",
            torch.float16,
            lambda m, c, i, v: torch_ops.read_chunked(m, c, i),
        ),
        "write canonical": (
            "write",
            torch.float32,
            lambda m, c, i, v: torch_ops.write_index_add(m, c, i, v),
        ),
        "write columns (default)": (
            "write",
            torch.float32,
            lambda m, c, i, v: torch_ops.write_columns(m, c, i, v),
        ),
        "write columns (1 per call)": (
            "write",
            torch.float32,
            lambda m, c, i, v: torch_ops.write_columns(m, c, i, v, group_rows=1),
        ),
        "write columns (32k rows per call)": (
            "write",
            torch.float32,
            lambda m, c, i, v: torch_ops.write_columns(m, c, i, v, group_rows=32768),
        ),
    }
    if device == "cpu" and native.available():
        paths["write C kernel"] = (
            "write",
            torch.float32,
            lambda m, c, i, v: native.write(m, c, i, v),
        )
        paths["write C kernel (1 thread)"] = (
            "write",
            torch.float32,
            lambda m, c, i, v: native.write(m, c, i, v, threads=1),
        )
        paths["read embedding_bag (auto weights), 4 KiB pages"] = (
            "read",
            torch.float32,
            lambda m, c, i, v: kernels.read(m, c, i, backend="torch"),
            "4k",
        )
        paths["write C kernel, 4 KiB pages"] = (
            "write",
            torch.float32,
            lambda m, c, i, v: native.write(m, c, i, v),
            "4k",
        )
    if device == "cuda" and kernels.HAS_TRITON:
        paths["read triton"] = (
            "read",
            torch.float32,
            lambda m, c, i, v: triton_ops.read_fused(m, c, i, EPS),
        )
        paths["read triton fp16"] = (
            "read",
            torch.float16,
            lambda m, c, i, v: triton_ops.read_fused(m, c, i, EPS),
        )
        paths["write triton"] = (
            "write",
            torch.float32,
            lambda m, c, i, v: triton_ops.write_fused(m, c, i, v),
        )
    return paths


def run_device(device: str) -> list[dict]:
    hash_fn = GlobalAffineHash(D, seed=seed)
    keys, values32 = bbpm_bench.make_inputs(max(B_values), d, seed=seed, device=device)
    idx_all = hash_fn.indices(keys, K, H)
    # Tables as BBPMMemoryFloat allocates them (zeros_table: huge pages where Linux grants
    # them), plus, on CPU, a float32 table on ordinary 4 KiB pages ("4k" paths).
    tables = {}
    for dtype, pages in ((torch.float32, "huge"), (torch.float16, "huge"), (torch.float32, "4k")):
        if pages == "4k" and device != "cpu":
            continue
        alloc = zeros_table if pages == "huge" else torch.zeros
        memory = alloc(D, d, dtype=dtype, device=device)
        counts = alloc(D, 1, dtype=torch.float32, device=device)
        kernels.write(memory, counts, idx_all, values32.to(dtype), backend="canonical")
        tables[dtype, pages] = (memory, counts)
    paths = path_table(device)
    out = []
    for B in tqdm(B_values, desc=f"batch sizes ({device})"):
        idx = idx_all[:B]
        ops, reference = {}, {}
        for name, (op, dtype, fn, *pages) in paths.items():
            memory, counts = tables[dtype, pages[0] if pages else "huge"]
            values = values32[:B].to(dtype)
            ops[name] = lambda fn=fn, m=memory, c=counts, i=idx, v=values: fn(m, c, i, v)
            if op == "read":
                reference[name] = (
                    fn(memory, counts, idx, values),
                    torch_ops.read_gather_mean(memory, counts, idx),
                )
        with torch.no_grad():
            times = bbpm_bench.interleaved_times(ops, repeats, 1, device)
        for name, (op, dtype, *_) in paths.items():
            stats = bbpm_bench.summarize_times(times[name])
            elem = torch.tensor([], dtype=dtype).element_size()
            nbytes = bbpm_bench.traffic_bytes(op, B, K * H, d, elem)
            nflops = bbpm_bench.flops(op, B, K * H, d)
            row = {
                "device": device,
                "path": name,
                "op": op,
                "dtype": str(dtype).removeprefix("torch."),
                "B": B,
                **stats,
                "bytes": nbytes,
                "flops": nflops,
                "effective_gbps": nbytes / stats["median_s"] / 1e9,
                "gflops": nflops / stats["median_s"] / 1e9,
                "intensity_flop_per_byte": nflops / nbytes,
            }
            if name in reference:
                row["rel_error_vs_canonical"] = bbpm_bench.relative_error(*reference[name])
            out.append(row)
    del tables
    return out


rows = run_device("cpu") + (run_device("cuda") if has_cuda else [])
for r in rows:
    if r["B"] == max(B_values):
        print(
            f"{r['device']:4s} {r['path']:28s} B={r['B']:6d}: {r['median_s'] * 1e3:8.2f} ms, "
            f"{r['effective_gbps']:6.2f} GB/s effective"
        )
if not has_cuda:
    print(
        "No CUDA device here: the Triton kernels are not timed in this run (their CPU interpreter and GPU parity "
        "tests live in tests/test_kernels.py)."
    )

# %% [markdown]
# ## Thread count
#
# On a 2-core machine torch uses 2 threads by default. Every parallel region waits for its
# slowest thread, so when other processes share the cores an op made of many short parallel
# regions suffers more than one long region. We rerun the reference comparison
# (`bbpm.bench.compare_paths`: canonical vs `kernels.read`/`write` with `backend="auto"`)
# at each thread count (0 = torch's default).

# %%
thread_rows = []
for n_threads in tqdm(threads_values, desc="thread counts"):
    torch.set_num_threads(n_threads if n_threads > 0 else default_threads)
    thread_rows.append(
        bbpm_bench.compare_paths(D=D, d=d, K=K, H=H, B=B_threads, repeats=repeats, seed=seed)
    )
torch.set_num_threads(default_threads)
for r in thread_rows:
    print(
        f"{r['threads']} thread(s): read {r['read_speedup']:.1f}x, write {r['write_speedup']:.1f}x "
        f"(load average {r['load_average_1min']})"
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
for step in tqdm(range(grad_steps), desc="training"):
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
exp.save_metrics(
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
exp.save_raw(rows)

# %% [markdown]
# ## Roofline and effective bandwidth
#
# Left: attained GFLOP/s against arithmetic intensity (flops per byte of minimum traffic),
# log-log; the roof is $\min(\text{matmul peak}, \text{intensity} \times \text{copy bandwidth})$,
# both measured above. All BBPM ops sit far left of the ridge, on the bandwidth slope; the
# distance below the slope is the share of copy bandwidth they miss. Right: effective
# bandwidth against batch size, with the copy bandwidth as a line.

# %%
metrics = exp.load_metrics()
result_rows = metrics["rows"]
path_names = list(dict.fromkeys(r["path"] for r in result_rows))
colors = dict(zip(path_names, plt.cm.tab20.colors, strict=False))  # up to 20 paths
markers = {"cpu": "o", "cuda": "^"}
fig, (ax_roof, ax_bw) = plt.subplots(1, 2, figsize=(15, 5.5))
intensity = np.logspace(-2.5, 2.5, 200)
for device, roof in metrics["roofs"].items():
    ceiling = np.minimum(roof["gflops"], intensity * roof["copy_gbps"])
    ax_roof.plot(
        intensity,
        ceiling,
        "k-" if device == "cpu" else "k--",
        lw=2,
        label=f"{device} roof: {roof['copy_gbps']:.1f} GB/s copy, {roof['gflops']:.0f} GFLOP/s matmul",
    )
    ax_bw.axhline(
        roof["copy_gbps"],
        color="k",
        ls="-" if device == "cpu" else "--",
        label=f"{device} copy_ bandwidth",
    )
    ax_bw.axhline(roof["clone_gbps"], color="gray", ls=":", label=f"{device} clone (fresh pages)")
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
ax_roof.legend(fontsize=7, loc="upper left")
ax_roof.grid(True, which="both", alpha=0.3)
ax_bw.set_xscale("log")
ax_bw.set_yscale("log")
ax_bw.set_xlabel("batch size B (items per call, log scale)")
ax_bw.set_ylabel("effective bandwidth (GB/s, minimum traffic / time)")
ax_bw.set_title(f"Effective bandwidth ({metrics['threads_default']} threads)")
ax_bw.legend(fontsize=7, loc="lower right")
ax_bw.grid(True, which="both", alpha=0.3)
fig.tight_layout()
exp.save_figure(fig, "roofline.png")
plt.show()

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
    for block_m, warps in tqdm(triton_compile_configs, desc="compiling for sm_90"):
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
exp.save_metrics(
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


# %%
def row_at(path: str, B: int, device: str = "cpu") -> dict:
    return next(
        r for r in result_rows if r["path"] == path and r["B"] == B and r["device"] == device
    )


B_max = max(B_values)
cpu_roof = metrics["roofs"]["cpu"]
lines = [
    f"CPU, B = {B_max}, {metrics['threads_default']} threads, copy bandwidth {cpu_roof['copy_gbps']:.1f} GB/s:"
]
for name in path_names:
    if any(r["path"] == name and r["device"] == "cpu" for r in result_rows):
        r = row_at(name, B_max)
        err = (
            f", rel. diff. from canonical {r['rel_error_vs_canonical']:.1e}"
            if "rel_error_vs_canonical" in r
            else ""
        )
        lines.append(
            f"- {name}: {r['median_s'] * 1e3:.2f} ms = {r['effective_gbps']:.2f} GB/s "
            f"({r['effective_gbps'] / cpu_roof['copy_gbps']:.0%} of copy){err}"
        )
fast_read = (  # what kernels.read runs on CPU (C weights where the C kernel is available)
    "read embedding_bag (auto weights)"
    if any(r["path"] == "read embedding_bag (auto weights)" for r in result_rows)
    else "read embedding_bag"
)
read_gain = row_at("read canonical", B_max)["median_s"] / row_at(fast_read, B_max)["median_s"]
half_gain = (
    row_at("read canonical fp16", B_max)["median_s"]
    / row_at("read chunked fp16", B_max)["median_s"]
)
write_gain = (
    row_at("write canonical", B_max)["median_s"]
    / row_at("write columns (default)", B_max)["median_s"]
)
native_gain = (
    row_at("write canonical", B_max)["median_s"] / row_at("write C kernel", B_max)["median_s"]
    if any(r["path"] == "write C kernel" for r in result_rows)
    else None
)
lines.append(
    f"Fast over canonical at B = {B_max}: read {read_gain:.1f}x ({fast_read}), fp16 read {half_gain:.1f}x, "
    f"write {write_gain:.1f}x (torch, default column grouping)"
    + (f", write {native_gain:.1f}x (C kernel)." if native_gain else "; no C kernel in this run.")
)
timed_paths = {r["path"] for r in result_rows if r["device"] == "cpu"}


def time_ratio(slow: str, fast: str) -> float | None:
    """How many times faster `fast` ran than `slow` at B_max on CPU (None if not timed)."""
    if not {slow, fast} <= timed_paths:
        return None
    return row_at(slow, B_max)["median_s"] / row_at(fast, B_max)["median_s"]


for slow, fast, what in (
    ("read embedding_bag", "read embedding_bag (auto weights)", "read weights from the C pass"),
    (
        "read embedding_bag (auto weights), 4 KiB pages",
        "read embedding_bag (auto weights)",
        "huge pages, read",
    ),
    ("write C kernel, 4 KiB pages", "write C kernel", "huge pages, C write"),
):
    gain = time_ratio(slow, fast)
    if gain is not None:
        lines.append(f"{what}: {gain:.2f}x as fast as without ('{fast}' vs '{slow}').")
for r in metrics["thread_rows"]:
    lines.append(
        f"At B = {B_threads} with {r['threads']} thread(s) (load average {r['load_average_1min']}): "
        f"read {r['read_speedup']:.1f}x, write {r['write_speedup']:.1f}x faster than canonical."
    )
lines.append(
    f"Gradients: {g['rows_with_grad']} rows received gradient, {g['rows_addressed']} rows are addressed "
    f"(exact match: {g['exact_match']}); rows never addressed are still zero after training: "
    f"{g['untouched_rows_still_zero']}; loss {g['loss_first']:.3f} -> {g['loss_last']:.4f} in {len(g['losses'])} steps."
)
if "cuda" not in metrics["roofs"]:
    lines.append(
        "No GPU in this run: the Triton paths are untimed here"
        + (f" (GPU records above: {len(gpu_records)})." if gpu_records else "; no GPU record yet.")
    )
print("\n".join(lines))
print(bbpm_bench.busy_machine_note(metrics["load_average_1min"], metrics["threads_default"]))
