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
# # exp08: Peer memories at equal bytes
#
# **Question.** Given the same number of bytes, how many key → value associations does BBPM
# hold compared with the memories it is usually set against, and what does each cost?
#
# **Peers** (all in `bbpm.baselines`, one interface: `write(keys, values)`, `read(keys)`,
# `clear()`, `nbytes`, sized by `from_budget(nbytes, d)`):
#
# | memory | state for a budget of $b$ bytes | read |
# |---|---|---|
# | exact dict (oracle) | $\lfloor b/(8+4d) \rfloor$ keys (8 B) + values; FIFO when full | the stored value, zeros if absent |
# | FHRR superposition | $G=\lfloor b/8d \rfloor$ complex traces of dim $d$; key → trace by hash | $\mathrm{Re}(\bar p_k \odot T)$, phasor $p_k$ from the key id |
# | two-stage Hopfield (NuoNuo) | $\lfloor b/4(d_k+d) \rfloor$ key patterns + values; FIFO | top-$k$ cosine, softmax($\beta\cos$), weighted values |
# | fly-hash Hebbian fast weights (NuoNuo, BDH) | $W$: $m=\lfloor b/4d \rfloor$ rows of $d$ | $c_k W / k$, $c_k$ = $k$-WTA code of a sparse random projection |
# | count sketch | $R$ rows × $W=\lfloor b/4dR \rfloor$ buckets of $d$ | median over rows of $s_r(k)\,T[r,h_r(k)]$ |
# | BBPM | $D=\lfloor b/(4d+4)\rfloor$ slots + counts | count-debiased mean of the key's $K H$ slots |
#
# **Task** (the same for all). $N$ random 64-bit keys, each mapped to a row of a fixed random
# unit codebook of $C$ codes in $\mathbb{R}^d$ (the exp07 setting: a key stores a value id's
# code). Every memory returns a raw vector; one shared cleanup step decodes it to the
# top-1 code by cosine. We report, per budget and $N$: top-1 accuracy over written keys,
# the mean cosine between the raw read and the true code, false recall on never-written keys,
# write and read throughput, and bytes. $N$ is swept as a multiple of the budget's
# *value-vector count* $b/4d$ (the number of float32 $d$-vectors the bytes can hold),
# until each method fails.
#
# **Expectation.** A dict is exact while its $b/(8+4d)$ items fit, then forgets (FIFO:
# accuracy $=\text{capacity}/N$); a Hopfield store likewise, with fewer items because it keeps
# a key pattern instead of an 8-byte id. The four superposition memories (FHRR, fly-hash,
# count sketch, BBPM) all add $N$ values into $\approx b/4d$ value-sized cells, so to first
# order they share one crosstalk law, noise energy $\rho \approx N\cdot 4d/b$ against a unit
# signal and $\cos \approx 1/\sqrt{1+\rho}$; cleanup against a small codebook still decodes
# well above $\rho = 1$, so they can outlast the dict in items. Their differences are in the
# constants, the throughput and the failure modes, which this notebook measures.

# %% tags=["parameters"]
seed = 0
d = 64
codebook_size = 1024
budgets_bytes = [1048576, 4194304, 16777216, 67108864]
load_grid = [0.0625, 0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]
methods = ["dict", "hopfield", "fhrr", "count_sketch", "flyhash", "bbpm_global", "bbpm_block",
           "bbpm_global_inverse_noise", "bbpm_block_inverse_noise"]  # fmt: skip
n_queries = 2000
write_batch = 8192
stop_accuracy = 0.1
hit_keep = 0.95
capacity_accuracy = 0.9
capacity_rel_tol = 0.02
flyhash_max_bytes = 67108864
bbpm_K = 4
bbpm_H = 1
bbpm_block_size = 4096
hopfield_key_dim = 64
hopfield_top_k = 20
hopfield_beta = 16.0
flyhash_k = 8
flyhash_fan_in = 6
flyhash_key_dim = 64
flyhash_theory_keys = 20000
count_sketch_rows = 5
count_sketch_estimator = "median"
throughput_items = 65536
throughput_slow_items = 4096
throughput_seconds = 1.0
k_ablation_values = [1, 2, 4, 8, 16, 32]
k_ablation_budget = 1048576
k_ablation_load = 3.0
theory_points = 60

# %% tags=["hide-input"]
import math

import numpy as np
import pandas as pd
import torch
from IPython.display import display

from bbpm.baselines import peer_plots, peers
from bbpm.baselines import theory as peer_theory
from bbpm.paper import record_metric, record_slug
from bbpm.utils import Experiment, format_bytes

exp = Experiment.from_notebook("exp08_peer_memories", "notebooks/exp08.py", globals())
exp.logger.info("torch threads: %d", torch.get_num_threads())
task = peers.PeerTask(exp.params)  # keys, codebook, value ids and every memory's shape
LABELS = peers.method_labels(exp.params)

# %% [markdown]
# ## Settings of each memory
#
# Hyperparameters are fixed per method (in `params/exp08.yaml`, listed below with the bytes
# each memory takes at each budget), the same at every budget: BBPM uses `bbpm_K` slots per
# item and `bbpm_H` hashes; the fly hash keeps
# `flyhash_k` winners of $m$ units, each unit summing `flyhash_fan_in` inputs of a
# `flyhash_key_dim`-dim key pattern (the fly's sparse wiring); Hopfield keeps the
# `hopfield_top_k` best cosines over `hopfield_key_dim`-dim key patterns and weighs them by
# softmax(`hopfield_beta` · cos); the count sketch uses `count_sketch_rows` rows and the
# `count_sketch_estimator`. The small $K$ / $k$ for BBPM and the fly hash are explained by
# the $K$ ablation at the end: with values drawn from a codebook many items share a value,
# and memories that add values with positive weights (BBPM, Hebbian $W$) pile those copies
# up coherently unless each item touches few cells. Key vectors (phasors, patterns) are
# generated from the key id by splitmix64, so no memory stores anything per key beyond its
# budget; the fly-hash projection is a function of the seed and not counted in its bytes.
# The machinery of this chapter (task, sweep, bisection, theory lines, tables, figures) is
# `bbpm.baselines.peers` and `bbpm.baselines.peer_plots`.

