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
# # exp05: Needle in a haystack
#
# **Claim.** A BBPM memory recalls an item written long ago as well as one written just now:
# every write lands in the same fixed table with the same weight, so recall depends on the
# load $\lambda = NKH/D$, not on how far back the item is. A sliding window that keeps the last
# $W$ items exactly (an LLM's context window, or a FIFO cache) is perfect inside the window and
# blind outside it. So as the stream grows past $W$, the window's success falls towards chance
# ($1/C$ for a codebook of $C$ = {glue:text}`codebook_size` values) while BBPM's degrades slowly
# with the load: in this run its success {glue:text}`success_decline`.
#
# **Task.** Stream $N$ key/value pairs. Each key $i = 0, 1, \dots, N-1$ (its position in the
# stream) gets a random value id out of $C$; the value written is row `id` of a fixed random
# unit codebook `[C, d]`. Then query a seeded random subset of the $N$ keys plus the first
# `n_needles` keys of the stream (the oldest "needles"). A query **succeeds** when the top-1
# cosine decode of the read vector against the codebook returns the true id (chance: $1/C$).
# We also report the mean cosine between the read and the true code.
#
# **Values from a codebook.** A codebook of $C$ random unit rows has a nonzero mean
# $\mu$ (norm about $1/\sqrt C$). Every slot holds about $\lambda$ values drawn from it, so
# its crosstalk carries about $\lambda\mu$, the same vector in all $K$ slots of an item: unlike
# the random part of the crosstalk it does not average out over the slots, and at high load
# it pulls every read towards the codewords closest to $\mu$. Centring the codebook (subtract
# the mean row, renormalise) removes it. The notebook runs the stream twice, into two memories
# with the same hash: values from the **centred** codebook (the main result, labelled BBPM)
# and from the **raw** codebook, to measure this effect instead of assuming it.
#
# **Baselines.** *Window $W$*: remembers the last $W$ items exactly; outside the window it
# **guesses a value id uniformly at random** (it does not abstain), so its success there is
# chance, $1/C$ (the guesses are drawn, not assumed). *Equal-memory window*: the same, with
# $W$ set to the number of exact items (a float32 $d$-vector plus an int64 key each) that fit
# in the bytes of the BBPM table (memory plus counts).
#
# **Setup.** Defaults in `params/exp05.yaml`; the cell after the parameters shows this run's
# settings: $D$ slots, value dimension $d$, $K$ slots per hash, $H$ hashes, block hashing
# (`BlockPermutationHash`, block size $L$), codebook size $C$, window $W$, the checkpoints $N$
# and the load they reach. The prototype used $D = 10^8$; a much smaller table keeps the run
# short on a CPU and makes the failure regime visible within the streamed $N$. The stream is
# written once, incrementally, and queried at each checkpoint $N$.

# %% tags=["parameters"]
seed = 0
D = 262144
d = 64
K = 32
H = 1
block_size = 4096
n_values = 1024
N_values = [1000, 3000, 10000, 30000, 100000, 300000, 1000000]
n_queries = 2000
n_needles = 10
window = 4096
n_position_queries = 20000
n_position_bins = 16
needle_key = 42
haystack_start = 1000
batch_size = 20000

# %% tags=["hide-input"]
import numpy as np
import torch

from bbpm import BBPMMemoryFloat, BlockPermutationHash
from bbpm.baselines.decode import random_codebook
from bbpm.experiments import needle
from bbpm.hashing import diagnostics
from bbpm.theory.snr_bounds import expected_cosine
from bbpm.utils import Experiment, progress, show_table

exp = Experiment.from_notebook("exp05_needle_haystack", "notebooks/exp05.py", globals())
needle.check_stream_params(N_values, n_needles, needle_key, haystack_start)
hash_fn = BlockPermutationHash(D, block_size=block_size, seed=seed)
raw_codebook = random_codebook(n_values, d, seed=seed)
codebooks = {"centred": needle.centred_codebook(raw_codebook), "raw": raw_codebook}
memories = {name: BBPMMemoryFloat(D, d, K, H, hash_fn) for name in codebooks}
memory = memories["centred"]
N_max = N_values[-1]
value_ids = torch.randint(n_values, (N_max,), generator=torch.Generator().manual_seed(seed + 1))
window_equal_memory = needle.exact_window_items(memory.nbytes, d)
windows = {
    f"window W={window:,}": window,
    f"equal-memory window W={window_equal_memory:,}": window_equal_memory,
}
show_table(
    ["D", "d", "K", "H", "L", "C", "W", "equal-memory W", "table MiB", "load λ"],
    [[f"{D:,}", d, K, H, block_size, n_values, f"{window:,}", f"{window_equal_memory:,}",
      f"{memory.nbytes / 2**20:.1f}", f"{N_values[0] * K * H / D:.2f} to {N_max * K * H / D:.1f}"]],
)  # fmt: skip

