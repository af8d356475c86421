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
# (`BlockPermutationHash`) costs little retrieval fidelity against hashing over the whole table
# (`GlobalAffineHash`, default `mixed` mode) at equal $D, N, K, H$, as long as the block is
# large ($L \gg K$; `block_size`): the slot loads follow the same Binomial/Poisson law with load
# $\lambda = NKH/D$, and two items rarely share more than one slot. The small loss that remains
# comes from the block: items in the same block share a slot pair more often than over the
# whole table, and the loads of one block's slots move together. `bbpm.theory` predicts it.
# Two things hurt a lot, and this notebook measures both rather than assuming them:
#
# * **small blocks** (`small_block_size`, with $K$ a sizeable share $K/L$ of the block; the
#   settings cell prints $K/L$): any other item in the same block shares many of its slots. Crosstalk from one neighbour then no longer averages
#   out over the $K$ slots: it is correlated;
# * **the prototype's global formula** `slot = (key * salt + k * 1337) mod D`
#   (`GlobalAffineHash(D, mode="prototype")`): with consecutive integer keys, keys a fixed
#   distance apart share whole runs of slots.
#
# The occupancy statistics cannot tell these apart (the small-block loads are nearly as close
# to the uniform-hashing histogram as the global ones, and the prototype's are even *more*
# even than random); the number of slots an item shares with each colliding neighbour can, and it
# tracks the fidelity.
#
# **Setup.** Defaults in `params/exp03.yaml` (the prototype's setting, $D \approx 10^6$ rounded
# to a multiple of the block size); the cell after the parameters prints this run's settings:
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

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from bbpm import BBPMMemoryFloat, BlockPermutationHash, GlobalAffineHash, Timer
from bbpm.hashing import diagnostics
from bbpm.theory.collision_model import expected_load_histogram, expected_max_load
from bbpm.theory.snr_bounds import expected_cosine
from bbpm.utils import Experiment

params = dict(
    seed=seed,
    D=D,
    d=d,
    K=K,
    H=H,
    block_size=block_size,
    small_block_size=small_block_size,
    N_values=N_values,
    n_eval=n_eval,
    batch_size=batch_size,
    hash_seeds=hash_seeds,
    hist_N=hist_N,
    cos_threshold=cos_threshold,
    timing_rounds=timing_rounds,
)
exp = Experiment("exp03_block_vs_global", params)
if hist_N not in N_values:
    raise ValueError(f"hist_N must be one of N_values={N_values}, got {hist_N}")
if max(N_values) < n_eval:
    raise ValueError(f"n_eval={n_eval} is larger than the largest N={max(N_values)}; lower n_eval")

# The four addressing schemes, all over the same D slots. Each entry builds the hash for a seed.
HASHES = {
    "global (mixed)": lambda s: GlobalAffineHash(D, seed=s, mode="mixed"),
    f"block L={block_size}": lambda s: BlockPermutationHash(D, block_size=block_size, seed=s),
    f"block L={small_block_size}": lambda s: BlockPermutationHash(
        D, block_size=small_block_size, seed=s
    ),
    "global (prototype formula)": lambda s: GlobalAffineHash(D, seed=s, mode="prototype"),
}
print(
    f"D = {D:,} = {D // block_size} blocks of {block_size} = {D // small_block_size} blocks of {small_block_size}"
)
print(
    f"d = {d}, K = {K}, H = {H}: an item takes K/L = {K / block_size:.4f} of a block of {block_size}, "
    f"{K / small_block_size:.3f} of a block of {small_block_size}"
)
print(
    f"N = {N_values}, keys evaluated per checkpoint {[min(N, n_eval) for N in N_values]}, hash seeds {hash_seeds}"
)
print(
    f"load lambda = N*K*H/D from {min(N_values) * K * H / D:.2f} to {max(N_values) * K * H / D:.2f}"
)

# %% [markdown]
# ## Measuring correlated crosstalk
#
# A read averages the $KH$ slots of an item; each slot also holds the other items written
# there. If every colliding neighbour shares only one slot, its contribution is diluted
# $KH$-fold; if a neighbour shares $m$ slots, it survives with weight $m/KH$. For each
# evaluated item we therefore list every other item that shares at least one slot with it
# (a join on slot ids) and count how many slots it shares.


