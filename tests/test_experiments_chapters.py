"""Plumbing of the exp02 (K x H ablation), exp04 (KV-cache scaling) and exp06 (key drift)
notebooks in bbpm.experiments."""

import math

import numpy as np
import pytest
import torch

from bbpm import BBPMMemoryFloat, GlobalAffineHash
from bbpm.experiments import ablation, block_global, drift, kv_scaling
from bbpm.integration.keying import ProjectionKeys


def test_write_then_read_cosines_is_exact_alone_and_matches_a_direct_read():
    memory = BBPMMemoryFloat(1 << 14, 16, 4, 1, GlobalAffineHash(1 << 14, seed=0))
    values = torch.nn.functional.normalize(
        torch.randn(300, 16, generator=torch.Generator().manual_seed(0)), dim=1
    )
    keys = torch.arange(300)
    cos, seconds = ablation.write_then_read_cosines(memory, keys, values, keys[:50], 64)
    assert seconds > 0 and cos.shape == (50,) and cos.dtype == np.float64
    direct = torch.nn.functional.cosine_similarity(
        memory.read(keys[:50]).double(), values[:50].double(), dim=1
    )
    assert np.array_equal(cos, direct.numpy())
    assert cos.mean() > 0.9  # 300 items x 4 slots in 16384 slots


def test_cosine_stats_and_seed_mean():
    stats = ablation.cosine_stats(np.array([0.5, 0.95, 0.995, 1.0]), [0.9, 0.99])
    assert stats["mean_cos"] == pytest.approx(0.86125)
    assert stats["std_cos"] == pytest.approx(np.std([0.5, 0.95, 0.995, 1.0]))
    assert stats["share_above_0.9"] == 0.75 and stats["share_above_0.99"] == 0.5
    mean, stderr = ablation.seed_mean([1.0, 2.0, 3.0])
    assert mean == 2.0 and stderr == pytest.approx(1.0 / math.sqrt(3))
    assert ablation.seed_mean([4.0]) == (4.0, 0.0)


def test_ablation_figure_one_panel_per_threshold_and_mean_cosine():
    import matplotlib

    matplotlib.use("Agg")
    cfg = []
    for K, H in ((4, 1), (4, 3)):
        e = {
            "K": K,
            "H": H,
            "theory": {"mean_cosine": 0.9, "mean_cosine_no_pair": 0.91, "share_above_0.9": 0.6},
        }
        for prefix in ("mixed", "prototype"):
            e.update({f"{prefix}_mean_cos": 0.9, f"{prefix}_share_above_0.9": 0.55})
        e.update({"mixed_mean_cos_stderr": 0.01, "mixed_share_above_0.9_stderr": 0.02})
        cfg.append(e)
    fig = ablation.ablation_figure(cfg, [0.9], True, "t")
    assert [ax.get_title() for ax in fig.axes] == [
        "share of keys with cosine > 0.9",
        "mean cosine(read, written)",
    ]
    assert len(fig.legends[0].get_texts()) == 5


def _metrics(interpolated=12345.0, fits=50_000):
    return {
        "crossover_T_interpolated": interpolated,
        "crossover_grid_T": 13000,
        "crossover_T_closed_form": 12344.6,
        "max_T_that_fits": fits,
        "memory_limit_bytes": 8e9,
        "memory_limit_source": "CPU RAM available",
        "bbpm_bytes_storage": 2e8,
    }


def test_kv_sentences():
    assert kv_scaling.crossover_sentence(_metrics(), "12,345") == (
        "The KV cache is larger than BBPM from T = 13,000 on the grid; interpolated, "
        "T* = 12,345 tokens (closed form 12,345)."
    )
    assert kv_scaling.crossover_sentence(_metrics(interpolated=None), None) == (
        "The grid does not bracket the crossing; in closed form T* = 12,345 tokens."
    )
    assert kv_scaling.memory_limit_sentence(_metrics()) == (
        "With 8.0 GB (CPU RAM available), a KV cache fits up to T = 50,000 tokens; BBPM uses 2.5% of it."
    )
    assert "could not be read" in kv_scaling.memory_limit_sentence(_metrics(fits=None))


