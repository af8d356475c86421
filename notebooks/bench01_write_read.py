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
# # bench01: Write/read latency
#
# **Claim.** The canonical BBPM read (gather $[B, KH, d]$, divide by the counts, mean) and
# write (repeat every value $KH$ times, `index_add_`) spend most of their time building
# temporaries of $B \cdot KH \cdot d$ elements. The library paths behind
# `bbpm.memory.kernels.read` / `write` (*library* in the tables and figures below) compute the
# same sums without them:
#
# * read: one `embedding_bag(idx, memory, per_sample_weights=w, mode="sum")` with
#   $w = 1/((c + \epsilon) KH)$ — gather, debias and mean in one pass, extra memory $O(Bd)$
#   (on CPU the weights $w$ come from one C pass, `kernels.native.slot_weights`);
# * write: on CPU the C kernel `kernels.native.write` (one prefetching pass over the slot ids,
#   the slot range split across threads), else `index_add_` of the $[B, d]$ values once per
#   slot column; both read the values in place instead of a $KH$-fold copy.
#
# On the prototype's setting ($D = 10^6$, $d = 64$, $K = 32$, $H = 1$, batches of $B = 8192$,
# float32; this run's base setting: {glue:text}`base_setting`) the targets are a read at least
# {glue:text}`read_target`x and a write at least {glue:text}`write_target`x faster than the
# canonical ops, with results equal within $10^{-5}$ relative. In this run, at the base
# setting, the library read is {glue:text}`read_speed_words` and the library write
# {glue:text}`write_speed_words` (Discussion). This notebook times both paths
# in one process on the same inputs while varying one of $K, D, d, B$ and the storage dtype
# at a time, splits each op into hashing and the memory kernel, and draws the time a
# memory-bound op needs at the machine's copy bandwidth (measured in the same run) beside the
# measurements.
#
# **How we time.** The compared calls are interleaved round-robin after a warm-up call, and we
# report the median of `repeats` calls. On a shared machine other processes perturb
# every number; interleaving makes them perturb both paths alike, so the *ratios* are more
# stable than the absolute times. One exception: with several torch threads on a busy machine
# every parallel region waits for its slowest thread, which hurts ops made of many short
# regions (the torch column-wise write, the hash) much more than the canonical ops. The run records
# the load average and says so when it was high; `threads = 1` or the environment variable
# `OMP_WAIT_POLICY=PASSIVE` measure the kernels themselves (bench03 compares thread counts).

# %% tags=["parameters"]
seed = 0
D = 1000000
d = 64
K = 32
H = 1
B = 8192
dtype = "float32"
K_values = [8, 16, 32, 64]
D_values = [250000, 1000000, 2000000]
d_values = [16, 32, 64, 128]
B_values = [1024, 4096, 8192, 16384]
dtypes = ["float32", "float16", "bfloat16", "float64"]
repeats = 5
copy_mbytes = 256
threads = 0

# %% tags=["hide-input"]
import torch

from bbpm import GlobalAffineHash
from bbpm import bench as bbpm_bench
from bbpm.experiments import write_read
from bbpm.hashing import diagnostics
from bbpm.memory.base import counts_dtype_for
from bbpm.utils import Experiment, progress, show_table

if threads < 0:
    raise ValueError(f"threads must be 0 (torch's default) or a positive count, got {threads}")
if threads > 0:
    torch.set_num_threads(threads)
exp = Experiment.from_notebook("bench01_write_read", "notebooks/bench01_write_read.py", globals())
if dtype not in bbpm_bench.DTYPES or any(t not in bbpm_bench.DTYPES for t in dtypes):
    raise ValueError(
        f"dtypes must be among {sorted(bbpm_bench.DTYPES)}, got dtype={dtype!r}, dtypes={dtypes}"
    )
_ = exp.record("base_setting", f"D = {D:,}, d = {d}, K = {K}, H = {H}, B = {B}, {dtype}, torch {torch.__version__} "
               f"with {torch.get_num_threads()} threads", "", "the base setting of this run")  # fmt: skip

# %% [markdown]
# ## The machine's copy bandwidth
#
# An op that streams its data from DRAM moves bytes no faster than a plain copy does.
# `bbpm.bench.copy_bandwidth` (bench03 uses the same helper) times `dst.copy_(src)` into a
# preallocated tensor (bytes read + written) on buffers at least
# `bbpm.bench.COPY_CACHE_MULTIPLE` times the last-level cache, so that the copy streams from
# DRAM, with the torch thread count the timed ops use; and `src.clone()`, which also pays for
# fresh pages, as the canonical ops do for their temporaries. An op can still beat this
# roof: when its table fits in the cache (small settings such as the smoke run), or where the
# bytes we count for it (`bbpm.bench.traffic_bytes`) over-estimate what it really fetches.
# The Discussion says whether that happened in this run.

