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
# reports $T^\ast$ from the data. The model's shapes are this run's parameters
# (`params/exp04.yaml` for the full run): {glue:text}`model_shape`.
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

# %% tags=["hide-input"]
import torch

from bbpm import BBPMMemoryFloat, BlockPermutationHash
from bbpm.experiments import kv_scaling
from bbpm.utils import Experiment, progress, rss_bytes
from bbpm.utils.memory_stats import (
    available_ram_bytes,
    crossing,
    release_freed_memory,
    storage_bytes,
)

exp = Experiment.from_notebook("exp04_kv_memory_scaling", "notebooks/exp04.py", globals())
GB = 1e9
KV_DTYPE, BBPM_DTYPE = getattr(torch, kv_dtype), getattr(torch, bbpm_dtype)
HAS_CUDA = torch.cuda.is_available()
exp.record(
    "model_shape",
    f"{layers} layers × {heads} heads × head dimension {head_dim}, batch {batch}, {kv_dtype} "
    f"KV cache; BBPM with D = {bbpm_D:,} slots of d = {bbpm_d} {bbpm_dtype} values",
    "",
    "the model shape of the KV cache and the BBPM table",
)


def make_bbpm(device: str = "cpu") -> BBPMMemoryFloat:
    hash_fn = BlockPermutationHash(bbpm_D, block_size=bbpm_block_size, seed=seed)
    return BBPMMemoryFloat(bbpm_D, bbpm_d, 1, 1, hash_fn, dtype=BBPM_DTYPE, device=device)


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

# %% [markdown]
# ## Measured allocations
#
# The BBPM buffers are those of a real `BBPMMemoryFloat` (`memory [D, d]`, `counts [D, 1]`).
# For each $T$ the KV cache is allocated as one static cache tensor
# `[layers, 2 (K and V), batch, heads, T, head_dim]` and zero-filled: Linux commits pages only
# when they are touched, so an untouched `torch.empty` would not show in the resident memory.
# Caches above `measure_cap_gb` are not allocated (analytic only), which keeps the run within
# the machine's RAM. On a GPU the same tensors are allocated with CUDA and measured with
# `torch.cuda.max_memory_allocated`. Every measured size is asserted equal to the analytic one.


# %%
rss_before = rss_bytes()
bbpm_memory = make_bbpm()
bbpm_rss_growth = None if rss_before is None else rss_bytes() - rss_before
bbpm_bytes_storage = storage_bytes(bbpm_memory.memory, bbpm_memory.counts)
assert bbpm_bytes_storage == bbpm_bytes_analytic, (bbpm_bytes_storage, bbpm_bytes_analytic)
del bbpm_memory
release_freed_memory()
bbpm_cuda_peak = kv_scaling.cuda_peak_bytes(lambda: make_bbpm("cuda")) if HAS_CUDA else None

rows = []
for T, kv_analytic in zip(progress(T_grid), kv_bytes_analytic, strict=True):
    row = {"T": T, "kv_bytes_analytic": kv_analytic, "bbpm_bytes_analytic": bbpm_bytes_analytic}
    if kv_analytic <= measure_cap_gb * GB:
        row.update(
            kv_scaling.measure_kv_cache((layers, 2, batch, heads, T, head_dim), KV_DTYPE, HAS_CUDA)
        )
        assert row["kv_bytes_storage"] == kv_analytic, (T, row["kv_bytes_storage"], kv_analytic)
    rows.append(row)
release_freed_memory()
n_measured = sum("kv_bytes_storage" in row for row in rows)

# %% [markdown]
# ## Where the KV cache overtakes BBPM
#
# $T^\ast$ is read off the data: the first grid point where the KV bytes (measured where
# measured, analytic beyond the cap) exceed the measured BBPM bytes, refined by linear
# interpolation between the two grid points around the crossing. The memory limit is the
# largest $T$ whose KV cache fits in the memory this machine had free (the "OOM point").

