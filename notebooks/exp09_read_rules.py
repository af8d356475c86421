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
# # exp09: Three ways to read the same memory
#
# **Claim.** How a read combines a key's $KH$ slots matters as much as the table's size. The
# spec's read divides each slot by its count and averages (*debiased*). Averaging the raw
# slots without the counts (*mean*, the upstream implementation's read, which dropped count
# debiasing as a "theory error") is worse at every load. Weighting each slot by the inverse
# of the number of *other* items in it (*inverse noise*, the minimum-variance unbiased
# combination when each key is written once) is better: it returns an item exactly whenever
# one of its slots is clean. All three read the same table, written the same way: same
# bytes, same write cost.
#
# **Setup.** Values are random unit vectors, each key written once. The load sweep uses exp01's
# setting ($D$ slots, $d$, $K$, $H = 1$, global hashing); the $(K, H)$ grid uses exp02's. Theory
# curves come from `bbpm.theory.snr_bounds` (`expected_cosine(..., read_rule=...)` and
# `exact_share`), derived from the same slot-load model for all three rules. The parameters are
# in `params/exp09_read_rules.yaml`; the first code cell below shows this run's values.

# %% tags=["parameters"]
seed = 0
D = 1000000
d = 64
K = 50
loads = [0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0]
n_eval = 2000
D2 = 100000
N2 = 5000
K_values = [4, 16, 64]
H_values = [1, 3]
headline_load = 2.0
time_batch = 8192
time_repeats = 5
repeat_counts = [1, 2, 4, 8]
drift = 0.5
n_repeat_keys = 500
known_D = 20000
known_K = 4
known_loads = [1.0, 2.0, 3.0, 3.5, 4.0, 5.0]
known_iterations = 100
batch_size = 20000

# %% tags=["hide-input"]
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from bbpm import BBPMMemoryFloat, GlobalAffineHash
from bbpm.bench import interleaved_times
from bbpm.memory.read_rules import READ_RULES, solve_known_keys
from bbpm.theory import snr_bounds
from bbpm.utils import Experiment, show_table

exp = Experiment.from_notebook("exp09_read_rules", "notebooks/exp09_read_rules.py", globals())
show_table(["parameter", "value"], [[k, v] for k, v in exp.params.items()])
RULE_STYLE = {"debiased": "C0", "mean": "C1", "inverse_noise": "C2"}


def unit_values(n, dim, gen):
    return F.normalize(torch.randn(n, dim, generator=gen), dim=1)


def fill(memory, values, start, stop):
    """Write items ``start..stop-1`` (key = position) in batches."""
    for first in range(start, stop, batch_size):
        last = min(first + batch_size, stop)
        memory.write(torch.arange(first, last), values[first:last])


def cosines(memory, keys, truth, rule):
    return F.cosine_similarity(memory.read(keys, read_rule=rule), truth, dim=1)


# %% [markdown]
# ## The rules over load
#
# One table is filled step by step to each load $\lambda = NKH/D$; at each step the first
# `n_eval` keys are read with every rule. *Exact* means cosine above $1 - 10^{-6}$ (float32
# rounding of an exact return).

# %% tags=["hide-input"]
gen = torch.Generator().manual_seed(seed)
N_of = [max(2, round(lam * D / K)) for lam in loads]
values = unit_values(N_of[-1], d, gen)
memory = BBPMMemoryFloat(D, d, K, 1, GlobalAffineHash(D, seed=seed))
sweep, written = [], 0
for lam, N in zip(loads, N_of, strict=True):
    fill(memory, values, written, N)
    written = N
    keys = torch.arange(min(n_eval, N))
    for rule in READ_RULES:
        cos = cosines(memory, keys, values[keys], rule)
        sweep.append(
            {
                "load": lam,
                "N": N,
                "rule": rule,
                "cos": float(cos.mean()),
                "exact": float((cos > 1 - 1e-6).double().mean()),
                "theory_cos": snr_bounds.expected_cosine(N, D, K, 1, d, read_rule=rule),
                "theory_exact": snr_bounds.exact_share(N, D, K, 1, rule),
            }
        )
exp.save_raw(sweep, "sweep.csv")
del memory


def at(load, rule, field):
    return next(r[field] for r in sweep if r["load"] == load and r["rule"] == rule)


