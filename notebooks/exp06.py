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
# **Setup.** Defaults in `params/exp06.yaml`; the cell after the parameters prints this run's
# settings. $n$ tracked items, each with $x_0 \in \mathbb R^m$ standard normal ($m$ = `x_dim`)
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

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from bbpm import BBPMMemoryFloat, BlockPermutationHash, Timer
from bbpm.baselines.decode import decode_top1, random_codebook
from bbpm.hashing import diagnostics
from bbpm.integration.keying import ProjectionKeys
from bbpm.theory.snr_bounds import expected_cosine
from bbpm.utils import Experiment

params = dict(
    seed=seed,
    D=D,
    d=d,
    K=K,
    H=H,
    block_size=block_size,
    n_values=n_values,
    x_dim=x_dim,
    bits_values=bits_values,
    main_bits=main_bits,
    sigmas=sigmas,
    n_items=n_items,
    n_steps=n_steps,
    fill_per_step=fill_per_step,
    refresh_every=refresh_every,
    refresh_sigma=refresh_sigma,
)
exp = Experiment("exp06_drift_stability", params)
if main_bits not in bits_values:
    raise ValueError(f"main_bits must be one of bits_values={bits_values}, got {main_bits}")
if refresh_sigma not in sigmas:
    raise ValueError(f"refresh_sigma must be one of sigmas={sigmas}, got {refresh_sigma}")
print(
    f"memory: D = {D:,} slots, d = {d}, K = {K}, H = {H}, block size L = {block_size}, "
    f"C = {n_values} value ids"
)
print(
    f"n = {n_items} tracked items, x_dim m = {x_dim}, key bits b in {bits_values} (main {main_bits}), "
    f"drift sigma in {sigmas}"
)
print(
    f"{n_steps} steps of {fill_per_step:,} filler items: load lambda = N*K*H/D from "
    f"{n_items * K * H / D:.2f} to {(n_items + n_steps * fill_per_step) * K * H / D:.1f}; "
    f"refresh every {refresh_every} steps at sigma = {refresh_sigma}"
)

# Centred codebook: the mean row of a raw random codebook piles up in every slot at high load
# and biases every read (measured in exp05), so the rows are centred and renormalised.
raw_codebook = random_codebook(n_values, d, seed=seed)
codebook = torch.nn.functional.normalize(raw_codebook - raw_codebook.mean(dim=0), dim=1)
gen = torch.Generator().manual_seed(seed + 1)
item_value_ids = torch.randint(n_values, (n_items,), generator=gen)
item_values = codebook[item_value_ids]
x0 = torch.randn(n_items, x_dim, generator=gen)
projection_keys = {b: ProjectionKeys(x_dim, n_bits=b, seed=seed + b) for b in bits_values}
FILLER_BASE = (
    1 << 40
)  # filler ids; projection keys are mixed 64-bit patterns, so a clash has odds ~2^-64


def new_memory() -> BBPMMemoryFloat:
    return BBPMMemoryFloat(D, d, K, H, BlockPermutationHash(D, block_size=block_size, seed=seed))