# %% tags=["hide-input"]
settings = {
    "options": [
        ", ".join(f"{k}={v}" for k, v in task.options[mm].items()) or "none" for mm in methods
    ]
}
for b in budgets_bytes:
    settings[f"bytes at {format_bytes(b)} ({task.value_slots[b]:,} value vectors)"] = [
        f"{task.sizes[mm][str(b)]['nbytes']:,}" for mm in methods
    ]
display(pd.DataFrame(settings, index=pd.Index([LABELS[mm] for mm in methods], name="memory")))

# %% [markdown]
# ## The sweep
#
# For each budget and method: one memory, items written in order in batches of
# `write_batch`, and after each step of the $N$ grid the same `n_queries` written keys
# (uniform over all $N$ written so far, the same draw for every method) and `n_queries`
# unseen keys are read and decoded. Writing is incremental, so the state at $N$ equals a
# fresh memory that received those $N$ items (the FIFO stores evict by write order).
#
# **False recall.** Decoding an unseen key also yields a best code. Its *score* is the
# projection $\langle r, c^\ast\rangle$ of the raw read on the decoded unit code (the cosine
# times $\lVert r\rVert$, so an empty read scores 0). The threshold $\tau$ is the score
# that keeps a share `hit_keep` of the correctly decoded written keys; false recall is the
# share of unseen keys that score at least $\tau$, i.e. that a caller who accepts that share
# of true hits would also accept. (`raw.csv` also has the same rate with the cosine as the score.)
#
# **Diagnostic decode.** `accuracy_fresh_codes` decodes the same read among the true code and
# $C-1$ fresh random codes that no item was written with. Where it is higher than the real
# accuracy, the crosstalk is made of stored codes that compete in the cleanup, not only of
# noise energy.
# The sweep of a method at a budget stops after the first $N$ with accuracy below
# `stop_accuracy`. The fly hash projects every key onto all $m$ units, O($m$) work per key
# (the fused C encoder of `bbpm.memory.kernels.native`: about $m \times$ `flyhash_fan_in`
# adds per key and no $[B, m]$ activation matrix), so its sweep at the largest budget is the
# slowest part of this notebook; budgets above `flyhash_max_bytes` (none in the full run)
# would be skipped. Its throughput is measured at every budget below.
#
# **Capacity, measured.** The capacity of a method at a budget is where its top-1 accuracy
# falls below `capacity_accuracy`. The grid brackets that point only to within one grid
# step of $N$, and interpolating between its points is wrong for the FIFO stores, whose
# accuracy $\min(1, \text{capacity}/N)$ is flat and then falls like $1/N$. So the crossing is
# refined by bisection, with more runs of the same evaluation: starting from the last grid
# point at or above the target and the first below it, a copy of the memory state at the
# lower end receives the next items up to the geometric midpoint, whose accuracy is measured
# on `n_queries` written keys drawn uniformly from the $N$ written (a draw fixed by $N$, the
# same for every method); the midpoint replaces the end of the bracket on its side of the
# target. This stops once the bracket $[N_{lo}, N_{hi}]$ is narrower than
# `capacity_rel_tol` $\cdot N_{lo}$ (or one item). Both ends are measurements:
# accuracy $\ge$ target at $N_{lo}$, below it at $N_{hi}$; the capacity reported is the
# midpoint $(N_{lo}+N_{hi})/2$, with the bracket beside it. The bisection writes at most the
# items of the grid interval once more, plus one read of `n_queries` keys per probe; its
# time is recorded apart (`capacity_seconds`; its share of the sweep's is given with the capacities).
# Each accuracy is itself a sample of `n_queries` keys;
# its sampling error near the target (given with the capacities) can move a crossing by more than the
# bracket's width.

# %%
sweep = task.sweep()  # every (budget, method): grid rows, capacity bisection, hash diagnostics
rows, capacity = sweep["rows"], sweep["capacity"]
exp.logger.info("%d sweep points; seconds per method %s", len(rows), sweep["method_seconds"])
exp.logger.info("capacity bisection seconds per method %s", sweep["capacity_seconds"])

# %% [markdown]
# ## One more peer: Kanerva's sparse distributed memory (torchhd)
#
# torchhd's `SparseDistributed` (optional extra `bbpm[hd]`; `bbpm.baselines.sdm`) on the same
# items, queries and grid, at the budgets up to 1 MiB: its reads and writes compare every key
# with all $M$ hard locations, which costs minutes at the larger budgets. Its address matrix
# counts in its bytes, and the expected number of active locations per key is tuned once, on a
# separate draw at load 1 of the smallest budget ({glue:text}`sdm_active_locations` active
# locations here). Without torchhd the cell says so. The table gives SDM's top-1 accuracy
# beside BBPM (global hash) at the same $N$.

# %%
sdm = task.sdm_sweep(rows)
exp.record("sdm_active_locations", sdm["active"], "g", "SDM: tuned active locations per key")
if sdm["note"] is None:
    exp.logger.info("SDM tuning accuracies %s", sdm["tuning"])
    display(pd.DataFrame(sdm["rows"]).round(3))
else:
    print(f"SDM skipped: {sdm['note']}")