def test_measure_kv_cache_counts_the_tensor_bytes():
    row = kv_scaling.measure_kv_cache((2, 2, 1, 4, 100, 8), torch.float16, cuda=False)
    assert row["kv_bytes_storage"] == 2 * 2 * 4 * 100 * 8 * 2
    assert "kv_cuda_peak_bytes" not in row
    assert row["kv_rss_growth_bytes"] is None or isinstance(row["kv_rss_growth_bytes"], int)


def test_kv_memory_figure_skips_unmeasured_series():
    import matplotlib

    matplotlib.use("Agg")
    m = {**_metrics(fits=3000), "T": [1000, 2000, 4000], "kv_bytes_analytic": [1e8, 2e8, 4e8],
         "kv_bytes_storage": [1e8, 2e8, None], "kv_rss_growth_bytes": [None, None, None],
         "kv_cuda_peak_bytes": [None, None, None], "bbpm_bytes_analytic": 2e8,
         "bbpm_rss_growth_bytes": None, "bbpm_cuda_peak_bytes": None,
         "hyperparameters": {"bbpm_D": 1000}}  # fmt: skip
    labels = [t.get_text() for t in kv_scaling.kv_memory_figure(m).axes[0].get_legend().get_texts()]
    assert "KV cache: tensor storage" in labels and "KV cache: RSS growth (CPU)" not in labels
    assert labels[-1] == "KV no longer fits (CPU RAM available)"
    assert "crossover T* = 12,345" in labels


def test_key_sharing_counts_items_whose_key_another_item_has():
    result = drift.key_sharing(torch.tensor([5, 5, 7, 8, 8, 8, 9]), n_bits=4)
    assert result["measured"] == pytest.approx(5 / 7)
    assert result["distinct_keys"] == 4
    assert result["uniform_theory"] == pytest.approx(1 - (1 - 1 / 16) ** 6)


def test_recall_rows_stable_and_drift():
    x0 = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    pks = {8: ProjectionKeys(8, n_bits=8, seed=1)}
    seen = []

    def recall(memory, keys):
        seen.append(keys)
        return 0.5, 0.25

    x_t = {
        0.0: x0.clone(),
        10.0: x0 + 10.0 * torch.randn(50, 8, generator=torch.Generator().manual_seed(1)),
    }
    rows = drift.recall_rows(3, 99, {8: "memory"}, recall, pks, x0, x_t)
    assert [(r["mode"], r["sigma"]) for r in rows] == [
        ("stable", 0.0),
        ("drift", 0.0),
        ("drift", 10.0),
    ]
    assert all(r["t"] == 3 and r["n_written"] == 99 and r["success"] == 0.5 for r in rows)
    assert torch.equal(seen[0], pks[8](x0)) and torch.equal(seen[1], pks[8](x0))
    # no drift: nothing flips; a large drift flips about half the bits
    assert rows[1]["bit_flip_rate"] == 0.0 and rows[1]["key_unchanged"] == 1.0
    assert rows[1]["mean_angle"] < 1e-3
    assert 0.3 < rows[2]["bit_flip_rate"] < 0.7 and rows[2]["key_unchanged"] < 0.2


def test_by_hash_mean_and_spread_over_seeds_and_quartiles():
    rows = [
        {"hash": "g", "N": 10, "x": 1.0}, {"hash": "g", "N": 10, "x": 3.0},
        {"hash": "g", "N": 20, "x": 5.0}, {"hash": "b", "N": 10, "x": 7.0},
        {"hash": "b", "N": 20, "x": math.nan},
    ]  # fmt: skip
    table = block_global.by_hash(rows, "x", ["g", "b"], [10, 20])
    assert table["g"] == {"mean": [2.0, 5.0], "spread": [2.0, 0.0]}
    assert table["b"]["mean"][0] == 7.0 and math.isnan(table["b"]["mean"][1])
    assert block_global.quartiles([1, 2, 3, 4, 5]) == {"median": 3.0, "q25": 2.0, "q75": 4.0}