gap_cos = max(abs(r["cos"] - r["theory_cos"]) for r in sweep)
gap_exact = max(abs(r["exact"] - r["theory_exact"]) for r in sweep)
exp.record("headline_load", headline_load, "g", "load lambda of the headline numbers")
for rule in READ_RULES:
    exp.record(f"cos_{rule}_headline", at(headline_load, rule, "cos"), ".4f",
               f"mean cosine of the {rule} read at the headline load (exp01 setting)")  # fmt: skip
exp.record("exact_inverse_noise_headline", at(headline_load, "inverse_noise", "exact"), ".1%",
           "share of keys the inverse-noise read returns exactly at the headline load")  # fmt: skip
_ = exp.record("exact_debiased_headline", at(headline_load, "debiased", "exact"), ".1%",
           "share of keys the debiased read returns exactly at the headline load")  # fmt: skip

# %% tags=["hide-input"]
exp.record(
    "max_gap_theory_cos",
    gap_cos,
    ".4f",
    "largest |theory - measured| mean cosine, all rules and loads",
)
_ = exp.record(
    "max_gap_theory_exact",
    gap_exact,
    ".3f",
    "largest |theory - measured| exact share, all rules and loads",
)

# %% [markdown]
# At $\lambda =$ {glue:text}`headline_load` the debiased read reaches a mean cosine of
# {glue:text}`cos_debiased_headline`, the raw mean {glue:text}`cos_mean_headline` and the
# inverse-noise read {glue:text}`cos_inverse_noise_headline`; the inverse-noise read returns
# {glue:text}`exact_inverse_noise_headline` of the keys exactly (the debiased read
# {glue:text}`exact_debiased_headline`). The theory follows every measured point within
# {glue:text}`max_gap_theory_cos` in mean cosine and {glue:text}`max_gap_theory_exact` in the
# exact share.
#
# ## exp02's $(K, H)$ grid
#
# $N_2$ items in $D_2$ slots for each $K$ and $H$ (all keys read).

# %% tags=["hide-input"]
grid = []
for K2 in K_values:
    for H2 in H_values:
        mem2 = BBPMMemoryFloat(D2, d, K2, H2, GlobalAffineHash(D2, seed=seed))
        vals2 = unit_values(N2, d, torch.Generator().manual_seed(seed + 1))
        fill(mem2, vals2, 0, N2)
        keys2 = torch.arange(N2)
        for rule in READ_RULES:
            grid.append(
                {
                    "K": K2,
                    "H": H2,
                    "rule": rule,
                    "cos": float(cosines(mem2, keys2, vals2, rule).mean()),
                    "theory_cos": snr_bounds.expected_cosine(N2, D2, K2, H2, d, read_rule=rule),
                }
            )
exp.save_raw(grid, "grid.csv")
gains = [
    next(g["cos"] for g in grid if (g["K"], g["H"], g["rule"]) == (r["K"], r["H"], "inverse_noise"))
    - r["cos"]
    for r in grid
    if r["rule"] == "debiased"
]
exp.record(
    "grid_gain_min",
    min(gains),
    "+.4f",
    "smallest inverse-noise minus debiased mean cosine over exp02's (K, H) grid",
)
exp.record(
    "grid_gain_max",
    max(gains),
    "+.4f",
    "largest inverse-noise minus debiased mean cosine over exp02's (K, H) grid",
)
_ = exp.record("grid_max_gap_theory_cos", max(abs(g["cos"] - g["theory_cos"]) for g in grid), ".4f",
           "largest |theory - measured| mean cosine on exp02's grid")  # fmt: skip

# %% [markdown]
# Over exp02's grid the inverse-noise read gains between {glue:text}`grid_gain_min` and
# {glue:text}`grid_gain_max` in mean cosine over the debiased read (theory within
# {glue:text}`grid_max_gap_theory_cos`).
#
# ## Cost in time
#
# The same `time_batch` keys read from a table at the headline load with each rule
# (`backend="auto"`: `embedding_bag` with per-slot weights on CPU; the rule's weights come
# from one C pass). Interleaved calls, medians, one process.

# %% tags=["hide-input"]
N_h = round(headline_load * D / K)
memory = BBPMMemoryFloat(D, d, K, 1, GlobalAffineHash(D, seed=seed))
fill(memory, values, 0, N_h)
time_keys = torch.randint(0, N_h, (time_batch,), generator=gen)
with torch.no_grad():
    times = interleaved_times(
        {rule: (lambda r=rule: memory.read(time_keys, read_rule=r)) for rule in READ_RULES},
        time_repeats,
    )
