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
# # exp03: Block hashing vs global hashing
#
# **Claim.** Confining each item's $K$ slots to one block of $L$ contiguous slots
# (`BlockPermutationHash`) loses retrieval fidelity against hashing over the whole table
# (`GlobalAffineHash`, default `mixed` mode) at equal $D, N, K, H$ only through the block, and
# `bbpm.theory` predicts how much. With a large block ($L \gg K$; `block_size`) the slot
# loads follow the same Binomial/Poisson law with load $\lambda = NKH/D$, and two items rarely
# share more than one slot; what remains of the loss comes from the block: items in the same
# block share a slot pair more often than over the whole table, and the loads of one block's
# slots move together. Whether that loss is small depends on how fidelity is scored (the
# mean cosine, or the share of items above a cosine threshold): the run measures both.
# Two things hurt a lot, and this notebook measures both rather than assuming them:
#
# * **small blocks** (`small_block_size`, with $K$ a sizeable share $K/L$ of the block; here
#   $K/L$ = {glue:text}`k_over_small_l`): any other item in the same block shares many of its
#   slots. Crosstalk from one neighbour then no longer averages out over the $K$ slots: it is
#   correlated;
# * **the prototype's global formula** `slot = (key * salt + k * 1337) mod D`
#   (`GlobalAffineHash(D, mode="prototype")`): with consecutive integer keys, keys a fixed
#   distance apart share whole runs of slots.
#
# The occupancy statistics need not show this damage. {glue:text}`occupancy_verdict` The
# number of slots an item shares with each colliding neighbour is measured beside them, as the
# quantity that should track the fidelity.
#
# **Setup.** Defaults in `params/exp03.yaml` (the prototype's setting, $D \approx 10^6$ rounded
# to a multiple of the block size); this run: {glue:text}`settings`. In general:
# $D$ slots, split into $D/L$ blocks of $L$ (every hash uses this same $D$), value dimension
# $d$, $K$ slots per hash, $H$ hashes, keys $0..N-1$ (consecutive, as in the prototype), values
# random unit vectors, the checkpoints $N$ and their loads. Fidelity is measured on a seeded
# random subset of $n_\mathrm{eval}$ written keys, for each seed in `hash_seeds` (the
# prototype formula has no seed: its runs differ only in the values).

# %% tags=["parameters"]
seed = 0
D = 1048576
d = 64
K = 32
H = 1
block_size = 4096
small_block_size = 64
N_values = [20000, 50000, 100000, 150000, 200000]
n_eval = 2000
batch_size = 10000
hash_seeds = [0]
hist_N = 100000
cos_threshold = 0.9
timing_rounds = 7

# %% tags=["hide-input"]

import torch

from bbpm import BlockPermutationHash, GlobalAffineHash, Timer
from bbpm.experiments import block_global
from bbpm.theory.collision_model import expected_load_histogram, expected_max_load
from bbpm.theory.snr_bounds import expected_cosine
from bbpm.utils import Experiment, progress, show_table

exp = Experiment.from_notebook("exp03_block_vs_global", "notebooks/exp03.py", globals())
if hist_N not in N_values:
    raise ValueError(f"hist_N must be one of N_values={N_values}, got {hist_N}")
if max(N_values) < n_eval:
    raise ValueError(f"n_eval={n_eval} is larger than the largest N={max(N_values)}; lower n_eval")
# The four addressing schemes, all over the same D slots. Each entry builds the hash for a seed.
HASHES = {
    "global (mixed)": lambda s: GlobalAffineHash(D, seed=s, mode="mixed"),
    f"block L={block_size}": lambda s: BlockPermutationHash(D, block_size=block_size, seed=s),
    f"block L={small_block_size}": lambda s: BlockPermutationHash(D, block_size=small_block_size, seed=s),
    "global (prototype formula)": lambda s: GlobalAffineHash(D, seed=s, mode="prototype"),
}  # fmt: skip
exp.record("k_over_small_l", K / small_block_size, ".3f", "K / L of a small block")
_ = exp.record(
    "settings",
    f"D = {D:,} slots = {D // block_size} blocks of {block_size} = {D // small_block_size} blocks "
    f"of {small_block_size}; d = {d}, K = {K}, H = {H} (K/L = {K / block_size:.4f} of a large "
    f"block); N in {N_values} (load λ = NKH/D from {min(N_values) * K * H / D:.2f} to "
    f"{max(N_values) * K * H / D:.2f}), {n_eval} keys evaluated per checkpoint, hash seeds "
    f"{hash_seeds}",
    "",
    "this run's setting",
)

