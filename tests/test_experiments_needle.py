"""The needle-in-a-haystack plumbing (bbpm.experiments.needle) behind notebook exp05."""

import math

import pytest
import torch

from bbpm import BBPMMemoryFloat, BlockPermutationHash
from bbpm.baselines.decode import random_codebook
from bbpm.experiments import needle


def make_stream(D=4096, d=32, K=8, C=16, N=400, seed=0):
    hash_fn = BlockPermutationHash(D, block_size=256, seed=seed)
    raw = random_codebook(C, d, seed=seed)
    books = {"centred": needle.centred_codebook(raw), "raw": raw}
    memories = {name: BBPMMemoryFloat(D, d, K, 1, hash_fn) for name in books}
    return needle.NeedleStream(
        memories,
        books,
        readers={"centred": ("centred", "debiased"), "raw": ("raw", "debiased")},
        value_ids=torch.randint(C, (N,), generator=torch.Generator().manual_seed(seed + 1)),
        guess_gen=torch.Generator().manual_seed(seed + 2),
    )


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([10, 5], 1, 0, 10), "strictly increasing"),
        (([5, 5], 1, 0, 10), "strictly increasing"),
        (([5, 10], 6, 0, 10), "n_needles"),
        (([5, 10], 1, 10, 10), "needle_key"),
        (([5, 10], 1, -1, 10), "needle_key"),
    ],
)
def test_check_stream_params_rejects(args, match):
    with pytest.raises(ValueError, match=match):
        needle.check_stream_params(*args)


def test_check_stream_params_accepts():
    assert needle.check_stream_params([5, 10], 5, 9, 10) is None


def test_centred_codebook_has_zero_mean_direction_and_unit_rows():
    raw = random_codebook(64, 16, seed=3)
    centred = needle.centred_codebook(raw)
    assert torch.allclose(centred.norm(dim=1), torch.ones(64), atol=1e-6)
    assert float(raw.mean(dim=0).norm()) > 0.05
    assert float(centred.mean(dim=0).norm()) < 0.2 * float(raw.mean(dim=0).norm())


def test_exact_window_items():
    assert needle.exact_window_items(1000, 2) == 1000 // 16
    assert needle.exact_window_items(15, 2) == 0


def test_window_is_exact_inside_and_chance_outside():
    stream = make_stream(C=4, N=4000)
    inside = stream.window(torch.arange(3000, 4000), 4000, 1000)
    assert bool(inside.all())
    outside = stream.window(torch.arange(0, 3000), 4000, 1000).double().mean()
    assert abs(float(outside) - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 3000)


def test_low_load_reads_decode_every_item_and_checkpoints_are_deterministic():
    results = []
    for _ in range(2):
        stream = make_stream()
        results.append(
            needle.run_checkpoints(
                stream, [50, 100], 30, 5, {"w": 20}, 64, 0, extra=lambda N: {"twice": 2 * N}
            )
        )
    (rows, cps, seconds), (rows2, cps2, _) = results
    assert rows == rows2 and cps == cps2 and seconds > 0
    assert [c["N"] for c in cps] == [50, 100] and cps[1]["twice"] == 200
    # 100 items x 8 slots in 4096 slots: every item decodes, its cosine is near 1
    assert cps[1]["bbpm"]["centred"]["success"] == 1.0
    assert cps[1]["bbpm"]["centred"]["needle_success"] == 1.0
    assert cps[1]["bbpm"]["centred"]["mean_cos"] > 0.9
    # rows: (30 sampled + 5 needles) per reader per checkpoint, ages N - position
    assert len(rows) == 2 * 2 * 35
    assert all(r["age"] == r["N"] - r["position"] for r in rows)


def test_log_uniform_ages_are_distinct_and_in_range():
    ages = needle.log_uniform_ages(5000, 1000, torch.Generator().manual_seed(0))
    assert ages.unique().numel() == ages.numel()
    assert int(ages.min()) >= 1 and int(ages.max()) <= 1000
    # log-uniform: about half of the draws lie below sqrt(N), so small ages are all present
    assert set(range(1, 11)) <= set(ages.tolist())


def test_age_bins_count_every_age_once_and_rates_match():
    ages = torch.arange(1, 101)
    success = ages <= 10  # only the ten youngest succeed
    bins = needle.age_bins(ages, {"m": success}, {"w": ~success}, 100, 4)
    assert sum(b["n"] for b in bins) == 100
    for b in bins:
        in_bin = [a for a in range(1, 101) if b["age_lo"] <= a <= b["age_hi"]]
        expected = sum(a <= 10 for a in in_bin) / len(in_bin)
        assert b["bbpm"]["m"]["success"] == pytest.approx(expected)
        assert b["window_success"]["w"] == pytest.approx(1 - expected)
        assert b["bbpm"]["m"]["success_sem"] == pytest.approx(
            math.sqrt(expected * (1 - expected) / len(in_bin))
        )