# %% tags=["hide-input"]
bandwidth = bbpm_bench.copy_bandwidth(
    copy_mbytes * 2**20, repeats=repeats, threads=torch.get_num_threads()
)
llc_bytes = bandwidth["llc_bytes"]
show_table(
    ["copy_ (GB/s, median)", "fastest call", "clone (GB/s)", "threads", "buffers", "last-level cache"],
    [[f"{bandwidth['copy_gbps']:.1f}", f"{bandwidth['copy_gbps_best']:.1f}", f"{bandwidth['clone_gbps']:.1f}",
      bandwidth["threads"], f"2 x {bandwidth['n_bytes'] / 2**20:.0f} MiB",
      f"{llc_bytes / 2**20:.0f} MiB" if llc_bytes else "size unknown"]],
)  # fmt: skip

# %% [markdown]
# ## One variable at a time
#
# Every configuration equals the base setting except for the swept variable. Each call of
# `compare_paths` writes a fresh table, checks the library results against the canonical
# ones, then times hash, canonical and library read and write (see `bbpm.bench`).

# %%
base = dict(D=D, d=d, K=K, H=H, B=B, dtype=dtype)
sweeps = {"K": K_values, "D": D_values, "d": d_values, "B": B_values, "dtype": dtypes}
configs = write_read.one_at_a_time(base, sweeps)
cache: dict[tuple, dict] = {}
rows = []
for sweep, value, cfg in progress(configs):
    key = tuple(sorted(cfg.items()))
    if key not in cache:
        cache[key] = bbpm_bench.compare_paths(
            D=cfg["D"], d=cfg["d"], K=cfg["K"], H=cfg["H"], B=cfg["B"],
            dtype=bbpm_bench.DTYPES[cfg["dtype"]], repeats=repeats, seed=seed,
            hash_fn=GlobalAffineHash(cfg["D"], seed=seed),
        )  # fmt: skip
    rows.append({"sweep": sweep, "value": value, **cache[key]})
base_result = rows[0]

# %% [markdown]
# Collision diagnostics of the base batch (B keys, K*H slots each) for the record: at this
# load few slots are shared, so the timings are not those of a degenerate index set.

# %% tags=["hide-input"]
keys, _ = bbpm_bench.make_inputs(B, d, seed=seed)
hash_stats = diagnostics.summarize(GlobalAffineHash(D, seed=seed).indices(keys, K, H), D)
show_table(
    list(hash_stats), [[f"{v:.6g}" if isinstance(v, float) else v for v in hash_stats.values()]]
)

# %% [markdown]
# The timed writes keep adding the same batch into one table (`compare_paths`: one write for
# the correctness check, then `1 + repeats` rounds of the canonical and the library write). In
# float16 and bfloat16 storage that takes the busiest slots past the writes per slot up to
# which their sums are guaranteed within 1% (`bbpm.memory.base.low_precision_write_limit`;
# a memory raises `LowPrecisionWarning` there): the dtype panel times these writes, and its
# "relative write difference" compares the canonical and the library path after one write.
# Busiest slot of the base batch: {glue:text}`low_precision_writes_per_slot` writes;
# limits {glue:text}`low_precision_limits`; {glue:text}`low_precision_passed`.

# %% tags=["hide-input"]
from bbpm.memory.base import low_precision_write_limit  # noqa: E402

hits = GlobalAffineHash(D, seed=seed).indices(keys, K, H).reshape(-1).bincount(minlength=D)
writes_per_slot = int(hits.max()) * (1 + 2 * (1 + repeats))
limits = {t: low_precision_write_limit(bbpm_bench.DTYPES[t]) for t in dtypes}
limits = {t: limit for t, limit in limits.items() if limit is not None}
passed = [t for t, limit in limits.items() if writes_per_slot > limit]
exp.record("low_precision_writes_per_slot", writes_per_slot, ",d",
           "writes into the busiest slot of the base batch over the timed write calls")  # fmt: skip
exp.record("low_precision_limits", ", ".join(f"{t} {n}" for t, n in limits.items()) or "none swept", "",
           "writes per slot up to which float16/bfloat16 sums stay within 1%")  # fmt: skip
_ = exp.record("low_precision_passed", (f"the timed writes pass the limit of {', '.join(passed)}: those timings "
               "are of writes past it, not of sums within 1%") if passed else "the timed writes stay within every limit",
               "", "whether the benchmark's timed writes pass the low-precision write limit")  # fmt: skip