# %% [markdown]
# ## Theory beside the measurements
#
# Crosstalk model (`bbpm.baselines.theory`): a read is $r = a\,v + e$, crosstalk energy
# $\rho = \mathbb{E}\lVert e\rVert^2 / a^2$, mean cosine $\approx 1/\sqrt{1+\rho}$, and top-1
# cleanup against $C$ random codes succeeds with probability
# $\mathbb{E}_z\big[\Phi\big((1+\sqrt{\rho/d}\,z)/\sqrt{(1+\rho)/d}\big)^{C-1}\big]$.
#
# * **FHRR banks**: $n_b \sim \mathrm{Binomial}(N-1, 1/G)$ other items in the key's trace,
#   each adding energy $1/2$ ($\mathrm{Re}$ of a random phase): $\rho = n_b/2$, averaged over
#   $n_b$. For one trace this is the classic HRR law $\cos \approx 1/\sqrt{1+(N-1)/2}$.
# * **Count sketch**: each row adds energy $(N-1)/W$; the mean over $R$ rows divides it by
#   $R$, the median by $R/f_R$ with $f_R = R\,\mathrm{Var}(\text{median of } R\ N(0,1))$, its
#   high-load (Gaussian) limit. At low load the median does better than this line: most
#   rows are collision-free and the median ignores the few that are not.
# * **FIFO stores** (dict, Hopfield): exact for the last `capacity` items, accuracy
#   $\min(1, \text{capacity}/N)$.
# * **Fly-hash Hebbian**: another item whose code shares $o$ of the key's $k$ units adds
#   energy $o^2/k^2$; with $\mathbb{E}[o] = \sum_{u \in c_q} p_u$ from the unit usage $p_u$
#   measured on the codes of `flyhash_theory_keys` written keys, and $\mathbb{E}[o^2]
#   \approx \mathbb{E}[o]$ (overlaps are rare), $\rho_q = (N-1)\,\mathbb{E}[o]/k^2$, averaged
#   over those keys (`bbpm.baselines.theory.hebbian_code_prediction`). For uniform codes
#   $\mathbb{E}[o] = k^2/m$ and $\rho = (N-1)/m$: the first-order law with load $N/m$.
#   Like BBPM's, this model treats the other items' values as independent directions, while
#   here they repeat (a codebook). The theory-error table in the Discussion gives each line's
#   gap in this run, and for accuracy lines the gap to accuracy decoded among fresh codes,
#   which shows whether the repeats explain it.
# * **BBPM**: `bbpm.theory.snr_bounds` (the load model of the theory chapter) gives the
#   expected cosine; its sampled per-key $(a, s^2)$ fed to the cleanup formula give the
#   accuracy. That model assumes independent values; here values repeat (a codebook), which
#   adds the coherent term discussed in the $K$ ablation.

# %%
try:
    from bbpm.theory import snr_bounds  # noqa: F401  (the theory module is optional here)

    bbpm_theory = True
except ImportError as error:
    bbpm_theory = False
    print(f"bbpm.theory.snr_bounds unavailable ({error}); BBPM's theory line is skipped")
theory = task.theory_curves(rows, bbpm_theory)  # per budget: N grid and each prediction
theory_error = peers.theory_errors(theory, rows, methods)  # max / mean |measured - predicted|

# %% [markdown]
# ## Capacity at the accuracy target
#
# The brackets found by the bisection in the sweep (see *Capacity, measured* above): per
# method and budget, the midpoint used as the capacity in every ratio, figure and table
# below, and in brackets $N_{lo}$ (largest measured $N$ with accuracy $\ge$
# `capacity_accuracy` before the first grid point below it) and $N_{hi}$ (the bracket's
# upper end, measured below the target). A method that never drops below the target on the
# grid is censored ($\geq$: capacity at least the largest $N$ tried). For the FIFO stores the
# expected accuracy is known exactly, $\min(1, c/N)$ for a store of $c$ items, so their
# crossing $c/a$ (for target $a$) checks the method: it should lie in the bracket up to the
# sampling error of the accuracies (second table). In this run the law lies inside the measured
# bracket for {glue:text}`fifo_inside_count` (store, budget) pairs, and the largest midpoint
# error is {glue:text}`fifo_max_error`.
#
# One accuracy at the target has a sampling error of ±{glue:text}`capacity_sampling_error`
# (`n_queries` keys); for a FIFO store (accuracy $c/N$) that is ±{glue:text}`fifo_sampling_error_n`
# in $N$, against brackets {glue:text}`bracket_width_min` to {glue:text}`bracket_width_max`
# wide (relative to $N_{lo}$). The bisection took {glue:text}`bisection_seconds` s,
# {glue:text}`bisection_share` of the sweep's {glue:text}`sweep_seconds` s.

# %% tags=["hide-input"]
sampling_error = math.sqrt(capacity_accuracy * (1 - capacity_accuracy) / n_queries)
fifo_check = task.fifo_check(capacity)
widths = peers.bracket_widths(capacity)
exp.record("capacity_sampling_error", sampling_error, ".3f", "sampling error of one accuracy at the target")  # fmt: skip
exp.record("fifo_sampling_error_n", sampling_error / capacity_accuracy, ".1%", "that error in N for a FIFO store")  # fmt: skip
exp.record("bracket_width_min", min(widths, default=None), ".1%", "narrowest capacity bracket, relative to N_lo")  # fmt: skip
exp.record("bracket_width_max", max(widths, default=None), ".1%", "widest capacity bracket, relative to N_lo")  # fmt: skip
fifo_errors = [c["relative_error"] for per in fifo_check.values() for c in per.values()]
exp.record("fifo_inside_count", f"{sum(c['in_bracket'] for per in fifo_check.values() for c in per.values())} of {len(fifo_errors)}",
           "", "FIFO (store, budget) pairs whose law c/a lies inside the measured bracket")  # fmt: skip
exp.record("fifo_max_error", max(map(abs, fifo_errors), default=None), ".1%", "largest |midpoint / FIFO law - 1|")  # fmt: skip
bisect_s, sweep_s = sum(sweep["capacity_seconds"].values()), sum(sweep["method_seconds"].values())
exp.record("bisection_seconds", bisect_s, ".1f", "seconds spent in the capacity bisection")
exp.record("sweep_seconds", sweep_s, ".1f", "seconds spent in the grid sweep")
exp.record("bisection_share", bisect_s / max(sweep_s, 1e-9), ".0%", "bisection time over sweep time")  # fmt: skip
display(peers.capacity_table({"hyperparameters": exp.params, "capacity": capacity}))
display(pd.DataFrame([{"method": mm, "budget": format_bytes(int(b)), "FIFO law c/a": round(c["exact_N"], 1),
                       "measured midpoint": capacity[mm][b]["N"], "relative error": f"{c['relative_error']:+.1%}",
                       "in bracket": c["in_bracket"]} for mm, per in fifo_check.items() for b, c in per.items()]))  # fmt: skip