def _bin(lo, hi, n, p):
    return {"age_lo": lo, "age_hi": hi, "n": n, "bbpm": {"centred": {"success": p}}}


def test_age_comparison_pools_bins_and_decides():
    same = [_bin(1, 9, 100, 0.9), _bin(10, 99, 300, 0.9), _bin(101, 999, 400, 0.88)]
    result = needle.age_comparison(same, 100)
    assert result["n_recent"] == 400 and result["p_recent"] == pytest.approx(0.9)
    assert result["verdict"] == "consistent with no dependence on age"
    differ = [_bin(1, 99, 400, 0.95), _bin(101, 999, 400, 0.5)]
    assert needle.age_comparison(differ, 100)["verdict"] == "a dependence on age"
    assert needle.age_comparison([_bin(1, 999, 10, 0.5)], 100) is None


def test_first_below():
    cps = [{"bbpm": {"v": {"success": s}}, "N": n} for s, n in ((0.99, 1), (0.8, 2), (0.5, 3))]
    assert needle.first_below(cps, "v")["N"] == 2
    assert needle.first_below(cps, "v", level=0.1) is None


def _checkpoints(successes: dict[str, list[float]]) -> list[dict]:
    n = len(next(iter(successes.values())))
    return [
        {"N": 1000 * 10**i, "load": 0.5 * 10**i}
        | {"bbpm": {v: {"success": s[i]} for v, s in successes.items()}}
        for i in range(n)
    ]


def test_decline_sentence():
    cps = _checkpoints({"v": [1.0, 0.8, 0.5]})
    assert needle.decline_sentence(cps, "v") == (
        "first falls below 90% at N = 10,000 (load 5.0) and is 0.500 at N = 100,000 (load 50.0)"
    )
    assert needle.decline_sentence(cps, "v", level=0.6) == (
        "first falls below 60% at the last checkpoint, N = 100,000 (load 50.0), where it is 0.500"
    )
    assert needle.decline_sentence(cps, "v", level=0.4) == (
        "stays at or above 40% at every checkpoint to N = 100,000 (load 50.0), where it is 0.500"
    )


def test_success_gain_sentence():
    same = _checkpoints({"a": [1.0, 0.9, 0.5], "b": [1.0, 0.9, 0.5]})
    assert needle.success_gain_sentence(same, "b", "a").startswith("never changes the success")
    moved = _checkpoints({"a": [1.0, 0.9, 0.5], "b": [1.0, 0.95, 0.49]})
    assert needle.success_gain_sentence(moved, "b", "a") == (
        "gains at most +0.050 in success (at N = 10,000) and at worst -0.010"
    )


def test_single_needle_curve_follows_the_load():
    stream = make_stream()
    memory = stream.memories["centred"]
    memory.write(torch.arange(5), torch.ones(5, 32))  # cleared by the test
    curve = needle.single_needle_curve(
        memory, 3, 10, [0, 20, 3000], 500, torch.Generator().manual_seed(0), theory=float
    )
    assert [r["haystack"] for r in curve] == [0, 20, 3000]
    assert curve[0]["needle_cos"] == pytest.approx(1.0, abs=1e-5)  # alone in the memory
    assert curve[1]["needle_cos"] > 0.9 > curve[2]["needle_cos"]
    assert [r["expected_cosine_theory"] for r in curve] == [1.0, 21.0, 3001.0]


def test_needle_figure_draws_four_panels():
    import matplotlib

    matplotlib.use("Agg")
    stream = make_stream()
    _, cps, _ = needle.run_checkpoints(
        stream, [50, 100], 30, 5, {"w": 20, "w2": 40}, 64, 0,
        extra=lambda N: {"load": N / 512, "expected_cosine_theory": 1.0,
                         "expected_cosine_theory_inverse_noise": 1.0},
    )  # fmt: skip
    readers = dict(stream.readers, centred_inverse_noise=("centred", "inverse_noise"))
    stream.readers = readers
    ages = torch.arange(1, 101)
    bins = needle.age_bins(
        ages, {v: ages > 0 for v in readers}, {"w": ages < 20, "w2": ages < 40}, 100, 4
    )
    for c in cps:
        c["bbpm"]["centred_inverse_noise"] = c["bbpm"]["centred"]
    m = {"hyperparameters": {"D": 4096, "d": 32, "K": 8, "H": 1, "n_values": 16, "n_needles": 5,
                             "needle_key": 3, "haystack_start": 10},
         "checkpoints": cps, "age_bins": bins, "age_bins_N": 100, "windows": {"w": 20, "w2": 40},
         "chance": 1 / 16, "single_needle": [{"haystack": 10, "needle_cos": 0.9,
                                              "expected_cosine_theory": 0.9}]}  # fmt: skip
    fig = needle.needle_figure(m)
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title() == "(a) success vs haystack size"
    # three readers, two windows, the needles and chance in panel (a)'s legend
    assert len(fig.axes[0].get_legend().get_texts()) == 7