# %% [markdown]
# ## Querying
#
# One query set per checkpoint: the `n_needles` oldest keys plus a seeded random sample of all
# written keys. The same query set scores BBPM and both windows. For a window, an item is
# remembered iff its position is among the last $W$; otherwise the window's answer is a
# uniform random id drawn from its own seeded generator (`needle.NeedleStream.window`). The
# centred memory is read with two rules: the count-debiased read and the inverse-noise rule
# of exp09 (same table, same bytes).

# %%
stream = needle.NeedleStream(
    memories,
    codebooks,
    readers={  # variant -> (memory / codebook, read rule)
        "centred": ("centred", "debiased"),
        "raw": ("raw", "debiased"),
        "centred_inverse_noise": ("centred", "inverse_noise"),
    },
    value_ids=value_ids,
    guess_gen=torch.Generator().manual_seed(seed + 2),
)

# %% [markdown]
# ## The stream
#
# Write the stream in batches; at each checkpoint $N$ query, score and record the collision
# diagnostics (`bbpm.hashing.diagnostics.summarize`) of the slots of all $N$ written keys. The
# *age* of an item is $N - \text{position}$ (1 for the last item written, $N$ for the first);
# the window of size $W$ holds exactly the items of age $\le W$. At the largest $N$ a second,
# larger query set samples ages log-uniformly from $1$ to $N$ (duplicates dropped, so every
# queried item counts once), so old and recent items are both well represented.


# %%
def theory_and_collisions(N: int) -> dict:
    return {
        "load": N * K * H / D,
        "expected_cosine_theory": expected_cosine(N, D, K, H, d, block_size=block_size),
        "expected_cosine_theory_inverse_noise": expected_cosine(
            N, D, K, H, d, block_size=block_size, read_rule="inverse_noise"
        ),
        "collision": diagnostics.summarize(hash_fn.indices(torch.arange(N), K, H), D),
    }


rows, checkpoints, write_seconds = needle.run_checkpoints(
    stream, progress(N_values, desc="checkpoints N"), n_queries, n_needles, windows,
    batch_size, seed, extra=theory_and_collisions,
)  # fmt: skip
write_items_per_s = len(codebooks) * N_max / write_seconds

# success against age at the largest N (age 1 = the last item written)
ages = needle.log_uniform_ages(n_position_queries, N_max, torch.Generator().manual_seed(seed + 3))
positions = N_max - ages
age_bins = needle.age_bins(
    ages,
    {name: stream.query(name, positions)[0] for name in stream.readers},
    {name: stream.window(positions, N_max, W) for name, W in windows.items()},
    N_max,
    n_position_bins,
)

# %% [markdown]
# ## The prototype's single-needle test
#
# Clear the (centred) memory, write one needle (key `needle_key`, a random unit vector), then a
# haystack of random unit vectors under keys `haystack_start, haystack_start + 1, ...`, and read
# the needle back after each haystack size in `N_values`. One needle gives one noisy cosine
# per size; the theory line (expected cosine at $N$ = haystack + 1) and the main stream's
# mean cosine show where a typical item lies.

# %%
needle_curve = needle.single_needle_curve(
    memory, needle_key, haystack_start, progress(N_values, desc="haystack size"), batch_size,
    torch.Generator().manual_seed(seed + 4),
    theory=lambda n: expected_cosine(n, D, K, H, d, block_size=block_size),
)  # fmt: skip
raw_csv = exp.save_raw(rows)
metrics_json = exp.save_metrics(
    {
        "hash": hash_fn.config(),
        "codebook_mean_norm": {
            name: float(book.mean(dim=0).norm()) for name, book in codebooks.items()
        },
        "memory_bytes": memory.nbytes,
        "bytes_per_exact_item": d * 4 + needle.BYTES_PER_EXACT_ITEM_KEY,
        "windows": windows,
        "chance": 1.0 / n_values,
        "checkpoints": checkpoints,
        "age_bins_N": N_max,
        "age_bins": age_bins,
        "single_needle": needle_curve,
        "write_items_per_s": write_items_per_s,
    }
)