# %%
def neighbour_overlap(idx: torch.Tensor, eval_rows: torch.Tensor, D: int) -> dict[str, float]:
    """Slot sharing between the evaluated items and all written items.

    Args:
        idx: ``[N, M]`` int64 slots in ``[0, D)`` of every written item (M = K*H).
        eval_rows: ``[E]`` rows of ``idx`` to evaluate.

    Returns:
        mean number of distinct neighbours (other items sharing >= 1 slot) per evaluated item,
        mean slots shared per (item, neighbour) pair, and mean over items of the largest
        number of slots shared with a single neighbour.
    """
    n_items, slots_per_item = idx.shape
    eval_slots = idx[eval_rows].reshape(-1)
    eval_owner = torch.arange(eval_rows.numel()).repeat_interleave(slots_per_item)
    touched = torch.zeros(D, dtype=torch.bool)
    touched[eval_slots] = True
    flat = idx.reshape(-1)
    hit = touched[flat]
    other_slots = flat[hit]
    other_owner = torch.arange(n_items).repeat_interleave(slots_per_item)[hit]
    order = torch.argsort(eval_slots)
    sorted_slots, sorted_owner = eval_slots[order], eval_owner[order]
    lo = torch.searchsorted(sorted_slots, other_slots, right=False)
    hi = torch.searchsorted(sorted_slots, other_slots, right=True)
    reps = hi - lo  # >= 1: every selected slot belongs to at least one evaluated item
    pos = torch.repeat_interleave(lo, reps) + (
        torch.arange(int(reps.sum())) - torch.repeat_interleave(torch.cumsum(reps, 0) - reps, reps)
    )
    pair_eval = sorted_owner[pos]
    pair_other = torch.repeat_interleave(other_owner, reps)
    not_self = pair_other != eval_rows[pair_eval]
    pair_ids = pair_eval[not_self] * n_items + pair_other[not_self]
    pairs, shared = torch.unique(pair_ids, return_counts=True)
    pair_item = pairs // n_items
    n_eval_items = eval_rows.numel()
    neighbours = torch.bincount(pair_item, minlength=n_eval_items).double()
    max_shared = torch.zeros(n_eval_items, dtype=torch.int64).scatter_reduce(
        0, pair_item, shared, reduce="amax"
    )
    return {
        "neighbours_per_item": float(neighbours.mean()),
        "shared_slots_per_neighbour": float(shared.double().mean()) if shared.numel() else math.nan,
        "max_shared_slots": float(max_shared.double().mean()),
    }


# %% [markdown]
# ## The sweep
#
# For every hash seed: one memory per hash, filled incrementally. Keys are $0..N-1$, so the
# memory after $N$ items is the same whether it was filled in one go or as a prefix of a longer
# stream; at each checkpoint $N$ we read a seeded random subset of the written keys, score the
# cosine between read and written vectors, and compute the collision diagnostics
# (`bbpm.hashing.diagnostics.summarize`) of all $N$ items' slots plus the neighbour overlap.

# %%
rows = []
occupancy = {}
memories = {}
progress = tqdm(total=len(HASHES) * len(hash_seeds) * len(N_values), desc="seed x N x hash")
for hash_seed in hash_seeds:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + hash_seed)
    values = torch.randn(max(N_values), d, generator=gen)
    values = values / values.norm(dim=1, keepdim=True)
    hash_fns = {name: make_hash(hash_seed) for name, make_hash in HASHES.items()}
    memories = {name: BBPMMemoryFloat(D, d, K, H, hash_fn) for name, hash_fn in hash_fns.items()}
    written = 0
    for N in N_values:
        keys = torch.arange(N, dtype=torch.int64)
        eval_rows = torch.randperm(
            N, generator=torch.Generator().manual_seed(seed + 7919 * N + hash_seed)
        )[:n_eval]
        for name, memory in memories.items():
            for start in range(written, N, batch_size):
                stop = min(start + batch_size, N)
                memory.write(keys[start:stop], values[start:stop])
            cosines = torch.nn.functional.cosine_similarity(
                memory.read(keys[eval_rows]), values[eval_rows], dim=1
            ).double()
            idx = hash_fns[name].indices(keys, K, H)
            rows.append(
                {
                    "hash": name,
                    "hash_seed": hash_seed,
                    "N": N,
                    "load": N * K * H / D,
                    "mean_cos": float(cosines.mean()),
                    "sem_cos": float(cosines.std() / math.sqrt(cosines.numel())),
                    "min_cos": float(cosines.min()),
                    "share_above_threshold": float((cosines > cos_threshold).double().mean()),
                    **diagnostics.summarize(idx, D),
                    **neighbour_overlap(idx, eval_rows, D),
                }
            )
            if N == hist_N and hash_seed == hash_seeds[0]:
                occupancy[name] = diagnostics.occupancy_hist(idx, D)
            progress.update(1)
        written = N
