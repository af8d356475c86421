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
# number of hashes $H$ matter only through $M = KH$, and much less than intuition suggests:
# more slots per item raise the load $\lambda = NM/D$ (each slot is shared by more items) but
# also average the crosstalk over more slots, and the two effects nearly cancel. The theory
# of the [Theory chapter](../theory.md) makes this precise: at heavy load the mean cosine tends
# to $1/\sqrt{1 + (N/D)(1 + M^2/D)}$, so it *falls* with $M$ once $M^2$ approaches $D$ —
# items then share two or more slots with a key, and that part of the crosstalk no longer
# averages out. Both reported metrics are predicted: the mean cosine and the accuracy, the
# share of keys whose read has cosine above a threshold $\tau$ (the prototype's score, with
# $\tau = 0.9$).
#
# **Setup.** The prototype's ablation (defaults in `params/exp02.yaml`; the cell after the
# parameters prints this run's settings): $D$ slots, $N$ items with random unit values, keys
# $0..N-1$, every key read back, $K \times H$ on a grid, several seeds (new values and a new
# hash seed each) for error bars. A second, stricter threshold shows where the
# configurations actually differ, and the prototype's hash formula is measured beside the
# default hash.

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

# %%
import itertools
import math
import time

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from bbpm import BBPMMemoryFloat, GlobalAffineHash
from bbpm.hashing import diagnostics
from bbpm.theory import collision_model, snr_bounds
from bbpm.theory.sanity_checks import unit_gaussian_values
from bbpm.utils import Experiment

params = dict(
    seed=seed,
    D=D,
    N=N,
    d=d,
    K_values=K_values,
    H_values=H_values,
    n_eval=n_eval,
    batch_size=batch_size,
    n_seeds=n_seeds,
    taus=taus,
    compare_prototype=compare_prototype,
)
exp = Experiment("exp02_ablation_K_H", params)
seeds = list(range(seed, seed + n_seeds))
configs = list(itertools.product(K_values, H_values))
HASHES = {"mixed": lambda s: GlobalAffineHash(D, seed=s, mode="mixed")}
if compare_prototype:
    HASHES["prototype"] = lambda s: GlobalAffineHash(D, mode="prototype")  # the formula has no seed
print(
    f"D = {D:,}, N = {N:,}, d = {d}, (K, H) in {configs}, {n_seeds} seed(s), {min(N, n_eval)} keys read"
)
for K, H in configs:
    print(
        f"  K={K:>3} H={H}: M = K*H = {K * H:>3}, load lambda = N*K*H/D = {N * K * H / D:.2f}, M^2/D = {(K * H) ** 2 / D:.3f}"
    )

# %% [markdown]
# ## The sweep

# %%
rows = []
values_by_seed = {s: unit_gaussian_values(N, d, seed=s) for s in seeds}
keys = torch.arange(N, dtype=torch.int64)
eval_keys = keys[: min(N, n_eval)]
for (K, H), hash_name, s in tqdm(
    list(itertools.product(configs, HASHES, seeds)), desc="config x hash x seed"
):
    memory = BBPMMemoryFloat(D, d, K, H, HASHES[hash_name](s), check_finite=False)
    values = values_by_seed[s]
    started = time.perf_counter()
    for start in range(0, N, batch_size):
        memory.write(keys[start : start + batch_size], values[start : start + batch_size])
    write_seconds = time.perf_counter() - started
    cos = torch.nn.functional.cosine_similarity(
        memory.read(eval_keys).double(), values[eval_keys].double(), dim=1
    )
    cos = cos.numpy()
    row = {
        "K": K,
        "H": H,
        "hash": hash_name,
        "seed": s,
        "mean_cos": float(cos.mean()),
        "std_cos": float(cos.std()),
        "write_seconds": write_seconds,
    }
    row.update({f"share_above_{tau:g}": float((cos > tau).mean()) for tau in taus})
    rows.append(row)
exp.save_raw(rows)

