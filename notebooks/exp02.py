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
# # exp02: Ablation of K and H
#
# **Claim.** At a fixed table size $D$ and number of items $N$, the slots per hash $K$ and the
# number of hashes $H$ matter, according to the theory, only through $M = KH$ (this grid does
# not hold $M$ fixed), and much less than intuition suggests:
# more slots per item raise the load $\lambda = NM/D$ (each slot is shared by more items) but
# also average the crosstalk over more slots, and the two effects nearly cancel. The theory
# of the [Theory chapter](../theory.md) makes this precise: at heavy load the mean cosine tends
# to $1/\sqrt{1 + (N/D)(1 + M^2/D)}$, so it *falls* with $M$ once $M^2$ approaches $D$ —
# items then share two or more slots with a key, and that part of the crosstalk no longer
# averages out. Both reported metrics are predicted: the mean cosine and the accuracy, the
# share of keys whose read has cosine above a threshold $\tau$ (the prototype's score, with
# $\tau = 0.9$).
#
# **Setup.** The prototype's ablation with this run's parameters (`params/exp02.yaml` for the
# full run): $D$ = {glue:text}`D` slots, $N$ = {glue:text}`N` items with random unit values in
# $d$ = {glue:text}`d` dimensions, keys $0..N-1$, {glue:text}`n_read` keys read back, $K \times H$
# on the grid below, {glue:text}`n_seeds` seed(s) (new values and a new hash seed each) for
# error bars. A second, stricter threshold shows where the configurations actually differ,
# and the prototype's hash formula is measured beside the default hash.

# %% tags=["parameters"]
seed = 0
D = 100000
N = 5000
d = 64
K_values = [4, 16, 64]
H_values = [1, 3]
n_eval = 5000
batch_size = 10000
n_seeds = 5
taus = [0.9, 0.99]
compare_prototype = True

# %% tags=["hide-input"]
import itertools
import math

import numpy as np
import torch
from myst_nb import glue

from bbpm import BBPMMemoryFloat, GlobalAffineHash
from bbpm.experiments import ablation
from bbpm.theory import collision_model, snr_bounds
from bbpm.theory.sanity_checks import unit_gaussian_values
from bbpm.utils import Experiment, progress, show_table

exp = Experiment.from_notebook("exp02_ablation_K_H", "notebooks/exp02.py", globals())
seeds = list(range(seed, seed + n_seeds))
configs = list(itertools.product(K_values, H_values))
HASHES = {"mixed": lambda s: GlobalAffineHash(D, seed=s, mode="mixed")}
if compare_prototype:
    HASHES["prototype"] = lambda s: GlobalAffineHash(D, mode="prototype")  # the formula has no seed
for name, value in {"D": D, "N": N, "d": d, "n_seeds": n_seeds, "n_read": min(N, n_eval)}.items():
    glue(name, f"{value:,}", display=False)
show_table(
    ["K", "H", "M = KH", "load λ = NM/D", "M²/D"],
    [[K, H, K * H, f"{N * K * H / D:.2f}", f"{(K * H) ** 2 / D:.3f}"] for K, H in configs],
)

# %% [markdown]
# ## The sweep
#
# Each configuration, hash and seed writes all $N$ items and reads the first keys back; the
# cosine between read and written value is kept per key.

# %%
rows = []
values_by_seed = {s: unit_gaussian_values(N, d, seed=s) for s in seeds}
keys = torch.arange(N, dtype=torch.int64)
eval_keys = keys[: min(N, n_eval)]
for (K, H), hash_name, s in progress(list(itertools.product(configs, HASHES, seeds))):
    memory = BBPMMemoryFloat(D, d, K, H, HASHES[hash_name](s), check_finite=False)
    cos, write_seconds = ablation.write_then_read_cosines(
        memory, keys, values_by_seed[s], eval_keys, batch_size
    )
    row = {"K": K, "H": H, "hash": hash_name, "seed": s, **ablation.cosine_stats(cos, taus)}
    row["write_seconds"] = write_seconds
    rows.append(row)
raw_csv = exp.save_raw(rows)