# %%
kv_bytes_best = [row.get("kv_bytes_storage", row["kv_bytes_analytic"]) for row in rows]
crossover_grid_T, crossover_T = crossing(T_grid, kv_bytes_best, bbpm_bytes_storage)
crossover_T_closed_form = bbpm_bytes_storage / kv_bytes_per_token
if HAS_CUDA:
    memory_limit_bytes, memory_limit_source = torch.cuda.mem_get_info()[1], "CUDA device total"
else:
    memory_limit_bytes, memory_limit_source = available_ram_bytes(), "CPU RAM available"
max_T_fits = None if memory_limit_bytes is None else int(memory_limit_bytes // kv_bytes_per_token)

raw_csv = exp.save_raw(rows)
metrics_json = exp.save_metrics(
    {
        "T": T_grid,
        "kv_bytes_per_token": kv_bytes_per_token,
        "kv_bytes_analytic": kv_bytes_analytic,
        **{key: [row.get(key) for row in rows] for key in ("kv_bytes_storage", "kv_rss_growth_bytes", "kv_cuda_peak_bytes")},
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
)  # fmt: skip

# %% [markdown]
# ## Figure
#
# Drawn from `results/exp04_kv_memory_scaling/metrics.json`: lines are the analytic sizes,
# markers the measured allocations.

# %% tags=["hide-input"]
m = exp.load_metrics()
figure_png = exp.save_figure(kv_scaling.kv_memory_figure(m), "kv_vs_bbpm_memory.png")

# %% [markdown]
# ## What the run shows
#
# The KV cache grows in proportion to $T$, {glue:text}`kv_mib_per_token` MiB per token
# ({glue:text}`kv_gb_last` GB at $T$ = {glue:text}`t_last`), and the allocator hands out
# exactly the analytic bytes at every measured $T$ (the notebook asserts it;
# {glue:text}`n_t_measured` of {glue:text}`n_t` context lengths measured, caches up to
# `measure_cap_gb`; larger ones analytic). BBPM's buffers stay at
# {glue:text}`bbpm_gb` GB at every $T$: $D \cdot d$ values plus float32 counts.
#
# **Crossover.** {glue:text}`crossover_sentence`
#
# **Memory limit.** {glue:text}`memory_limit_sentence` GPU peak allocations were
# {glue:text}`cuda_measured` in this run.
#
# The price of the constant size is fidelity: reads are lossy as the load grows (exp01).

# %% tags=["hide-input"]
hp = m["hyperparameters"]
rec = exp.record
rec("kv_mib_per_token", m["kv_bytes_per_token"] / 2**20, ".3f", "KV cache MiB per token")
rec("kv_gb_last", m["kv_bytes_analytic"][-1] / GB, ".2f", "KV cache GB at the largest T")
rec("t_last", m["T"][-1], ",d", "largest context length of the grid")
rec("n_t_measured", m["n_T_measured"], "d", "context lengths with measured allocations")
rec("n_t", len(m["T"]), "d", "context lengths on the grid")
rec("bbpm_gb", m["bbpm_bytes_storage"] / GB, ".3f", "BBPM memory GB (storage)")
rec("crossover_t_closed_form", m["crossover_T_closed_form"], ",.0f", "T* in closed form")
t_star = None
if m["crossover_T_interpolated"] is not None:
    t_star = rec(
        "crossover_t", m["crossover_T_interpolated"], ",.0f", "T* interpolated from the data"
    )
rec("crossover_sentence", kv_scaling.crossover_sentence(m, t_star), "",
    "where the KV cache overtakes BBPM")  # fmt: skip
rec("memory_limit_sentence", kv_scaling.memory_limit_sentence(m), "",
    "largest T whose KV cache fits in free memory")  # fmt: skip
_ = rec(
    "cuda_measured",
    "measured" if m["cuda_measured"] else "not measured (no CUDA device)",
    "",
    "GPU peaks",
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
_ = record_metric(
    exp,
    "kv_kb_per_token",
    lambda: pm["kv_bytes_per_token"] / 1e3,
    ",.0f",
    "KV-cache bytes per token (kB)",
)
