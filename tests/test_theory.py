"""bbpm.theory against measurements of the real memory and hashes (all small and fast)."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import torch

from bbpm.hashing import BlockPermutationHash, GlobalAffineHash
from bbpm.hashing import diagnostics as dg
from bbpm.theory import collision_model as cm
from bbpm.theory import sanity_checks as sc
from bbpm.theory import snr_bounds as sb


@cache
def measured(N: int, D: int, K: int, H: int, d: int, n_eval: int = 3000) -> np.ndarray:
    """Cosines of a random subset of keys (default mixed GlobalAffineHash), cached so that
    several tests share one measurement."""
    return sc.measure_cosines(N, D, K, H, d, n_eval=n_eval, eval_keys="random")


# ---------------------------------------------------------------------------- mean cosine


@pytest.mark.parametrize(
    ("N", "D", "K", "H", "d"),
    [
        (30_000, 100_000, 16, 1, 64),  # load 4.8
        (10_000, 100_000, 4, 3, 8),  # small d
        (5_000, 100_000, 64, 1, 64),  # exp02 setting, pair term (K*H)^2/D = 0.04
        (40_000, 100_000, 16, 1, 32),  # load 6.4
    ],
)
def test_expected_cosine_matches_measurement_at_scaled_settings(N, D, K, H, d):
    cos = measured(N, D, K, H, d)
    assert abs(cos.mean() - sb.expected_cosine(N, D, K, H, d)) < 0.003


def test_expected_cosine_matches_the_issue_setting_D_1M_K_50():
    """The prototype's capacity setting: D = 1M, d = 64, K = 50, H = 1, first 2000 keys."""
    for N in (5_000, 50_000):
        result = sc.compare_mean_cosine(N, 1_000_000, 50, 1, 64, n_eval=2000)
        assert abs(result["error"]) < 0.002, (N, result)


def test_write_scale_does_not_change_the_read():
    default = sc.measure_cosines(8_000, 50_000, 8, 2, 16, n_eval=500)
    unit = sc.measure_cosines(8_000, 50_000, 8, 2, 16, n_eval=500, write_scale="unit")
    np.testing.assert_allclose(default, unit, atol=1e-5)


def test_pair_correction_is_needed_when_KH_squared_over_D_is_large():
    """K*H = 192 slots in D = 100k: items sharing two slots with a key add a third of the
    noise; the corrected prediction matches the mean over seeds, the uncorrected one does not."""
    N, D, K, H, d = 5_000, 100_000, 64, 3, 16
    mean = sc.compare_mean_cosine(N, D, K, H, d, n_eval=2000, n_seeds=3)["measured"]
    corrected = sb.expected_cosine(N, D, K, H, d)
    uncorrected = sb.expected_cosine(N, D, K, H, d, pair_correction=False)
    assert abs(mean - corrected) < 0.002
    assert uncorrected - mean > 0.004


def test_block_hash_correction_predicts_small_blocks():
    """Block hashing with tiny blocks (L = 64, K = 32: an item fills half its block) loses
    far more than global hashing; the block-size-aware theory follows it."""
    N, D, K, H, d = 10_000, 2**16, 32, 1, 32
    cos = sc.measure_cosines(
        N, D, K, H, d, hash_fn=BlockPermutationHash(D, 64), n_eval=1000, eval_keys="random"
    )
    block_theory = sb.expected_cosine(N, D, K, H, d, block_size=64)
    assert abs(cos.mean() - block_theory) < 0.01
    assert sb.expected_cosine(N, D, K, H, d) - cos.mean() > 0.1


def test_ideal_uniform_hash_matches_theory():
    N, D, K, H, d = 10_000, 50_000, 16, 2, 32
    cos = sc.measure_cosines(
        N, D, K, H, d, hash_fn=sc.UniformTableHash(D, N), n_eval=3000, eval_keys="random"
    )
    assert abs(cos.mean() - sb.expected_cosine(N, D, K, H, d)) < 0.003


