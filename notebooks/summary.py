# %% [markdown]
# # Summary: the headline numbers of this build
#
# This chapter runs last. It reads every `results/*/metrics.json` written by the other
# notebooks of this build and prints, for each experiment, whether it ran with its full or its
# smoke parameters, how long it took, and one line of headline numbers. Nothing here is typed
# by hand: a value that a run did not produce is shown as `n/a`. A book built by `make test`
# shows smoke runs (tiny settings, for CI); `make book` shows the full runs the chapters discuss.

# %% tags=["parameters"]
seed = 0
results_root = "results"

# %%
import json

import matplotlib.pyplot as plt
import yaml

from bbpm.utils import Experiment, format_bytes, repo_root

params = dict(seed=seed, results_root=results_root)
exp = Experiment("summary", params)
root = repo_root()


def load(exp_id: str) -> dict | None:
    path = root / results_root / exp_id / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def notebook_stem(exp_id: str) -> str:
    return exp_id.split("_")[0] if exp_id.startswith("exp") else exp_id


def run_mode(metrics: dict, stem: str) -> str:
    """'full' or 'smoke' when the stored hyperparameters match that params file."""
    used = metrics.get("hyperparameters", {})
    for mode, path in (
        ("full", root / "params" / f"{stem}.yaml"),
        ("smoke", root / "params" / "smoke" / f"{stem}.yaml"),
    ):
        if path.is_file():
            wanted = yaml.safe_load(path.read_text()) or {}
            if all(used.get(k) == v for k, v in wanted.items()):
                return mode
    return "custom"


# %% [markdown]
# ## One line per experiment
#
# Each extractor reads a few fields of one experiment's metrics; a missing field prints `n/a`
# rather than failing, so the summary also works on partial builds.


# %%
def fmt(value, spec=".3f"):
    return "n/a" if value is None else format(value, spec)


def bench02_headline(m: dict) -> str:
    """Worst total-variation distance of the seeded hashes from the binomial occupancy, the
    prototype formula's on consecutive keys, and the hashing cost range."""
    rows = m["rows"]
    seeded = [r["tv_distance"] for r in rows if "prototype" not in r["hash"]]
    proto = [r for r in rows if "prototype" in r["hash"] and r["keys"] == "consecutive"]
    parts = [
        f"seeded hashes within TV {fmt(max(seeded) if seeded else None, '.4f')} of the binomial occupancy "
        f"({len(seeded)} settings, D = {m['hyperparameters']['D']:,})"
    ]
    if proto:
        top = max(proto, key=lambda r: r["load_factor"])
        parts.append(
            f"prototype formula on consecutive keys TV {fmt(top['tv_distance'], '.3f')} at load {top['load_factor']:g}"
        )
    cost = {name: c.get("ns_per_index") for name, c in m.get("hash_cost", {}).items()}
    cost = {name: v for name, v in cost.items() if v is not None}
    if cost:
        parts.append(
            f"hashing {fmt(min(cost.values()), '.1f')}-{fmt(max(cost.values()), '.1f')} ns/index"
        )
    return "; ".join(parts)


def bench03_headline(m: dict) -> str:
    """At the largest CPU batch: the default fast read and write paths over the canonical ops,
    their effective bandwidth against the measured copy bandwidth; the gradient check."""
    cpu = [r for r in m["rows"] if r.get("device") == "cpu"]
    B = max(r["B"] for r in cpu)
    at = {r["path"]: r for r in cpu if r["B"] == B}
    copy_gbps = m.get("roofs", {}).get("cpu", {}).get("copy_gbps")

    def gain(slow: str, fasts: tuple[str, ...]) -> str | None:
        fast = next((f for f in fasts if f in at), None)
        if slow not in at or fast is None:
            return None
        r = at[fast]
        share = f", {r['effective_gbps'] / copy_gbps:.0%} of copy" if copy_gbps else ""
        return (
            f"{fast} {at[slow]['median_s'] / r['median_s']:.1f}x canonical "
            f"({fmt(r['effective_gbps'], '.2f')} GB/s{share})"
        )

    parts = [
        g
        for g in (
            gain("read canonical", ("read embedding_bag (auto weights)", "read embedding_bag")),
            gain("write canonical", ("write C kernel", "write columns (default)")),
        )
        if g is not None
    ]
    grad = m.get("gradient", {}).get("exact_match")
    return (
        f"CPU, B = {B:,}: "
        + ("; ".join(parts) if parts else "n/a (no fast path timed)")
        + f"; copy bandwidth {fmt(copy_gbps, '.2f')} GB/s"
        + ("" if grad is None else f"; gradient rows = addressed rows: {grad}")
    )


