"""Scoring the LLM chapter's answers: word match, Wilson intervals, per-point summaries and
the comparisons its prose states.

A question is one row of a results frame with the columns ``task``, ``method``, ``N`` (the
point: facts in the stream or filler lines), ``correct`` (bool), ``seconds`` and
``state_bytes`` (optionally ``context_tokens`` and ``window_tokens``). :func:`summarise`
pools the rows of each ``(task, method, N)`` into one row with its accuracy and 95% Wilson
interval (``scipy.stats.binomtest``); the other functions read such a summary.
"""

from __future__ import annotations

import re

import pandas as pd
from scipy import stats

__all__ = [
    "SUMMARY_COLUMNS",
    "accuracy_text",
    "best_row",
    "chi2_equal_p",
    "compare",
    "point",
    "row_text",
    "summarise",
    "wilson_interval",
    "word_match",
]

#: columns of an empty summary (a run without a language model)
SUMMARY_COLUMNS = ["task", "method", "N", "n", "correct", "accuracy", "low", "high"]


def word_match(answer: str, value: str) -> bool:
    """True when ``value`` appears in ``answer`` as a whole word, in any case."""
    return re.search(rf"\b{re.escape(value)}\b", answer, flags=re.IGNORECASE) is not None


def wilson_interval(k: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of ``k`` successes in ``n`` trials (``n >= 1``)."""
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per ``(task, method, N)`` in first-seen order: ``n``, ``correct``,
    ``accuracy``, ``low``/``high`` (95% Wilson), mean ``seconds_per_question`` and
    ``state_bytes``, the mean token columns and the largest ``peak_bytes`` where present."""
    if frame.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    out = []
    for (task, method, N), g in frame.groupby(["task", "method", "N"], sort=False):
        k, n = int(g.correct.sum()), len(g)
        low, high = wilson_interval(k, n)
        tokens = {
            c: g[c].mean()
            for c in ("context_tokens", "window_tokens")
            if c in g and g[c].notna().any()
        }
        if "peak_bytes" in g and g.peak_bytes.notna().any():
            tokens["peak_bytes"] = g.peak_bytes.max()
        out.append(
            dict(task=task, method=method, N=N, n=n, correct=k, accuracy=k / n, low=low, high=high)
            | dict(seconds_per_question=g.seconds.mean(), state_bytes=g.state_bytes.mean())
            | tokens
        )
    return pd.DataFrame(out)


def point(summary: pd.DataFrame, task: str, method: str, N: int) -> pd.Series | None:
    """The summary row of one point, or None when it was not run."""
    if summary.empty:
        return None
    sel = summary[(summary.task == task) & (summary.method == method) & (summary.N == N)]
    return None if sel.empty else sel.iloc[0]


def accuracy_text(row: pd.Series | None) -> str:
    """``"0.75 [0.30, 0.95]"`` (accuracy and Wilson interval), ``"n/a"`` for None."""
    return "n/a" if row is None else f"{row.accuracy:.2f} [{row.low:.2f}, {row.high:.2f}]"


def row_text(row: pd.Series | None) -> str:
    """The method's name followed by :func:`accuracy_text`."""
    return "n/a" if row is None else f"{row.method} {accuracy_text(row)}"


def chi2_equal_p(summary: pd.DataFrame, task: str, method: str) -> float | None:
    """p-value of a chi-square test that ``method``'s accuracy is the same at every point
    of ``task``; None with fewer than two points or a column of zeros (all right or all
    wrong everywhere)."""
    g = summary[(summary.task == task) & (summary.method == method)] if len(summary) else summary
    table = [[int(k), int(n - k)] for k, n in zip(g.correct, g.n, strict=True)] if len(g) else []
    if len(table) < 2 or min(sum(c) for c in zip(*table, strict=True)) == 0:
        return None
    return float(stats.chi2_contingency(table)[1])


def compare(a: pd.Series | None, b: pd.Series | None) -> str:
    """``"above"``/``"below"`` when the Wilson intervals of ``a`` and ``b`` do not overlap,
    ``"not separable from"`` when they do, ``"not measured against"`` when one is missing."""
    if a is None or b is None:
        return "not measured against"
    return "above" if a.low > b.high else "below" if a.high < b.low else "not separable from"


def best_row(frame: pd.DataFrame) -> pd.Series | None:
    """The row with the highest accuracy (the first on ties), None for an empty frame."""
    return frame.loc[frame.accuracy.idxmax()] if len(frame) else None
