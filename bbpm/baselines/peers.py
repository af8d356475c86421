"""The equal-bytes comparison of BBPM with its peers (notebook exp08): task, sweep, theory.

A :class:`PeerTask` holds one run's setting, built from the notebook's parameters
(``exp.params``): ``N`` random 64-bit keys, each storing a row of a fixed random unit
codebook, written into every memory of ``methods`` at every budget of ``budgets_bytes``.
Its methods run the parts of the experiment:

- :meth:`PeerTask.sweep`: accuracy, mean cosine, false recall and throughput along the
  ``N`` grid of each (method, budget), and the capacity at ``capacity_accuracy``, refined by
  :func:`bbpm.baselines.capacity.bisect_capacity`;
- :meth:`PeerTask.theory_curves` / :func:`theory_errors`: the crosstalk predictions of
  :mod:`bbpm.baselines.theory` (and ``bbpm.theory.snr_bounds`` for BBPM) and their gap to
  the measurements;
- :meth:`PeerTask.throughput` and :meth:`PeerTask.k_ablation`.

The functions after the class read a run's ``metrics.json`` (as a dict) into tables and
the numbers the chapter records.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bbpm.baselines import bbpm_from_budget, decode_top1, make_memory, random_codebook
from bbpm.baselines import theory as peer_theory
from bbpm.baselines.capacity import bisect_capacity
from bbpm.hashing import diagnostics as hash_diagnostics
from bbpm.hashing.mixing import splitmix64
from bbpm.utils.formatting import format_bytes
from bbpm.utils.progress import progress

#: every method the comparison knows, in its order
PEER_METHODS = (
    "dict",
    "hopfield",
    "fhrr",
    "count_sketch",
    "flyhash",
    "bbpm_global",
    "bbpm_block",
    "bbpm_global_inverse_noise",
    "bbpm_block_inverse_noise",
)
BBPM_METHODS = tuple(m for m in PEER_METHODS if m.startswith("bbpm"))
#: methods that add values into shared cells (the others store items apart, FIFO)
SUPERPOSITION_METHODS = ("fhrr", "count_sketch", "flyhash", *BBPM_METHODS)
#: methods doing O(size) work per key: fewer items in the throughput runs
SLOW_METHODS = ("flyhash", "hopfield")
COLORS = {
    "dict": "black",
    "hopfield": "C4",
    "fhrr": "C0",
    "count_sketch": "C2",
    "flyhash": "C8",
    "bbpm_global": "C3",
    "bbpm_block": "C1",
    "bbpm_global_inverse_noise": "C6",
    "bbpm_block_inverse_noise": "C5",
}


def method_options(p: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Constructor options of every method (for :func:`bbpm.baselines.make_memory`) from the
    run's parameters ``p``; the ``*_inverse_noise`` methods are the same BBPM tables read with
    the inverse-noise rule (:mod:`bbpm.memory.read_rules`)."""
    bbpm = {"K": p["bbpm_K"], "H": p["bbpm_H"]}
    block = {**bbpm, "block_size": p["bbpm_block_size"]}
    return {
        "dict": {},
        "hopfield": dict(key_dim=p["hopfield_key_dim"], top_k=p["hopfield_top_k"], beta=p["hopfield_beta"]),
        "fhrr": {},
        "count_sketch": dict(rows=p["count_sketch_rows"], estimator=p["count_sketch_estimator"]),
        "flyhash": dict(k=p["flyhash_k"], fan_in=p["flyhash_fan_in"], key_dim=p["flyhash_key_dim"]),
        "bbpm_global": bbpm,
        "bbpm_block": block,
        "bbpm_global_inverse_noise": {**bbpm, "read_rule": "inverse_noise"},
        "bbpm_block_inverse_noise": {**block, "read_rule": "inverse_noise"},
    }  # fmt: skip


def method_labels(p: Mapping[str, Any]) -> dict[str, str]:
    """Figure labels of every method, with its main setting from the parameters ``p``."""
    K = p["bbpm_K"]
    return {
        "dict": "exact dict (FIFO)",
        "hopfield": "Hopfield 2-stage (FIFO)",
        "fhrr": "FHRR banks",
        "count_sketch": f"count sketch ({p['count_sketch_estimator']}, R={p['count_sketch_rows']})",
        "flyhash": f"fly-hash Hebbian (k={p['flyhash_k']})",
        "bbpm_global": f"BBPM global hash (K={K})",
        "bbpm_block": f"BBPM block hash (K={K})",
        "bbpm_global_inverse_noise": f"BBPM global, inverse-noise read (K={K})",
        "bbpm_block_inverse_noise": f"BBPM block, inverse-noise read (K={K})",
    }