def filler_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``fill_per_step`` unrelated items written at ``step`` (the same in every memory)."""
    step_gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    ids = torch.randint(n_values, (fill_per_step,), generator=step_gen)
    keys = FILLER_BASE + (step - 1) * fill_per_step + torch.arange(fill_per_step, dtype=torch.int64)
    return keys, codebook[ids]


def recall(memory: BBPMMemoryFloat, keys: torch.Tensor) -> tuple[float, float]:
    """(top-1 success rate, mean cosine to the true code) of the tracked items read under ``keys [n_items]``."""
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

# %%
key_sharing = {}
for b, pk in projection_keys.items():
    keys0 = pk(x0)
    _, inverse, counts = torch.unique(keys0, return_inverse=True, return_counts=True)
    key_sharing[b] = {
        "measured": float((counts[inverse] > 1).double().mean()),
        "uniform_theory": 1.0 - (1.0 - 2.0**-b) ** (n_items - 1),
        "distinct_keys": int(counts.numel()),
    }
    print(
        f"{b:2d} bits: {key_sharing[b]['distinct_keys']} distinct keys for {n_items} items; "
        f"{key_sharing[b]['measured']:.3f} share a key (uniform codes: {key_sharing[b]['uniform_theory']:.3f})"
    )

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
bits0 = {b: pk.bits(x0) for b, pk in projection_keys.items()}
for b, memory in memories.items():
    memory.write(keys0[b], item_values)
refresh_memory.write(keys0[main_bits], item_values)
refresh_writes = n_items

drift_gen = torch.Generator().manual_seed(seed + 2)
x_t = {sigma: x0.clone() for sigma in sigmas}
rows = []
write_seconds, writes_timed = 0.0, 0
for t in tqdm(range(n_steps + 1), desc="time steps"):
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
    for b, memory in memories.items():
        success, cos = recall(memory, keys0[b])
        rows.append(
            {
                "t": t,
                "bits": b,
                "mode": "stable",
                "sigma": 0.0,
                "n_written": n_written,
                "success": success,
                "mean_cos": cos,
                "bit_flip_rate": 0.0,
                "key_unchanged": 1.0,
            }
        )
        for sigma in sigmas:
            pk = projection_keys[b]
            keys_t = pk(x_t[sigma])
            success, cos = recall(memory, keys_t)
            angle = torch.arccos(
                torch.nn.functional.cosine_similarity(x_t[sigma], x0, dim=1).clamp(-1, 1)
            )
            rows.append(
                {
                    "t": t,
                    "bits": b,
                    "mode": "drift",
                    "sigma": sigma,
                    "n_written": n_written,
                    "success": success,
                    "mean_cos": cos,
                    "bit_flip_rate": float((pk.bits(x_t[sigma]) != bits0[b]).double().mean()),
                    "key_unchanged": float((keys_t == keys0[b]).double().mean()),
                    "mean_angle": float(angle.mean()),
                }
            )
    success, cos = recall(refresh_memory, projection_keys[main_bits](x_t[refresh_sigma]))
    rows.append(
        {
            "t": t,
            "bits": main_bits,
            "mode": "refresh",
            "sigma": refresh_sigma,
            "n_written": n_items + t * fill_per_step,
            "total_writes": refresh_writes + t * fill_per_step,
            "success": success,
            "mean_cos": cos,
        }
    )
exp.save_raw(rows)

# %% [markdown]
# ## Theory and metrics
#
# Per $(\sigma, t)$: $\theta_t = \arctan(\sigma\sqrt t)$, flip rate $\theta_t/\pi$,
# $P(\text{unchanged}) = (1-\theta_t/\pi)^b$ and the predicted drifting recall from the measured
# stable recall. The stable mode's mean cosine is compared with
# `snr_bounds.expected_cosine` at $N = n + t \cdot$ `fill_per_step` items (it assumes distinct
# keys, so it does not see the shared keys of short codes).


# %%
def series(mode: str, bits: int, sigma: float, field: str) -> list[float]:
    return [
        r[field] for r in rows if r["mode"] == mode and r["bits"] == bits and r["sigma"] == sigma
    ]


steps = list(range(n_steps + 1))
theory_angle = {sigma: [math.atan(sigma * math.sqrt(t)) for t in steps] for sigma in sigmas}
curves = {}
for b in bits_values:
    stable = series("stable", b, 0.0, "success")
    curves[b] = {
        "stable_success": stable,
        "stable_mean_cos": series("stable", b, 0.0, "mean_cos"),
        "drift": {
            str(sigma): {
                field: series("drift", b, sigma, field)
                for field in ("success", "mean_cos", "bit_flip_rate", "key_unchanged", "mean_angle")
            }
            | {
                "key_unchanged_theory": [(1 - a / math.pi) ** b for a in theory_angle[sigma]],
                "success_predicted": [
                    (1 - a / math.pi) ** b * s + (1 - (1 - a / math.pi) ** b) / n_values
                    for a, s in zip(theory_angle[sigma], stable, strict=True)
                ],
            }
            for sigma in sigmas
        },
    }
refresh_rows = [r for r in rows if r["mode"] == "refresh"]
all_keys = torch.cat([keys0[main_bits], *(filler_batch(t)[0] for t in range(1, n_steps + 1))])
exp.save_metrics(
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
        "refresh": {
            "bits": main_bits,
            "sigma": refresh_sigma,
            "every": refresh_every,
            "success": [r["success"] for r in refresh_rows],
            "mean_cos": [r["mean_cos"] for r in refresh_rows],
            "total_writes": [r["total_writes"] for r in refresh_rows],
        },
        "collision_final": diagnostics.summarize(memories[main_bits].slots(all_keys), D),
        "memory_load_final": memories[main_bits].load_factor,
        "write_items_per_s": writes_timed / write_seconds if write_seconds > 0 else None,
    }
)

# %% [markdown]
# ## Figure
#
# Drawn from `results/exp06_drift_stability/metrics.json`. Solid lines with markers: measured;
# dotted / dashed: theory (see the legends).

# %%
m = exp.load_metrics()
hp = m["hyperparameters"]
t_axis = m["t"]
main = m["curves"][str(hp["main_bits"])]
sigma_color = {str(s): f"C{i + 1}" for i, s in enumerate(hp["sigmas"])}
bits_style = {str(b): ["-", "--", "-.", ":"][i % 4] for i, b in enumerate(hp["bits_values"])}
bits_marker = {str(b): "os^D"[i % 4] for i, b in enumerate(hp["bits_values"])}

fig, axes = plt.subplots(2, 3, figsize=(18, 10))
for ax, field, ylabel, title in [
    (
        axes[0, 0],
        "success",
        "top-1 recall of the t = 0 items",
        f"(a) recall vs time, {hp['main_bits']}-bit keys",
    ),
    (
        axes[0, 1],
        "mean_cos",
        "mean cosine(read, true code)",
        f"(b) fidelity vs time, {hp['main_bits']}-bit keys",
    ),
]:
    ax.plot(t_axis, main[f"stable_{field}"], "o-", color="k", ms=3, label="stable keys")
    for s, c in main["drift"].items():
        ax.plot(t_axis, c[field], "o-", ms=3, color=sigma_color[s], label=f"drift σ = {s}")
        if field == "success":
            ax.plot(t_axis, c["success_predicted"], ":", lw=2, color=sigma_color[s])
    ax.plot(
        t_axis,
        m["refresh"][field],
        "s--",
        ms=3,
        color="C5",
        label=f"drift σ = {hp['refresh_sigma']} + re-write every {hp['refresh_every']} steps",
    )
    ax.set_xlabel("time step t")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
axes[0, 0].plot([], [], "k:", lw=2, label="theory: P(key unchanged) x stable + rest x 1/C")
axes[0, 0].legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 0.1), framealpha=0.9)
(theory_line,) = axes[0, 1].plot(t_axis, m["stable_cos_theory"], "k--", lw=1)
axes[0, 1].legend(
    [theory_line],
    ["theory, stable keys (assumes distinct keys); other lines as in (a)"],
    fontsize=8,
)
top = axes[0, 0].secondary_xaxis(
    "top",
    functions=(
        lambda t: (hp["n_items"] + t * hp["fill_per_step"]) * hp["K"] * hp["H"] / hp["D"],
        lambda lam: (lam * hp["D"] / (hp["K"] * hp["H"]) - hp["n_items"]) / hp["fill_per_step"],
    ),
)
top.set_xlabel("memory load λ = NKH/D")

ax = axes[0, 2]
for s, c in main["drift"].items():
    ax.plot(t_axis, c["bit_flip_rate"], "o", ms=4, color=sigma_color[s], label=f"measured, σ = {s}")
    ax.plot(t_axis, m["theory_flip_rate"][s], "-", color=sigma_color[s], lw=1)
ax.plot([], [], "k-", lw=1, label="theory arctan(σ√t)/π")
ax.set_xlabel("time step t")
ax.set_ylabel("share of key bits flipped since t = 0")
ax.set_title(f"(c) key-bit flip rate ({hp['main_bits']} bits)")
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8)

ax = axes[1, 0]
for b, curve in m["curves"].items():
    for s, c in curve["drift"].items():
        ax.plot(t_axis, c["key_unchanged"], bits_marker[b], ms=3, color=sigma_color[s])
        ax.plot(t_axis, c["key_unchanged_theory"], bits_style[b], lw=1, color=sigma_color[s])
for s in main["drift"]:
    ax.plot([], [], "-", color=sigma_color[s], label=f"σ = {s}")
for b in m["curves"]:
    ax.plot(
        [],
        [],
        bits_style[b] + bits_marker[b],
        color="grey",
        ms=4,
        label=f"{b} bits (line: (1-θ/π)^b)",
    )
ax.set_xlabel("time step t")
ax.set_ylabel("P(key_t = key_0)")
ax.set_title("(d) keys that survive the drift: measured vs theory")
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8, ncol=2)

ax = axes[1, 1]
bits_axis = [int(b) for b in m["curves"]]
ax.plot(
    bits_axis,
    [m["curves"][str(b)]["stable_success"][-1] for b in bits_axis],
    "o-",
    color="k",
    label="stable keys",
)
for s in main["drift"]:
    ax.plot(
        bits_axis,
        [m["curves"][str(b)]["drift"][s]["success"][-1] for b in bits_axis],
        "o-",
        color=sigma_color[s],
        label=f"drift σ = {s}",
    )
    ax.plot(
        bits_axis,
        [m["curves"][str(b)]["drift"][s]["success_predicted"][-1] for b in bits_axis],
        ":",
        lw=2,
        color=sigma_color[s],
    )
ax.plot([], [], "k:", lw=2, label="theory")
ax.set_xlabel("key bits b")
ax.set_ylabel(f"top-1 recall at t = {t_axis[-1]}")
ax.set_title("(e) short keys survive drift, long keys stay distinct")
ax.set_xticks(bits_axis)
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8)

ax = axes[1, 2]
ks = m["key_sharing_t0"]
ax.plot(
    bits_axis,
    [ks[str(b)]["measured"] for b in bits_axis],
    "o-",
    color="k",
    label="measured (SimHash of Gaussian x)",
)
ax.plot(
    bits_axis,
    [ks[str(b)]["uniform_theory"] for b in bits_axis],
    "k--",
    lw=1,
    label="uniform codes: 1-(1-2^-b)^(n-1)",
)
ax.set_xlabel("key bits b")
ax.set_ylabel(f"share of the {hp['n_items']} items sharing their key")
ax.set_title("(f) cost of short keys at t = 0: distinct items share a key")
ax.set_xticks(bits_axis)
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8)
fig.suptitle(
    f"Key drift: D = {hp['D']:,}, d = {hp['d']}, K = {hp['K']}, H = {hp['H']}, C = {hp['n_values']}, "
    f"n = {hp['n_items']} tracked items, {hp['fill_per_step']:,} new items per step"
)
fig.tight_layout()
exp.save_figure(fig, "drift_stability.png")
plt.show()

# %% [markdown]
# ## What the run shows

# %%
T = t_axis[-1]
mb = str(hp["main_bits"])
print(
    f"Stable {mb}-bit keys: recall {main['stable_success'][0]:.3f} at t = 0 and {main['stable_success'][-1]:.3f} at t = {T} "
    f"(load {m['load'][0]:.2f} -> {m['load'][-1]:.1f}); mean cosine {main['stable_mean_cos'][0]:.3f} -> "
    f"{main['stable_mean_cos'][-1]:.3f} (theory {m['stable_cos_theory'][0]:.3f} -> {m['stable_cos_theory'][-1]:.3f})."
)
for s, c in main["drift"].items():
    half = next(
        (
            t
            for t, v in zip(t_axis, c["success"], strict=True)
            if v < 0.5 * main["stable_success"][t]
        ),
        None,
    )
    print(
        f"Drift σ = {s}: recall {c['success'][-1]:.3f} at t = {T} (predicted {c['success_predicted'][-1]:.3f}); "
        f"keys unchanged {c['key_unchanged'][-1]:.3f} (theory {c['key_unchanged_theory'][-1]:.3f}); bit flip rate "
        f"{c['bit_flip_rate'][-1]:.3f} (theory {m['theory_flip_rate'][s][-1]:.3f}); "
        + (
            f"recall below half the stable recall from t = {half}."
            if half is not None
            else "recall stays above half the stable recall."
        )
    )
worst = max(
    abs(a - b)
    for curve in m["curves"].values()
    for c in curve["drift"].values()
    for a, b in zip(c["success"], c["success_predicted"], strict=True)
)
print(f"Largest |measured - predicted| drifting recall over all bit widths, σ and t: {worst:.3f}.")
for b in bits_axis:
    cb = m["curves"][str(b)]
    print(
        f"{b:2d} bits: {ks[str(b)]['measured']:.3f} of items share their t = 0 key; recall at t = {T}: stable "
        f"{cb['stable_success'][-1]:.3f}, "
        + ", ".join(f"σ = {s}: {cb['drift'][s]['success'][-1]:.3f}" for s in cb["drift"])
    )
r = m["refresh"]
print(
    f"Re-writing every {r['every']} steps (σ = {r['sigma']}, {r['bits']} bits): recall {np.mean(r['success'][1:]):.3f} on average "
    f"over t = 1..{T} (min {min(r['success']):.3f}) vs {np.mean(main['drift'][str(r['sigma'])]['success'][1:]):.3f} without, "
    f"for {r['total_writes'][-1] - m['n_written'][-1]:,} extra writes ({r['total_writes'][-1] / m['n_written'][-1] - 1:.1%} more load)."
)
print(
    f"Collision diagnostics at t = {T} ({mb}-bit memory): max load {m['collision_final']['max_load']}, "
    f"gini {m['collision_final']['gini_load']:.3f}, q2 x D {m['collision_final']['q2'] * hp['D']:.3f}."
)


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