def test_delta_method_agrees_with_sampled_loads():
    for setting in [
        (100_000, 1_000_000, 50, 1, 64),
        (20_000, 100_000, 4, 1, 16),
        (5_000, 100_000, 64, 3, 8),
    ]:
        delta = sb.expected_cosine(*setting, method="delta")
        loads = sb.expected_cosine(*setting, method="loads", n_samples=4000)
        assert abs(delta - loads) < 0.002, setting


def test_predicted_cosine_decreases_with_N():
    Ns = [100, 1_000, 5_000, 10_000, 50_000, 100_000, 200_000, 500_000]
    predicted = [sb.expected_cosine(N, 1_000_000, 50, 1, 64) for N in Ns]
    assert all(b < a for a, b in zip(predicted, predicted[1:], strict=False))
    assert predicted[0] > 0.9999 and predicted[-1] < 0.9


def test_high_load_limit_is_approached():
    """At heavy load the mean cosine tends to 1/sqrt(1 + (N/D)(1 + (KH)^2/D))."""
    N, D, K, H, d = 2_000_000, 1_000_000, 64, 1, 1024
    assert abs(sb.expected_cosine(N, D, K, H, d) - sb.high_load_cosine(N, D, K, H)) < 0.01


def test_prototype_guess_is_far_from_measurement():
    """sqrt(D/(NK)) = 0.45 at N = 2D/K, where the memory still reads back cosine ~0.95."""
    cos = measured(30_000, 100_000, 16, 1, 64)
    assert cos.mean() - sb.prototype_guess(30_000, 100_000, 16) > 0.3


# ---------------------------------------------------------------------------- spread and tails


def test_share_above_and_std_match_measurement():
    N, D, K, H, d = 40_000, 100_000, 16, 1, 32
    cos = measured(N, D, K, H, d)
    assert abs(sb.cosine_std(N, D, K, H, d) - cos.std()) < 0.15 * cos.std()
    for tau in (0.85, 0.9):
        assert abs(sb.share_above(tau, N, D, K, H, d) - (cos > tau).mean()) < 0.04, tau


@pytest.mark.parametrize(("N", "d"), [(30_000, 64), (40_000, 32)])
def test_tail_bound_bounds_the_measured_share_below_tau(N, d):
    D, K, H = 100_000, 16, 1
    cos = measured(N, D, K, H, d)
    bounds = {
        tau: sb.share_below_bound(tau, N, D, K, H, d)["bound"] for tau in (0.6, 0.7, 0.8, 0.85, 0.9)
    }
    assert min(bounds.values()) < 0.2  # informative in the tail
    for tau, bound in bounds.items():
        assert (cos < tau).mean() <= bound + 3 * math.sqrt(bound / cos.size), tau


def test_tail_bound_is_small_at_low_load_and_trivial_at_high_load():
    assert sb.share_below_bound(0.9, 10_000, 1_000_000, 50, 1, 64)["bound"] < 1e-6
    assert sb.share_below_bound(0.95, 400_000, 1_000_000, 50, 1, 64)["bound"] > 0.99


def test_cosine_given_hash_explains_the_prototype_formula():
    """The prototype's affine formula with consecutive keys: even occupancy, yet a key
    shares most of its slots with a few partner keys; the exact per-key coefficients
    predict the measured collapse."""
    N, D, K, H, d = 8_000, 100_000, 40, 1, 32
    proto = GlobalAffineHash(D, mode="prototype")
    cos = sc.measure_cosines(N, D, K, H, d, hash_fn=proto, n_eval=500)
    idx = proto.indices(torch.arange(N), K, H)
    predicted = sb.cosine_given_hash(idx, torch.arange(500), D, d)
    assert abs(predicted.mean() - cos.mean()) < 0.01
    assert cos.mean() < sb.expected_cosine(N, D, K, H, d) - 0.2
    stats = cm.key_overlap_statistics(idx, torch.arange(500), D)
    assert stats["sum_m2"].mean() > 10 * stats["sum_m"].mean()  # overlaps come in runs
    assert dg.max_load(idx, D) <= cm.expected_max_load(N, D, K, H)  # yet loads look even