# %% [markdown]
# ## Diagnostics and theory
#
# For each configuration: the collision diagnostics of all $NKH$ indices
# (`bbpm.hashing.diagnostics.summarize`, seed 0) and the per-key overlap
# (`collision_model.key_overlap_statistics`), next to the predictions of `bbpm.theory`
# from $(N, D, K, H, d)$ alone. The mean cosine is also given without the pair term
# (items hitting two slots of a key), to show where it matters.

# %%
results = []
for K, H in configs:
    entry = {
        "K": K,
        "H": H,
        "M": K * H,
        "load_factor": N * K * H / D,
        "pair_ratio_M2_over_D": (K * H) ** 2 / D,
    }
    for hash_name in HASHES:
        sel = [r for r in rows if r["K"] == K and r["H"] == H and r["hash"] == hash_name]
        for metric in ["mean_cos", "std_cos"] + [f"share_above_{tau:g}" for tau in taus]:
            vals = np.array([r[metric] for r in sel])
            entry[f"{hash_name}_{metric}"] = float(vals.mean())
            entry[f"{hash_name}_{metric}_stderr"] = (
                float(vals.std(ddof=1) / math.sqrt(vals.size)) if vals.size > 1 else 0.0
            )
        idx = HASHES[hash_name](seed).indices(keys, K, H)
        overlap = collision_model.key_overlap_statistics(idx, eval_keys, D)
        sum_m = float(overlap["sum_m"].mean())
        entry[f"{hash_name}_diagnostics"] = {
            **diagnostics.summarize(idx, D),
            "overlap_concentration": float(overlap["sum_m2"].mean()) / sum_m
            if sum_m > 0
            else math.nan,
            "partners_per_key": float(overlap["n_items"].mean()),
            "cosine_given_hash": float(
                snr_bounds.conditional_mean_cosine(overlap["a"], overlap["s2"], d).mean()
            ),
        }
    prediction = snr_bounds.predict(N, D, K, H, d, taus=tuple(taus))
    entry["theory"] = prediction
    entry["occupancy_theory"] = collision_model.occupancy_prediction(N, D, K, H)
    entry["error_mean_cos"] = entry["mixed_mean_cos"] - prediction["mean_cosine"]
    for tau in taus:
        entry[f"error_share_above_{tau:g}"] = (
            entry[f"mixed_share_above_{tau:g}"] - prediction[f"share_above_{tau:g}"]
        )
    results.append(entry)

exp.save_metrics(
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
# hash formula. Left: accuracy at $\tau = $ `taus[0]`; middle: the stricter threshold; right:
# the mean cosine (theory with and without the pair term).

# %%
m = exp.load_metrics()
cfg = m["configs"]
labels = [f"K={e['K']}\nH={e['H']}" for e in cfg]
x = np.arange(len(cfg))
bar_colors = ["tab:blue" if e["H"] == 1 else "tab:orange" for e in cfg]
panels = [
    (f"share_above_{tau:g}", f"share of keys with cosine > {tau:g}")
    for tau in m["hyperparameters"]["taus"]
]
panels.append(("mean_cos", "mean cosine(read, written)"))
fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5))
for ax, (metric, ylabel) in zip(axes, panels, strict=True):
    meas = np.array([e[f"mixed_{metric}"] for e in cfg])
    err = np.array([e[f"mixed_{metric}_stderr"] for e in cfg])
    theory_key = "mean_cosine" if metric == "mean_cos" else metric
    theory = np.array([e["theory"][theory_key] for e in cfg])
    ax.bar(
        x - 0.17, meas, width=0.34, yerr=err, capsize=3, color=bar_colors, edgecolor="black", lw=0.5
    )
    ax.plot(x + 0.12, theory, "D", color="black", ms=6, zorder=4)
    if metric == "mean_cos":
        ax.plot(
            x + 0.12,
            [e["theory"]["mean_cosine_no_pair"] for e in cfg],
            "D",
            color="gray",
            mfc="white",
            ms=6,
        )
    lo = min(meas.min(), theory.min())
    bottom = max(0.0, lo - 0.02) if metric == "mean_cos" else 0.0
    ax.set_ylim(bottom, 1.002 if metric == "mean_cos" else 1.05)
    if "prototype_mean_cos" in cfg[0]:
        proto = np.array([e[f"prototype_{metric}"] for e in cfg])
        shown = proto >= bottom
        ax.plot(x[shown] + 0.3, proto[shown], "o", color="tab:red", mfc="white", ms=6)
        for i in np.flatnonzero(~shown):  # below the axis: mark the edge and print the value
            ax.annotate(
                f"{proto[i]:.2f}",
                (x[i] + 0.3, bottom),
                xytext=(0, 12),
                textcoords="offset points",
                ha="center",
                fontsize=7,
                color="tab:red",
                arrowprops={"arrowstyle": "->", "color": "tab:red"},
            )
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)
    ax.set_title(ylabel)