# %% tags=["hide-input"]
# time a memory-bound op needs at the copy bandwidth: the floor drawn beside the data
write_read.add_copy_floors(rows, bandwidth["copy_gbps"])
targets = {
    **{f"{op}_{kind}": base_result[f"{op}_{kind}"] for op in ("read", "write") for kind in ("speedup", "e2e_speedup")},
    "read_target": bbpm_bench.READ_TARGET,
    "write_target": bbpm_bench.WRITE_TARGET,
    "read_target_met": base_result["read_speedup"] >= bbpm_bench.READ_TARGET,
    "write_target_met": base_result["write_speedup"] >= bbpm_bench.WRITE_TARGET,
    "max_rel_error_fp32": max(max(r["read_rel_error"], r["write_rel_error"]) for r in rows if r["dtype"] == "float32"),
    "counts_equal_everywhere": all(r["counts_equal"] for r in rows),
}  # fmt: skip
metrics_json = exp.save_metrics(
    {
        "threads": torch.get_num_threads(),
        "load_average_1min": bbpm_bench.load_average(),
        "copy_bandwidth": bandwidth,
        "hash_diagnostics_base": hash_stats,
        "base": base_result,
        "targets": targets,
        "rows": rows,
    }
)
raw_csv = exp.save_raw(rows)

# %% [markdown]
# ## Time per op against each variable
#
# Solid lines: the canonical ops; dashed: the library paths; dotted grey: the time the op's
# minimum memory traffic takes at the measured copy bandwidth (`bbpm.bench.traffic_bytes`:
# the gathered or read-modified-written rows, counts and slot ids). Hashing is not included
# here (it is the same for both paths; see the split below).

# %% tags=["hide-input"]
metrics = exp.load_metrics()
result_rows = metrics["rows"]
fig = write_read.time_vs_variables_figure(
    result_rows,
    ["K", "D", "d", "B", "dtype"],
    f"BBPM read/write time, base D={D:,} d={d} K={K} H={H} B={B} {dtype}, {metrics['threads']} threads, "
    f"copy bandwidth {metrics['copy_bandwidth']['copy_gbps']:.1f} GB/s",
)
time_png = exp.save_figure(fig, "time_vs_variables.png")

# %% [markdown]
# ## Where the time goes
#
# Each op = hashing the keys to their $KH$ slots + the memory kernel; the label on each bar
# gives hashing's share of hash + kernel.

# %% tags=["hide-input"]
b = metrics["base"]
title = f"Split at the base setting (B={B}, K*H={K * H}, {metrics['threads']} threads)"
split_png = exp.save_figure(write_read.time_split_figure(b, title), "time_split.png")

# %% [markdown]
# ## Discussion
#
# At the base setting the library read takes {glue:text}`read_fast_ms` ms against
# {glue:text}`read_canonical_ms` ms for the canonical read: {glue:text}`read_speedup`x (target
# {glue:text}`read_target`x: {glue:text}`read_target_verdict`; with hashing on both sides
# {glue:text}`read_e2e_speedup`x). The library write takes {glue:text}`write_fast_ms` ms against
# {glue:text}`write_canonical_ms` ms: {glue:text}`write_speedup`x (target
# {glue:text}`write_target`x: {glue:text}`write_target_verdict`; end to end
# {glue:text}`write_e2e_speedup`x).
#
# Hashing takes {glue:text}`hash_ms` ms per call: {glue:text}`read_hash_share` of a library
# read's hash + kernel and {glue:text}`write_hash_share` of a library write's. The largest relative
# difference from the canonical result over all float32 runs is
# {glue:text}`max_rel_error_fp32`; the counts are identical in every run:
# {glue:text}`counts_equal`. {glue:text}`busy_note`

# %% tags=["hide-input"]
t, fm = (
    metrics["targets"],
    bbpm_bench.format_ms,
)  # 3 significant digits: printed times give printed ratios
rec = exp.record
for op in ("read", "write"):
    rec(f"{op}_fast_ms", fm(b[f"{op}_fast_median_s"]), "", f"library {op}, ms per call (median)")
    rec(f"{op}_canonical_ms", fm(b[f"{op}_canonical_median_s"]), "", f"canonical {op}, ms per call")
    rec(f"{op}_speedup", t[f"{op}_speedup"], ".2f", f"library over canonical {op}")
    rec(f"{op}_speed_words", bbpm_bench.speed_words(t[f"{op}_speedup"], f"the canonical {op}"), "",
        f"library {op} against the canonical one, in words")  # fmt: skip
    rec(
        f"{op}_e2e_speedup",
        t[f"{op}_e2e_speedup"],
        ".2f",
        f"{op} speedup with hashing on both sides",
    )
    rec(f"{op}_target", t[f"{op}_target"], ".0f", f"{op} speedup target")
    rec(f"{op}_target_verdict", "met" if t[f"{op}_target_met"] else "NOT met", "", f"{op} target")
    rec(f"{op}_hash_share", b[f"{op}_hash_share_fast"], ".0%", f"hashing's share of a library {op}")