def test_key_overlap_statistics_reproduce_the_read_coefficients():
    N, D, K, H = 300, 2_000, 8, 2
    idx = GlobalAffineHash(D).indices(torch.arange(N), K, H)
    stats = cm.key_overlap_statistics(idx, torch.tensor([0, 7]), D)
    counts = torch.bincount(idx.reshape(-1), minlength=D).double()
    for row, x in enumerate((0, 7)):
        coef = torch.zeros(N, dtype=torch.float64)
        for slot in idx[x]:
            holders = (idx == slot).sum(dim=1).double()
            coef += holders / counts[slot] / (K * H)
        assert stats["a"][row] == pytest.approx(float(coef[x]))
        coef[x] = 0
        assert stats["s2"][row] == pytest.approx(float((coef**2).sum()))


# ---------------------------------------------------------------------------- occupancy


def test_occupancy_formulas_match_diagnostics():
    N, D, K, H = 20_000, 100_000, 8, 2
    result = sc.compare_occupancy(N, D, K, H)
    measured, predicted = result["measured"], result["predicted"]
    assert measured["occupied_fraction"] == pytest.approx(predicted["occupied_fraction"], abs=0.005)
    assert measured["collision_rate"] == pytest.approx(predicted["collision_rate"], abs=0.005)
    assert measured["q2"] == pytest.approx(predicted["q2"], rel=0.02)
    assert abs(measured["max_load"] - predicted["max_load"]) <= 2


def test_load_histogram_matches_occupancy_hist():
    N, D, K, H = 30_000, 100_000, 10, 1
    hist = dg.occupancy_hist(GlobalAffineHash(D).indices(torch.arange(N), K, H), D).double().numpy()
    expected = cm.expected_load_histogram(N, D, K, H, hist.size - 1)
    assert cm.expected_load_histogram(N, D, K, H).sum() == pytest.approx(D, rel=1e-9)
    for j in range(6):  # loads 0..5 hold > 99% of slots at lambda = 3
        assert abs(hist[j] - expected[j]) < 5 * math.sqrt(expected[j]) + 5, j


def test_nonuniform_formulas_against_sampled_draws():
    rng = np.random.default_rng(0)
    D, T = 1_000, 5_000
    q = rng.pareto(2.0, D) + 0.1
    q /= q.sum()
    loads = np.stack([np.bincount(rng.choice(D, size=T, p=q), minlength=D) for _ in range(40)])
    q2_est = [
        dg.estimate_q2(torch.from_numpy(np.repeat(np.arange(D), row)), D) for row in loads[:10]
    ]
    assert np.mean(q2_est) == pytest.approx(cm.expected_q2_estimate_nonuniform(q, T), rel=0.03)
    assert (loads > 0).mean() == pytest.approx(
        cm.expected_occupied_fraction_nonuniform(q, T), abs=0.005
    )
    hist = np.mean([np.bincount(row, minlength=60)[:60] for row in loads], axis=0)
    np.testing.assert_allclose(
        hist[:5], cm.expected_load_histogram_nonuniform(q, T, 59)[:5], rtol=0.05
    )
    assert loads.max(axis=1).mean() == pytest.approx(cm.expected_max_load_nonuniform(q, T), rel=0.1)
    assert cm.pairwise_collision_probability(q) > 1 / D
    assert cm.effective_slots(q) < D


def test_uniform_q_recovers_uniform_formulas():
    N, D, K, H = 5_000, 20_000, 4, 1
    q = np.full(D, 1.0 / D)
    assert cm.pairwise_collision_probability(q) == pytest.approx(1 / D)
    assert cm.expected_occupied_fraction_nonuniform(q, N * K * H) == pytest.approx(
        cm.expected_occupied_fraction(N, D, K, H), rel=1e-3
    )
    assert cm.prob_slot_shared_nonuniform(q, (N - 1) * K * H) == pytest.approx(
        cm.prob_slot_shared(N, D, K, H), rel=1e-3
    )


