"""bbpm.integration.scoring: the numbers and verdicts the LLM chapter states."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bbpm.integration import scoring


def rows(task, method, N, outcomes, seconds=1.0, state=100):
    return [
        dict(task=task, method=method, N=N, correct=c, seconds=seconds, state_bytes=state)
        for c in outcomes
    ]


def test_word_match_is_whole_word_and_case_blind():
    assert scoring.word_match(" Apple.", "apple")
    assert scoring.word_match("it is RIVER", "river")
    assert not scoring.word_match(" pineapple", "apple")
    assert not scoring.word_match(" apples", "apple")


def test_wilson_interval_matches_the_formula():
    k, n, z = 7, 20, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = scoring.wilson_interval(k, n)
    assert low == pytest.approx(centre - half, abs=1e-12)
    assert high == pytest.approx(centre + half, abs=1e-12)
    assert scoring.wilson_interval(0, 4)[0] == 0.0 and scoring.wilson_interval(4, 4)[1] == 1.0
    with pytest.raises(ValueError, match="k <= n"):
        scoring.wilson_interval(5, 4)


def test_summarise_pools_each_point_and_keeps_order():
    frame = pd.DataFrame(
        rows("facts", "bbpm", 10, [True, True, False, True], seconds=2.0)
        + rows("facts", "window", 10, [False, False])
        + [
            dict(task="needle", method="full", N=8, correct=True, seconds=1.0, state_bytes=50,
                 context_tokens=200, window_tokens=40)
        ]
    )  # fmt: skip
    summary = scoring.summarise(frame)
    assert list(summary.method) == ["bbpm", "window", "full"]
    bbpm = scoring.point(summary, "facts", "bbpm", 10)
    assert (bbpm.n, bbpm.correct, bbpm.accuracy) == (4, 3, 0.75)
    assert (bbpm.low, bbpm.high) == scoring.wilson_interval(3, 4)
    assert bbpm.seconds_per_question == 2.0
    assert scoring.point(summary, "needle", "full", 8).context_tokens == 200
    assert scoring.point(summary, "facts", "oracle", 10) is None
    assert scoring.accuracy_text(bbpm) == "0.75 [0.30, 0.95]"
    assert scoring.row_text(bbpm) == "bbpm 0.75 [0.30, 0.95]"
    assert scoring.accuracy_text(None) == "n/a"
    assert scoring.summarise(pd.DataFrame()).empty


def test_chi2_compare_and_best():
    frame = pd.DataFrame(
        rows("facts", "oracle", 10, [True] * 40)
        + rows("facts", "oracle", 100, [False] * 40)
        + rows("facts", "window", 10, [True] * 20 + [False] * 20)
        + rows("facts", "window", 100, [True] * 21 + [False] * 19)
    )
    summary = scoring.summarise(frame)
    assert scoring.chi2_equal_p(summary, "facts", "oracle") < 1e-10
    assert scoring.chi2_equal_p(summary, "facts", "window") > 0.5
    assert scoring.chi2_equal_p(summary, "facts", "missing") is None
    one = summary[summary.N == 10]
    assert scoring.chi2_equal_p(one, "facts", "oracle") is None  # one point only
    top, low = (scoring.point(summary, "facts", "oracle", n) for n in (10, 100))
    mid = scoring.point(summary, "facts", "window", 10)
    assert scoring.compare(top, low) == "above" and scoring.compare(low, top) == "below"
    assert scoring.compare(mid, scoring.point(summary, "facts", "window", 100)) == (
        "not separable from"
    )
    assert scoring.compare(top, None) == "not measured against"
    assert scoring.best_row(one).method == "oracle"
    assert scoring.best_row(one.iloc[:0]) is None