# %% [markdown]
# ## Throughput
#
# Separately from the sweep, each memory is built at every budget, gets `throughput_items`
# items written in batches of `write_batch`, and reads them back. The fly hash and the
# Hopfield store do O(size) work per key (every key is projected onto all $m$ units; every
# query is scored against all stored patterns), so they get `throughput_slow_items` items.
# Every memory kind first gets one warm-up write and read (first calls pay one-off set-up
# costs). Then, per budget, one memory is built and runs (each starting from `clear()`, so
# the table's pages are already mapped: steady-state cost) are repeated at least 3 times and
# until `throughput_seconds` have passed (at most 20 runs); the fastest run is kept, the usual
# guard against a machine shared with other jobs. Items per second on this machine's CPU
# threads, including input checks and the generation of key vectors from key ids.

# %%
throughput = task.throughput()

# %% [markdown]
# ## BBPM's $K$ on this task
#
# At one budget and load, BBPM (global hash) with several $K$, once with the task's codebook
# values and once with independent random unit values, beside `snr_bounds.expected_cosine`
# (which assumes independent values). A read of BBPM averages $K$ slots of about
# $\lambda = NK/D$ items each, so it mixes about $K^2 N/D$ other items; with values from a
# codebook of $C$ codes those items repeat codes and their sum has a coherent part whose
# energy grows like $(K^2 N/D)^2/C$ instead of $K^2N/D$. Small $K$ avoids it.

# %%
ablation = task.k_ablation(bbpm_theory)

# %% tags=["hide-input"]
exp.save_raw(rows)
exp.save_metrics(
    {
        "value_slots": {str(b): v for b, v in task.value_slots.items()},
        "n_max": task.n_max,
        "sizes": task.sizes,
        "sweep": rows,
        "skipped": sweep["skipped"],
        "theory": theory,
        "theory_error": theory_error,
        "bbpm_theory_available": bbpm_theory,
        "capacity": capacity,
        "capacity_sampling_error": sampling_error,
        "capacity_fifo_check": fifo_check,
        "capacity_seconds": sweep["capacity_seconds"],
        "throughput": throughput,
        "k_ablation": ablation,
        "hash_diagnostics": sweep["hash_stats"],
        "method_seconds": sweep["method_seconds"],
    }
)
m = exp.load_metrics()  # the figures and the records below read the run from metrics.json

# %% [markdown]
# ## Accuracy and fidelity against $N$
#
# One column per budget. Markers: measurements; dashed lines: the predictions above, in the
# method's colour; crosses: the capacity bisection's extra measurements, around the dotted
# line at `capacity_accuracy`. The x axis is the number of items written; the top axis of
# each panel gives the same as the load $N\cdot 4d/b$.

# %% tags=["hide-input"]
_ = exp.save_figure(peer_plots.accuracy_vs_n(m, LABELS), "accuracy_vs_N.png")

# %% [markdown]
# ## False recall on unseen keys
#
# Top row: the score (projection on the decoded code) as confidence; bottom row: the cosine.
# Each point is the share of never-written keys accepted at the threshold that keeps the
# share `hit_keep` of the true hits at that $N$ (no point where nothing was decoded correctly).

# %% tags=["hide-input"]
_ = exp.save_figure(peer_plots.false_recall(m, LABELS), "false_recall.png")

# %% [markdown]
# ## Capacity against budget
#
# Items held at ≥ `capacity_accuracy` top-1 accuracy, per budget: the midpoint of the
# measured bracket, whose ends are the error bar (open markers: censored, the target was not
# crossed on the grid). The grey line is the dict's stored capacity $b/(8+4d)$; a FIFO store
# keeps accuracy $a$ up to capacity/$a$ items. Where lines overlap, the numbers are in the
# capacity table above.

# %% tags=["hide-input"]
_ = exp.save_figure(peer_plots.capacity_vs_budget(m, LABELS), "capacity_vs_budget.png")

# %% [markdown]
# ## Throughput
#
# Items per second for writes and reads, per method and budget (log scale).

# %% tags=["hide-input"]
_ = exp.save_figure(peer_plots.throughput(m, LABELS), "throughput.png")

# %% [markdown]
# ## BBPM's $K$: codebook values against independent values

# %% tags=["hide-input"]
_ = exp.save_figure(peer_plots.k_ablation(m), "bbpm_K_ablation.png")

# %% [markdown]
# ## Records for the paper
#
# The numbers the paper quotes, read from this run's `metrics.json` and recorded by name
# (`results/exp08_peer_memories/records.json`); a number this run did not produce is not
# recorded, and the paper shows a placeholder for it. The Discussion below glues them too.

# %% tags=["hide-input"]
largest = max((b for v in m["capacity"].values() for b in v), key=int)
record_metric(exp, "largest_budget", lambda: format_bytes(int(largest)), "", "largest byte budget")
record_metric(exp, "capacity_target", lambda: m["hyperparameters"]["capacity_accuracy"], ".0%",
              "top-1 accuracy that defines capacity")  # fmt: skip
for method, per_budget in m["capacity"].items():
    record_metric(exp, f"capacity_{record_slug(method)}_largest_budget", lambda e=per_budget: e[largest]["N"],
                  ",.0f", f"{method}: items at the capacity target, largest budget")  # fmt: skip
_ = record_metric(
    exp,
    "capacity_ratio_bbpm_to_dict",
    lambda: m["capacity"]["bbpm_global"][largest]["N"] / m["capacity"]["dict"][largest]["N"],
    ".1f",
    "BBPM (global hash) capacity over the exact dict's, largest budget",
)

# %% [markdown]
# ## BBPM's read rule: debiased against inverse noise
#
# The `bbpm_*_inverse_noise` methods are the same tables as `bbpm_global` / `bbpm_block`
# (same hash, same writes, same bytes) read with the inverse-noise rule of exp09 instead of
# the count-debiased mean. Below: each BBPM variant's capacity at every budget, the capacity
# leader of all methods with and without the inverse-noise reads, and the false recall.