# %% [markdown]
# ## Diagnostics and theory
#
# For each configuration: the collision diagnostics of all $NKH$ indices
# (`bbpm.hashing.diagnostics.summarize`, seed 0) and the per-key overlap
# (`collision_model.key_overlap_statistics`), next to the predictions of `bbpm.theory`
# from $(N, D, K, H, d)$ alone. The mean cosine is also given without the pair term
# (items hitting two slots of a key), to show where it matters.


# %%
metrics_names = ["mean_cos", "std_cos"] + [f"share_above_{tau:g}" for tau in taus]
results = []
for K, H in configs:
    entry = {"K": K, "H": H, "M": K * H, "load_factor": N * K * H / D}
    entry["pair_ratio_M2_over_D"] = (K * H) ** 2 / D
    for hash_name in HASHES:
        sel = [r for r in rows if (r["K"], r["H"], r["hash"]) == (K, H, hash_name)]
        for metric in metrics_names:
            mean, stderr = ablation.seed_mean([r[metric] for r in sel])
            entry[f"{hash_name}_{metric}"], entry[f"{hash_name}_{metric}_stderr"] = mean, stderr
        entry[f"{hash_name}_diagnostics"] = ablation.hash_diagnostics(
            HASHES[hash_name](seed), keys, eval_keys, D, K, H, d
        )
    entry["theory"] = prediction = snr_bounds.predict(N, D, K, H, d, taus=tuple(taus))
    entry["occupancy_theory"] = collision_model.occupancy_prediction(N, D, K, H)
    entry["error_mean_cos"] = entry["mixed_mean_cos"] - prediction["mean_cosine"]
    for tau in taus:
        measured = entry[f"mixed_share_above_{tau:g}"]
        entry[f"error_share_above_{tau:g}"] = measured - prediction[f"share_above_{tau:g}"]
    results.append(entry)

metrics_json = exp.save_metrics(
    {
        "configs": results,
        "max_abs_error_mean_cos": float(max(abs(e["error_mean_cos"]) for e in results)),
        "max_abs_error_share": {
            f"{tau:g}": float(max(abs(e[f"error_share_above_{tau:g}"]) for e in results))
            for tau in taus
        },
        "runtime": {"write_seconds_mean": float(np.mean([r["write_seconds"] for r in rows]))},
    }
)

# %% [markdown]
# ## Figure
#
# One bar per $(K, H)$, measured with the default (mixed) hash, error bars = standard error
# over seeds; black diamonds beside each bar: the theory. Hollow red markers: the prototype's
# hash formula. Left: accuracy at the first threshold $\tau$; middle: the stricter threshold;
# right: the mean cosine (theory with and without the pair term).

# %% tags=["hide-input"]
m = exp.load_metrics()
cfg, hp = m["configs"], m["hyperparameters"]
title = f"K x H ablation: D = {hp['D']:,}, N = {hp['N']:,}, d = {hp['d']}"
fig = ablation.ablation_figure(cfg, hp["taus"], compare_prototype, title)
figure_png = exp.save_figure(fig, "ablation_K_H.png")

# %% [markdown]
# ## Theory vs measurement
#
# Mean cosine and accuracy at the first threshold, measured (mixed hash, mean over seeds)
# beside the theory, with the prototype's formula for comparison.

# %% tags=["hide-input"]
tau0 = hp["taus"][0]
show_table(
    ["K", "H", "load", "M²/D", "mean cos", "theory", "no pair", "error",
     f"acc@{tau0:g}", "theory", "prototype"],
    [
        [e["K"], e["H"], f"{e['load_factor']:.2f}", f"{e['pair_ratio_M2_over_D']:.3f}",
         f"{e['mixed_mean_cos']:.5f}", f"{e['theory']['mean_cosine']:.5f}",
         f"{e['theory']['mean_cosine_no_pair']:.5f}", f"{e['error_mean_cos']:+.5f}",
         f"{e[f'mixed_share_above_{tau0:g}']:.4f}", f"{e['theory'][f'share_above_{tau0:g}']:.4f}",
         f"{e.get('prototype_mean_cos', math.nan):.4f}"]
        for e in cfg
    ],
)  # fmt: skip