# %% [markdown]
# ## Measuring correlated crosstalk
#
# A read averages the $KH$ slots of an item; each slot also holds the other items written
# there. If every colliding neighbour shares only one slot, its contribution is diluted
# $KH$-fold; if a neighbour shares $m$ slots, it survives with weight $m/KH$. For each
# evaluated item we therefore list every other item that shares at least one slot with it
# (a join on slot ids, `bbpm.hashing.diagnostics.neighbour_overlap`) and count how many
# slots it shares.


# %% [markdown]
# ## The sweep
#
# For every hash seed: one memory per hash, filled incrementally. Keys are $0..N-1$, so the
# memory after $N$ items is the same whether it was filled in one go or as a prefix of a longer
# stream; at each checkpoint $N$ we read a seeded random subset of the written keys, score the
# cosine between read and written vectors, and compute the collision diagnostics
# (`bbpm.hashing.diagnostics.summarize`) of all $N$ items' slots plus the neighbour overlap.

# %%
rows, occupancy = [], {}
bar = progress(total=len(HASHES) * len(hash_seeds) * len(N_values))
for hash_seed in hash_seeds:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + hash_seed)
    values = torch.nn.functional.normalize(torch.randn(max(N_values), d, generator=gen), dim=1)
    seed_rows, hists, memories = block_global.sweep_seed(
        {name: make_hash(hash_seed) for name, make_hash in HASHES.items()}, values, N_values,
        (D, d, K, H), n_eval, batch_size, lambda N, s=hash_seed: seed + 7919 * N + s,
        cos_threshold, hist_N, on_step=lambda: bar.update(1),
    )  # fmt: skip
    rows += [{"hash": r["hash"], "hash_seed": hash_seed, **r} for r in seed_rows]
    occupancy = occupancy or hists  # the first hash seed's histograms
bar.close()

# %% [markdown]
# ## Write and read speed
#
# Speed per item does not depend on $N$ (a write or read touches $KH$ rows whatever the load),
# so it is measured once, on the full memories of the last seed: `timing_rounds` rounds, each
# writing one batch of `batch_size` new keys and reading `batch_size` written keys with every
# hash in turn (hashing included). The CPU is shared with other jobs; running the hashes
# interleaved means a busy spell slows all of them, and the median over rounds discards most
# of it. Compare speeds between hashes within this run only.

# %%
timing = {name: {"write": [], "read": []} for name in HASHES}
read_keys = torch.arange(min(batch_size, max(N_values)), dtype=torch.int64)
for round_ in progress(range(timing_rounds)):
    new_keys = max(N_values) + round_ * batch_size + torch.arange(batch_size, dtype=torch.int64)
    new_values = torch.nn.functional.normalize(torch.randn(batch_size, d, generator=gen), dim=1)
    for name, memory in memories.items():
        with Timer() as write_timer:
            memory.write(new_keys, new_values)
        with Timer() as read_timer:
            memory.read(read_keys)
        timing[name]["write"].append(batch_size / write_timer.elapsed)
        timing[name]["read"].append(read_keys.numel() / read_timer.elapsed)
del memories
raw_csv = exp.save_raw(rows)

# %% [markdown]
# ## Aggregate and save, with the theory
#
# Per hash and $N$: the mean over hash seeds of each statistic (and its spread over seeds).
# Theory from `bbpm.theory`, computed from $(N, D, K, H, d)$ alone:
#
# * expected mean cosine, `snr_bounds.expected_cosine`, for uniform (global) hashing and for
#   block hashing with block size $L$ (its pair and load-correlation corrections). The
#   prototype formula is deterministic and structured, so no random-hashing theory applies;
# * expected occupancy histogram $D \cdot P(c = j)$ with $c \sim \text{Binomial}(NH, K/D)$ and
#   expected max load under uniform hashing, `collision_model.expected_load_histogram` /
#   `expected_max_load`.