proxy = matplotlib.lines.Line2D
handles = [
    plt.Rectangle((0, 0), 1, 1, color="tab:blue"),
    plt.Rectangle((0, 0), 1, 1, color="tab:orange"),
    proxy([], [], marker="D", color="black", ls=""),
    proxy([], [], marker="D", color="gray", mfc="white", ls=""),
]
names = [
    "measured, mixed hash, H = 1",
    "measured, mixed hash, H = 3",
    "theory",
    "theory without pair term (mean only)",
]
if "prototype_mean_cos" in cfg[0]:
    handles.append(proxy([], [], marker="o", color="tab:red", mfc="white", ls=""))
    names.append("measured, prototype formula")
fig.legend(
    handles, names, fontsize=8, loc="lower center", ncol=len(names), bbox_to_anchor=(0.5, -0.06)
)
fig.suptitle(
    f"K x H ablation: D = {m['hyperparameters']['D']:,}, N = {m['hyperparameters']['N']:,}, d = {m['hyperparameters']['d']}"
)
fig.tight_layout()
exp.save_figure(fig, "ablation_K_H.png")
plt.show()

# %% [markdown]
# ## Theory vs measurement

# %%
tau0 = m["hyperparameters"]["taus"][0]
print(
    f"{'K':>3} {'H':>2} {'load':>6} {'M^2/D':>6} | {'mean cos':>9} {'theory':>8} {'no pair':>8} {'error':>9} | "
    f"{'acc@' + format(tau0, 'g'):>8} {'theory':>7} | {'prototype':>9}"
)
for e in cfg:
    print(
        f"{e['K']:>3} {e['H']:>2} {e['load_factor']:>6.2f} {e['pair_ratio_M2_over_D']:>6.3f} | "
        f"{e['mixed_mean_cos']:>9.5f} {e['theory']['mean_cosine']:>8.5f} {e['theory']['mean_cosine_no_pair']:>8.5f} "
        f"{e['error_mean_cos']:>+9.5f} | {e[f'mixed_share_above_{tau0:g}']:>8.4f} "
        f"{e['theory'][f'share_above_{tau0:g}']:>7.4f} | {e.get('prototype_mean_cos', math.nan):>9.4f}"
    )

# %% [markdown]
# ## Discussion
#
# The numbers below are read from this run's `metrics.json`.


# %%
def fmt(value: float | None, spec: str) -> str:
    """Format a metric that may be null in metrics.json (NaN: e.g. no key collided)."""
    return "n/a" if value is None else format(value, spec)