median = {rule: float(np.median(t)) for rule, t in times.items()}
exp.record("time_ratio_inverse_noise", median["inverse_noise"] / median["debiased"], ".2f",
           "inverse-noise read time / debiased read time (same keys, same table)")  # fmt: skip
_ = exp.record(
    "time_ratio_mean",
    median["mean"] / median["debiased"],
    ".2f",
    "mean read time / debiased read time",
)

# %% [markdown]
# The inverse-noise read takes {glue:text}`time_ratio_inverse_noise` times as long as the
# debiased read (the raw mean {glue:text}`time_ratio_mean`): the extra cost is the per-key
# multiplicity count of its slot ids and the rule's normalisation, in the weights pass.
#
# ## Repeated writes and drifting keys
#
# The inverse-noise rule assumes each key is written once. Here `n_repeat_keys` fresh keys are
# written $r$ times each into the table at the headline load: either the same value $r$ times,
# or a value that drifts (each write adds `drift` times a fresh random unit vector and
# renormalises). Reads are compared with the last value written.

# %% tags=["hide-input"]
repeat_rows = []
repeat_keys = torch.arange(N_h, N_h + n_repeat_keys)
for r in repeat_counts:
    for drifting in (False, True):
        mem_r = copy.deepcopy(memory)
        value = unit_values(n_repeat_keys, d, torch.Generator().manual_seed(seed + 7))
        step_gen = torch.Generator().manual_seed(seed + 11)
        for _ in range(r):
            mem_r.write(repeat_keys, value)
            last = value
            if drifting:
                value = F.normalize(value + drift * unit_values(n_repeat_keys, d, step_gen), dim=1)
        for rule in READ_RULES:
            repeat_rows.append(
                {
                    "r": r,
                    "drifting": drifting,
                    "rule": rule,
                    "cos_last": float(cosines(mem_r, repeat_keys, last, rule).mean()),
                }
            )
        del mem_r
exp.save_raw(repeat_rows, "repeats.csv")


def rep(r, drifting, rule):
    return next(
        x["cos_last"]
        for x in repeat_rows
        if (x["r"], x["drifting"], x["rule"]) == (r, drifting, rule)
    )


r_max = repeat_counts[-1]
_ = exp.record(
    "repeat_r_max", r_max, "d", "largest number of writes per key in the repeated-write study"
)

# %% tags=["hide-input"]
for rule in READ_RULES:
    exp.record(
        f"repeat_cos_{rule}",
        rep(r_max, False, rule),
        ".4f",
        f"{rule} read, same value written r_max times",
    )
    exp.record(
        f"drift_cos_{rule}",
        rep(r_max, True, rule),
        ".4f",
        f"{rule} read vs the last of r_max drifting values",
    )


def leader(drifting):
    gap = rep(r_max, drifting, "inverse_noise") - rep(r_max, drifting, "debiased")
    if abs(gap) < 5e-5:
        return "inverse noise and debiased agree to four decimals"
    ahead = "the inverse-noise read" if gap > 0 else "the debiased read"
    return f"{ahead} leads by {abs(gap):.4f}"


exp.record(
    "repeat_leader",
    leader(False),
    "",
    "which of inverse noise / debiased leads after r_max same-value writes",
)
_ = exp.record(
    "drift_leader",
    leader(True),
    "",
    "which of inverse noise / debiased leads after r_max drifting writes",
)