rec("hash_ms", fm(b["hash_median_s"]), "", "hashing, ms per call")
rec("max_rel_error_fp32", t["max_rel_error_fp32"], ".1e", "largest relative error, float32")
rec(
    "counts_equal",
    "yes" if t["counts_equal_everywhere"] else "no",
    "",
    "counts identical in every run",
)
load = max(metrics["load_average_1min"] or 0, b["load_average_1min"] or 0)
_ = rec(
    "busy_note",
    bbpm_bench.busy_machine_note(load, metrics["threads"]),
    "",
    "machine load during the timings",
)

# %% [markdown]
# Speedups over the swept $K$ and $B$, and the library paths by storage dtype:

# %% tags=["hide-input"]
sweep_table = []
for name in ("K", "B"):
    for r in (r for r in result_rows if r["sweep"] == name):
        sweep_table.append(
            [f"{name} = {r['value']}", f"{r['read_speedup']:.2f}x", f"{r['write_speedup']:.2f}x"]
        )
show_table(["setting", "read speedup", "write speedup"], sweep_table)
dtype_rows = [r for r in result_rows if r["sweep"] == "dtype"]
show_table(["dtype", "library read (ms)", "library write (ms)", "relative write difference"],
           [[r["value"], fm(r["read_fast_median_s"]), fm(r["write_fast_median_s"]), f"{r['write_rel_error']:.1e}"]
            for r in dtype_rows])  # fmt: skip

# %% [markdown]
# **Against the copy roof.** Time of each op over the time its minimum traffic takes at the
# copy bandwidth (below 1x: faster than the copy roof): {glue:text}`floor_ratios`.
# {glue:text}`roof_verdict`

# %% tags=["hide-input"]
copy = metrics["copy_bandwidth"]
elem = torch.tensor([], dtype=bbpm_bench.DTYPES[dtype]).element_size()
counts_elem = torch.tensor([], dtype=counts_dtype_for(bbpm_bench.DTYPES[dtype])).element_size()
row_bytes = d * elem
working_set = D * (row_bytes + counts_elem)
floor_ratio = {f"{op} {write_read.PATH_LABELS[path]}": b[f"{op}_{path}_median_s"] / b[f"{op}_floor_s"]
               for op in ("read", "write") for path in ("fast", "canonical")}  # fmt: skip
verdict = []
beat = [name for name, ratio in floor_ratio.items() if ratio < 1]
if beat:
    reason = bbpm_bench.beyond_copy_reason(working_set, copy["llc_bytes"], metrics["hash_diagnostics_base"]["collision_rate"])  # fmt: skip
    verdict.append(f"{', '.join(beat)} beat the copy roof: {reason}.")
slow_fast = [f"{op} library" for op in ("read", "write") if floor_ratio[f"{op} library"] >= 1]
if slow_fast:
    verdict.append(f"{' and '.join(slow_fast)} stay above the floor: gathering random {row_bytes}-byte rows "
                   f"(d = {d} x {elem} bytes) is not a streaming copy.")  # fmt: skip
for op in ("read", "write"):
    fast_r, canon_r = floor_ratio[f"{op} library"], floor_ratio[f"{op} canonical"]
    verdict.append(
        f"The canonical {op} is further off ({canon_r:.2f}x vs {fast_r:.2f}x): it also writes and re-reads its B*K*H*d temporary."
        if canon_r > fast_r else f"The canonical {op} is not further off than the library one here ({canon_r:.2f}x vs {fast_r:.2f}x)."
    )  # fmt: skip
exp.record("floor_ratios", ", ".join(f"{n} {r:.2f}x" for n, r in floor_ratio.items()), "", f"time / minimum traffic at {copy['copy_gbps']:.1f} GB/s")  # fmt: skip
_ = exp.record("roof_verdict", " ".join(verdict), "", "ops against the copy roof")


# %% [markdown]
# ## Records for the paper
#
# The numbers the paper quotes, read from this run's `metrics.json` and recorded by name
# (`results/bench01_write_read/records.json`); a number this run did not produce is not recorded, and the
# paper shows a placeholder for it.

# %% tags=["hide-input"]
from bbpm.paper import record_metric  # noqa: E402

paper_metrics = exp.load_metrics()
pm = paper_metrics
record_metric(
    exp,
    "read_speedup",
    lambda: pm["targets"]["read_speedup"],
    ".1f",
    "library read over the canonical read",
)
record_metric(
    exp,
    "write_speedup",
    lambda: pm["targets"]["write_speedup"],
    ".1f",
    "library write over the canonical write",
)
record_metric(
    exp,
    "copy_gbps",
    lambda: pm["copy_bandwidth"]["copy_gbps"],
    ".1f",
    "measured copy bandwidth (GB/s)",
)
_ = record_metric(exp, "threads", lambda: pm["threads"], "d", "CPU threads")