# %% [markdown]
# ## Figure
#
# Drawn from `results/exp05_needle_haystack/metrics.json` (`needle.needle_figure`). Error
# bars: one standard error of the success rate over the queries.

# %% tags=["hide-input"]
m = exp.load_metrics()
hp, cp, ab, nc = m["hyperparameters"], m["checkpoints"], m["age_bins"], m["single_needle"]
figure_png = exp.save_figure(needle.needle_figure(m), "needle_accuracy.png")

# %% [markdown]
# ## What the run shows
#
# Per checkpoint: the success of BBPM (centred and raw codebook; the needles are the oldest
# keys) and of both windows, and the mean cosine against the theory for independent values.

# %% tags=["hide-input"]
last = cp[-1]
w_small, w_eq = list(m["windows"])
show_table(
    ["N", "load", "BBPM success", "needles", "mean cos", "theory", "raw success", "raw cos",
     w_small, w_eq],
    [[f"{c['N']:,}", f"{c['load']:.1f}", *(f"{c['bbpm']['centred'][k]:.3f}" for k in
      ("success", "needle_success", "mean_cos")), f"{c['expected_cosine_theory']:.3f}",
      f"{c['bbpm']['raw']['success']:.3f}", f"{c['bbpm']['raw']['mean_cos']:.3f}",
      *(f"{c['window_success'][w]:.3f}" for w in (w_small, w_eq))] for c in cp],
)  # fmt: skip
print(
    "norm of the mean codeword: "
    + ", ".join(f"{k} {v:.4f}" for k, v in m["codebook_mean_norm"].items())
)
age = needle.age_comparison(ab, hp["window"])
age_verdict = (
    "not measured (no age bin on both sides of the window)" if age is None else age["verdict"]
)
if age is not None:
    print(
        f"At N = {m['age_bins_N']:,}, BBPM success on items older than W = {hp['window']:,}: "
        f"{age['p_old']:.3f} ({age['n_old']:,} items) vs {age['p_recent']:.3f} on recent ones "
        f"({age['n_recent']:,}); recent minus old {age['p_recent'] - age['p_old']:+.3f} +- {2 * age['se']:.3f} "
        f"(2 s.e.). The window scores {needle.pooled(age['recent'], lambda b: b['window_success'][w_small])[0]:.3f} "
        f"inside and {needle.pooled(age['old'], lambda b: b['window_success'][w_small])[0]:.3f} outside."
    )  # fmt: skip
exp.record(
    "age_verdict", age_verdict, "", "old vs recent items: BBPM success difference within 2 s.e.?"
)
print(
    f"Single needle: cosine {nc[0]['needle_cos']:.3f} after {nc[0]['haystack']:,} noise items and "
    f"{nc[-1]['needle_cos']:.3f} after {nc[-1]['haystack']:,} (theory {nc[-1]['expected_cosine_theory']:.3f})."
    f" Write speed {m['write_items_per_s']:,.0f} items/s over the stream (shared CPU)."
)

# %% [markdown]
# ## The read rule
#
# The centred memory is read twice at every checkpoint: with the count-debiased read (the
# main result above) and with the inverse-noise rule of exp09. Same table, same writes, same
# bytes.

# %% tags=["hide-input"]
for variant, tag in (("centred", "debiased"), ("centred_inverse_noise", "inverse_noise")):
    exp.record(f"success_final_{tag}", last["bbpm"][variant]["success"], ".3f",
               f"top-1 success of the {tag} read at the largest N")  # fmt: skip
    exp.record(f"cos_final_{tag}", last["bbpm"][variant]["mean_cos"], ".3f",
               f"mean cosine of the {tag} read at the largest N")  # fmt: skip
    below = needle.first_below(cp, variant)
    exp.record(f"first_n_below_90_{tag}", "no checkpoint" if below is None else below["N"], "" if below is None else ",d",
               f"first checkpoint N where the {tag} read falls below 90% success")  # fmt: skip
exp.record("n_final", last["N"], ",d", "largest N of the stream")
exp.record("success_decline", needle.decline_sentence(cp, "centred"), "",
           "where the debiased read's success first falls below 90%, and its last success")  # fmt: skip