# %% tags=["hide-input"]
budget_label = {b: f"{b // 1024}kib" for b in budgets_bytes}
bbpm_ran = [mm for mm in peers.BBPM_METHODS if mm in methods]
for mm in bbpm_ran:
    for b in budgets_bytes:
        exp.record(f"capacity_{mm}_{budget_label[b]}", peers.cap_value(m, mm, b), ",.0f",
                   f"{LABELS[mm]}: items at {capacity_accuracy:.0%} top-1 accuracy, {format_bytes(b)} (bracket midpoint)")  # fmt: skip
    values = [r["false_recall"] for r in m["sweep"] if r["method"] == mm and r["false_recall"] is not None]  # fmt: skip
    if values:
        exp.record(f"false_recall_median_{mm}", float(np.median(values)), ".3f",
                   f"{LABELS[mm]}: median false recall (score threshold) over the sweep")  # fmt: skip
debiased_only, changed = [mm for mm in methods if not mm.endswith("inverse_noise")], []
for b in budgets_bytes:
    before = max(debiased_only, key=lambda mm: peers.cap_value(m, mm, b))
    after = max(methods, key=lambda mm: peers.cap_value(m, mm, b))
    for name in [budget_label[b]] + (["largest"] if b == budgets_bytes[-1] else []):
        where = f"at {format_bytes(b)}" if name != "largest" else "at the largest budget"
        exp.record(f"leader_{name}_debiased_only", before, "", f"capacity leader {where}, BBPM read debiased")  # fmt: skip
        exp.record(f"leader_{name}_with_inverse_noise", after, "", f"capacity leader {where} with the inverse-noise reads")  # fmt: skip
    if before != after:
        changed.append(f"{format_bytes(b)} ({before} -> {after})")
gains = [peers.cap_value(m, f"{base}_inverse_noise", b) / peers.cap_value(m, base, b)
         for base in ("bbpm_global", "bbpm_block") if base in methods and f"{base}_inverse_noise" in methods
         for b in budgets_bytes if peers.cap_value(m, base, b) > 0]  # fmt: skip
if gains:
    exp.record("capacity_gain_inverse_noise_min", min(gains), ".2f",
               "smallest capacity ratio inverse-noise / debiased read, all budgets and hashes")  # fmt: skip
    exp.record("capacity_gain_inverse_noise_max", max(gains), ".2f",
               "largest capacity ratio inverse-noise / debiased read, all budgets and hashes")  # fmt: skip
exp.record(
    "read_rule_leader_verdict",
    ("the inverse-noise read changes the capacity leader at " + ", ".join(changed))
    if changed
    else "the inverse-noise read leaves the capacity leader unchanged at every budget",
    "",
    "whether BBPM's inverse-noise read changes which method holds the most items per budget",
)
display(peers.capacity_table(m).loc[bbpm_ran])

# %% tags=["hide-input"]
fr_all = peers.false_recall_medians(m, methods)
fr_lowest = [mm for mm in fr_all if fr_all[mm] == min(fr_all.values())]
fr_led = [format_bytes(b) for b in budgets_bytes if (f := peers.false_recall_medians(m, methods, b))
          and all(mm.endswith("inverse_noise") for mm in f if f[mm] == min(f.values()))]  # fmt: skip
if {"bbpm_global", "bbpm_global_inverse_noise"} <= fr_all.keys():
    fr_debiased, fr_inverse = fr_all["bbpm_global"], fr_all["bbpm_global_inverse_noise"]
    exp.record("read_rule_false_recall_verdict",
               f"the inverse-noise read {'lowers' if fr_inverse < fr_debiased else 'does not lower'} BBPM's median "
               f"false recall (global hash, {fr_debiased:.3f} to {fr_inverse:.3f}) and has the lowest false recall at {', '.join(fr_led) or 'no budget'} "
               f"(lowest over the sweep: {' = '.join(peers.SHORT_NAMES[mm] for mm in fr_lowest)})", "",
               "whether BBPM's inverse-noise read lowers its false recall and leads it at any budget")  # fmt: skip

# %% [markdown]
# Read with the inverse-noise rule, BBPM's capacity changes by a factor between
# {glue:text}`capacity_gain_inverse_noise_min` and {glue:text}`capacity_gain_inverse_noise_max`
# over the debiased read (same table, same bytes); {glue:text}`read_rule_leader_verdict`.
# The capacity leader at the largest budget is {glue:text}`leader_largest_with_inverse_noise`
# with the inverse-noise reads ({glue:text}`leader_largest_debiased_only` without them).
# False recall (median over the sweep, score threshold): debiased global
# {glue:text}`false_recall_median_bbpm_global`, inverse-noise global
# {glue:text}`false_recall_median_bbpm_global_inverse_noise`. Where a never-written key has a
# slot holding exactly one item, the inverse-noise rule takes that slot as clean (one write,
# the one it expects from the key itself) and returns that item as is: a confident wrong
# answer. Over the whole sweep {glue:text}`read_rule_false_recall_verdict`.

# %% [markdown]
# ## What the run shows
#
# Every number below is read from this run's `metrics.json` and recorded by name
# (`records.json`); the tables under this paragraph give the rest, and the prose after them
# reads them.

# %% tags=["hide-input"]
big, small, ran, target = budgets_bytes[-1], budgets_bytes[0], methods, capacity_accuracy
superposition = [mm for mm in peers.SUPERPOSITION_METHODS if mm in ran]


def rec(name, get, fmt="", what=""):
    """Record a number the prose quotes (nothing where this run's methods lack it)."""
    return record_metric(exp, name, get, fmt, what)


ranked = sorted((mm for mm in ran if m["capacity"][mm][str(big)]), key=lambda mm: peers.cap_value(m, mm, big), reverse=True)  # fmt: skip
rec("capacity_leader_text", lambda: peers.cap_text(m["capacity"][ranked[0]][str(big)]), "",
    "capacity of the leader at the largest budget, with its bracket")  # fmt: skip
rec("runner_up_largest", lambda: ranked[1], "", "second-largest capacity, largest budget")
rec("runner_up_capacity_text", lambda: peers.cap_text(m["capacity"][ranked[1]][str(big)]), "",
    "its capacity, with its bracket")  # fmt: skip
