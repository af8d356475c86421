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
# # exp06: Key drift and stability
#
# **Claim.** BBPM finds an item only under the exact key it was written with. With **stable
# keys** (fixed ids, or content keys of inputs that do not change) an item written at $t = 0$
# stays retrievable while new items keep arriving; its recall degrades only through the load.
# With **content keys that drift**, $\text{key}_t = \text{hash}(\text{proj}(x_t))$ with
# $x_t = x_{t-1} + \sigma\,\varepsilon_t$, recall collapses as soon as one key bit flips:
# the new key addresses unrelated slots. For sign-quantised random projections (SimHash) the
# collapse is predictable. A bit flips when $x_t$ and $x_0$ fall on two sides of its random
# hyperplane, with probability $\theta_t/\pi$ for the angle $\theta_t$ between them; the $b$
# bits of a key use independent hyperplanes, so
#
# $$P(\text{key}_t = \text{key}_0) = (1 - \theta_t/\pi)^b .$$
#
# For $x_0 \sim \mathcal N(0, I_m)$ and $t$ steps of $\mathcal N(0, \sigma^2 I_m)$ noise,
# $\|x_t - x_0\|^2 \approx m t \sigma^2$ and $\|x_0\|^2 \approx m$, so
# $\cos\theta_t \approx 1/\sqrt{1 + t\sigma^2}$, i.e. $\theta_t \approx \arctan(\sigma\sqrt t)$.
# A query whose key changed reads noise and decodes correctly only by chance ($1/C$), so the
# expected drifting recall is
# $P(\text{unchanged}) \cdot \text{recall}_\text{stable}(t) + (1 - P(\text{unchanged}))/C$.
#
# Fewer bits make a key more robust to drift but let more *different* items share a key at
# $t = 0$ (their values are then averaged), which costs recall even without drift. A
# write-side mitigation, re-writing every tracked item under its current key every
# `refresh_every` steps, is measured too.
#
# **Setup.** This run's settings (`params/exp06.yaml` for the full run): {glue:text}`settings`.
# $n$ tracked items, each with $x_0 \in \mathbb R^m$ standard normal ($m$ = `x_dim`)
# and a random value id out of $C$ (the value written is row `id` of a random unit codebook,
# centred as in exp05), are written at $t = 0$ under `ProjectionKeys` ($b$ sign bits of a
# fixed Gaussian projection, packed and mixed into an int64 key). At every step
# `fill_per_step` new unrelated items (integer ids, random values) are written, so the load
# grows the same way in every mode. The memory: $D$ slots, value dimension $d$, $K$ slots per
# hash, $H$ hashes, block hashing (block size $L$). Recall = top-1 decode of the read vector
# against the codebook equals the true id.

# %% tags=["parameters"]
seed = 0
D = 131072
d = 64
K = 32
H = 1
block_size = 4096
n_values = 1024
x_dim = 32
bits_values = [12, 16, 24]
main_bits = 16
sigmas = [0.01, 0.03, 0.1]
n_items = 1000
n_steps = 40
fill_per_step = 5000
refresh_every = 5
refresh_sigma = 0.03

# %% tags=["hide-input"]
import math

import numpy as np
import torch
from myst_nb import glue

from bbpm import BBPMMemoryFloat, BlockPermutationHash, Timer
from bbpm.baselines.decode import decode_top1, random_codebook
from bbpm.experiments import drift, needle
from bbpm.hashing import diagnostics
from bbpm.integration.keying import ProjectionKeys
from bbpm.theory.snr_bounds import expected_cosine
from bbpm.utils import Experiment, progress, show_table

exp = Experiment.from_notebook("exp06_drift_stability", "notebooks/exp06.py", globals())
if main_bits not in bits_values:
    raise ValueError(f"main_bits must be one of bits_values={bits_values}, got {main_bits}")
if refresh_sigma not in sigmas:
    raise ValueError(f"refresh_sigma must be one of sigmas={sigmas}, got {refresh_sigma}")