# %% [markdown]
# After {glue:text}`repeat_r_max` writes of the same value the debiased read reaches
# {glue:text}`repeat_cos_debiased`, the inverse-noise read {glue:text}`repeat_cos_inverse_noise`
# and the raw mean {glue:text}`repeat_cos_mean` ({glue:text}`repeat_leader`). Repeated writes
# put more of the key's own signal in every one of its slots; the inverse-noise rule counts
# the key's extra writes as other items (it no longer finds clean slots) and returns the
# *sum* of the writes, the debiased read their mean. With drifting values, compared with the
# newest value: debiased {glue:text}`drift_cos_debiased`, inverse noise
# {glue:text}`drift_cos_inverse_noise`, mean {glue:text}`drift_cos_mean`
# ({glue:text}`drift_leader`); every rule returns a mix of old and new values, since a
# superposition memory keeps them all.
#
# ## Beyond per-key rules: using the set of written keys
#
# Every rule above reads one key from its own slots. If the set of written keys is known
# (stored beside the table: 8 bytes per key), the whole table can be decoded at once:
# `bbpm.memory.read_rules.solve_known_keys` solves the linear system "table = slot incidence
# of the keys times their values" by conjugate gradients (`known_iterations` passes over all
# keys). It is exact wherever that system has full column rank, whether a key has a clean slot
# or not. Table of `known_D` slots, $K$ = `known_K`, $H = 1$, each load a fresh table.

# %% tags=["hide-input"]
known = []
for lam in known_loads:
    Nk = max(2, round(lam * known_D / known_K))
    mem_k = BBPMMemoryFloat(known_D, d, known_K, 1, GlobalAffineHash(known_D, seed=seed))
    vals_k = unit_values(Nk, d, torch.Generator().manual_seed(seed + 13))
    fill(mem_k, vals_k, 0, Nk)
    keys_k = torch.arange(Nk)
    solved = F.cosine_similarity(solve_known_keys(mem_k, keys_k, known_iterations), vals_k, dim=1)
    per_key = cosines(mem_k, keys_k, vals_k, "inverse_noise")
    known.append(
        {
            "load": lam,
            "N": Nk,
            "solve_cos": float(solved.mean()),
            "solve_exact": float((solved > 1 - 1e-4).double().mean()),
            "inverse_noise_cos": float(per_key.mean()),
            "inverse_noise_exact": float((per_key > 1 - 1e-6).double().mean()),
        }
    )
    del mem_k
exp.save_raw(known, "known_keys.csv")
exact_loads = [k["load"] for k in known if k["solve_exact"] >= 0.99]
top = max(exact_loads) if exact_loads else None
exp.record("known_exact_up_to_load", "no load of the grid" if top is None else top, "" if top is None else "g",
           "largest load of the grid where the known-key solve returns >= 99% of values exactly")  # fmt: skip
row = next((k for k in known if k["load"] == top), known[0])
exp.record("known_inverse_noise_exact_there", row["inverse_noise_exact"], ".1%",
           "inverse-noise exact share at that load (or the first load of the grid)")  # fmt: skip
last_k = known[-1]
exp.record("known_top_load", last_k["load"], "g", "largest load of the known-key grid")
_ = exp.record(
    "known_solve_cos_top",
    last_k["solve_cos"],
    ".3f",
    "known-key solve mean cosine at the largest load",
)

# %% tags=["hide-input"]
exp.record(
    "known_inverse_noise_cos_top",
    last_k["inverse_noise_cos"],
    ".3f",
    "inverse-noise mean cosine there",
)
wins = [k["load"] for k in known if k["solve_cos"] > k["inverse_noise_cos"] + 1e-4]
_ = exp.record("known_wins", ", ".join(f"{w:g}" for w in wins) if wins else "none", "",
           "loads where the known-key solve beats the inverse-noise read in mean cosine")  # fmt: skip

# %% [markdown]
# The known-key solve returns at least 99% of the values exactly up to load
# {glue:text}`known_exact_up_to_load` (where the inverse-noise read is exact for
# {glue:text}`known_inverse_noise_exact_there` of the keys); at load
# {glue:text}`known_top_load` it reaches a mean cosine of {glue:text}`known_solve_cos_top`
# against {glue:text}`known_inverse_noise_cos_top` for the inverse-noise read. It beats the
# per-key read at loads {glue:text}`known_wins`. The price: the key set must be kept, and a
# read decodes all keys at once (many passes over the table) instead of touching one key's
# $K$ slots, so it suits an offline decode of a whole memory, not a per-query lookup.
#
# ## Verdict: does count debiasing destroy signal?

# %% tags=["hide-input"]
pairs = [
    (r["load"], at(r["load"], "debiased", "cos") - at(r["load"], "mean", "cos"))
    for r in sweep
    if r["rule"] == "debiased"
]
pairs += [(None, g["cos"] - next(x["cos"] for x in grid if (x["K"], x["H"], x["rule"]) == (g["K"], g["H"], "mean")))
          for g in grid if g["rule"] == "debiased"]  # fmt: skip