for mm in ("dict", "hopfield"):
    check = m["capacity_fifo_check"].get(mm, {}).get(str(big), {})
    rec(f"{mm}_stored_items", lambda mm=mm: m["sizes"][mm][str(big)]["capacity"], ",d", f"{mm}: items it stores, largest budget")  # fmt: skip
    rec(f"{mm}_capacity_text", lambda mm=mm: peers.cap_text(m["capacity"][mm][str(big)]), "", f"{mm}: capacity with its bracket")  # fmt: skip
    rec(f"{mm}_fifo_law_n", lambda c=check: c["exact_N"], ",.1f", f"{mm}: FIFO law capacity/target")
    rec(f"{mm}_fifo_error", lambda c=check: c["relative_error"], "+.1%", f"{mm}: midpoint vs FIFO law")  # fmt: skip
    rec(f"{mm}_fifo_verdict", lambda c=check: "inside" if c["in_bracket"] else "outside", "",
        f"{mm}: FIFO law inside or outside the measured bracket")  # fmt: skip
rec("hopfield_to_dict_items", lambda: m["sizes"]["hopfield"][str(big)]["capacity"] / m["sizes"]["dict"][str(big)]["capacity"],
    ".2f", "Hopfield's stored items over the dict's")  # fmt: skip
_ = rec("hopfield_read_rate", lambda: m["throughput"]["hopfield"][str(big)]["read_items_per_s"], ",.0f", "Hopfield reads/s, largest budget")  # fmt: skip

# %% tags=["hide-input"]
dict_cap = m["sizes"]["dict"][str(big)]["capacity"] if "dict" in ran else 0
held = [
    r["N"]
    for r in m["sweep"]
    if r["method"] == "dict" and r["budget_bytes"] == big and r["N"] <= dict_cap
]
at_held = [r for r in m["sweep"] if r["budget_bytes"] == big and held and r["N"] == max(held) and r["method"] in superposition]  # fmt: skip
rec("dict_full_n", lambda: max(held), ",d", "largest grid N the dict holds exactly, largest budget")
rec("superposition_at_dict_full", lambda: ", ".join(f"{r['method']} {r['accuracy']:.3f}" for r in at_held) or "none",
    "", "superposition memories' accuracy at that N")  # fmt: skip