# %%
THEORY_BLOCK_SIZE = {"global (mixed)": None, f"block L={block_size}": block_size, f"block L={small_block_size}": small_block_size}  # fmt: skip
cosine_theory = {name: [expected_cosine(N, D, K, H, d, block_size=L) for N in N_values] for name, L in THEORY_BLOCK_SIZE.items()}  # fmt: skip
max_j = max(len(h) for h in occupancy.values())
stats = ["mean_cos", "sem_cos", "min_cos", "share_above_threshold", "collision_rate", "max_load", "gini_load", "q2",
         "self_collision_rate", "occupied_fraction", "neighbours_per_item", "shared_slots_per_neighbour", "max_shared_slots"]  # fmt: skip
metrics_json = exp.save_metrics(
    {
        "hashes": list(HASHES),
        "hash_configs": {name: make(hash_seeds[0]).config() for name, make in HASHES.items()},
        "N": N_values,
        "load": [N * K * H / D for N in N_values],
        "per_hash": {stat: block_global.by_hash(rows, stat, HASHES, N_values) for stat in stats},
        "occupancy_hist_N": hist_N,
        "occupancy_hist_load": hist_N * K * H / D,
        "occupancy_hist": {name: h.tolist() for name, h in occupancy.items()},
        "occupancy_theory": expected_load_histogram(hist_N, D, K, H, max_j - 1).tolist(),
        "max_load_theory": [expected_max_load(N, D, K, H) for N in N_values],
        "q2_uniform": 1.0 / D,
        "speed_items_per_s": {
            name: {op: block_global.quartiles(v) for op, v in ops.items()}
            for name, ops in timing.items()
        },
        "expected_cosine_theory": cosine_theory,
    }
)

# %% [markdown]
# ## Figure
#
# Drawn from `results/exp03_block_vs_global/metrics.json`; one colour and marker per hash (the
# legend on top). In the sweep panels (a), (b), (c), (e) the x axis is the number of items
# written $N$ (this run's checkpoints), each point is the mean over `hash_seeds`, and with
# several seeds the error bar is as long as the min-to-max spread over seeds, centred on the
# mean (the default runs one seed; the standard error of each mean cosine over the evaluated
# items is in the table below).
#
# * (a) Fidelity: mean cosine between the read and the written vector of the evaluated items;
#   dashed lines are the theory `snr_bounds.expected_cosine` for the global (mixed) hash and
#   the two block sizes (none for the prototype formula).
# * (b) Accuracy: share of the evaluated items whose cosine exceeds `cos_threshold`.
# * (c) Correlated crosstalk: mean number of slots shared with each colliding neighbour
#   (log scale); 1 means every neighbour shares a single slot and its crosstalk is diluted
#   $KH$-fold, more means it is not.
# * (d) Occupancy at $N$ = `hist_N`: number of slots (log scale) against slot load (items in
#   the slot), markers per hash, black line the uniform-hashing expectation $D \cdot P(c = j)$.
# * (e) Largest slot load against $N$, dashed black the expected maximum under uniform hashing.
# * (f) Write (plain bars) and read (hatched bars) throughput per hash in items/s (log scale):
#   median over `timing_rounds` rounds, error bars the interquartile range.

# %% tags=["hide-input"]
m = exp.load_metrics()
hp, per, speed = m["hyperparameters"], m["per_hash"], m["speed_items_per_s"]
figure_png = exp.save_figure(block_global.block_vs_global_figure(m), "block_vs_global.png")

# %% [markdown]
# ## What the run shows
#
# At $N$ = {glue:text}`n_max` (load {glue:text}`load_max` writes per slot), mean over the hash
# seeds:

# %% tags=["hide-input"]
i_max = len(m["N"]) - 1
names = m["hashes"]
g, b, s, p = names


def at(stat: str, name: str, i: int = i_max) -> float:
    return per[stat][name]["mean"][i]


exp.record("n_max", m["N"][i_max], ",d", "largest N of the sweep")
exp.record("load_max", m["load"][i_max], ".2f", "load at the largest N")
show_table(
    ["hash", "mean cos", "s.e.", f"> {hp['cos_threshold']}", "coll. rate", "max load", "gini", "q2·D",
     "self-coll.", "shared/nbr", "write/s", "read/s"],
    [[n, f"{at('mean_cos', n):.4f}", f"{at('sem_cos', n):.4f}", f"{at('share_above_threshold', n):.3f}",
      f"{at('collision_rate', n):.4f}", f"{at('max_load', n):.1f}", f"{at('gini_load', n):.3f}",
      f"{at('q2', n) / m['q2_uniform']:.3f}", f"{at('self_collision_rate', n):.4f}",
      f"{at('shared_slots_per_neighbour', n):.2f}", f"{speed[n]['write']['median']:,.0f}",
      f"{speed[n]['read']['median']:,.0f}"] for n in names],
)  # fmt: skip