wins = sum(gap > 0 for _, gap in pairs)
exp.record(
    "debiased_beats_mean",
    f"{wins} of {len(pairs)}",
    "",
    "measured points where the debiased read beats the raw mean",
)
exp.record(
    "debiased_minus_mean_min",
    min(g for _, g in pairs),
    "+.4f",
    "smallest debiased minus mean cosine, all points",
)
inv_wins = sum(at(lam, "inverse_noise", "cos") >= at(lam, "debiased", "cos") for lam in loads)
exp.record(
    "inverse_noise_beats_debiased",
    f"{inv_wins} of {len(loads)}",
    "",
    "loads where inverse noise >= debiased",
)
verdict = (
    "No: on every measured point the count-debiased read beats the raw mean"
    if wins == len(pairs)
    else f"Not everywhere: the raw mean wins on {len(pairs) - wins} of {len(pairs)} points"
)
_ = exp.record(
    "verdict_debiasing", verdict, "", "verdict on the claim that count debiasing destroys signal"
)

# %% [markdown]
# **{glue:text}`verdict_debiasing`** (debiased minus mean: at least
# {glue:text}`debiased_minus_mean_min` in mean cosine; {glue:text}`debiased_beats_mean`
# points). The count division shrinks the signal under load, but it shrinks the crosstalk of
# crowded slots more. It is not the best use of the counts either: weighting by the other
# writes in each slot (inverse noise) is at least as good at {glue:text}`inverse_noise_beats_debiased`
# loads of the sweep, and exact wherever a key keeps one clean slot, as long as keys are
# written once; with repeated writes its advantage is what the repeated-write section shows.

# %% tags=["hide-input"]
fig, axes = plt.subplots(2, 2, figsize=(12, 9))
for rule, color in RULE_STYLE.items():
    rows = [r for r in sweep if r["rule"] == rule]
    lam = [r["load"] for r in rows]
    axes[0, 0].plot(
        lam, [r["theory_cos"] for r in rows], "-", color=color, label=f"{rule} (theory)"
    )
    axes[0, 0].plot(lam, [r["cos"] for r in rows], "o", color=color, label=f"{rule} (measured)")
    axes[0, 1].plot(lam, [r["theory_exact"] for r in rows], "-", color=color)
    axes[0, 1].plot(lam, [r["exact"] for r in rows], "o", color=color, label=rule)
    cells = [g for g in grid if g["rule"] == rule]
    x = np.arange(len(cells)) + 0.27 * (READ_RULES.index(rule) - 1)
    axes[1, 0].bar(x, [g["cos"] for g in cells], width=0.27, color=color, label=rule)
    axes[1, 0].plot(x, [g["theory_cos"] for g in cells], "k_", ms=10)
    for drifting, ls in ((False, "-"), (True, "--")):
        axes[1, 1].plot(repeat_counts, [rep(r, drifting, rule) for r in repeat_counts], ls, marker="o", color=color,
                        label=f"{rule}, {'drifting' if drifting else 'same'} value")  # fmt: skip
axes[0, 0].set(
    xscale="log",
    xlabel="load $\\lambda = NKH/D$",
    ylabel="mean cosine",
    title=f"exp01 setting: D={D:,}, K={K}",
)
axes[0, 1].set(
    xscale="log",
    xlabel="load $\\lambda$",
    ylabel="share read exactly",
    title="exact recall (lines: theory)",
)
axes[1, 0].set_xticks(
    np.arange(len(cells)), [f"K={g['K']}, H={g['H']}" for g in cells], rotation=30
)
axes[1, 0].set(ylabel="mean cosine", title=f"exp02 setting: N={N2:,}, D={D2:,} (dashes: theory)")
axes[1, 0].set_ylim(min(g["cos"] for g in grid) - 0.05, 1.01)
axes[1, 1].set(
    xscale="log",
    xlabel="writes per key r",
    ylabel="cosine to the last value",
    title=f"repeated writes at $\\lambda$={headline_load:g}",
)
for ax in axes.flat:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
fig.tight_layout()
figure_png = exp.save_figure(fig, "read_rules.png")

# %% tags=["hide-input"]
metrics_json = exp.save_metrics(
    {"sweep": sweep, "grid": grid, "time_median_s": median, "repeats": repeat_rows}
)
