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
# # exp04: KV-cache memory vs BBPM memory
#
# **Claim.** A transformer's KV cache grows linearly with the context length $T$,
#
# $$\text{KV bytes}(T) = \text{batch} \cdot \text{layers} \cdot \text{heads} \cdot T \cdot d_\text{head} \cdot 2 \cdot b_\text{KV},$$
#
# with $d_\text{head}$ the head dimension, the 2 for keys and values, and $b$ the bytes per
# element (2 for float16), while a BBPM memory has a fixed size whatever $T$:
#
# $$\text{BBPM bytes} = D \cdot d \cdot b_\text{BBPM} + 4 D \quad \text{(float32 counts)}.$$
#
# So past some context length $T^\ast$ the KV cache is the larger of the two. This notebook
# computes both curves, checks them against real allocations (tensor storage and the growth of
# the process's resident memory on CPU, `torch.cuda.max_memory_allocated` on a GPU), and
# reports $T^\ast$ from the data.
#
# The price of the constant size: BBPM is **lossy**. Items are superposed in $D$ shared slots
# and a read returns the average of everything written to the same slots, so retrieval
# fidelity falls as the load $N K H / D$ grows (exp01). Constant memory buys a bounded,
# approximate store, not an exact replacement for the KV cache.

# %% tags=["parameters"]
seed = 0
layers = 32
heads = 32
head_dim = 128
batch = 1
kv_dtype = "float16"
T_start = 1000
T_stop = 39000
T_step = 2000
bbpm_D = 10000000
bbpm_d = 32
bbpm_block_size = 1000
bbpm_dtype = "float16"
measure_cap_gb = 4.0

# %%
import ctypes
import gc

import matplotlib.pyplot as plt
import torch
from tqdm import tqdm

from bbpm import BBPMMemoryFloat, BlockPermutationHash
from bbpm.utils import Experiment, rss_bytes

params = dict(
    seed=seed,
    layers=layers,
    heads=heads,
    head_dim=head_dim,
    batch=batch,
    kv_dtype=kv_dtype,
    T_start=T_start,
    T_stop=T_stop,
    T_step=T_step,
    bbpm_D=bbpm_D,
    bbpm_d=bbpm_d,
    bbpm_block_size=bbpm_block_size,
    bbpm_dtype=bbpm_dtype,
    measure_cap_gb=measure_cap_gb,
)
exp = Experiment("exp04_kv_memory_scaling", params)
GB = 1e9
KV_DTYPE = getattr(torch, kv_dtype)
BBPM_DTYPE = getattr(torch, bbpm_dtype)
HAS_CUDA = torch.cuda.is_available()


def available_ram_bytes() -> int | None:
    """Memory the OS could still hand to this process."""
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        try:
            with open("/proc/meminfo") as meminfo:
                fields = dict(line.split(":", 1) for line in meminfo)
            return int(fields["MemAvailable"].split()[0]) * 1024
        except (OSError, KeyError):
            return None