def test_accuracy_verdict_against_two_binomial_standard_errors():
    # 0.850 vs 0.972 of 2000 items: gap -0.122, two standard errors ~0.018
    text = block_global.accuracy_verdict(0.850, 0.972, 2000, 0.9)
    assert text.startswith("At this load large blocks cost accuracy:")
    assert "block − global -0.122" in text and "two standard errors 0.018" in text
    assert "no accuracy beyond sampling noise" in block_global.accuracy_verdict(
        0.95, 0.96, 2000, 0.9
    )
    assert "more accurate" in block_global.accuracy_verdict(0.99, 0.9, 2000, 0.9)
    same = block_global.accuracy_verdict(1.0, 1.0, 10, 0.9)
    assert same == (
        "At this load large blocks cost no accuracy: as many evaluated items are above 0.9 as "
        "with global hashing (1.000)."
    )


def test_share_sentence_uses_block_minus_global_for_both_gaps():
    text = block_global.share_sentence(0.850, 0.972, 0.9188, 0.9317, 0.9)
    assert "block − global -0.122 against -0.0129" in text and "moves more" in text
    assert "no more" in block_global.share_sentence(0.90, 0.91, 0.80, 0.85, 0.9)
    assert "the same for both: 1.000 (almost" in block_global.share_sentence(
        1.0, 1.0, 0.99, 0.99, 0.9
    )


def test_occupancy_verdict_compares_histogram_deviation_with_the_fidelity_drop():
    names = ["g", "b", "s", "p"]
    occ = {"g": 0.012, "b": 0.019, "s": 0.034, "p": 1.062}
    gini = {"g": 0.226, "b": 0.23, "s": 0.24, "p": 0.017}
    cos = {"g": 0.9317, "b": 0.9188, "s": 0.5319, "p": 0.4914}
    text = block_global.occupancy_verdict(occ, cos, gini, names, 100000)
    assert text.startswith("In this run, at N = 100,000, the small blocks' slot loads are off")
    assert "at most 3.4% (global hash 1.2%, large blocks 1.9%), a smaller relative" in text
    assert "43% below the global hash's (0.5319 vs 0.9317)" in text
    assert "loads are more even than random hashing's (Gini 0.017 vs 0.226)" in text
    assert "47% below" in text and text.endswith(".")
    same = block_global.occupancy_verdict(occ, {**cos, "s": 0.95}, {**gini, "p": 0.3}, names, 10)
    assert "no smaller relative" in same and "not below the global hash's (0.9500" in same
    assert "not more even" in same


def test_block_vs_global_figure_six_panels():
    import matplotlib

    matplotlib.use("Agg")
    hashes = ["global (mixed)", "block L=64"]
    per = {stat: {h: {"mean": [0.9, 0.8], "spread": [0.0, None]} for h in hashes}
           for stat in ("mean_cos", "share_above_threshold", "shared_slots_per_neighbour", "max_load")}  # fmt: skip
    q = {"median": 2.0, "q25": 1.0, "q75": 3.0}
    m = {"hashes": hashes, "N": [10, 20], "per_hash": per, "max_load_theory": [3, 4],
         "expected_cosine_theory": {"global (mixed)": [0.9, 0.8]},
         "occupancy_hist": {h: [5, 3, 1] for h in hashes}, "occupancy_theory": [5, 3, 1],
         "occupancy_hist_load": 0.5, "occupancy_hist_N": 10,
         "speed_items_per_s": {h: {"write": q, "read": q} for h in hashes},
         "hyperparameters": {"cos_threshold": 0.9, "timing_rounds": 3, "D": 64, "d": 4, "K": 2, "H": 1}}  # fmt: skip
    fig = block_global.block_vs_global_figure(m)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "(a) fidelity (dashed: theory)" and titles[3] == "(d) occupancy at N = 10"
    assert len(fig.axes) == 6 and len(fig.legends[0].get_texts()) == 2