exp.record("inverse_noise_success_verdict",
           needle.success_gain_sentence(cp, "centred_inverse_noise", "centred"), "",
           "what the inverse-noise read does to the success over the checkpoints")  # fmt: skip
exp.record("success_final_equal_memory_window", last["window_success"][w_eq], ".3f",
           "success of the equal-memory window at the largest N")  # fmt: skip
gaps = [c["bbpm"]["centred_inverse_noise"]["success"] - c["bbpm"]["centred"]["success"] for c in cp]
best = int(np.argmax(gaps))
exp.record("inverse_noise_gain_max", gaps[best], "+.3f",
           "largest success gain of inverse noise over debiased")  # fmt: skip
exp.record("inverse_noise_gain_max_n", cp[best]["N"], ",d", "checkpoint N of that largest gain")
exp.record("inverse_noise_gain_min", min(gaps), "+.3f",
           "smallest (most negative) success gain over the checkpoints")  # fmt: skip
cos_gaps = [
    c["bbpm"]["centred_inverse_noise"]["mean_cos"] - c["bbpm"]["centred"]["mean_cos"] for c in cp
]
best_cos = int(np.argmax(cos_gaps))
exp.record("inverse_noise_cos_gain_max", cos_gaps[best_cos], "+.3f",
           "largest mean-cosine gain of inverse noise over debiased")  # fmt: skip
exp.record("inverse_noise_cos_gain_max_n", cp[best_cos]["N"], ",d",
           "checkpoint N of that largest cosine gain")  # fmt: skip
_ = exp.record(
    "inverse_noise_cos_gain_max_load", cp[best_cos]["load"], ".1f", "load of that checkpoint"
)

# %% [markdown]
# At the largest $N$ = {glue:text}`n_final` the debiased read decodes
# {glue:text}`success_final_debiased` of the queries (mean cosine {glue:text}`cos_final_debiased`)
# and the inverse-noise read {glue:text}`success_final_inverse_noise` (mean cosine
# {glue:text}`cos_final_inverse_noise`); the equal-memory window
# {glue:text}`success_final_equal_memory_window`. First checkpoint below 90% success: debiased
# read {glue:text}`first_n_below_90_debiased`, inverse-noise read
# {glue:text}`first_n_below_90_inverse_noise`. Over the checkpoints the inverse-noise read
# {glue:text}`inverse_noise_success_verdict`. Its mean cosine gains at most
# {glue:text}`inverse_noise_cos_gain_max`, at $N$ = {glue:text}`inverse_noise_cos_gain_max_n`
# (load {glue:text}`inverse_noise_cos_gain_max_load`).
#
# Old items against recent ones (older or younger than the window $W$) at the largest $N$:
# BBPM's success difference is {glue:text}`age_verdict`.

# %% [markdown]
# ## Records for the paper
#
# The numbers the paper quotes, read from this run's `metrics.json` and recorded by name
# (`results/exp05_needle_haystack/records.json`); a number this run did not produce is not recorded, and the
# paper shows a placeholder for it.

# %% tags=["hide-input"]
from bbpm.paper import record_metric  # noqa: E402

pm = exp.load_metrics()
last = pm["checkpoints"][-1] if pm.get("checkpoints") else {}
record_metric(exp, "n_max", lambda: last["N"], ",d", "items streamed at the last checkpoint")
record_metric(
    exp, "load_at_n_max", lambda: last["load"], ".2f", "load NKH/D at the last checkpoint"
)
for name in ("centred", "raw"):
    record_metric(exp, f"success_{name}_at_n_max", lambda n=name: last["bbpm"][n]["success"], ".1%",
                  f"BBPM top-1 success at the last checkpoint, {name} codebook")  # fmt: skip
for name in last.get("window_success", {}):
    slug = "window_equal_memory" if "equal" in name else "window"
    record_metric(exp, f"success_{slug}_at_n_max", lambda n=name: last["window_success"][n], ".1%",
                  f"{name}: top-1 success at the last checkpoint")  # fmt: skip
record_metric(exp, "window", lambda: pm["hyperparameters"]["window"], ",d", "window W (items)")
_ = record_metric(
    exp, "codebook_size", lambda: pm["hyperparameters"]["n_values"], ",d", "codebook size C"
)