def release_freed_memory() -> None:
    """Collect garbage and give freed heap pages back to the OS (glibc), so the next RSS
    reading starts from a clean baseline."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def storage_bytes(*tensors: torch.Tensor) -> int:
    """Bytes of the storage behind the tensors (what the allocator really handed out)."""
    return sum(t.untyped_storage().nbytes() for t in tensors)


print(f"CUDA available: {HAS_CUDA}; RSS readable: {rss_bytes() is not None}")

# %% [markdown]
# ## The analytic model
#
# Both sizes follow from the shapes alone. The KV cache is linear in $T$, so
# $T^\ast = \text{BBPM bytes} / \text{KV bytes per token}$ in closed form; the measurement
# below checks that the allocator hands out exactly these bytes.

# %%
kv_element_bytes = torch.tensor([], dtype=KV_DTYPE).element_size()
bbpm_element_bytes = torch.tensor([], dtype=BBPM_DTYPE).element_size()
kv_bytes_per_token = batch * layers * heads * head_dim * 2 * kv_element_bytes
bbpm_bytes_analytic = bbpm_D * bbpm_d * bbpm_element_bytes + bbpm_D * 4
T_grid = list(range(T_start, T_stop + 1, T_step))
kv_bytes_analytic = [kv_bytes_per_token * T for T in T_grid]
print(
    f"KV cache: {kv_bytes_per_token / 2**20:.3f} MiB per token; T from {T_grid[0]} to {T_grid[-1]}"
)
print(f"BBPM: {bbpm_bytes_analytic / GB:.3f} GB for any T")

# %% [markdown]
# ## Measured allocations
#
# The BBPM buffers are those of a real `BBPMMemoryFloat` (`memory [D, d]`, `counts [D, 1]`).
# For each $T$ the KV cache is allocated as one static cache tensor
# `[layers, 2 (K and V), batch, heads, T, head_dim]` and zero-filled: Linux commits pages only
# when they are touched, so an untouched `torch.empty` would not show in the resident memory.
# Caches above `measure_cap_gb` are not allocated (analytic only), which keeps the run within
# the machine's RAM. On a GPU the same tensors are allocated with CUDA and measured with
# `torch.cuda.max_memory_allocated`.

# %%
rss_before = rss_bytes()
bbpm_memory = BBPMMemoryFloat(
    D=bbpm_D,
    d=bbpm_d,
    K=1,
    H=1,
    hash_fn=BlockPermutationHash(bbpm_D, block_size=bbpm_block_size, seed=seed),
    dtype=BBPM_DTYPE,
)
rss_after = rss_bytes()
bbpm_bytes_storage = storage_bytes(bbpm_memory.memory, bbpm_memory.counts)
bbpm_rss_growth = None if rss_before is None else rss_after - rss_before
assert bbpm_bytes_storage == bbpm_bytes_analytic, (bbpm_bytes_storage, bbpm_bytes_analytic)
del bbpm_memory
release_freed_memory()

bbpm_cuda_peak = None
if HAS_CUDA:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    cuda_base = torch.cuda.memory_allocated()
    bbpm_memory = BBPMMemoryFloat(
        D=bbpm_D,
        d=bbpm_d,
        K=1,
        H=1,
        hash_fn=BlockPermutationHash(bbpm_D, block_size=bbpm_block_size, seed=seed),
        dtype=BBPM_DTYPE,
        device="cuda",
    )
    torch.cuda.synchronize()
    bbpm_cuda_peak = torch.cuda.max_memory_allocated() - cuda_base
    del bbpm_memory
    torch.cuda.empty_cache()
else:
    print("No CUDA device: torch.cuda.max_memory_allocated is not measured in this run.")

print(f"BBPM storage {bbpm_bytes_storage / GB:.3f} GB, RSS growth {bbpm_rss_growth}")

# %%
cap_bytes = measure_cap_gb * GB
rows = []
for T, kv_analytic in zip(
    tqdm(T_grid, desc="KV cache per T", mininterval=5.0), kv_bytes_analytic, strict=True
):
    row = {"T": T, "kv_bytes_analytic": kv_analytic, "bbpm_bytes_analytic": bbpm_bytes_analytic}
    if kv_analytic <= cap_bytes:
        shape = (layers, 2, batch, heads, T, head_dim)
        release_freed_memory()
        before = rss_bytes()
        kv_cache = torch.empty(shape, dtype=KV_DTYPE).zero_()
        after = rss_bytes()
        row["kv_bytes_storage"] = storage_bytes(kv_cache)
        row["kv_rss_growth_bytes"] = None if before is None else after - before
        assert row["kv_bytes_storage"] == kv_analytic, (T, row["kv_bytes_storage"], kv_analytic)
        del kv_cache
        if HAS_CUDA:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            cuda_base = torch.cuda.memory_allocated()
            kv_cache = torch.zeros(shape, dtype=KV_DTYPE, device="cuda")
            torch.cuda.synchronize()
            row["kv_cuda_peak_bytes"] = torch.cuda.max_memory_allocated() - cuda_base
            del kv_cache
            torch.cuda.empty_cache()
    rows.append(row)
release_freed_memory()
n_measured = sum("kv_bytes_storage" in row for row in rows)
print(
    f"measured {n_measured} of {len(rows)} context lengths (cap {measure_cap_gb} GB); the rest analytic"
)

# %% [markdown]
# ## Where the KV cache overtakes BBPM
#
# $T^\ast$ is read off the data: the first grid point where the KV bytes (measured where
# measured, analytic beyond the cap) exceed the measured BBPM bytes, refined by linear
# interpolation between the two grid points around the crossing. The memory limit is the
# largest $T$ whose KV cache fits in the memory this machine had free (the "OOM point").

# %%
kv_bytes_best = [row.get("kv_bytes_storage", row["kv_bytes_analytic"]) for row in rows]
above = [kv > bbpm_bytes_storage for kv in kv_bytes_best]
if not any(above):
    crossover_grid_T, crossover_T = None, None  # KV stays below BBPM on this grid
elif above[0]:
    crossover_grid_T, crossover_T = T_grid[0], None  # crossing lies below the grid
else:
    i = above.index(True)
    crossover_grid_T = T_grid[i]
    T0, T1, kv0, kv1 = T_grid[i - 1], T_grid[i], kv_bytes_best[i - 1], kv_bytes_best[i]
    crossover_T = T0 + (bbpm_bytes_storage - kv0) * (T1 - T0) / (kv1 - kv0)
crossover_T_closed_form = bbpm_bytes_storage / kv_bytes_per_token

if HAS_CUDA:
    memory_limit_bytes, memory_limit_source = torch.cuda.mem_get_info()[1], "CUDA device total"
else:
    memory_limit_bytes, memory_limit_source = available_ram_bytes(), "CPU RAM available"
max_T_fits = None if memory_limit_bytes is None else int(memory_limit_bytes // kv_bytes_per_token)

exp.save_raw(rows)
metrics_path = exp.save_metrics(
    {
        "T": T_grid,
        "kv_bytes_per_token": kv_bytes_per_token,
        "kv_bytes_analytic": kv_bytes_analytic,
        "kv_bytes_storage": [row.get("kv_bytes_storage") for row in rows],
        "kv_rss_growth_bytes": [row.get("kv_rss_growth_bytes") for row in rows],
        "kv_cuda_peak_bytes": [row.get("kv_cuda_peak_bytes") for row in rows],
        "bbpm_bytes_analytic": bbpm_bytes_analytic,
        "bbpm_bytes_storage": bbpm_bytes_storage,
        "bbpm_rss_growth_bytes": bbpm_rss_growth,
        "bbpm_cuda_peak_bytes": bbpm_cuda_peak,
        "n_T_measured": n_measured,
        "crossover_grid_T": crossover_grid_T,
        "crossover_T_interpolated": crossover_T,
        "crossover_T_closed_form": crossover_T_closed_form,
        "memory_limit_bytes": memory_limit_bytes,
        "memory_limit_source": memory_limit_source,
        "max_T_that_fits": max_T_fits,
        "cuda_measured": HAS_CUDA,
    }
)

# %% [markdown]
# ## Figure
#
# Drawn from `results/exp04_kv_memory_scaling/metrics.json`: lines are the analytic sizes,
# markers the measured allocations.

# %%
m = exp.load_metrics()


def measured(key):
    """(T, GB) pairs of a per-T metric, skipping the context lengths not measured."""
    pairs = [(T, b / GB) for T, b in zip(m["T"], m[key], strict=True) if b is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


fig, ax = plt.subplots(figsize=(6.5, 4.5))
ax.plot(
    m["T"], [b / GB for b in m["kv_bytes_analytic"]], "-", color="C0", label="KV cache (analytic)"
)
for key, style, label in [
    ("kv_bytes_storage", dict(marker="o", color="C0"), "KV cache: tensor storage"),
    ("kv_rss_growth_bytes", dict(marker="x", color="C2", ms=8), "KV cache: RSS growth (CPU)"),
    (
        "kv_cuda_peak_bytes",
        dict(marker="s", mfc="none", color="C3", ms=8),
        "KV cache: CUDA max allocated",
    ),
]:
    T_measured, gb_measured = measured(key)
    if T_measured:  # a series with no measured point gets no legend entry
        ax.plot(T_measured, gb_measured, ls="none", label=label, **style)
ax.axhline(
    m["bbpm_bytes_analytic"] / GB,
    color="C1",
    label=f"BBPM D={m['hyperparameters']['bbpm_D']:,} (analytic)",
)
ax.plot(m["T"][0], m["bbpm_bytes_storage"] / GB, "D", color="C1", label="BBPM: tensor storage")
if m["bbpm_cuda_peak_bytes"] is not None:
    ax.plot(
        m["T"][0],
        m["bbpm_cuda_peak_bytes"] / GB,
        "s",
        mfc="none",
        color="C1",
        ms=8,
        label="BBPM: CUDA max allocated",
    )
if m["bbpm_rss_growth_bytes"] is not None:
    ax.plot(
        m["T"][0],
        m["bbpm_rss_growth_bytes"] / GB,
        "x",
        color="C1",
        ms=8,
        label="BBPM: RSS growth (CPU)",
    )
if m["crossover_T_interpolated"] is not None:
    ax.axvline(
        m["crossover_T_interpolated"],
        color="grey",
        ls=":",
        label=f"crossover T* = {m['crossover_T_interpolated']:,.0f}",
    )
if m["max_T_that_fits"] is not None and m["max_T_that_fits"] <= m["T"][-1]:
    ax.axvline(
        m["max_T_that_fits"],
        color="black",
        ls="--",
        label=f"KV no longer fits ({m['memory_limit_source']})",
    )
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("context length T (tokens)")
ax.set_ylabel("memory (GB)")
ax.set_title("KV-cache memory grows with T; BBPM memory is constant")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
exp.save_figure(fig, "kv_vs_bbpm_memory.png")
plt.show()

# %% [markdown]
# ## What the run shows
#
# The KV cache grows in proportion to $T$ and the allocator hands out exactly the analytic
# bytes (the notebook asserts it at every measured $T$); BBPM's buffers stay at $D \cdot d$
# values plus counts. The numbers of this run:

# %%
hp = m["hyperparameters"]
print(
    f"KV cache ({hp['layers']} layers x {hp['heads']} heads x head_dim {hp['head_dim']}, {hp['kv_dtype']}, "
    f"batch {hp['batch']}): {m['kv_bytes_per_token'] / 2**20:.3f} MiB per token, "
    f"{m['kv_bytes_analytic'][-1] / GB:.2f} GB at T = {m['T'][-1]:,}."
)
print(
    f"BBPM (D = {hp['bbpm_D']:,}, d = {hp['bbpm_d']}, {hp['bbpm_dtype']} + float32 counts): "
    f"{m['bbpm_bytes_storage'] / GB:.3f} GB at every T."
)
if m["crossover_T_interpolated"] is not None:
    print(
        f"Crossover: the KV cache is larger from T = {m['crossover_grid_T']:,} on the grid; "
        f"interpolated T* = {m['crossover_T_interpolated']:,.0f} tokens "
        f"(closed form {m['crossover_T_closed_form']:,.0f})."
    )
else:
    print(
        f"Crossover not bracketed by the grid; closed form T* = {m['crossover_T_closed_form']:,.0f} tokens."
    )
print(
    f"Measured {m['n_T_measured']} of {len(m['T'])} context lengths "
    f"(caches up to {hp['measure_cap_gb']} GB); larger ones are analytic."
)
if m["max_T_that_fits"] is not None:
    print(
        f"With {m['memory_limit_bytes'] / GB:.1f} GB ({m['memory_limit_source']}), a KV cache fits up to "
        f"T = {m['max_T_that_fits']:,} tokens; BBPM uses {m['bbpm_bytes_storage'] / m['memory_limit_bytes']:.1%} of it."
    )
if not m["cuda_measured"]:
    print("No CUDA device in this run: GPU max_memory_allocated was not measured.")
print(
    "BBPM's constant size is paid for in fidelity: reads are lossy as the load grows (see exp01)."
)


# %% [markdown]
# ## Records for the paper
#
# The numbers the paper quotes, read from this run's `metrics.json` and recorded by name
# (`results/exp04_kv_memory_scaling/records.json`); a number this run did not produce is not recorded, and the
# paper shows a placeholder for it.

# %% tags=["hide-input"]
from bbpm.paper import record_metric  # noqa: E402

paper_metrics = exp.load_metrics()
pm = paper_metrics
record_metric(exp, "bbpm_gb", lambda: pm["bbpm_bytes_analytic"] / 1e9, ".2f", "BBPM bytes (GB)")
record_metric(
    exp,
    "crossover_tokens",
    lambda: pm["crossover_T_interpolated"],
    ",.0f",
    "context length where the KV cache overtakes BBPM",
)
record_metric(
    exp,
    "kv_kb_per_token",
    lambda: pm["kv_bytes_per_token"] / 1e3,
    ",.0f",
    "KV-cache bytes per token (kB)",
)
