"""bbpm.experiments.capacity: the capacity sweep, its diagnostics, aggregation and verdicts."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
from scipy import stats

from bbpm.experiments import capacity
from bbpm.hashing import GlobalAffineHash
from bbpm.theory import snr_bounds

matplotlib.use("Agg")

D, d, K, H = 4000, 16, 8, 1
N_VALUES = [1, 50, 400]


def _timeless(rows):
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]


@pytest.fixture(scope="module")
def rows():
    return capacity.sweep(D, d, K, H, N_VALUES, [0, 1], 100, 64, [0.9, 0.95])


def test_sweep_rows_and_numbers(rows):
    assert len(rows) == 2 * 2 * len(N_VALUES)
    one = [r for r in rows if r["N"] == 1]
    # a single item is read back exactly (its slots hold only itself)
    assert all(r["mean_cos"] == pytest.approx(1.0, abs=1e-6) for r in one)
    for r in rows:
        assert r["load_factor"] == r["N"] * K * H / D
        assert r["min_cos"] <= r["mean_cos"] <= 1.0 + 1e-9
        assert r["share_above_0.95"] <= r["share_above_0.9"]
    # the mixed hash at load 0.8 follows the uniform-hashing theory within sampling noise
    mixed = [r["mean_cos"] for r in rows if r["hash"] == "mixed" and r["N"] == 400]
    assert np.mean(mixed) == pytest.approx(snr_bounds.expected_cosine(400, D, K, H, d), abs=0.02)


def test_sweep_is_deterministic(rows):
    again = capacity.sweep(D, d, K, H, N_VALUES, [0, 1], 100, 64, [0.9, 0.95])
    assert _timeless(again) == _timeless(rows)


def test_uniform_max_load_range_matches_binomial():
    N, observed = 300, 3
    out = capacity.uniform_max_load_range(N, D, K, H, observed)
    p_gt = stats.binom.sf(np.arange(60), N * H, K / D)  # P(c > j)
    cdf_max = (1 - p_gt) ** D
    assert out["max_load_uniform_p_at_least_observed"] == pytest.approx(
        1 - cdf_max[observed - 1], rel=1e-6
    )
    assert out["max_load_uniform_q0.01"] == int(np.searchsorted(cdf_max, 0.01))
    assert out["max_load_uniform_q0.99"] == int(np.searchsorted(cdf_max, 0.99))
    assert out["max_load_uniform_q0.01"] <= out["max_load_uniform_q0.99"]
    assert (
        capacity.uniform_max_load_range(N, D, K, H, 0)["max_load_uniform_p_at_least_observed"]
        == 1.0
    )
    assert (
        capacity.uniform_max_load_range(N, D, K, H, 10**6)["max_load_uniform_p_at_least_observed"]
        == 0.0
    )


def test_collision_diagnostics_tell_the_prototype_apart():
    hashes = capacity.make_hashes(D)
    mixed = capacity.collision_diagnostics(hashes["mixed"](0), [400], D, K, H, d, 100)[0]
    proto = capacity.collision_diagnostics(hashes["prototype"](0), [400], D, K, H, d, 100)[0]
    assert mixed["N"] == 400 and mixed["max_load_uniform_theory"] > 0
    # uniform hashing: almost every partner shares a single slot
    assert mixed["overlap_concentration"] == pytest.approx(1.0, abs=0.1)
    # the prototype formula shares runs of slots with few partners
    assert proto["overlap_concentration"] > 1.5
    assert proto["partners_per_key"] < mixed["partners_per_key"]
    assert 0 < proto["cosine_given_hash"] < mixed["cosine_given_hash"]
    # one item: nobody to collide with, ratios undefined
    alone = capacity.collision_diagnostics(GlobalAffineHash(D, seed=0), [1], D, K, H, d, 10)[0]
    assert math.isnan(alone["overlap_concentration"]) and alone["keys_with_collisions"] == 0


def test_seed_means_and_compare():
    fake = [
        {"hash": h, "seed": s, "N": N, "mean_cos": v, "std_cos": 0.1, "share_above_0.9": 0.5}
        for h in ("mixed", "prototype")
        for N, vals in ((10, (0.9, 0.8)), (20, (0.7, 0.7)))
        for s, v in enumerate(vals)
    ]
    measured = capacity.seed_means(fake, [10, 20], ["mean_cos", "std_cos", "share_above_0.9"])
    assert measured["mixed"]["mean_cos"] == pytest.approx([0.85, 0.7])
    assert measured["mixed"]["mean_cos_stderr"] == pytest.approx([0.05, 0.0])
    theory = [
        {"mean_cosine": 0.8, "std_cosine": 0.1, "prototype_guess": 2.0, "share_above_0.9": 0.4,
         "share_below_0.9_bound": 0.9},
        {"mean_cosine": 0.75, "std_cosine": 0.1, "prototype_guess": 1.0, "share_above_0.9": 0.4,
         "share_below_0.9_bound": 0.9},
    ]  # fmt: skip
    diag = [{"cosine_given_hash": 0.6}, {"cosine_given_hash": 0.5}]
    comp = capacity.compare([10, 20], lambda N: N / 100, theory, measured, diag, [0.9])
    assert [c["error"] for c in comp] == pytest.approx([0.05, -0.05])
    assert comp[1]["load_factor"] == 0.2 and comp[1]["prototype_cosine_given_hash"] == 0.5


def _metrics(errors, stderr, n_seeds):
    comp = [
        {"N": N, "load_factor": N / 10, "theory_mean_cos": 0.9, "measured_mean_cos": 0.9 + e,
         "error": e, "stderr": stderr, "prototype_measured_mean_cos": 0.8,
         "prototype_cosine_given_hash": 0.8, "prototype_guess": 1.2}
        for N, e in zip((10, 20), errors, strict=True)
    ]  # fmt: skip
    diag = {
        "N": 20, "max_load": 5, "max_load_uniform_theory": 4.0, "max_load_uniform_q0.01": 3,
        "max_load_uniform_q0.99": 6, "max_load_uniform_p_at_least_observed": 0.4,
        "gini_load": 0.3, "q2": 0.001, "q2_uniform_theory": 0.001, "partners_per_key": 8.0,
        "max_slots_shared_with_one_key": 1.0, "overlap_concentration": 1.0, "mean_s2": 0.1,
        "self_collision_rate": 0.0,
    }  # fmt: skip
    return {
        "theory_vs_measurement": comp,
        "collision_diagnostics": {"mixed": [diag, diag], "prototype": [diag, diag]},
        "hyperparameters": {"n_seeds": n_seeds},
        "theory_at_N": [{"high_load_limit": 0.5}, {"high_load_limit": 0.4}],
    }


def test_discussion_verdicts_follow_the_numbers():
    within = capacity.discussion(_metrics([0.001, -0.002], 0.01, 3), 1000, 10, 1)
    assert within["fit_max_abs_error"][0] == pytest.approx(0.002)
    assert within["fit_max_abs_error_n"][0] == 20
    assert within["fit_max_se"][0] == pytest.approx(0.2)
    assert within["fit_t_bound"][0] == pytest.approx(stats.t.ppf(0.975, 2))
    assert "within seed-to-seed noise" in within["fit_verdict"][0]
    assert "inside" in within["max_load_verdict"][0]
    assert "self-collision rate 0" in within["self_collision_verdict"][0]
    assert within["proto_q2_d_at_n_max"][0] == pytest.approx(1.0)
    assert within["sketch_above_one_below_n"][0] == 100
    # the prototype falls 0.1 below the uniform theory and its given-hash prediction is exact
    assert "all but 0.0%" in within["given_hash_verdict"][0]
    beyond = capacity.discussion(_metrics([0.001, -0.05], 0.01, 3), 1000, 10, 1)
    assert "beyond seed noise at N = 20" in beyond["fit_verdict"][0]
    single = capacity.discussion(_metrics([0.001, -0.05], 0.0, 1), 1000, 10, 1)
    assert single["fit_max_se"][0] is None and "one seed" in single["fit_verdict"][0]
    texts = capacity.sentences(_metrics([0.001, -0.002], 0.01, 3), 1000, 10, 1)
    assert set(texts) == {"fit_sentence", "sketch_sentence", "proto_sentence",
                          "proto_stats_sentence", "max_load_sentence", "given_hash_sentence"}  # fmt: skip
    assert "within sampling noise at every N" in texts["fit_sentence"][0]
    assert "1.200 at N = 20" in texts["sketch_sentence"][0]


def test_theory_tables_and_figure(rows):
    taus = [0.9]
    theory = capacity.theory_tables(N_VALUES, D, K, H, d, taus, 3)
    assert theory["theory_curve"]["N"][0] == 1 and theory["theory_curve"]["N"][-1] == 400
    assert theory["theory_at_N"][-1]["mean_cosine"] == pytest.approx(
        snr_bounds.expected_cosine(400, D, K, H, d)
    )
    keys = ["mean_cos", "std_cos", "min_cos", "share_above_0.9"]
    measured = capacity.seed_means(rows, N_VALUES, keys)
    hashes = capacity.make_hashes(D)
    diag = {
        n: capacity.collision_diagnostics(h(0), N_VALUES, D, K, H, d, 100)
        for n, h in hashes.items()
    }
    m = {
        "measured": measured,
        "theory_curve": theory["theory_curve"],
        "collision_diagnostics": diag,
    }
    fig = capacity.capacity_figure(m, D, d, K, H, taus)
    assert len(fig.axes) == 4
    assert fig.axes[0].get_xscale() == "log"