# %% [markdown]
# ## Discussion
#
# **Theory vs measurement.** With the default (mixed) hash the largest gap between the
# measured and the predicted mean cosine is {glue:text}`max_err_mean_cos` over the
# {glue:text}`n_configs` configurations; for the share of keys above $\tau$ it is
# {glue:text}`max_err_share_tau0` at the first threshold and {glue:text}`max_err_share_tau1`
# at the stricter one.
#
# **How well the configurations store the items.** The mean cosine ranges from
# {glue:text}`worst_mean_cos` ({glue:text}`worst_config`) to {glue:text}`best_mean_cos`
# ({glue:text}`best_config`), a spread of {glue:text}`mean_cos_spread`, while the load varies
# from {glue:text}`load_min` to {glue:text}`load_max`. The lowest share of keys above each
# threshold over the configurations is {glue:text}`min_share_by_tau`. At the stricter
# threshold the accuracy runs from {glue:text}`strict_share_min` to
# {glue:text}`strict_share_max` (theory: table above).
#
# **Slots per item.** The largest $M$ = {glue:text}`big_m` reads back
# {glue:text}`big_mean_cos`, the smallest $M$ = {glue:text}`small_m` reads back
# {glue:text}`small_mean_cos`: more slots per item {glue:text}`more_slots_verdict` here. At
# $M^2/D$ = {glue:text}`big_pair_ratio` other items often share two slots with a key; the
# theory without that pair term predicts {glue:text}`big_theory_no_pair`, with it
# {glue:text}`big_theory`.
#
# **The prototype's hash formula** reads back a mean cosine below the default hash's (by more
# than two standard errors) in {glue:text}`prototype_worse_count` of the configurations
# (lowest: {glue:text}`prototype_min_mean_cos`); given the slots it actually chose, the theory
# predicts {glue:text}`prototype_given_min` there, so the loss comes from its keys sharing
# runs of slots with a few partners, not from the memory.

# %% tags=["hide-input"]
best = max(cfg, key=lambda e: e["mixed_mean_cos"])
worst = min(cfg, key=lambda e: e["mixed_mean_cos"])
big = max(cfg, key=lambda e: e["pair_ratio_M2_over_D"])
small = min(cfg, key=lambda e: e["pair_ratio_M2_over_D"])
strict, taus_run = f"mixed_share_above_{hp['taus'][-1]:g}", hp["taus"]
# fmt: off
for name, value, spec, what in [
    ("n_configs", len(cfg), "d", "number of (K, H) configurations"),
    ("max_err_mean_cos", m["max_abs_error_mean_cos"], ".5f", "largest |measured - theory| mean cosine"),
    ("max_err_share_tau0", m["max_abs_error_share"][f"{taus_run[0]:g}"], ".4f", "largest |measured - theory| share above the first tau"),
    ("max_err_share_tau1", m["max_abs_error_share"][f"{taus_run[-1]:g}"], ".4f", "largest |measured - theory| share above the last tau"),
    ("worst_mean_cos", worst["mixed_mean_cos"], ".4f", "lowest mean cosine (mixed hash)"),
    ("worst_config", f"K = {worst['K']}, H = {worst['H']}", "", "configuration with the lowest mean cosine"),
    ("best_mean_cos", best["mixed_mean_cos"], ".4f", "highest mean cosine (mixed hash)"),
    ("best_config", f"K = {best['K']}, H = {best['H']}", "", "configuration with the highest mean cosine"),
    ("mean_cos_spread", best["mixed_mean_cos"] - worst["mixed_mean_cos"], ".4f", "best minus worst mean cosine"),
    ("load_min", min(e["load_factor"] for e in cfg), ".2f", "smallest load N*K*H/D"),
    ("load_max", max(e["load_factor"] for e in cfg), ".2f", "largest load N*K*H/D"),
    ("strict_share_min", min(e[strict] for e in cfg), ".3f", "lowest share above the stricter tau"),
    ("strict_share_max", max(e[strict] for e in cfg), ".3f", "highest share above the stricter tau"),
    ("min_share_by_tau", ", ".join(f"{min(e[f'mixed_share_above_{t:g}'] for e in cfg):.4f} (cosine > {t:g})" for t in taus_run), "", "lowest share above each tau over the configurations"),
    ("big_m", big["M"], "d", "largest M = K*H"),
    ("big_mean_cos", big["mixed_mean_cos"], ".4f", "mean cosine at the largest M"),
    ("small_m", small["M"], "d", "smallest M = K*H"),
    ("small_mean_cos", small["mixed_mean_cos"], ".4f", "mean cosine at the smallest M"),
    ("more_slots_verdict", "did not help" if big["mixed_mean_cos"] < small["mixed_mean_cos"] else "helped", "", "largest vs smallest M"),
    ("big_pair_ratio", big["pair_ratio_M2_over_D"], ".2f", "M^2/D at the largest M"),
    ("big_theory_no_pair", big["theory"]["mean_cosine_no_pair"], ".4f", "theory without the pair term at the largest M"),
    ("big_theory", big["theory"]["mean_cosine"], ".4f", "theory at the largest M"),
]:
    exp.record(name, value, spec, what)