def test_prob_slot_shared_matches_measurement():
    N, D, K, H = 10_000, 100_000, 8, 1
    idx = GlobalAffineHash(D).indices(torch.arange(N), K, H)
    counts = torch.bincount(idx.reshape(-1), minlength=D)
    shared = (counts[idx[:2000]] > 1).double().mean().item()
    assert shared == pytest.approx(cm.prob_slot_shared(N, D, K, H), abs=0.01)


def test_prob_key_collides_and_other_load_match_measurement():
    N, D, K, H = 4_000, 1_000_000, 8, 2  # about half the keys share some slot
    idx = GlobalAffineHash(D).indices(torch.arange(N), K, H)
    counts = torch.bincount(idx.reshape(-1), minlength=D)
    collides = (counts[idx] > 1).any(dim=1).double().mean().item()
    expected = cm.prob_key_collides(N, D, K, H)
    assert 0.3 < expected < 0.7  # a setting where the share is informative
    assert collides == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / N))
    # the other items' load in a key's slot: counts - 1, histogram against Binomial((N-1)H, K/D)
    others = (counts[idx] - 1).reshape(-1)
    pmf = cm.other_load_pmf(N, D, K, H, max_load=3)
    measured = torch.bincount(others, minlength=4)[:4].double() / others.numel()
    np.testing.assert_allclose(measured.numpy(), pmf, atol=0.01)


def test_predict_bundles_the_individual_predictions():
    N, D, K, H, d = 20_000, 100_000, 8, 1, 32
    p = sb.predict(N, D, K, H, d, taus=(0.9, 0.95))
    assert p["mean_cosine"] == pytest.approx(sb.expected_cosine(N, D, K, H, d))
    assert p["std_cosine"] == pytest.approx(sb.cosine_std(N, D, K, H, d))
    assert p["load_factor"] == pytest.approx(N * K * H / D)
    assert p["share_below_0.9_bound"] >= 1 - p["share_above_0.9"] - 1e-9  # a bound, not an estimate
    for tau in (0.9, 0.95):
        assert p[f"share_above_{tau:g}"] == pytest.approx(sb.share_above(tau, N, D, K, H, d))
    assert p["share_above_0.9"] >= p["share_above_0.95"]


# ---------------------------------------------------------------------------- input checks


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="K must be <= D"):
        sb.expected_cosine(10, 4, 8, 1, 16)
    with pytest.raises(TypeError, match="N must be an int"):
        sb.expected_cosine(10.0, 100, 4, 1, 16)
    with pytest.raises(ValueError, match="tau"):
        sb.share_above(1.5, 100, 1000, 4, 1, 16)
    with pytest.raises(ValueError, match="method"):
        sb.expected_cosine(100, 1000, 4, 1, 16, method="magic")
    with pytest.raises(ValueError, match="sum to 1"):
        cm.pairwise_collision_probability([0.5, 0.2])
    with pytest.raises(ValueError, match="block_size"):
        sb.expected_cosine(100, 1000, 4, 1, 16, block_size=300)


@pytest.mark.parametrize(
    ("q", "dof", "expected"),
    [
        (0.975, 1, math.tan(math.pi * 0.475)),  # Cauchy: tan(pi (q - 1/2))
        (0.975, 2, 0.95 * math.sqrt(2 / (4 * 0.975 * 0.025))),  # (2q-1) sqrt(2 / (4q(1-q)))
        (0.9, 2, 0.8 * math.sqrt(2 / (4 * 0.9 * 0.1))),
    ],
)
def test_student_t_quantile_matches_closed_forms(q, dof, expected):
    assert sc.student_t_quantile(q, dof) == pytest.approx(expected, rel=1e-4)


def test_student_t_quantile_tends_to_the_normal_and_rejects_bad_q():
    t = [sc.student_t_quantile(0.975, dof) for dof in (3, 10, 100, 10_000)]
    assert t == sorted(t, reverse=True)
    assert t[-1] == pytest.approx(1.959964, rel=1e-3)  # the normal's 97.5% quantile
    with pytest.raises(ValueError, match="q must lie"):
        sc.student_t_quantile(0.4, 3)
    with pytest.raises(ValueError, match="dof"):
        sc.student_t_quantile(0.975, 0)