progress.close()

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
for round_ in tqdm(range(timing_rounds), desc="timing rounds"):
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
exp.save_raw(rows)

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
def by_hash(stat: str) -> dict[str, dict[str, list[float]]]:
    """``{hash: {"mean": [per N], "spread": [max - min over seeds, per N]}}`` of a row statistic."""
    table = {}
    for name in HASHES:
        means, spreads = [], []
        for N in N_values:
            vals = [r[stat] for r in rows if r["hash"] == name and r["N"] == N]
            means.append(
                float(np.mean(vals))
            )  # NaN (saved as null) where undefined, e.g. no neighbours
            spreads.append(float(np.max(vals) - np.min(vals)))
        table[name] = {"mean": means, "spread": spreads}
    return table


THEORY_BLOCK_SIZE = {
    "global (mixed)": None,
    f"block L={block_size}": block_size,
    f"block L={small_block_size}": small_block_size,
}
cosine_theory = {
    name: [expected_cosine(N, D, K, H, d, block_size=L) for N in N_values]
    for name, L in THEORY_BLOCK_SIZE.items()
}
max_j = max(len(h) for h in occupancy.values())
stats = [
    "mean_cos",
    "sem_cos",
    "min_cos",
    "share_above_threshold",
    "collision_rate",
    "max_load",
    "gini_load",
    "q2",
    "self_collision_rate",
    "occupied_fraction",
    "neighbours_per_item",
    "shared_slots_per_neighbour",
    "max_shared_slots",
]
exp.save_metrics(
    {
        "hashes": list(HASHES),
        "hash_configs": {
            name: make_hash(hash_seeds[0]).config() for name, make_hash in HASHES.items()
        },
        "N": N_values,
        "load": [N * K * H / D for N in N_values],
        "per_hash": {stat: by_hash(stat) for stat in stats},
        "occupancy_hist_N": hist_N,
        "occupancy_hist_load": hist_N * K * H / D,
        "occupancy_hist": {name: h.tolist() for name, h in occupancy.items()},
        "occupancy_theory": expected_load_histogram(hist_N, D, K, H, max_j - 1).tolist(),
        "max_load_theory": [expected_max_load(N, D, K, H) for N in N_values],
        "q2_uniform": 1.0 / D,
        "speed_items_per_s": {
            name: {
                op: {
                    "median": float(np.median(v)),
                    "q25": float(np.quantile(v, 0.25)),
                    "q75": float(np.quantile(v, 0.75)),
                }
                for op, v in ops.items()
            }
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
# items is printed below).
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

# %%
m = exp.load_metrics()
hp = m["hyperparameters"]
per = m["per_hash"]
styles = {name: dict(color=f"C{i}", marker="osD^"[i]) for i, name in enumerate(m["hashes"])}


def sweep_panel(ax, stat: str, ylabel: str, title: str, log: bool = False) -> None:
    for name in m["hashes"]:
        mean = [math.nan if v is None else v for v in per[stat][name]["mean"]]
        spread = [0.0 if v is None else v for v in per[stat][name]["spread"]]
        ax.errorbar(
            m["N"], mean, yerr=[s / 2 for s in spread], label=name, capsize=3, **styles[name]
        )
    ax.set_xlabel("items written N")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)


fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
sweep_panel(axes[0, 0], "mean_cos", "mean cosine(read, written)", "(a) fidelity (dashed: theory)")
for name, theory in m["expected_cosine_theory"].items():
    axes[0, 0].plot(m["N"], theory, ls="--", color=styles[name]["color"], lw=1.2)
sweep_panel(
    axes[0, 1],
    "share_above_threshold",
    f"share of items with cosine > {hp['cos_threshold']}",
    "(b) accuracy",
)
sweep_panel(
    axes[0, 2],
    "shared_slots_per_neighbour",
    "slots shared per colliding neighbour",
    "(c) correlated crosstalk: overlap with each neighbour",
    log=True,
)

ax = axes[1, 0]
for name in m["hashes"]:
    hist = m["occupancy_hist"][name]
    ax.plot(range(len(hist)), hist, ls="none", label=name, **styles[name], mfc="none")
ax.plot(
    range(len(m["occupancy_theory"])),
    m["occupancy_theory"],
    "k-",
    lw=1,
    label=f"uniform hashing theory (λ = {m['occupancy_hist_load']:.2f})",
)
ax.legend(fontsize=8)
ax.set_yscale("log")
ax.set_ylim(bottom=0.5)
ax.set_xlabel("slot load (items in the slot)")
ax.set_ylabel("number of slots")
ax.set_title(f"(d) occupancy at N = {m['occupancy_hist_N']:,}")
ax.grid(True, alpha=0.3)

sweep_panel(axes[1, 1], "max_load", "largest slot load (items)", "(e) collision stats: max load")
axes[1, 1].plot(m["N"], m["max_load_theory"], "k--", lw=1, label="uniform hashing theory")
axes[1, 1].legend(["uniform hashing theory"], fontsize=8, loc="upper left")
ax = axes[1, 2]
speed = m["speed_items_per_s"]
x = np.arange(len(m["hashes"]))
for offset, op, hatch in [(-0.2, "write", ""), (0.2, "read", "//")]:
    med = [speed[n][op]["median"] for n in m["hashes"]]
    err = [
        [med[i] - speed[n][op]["q25"] for i, n in enumerate(m["hashes"])],
        [speed[n][op]["q75"] - med[i] for i, n in enumerate(m["hashes"])],
    ]
    ax.bar(
        x + offset,
        med,
        width=0.4,
        yerr=err,
        capsize=3,
        color=[styles[n]["color"] for n in m["hashes"]],
        hatch=hatch,
        edgecolor="k",
        label=op,
    )
ax.set_xticks(x, [n.replace(" (", "\n(") for n in m["hashes"]], fontsize=8)
ax.set_yscale("log")
ax.set_ylabel("throughput (items / s, CPU)")
ax.set_title(f"(f) write (plain) and read (hatched) speed, median of {hp['timing_rounds']} rounds")
ax.grid(True, axis="y", which="both", alpha=0.3)
handles, labels = axes[0, 0].get_legend_handles_labels()
fig.legend(handles, labels, loc="upper center", ncol=4, fontsize=10, bbox_to_anchor=(0.5, 1.02))
fig.suptitle(
    f"Block vs global hashing at D = {hp['D']:,}, d = {hp['d']}, K = {hp['K']}, H = {hp['H']}",
    y=1.06,
)
fig.tight_layout()
exp.save_figure(fig, "block_vs_global.png")
plt.show()

# %% [markdown]
# ## What the run shows

# %%
i_max = len(m["N"]) - 1
N_max = m["N"][i_max]
i_hist = m["N"].index(m["occupancy_hist_N"])


def at(stat: str, name: str, i: int = i_max) -> float:
    return per[stat][name]["mean"][i]


names = m["hashes"]
g, b, s, p = names
print(
    f"At N = {N_max:,} (load {m['load'][i_max]:.2f} writes per slot), mean over {len(hp['hash_seeds'])} seeds:"
)
print(
    f"{'hash':28s} {'mean cos':>9s} {'>thr':>6s} {'coll.rate':>9s} {'max load':>8s} {'gini':>6s} {'q2*D':>6s} {'self-coll':>9s} {'shared/nbr':>10s} {'write/s':>10s} {'read/s':>10s}"
)
for name in names:
    print(
        f"{name:28s} {at('mean_cos', name):9.4f} {at('share_above_threshold', name):6.3f} "
        f"{at('collision_rate', name):9.4f} {at('max_load', name):8.1f} {at('gini_load', name):6.3f} "
        f"{at('q2', name) / m['q2_uniform']:6.3f} {at('self_collision_rate', name):9.4f} "
        f"{at('shared_slots_per_neighbour', name):10.2f} {speed[name]['write']['median']:10,.0f} {speed[name]['read']['median']:10,.0f}"
    )
gap = at("mean_cos", g) - at("mean_cos", b)
share_b, share_g = at("share_above_threshold", b), at("share_above_threshold", g)
share_gap = share_g - share_b
shares = f"{share_b:.3f} vs {share_g:.3f}"
if share_gap == 0:
    share_sentence = f"The share above {hp['cos_threshold']} is the same for both: {shares}" + (
        " (almost every evaluated item is above the threshold at this load)."
        if min(share_b, share_g) >= 0.99
        else "."
    )
elif abs(share_gap) > abs(gap):
    share_sentence = (
        f"The share above {hp['cos_threshold']} differs more than the mean cosine: {shares} "
        f"(difference {share_gap:+.3f} vs {gap:+.4f}): a small shift of the cosine distribution moves "
        "the items that lie near the threshold across it."
    )
else:
    share_sentence = (
        f"The share above {hp['cos_threshold']} differs by no more than the mean cosine: {shares} "
        f"(difference {share_gap:+.3f} vs {gap:+.4f})."
    )
print(
    f"\nBlock L={hp['block_size']} vs global (mixed): mean cosine {at('mean_cos', b):.4f} vs {at('mean_cos', g):.4f} "
    f"(difference {gap:+.4f}, standard errors {at('sem_cos', b):.4f} / {at('sem_cos', g):.4f}; theory "
    f"{m['expected_cosine_theory'][b][i_max]:.4f} vs {m['expected_cosine_theory'][g][i_max]:.4f}); "
    f"each neighbour shares {at('shared_slots_per_neighbour', b):.2f} vs {at('shared_slots_per_neighbour', g):.2f} slots. "
    + share_sentence
)
print(
    f"Small blocks L={hp['small_block_size']}: mean cosine {at('mean_cos', s):.4f}, share > {hp['cos_threshold']} "
    f"{at('share_above_threshold', s):.3f}; a colliding neighbour shares {at('shared_slots_per_neighbour', s):.2f} slots "
    f"on average (largest {at('max_shared_slots', s):.1f} of {hp['K'] * hp['H']}; global mixed: "
    f"{at('shared_slots_per_neighbour', g):.2f}), "
    + (
        "so a neighbour's crosstalk is spread over fewer independent slots and averages out less."
        if at("shared_slots_per_neighbour", s) > at("shared_slots_per_neighbour", g)
        else "no more than under global hashing."
    )
)
print(
    f"Prototype formula at N = {m['N'][0]:,}: {per['neighbours_per_item'][p]['mean'][0]:.1f} colliding neighbours per "
    f"item (global mixed: {per['neighbours_per_item'][g]['mean'][0]:.1f}), mean cosine {per['mean_cos'][p]['mean'][0]:.4f}: "
    "its collisions only link keys a fixed distance apart, which a short key range may not contain."
)
print(
    f"Prototype formula: mean cosine {at('mean_cos', p):.4f}, share > {hp['cos_threshold']} {at('share_above_threshold', p):.3f}, "
    f"largest overlap with one neighbour {at('max_shared_slots', p):.1f} slots; its occupancy is "
    + ("more" if at("gini_load", p) < at("gini_load", g) else "not more")
    + " even than random hashing "
    f"(gini {at('gini_load', p):.3f} vs {at('gini_load', g):.3f} for global mixed, max load {at('max_load', p):.0f} vs {at('max_load', g):.0f})."
)
occ_err = {
    name: max(
        abs(a - e) / e
        for a, e in zip(m["occupancy_hist"][name], m["occupancy_theory"], strict=False)
        if e > 1000
    )
    for name in names
}
print(
    f"Occupancy at N = {m['occupancy_hist_N']:,}: largest relative deviation from the uniform-hashing histogram over "
    "loads with > 1000 expected slots: "
    + ", ".join(f"{n} {e:.1%}" for n, e in occ_err.items())
    + "."
)
theory_err = {
    name: max(
        abs(a - t)
        for a, t in zip(
            per["mean_cos"][name]["mean"], m["expected_cosine_theory"][name], strict=True
        )
    )
    for name in m["expected_cosine_theory"]
}
print(
    "Largest |measured - theory| mean cosine over the sweep: "
    + ", ".join(f"{n} {e:.4f}" for n, e in theory_err.items())
    + " (the prototype formula has no random-hashing theory)."
)
fastest = max(names, key=lambda n: speed[n]["write"]["median"])
print(
    "Median write speed: "
    + ", ".join(f"{n} {speed[n]['write']['median']:,.0f}/s" for n in names)
    + "; read speed: "
    + ", ".join(f"{n} {speed[n]['read']['median']:,.0f}/s" for n in names)
    + f". Fastest writer here: {fastest} (shared CPU; quartiles in metrics.json)."
)


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
record_metric(exp, "param_k", lambda: hp["K"], ",d", "slots per hash K")