load_first = n_items * K * H / D
load_last = (n_items + n_steps * fill_per_step) * K * H / D
glue(
    "settings",
    f"D = {D:,} slots, d = {d}, K = {K}, H = {H}, block size L = {block_size}, C = {n_values} "
    f"value ids; n = {n_items} tracked items, m = {x_dim}, key bits b in {bits_values} (main "
    f"{main_bits}), drift σ in {sigmas}; {n_steps} steps of {fill_per_step:,} filler items "
    f"(load λ = NKH/D from {load_first:.2f} to {load_last:.1f}); re-write every "
    f"{refresh_every} steps at σ = {refresh_sigma}",
    display=False,
)

# %% tags=["hide-input"]
# Centred codebook: the mean row of a raw random codebook piles up in every slot at high load
# and biases every read (measured in exp05), so the rows are centred and renormalised.
codebook = needle.centred_codebook(random_codebook(n_values, d, seed=seed))
gen = torch.Generator().manual_seed(seed + 1)
item_value_ids = torch.randint(n_values, (n_items,), generator=gen)
item_values = codebook[item_value_ids]
x0 = torch.randn(n_items, x_dim, generator=gen)
projection_keys = {b: ProjectionKeys(x_dim, n_bits=b, seed=seed + b) for b in bits_values}
FILLER_BASE = 1 << 40  # filler ids; projection keys are mixed 64-bit patterns: clash odds ~2^-64


def new_memory() -> BBPMMemoryFloat:
    return BBPMMemoryFloat(D, d, K, H, BlockPermutationHash(D, block_size=block_size, seed=seed))