# %% [markdown]
# **Large blocks** ($L$ = {glue:text}`block_size`). {glue:text}`block_verdict` The mean cosine
# is {glue:text}`block_mean_cos` against {glue:text}`global_mean_cos` for global hashing
# (block − global {glue:text}`block_minus_global`; theory {glue:text}`block_theory` vs
# {glue:text}`global_theory`); each colliding neighbour shares {glue:text}`block_shared` vs
# {glue:text}`global_shared` slots. {glue:text}`share_sentence`
#
# **Small blocks** ($L$ = {glue:text}`small_block_size`) read back {glue:text}`small_mean_cos`
# ({glue:text}`small_share` above the threshold); a colliding neighbour shares
# {glue:text}`small_shared` slots on average (largest {glue:text}`small_max_shared` of $KH$;
# global: {glue:text}`global_shared`): {glue:text}`small_verdict`
#
# **The prototype formula** at the first checkpoint has {glue:text}`proto_neighbours_first`
# colliding neighbours per item (global mixed: {glue:text}`global_neighbours_first`): its
# collisions only link keys a fixed distance apart, which a short key range may not contain.
# At $N$ = {glue:text}`n_max` it reads back {glue:text}`proto_mean_cos`
# ({glue:text}`proto_share` above the threshold), with up to {glue:text}`proto_max_shared`
# slots shared with one neighbour, while its occupancy is {glue:text}`proto_evenness` even than
# random hashing (Gini {glue:text}`proto_gini` vs {glue:text}`global_gini`, max load
# {glue:text}`proto_max_load` vs {glue:text}`global_max_load`).

# %% tags=["hide-input"]
# Differences are block minus global throughout.
share_b, share_g = at("share_above_threshold", b), at("share_above_threshold", g)
n_items = min(hp["n_eval"], m["N"][i_max]) * len(hp["hash_seeds"])
block_verdict = block_global.accuracy_verdict(share_b, share_g, n_items, hp["cos_threshold"])
share_sentence = block_global.share_sentence(
    share_b, share_g, at("mean_cos", b), at("mean_cos", g), hp["cos_threshold"]
)

# %% tags=["hide-input"]
small_more = at("shared_slots_per_neighbour", s) > at("shared_slots_per_neighbour", g)
# fmt: off
for name, value, spec, what in [
    ("block_size", hp["block_size"], ",d", "large block size L"),
    ("small_block_size", hp["small_block_size"], ",d", "small block size L"),
    ("block_mean_cos", at("mean_cos", b), ".4f", "mean cosine, large blocks, largest N"),
    ("global_mean_cos", at("mean_cos", g), ".4f", "mean cosine, global mixed hash, largest N"),
    ("block_verdict", block_verdict, "", "accuracy of large blocks vs global, against sampling noise"),
    ("block_minus_global", at("mean_cos", b) - at("mean_cos", g), "+.4f", "large-block minus global mean cosine"),
    ("block_theory", m["expected_cosine_theory"][b][i_max], ".4f", "theory, large blocks"),
    ("global_theory", m["expected_cosine_theory"][g][i_max], ".4f", "theory, global hash"),
    ("block_shared", at("shared_slots_per_neighbour", b), ".2f", "slots shared per neighbour, large blocks"),
    ("global_shared", at("shared_slots_per_neighbour", g), ".2f", "slots shared per neighbour, global hash"),
    ("share_sentence", share_sentence, "", "share above the threshold, large blocks vs global"),
    ("small_mean_cos", at("mean_cos", s), ".4f", "mean cosine, small blocks"),
    ("small_share", at("share_above_threshold", s), ".3f", "share above the threshold, small blocks"),
    ("small_shared", at("shared_slots_per_neighbour", s), ".2f", "slots shared per neighbour, small blocks"),
    ("small_max_shared", at("max_shared_slots", s), ".1f", "largest overlap with one neighbour, small blocks"),
    ("small_verdict", "a neighbour's crosstalk is spread over fewer independent slots and averages out less."
     if small_more else "no more than under global hashing.", "", "small-block crosstalk vs global"),
    ("proto_neighbours_first", per["neighbours_per_item"][p]["mean"][0], ".1f", "prototype: neighbours per item, first N"),
    ("global_neighbours_first", per["neighbours_per_item"][g]["mean"][0], ".1f", "global: neighbours per item, first N"),
    ("proto_mean_cos", at("mean_cos", p), ".4f", "mean cosine, prototype formula"),
    ("proto_share", at("share_above_threshold", p), ".3f", "share above the threshold, prototype formula"),
    ("proto_max_shared", at("max_shared_slots", p), ".1f", "largest overlap with one neighbour, prototype"),
    ("proto_evenness", "more" if at("gini_load", p) < at("gini_load", g) else "not more", "", "prototype occupancy vs random"),
    ("proto_gini", at("gini_load", p), ".3f", "Gini of the slot loads, prototype"),
    ("global_gini", at("gini_load", g), ".3f", "Gini of the slot loads, global mixed"),
    ("proto_max_load", at("max_load", p), ".0f", "max slot load, prototype"),
    ("global_max_load", at("max_load", g), ".0f", "max slot load, global mixed"),
]:
    exp.record(name, value, spec, what)