p4 = peers.point(m, "dict", big, 4.0)
rec("dict_accuracy_load4", lambda: p4["accuracy"], ".3f", "dict accuracy at load 4, largest budget")
rec("dict_n_load4", lambda: p4["N"], ",d", "N at load 4, largest budget")
rec("n_max", lambda: m["n_max"], ",d", "largest N of the run")
rec("dict_unbounded_bytes", lambda: format_bytes(m["n_max"] * (8 + 4 * d)), "", "an unbounded dict's bytes at the largest N")  # fmt: skip
_ = rec("dict_code_id_items", lambda: big // 10, ",d", "items a dict of 8-byte keys and 2-byte code ids holds, largest budget")  # fmt: skip

# %% tags=["hide-input"]
for load in (1.0, 4.0):
    rec(f"law_cosine_load{load:g}", lambda x=load: 1 / math.sqrt(1 + x), ".3f", f"first-order law cosine at load {load:g}")  # fmt: skip
for mm in ("fhrr", "bbpm_global"):
    pt = peers.point(m, mm, big, 4.0)
    for column in ("accuracy", "mean_cosine", "accuracy_fresh_codes"):
        rec(f"{mm}_{column}_load4", lambda c=column, pt=pt: pt[c], ".3f", f"{mm}: {column} at load 4, largest budget")  # fmt: skip
gaps = {
    mm: pt["accuracy_fresh_codes"] - pt["accuracy"]
    for mm in superposition
    if (pt := peers.point(m, mm, big, 4.0))
}
rec("fresh_gap_verdict", lambda: "larger than FHRR's: FHRR's unbinding turns other items into phase-scrambled noise, while "
    "BBPM's crosstalk is a sum of other stored codes, each of which votes for a wrong answer in the real cleanup"
    if gaps["bbpm_global"] > gaps["fhrr"] else "not larger than FHRR's", "",
    "BBPM's fresh-code accuracy gain against FHRR's, load 4, and what it says")  # fmt: skip
rec("median_variance_factor", lambda: peer_theory.median_variance_factor(count_sketch_rows), ".2f",
    "variance of the median of R Gaussians over their mean's")  # fmt: skip
fly_runs = [
    b for b in budgets_bytes if peers.cap_n(m, "flyhash", b) and peers.cap_n(m, "bbpm_global", b)
]
rec("flyhash_to_bbpm_capacity", lambda: ", ".join(f"{format_bytes(b)} {peers.cap_n(m, 'flyhash', b) / peers.cap_n(m, 'bbpm_global', b):.2f}x" for b in fly_runs) or "none",
    "", "fly-hash capacity over BBPM (global) per budget")  # fmt: skip
display(pd.DataFrame(
    {f"{q} at load {x:g}, {format_bytes(small)}": [peers.point(m, mm, small, x)[c] for mm in superposition]
     for x in (1.0, 4.0) for q, c in (("cos", "mean_cosine"), ("acc", "accuracy"))}
    | {f"{q} at load 4, {format_bytes(big)}": [peers.point(m, mm, big, 4.0)[c] for mm in superposition]
       for q, c in (("acc", "accuracy"), ("acc fresh codes", "accuracy_fresh_codes"))},
    index=pd.Index(superposition, name="method")).round(3))  # fmt: skip

# %% tags=["hide-input"]
medians = peers.false_recall_medians(m, ran)
for mm in ("fhrr", "count_sketch", "flyhash", "dict", "hopfield"):
    rec(f"false_recall_median_{mm}", lambda mm=mm: medians[mm], ".3f", f"{mm}: median false recall (score threshold) over the sweep")  # fmt: skip
rec("false_recall_verdict", lambda: "above" if medians["bbpm_global"] > max(medians["fhrr"], medians["count_sketch"]) else "not above",
    "", "BBPM (global) median false recall against FHRR's and the count sketch's")  # fmt: skip
fly = (
    [m["throughput"]["flyhash"][str(b)]["write_items_per_s"] for b in budgets_bytes]
    if "flyhash" in ran
    else []
)
rec("flyhash_write_rate_smallest", lambda: fly[0], ",.0f", "fly-hash writes/s, smallest budget")
rec("flyhash_write_rate_largest", lambda: fly[-1], ",.0f", "fly-hash writes/s, largest budget")
rec(
    "budget_growth",
    lambda: budgets_bytes[-1] // budgets_bytes[0],
    ",d",
    "largest over smallest budget",
)
rec(
    "flyhash_sweep_seconds", lambda: m["method_seconds"]["flyhash"], ".0f", "fly-hash sweep seconds"
)
rec("runtime_seconds", lambda: m["runtime_seconds"], ".0f", "run time up to metrics.json")
rec("flyhash_skipped", lambda: ", ".join(format_bytes(b) for b in m["skipped"].get("flyhash", [])) or "none",
    "", "budgets where the fly-hash sweep was skipped")  # fmt: skip
rec("throughput_min_runs", lambda: min(t[str(big)]["runs"] for t in m["throughput"].values()), "d", "fewest timed runs")  # fmt: skip
display(peers.run_table(m))

# %% tags=["hide-input"]
infos = {b: peers.capacity_leaders(m, ran, b) for b in budgets_bytes}
rec("capacity_leaders", lambda: "; ".join(peers.leader_text(i, format_bytes(b)) for b, i in infos.items()), "",
    "capacity leaders per budget (ties with =) and whether their bracket is apart from the other camp's best")  # fmt: skip
rec("bbpm_lead_budgets", lambda: ", ".join(format_bytes(b) for b, i in infos.items() if i["bbpm_leads"]) or "no budget",
    "", "budgets where a BBPM variant holds the most items (ties included)")  # fmt: skip
rec("bbpm_behind_budgets", lambda: ", ".join(format_bytes(b) for b, i in infos.items() if not i["bbpm_leads"]) or "no budget",
    "", "budgets where a peer holds more items than every BBPM variant")  # fmt: skip
bbpm_fr = [mm for mm in medians if mm in peers.BBPM_METHODS]
worst_fr = sorted(medians, key=medians.get, reverse=True)[: len(bbpm_fr)]
fr_worst_budgets = [b for b in budgets_bytes if (f := peers.false_recall_medians(m, ran, b))
                    and max(f, key=f.get) in peers.BBPM_METHODS]  # fmt: skip
rec("false_recall_rank_bbpm_global", lambda: peers.rank_from_highest(medians, "bbpm_global"), "",
    "BBPM (global)'s place by median false recall, from the highest")  # fmt: skip
rec("false_recall_bbpm_verdict", lambda: (f"the {len(bbpm_fr)} BBPM variants have the {len(bbpm_fr)} highest median false recalls of the {len(medians)} memories"
    if bbpm_fr and set(worst_fr) == set(bbpm_fr) else f"BBPM global's median false recall is the {peers.rank_from_highest(medians, 'bbpm_global')}")
    + (", and a BBPM variant has the highest at " + ("every budget" if len(fr_worst_budgets) == len(budgets_bytes)
       else ", ".join(format_bytes(b) for b in fr_worst_budgets) or "no budget")), "",
    "where BBPM's false recall ranks among the memories, over the sweep and per budget")  # fmt: skip
sup_fr = [mm for mm in superposition if mm in medians]
sup_lead = min(sup_fr, key=medians.get) if sup_fr else None
rec("false_recall_superposition_leader", lambda: peers.SHORT_NAMES[sup_lead], "", "lowest median false recall among superposition memories")  # fmt: skip
_ = rec("false_recall_superposition_leader_value", lambda: medians[sup_lead], ".3f", "its median false recall")  # fmt: skip

# %% tags=["hide-input"]
worst = max(m["theory_error"].items(), key=lambda kv: kv[1]["max_abs"], default=(None, None))
rec("theory_worst_line", lambda: worst[0], "", "theory line farthest from the measurements")
rec("theory_worst_gap", lambda: worst[1]["max_abs"], ".3f", "its max |measured - predicted|")
fresh_gap = (worst[1] or {}).get("max_abs_fresh_codes")
rec("theory_worst_cause", lambda: "a cosine line: the fresh-code diagnostic covers accuracy only" if fresh_gap is None else
    (f"against accuracy decoded among fresh codes the gap is {fresh_gap:.3f}: the model treats other items' values "
     "as independent, and here they repeat (a codebook)") if fresh_gap <= 0.5 * worst[1]["max_abs"] else
    f"against accuracy decoded among fresh codes it is still {fresh_gap:.3f}, so repeated values do not explain it",
    "", "whether repeated values explain the farthest theory line (its gap to fresh-code accuracy)")  # fmt: skip
rows_k = m["k_ablation"]["rows"]
best_k = max(rows_k, key=lambda r: r["accuracy_codebook"])
rec("k_best", lambda: best_k["K"], "d", "K with the best accuracy in the K ablation")
rec("k_best_accuracy", lambda: best_k["accuracy_codebook"], ".3f", "that accuracy")
k_gap = {r["K"]: r["cosine_independent"] - r["cosine_codebook"] for r in rows_k}
k_lo, k_hi, k_max_gap = min(k_gap), max(k_gap), max(k_gap, key=k_gap.get)
rec("k_gap_verdict", lambda: f"{k_gap[k_lo]:+.3f} at K = {k_lo} and largest ({k_gap[k_hi]:+.3f}) at the largest K, {k_hi}: "
    "repeated codes add up coherently when each item touches many slots" if k_max_gap == k_hi else
    f"{k_gap[k_lo]:+.3f} at K = {k_lo} and largest ({k_gap[k_max_gap]:+.3f}) at K = {k_max_gap}, "
    "not at the largest K", "", "independent minus codebook cosine across K")  # fmt: skip
display(pd.DataFrame(m["theory_error"]).T.astype({"points": int}).round(3))
display(pd.DataFrame(rows_k).set_index("K").round(3))
if not m["bbpm_theory_available"]:
    print("bbpm.theory.snr_bounds was not available: no BBPM theory line.")

# %% [markdown]
# **1. Capacity.** Per budget, the memories holding the most items (ties joined by =) and the
# best of the other camp (BBPM or peers): {glue:text}`capacity_leaders`. A BBPM variant leads
# at {glue:text}`bbpm_lead_budgets`; a peer holds more than every BBPM variant at
# {glue:text}`bbpm_behind_budgets`. At {glue:text}`largest_budget` the largest capacity (items at
# $\ge$ {glue:text}`capacity_target` top-1 accuracy) is {glue:text}`leader_largest_with_inverse_noise`'s,
# {glue:text}`capacity_leader_text` items, then {glue:text}`runner_up_largest`'s
# ({glue:text}`runner_up_capacity_text`); BBPM (global hash) holds
# {glue:text}`capacity_bbpm_global_largest_budget`, {glue:text}`capacity_ratio_bbpm_to_dict`
# times the exact dict. The capacity table above has every method and budget, and the ratio
# table below every BBPM-to-peer ratio with the range its two brackets allow.
#
# **2. Exact dict.** It is exact while $N$ is at most its {glue:text}`dict_stored_items`
# stored items, so it wins on accuracy whenever its bytes suffice (at $N$ =
# {glue:text}`dict_full_n` the superposition memories decode {glue:text}`superposition_at_dict_full`).
# Past it FIFO forgets, accuracy = capacity/$N$ ({glue:text}`dict_accuracy_load4` at $N$ =
# {glue:text}`dict_n_load4`): at the target it holds {glue:text}`dict_capacity_text` items,
# the FIFO law giving {glue:text}`dict_fifo_law_n` ({glue:text}`dict_fifo_verdict` the measured
# bracket, midpoint {glue:text}`dict_fifo_error`, sampling error ±{glue:text}`fifo_sampling_error_n`
# in $N$). Unbounded, it would need {glue:text}`dict_unbounded_bytes` for the run's largest
# $N$ ({glue:text}`n_max` items). Storing a 2-byte code id instead of the value vector, as a
# task with a known codebook allows, it would hold {glue:text}`dict_code_id_items` items:
# more than any memory here, because those all store $d$ floats per value.
#
# **3. Hopfield.** Exact up to its {glue:text}`hopfield_stored_items` stored patterns (a key
# pattern and a value per item: {glue:text}`hopfield_to_dict_items` times the dict's items),
# then FIFO like the dict: {glue:text}`hopfield_capacity_text` items at the target, the FIFO
# law giving {glue:text}`hopfield_fifo_law_n` ({glue:text}`hopfield_fifo_verdict` the bracket,
# midpoint {glue:text}`hopfield_fifo_error`). Its reads score every query against every stored
# pattern ({glue:text}`hopfield_read_rate` reads/s).
#
# **4. Superposition memories.** The first-order law gives cos {glue:text}`law_cosine_load1`
# at load 1 and {glue:text}`law_cosine_load4` at load 4 (first table above: smallest budget). At
# load 4 and the largest budget FHRR decodes {glue:text}`fhrr_accuracy_load4` against BBPM
# (global) {glue:text}`bbpm_global_accuracy_load4`, with mean cosines
# {glue:text}`fhrr_mean_cosine_load4` and {glue:text}`bbpm_global_mean_cosine_load4`.
# Decoded among fresh codes instead (diagnostic) they reach
# {glue:text}`fhrr_accuracy_fresh_codes_load4` and {glue:text}`bbpm_global_accuracy_fresh_codes_load4`:
# BBPM's gain from fresh codes is {glue:text}`fresh_gap_verdict`. The count
# sketch's median over `count_sketch_rows` rows has {glue:text}`median_variance_factor`
# times the variance of their mean at high load (its theory line), which costs it capacity.
# Fly-hash capacity over BBPM (global): {glue:text}`flyhash_to_bbpm_capacity`.
#
# **5. False recall** (second table above: never-written keys accepted at the threshold keeping
# `hit_keep` of true hits, over the sweep). By median false recall,
# {glue:text}`false_recall_bbpm_verdict`. BBPM (global)'s median,
# {glue:text}`false_recall_median_bbpm_global`, is the {glue:text}`false_recall_rank_bbpm_global`;
# the lowest among the superposition memories is the {glue:text}`false_recall_superposition_leader`'s,
# {glue:text}`false_recall_superposition_leader_value` (FHRR {glue:text}`false_recall_median_fhrr`,
# count sketch {glue:text}`false_recall_median_count_sketch`, fly hash
# {glue:text}`false_recall_median_flyhash`; dict {glue:text}`false_recall_median_dict`, Hopfield
# {glue:text}`false_recall_median_hopfield`). BBPM's count-debiased read of an unseen key
# is an average of codes really stored in its slots, so it looks like an answer; FHRR and the
# count sketch unbind it into noise; the dict returns nothing. BBPM cannot say "not stored"
# by itself: a membership filter such as `bbpm.memory.BinaryBloomMemory` would have to sit
# beside it.
#
# **6. Throughput** (same table, largest budget, best of at least
# {glue:text}`throughput_min_runs` runs). Fly-hash writes go from
# {glue:text}`flyhash_write_rate_smallest` to {glue:text}`flyhash_write_rate_largest` items/s
# as the budget grows {glue:text}`budget_growth` times: every key is projected onto all $m$
# units (its sweep took {glue:text}`flyhash_sweep_seconds` s of the run's
# {glue:text}`runtime_seconds` s; budgets skipped for that cost: {glue:text}`flyhash_skipped`).
#
# **7. Theory against measurement** (table: max and mean |difference| over the sweep
# points). The farthest line is {glue:text}`theory_worst_line`, off by up to
# {glue:text}`theory_worst_gap`; {glue:text}`theory_worst_cause`.
#
# **8. BBPM's $K$.** The best accuracy of the ablation is at $K$ = {glue:text}`k_best`
# ({glue:text}`k_best_accuracy`). The cosine gap between independent and codebook values is
# {glue:text}`k_gap_verdict`.

# %% tags=["hide-input"]
display(peers.capacity_ratio_table(m))

# %% [markdown]
# ## Table for the paper
#
# Capacity (items at `capacity_accuracy` top-1 accuracy: the midpoint of the measured
# bracket) per method and budget, written as LaTeX to
# `results/exp08_peer_memories/exp08_peer_memories.tex`; the caption gives the target and
# the widest bracket of the run.

# %% tags=["hide-input"]
header, table_rows, caption = peers.capacity_latex_rows(m)
_ = exp.save_latex_table("exp08_peer_memories.tex", header, table_rows, caption=caption)