def test_sweep_seed_fills_incrementally_and_scores_every_checkpoint():
    from bbpm import BlockPermutationHash

    D, d, K, H = 4096, 16, 4, 1
    values = torch.nn.functional.normalize(
        torch.randn(600, d, generator=torch.Generator().manual_seed(0)), dim=1
    )
    fns = {
        "global": GlobalAffineHash(D, seed=0),
        "block": BlockPermutationHash(D, block_size=256, seed=0),
    }
    steps = []
    rows, hists, memories = block_global.sweep_seed(
        fns,
        values,
        [200, 600],
        (D, d, K, H),
        50,
        128,
        lambda N: N,
        0.9,
        600,
        on_step=lambda: steps.append(1),
    )
    assert len(steps) == 4 and [(r["hash"], r["N"]) for r in rows] == [
        ("global", 200),
        ("block", 200),
        ("global", 600),
        ("block", 600),
    ]
    assert set(hists) == {"global", "block"} and int(hists["global"].sum()) == D
    assert rows[0]["mean_cos"] > rows[2]["mean_cos"] > 0.5 and rows[0]["load"] == 200 * K / D
    # the incrementally filled memory equals one filled in one go
    fresh = BBPMMemoryFloat(D, d, K, H, fns["block"])
    fresh.write(torch.arange(600), values)
    assert torch.equal(fresh.memory, memories["block"].memory)
    again, _, _ = block_global.sweep_seed(
        fns, values, [200, 600], (D, d, K, H), 50, 128, lambda N: N, 0.9
    )
    assert again == rows


def test_cosine_row():
    row = block_global.cosine_row(torch.tensor([0.5, 0.95, 1.0], dtype=torch.float64), 0.9)
    assert row["mean_cos"] == pytest.approx(2.45 / 3) and row["min_cos"] == 0.5
    assert row["share_above_threshold"] == pytest.approx(2 / 3)
    assert row["sem_cos"] == pytest.approx(
        float(torch.tensor([0.5, 0.95, 1.0]).double().std()) / math.sqrt(3)
    )


def test_drift_curves_predict_recall_from_surviving_keys():
    angles = drift.drift_angles([0.0, 1.0], [0, 1, 4])
    assert angles[0.0] == [0.0, 0.0, 0.0]
    assert angles[1.0] == pytest.approx([0.0, math.pi / 4, math.atan(2.0)])
    rows = []
    for t in (0, 1, 4):
        rows.append(
            {"t": t, "bits": 2, "mode": "stable", "sigma": 0.0, "success": 0.8, "mean_cos": 0.7}
        )
        for sigma in (0.0, 1.0):
            rows.append({"t": t, "bits": 2, "mode": "drift", "sigma": sigma, "success": 0.5, "mean_cos": 0.4,
                         "bit_flip_rate": 0.1, "key_unchanged": 0.9, "mean_angle": 0.2})  # fmt: skip
    rows.append(
        {"t": 0, "bits": 2, "mode": "refresh", "sigma": 1.0, "success": 0.0, "mean_cos": 0.0}
    )
    curves = drift.drift_curves(rows, [2], angles, n_values=10)
    assert curves[2]["stable_success"] == [0.8] * 3 and curves[2]["stable_mean_cos"] == [0.7] * 3
    c = curves[2]["drift"]["1.0"]
    assert c["success"] == [0.5] * 3 and c["mean_angle"] == [0.2] * 3
    # t = 1: theta = pi/4, P(2-bit key unchanged) = (3/4)^2
    assert c["key_unchanged_theory"][1] == pytest.approx(0.5625)
    assert c["success_predicted"][1] == pytest.approx(0.5625 * 0.8 + 0.4375 / 10)
    assert curves[2]["drift"]["0.0"]["success_predicted"] == pytest.approx([0.8] * 3)


def test_hash_diagnostics_follow_the_load():
    D, d, K = 1 << 14, 16, 4
    fn = GlobalAffineHash(D, seed=0)
    light = ablation.hash_diagnostics(fn, torch.arange(100), torch.arange(50), D, K, 1, d)
    heavy = ablation.hash_diagnostics(fn, torch.arange(8000), torch.arange(50), D, K, 1, d)
    for key in (
        "collision_rate",
        "max_load",
        "overlap_concentration",
        "partners_per_key",
        "cosine_given_hash",
    ):
        assert key in light and key in heavy
    # 100 keys x 4 slots in 16384 slots: few partners, a near-exact predicted cosine;
    # 8000 keys (load ~2): each key meets about K * load = 8 partners
    assert light["partners_per_key"] < 0.2 and light["cosine_given_hash"] > 0.97
    assert (
        5 < heavy["partners_per_key"] < 11
        and heavy["cosine_given_hash"] < light["cosine_given_hash"]
    )
    assert heavy["overlap_concentration"] >= 1.0
