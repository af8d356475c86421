"""bisect_capacity: the bracket it returns is made of measurements and is as narrow as asked."""

import math

import pytest

from bbpm.baselines.capacity import bisect_capacity


def step_memory(capacity: int):
    """A fake memory (a list of written item ids) whose accuracy is 1 up to ``capacity``
    items and 0.5 beyond; counts the probes."""
    calls = []

    def extend(state, start, stop):
        assert len(state) == start
        state.extend(range(start, stop))

    def accuracy_at(state, n):
        assert len(state) == n
        calls.append(n)
        return 1.0 if n <= capacity else 0.5

    return extend, accuracy_at, calls


@pytest.mark.parametrize("capacity", [1, 37, 1234, 9999])
def test_bracket_holds_the_step_and_is_within_tolerance(capacity):
    extend, accuracy_at, calls = step_memory(capacity)
    lo_state = list(range(1))
    result = bisect_capacity(extend, accuracy_at, lo_state, 1, 1.0, 10_000, 0.5, 0.9, 0.02)
    assert lo_state == [0]  # the caller's state is never written into
    assert result["N_lo"] <= capacity < result["N_hi"]
    assert result["N_hi"] - result["N_lo"] <= max(1.0, 0.02 * result["N_lo"])
    assert result["N"] == (result["N_lo"] + result["N_hi"]) / 2
    assert [p["N"] for p in result["probes"]] == calls
    # bisection in log N: about log2(log(hi/lo)/log(1+tol)) probes, not a linear scan
    assert len(calls) <= math.ceil(math.log2(math.log(10_000) / math.log(1.02))) + 2
    for probe in result["probes"]:
        assert (probe["accuracy"] >= 0.9) == (probe["N"] <= capacity)


def test_nothing_reaches_the_target_is_censored():
    extend, accuracy_at, _ = step_memory(0)
    result = bisect_capacity(extend, accuracy_at, [], 0, None, 64, 0.5, 0.9, 0.02)
    assert result["N"] is None and result["N_lo"] is None
    assert result["smallest_N"] == result["N_hi"] == 1
    assert result["censored"] == "below target at N = 1"


def test_bad_bracket_is_refused():
    extend, accuracy_at, _ = step_memory(5)
    with pytest.raises(ValueError, match="lo_n < hi_n"):
        bisect_capacity(extend, accuracy_at, [0] * 8, 8, 1.0, 8, 0.5, 0.9, 0.02)
    with pytest.raises(ValueError, match="rel_tol"):
        bisect_capacity(extend, accuracy_at, [0], 1, 1.0, 8, 0.5, 0.9, 0.0)