def filler_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``fill_per_step`` unrelated items written at ``step`` (the same in every memory)."""
    step_gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    ids = torch.randint(n_values, (fill_per_step,), generator=step_gen)
    keys = FILLER_BASE + (step - 1) * fill_per_step + torch.arange(fill_per_step, dtype=torch.int64)
    return keys, codebook[ids]


def recall(memory: BBPMMemoryFloat, keys: torch.Tensor) -> tuple[float, float]:
    """(top-1 success rate, mean cosine to the true code) of the tracked items read under
    ``keys [n_items]``."""
    reads = memory.read(keys)
    decoded, _, _ = decode_top1(reads, codebook)
    cosines = torch.nn.functional.cosine_similarity(reads, item_values, dim=1)
    return float((decoded == item_value_ids).double().mean()), float(cosines.mean())


# %% [markdown]
# ## Keys at $t = 0$
#
# How many tracked items share their $t=0$ key with another tracked item, for each bit width:
# the price of short keys. For uniformly spread codes this would be
# $1 - (1 - 2^{-b})^{n-1}$; SimHash codes of Gaussian inputs are not uniform (neighbouring
# sign patterns are more likely), so the measured share can be higher.

# %% tags=["hide-input"]
key_sharing = {}
for b, pk in projection_keys.items():
    key_sharing[b] = drift.key_sharing(pk(x0), b)
show_table(
    ["key bits", "distinct keys", "share of items sharing a key", "uniform codes"],
    [[b, v["distinct_keys"], f"{v['measured']:.3f}", f"{v['uniform_theory']:.3f}"] for b, v in key_sharing.items()],
)  # fmt: skip

# %% [markdown]
# ## The run
#
# One memory per bit width receives the same writes (the tracked items under their $t=0$ keys,
# then the filler), so the stable query and every drifting query of that bit width read the
# same memory: they differ only in the key used to read. A further memory ($b$ = `main_bits`,
# $\sigma$ = `refresh_sigma`) also re-writes every tracked item under its current key at every
# step $t$ divisible by `refresh_every` (old copies stay, as BBPM has no delete), and is queried
# with the current key. Each $\sigma$ has its own drift trajectory from the same $x_0$.


# %%
memories = {b: new_memory() for b in bits_values}
refresh_memory = new_memory()
keys0 = {b: pk(x0) for b, pk in projection_keys.items()}
for b, memory in memories.items():
    memory.write(keys0[b], item_values)
refresh_memory.write(keys0[main_bits], item_values)
refresh_writes = n_items
drift_gen = torch.Generator().manual_seed(seed + 2)
x_t = {sigma: x0.clone() for sigma in sigmas}
rows = []
write_seconds, writes_timed = 0.0, 0
for t in progress(range(n_steps + 1)):
    if t > 0:
        filler_keys, filler_values = filler_batch(t)
        for memory in [*memories.values(), refresh_memory]:
            with Timer() as timer:
                memory.write(filler_keys, filler_values)
            write_seconds += timer.elapsed
            writes_timed += fill_per_step
        for sigma in sigmas:
            x_t[sigma] = x_t[sigma] + sigma * torch.randn(n_items, x_dim, generator=drift_gen)
        if t % refresh_every == 0:
            refresh_memory.write(projection_keys[main_bits](x_t[refresh_sigma]), item_values)
            refresh_writes += n_items
    n_written = n_items + t * fill_per_step
    rows.extend(drift.recall_rows(t, n_written, memories, recall, projection_keys, x0, x_t))
    success, cos = recall(refresh_memory, projection_keys[main_bits](x_t[refresh_sigma]))
    rows.append({"t": t, "bits": main_bits, "mode": "refresh", "sigma": refresh_sigma,
                 "n_written": n_written, "total_writes": refresh_writes + t * fill_per_step,
                 "success": success, "mean_cos": cos})  # fmt: skip
raw_csv = exp.save_raw(rows)

# %% [markdown]
# ## Theory and metrics
#
# Per $(\sigma, t)$: $\theta_t = \arctan(\sigma\sqrt t)$, flip rate $\theta_t/\pi$,
# $P(\text{unchanged}) = (1-\theta_t/\pi)^b$ and the predicted drifting recall from the measured
# stable recall. The stable mode's mean cosine is compared with
# `snr_bounds.expected_cosine` at $N = n + t \cdot$ `fill_per_step` items (it assumes distinct
# keys, so it does not see the shared keys of short codes).


# %%
steps = list(range(n_steps + 1))
theory_angle = drift.drift_angles(sigmas, steps)
curves = drift.drift_curves(rows, bits_values, theory_angle, n_values)
refresh_rows = [r for r in rows if r["mode"] == "refresh"]
all_keys = torch.cat([keys0[main_bits], *(filler_batch(t)[0] for t in range(1, n_steps + 1))])
metrics_json = exp.save_metrics(
    {
        "hash": memories[main_bits].hash_fn.config(),
        "t": steps,
        "n_written": [n_items + t * fill_per_step for t in steps],
        "load": [(n_items + t * fill_per_step) * K * H / D for t in steps],
        "key_sharing_t0": {str(b): v for b, v in key_sharing.items()},
        "theory_angle": {str(s): v for s, v in theory_angle.items()},
        "theory_flip_rate": {str(s): [a / math.pi for a in v] for s, v in theory_angle.items()},
        "stable_cos_theory": [
            expected_cosine(n_items + t * fill_per_step, D, K, H, d, block_size=block_size)
            for t in steps
        ],
        "curves": {str(b): c for b, c in curves.items()},
        "refresh": {"bits": main_bits, "sigma": refresh_sigma, "every": refresh_every}
        | {f: [r[f] for r in refresh_rows] for f in ("success", "mean_cos", "total_writes")},
        "collision_final": diagnostics.summarize(memories[main_bits].slots(all_keys), D),
        "memory_load_final": memories[main_bits].load_factor,
        "write_items_per_s": writes_timed / write_seconds if write_seconds > 0 else None,
    }
)

# %% [markdown]
# ## Figure
#
# Drawn from `results/exp06_drift_stability/metrics.json`. Solid lines with markers: measured;
# dotted / dashed: theory (see the legends). Top: recall and fidelity over time for the main
# bit width, and the key-bit flip rate; bottom: the keys that survive the drift, recall at the
# last step against the key length, and the share of items sharing a key at $t = 0$.

# %% tags=["hide-input"]
m = exp.load_metrics()
hp = m["hyperparameters"]
t_axis, mb = m["t"], str(hp["main_bits"])
main = m["curves"][mb]
figure_png = exp.save_figure(drift.drift_figure(m), "drift_stability.png")

# %% [markdown]
# ## What the run shows
#
# **Stable keys.** With {glue:text}`main_bits`-bit keys the recall of the $t = 0$ items is
# {glue:text}`stable_recall_t0` at $t = 0$ and {glue:text}`stable_recall_last` at
# $t$ = {glue:text}`t_last` (load {glue:text}`load_t0` → {glue:text}`load_last`); the mean
# cosine goes {glue:text}`stable_cos_t0` → {glue:text}`stable_cos_last` (theory
# {glue:text}`stable_cos_theory_t0` → {glue:text}`stable_cos_theory_last`).
#
# **Drifting keys.** Per drift scale $\sigma$ at the last step, for the main bit width:

# %% tags=["hide-input"]
T = t_axis[-1]
# fmt: off
for name, value, spec, what in [
    ("main_bits", hp["main_bits"], "d", "key bits of the main memory"),
    ("t_last", T, "d", "last time step"),
    ("stable_recall_t0", main["stable_success"][0], ".3f", "stable-key recall at t = 0"),
    ("stable_recall_last", main["stable_success"][-1], ".3f", "stable-key recall at the last step"),
    ("load_t0", m["load"][0], ".2f", "load at t = 0"),
    ("load_last", m["load"][-1], ".1f", "load at the last step"),
    ("stable_cos_t0", main["stable_mean_cos"][0], ".3f", "stable-key mean cosine at t = 0"),
    ("stable_cos_last", main["stable_mean_cos"][-1], ".3f", "stable-key mean cosine at the last step"),
    ("stable_cos_theory_t0", m["stable_cos_theory"][0], ".3f", "theory mean cosine at t = 0"),
    ("stable_cos_theory_last", m["stable_cos_theory"][-1], ".3f", "theory mean cosine at the last step"),
]:
    exp.record(name, value, spec, what)
drift_table = []
for s, c in main["drift"].items():
    ratio = [v / max(main["stable_success"][t], 1e-12) for t, v in zip(t_axis, c["success"], strict=True)]
    half = next((t for t, r in zip(t_axis, ratio, strict=True) if r < 0.5), None)
    drift_table.append([s] + [f"{v:.3f}" for v in (c["success"][-1], c["success_predicted"][-1], c["key_unchanged"][-1],
                        c["key_unchanged_theory"][-1], c["bit_flip_rate"][-1], m["theory_flip_rate"][s][-1])]
                       + ["never" if half is None else f"t = {half}"])
show_table(["σ", "recall", "predicted", "keys unchanged", "theory", "bit flip rate", "theory",
            "recall < half the stable recall from"], drift_table)
# fmt: on

# %% [markdown]
# Over all bit widths, $\sigma$ and $t$, the measured drifting recall is within
# {glue:text}`max_err_drift_recall` of the prediction $P(\text{unchanged}) \cdot
# \text{recall}_\text{stable} + (1 - P(\text{unchanged}))/C$.
#
# **Key length.** Short keys survive drift but let distinct items share a key at $t = 0$;
# long keys stay distinct but break at the first flipped bit:

# %% tags=["hide-input"]
worst = max(
    abs(a - b)
    for curve in m["curves"].values()
    for c in curve["drift"].values()
    for a, b in zip(c["success"], c["success_predicted"], strict=True)
)
exp.record("max_err_drift_recall", worst, ".3f", "largest |measured - predicted| drifting recall")
show_table(
    ["key bits", "share of items sharing a key at t = 0", "stable recall at the end"]
    + [f"σ = {s}" for s in main["drift"]],
    [[b, f"{m['key_sharing_t0'][b]['measured']:.3f}", f"{c['stable_success'][-1]:.3f}"]
     + [f"{c['drift'][s]['success'][-1]:.3f}" for s in main["drift"]] for b, c in m["curves"].items()],
)  # fmt: skip

# %% [markdown]
# **Re-writing.** Re-writing every tracked item every {glue:text}`refresh_every` steps
# ($\sigma$ = {glue:text}`refresh_sigma`) keeps the recall at {glue:text}`refresh_recall_mean`
# on average over $t \geq 1$ (minimum {glue:text}`refresh_recall_min`), against
# {glue:text}`no_refresh_recall_mean` without, for {glue:text}`refresh_extra_writes` extra
# writes ({glue:text}`refresh_extra_load` more load).
#
# **Collisions.** At the last step the main memory's slots have max load
# {glue:text}`final_max_load`, Gini coefficient {glue:text}`final_gini` and
# $q_2 \cdot D$ = {glue:text}`final_q2_d`.

# %% tags=["hide-input"]
r, cf = m["refresh"], m["collision_final"]
# fmt: off
for name, value, spec, what in [
    ("refresh_every", r["every"], "d", "steps between re-writes"),
    ("refresh_sigma", r["sigma"], "g", "drift scale of the re-written memory"),
    ("refresh_recall_mean", float(np.mean(r["success"][1:])), ".3f", "mean recall with re-writes, t >= 1"),
    ("refresh_recall_min", min(r["success"]), ".3f", "lowest recall with re-writes"),
    ("no_refresh_recall_mean", float(np.mean(main["drift"][str(r["sigma"])]["success"][1:])), ".3f", "mean recall without re-writes, t >= 1"),
    ("refresh_extra_writes", r["total_writes"][-1] - m["n_written"][-1], ",d", "extra writes of the re-writes"),
    ("refresh_extra_load", r["total_writes"][-1] / m["n_written"][-1] - 1, ".1%", "extra load of the re-writes"),
    ("final_max_load", cf["max_load"], "d", "max slot load at the last step"),
    ("final_gini", cf["gini_load"], ".3f", "Gini coefficient of the slot loads at the last step"),
    ("final_q2_d", cf["q2"] * hp["D"], ".3f", "collision probability q2 times D at the last step"),
]:
    exp.record(name, value, spec, what)
# fmt: on


# %% [markdown]
# ## Records for the paper
#
# The numbers the paper quotes, read from this run's `metrics.json` and recorded by name
# (`results/exp06_drift_stability/records.json`); a number this run did not produce is not recorded, and the
# paper shows a placeholder for it.

# %% tags=["hide-input"]
from bbpm.paper import record_metric  # noqa: E402

paper_metrics = exp.load_metrics()
pm, hp = paper_metrics, paper_metrics["hyperparameters"]
main_curve = pm["curves"].get(str(hp.get("main_bits")), {})
record_metric(exp, "main_bits", lambda: hp["main_bits"], "d", "key bits of the main curve")
record_metric(
    exp,
    "stable_success_last",
    lambda: main_curve["stable_success"][-1],
    ".1%",
    "recall of stable keys at the last step (main bits)",
)
drift_sigmas = sorted(main_curve.get("drift", {}), key=float)
for label, sigma in (("smallest", drift_sigmas[:1]), ("largest", drift_sigmas[-1:])):
    record_metric(
        exp, f"drift_sigma_{label}", lambda s=sigma: float(s[0]), "g", f"{label} drift sigma"
    )
    record_metric(
        exp,
        f"drift_success_last_{label}_sigma",
        lambda s=sigma: main_curve["drift"][s[0]]["success"][-1],
        ".1%",
        f"recall of drifting keys at the last step, {label} sigma",
    )