best = max(cfg, key=lambda e: e["mixed_mean_cos"])
worst = min(cfg, key=lambda e: e["mixed_mean_cos"])
spread = best["mixed_mean_cos"] - worst["mixed_mean_cos"]
print(
    f"1. Theory vs measurement (mixed hash): largest |error| of the mean cosine {m['max_abs_error_mean_cos']:.5f}; "
    f"of the share above each tau: "
    + ", ".join(f"tau={t}: {v:.4f}" for t, v in m["max_abs_error_share"].items())
    + "."
)
print(
    f"2. All {len(cfg)} configurations store the {m['hyperparameters']['N']:,} items well: mean cosine from "
    f"{worst['mixed_mean_cos']:.4f} (K={worst['K']}, H={worst['H']}) to {best['mixed_mean_cos']:.4f} "
    f"(K={best['K']}, H={best['H']}), a spread of only {spread:.4f} while the load varies from "
    f"{min(e['load_factor'] for e in cfg):.2f} to {max(e['load_factor'] for e in cfg):.2f}. Accuracy at cosine > {tau0:g}: "
    + ", ".join(f"K={e['K']},H={e['H']}: {e[f'mixed_share_above_{tau0:g}']:.4f}" for e in cfg)
    + "."
)
for tau in m["hyperparameters"]["taus"][1:]:
    print(
        f"3. The stricter threshold cos > {tau:g} separates them: "
        + ", ".join(
            f"K={e['K']},H={e['H']}: {e[f'mixed_share_above_{tau:g}']:.3f} (theory {e['theory'][f'share_above_{tau:g}']:.3f})"
            for e in cfg
        )
        + "."
    )
big = max(cfg, key=lambda e: e["pair_ratio_M2_over_D"])
small = min(cfg, key=lambda e: e["pair_ratio_M2_over_D"])
print(
    f"4. Slots per item: the largest M = {big['M']} (K={big['K']}, H={big['H']}) reads back "
    f"{big['mixed_mean_cos']:.4f}, the smallest M = {small['M']} reads back {small['mixed_mean_cos']:.4f}: "
    f"{'more slots did not help' if big['mixed_mean_cos'] < small['mixed_mean_cos'] else 'more slots helped'} here. "
    f"At M^2/D = {big['pair_ratio_M2_over_D']:.2f} other items often share two slots with a key; the theory without "
    f"that pair term predicts {big['theory']['mean_cosine_no_pair']:.4f}, with it {big['theory']['mean_cosine']:.4f}, "
    f"measured {big['mixed_mean_cos']:.4f} +- {big['mixed_mean_cos_stderr']:.5f}."
)
if "prototype_mean_cos" in cfg[0]:
    print(
        "5. The prototype's formula, same settings: "
        + ", ".join(
            f"K={e['K']},H={e['H']}: {e['prototype_mean_cos']:.4f} "
            f"(given its slots: {e['prototype_diagnostics']['cosine_given_hash']:.4f}, "
            f"sum m^2/sum m = {fmt(e['prototype_diagnostics']['overlap_concentration'], '.1f')})"
            for e in cfg
        )
        + ". Where it falls below the default hash, its keys share runs of slots with a few partners."
    )
print(f"Runtime: whole notebook {m['runtime_seconds']:.0f} s.")

# %% [markdown]
# ## Table for the paper
#
# Written as LaTeX to `results/exp02_ablation_K_H/exp02_ablation_K_H.tex`.

# %%
table_metrics = exp.load_metrics()
table_hp = table_metrics["hyperparameters"]
table_tau = table_hp["taus"][0]
table_rows = [
    [
        e["K"],
        e["H"],
        e["load_factor"],
        e["mixed_mean_cos"],
        e["theory"]["mean_cosine"],
        e[f"mixed_share_above_{table_tau:g}"],
        e["theory"][f"share_above_{table_tau:g}"],
    ]
    for e in table_metrics["configs"]
]
print(
    exp.save_latex_table(
        "exp02_ablation_K_H.tex",
        ["K", "H", "load", "mean cos", "theory", f"share cos > {table_tau:g}", "theory"],
        table_rows,
        caption=(
            f"Ablation of K and H at D = {table_hp['D']:,}, N = {table_hp['N']:,}, "
            f"d = {table_hp['d']}, mean over {table_hp['n_seeds']} seed(s) (exp02): "
            "measurement beside theory."
        ),
    ).read_text()
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
record_metric(exp, "mean_cos_worst", lambda: min(cos), ".3f", "worst mean cosine over (K, H)")