def false_recall(
    hit_scores: torch.Tensor, unseen_scores: torch.Tensor, hit_keep: float
) -> tuple[float | None, float | None]:
    """(threshold keeping the share ``hit_keep`` of the true hits' scores, share of the unseen
    keys' scores at or above it); (None, None) without a true hit."""
    if hit_scores.numel() == 0:
        return None, None
    tau = float(torch.quantile(hit_scores.double(), 1.0 - hit_keep))
    return tau, float((unseen_scores.double() >= tau).double().mean())


class PeerTask:
    """One run of the comparison: keys, codebook and value ids shared by every memory.

    ``params`` are the notebook's parameters (``exp.params``; the keys of
    ``params/exp08.yaml``). Unknown methods raise ``ValueError``. Written keys are
    ``splitmix64(0..n_max-1)`` and unseen keys ``splitmix64(2**40 + i)``: splitmix64 is a
    bijection, so no unseen key equals a written one.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.p = p = dict(params)
        unknown = [m for m in p["methods"] if m not in PEER_METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; choose from {list(PEER_METHODS)}")
        self.methods = list(p["methods"])
        self.budgets = list(p["budgets_bytes"])
        self.d, self.seed, self.n_queries = p["d"], p["seed"], p["n_queries"]
        self.options = method_options(p)
        self.codebook = random_codebook(p["codebook_size"], self.d, seed=self.seed + 1)
        # fresh codes no item is written with (the diagnostic decode of `evaluate`)
        self.fresh_codes = random_codebook(p["codebook_size"], self.d, seed=self.seed + 5)
        self.value_slots = {b: b // (4 * self.d) for b in self.budgets}
        self.n_max = max(self.grid(b)[-1] for b in self.budgets)
        self.written_keys = splitmix64(torch.arange(self.n_max, dtype=torch.int64))
        self.unseen_keys = splitmix64(torch.arange(self.n_queries, dtype=torch.int64) + (1 << 40))
        self.value_ids = torch.randint(
            0, p["codebook_size"], (self.n_max,), generator=torch.Generator().manual_seed(self.seed + 2)
        )  # fmt: skip
        self.sizes = {
            m: {str(b): self.size_info(self.build(m, b), m) for b in self.budgets}
            for m in self.methods
        }

    def build(self, method: str, budget: int) -> Any:
        """A fresh memory of ``method`` sized to ``budget`` bytes."""
        return make_memory(
            method.removesuffix("_inverse_noise"), budget, self.d, seed=self.seed, **self.options[method]
        )  # fmt: skip

    @staticmethod
    def size_info(memory: Any, method: str) -> dict[str, Any]:
        """The memory's shape: bytes and the size attributes it has (capacity, D, K, ...)."""
        info = {"nbytes": memory.nbytes}
        for name in ("capacity", "n_banks", "rows", "width", "m", "k", "D", "K", "H"):
            if hasattr(memory, name):
                info[name] = getattr(memory, name)
        if method.startswith("bbpm_block"):
            info["block_size"] = memory.hash_fn.block_size
        if method == "flyhash":
            info["projection_nbytes_in_ram"] = memory.projection_nbytes
        return info

    def grid(self, budget: int) -> list[int]:
        """The sweep's N values at ``budget``: ``load_grid`` times its value-vector count."""
        return sorted({max(1, round(x * self.value_slots[budget])) for x in self.p["load_grid"]})

    def query_rows(self, bi: int, N: int, i: int) -> torch.Tensor:
        """``n_queries`` written rows uniform over the first ``N`` (budget index ``bi``; ``i``:
        the grid index, or ``1_000_003 * N`` for a bisection probe)."""
        generator = torch.Generator().manual_seed(self.seed * 7919 + bi * 101 + i)
        return torch.randperm(N, generator=generator)[: self.n_queries]

    def write_items(self, memory: Any, start: int, stop: int) -> float:
        """Write items ``start..stop-1`` in order (batches of ``write_batch``); seconds in write."""
        seconds, batch = 0.0, self.p["write_batch"]
        for s in range(start, stop, batch):
            e = min(stop, s + batch)
            values = self.codebook[self.value_ids[s:e]]
            t0 = time.perf_counter()
            memory.write(self.written_keys[s:e], values)
            seconds += time.perf_counter() - t0
        return seconds

    def top1_accuracy(self, memory: Any, rows: torch.Tensor) -> float:
        """Top-1 accuracy of ``memory`` on the written keys of ``rows`` (as in :meth:`evaluate`)."""
        with torch.no_grad():
            reads = memory.read(self.written_keys[rows])
        decoded, _, _ = decode_top1(reads, self.codebook)
        return float((decoded == self.value_ids[rows]).double().mean())

    def evaluate(self, memory: Any, rows: torch.Tensor) -> dict[str, float | None]:
        """Accuracy, fresh-code accuracy, mean cosine, false recall (score and cosine
        thresholds) and read throughput of ``memory`` on written ``rows`` and the unseen keys."""
        truth, hit_keep = self.value_ids[rows], self.p["hit_keep"]
        with torch.no_grad():
            start = time.perf_counter()
            reads = memory.read(self.written_keys[rows])
            reads_unseen = memory.read(self.unseen_keys)
            read_seconds = time.perf_counter() - start
        decoded, cosine_best, score = decode_top1(reads, self.codebook)
        _, cosine_unseen, score_unseen = decode_top1(reads_unseen, self.codebook)
        correct = decoded == truth
        tau, fr = false_recall(score[correct], score_unseen, hit_keep)
        tau_cos, fr_cos = false_recall(cosine_best[correct], cosine_unseen, hit_keep)
        true_cos = torch.nn.functional.cosine_similarity(reads, self.codebook[truth], dim=1)
        # the same read decoded among the true code and C-1 fresh codes: crosstalk made of
        # stored codes no longer votes for a candidate, only its energy counts
        fresh_cos = torch.nn.functional.normalize(reads, dim=1) @ self.fresh_codes.T
        fresh_cos[torch.arange(truth.numel()), truth] = -2.0
        return {
            "accuracy": float(correct.double().mean()),
            "accuracy_fresh_codes": float((true_cos > fresh_cos.max(dim=1).values).double().mean()),
            "mean_cosine": float(true_cos.double().mean()),
            "false_recall": fr,
            "false_recall_threshold": tau,
            "false_recall_cos": fr_cos,
            "false_recall_cos_threshold": tau_cos,
            "read_items_per_s": (reads.shape[0] + reads_unseen.shape[0]) / max(read_seconds, 1e-9),
        }  # fmt: skip

    def capacity_entry(self, passed: tuple, crossed: tuple | None, bi: int) -> dict[str, Any]:
        """Capacity at ``capacity_accuracy`` from the grid's bracket: the last grid point at or
        above the target ``passed = (N, accuracy, memory state)`` and the first below it
        ``crossed = (N, accuracy)`` (None: never crossed, censored), refined by bisection."""
        lo_n, lo_acc, lo_state = passed
        if crossed is None:
            entry = {"N": float(lo_n), "censored": "never below target", "N_lo": lo_n,
                     "accuracy_lo": lo_acc, "N_hi": None, "accuracy_hi": None, "probes": []}  # fmt: skip
        else:
            entry = bisect_capacity(
                self.write_items,
                lambda state, N: self.top1_accuracy(state, self.query_rows(bi, N, 1_000_003 * N)),
                lo_state, lo_n, lo_acc, *crossed, self.p["capacity_accuracy"], self.p["capacity_rel_tol"],
            )  # fmt: skip
        entry["grid_bracket"] = [lo_n, None if crossed is None else crossed[0]]
        return entry

    def sweep_method(self, method: str, budget: int, bi: int) -> tuple:
        """Write ``method``'s memory at ``budget`` along the grid, evaluating at each N, until
        accuracy < ``stop_accuracy``. Returns (rows, passed, crossed, memory), the last three
        as :meth:`capacity_entry` and the hash diagnostics take them."""
        target, grid = self.p["capacity_accuracy"], self.grid(budget)
        memory, n_written, rows = self.build(method, budget), 0, []
        passed, crossed = (0, None, self.build(method, budget)), None
        for i, N in enumerate(
            progress(grid, desc=f"{method} @ {format_bytes(budget)}", mininterval=5.0)
        ):
            write_seconds = self.write_items(memory, n_written, N)
            new_items, n_written = N - n_written, N
            row = {"method": method, "budget_bytes": budget, "nbytes": memory.nbytes, "N": N,
                   "load": N / self.value_slots[budget], **self.evaluate(memory, self.query_rows(bi, N, i)),
                   "write_items_per_s": new_items / max(write_seconds, 1e-9)}  # fmt: skip
            rows.append(row)
            if crossed is None:
                if row["accuracy"] >= target:
                    passed = (N, row["accuracy"], copy.deepcopy(memory))
                else:
                    crossed = (N, row["accuracy"])
            if row["accuracy"] < self.p["stop_accuracy"]:
                break
        return rows, passed, crossed, memory

    def sweep(self) -> dict[str, Any]:
        """Every (budget, method): the sweep rows, hash diagnostics of the BBPM tables, the
        capacity entry, and seconds spent in the sweep and in the bisection. The fly hash is
        skipped at budgets above ``flyhash_max_bytes`` (its capacity is then None)."""
        out = {"rows": [], "hash_stats": {}, "skipped": {}, "capacity": {m: {} for m in self.methods},
               "method_seconds": dict.fromkeys(self.methods, 0.0),
               "capacity_seconds": dict.fromkeys(self.methods, 0.0)}  # fmt: skip
        for bi, budget in enumerate(self.budgets):
            for method in self.methods:
                if method == "flyhash" and budget > self.p["flyhash_max_bytes"]:
                    out["skipped"].setdefault(method, []).append(budget)
                    out["capacity"][method][str(budget)] = None
                    continue
                started = time.perf_counter()
                rows, passed, crossed, memory = self.sweep_method(method, budget, bi)
                out["rows"] += rows
                if method.startswith("bbpm"):
                    slots = memory.slots(self.written_keys[: rows[-1]["N"]])
                    out["hash_stats"].setdefault(method, {})[str(budget)] = {
                        "N": rows[-1]["N"], **hash_diagnostics.summarize(slots, memory.D),
                        "load_factor": memory.load_factor,
                    }  # fmt: skip
                del memory
                out["method_seconds"][method] += time.perf_counter() - started
                started = time.perf_counter()
                out["capacity"][method][str(budget)] = self.capacity_entry(passed, crossed, bi)
                del passed
                out["capacity_seconds"][method] += time.perf_counter() - started
        return out

    def sdm_sweep(
        self, rows: Sequence[Mapping[str, Any]], max_budget: int = 2**20
    ) -> dict[str, Any]:
        """Kanerva's SDM (torchhd, :mod:`bbpm.baselines.sdm`) on the same items, queries and
        grid at the budgets up to ``max_budget``, beside BBPM (global) from ``rows``.
        ``{"note": why it did not run or None, "active", "tuning", "rows"}``."""
        from bbpm.baselines.sdm import torchhd_missing, tune_active

        out = {"note": torchhd_missing(), "active": None, "tuning": None, "rows": []}
        if out["note"] is not None:
            return out
        smallest = min(self.budgets)
        out["active"], out["tuning"] = tune_active(
            smallest, self.d, max(1, self.value_slots[smallest]), codebook_size=self.p["codebook_size"]
        )  # fmt: skip
        bbpm_acc = {
            (r["budget_bytes"], r["N"]): r["accuracy"] for r in rows if r["method"] == "bbpm_global"
        }
        for bi, budget in enumerate(self.budgets):
            if budget > max_budget:
                continue
            memory = make_memory("sdm", budget, self.d, seed=self.seed, active=out["active"])
            n_written = 0
            for i, N in enumerate(self.grid(budget)):
                self.write_items(memory, n_written, N)
                n_written = N
                accuracy = self.evaluate(memory, self.query_rows(bi, N, i))["accuracy"]
                out["rows"].append({"budget_bytes": budget, "nbytes": memory.nbytes, "N": N,
                                    "load": N / self.value_slots[budget], "accuracy": accuracy,
                                    "bbpm_global": bbpm_acc.get((budget, N))})  # fmt: skip
                if accuracy < self.p["stop_accuracy"]:
                    break
        return out

    def bbpm_prediction(
        self, N: int, size: Mapping[str, Any], block: bool, rule: str = "debiased"
    ) -> tuple[float, float]:
        """(expected cosine, top-1 accuracy) of BBPM holding ``N`` items (shape ``size``) under
        ``bbpm.theory.snr_bounds``; for the inverse-noise read, exact where a slot is clean,
        else unit gain with the rule's crosstalk."""
        from bbpm.theory import read_rules as rule_theory
        from bbpm.theory import snr_bounds

        d, C, seed = self.d, self.p["codebook_size"], self.seed
        block_size = size.get("block_size") if block else None
        D, K, H = size["D"], size["K"], size["H"]
        cosine = snr_bounds.expected_cosine(N, D, K, H, d, block_size=block_size, read_rule=rule)
        if rule == "debiased":
            a, s2 = snr_bounds.sample_load_statistics(N, D, K, H, 1000, seed, block_size)
            return cosine, float(peer_theory.top1_accuracy_gaussian(s2 / a**2, d, C).mean())
        exact = snr_bounds.exact_share(N, D, K, H, rule, block_size)
        loads, weights = rule_theory.loaded_rows(N, D, K, H, 1000, seed, block_size)
        _, alpha = rule_theory.rule_coefficients(loads, rule)
        s2 = (loads * alpha**2).sum(1) + rule_theory.pair_part(alpha, loads, N, D, K, H, block_size)
        noisy = peer_theory.top1_accuracy_gaussian(s2, d, C)
        if weights.sum() <= 0:  # no sampled key without a clean slot: weigh the draws alike
            weights = np.ones_like(weights)
        mean_noisy = float(weights @ noisy / weights.sum())
        return cosine, exact + (1 - exact) * mean_noisy

    def theory_curves(
        self, rows: Sequence[Mapping[str, Any]], bbpm_theory: bool = True
    ) -> dict[str, dict]:
        """Per budget: ``theory_points`` values of N (log-spaced up to the largest N swept) and
        each method's predicted ``<method>_accuracy`` / ``<method>_cosine`` there (FIFO stores:
        accuracy only; BBPM only when ``bbpm_theory``)."""
        p, d, C = self.p, self.d, self.p["codebook_size"]
        theory = {}
        for budget in self.budgets:
            key = str(budget)
            sizes = {m: s[key] for m, s in self.sizes.items()}
            n_hi = max(r["N"] for r in rows if r["budget_bytes"] == budget)
            n_lo = max(2, min(p["load_grid"]) * self.value_slots[budget])
            n_grid = np.unique(np.geomspace(n_lo, n_hi, p["theory_points"]).astype(int))
            curves: dict[str, Any] = {"N": n_grid.tolist()}
            if "fhrr" in self.methods:
                fhrr = [
                    peer_theory.fhrr_banks_prediction(int(n), sizes["fhrr"]["n_banks"], d, C)
                    for n in n_grid
                ]
                curves["fhrr_cosine"] = [q["cosine"] for q in fhrr]
                curves["fhrr_accuracy"] = [q["accuracy"] for q in fhrr]
            if "count_sketch" in self.methods:
                size = sizes["count_sketch"]
                rho = peer_theory.count_sketch_rho(
                    n_grid, size["rows"], size["width"], p["count_sketch_estimator"]
                )
                curves["count_sketch_cosine"] = peer_theory.expected_cosine_gaussian(rho).tolist()
                curves["count_sketch_accuracy"] = peer_theory.top1_accuracy_gaussian(
                    rho, d, C
                ).tolist()
            if "flyhash" in self.methods and budget <= p["flyhash_max_bytes"]:
                codes = self.build("flyhash", budget).codes(
                    self.written_keys[: min(self.n_max, p["flyhash_theory_keys"])]
                )
                overlap = peer_theory.code_overlap_per_key(codes, sizes["flyhash"]["m"])
                fly = [
                    peer_theory.hebbian_code_prediction(
                        int(n), overlap, sizes["flyhash"]["k"], d, C
                    )
                    for n in n_grid
                ]
                curves["flyhash_cosine"] = [q["cosine"] for q in fly]
                curves["flyhash_accuracy"] = [q["accuracy"] for q in fly]
                curves["flyhash_mean_overlap"] = float(overlap.mean())
            for method in ("dict", "hopfield"):
                if method in self.methods:
                    curves[f"{method}_accuracy"] = peer_theory.fifo_accuracy(
                        n_grid, sizes[method]["capacity"]
                    ).tolist()
            for method in (m for m in BBPM_METHODS if bbpm_theory and m in self.methods):
                rule = "inverse_noise" if method.endswith("inverse_noise") else "debiased"
                pairs = [
                    self.bbpm_prediction(
                        int(n), sizes[method], method.startswith("bbpm_block"), rule
                    )
                    for n in n_grid
                ]
                curves[f"{method}_cosine"] = [q[0] for q in pairs]
                curves[f"{method}_accuracy"] = [q[1] for q in pairs]
            theory[key] = curves
        return theory  # fmt: skip

    def fifo_check(self, capacity: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
        """For the FIFO stores (accuracy ``min(1, c/N)`` exactly): the law's crossing ``c/a`` of
        the target ``a``, the measured midpoint's relative error and whether the measured
        bracket holds it, per method and budget where the target was crossed."""
        check: dict[str, dict] = {}
        for method in (m for m in ("dict", "hopfield") if m in self.methods):
            for budget in self.budgets:
                entry = capacity[method][str(budget)]
                if entry is None or entry["censored"]:
                    continue
                exact = self.sizes[method][str(budget)]["capacity"] / self.p["capacity_accuracy"]
                check.setdefault(method, {})[str(budget)] = {
                    "exact_N": exact,
                    "relative_error": entry["N"] / exact - 1,
                    "in_bracket": entry["N_lo"] <= exact <= entry["N_hi"],
                }
        return check

    def throughput(self, max_runs: int = 20) -> dict[str, dict]:
        """Write and read items/s per method and budget: best of at least 3 runs (each from
        ``clear()``), repeated until ``throughput_seconds`` have passed (at most ``max_runs``),
        after one warm-up write and read per method; ``throughput_slow_items`` items for
        :data:`SLOW_METHODS`, ``throughput_items`` for the others."""
        p, batch = self.p, self.p["write_batch"]

        def timed_run(memory: Any, keys: torch.Tensor, values: torch.Tensor) -> tuple[float, float]:
            memory.clear()
            t0 = time.perf_counter()
            for s in range(0, keys.numel(), batch):
                memory.write(keys[s : s + batch], values[s : s + batch])
            t1 = time.perf_counter()
            for s in range(0, keys.numel(), batch):
                memory.read(keys[s : s + batch])
            return t1 - t0, time.perf_counter() - t1

        out: dict[str, dict] = {m: {} for m in self.methods}
        for method in self.methods:  # warm-up
            timed_run(self.build(method, self.budgets[0]), self.written_keys[:2], self.codebook[:2])
        for budget in progress(self.budgets, desc="throughput", mininterval=5.0):
            for method in self.methods:
                n_items = (
                    p["throughput_slow_items"] if method in SLOW_METHODS else p["throughput_items"]
                )
                keys = splitmix64(torch.arange(n_items, dtype=torch.int64) + (1 << 41))
                values = self.codebook[torch.arange(n_items) % p["codebook_size"]]
                memory, runs = self.build(method, budget), []
                while len(runs) < max_runs and (
                    len(runs) < 3 or sum(map(sum, runs)) < p["throughput_seconds"]
                ):
                    runs.append(timed_run(memory, keys, values))
                del memory
                out[method][str(budget)] = {
                    "items": n_items,
                    "runs": len(runs),
                    "write_items_per_s": n_items / max(min(r[0] for r in runs), 1e-9),
                    "read_items_per_s": n_items / max(min(r[1] for r in runs), 1e-9),
                }
        return out  # fmt: skip

    def k_ablation(self, bbpm_theory: bool = True) -> dict[str, Any]:
        """BBPM (global hash, H = 1) for each K of ``k_ablation_values`` at
        ``k_ablation_budget`` and ``k_ablation_load``: mean cosine with the codebook's values
        and with independent random unit values, top-1 accuracy with the codebook, and
        (``bbpm_theory``) ``snr_bounds.expected_cosine``. ``{"budget", "N", "rows"}``."""
        p, d, seed, batch = self.p, self.d, self.seed, self.p["write_batch"]
        n = max(1, round(p["k_ablation_load"] * p["k_ablation_budget"] / (4 * d)))
        keys = splitmix64(torch.arange(n, dtype=torch.int64) + (1 << 42))
        ids = torch.randint(
            0, p["codebook_size"], (n,), generator=torch.Generator().manual_seed(seed + 3)
        )
        independent = torch.nn.functional.normalize(
            torch.randn(n, d, generator=torch.Generator().manual_seed(seed + 4)), dim=1
        )
        q, rows = slice(0, min(self.n_queries, n)), []
        for K in p["k_ablation_values"]:
            entry = {"K": K}
            for name, values in (("codebook", self.codebook[ids]), ("independent", independent)):
                memory = bbpm_from_budget(
                    p["k_ablation_budget"], d, K=K, H=1, hash="global", seed=seed
                )
                for s in range(0, n, batch):
                    memory.write(keys[s : s + batch], values[s : s + batch])
                reads = memory.read(keys[q])
                entry[f"cosine_{name}"] = float(
                    torch.nn.functional.cosine_similarity(reads, values[q], dim=1).mean()
                )
                if name == "codebook":
                    decoded, _, _ = decode_top1(reads, self.codebook)
                    entry["accuracy_codebook"] = float((decoded == ids[q]).double().mean())
                    entry["D"] = memory.D
            if bbpm_theory:
                from bbpm.theory import snr_bounds

                entry["cosine_theory"] = snr_bounds.expected_cosine(n, entry["D"], K, 1, d)
            rows.append(entry)
        return {"budget": p["k_ablation_budget"], "N": n, "rows": rows}  # fmt: skip


def theory_errors(
    theory: Mapping[str, Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Per ``<method>_<accuracy|cosine>`` with a theory curve: max and mean |measured -
    predicted| over the sweep points, the prediction interpolated in log N; for accuracy
    lines also ``max_abs_fresh_codes``, the max gap to the accuracy decoded among fresh codes
    (values that do not repeat, as the models assume)."""
    errors = {}
    for method in methods:
        for quantity, column in (("accuracy", "accuracy"), ("cosine", "mean_cosine")):
            name = f"{method}_{quantity}"
            points = [
                (r, float(np.interp(math.log(r["N"]), np.log(c["N"]), c[name])))
                for r in rows
                if r["method"] == method and name in (c := theory[str(r["budget_bytes"])])
            ]
            gaps = [abs(r[column] - predicted) for r, predicted in points]
            if gaps:
                errors[name] = {
                    "max_abs": max(gaps),
                    "mean_abs": float(np.mean(gaps)),
                    "points": len(gaps),
                }
                fresh = [
                    abs(r["accuracy_fresh_codes"] - predicted)
                    for r, predicted in points
                    if quantity == "accuracy" and r.get("accuracy_fresh_codes") is not None
                ]
                if fresh:
                    errors[name]["max_abs_fresh_codes"] = max(fresh)
    return errors  # fmt: skip


def bracket_widths(capacity: Mapping[str, Mapping[str, Any]]) -> list[float]:
    """(N_hi - N_lo) / N_lo of every bracketed (crossed, not censored) capacity entry."""
    return [
        (e["N_hi"] - e["N_lo"]) / e["N_lo"]
        for per_budget in capacity.values()
        for e in per_budget.values()
        if e and not e["censored"]
    ]


# ----- reading a run's metrics (the dict of metrics.json) ---------------------------------


def cap_n(m: Mapping[str, Any], method: str, budget: int) -> float | None:
    """Capacity (bracket midpoint) of ``method`` at ``budget``; None where censored or not run."""
    entry = m["capacity"][method][str(budget)]
    return None if entry is None or entry["censored"] else entry["N"]


def cap_value(m: Mapping[str, Any], method: str, budget: int) -> float:
    """Capacity for ranking: the midpoint, the censored lower bound, or 0.0 (none / not run)."""
    entry = m["capacity"][method][str(budget)]
    return 0.0 if entry is None or entry["N"] is None else float(entry["N"])


#: short names of the methods for prose and the paper
SHORT_NAMES = {
    "dict": "dict",
    "hopfield": "Hopfield",
    "fhrr": "FHRR",
    "count_sketch": "count sketch",
    "flyhash": "fly hash",
    "bbpm_global": "BBPM global",
    "bbpm_block": "BBPM block",
    "bbpm_global_inverse_noise": "BBPM global inverse-noise",
    "bbpm_block_inverse_noise": "BBPM block inverse-noise",
}


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ..., ``11th``, ``21st``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def brackets_apart(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two capacity entries' brackets ``[N_lo, N_hi]`` do not overlap (a censored
    entry's reaches up without end; an entry with no item at the target sits at 0)."""

    def span(e: Mapping[str, Any] | None) -> tuple[float, float]:
        if not e or e["N"] is None:
            return 0.0, 0.0
        if e["censored"] or e.get("N_hi") is None:
            return float(e["N_lo"] if e.get("N_lo") is not None else e["N"]), math.inf
        return float(e["N_lo"]), float(e["N_hi"])

    (lo_a, hi_a), (lo_b, hi_b) = span(a), span(b)
    return hi_a < lo_b or hi_b < lo_a


def capacity_leaders(m: Mapping[str, Any], methods: Sequence[str], budget: int) -> dict[str, Any]:
    """At ``budget``: ``leaders`` (the methods with the largest capacity, ties included),
    ``bbpm_leads`` (a BBPM variant among them), ``best_bbpm`` / ``best_peer`` (the largest
    capacity of each camp) and ``apart`` (their brackets do not overlap; None without both)."""
    values = {mm: cap_value(m, mm, budget) for mm in methods}
    top = max(values.values())
    bbpm = [mm for mm in methods if mm in BBPM_METHODS]
    others = [mm for mm in methods if mm not in BBPM_METHODS]
    best_bbpm = max(bbpm, key=values.__getitem__) if bbpm else None
    best_peer = max(others, key=values.__getitem__) if others else None
    entry = {mm: m["capacity"][mm][str(budget)] for mm in methods}
    apart = None
    if best_bbpm and best_peer:
        apart = brackets_apart(entry[best_bbpm], entry[best_peer])
    leaders = [mm for mm in methods if values[mm] == top]
    return {
        "leaders": leaders,
        "bbpm_leads": any(mm in BBPM_METHODS for mm in leaders),
        "best_bbpm": best_bbpm,
        "best_peer": best_peer,
        "apart": apart,
    }


def leader_text(info: Mapping[str, Any], where: str) -> str:
    """``16 MiB: BBPM global = BBPM block, ahead of FHRR (brackets overlap)``."""
    names = " = ".join(SHORT_NAMES[mm] for mm in info["leaders"])
    other = info["best_peer"] if info["bbpm_leads"] else info["best_bbpm"]
    if other is None:
        return f"{where}: {names}"
    apart = "brackets apart" if info["apart"] else "brackets overlap"
    return f"{where}: {names}, ahead of {SHORT_NAMES[other]} ({apart})"


def false_recall_medians(
    m: Mapping[str, Any], methods: Sequence[str], budget: int | None = None
) -> dict[str, float]:
    """Median false recall of each method over its sweep points (at ``budget`` only, when
    given); a method without a false-recall value is left out."""
    out = {}
    for mm in methods:
        values = [
            r["false_recall"]
            for r in m["sweep"]
            if r["method"] == mm
            and r["false_recall"] is not None
            and (budget is None or r["budget_bytes"] == budget)
        ]
        if values:
            out[mm] = float(np.median(values))
    return out


def rank_from_highest(values: Mapping[str, float], method: str) -> str:
    """``2nd highest of 9``: 1 + the number of methods with a strictly higher value."""
    rank = 1 + sum(v > values[method] for v in values.values())
    return f"{ordinal(rank)} highest of {len(values)}"


def cap_text(entry: Mapping[str, Any] | None, latex: bool = False) -> str:
    """A capacity entry as text: ``midpoint [N_lo-N_hi]``, ``>= N`` (censored), ``< N`` (not
    even one item at the target) or ``not run``; ``latex``: the midpoint alone, LaTeX signs."""
    if not entry:
        return "not run"
    if entry["N"] is None:
        return ("$<$ " if latex else "< ") + f"{entry['smallest_N']:,}"
    if entry["censored"]:
        return (r"$\geq$ " if latex else ">= ") + f"{entry['N']:,.0f}"
    return (
        f"{entry['N']:,.0f}"
        if latex
        else f"{entry['N']:,.0f} [{entry['N_lo']:,}-{entry['N_hi']:,}]"
    )


def point(m: Mapping[str, Any], method: str, budget: int, load: float) -> dict | None:
    """The sweep row of ``method`` at ``budget`` whose load is nearest (in log) to ``load``."""
    rows = [r for r in m["sweep"] if r["method"] == method and r["budget_bytes"] == budget]
    return min(rows, key=lambda r: abs(math.log(r["load"] / load))) if rows else None


def capacity_table(m: Mapping[str, Any]) -> Any:
    """pandas table: capacity text (:func:`cap_text`) per method (rows) and budget (columns)."""
    import pandas as pd

    budgets = m["hyperparameters"]["budgets_bytes"]
    return pd.DataFrame(
        {format_bytes(b): [cap_text(m["capacity"][x][str(b)]) for x in m["hyperparameters"]["methods"]] for b in budgets},
        index=pd.Index(m["hyperparameters"]["methods"], name="method"),
    )  # fmt: skip


def capacity_ratio_table(m: Mapping[str, Any]) -> Any:
    """pandas table: each BBPM method's capacity over each peer's, midpoint over midpoint and
    the range the two brackets allow (``lo-hi``), per budget where both crossed the target."""
    import pandas as pd

    ran, budgets, rows = m["hyperparameters"]["methods"], m["hyperparameters"]["budgets_bytes"], []
    for mm in (x for x in BBPM_METHODS if x in ran):
        for peer in (
            x for x in ("fhrr", "count_sketch", "flyhash", "dict", "hopfield") if x in ran
        ):
            row = {}
            for b in budgets:
                if cap_n(m, mm, b) and cap_n(m, peer, b):
                    e, f = m["capacity"][mm][str(b)], m["capacity"][peer][str(b)]
                    row[format_bytes(b)] = (
                        f"{e['N'] / f['N']:.2f} ({e['N_lo'] / f['N_hi']:.2f}-{e['N_hi'] / f['N_lo']:.2f})"
                    )
            if row:
                rows.append({"ratio": f"{mm} / {peer}", **row})
    return pd.DataFrame(rows).set_index("ratio").fillna("") if rows else pd.DataFrame()


def run_table(m: Mapping[str, Any]) -> Any:
    """pandas table per method: false recall over the sweep (median and max, score and cosine
    thresholds) and write / read items/s at the largest budget."""
    import pandas as pd

    big, rows = str(m["hyperparameters"]["budgets_bytes"][-1]), []
    for mm in m["hyperparameters"]["methods"]:
        row = {"method": mm}
        for column, name in (("false_recall", "score"), ("false_recall_cos", "cosine")):
            values = [r[column] for r in m["sweep"] if r["method"] == mm and r[column] is not None]
            if values:
                row[f"false recall, {name}: median"] = round(float(np.median(values)), 3)
                row[f"false recall, {name}: max"] = round(max(values), 3)
        t = m["throughput"][mm][big]
        row["write items/s"], row["read items/s"] = (
            f"{t['write_items_per_s']:,.0f}",
            f"{t['read_items_per_s']:,.0f}",
        )
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")  # fmt: skip


def capacity_latex_rows(m: Mapping[str, Any]) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, caption) of the paper's capacity table: the midpoint per method and
    budget, the caption giving the target and the widest bracket."""
    capacity = m["capacity"]
    budget_keys = sorted({b for per_budget in capacity.values() for b in per_budget}, key=int)
    widths = bracket_widths(capacity)
    n_entries = sum(1 for per_budget in capacity.values() for e in per_budget.values() if e)
    caption = (
        f"Items stored at {m['hyperparameters']['capacity_accuracy']:.0%} top-1 decode accuracy, "
        "at equal bytes (exp08): midpoint of a measured bracket (bisection on N)"
        + (f", each at most {max(widths):.1%} wide" if widths else "")
        + (r"; $\geq$: the target was not crossed" if len(widths) < n_entries else "")
        + "."
    )
    rows = [
        [method, *[cap_text(per.get(b), latex=True) for b in budget_keys]]
        for method, per in capacity.items()
    ]
    return ["method", *[format_bytes(int(b)) for b in budget_keys]], rows, caption  # fmt: skip