# fmt: on

# %% [markdown]
# **Against the theory.** The occupancy at $N$ = `hist_N` and the mean cosine over the sweep,
# as the largest deviation from the uniform-hashing histogram (loads with more than 1000
# expected slots) and from `snr_bounds.expected_cosine` (no random-hashing theory applies to
# the prototype formula). Write and read speeds are in the table above (shared CPU; quartiles
# in `metrics.json`); the fastest writer in this run is {glue:text}`fastest_writer`.

# %% tags=["hide-input"]
occ_err = {n: max(abs(a - e) / e for a, e in zip(m["occupancy_hist"][n], m["occupancy_theory"], strict=False) if e > 1000)
           for n in names}  # fmt: skip
theory_err = {n: max(abs(a - t) for a, t in zip(per["mean_cos"][n]["mean"], m["expected_cosine_theory"][n], strict=True))
              for n in m["expected_cosine_theory"]}  # fmt: skip
show_table(
    ["hash", "occupancy: largest relative deviation", "mean cosine: largest |measured - theory|"],
    [[n, f"{occ_err[n]:.1%}", f"{theory_err[n]:.4f}" if n in theory_err else "n/a"] for n in names],
)
for n, key in zip(names, ("global", "block", "small", "proto"), strict=True):
    exp.record(f"{key}_occupancy_deviation", occ_err[n], ".1%", f"occupancy deviation, {n}")
    if n in theory_err:
        exp.record(f"{key}_theory_gap", theory_err[n], ".4f", f"largest |measured - theory|, {n}")
i_hist = m["N"].index(m["occupancy_hist_N"])
exp.record("occupancy_verdict", block_global.occupancy_verdict(
    occ_err, {n: at("mean_cos", n, i_hist) for n in names}, {n: at("gini_load", n, i_hist) for n in names},
    names, m["occupancy_hist_N"]), "", "whether the slot-load statistics show the damage")  # fmt: skip
fastest = max(names, key=lambda n: speed[n]["write"]["median"])
_ = exp.record("fastest_writer", fastest, "", "hash with the highest median write speed")


# %% [markdown]
# ## Records for the paper
#
# The numbers the paper quotes, read from this run's `metrics.json` and recorded by name
# (`results/exp03_block_vs_global/records.json`); a number this run did not produce is not recorded, and the
# paper shows a placeholder for it.

# %% tags=["hide-input"]
from bbpm.paper import record_metric  # noqa: E402

paper_metrics = exp.load_metrics()
pm, hp = paper_metrics, paper_metrics["hyperparameters"]
# The hashes in the order of HASHES: global (mixed), block L, small block, prototype formula.
for slug, hash_name in zip(("global", "block", "small_block", "prototype"), pm.get("hashes", [])):
    record_metric(
        exp,
        f"mean_cos_{slug}_at_n_max",
        lambda h=hash_name: pm["per_hash"]["mean_cos"][h]["mean"][-1],
        ".3f",
        f"mean cosine at the largest N, {hash_name}",
    )
record_metric(exp, "n_max", lambda: pm["N"][-1], ",d", "largest N")
record_metric(exp, "block_size", lambda: hp["block_size"], ",d", "block size L")
record_metric(exp, "small_block_size", lambda: hp["small_block_size"], ",d", "small block size")
_ = record_metric(exp, "param_k", lambda: hp["K"], ",d", "slots per hash K")
