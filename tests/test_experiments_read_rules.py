"""bbpm.experiments.read_rules: the read-rule sweeps, studies and verdicts of exp09."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from bbpm import BBPMMemoryFloat, GlobalAffineHash
from bbpm.experiments import read_rules as rr
from bbpm.memory.read_rules import READ_RULES
from bbpm.theory import snr_bounds

matplotlib.use("Agg")

D, d, K = 2000, 16, 4


@pytest.fixture(scope="module")
def sweep():
    rows, values = rr.load_sweep(
        D, d, K, [0.05, 1.0, 3.0], 200, 0, 256, torch.Generator().manual_seed(0)
    )
    assert values.shape == (1500, d)
    return rows


def test_load_sweep_numbers(sweep):
    assert len(sweep) == 3 * len(READ_RULES)
    assert [r["N"] for r in sweep[:: len(READ_RULES)]] == [25, 500, 1500]
    # theory columns are the snr_bounds predictions
    r = rr.pick(sweep, "theory_cos", load=1.0, rule="mean")
    assert r == snr_bounds.expected_cosine(500, D, K, 1, d, read_rule="mean")
    for load in (1.0, 3.0):
        cos = {rule: rr.pick(sweep, "cos", load=load, rule=rule) for rule in READ_RULES}
        assert cos["inverse_noise"] >= cos["debiased"] > cos["mean"]
        for rule in READ_RULES:
            assert cos[rule] == pytest.approx(
                rr.pick(sweep, "theory_cos", load=load, rule=rule), abs=0.03
            )
    # at load 0.05 almost every key has a clean slot: the inverse-noise read is exact
    assert rr.pick(sweep, "exact", load=0.05, rule="inverse_noise") > 0.95


def test_pick_and_leader():
    rows = [{"a": 1, "b": "x", "v": 3}, {"a": 2, "b": "x", "v": 4}]
    assert rr.pick(rows, "v", a=2, b="x") == 4
    with pytest.raises(LookupError):
        rr.pick(rows, "v", a=3)
    assert rr.leader(0.00001) == "inverse noise and debiased agree to four decimals"
    assert rr.leader(0.0123) == "the inverse-noise read leads by 0.0123"
    assert rr.leader(-0.5) == "the debiased read leads by 0.5000"


def test_kh_grid_and_gains():
    grid = rr.kh_grid(1000, 200, d, [2], [1, 2], 0, 128)
    assert len(grid) == 2 * len(READ_RULES)
    gains = rr.grid_gains(grid, "inverse_noise", "debiased")
    expected = [
        rr.pick(grid, "cos", K=g["K"], H=g["H"], rule="inverse_noise") - g["cos"]
        for g in grid
        if g["rule"] == "debiased"
    ]
    assert gains == expected and len(gains) == 2


def test_repeat_study_same_value_is_read_back_by_debiased():
    memory = BBPMMemoryFloat(10**6, d, K, 1, GlobalAffineHash(10**6, seed=0))
    rows = rr.repeat_study(memory, 0, 20, [1, 4], 0.5, d, 0)
    assert len(rows) == 2 * 2 * len(READ_RULES)
    # a large empty table (20 keys, no shared slots): every rule returns the last value
    for r in rows:
        if not r["drifting"] or r["r"] == 1:
            assert r["cos_last"] == pytest.approx(1.0, abs=1e-5)
    # with drift the table holds a mix of the written values: below 1 for the last value
    assert rr.pick(rows, "cos_last", r=4, drifting=True, rule="debiased") < 0.99
    assert memory.read(torch.arange(20)).abs().sum() == 0  # the study wrote to copies


def test_known_key_study_solves_exactly_at_low_load():
    known = rr.known_key_study(400, d, 4, [0.25, 6.0], 40, 0, 512)
    assert [k["N"] for k in known] == [25, 600]
    # few keys: the incidence system has full column rank, the solve returns every value
    assert known[0]["solve_exact"] == 1.0
    assert known[0]["solve_cos"] >= known[0]["inverse_noise_cos"] - 1e-6
    # more items than slots: the system is underdetermined, the solve cannot be exact
    assert known[1]["solve_exact"] < 0.5


def test_debiasing_verdict_and_figure(sweep):
    grid = [
        {"K": 4, "H": 1, "rule": rule, "cos": c, "theory_cos": c}
        for rule, c in (("debiased", 0.8), ("mean", 0.85), ("inverse_noise", 0.9))
    ]
    out = rr.debiasing_verdict(sweep, grid)
    assert out["debiased_beats_mean"][0] == "3 of 4"
    assert out["debiased_minus_mean_min"][0] == pytest.approx(-0.05)
    assert out["verdict_debiasing"][0] == "Not everywhere: the raw mean wins on 1 of 4 points"
    assert out["inverse_noise_beats_debiased"][0] == "3 of 3"
    grid[1]["cos"] = 0.7
    assert rr.debiasing_verdict(sweep, grid)["verdict_debiasing"][0].startswith("No: on every")
    repeats = [
        {"r": r, "drifting": dr, "rule": rule, "cos_last": 0.5}
        for r in (1, 2)
        for dr in (False, True)
        for rule in READ_RULES
    ]
    fig = rr.read_rules_figure(sweep, grid, repeats, ["a", "b", "c", "d"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c", "d"]