def headline(exp_id: str, m: dict) -> str:  # noqa: C901 - one branch per experiment
    try:
        if exp_id.startswith("exp01"):
            mixed, proto = m["measured"]["mixed"], m["measured"]["prototype"]
            return (
                f"max |theory - measured| mean cosine {fmt(m['max_abs_error_mean_cos'], '.1e')}; "
                f"at N={mixed['N'][-1]:,}: default hash {fmt(mixed['mean_cos'][-1])}, prototype formula {fmt(proto['mean_cos'][-1])}"
            )
        if exp_id.startswith("exp02"):
            return f"max |theory - measured| mean cosine {fmt(m['max_abs_error_mean_cos'], '.1e')} over {len(m['configs'])} (K, H) settings"
        if exp_id.startswith("exp03"):
            last = {h: m["per_hash"]["mean_cos"][h]["mean"][-1] for h in m["hashes"]}
            return f"mean cosine at N={m['N'][-1]:,}: " + ", ".join(
                f"{h} {fmt(v)}" for h, v in last.items()
            )
        if exp_id.startswith("exp04"):
            return f"KV cache exceeds BBPM's {m['bbpm_bytes_analytic'] / 1e9:.2f} GB from T = {m['crossover_T_interpolated']:,.0f} tokens"
        if exp_id.startswith("exp05"):
            last = m["checkpoints"][-1]
            windows = ", ".join(f"{k} {fmt(v)}" for k, v in last["window_success"].items())
            return f"success at N={last['N']:,}: BBPM {fmt(last['bbpm']['centred']['success'])}; {windows}"
        if exp_id.startswith("exp06"):
            bits = sorted(m["curves"], key=int)
            return "stable-key recall at the last step: " + ", ".join(
                f"{b} bits {fmt(m['curves'][b]['stable_success'][-1])}" for b in bits
            )
        if exp_id.startswith("exp07"):
            if m.get("mode") != "llm":
                return f"synthetic mode ({m.get('mode_reason')}): decode accuracy {m['decode']['accuracy_top1']}"
            acc = m["accuracy"]
            parts = [
                f"{name} {fmt(v['accuracy'][-1], '.2f')} (N={v['N'][-1]:,})"
                for name, v in acc.items()
                if v.get("N")
            ]
            return f"{m['model']['model_id']}: answer accuracy at the largest N run: " + ", ".join(
                parts
            )
        if exp_id.startswith("exp08"):
            budget = max((b for v in m["capacity"].values() for b in v), key=int)
            entries = {
                k: v[budget]
                for k, v in m["capacity"].items()
                if (v.get(budget) or {}).get("N") is not None
            }
            target = m["hyperparameters"]["capacity_accuracy"]
            return (
                f"items at >= {target:.0%} top-1 with {format_bytes(int(budget))} (bisection midpoints): "
                + ", ".join(
                    f"{k} {'>= ' if e.get('censored') else ''}{e['N']:,.0f}"
                    for k, e in sorted(entries.items(), key=lambda kv: -kv[1]["N"])
                )
            )
        if exp_id.startswith("bench01"):
            t = m["targets"]
            return (
                f"fast read {fmt(t['read_speedup'], '.1f')}x, fast write {fmt(t['write_speedup'], '.1f')}x the prototype's ops "
                f"(targets 10x / 3x at the benchmark's target size; max rel. error {fmt(t['max_rel_error_fp32'], '.1e')})"
            )
        if exp_id.startswith("bench02"):
            return bench02_headline(m)
        if exp_id.startswith("bench03"):
            return bench03_headline(m)
        if exp_id.startswith("bench04"):
            last = m["per_world"][-1]
            return (
                f"world size {last['world_size']}: {fmt(last['write']['counted_payload_bytes_per_item'], '.1f')} bytes/item moved on write, "
                f"model {fmt(last['write']['model_payload_bytes_per_item_at_measured_share'], '.1f')}"
            )
    except (KeyError, IndexError, TypeError, ValueError) as error:
        return f"n/a ({type(error).__name__}: {error})"
    return ""


rows = []
for path in sorted((root / results_root).glob("*/metrics.json")):
    exp_id = path.parent.name
    if exp_id == "summary":
        continue
    m = json.loads(path.read_text())
    rows.append(
        {
            "experiment": exp_id,
            "mode": run_mode(m, notebook_stem(exp_id)),
            "runtime_s": m.get("runtime_seconds"),
            "headline": headline(exp_id, m),
        }
    )

for row in rows:
    print(
        f"{row['experiment']:<26} {row['mode']:<6} {fmt(row['runtime_s'], '7.1f')} s  {row['headline']}"
    )

# %% [markdown]
# ## Where the time goes
#
# The compute time each notebook recorded (kernel start-up and papermill overhead excluded).
# The sum is a lower bound for `make book` (or `make test`, for smoke runs) on this machine.

# %%
total = sum(r["runtime_s"] or 0.0 for r in rows)
exp.save_metrics({"rows": rows, "total_runtime_seconds": total})
exp.save_latex_table(
    "summary_table.tex",
    ["experiment", "mode", "runtime (s)"],
    [[r["experiment"], r["mode"], r["runtime_s"] or 0.0] for r in rows],
    caption="Runtime of each notebook in this build.",
)

metrics = exp.load_metrics()
fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(metrics["rows"]), 1) + 1))
names = [r["experiment"] + f" ({r['mode']})" for r in metrics["rows"]]
ax.barh(names, [r["runtime_s"] or 0.0 for r in metrics["rows"]], color="tab:blue")
ax.invert_yaxis()
ax.set_xlabel("notebook compute time (s)")
ax.set_title(f"Runtime per notebook, total {metrics['total_runtime_seconds'] / 60:.1f} min")
exp.save_figure(fig, "runtimes.png")
plt.show()
print(
    f"Total recorded compute time: {metrics['total_runtime_seconds'] / 60:.1f} min over {len(metrics['rows'])} notebooks "
    f"on {metrics['environment']['cpu_count']} CPU cores."
)
