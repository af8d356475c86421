"""Capacity at a target accuracy, bracketed by measurements (notebook exp08).

A memory's capacity at accuracy ``target`` is the number of items ``N`` at which its
accuracy falls below the target. :func:`bisect_capacity` narrows a measured bracket
(accuracy >= target at ``lo_n``, below it at ``hi_n``) by bisection in log ``N``: each probe
copies the state at ``lo_n``, writes the items up to the midpoint and measures the accuracy
there. Both ends of the returned bracket are measurements; the capacity reported is its
midpoint.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

__all__ = ["bisect_capacity"]


def bisect_capacity(
    extend: Callable[[Any, int, int], Any],
    accuracy_at: Callable[[Any, int], float],
    lo_state: Any,
    lo_n: int,
    lo_acc: float | None,
    hi_n: int,
    hi_acc: float,
    target: float,
    rel_tol: float,
) -> dict[str, Any]:
    """Bisect (in log N) between ``lo_n`` (accuracy ``lo_acc`` >= ``target``; ``lo_n = 0``:
    an empty memory, nothing measured, ``lo_acc`` None) and ``hi_n`` (accuracy ``hi_acc`` <
    ``target``) until ``hi_n - lo_n <= max(1, rel_tol * lo_n)``.

    ``lo_state`` is the memory holding the first ``lo_n`` items; it is never changed (each
    probe works on a deep copy). ``extend(state, start, stop)`` writes items ``start..stop-1``
    into ``state``; ``accuracy_at(state, N)`` measures the accuracy of ``state`` holding
    ``N`` items.

    Returns ``{"N", "censored", "N_lo", "accuracy_lo", "N_hi", "accuracy_hi", "probes"}``:
    ``N`` the midpoint of the final bracket, ``probes`` every ``{"N", "accuracy"}``
    measured; when not even one item reaches the target, ``N`` and ``N_lo`` are None,
    ``censored`` says so and ``smallest_N`` is the smallest ``N`` measured below it.
    """
    if not 0 <= lo_n < hi_n:
        raise ValueError(f"need 0 <= lo_n < hi_n, got lo_n={lo_n}, hi_n={hi_n}")
    if not rel_tol > 0:
        raise ValueError(f"rel_tol must be positive, got {rel_tol}")
    probes = []
    while hi_n - lo_n > max(1.0, rel_tol * lo_n):
        mid = min(hi_n - 1, max(lo_n + 1, round(math.sqrt(max(lo_n, 1) * hi_n))))
        state = copy.deepcopy(lo_state)
        extend(state, lo_n, mid)
        accuracy = accuracy_at(state, mid)
        probes.append({"N": mid, "accuracy": accuracy})
        if accuracy >= target:
            lo_state, lo_n, lo_acc = state, mid, accuracy
        else:
            hi_n, hi_acc = mid, accuracy
            del state
    if lo_n == 0:
        return {
            "N": None,
            "censored": f"below target at N = {hi_n}",
            "smallest_N": hi_n,
            "N_lo": None,
            "accuracy_lo": None,
            "N_hi": hi_n,
            "accuracy_hi": hi_acc,
            "probes": probes,
        }
    return {
        "N": (lo_n + hi_n) / 2,
        "censored": None,
        "N_lo": lo_n,
        "accuracy_lo": lo_acc,
        "N_hi": hi_n,
        "accuracy_hi": hi_acc,
        "probes": probes,
    }