# fmt: on

# %% tags=["hide-input"]
if compare_prototype:
    gap = [e["mixed_mean_cos"] - e["prototype_mean_cos"] for e in cfg]
    noise = [
        2 * math.hypot(e["mixed_mean_cos_stderr"], e["prototype_mean_cos_stderr"]) for e in cfg
    ]
    worse = sum(g > max(n, 1e-12) for g, n in zip(gap, noise, strict=True))
    lowest = min(cfg, key=lambda e: e["prototype_mean_cos"])
    # fmt: off
    for name, value, spec, what in [
        ("prototype_worse_count", f"{worse} of {len(cfg)}", "", "configurations where the prototype formula reads back less"),
        ("prototype_min_mean_cos", lowest["prototype_mean_cos"], ".4f", "lowest mean cosine of the prototype formula"),
        ("prototype_given_min", lowest["prototype_diagnostics"]["cosine_given_hash"], ".4f", "theory given the prototype's slots there"),
    ]:
        exp.record(name, value, spec, what)
    # fmt: on

# %% [markdown]
# ## Table for the paper
#
# Written as LaTeX to `results/exp02_ablation_K_H/exp02_ablation_K_H.tex`.

# %% tags=["hide-input"]
latex_rows = [
    [e["K"], e["H"], e["load_factor"], e["mixed_mean_cos"], e["theory"]["mean_cosine"],
     e[f"mixed_share_above_{tau0:g}"], e["theory"][f"share_above_{tau0:g}"]]
    for e in cfg
]  # fmt: skip
latex_table = exp.save_latex_table(
    "exp02_ablation_K_H.tex",
    ["K", "H", "load", "mean cos", "theory", f"share cos > {tau0:g}", "theory"],
    latex_rows,
    caption=(
        f"Ablation of K and H at D = {hp['D']:,}, N = {hp['N']:,}, d = {hp['d']}, mean over "
        f"{hp['n_seeds']} seed(s) (exp02): measurement beside theory."
    ),
)


# %% [markdown]
# ## Records for the paper
#
# The numbers the paper quotes, read from this run's `metrics.json` and recorded by name
# (`results/exp02_ablation_K_H/records.json`); a number this run did not produce is not recorded, and the
# paper shows a placeholder for it.

# %% tags=["hide-input"]
from bbpm.paper import record_metric  # noqa: E402

paper_metrics = exp.load_metrics()
pm, hp = paper_metrics, paper_metrics["hyperparameters"]
record_metric(exp, "param_d_slots", lambda: hp["D"], ",d", "table slots D")
record_metric(exp, "param_n", lambda: hp["N"], ",d", "items N")
record_metric(exp, "n_configs", lambda: len(pm["configs"]), "d", "number of (K, H) settings")
record_metric(
    exp,
    "theory_max_abs_error",
    lambda: pm["max_abs_error_mean_cos"],
    ".1e",
    "largest |theory - measured| mean cosine over the (K, H) settings",
)
record_metric(
    exp,
    "theory_max_abs_error_share",
    lambda: pm["max_abs_error_share"]["0.9"],
    ".1e",
    "largest |theory - measured| share above cosine 0.9",
)
cos = [c["mixed_mean_cos"] for c in pm["configs"]]
record_metric(exp, "mean_cos_best", lambda: max(cos), ".3f", "best mean cosine over (K, H)")
_ = record_metric(exp, "mean_cos_worst", lambda: min(cos), ".3f", "worst mean cosine over (K, H)")
