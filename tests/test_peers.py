"""The equal-bytes peer comparison machinery (bbpm.baselines.peers, peer_plots)."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from bbpm.baselines import peer_plots, peers
from bbpm.baselines import theory as peer_theory

matplotlib.use("Agg")

# A tiny run: two budgets, a short grid; the dict, FHRR and one BBPM table.
PARAMS = {
    "seed": 0, "d": 32, "codebook_size": 64, "budgets_bytes": [4096, 8192],
    "load_grid": [0.25, 1.0, 4.0, 16.0], "methods": ["dict", "fhrr", "bbpm_global"],
    "n_queries": 100, "write_batch": 256, "stop_accuracy": 0.1, "hit_keep": 0.95,
    "capacity_accuracy": 0.9, "capacity_rel_tol": 0.02, "flyhash_max_bytes": 8192,
    "bbpm_K": 4, "bbpm_H": 1, "bbpm_block_size": 256, "hopfield_key_dim": 16, "hopfield_top_k": 8,
    "hopfield_beta": 16.0, "flyhash_k": 4, "flyhash_fan_in": 6, "flyhash_key_dim": 16,
    "flyhash_theory_keys": 200, "count_sketch_rows": 3, "count_sketch_estimator": "median",
    "throughput_items": 256, "throughput_slow_items": 64, "throughput_seconds": 0.0,
    "k_ablation_values": [1, 4], "k_ablation_budget": 4096, "k_ablation_load": 2.0,
    "theory_points": 8,
}  # fmt: skip


@pytest.fixture(scope="module")
def run():
    task = peers.PeerTask(PARAMS)
    sweep = task.sweep()
    return task, sweep


def test_unknown_method_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="unknown methods \\['lru'\\]"):
        peers.PeerTask({**PARAMS, "methods": ["dict", "lru"]})


def test_keys_are_distinct_and_unseen_keys_never_written():
    task = peers.PeerTask({**PARAMS, "methods": ["dict"]})
    written = set(task.written_keys.tolist())
    assert len(written) == task.n_max == 8192 // 128 * 16
    assert not written & set(task.unseen_keys.tolist())
    assert task.grid(4096) == [8, 32, 128, 512]


def test_false_recall_threshold_keeps_the_share_of_hits():
    hits = torch.linspace(0.0, 1.0, 101)
    tau, rate = peers.false_recall(hits, torch.tensor([0.0, 0.04, 0.06, 0.5]), 0.95)
    assert tau == pytest.approx(0.05)
    assert rate == 0.5
    assert peers.false_recall(torch.tensor([]), hits, 0.95) == (None, None)


def test_dict_sweep_follows_the_fifo_law_and_its_capacity_brackets_c_over_a(run):
    task, sweep = run
    for budget in PARAMS["budgets_bytes"]:
        c = task.sizes["dict"][str(budget)]["capacity"]
        for row in (
            r for r in sweep["rows"] if r["method"] == "dict" and r["budget_bytes"] == budget
        ):
            assert row["accuracy"] == pytest.approx(min(1.0, c / row["N"]), abs=0.1)
            assert row["false_recall"] in (0.0, None)  # a dict reads zeros for unseen keys
        entry = sweep["capacity"]["dict"][str(budget)]
        assert entry["accuracy_lo"] >= 0.9 > entry["accuracy_hi"]
        assert entry["N_hi"] - entry["N_lo"] <= max(1, 0.02 * entry["N_lo"])
        assert entry["N"] == pytest.approx(c / 0.9, rel=0.1)  # sampling error of 100 queries
    check = task.fifo_check(sweep["capacity"])
    assert set(check) == {"dict"}
    assert all(abs(v["relative_error"]) < 0.1 for v in check["dict"].values())


def test_sweep_stops_after_the_first_point_below_stop_accuracy_and_is_seeded(run):
    task, sweep = run
    for method in PARAMS["methods"]:
        rows = [r for r in sweep["rows"] if r["method"] == method and r["budget_bytes"] == 4096]
        assert all(r["accuracy"] >= 0.1 for r in rows[:-1])
        assert [r["N"] for r in rows] == task.grid(4096)[: len(rows)]
    again = peers.PeerTask(PARAMS)
    rows, *_ = again.sweep_method("bbpm_global", 4096, 0)
    first = [r for r in sweep["rows"] if r["method"] == "bbpm_global" and r["budget_bytes"] == 4096]
    assert [r["accuracy"] for r in rows] == [r["accuracy"] for r in first]
    assert [r["mean_cosine"] for r in rows] == [r["mean_cosine"] for r in first]
    assert set(sweep["hash_stats"]) == {"bbpm_global"}


def test_theory_lines_and_their_errors(run):
    task, sweep = run
    theory = task.theory_curves(sweep["rows"])
    curves = theory["8192"]
    assert len(curves["N"]) <= 8 and curves["N"] == sorted(curves["N"])
    c = task.sizes["dict"]["8192"]["capacity"]
    assert curves["dict_accuracy"] == [min(1.0, c / n) for n in curves["N"]]
    n_banks, n_last = task.sizes["fhrr"]["8192"]["n_banks"], curves["N"][-1]
    expected = peer_theory.fhrr_banks_prediction(n_last, n_banks, 32, 64)
    assert curves["fhrr_cosine"][-1] == pytest.approx(expected["cosine"])
    assert curves["fhrr_accuracy"][-1] == pytest.approx(expected["accuracy"])
    assert "bbpm_global_cosine" in curves and "bbpm_global_accuracy" in curves
    errors = peers.theory_errors(theory, sweep["rows"], PARAMS["methods"])
    assert errors["dict_accuracy"]["max_abs"] < 0.1  # the FIFO law is exact up to sampling
    assert errors["bbpm_global_cosine"]["mean_abs"] < 0.1
    assert all(e["points"] == len([r for r in sweep["rows"] if r["method"] == "bbpm_global"])
               for name, e in errors.items() if name.startswith("bbpm"))  # fmt: skip


def test_throughput_and_k_ablation(run):
    task, _ = run
    out = task.throughput()
    assert set(out) == set(PARAMS["methods"])
    assert all(t["runs"] == 3 and t["items"] == 256 for per in out.values() for t in per.values())
    ablation = task.k_ablation()
    assert ablation["N"] == 64 and [r["K"] for r in ablation["rows"]] == [1, 4]
    for row in ablation["rows"]:
        assert 0 < row["cosine_codebook"] <= 1 and 0 <= row["accuracy_codebook"] <= 1
        assert row["cosine_independent"] == pytest.approx(row["cosine_theory"], abs=0.08)


def metrics_of(task, sweep):
    return {
        "hyperparameters": PARAMS,
        "capacity": sweep["capacity"],
        "sweep": sweep["rows"],
        "sizes": task.sizes,
        "value_slots": {str(b): v for b, v in task.value_slots.items()},
        "theory": task.theory_curves(sweep["rows"], bbpm_theory=False),
        "throughput": {m: {str(b): {"write_items_per_s": 1.0, "read_items_per_s": 2.0, "runs": 3}
                           for b in PARAMS["budgets_bytes"]} for m in PARAMS["methods"]},
        "k_ablation": task.k_ablation(bbpm_theory=False),
    }  # fmt: skip


def test_tables_read_the_capacity_entries(run):
    task, sweep = run
    m = metrics_of(task, sweep)
    entry = sweep["capacity"]["dict"]["8192"]
    table = peers.capacity_table(m)
    assert table.loc["dict", "8 KiB"] == f"{entry['N']:,.0f} [{entry['N_lo']:,}-{entry['N_hi']:,}]"
    ratios = peers.capacity_ratio_table(m)
    bbpm = sweep["capacity"]["bbpm_global"]["8192"]
    assert ratios.loc["bbpm_global / dict", "8 KiB"].startswith(f"{bbpm['N'] / entry['N']:.2f} (")
    header, rows, caption = peers.capacity_latex_rows(m)
    assert header == ["method", "4 KiB", "8 KiB"] and rows[0][0] == "dict"
    assert f"{max(peers.bracket_widths(sweep['capacity'])):.1%} wide" in caption
    assert peers.cap_text({"N": 5.0, "censored": "never below target"}) == ">= 5"
    assert peers.cap_text({"N": None, "smallest_N": 3, "censored": "x"}, latex=True) == "$<$ 3"
    assert peers.cap_text(None) == "not run"
    assert peers.point(m, "dict", 8192, 3.0)["load"] == 4.0
    assert peers.run_table(m).loc["dict", "read items/s"] == "2"


def test_figures_draw_every_method(run):
    task, sweep = run
    m = metrics_of(task, sweep)
    labels = peers.method_labels({**PARAMS})
    fig = peer_plots.accuracy_vs_n(m, labels)
    assert len(fig.axes[0].get_legend_handles_labels()[1]) == 3
    # measured line, theory line and probe crosses of each method on the top-left panel
    assert len(fig.axes[0].lines) >= 3 * 2 + 1
    for draw in (peer_plots.false_recall, peer_plots.capacity_vs_budget, peer_plots.throughput):
        assert draw(m, labels).axes
    assert len(peer_plots.k_ablation(m).axes[0].lines) == 3  # no theory line without snr_bounds
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize("rule", ["debiased", "inverse_noise"])
def test_block_prediction_with_one_block_matches_global_hashing(rule):
    """A block as large as the table is global hashing: the block line must follow the global
    one, well below accuracy 1 at load 4 (the inverse-noise block line once sat at 1.0)."""
    task = peers.PeerTask({**PARAMS, "methods": ["bbpm_global"], "d": 64, "codebook_size": 1024})
    D = 4032
    size = {"D": D, "K": 4, "H": 1, "block_size": D}
    N = 4 * D
    _, glob = task.bbpm_prediction(N, size, block=False, rule=rule)
    _, block = task.bbpm_prediction(N, size, block=True, rule=rule)
    assert 0.3 < glob < 0.9
    assert block == pytest.approx(glob, abs=0.02)


def _entry(lo, hi, censored=False):
    return {"N": (lo + hi) / 2 if hi else lo, "N_lo": lo, "N_hi": hi, "censored": censored}


def test_capacity_leaders_list_ties_and_whether_the_brackets_separate():
    m = {
        "capacity": {
            "fhrr": {"1": _entry(100, 110), "2": _entry(200, 210)},
            "dict": {"1": _entry(50, 52), "2": _entry(50, 52)},
            "bbpm_global": {"1": _entry(105, 112), "2": _entry(300, 310)},
            "bbpm_block": {"1": _entry(90, 95), "2": _entry(300, 310)},
        }
    }
    methods = list(m["capacity"])
    low = peers.capacity_leaders(m, methods, 1)
    assert low["leaders"] == ["bbpm_global"] and low["bbpm_leads"] and low["apart"] is False
    assert peers.leader_text(low, "1 B") == "1 B: BBPM global, ahead of FHRR (brackets overlap)"
    high = peers.capacity_leaders(m, methods, 2)
    assert high["leaders"] == ["bbpm_global", "bbpm_block"] and high["apart"] is True
    m["capacity"]["fhrr"]["2"] = _entry(400, None, censored=True)
    high = peers.capacity_leaders(m, methods, 2)
    assert high["leaders"] == ["fhrr"] and not high["bbpm_leads"] and high["apart"] is True
    assert peers.leader_text(high, "2 B") == "2 B: FHRR, ahead of BBPM global (brackets apart)"


def test_false_recall_medians_and_ranks():
    sweep = [
        {"method": mm, "budget_bytes": b, "false_recall": v}
        for mm, b, v in [("dict", 1, 0.0), ("dict", 2, 0.0), ("fhrr", 1, 0.1), ("fhrr", 2, 0.3),
                         ("bbpm_global", 1, 0.5), ("bbpm_global", 2, None), ("hopfield", 1, 0.0)]
    ]  # fmt: skip
    m = {"sweep": sweep}
    medians = peers.false_recall_medians(m, ["dict", "fhrr", "bbpm_global", "hopfield", "sdm"])
    assert medians == {"dict": 0.0, "fhrr": pytest.approx(0.2), "bbpm_global": 0.5, "hopfield": 0.0}
    assert peers.false_recall_medians(m, ["fhrr", "bbpm_global"], 2) == {"fhrr": 0.3}
    assert peers.rank_from_highest(medians, "bbpm_global") == "1st highest of 4"
    assert peers.rank_from_highest(medians, "hopfield") == "3rd highest of 4"
    assert [peers.ordinal(n) for n in (2, 11, 12, 13, 21, 22, 104)] == [
        "2nd", "11th", "12th", "13th", "21st", "22nd", "104th"
    ]  # fmt: skip


def test_theory_errors_give_the_gap_to_fresh_code_accuracy():
    theory = {"1": {"N": [10, 100], "fhrr_accuracy": [1.0, 0.5], "fhrr_cosine": [0.9, 0.5]}}
    rows = [{"method": "fhrr", "budget_bytes": 1, "N": 100, "accuracy": 0.3,
             "accuracy_fresh_codes": 0.45, "mean_cosine": 0.5}]  # fmt: skip
    errors = peers.theory_errors(theory, rows, ["fhrr"])
    assert errors["fhrr_accuracy"]["max_abs"] == pytest.approx(0.2)
    assert errors["fhrr_accuracy"]["max_abs_fresh_codes"] == pytest.approx(0.05)
    assert "max_abs_fresh_codes" not in errors["fhrr_cosine"]
