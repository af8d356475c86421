"""bbpm.experiments.llm (notebook exp07): fact streams, BBPM decoding against theory, the
answer batching, the fact-stream and needle runners on a tiny randomly initialised Llama
with a character tokenizer (no download), and the records and figure."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bbpm.experiments import llm
from bbpm.integration import ExactController, scoring
from bbpm.integration.tasks import needle_contexts

transformers = pytest.importorskip("transformers")
from bbpm.integration import kv_substitution as kvs  # noqa: E402
from tests.conftest import tiny_llama as make_tiny_llama  # noqa: E402

HAS_KVPRESS = importlib.util.find_spec("kvpress") is not None


class CharTokenizer:
    """One token per ASCII character (the tiny Llama's 128-token vocabulary); id 0 is EOS."""

    eos_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = False) -> SimpleNamespace:
        return SimpleNamespace(input_ids=[ord(ch) % 128 for ch in text])

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids if not (skip_special_tokens and i == 0))


PARAMS = dict(
    seed=0,
    seeds=[0, 1],
    questions_per_point=6,
    window_facts=3,
    llm_N=[5, 20],
    full_context_max_N=5,
    decode_N=[20, 200],
    decode_queries=50,
    bbpm_D=1024,
    bbpm_d=32,
    bbpm_K=4,
    bbpm_H=2,
    context_lines=[4, 8],
    needles_per_context=2,
    window_lines=2,
    presses=["streaming_llm", "knorm", "snapkv_question"],
    bmrt=True,
    bmrt_chunk_size=16,
    read_rules=["debiased", "inverse_noise"],
    max_new_tokens=2,
    answer_batch=4,
    model_id="ignored: not a field",
)


@pytest.fixture(scope="module")
def run() -> llm.LLMExperiment:
    model = make_tiny_llama(64, "sdpa")
    return llm.LLMExperiment.from_params(PARAMS, model, CharTokenizer(), 256, skipped={})


def test_fact_stream_keeps_each_seeds_window_for_every_n():
    a, b = llm.fact_stream(3, 10, 50, 4), llm.fact_stream(3, 40, 50, 4)
    assert len(a) == 10 and len(b) == 40
    assert a[-4:] == b[-4:]  # one window per seed
    assert a[:6] == b[:6]  # the earlier facts are a prefix of the same draw
    assert len({f.key for f in b}) == 40
    assert all(llm.ID_LOW <= f.key < llm.ID_HIGH for f in b)
    assert all(f.text == f"The value of ID {f.key} is {f.value}." for f in b)
    assert llm.fact_stream(3, 10, 50, 4) == a
    assert llm.fact_stream(4, 10, 50, 4)[-4:] != a[-4:]


def test_bbpm_methods_names():
    assert llm.bbpm_methods(["debiased", "inverse_noise"]) == {
        "bbpm": "debiased",
        "bbpm_inverse_noise": "inverse_noise",
    }


def test_from_params_takes_the_fields_and_derives_the_sizes(run):
    assert run.per_seed == 3 and run.contexts_per_seed == 2
    assert run.bbpm_bytes == run.new_bbpm().memory.nbytes
    assert run.bbpm_tokens == run.bbpm_bytes // 256
    assert run.stop_ids == {0, ord("\n")}
    skipped = llm.LLMExperiment.from_params(PARAMS, None, None, 0, skipped={"knorm": "x"})
    assert skipped.active_presses == ["streaming_llm", "snapkv_question"]
    assert skipped.bbpm_tokens == 0
    assert skipped.stop_ids == set()


def test_decode_rows_follow_the_theory_and_degrade_with_load(run):
    rows = run.decode_rows()
    assert [(r["N"], r["read_rule"]) for r in rows] == [
        (20, "debiased"),
        (20, "inverse_noise"),
        (200, "debiased"),
        (200, "inverse_noise"),
    ]
    assert [r["n"] for r in rows] == [20, 20, 50, 50]
    assert all(abs(r["cosine"] - r["theory"]) < 0.1 for r in rows)
    assert rows[0]["accuracy"] == 1.0
    assert rows[2]["cosine"] < rows[0]["cosine"]
    assert run.decode_rows() == rows  # seeded


def test_ask_in_batches_equals_one_batch(run, monkeypatch):
    cache = kvs.prefill(run.model, run.encode(["Facts:\n", "abc\n"]))
    suffixes = [run.encode([f"The value of ID {k} is"]) for k in range(100, 107)]
    batched, _ = run.ask(cache, suffixes)  # batches of answer_batch=4
    whole, _ = dataclasses.replace(run, answer_batch=64).ask(cache, suffixes)
    assert batched == whole and len(batched) == 7
    single = [run.ask(cache, [s])[0][0] for s in suffixes[:2]]
    assert single == batched[:2]
    # a long shared cache is answered in batches of answer_row_tokens // cached tokens rows
    capped = dataclasses.replace(run, answer_row_tokens=kvs.cache_length(cache) * 2)
    calls = []
    real = kvs.greedy_generate_batch

    def counting(model, batch, **kwargs):
        calls.append(len(batch))
        return real(model, batch, **kwargs)

    monkeypatch.setattr(kvs, "greedy_generate_batch", counting)
    assert capped.ask(cache, suffixes)[0] == whole
    assert calls == [2, 2, 2, 1]


def test_run_fact_point_rows_and_state_bytes(run):
    rows = pd.DataFrame(run.run_fact_point(0, 5))
    methods = ["window", "oracle", "bbpm", "bbpm_inverse_noise", "full"]
    assert rows.method.unique().tolist() == methods
    assert (rows.groupby("method", sort=False).size() == 3).all()
    stream = run.stream(0, 5)
    assert set(rows.value) <= {f.value for f in stream}
    window = rows[rows.method == "window"].state_bytes.iloc[0]
    assert (rows[rows.method == "bbpm"].state_bytes == window + run.bbpm_bytes).all()
    assert (rows[rows.method == "oracle"].state_bytes == window).all()
    assert rows[rows.method == "full"].state_bytes.iloc[0] > window
    assert rows.correct.tolist() == [
        scoring.word_match(a, v) for a, v in zip(rows.answer, rows.value, strict=True)
    ]
    # above full_context_max_N: no full-context rows
    assert "full" not in {r["method"] for r in run.run_fact_point(1, 20)}


def test_fact_suffixes_inject_the_oracle_line(run):
    stream = run.stream(0, 5)
    exact = ExactController(template=run.template)
    exact.observe_many(stream)
    plain = run.fact_suffixes(stream, [1], None)[0]
    injected = run.fact_suffixes(stream, [1], (exact, None))[0]
    assert injected == run.encode([stream[1].text + "\n"]) + plain


@pytest.mark.skipif(not HAS_KVPRESS, reason="kvpress is not installed (extra bbpm[kv])")
def test_needle_context_runs_bounded_caches_only_at_the_longest_length(run):
    methods = {}
    for L in run.context_lines:
        controller, exact = run.new_bbpm(), ExactController(template=run.template)
        (context,) = needle_contexts(1, L, 2, llm.VALUE_WORDS, seed=L)
        rows = pd.DataFrame(run.run_needle_context(0, L, context, controller, exact))
        methods[L] = rows.method.unique().tolist()
        assert (rows.groupby("method").size() == 2).all()
        if sys.platform.startswith("linux"):  # resident memory is read from /proc
            assert rows.peak_bytes.notna().all()
    unbounded = ["full", "window", "window+bbpm", "window+oracle"]
    assert methods[4] == unbounded
    bounded = ["streaming_llm", "streaming_llm+bbpm", "knorm", "knorm+bbpm"]
    bounded += ["snapkv_question", "snapkv_question+bbpm", "bmrt", "bmrt+bbpm"]
    assert methods[8] == unbounded + bounded
    full, window = (rows[rows.method == m].iloc[0] for m in ("full", "window"))
    assert full.context_tokens > full.window_tokens == window.window_tokens
    per_token = full.state_bytes / full.context_tokens
    assert window.state_bytes == per_token * window.window_tokens
    plus = rows[rows.method == "window+bbpm"].state_bytes.iloc[0]
    assert plus == window.state_bytes + run.bbpm_bytes
    kept = min(full.window_tokens + run.bbpm_tokens, full.context_tokens)
    for press in ("knorm", "snapkv_question", "bmrt"):  # per question row: the same budget
        assert (rows[rows.method == press].state_bytes == per_token * kept).all()
    kept_bbpm = per_token * full.window_tokens + run.bbpm_bytes
    assert (rows[rows.method == "snapkv_question+bbpm"].state_bytes == kept_bbpm).all()


def raw_frame() -> pd.DataFrame:
    """Hand-built rows: facts at N=5 and 20, needles at 4 and 8 filler lines."""
    rows = []
    for N, method, k in [
        (5, "oracle", 3), (20, "oracle", 3), (20, "bbpm", 2), (20, "bbpm_inverse_noise", 1),
        (20, "window", 0), (5, "full", 1),
    ]:  # fmt: skip
        rows += [
            dict(task="facts", N=N, method=method, correct=i < k, seconds=0.1, state_bytes=10)
            for i in range(3)
        ]
    for L, method, k, tokens in [
        (4, "full", 4, 40), (8, "full", 2, 80), (8, "window+bbpm", 4, 80),
        (8, "knorm", 1, 80), (8, "knorm+bbpm", 3, 80), (8, "window", 0, 80),
    ]:  # fmt: skip
        rows += [
            dict(task="needle", N=L, method=method, correct=i < k, seconds=0.1, state_bytes=10)
            | dict(context_tokens=tokens, window_tokens=10)
            for i in range(4)
        ]
    return pd.DataFrame(rows)


def test_records_from_a_known_summary():
    summary = scoring.summarise(raw_frame())
    run = SimpleNamespace(
        llm_N=[5, 20],
        per_seed=3,
        seeds=[0],
        window_facts=3,
        full_context_max_N=5,
        methods={"bbpm": "debiased", "bbpm_inverse_noise": "inverse_noise"},
        context_lines=[4, 8],
        bbpm_tokens=30,
        contexts_per_seed=2,
        needles_per_context=2,
        skipped={"tova": "kvpress missing"},
    )
    facts = {r[0]: r[1] for r in llm.fact_records(summary, run)}
    assert facts["facts_n_per_point"] == 3 and facts["n_max"] == 20
    assert facts["oracle_flat_p"] is None  # all right at both N: no chi-square
    assert facts["oracle_verdict"] == "not detectably different across N"
    assert facts["oracle_at_nmax"] == scoring.accuracy_text(
        scoring.point(summary, "facts", "oracle", 20)
    )
    assert facts["oracle_at_nmax"].startswith("1.00 [")
    assert facts["window_at_nmax"].startswith("0.00 [")
    assert facts["full_facts"].startswith("0.33 [")
    decode = pd.DataFrame(
        [
            dict(N=10, read_rule="debiased", accuracy=1.0, cosine=0.9, theory=0.85),
            dict(N=100, read_rule="debiased", accuracy=0.5, cosine=0.4, theory=0.42),
        ]
    )
    dec = {r[0]: r[1] for r in llm.decode_records(decode, summary, run)}
    assert dec["decode_at_nmax"] == "0.500 (debiased)" and dec["decode_nmax"] == 100
    assert math.isclose(dec["decode_cosine_error"], 0.05)
    assert dec["rules_at_nmax"].endswith("(inverse_noise)") and dec["rules_at_nmax"].startswith(
        "0.67"
    )
    needle = {r[0]: r[1] for r in llm.needle_records(summary, run)}
    assert needle["needle_n_per_point"] == 4
    assert needle["ctx_tokens_max"] == 80 and needle["budget_tokens"] == 40
    assert needle["compression_ratio"] == 0.5
    assert needle["best_press"].startswith("knorm 0.25")
    assert needle["best_press_bbpm"].startswith("knorm+bbpm 0.75")
    assert needle["full_vs_length"].endswith("at 80 tokens") and "; " in needle["full_vs_length"]
    assert needle["skipped"] == "tova (kvpress missing)"
    assert needle["bbpm_vs_best_press"] == "not separable from"  # 4/4 vs 1/4: intervals overlap


def fact_frame(points: list[tuple[int, str, int]], n: int = 20) -> pd.DataFrame:
    """Fact-stream rows: ``k`` of ``n`` questions right per (N, method, k)."""
    return pd.DataFrame(
        [
            dict(task="facts", N=N, method=method, correct=i < k, seconds=0.1, state_bytes=10)
            for N, method, k in points
            for i in range(n)
        ]
    )


@pytest.mark.parametrize(
    "bbpm_right, matched, sentence",
    [
        (
            (20, 19, 0),
            100,
            "is not below the oracle at any N up to N = 100 (load 1) and below it at "
            "N = 1,000 (load 10)",
        ),
        ((20, 20, 20), 1000, "is not below the oracle at any N up to N = 1,000 (load 10)"),
        # below at the smallest N: the later points do not count
        ((0, 20, 20), None, "is already below the oracle at the smallest N = 10 (load 0.1)"),
    ],
)
def test_bbpm_against_the_oracle_over_n(bbpm_right, matched, sentence):
    run = SimpleNamespace(
        llm_N=[1000, 10, 100],
        bbpm_K=8,
        bbpm_H=2,
        bbpm_D=1600,
        read_rules=["debiased", "inverse_noise"],
    )
    oracle = [(N, "oracle", 20) for N in (10, 100, 1000)]
    bbpm = [(N, "bbpm", k) for N, k in zip((10, 100, 1000), bbpm_right, strict=True)]
    inverse = [(N, "bbpm_inverse_noise", 20) for N in (10, 100, 1000)]  # matches at every N
    summary = scoring.summarise(fact_frame(oracle + bbpm + inverse))
    assert llm.bbpm_matches_oracle_max_n(summary, run.llm_N) == matched
    records = {r[0]: r[1] for r in llm.oracle_range_records(summary, run)}
    assert records["bbpm_matches_oracle_max_n"] == matched
    assert records["load_bbpm_matches_oracle"] == (None if matched is None else matched * 16 / 1600)
    assert records["load_at_nmax"] == 10.0  # 1,000 items x 16 slots / 1,600 slots
    assert records["bbpm_oracle_range"] == sentence
    debiased = "none" if matched is None else f"{matched:,}"
    assert records["rules_match_oracle_max_n"] == f"{debiased} (debiased), 1,000 (inverse_noise)"


def test_short_context_against_the_full_cache():
    run = SimpleNamespace(
        context_lines=[8],
        bbpm_tokens=5,
        contexts_per_seed=1,
        needles_per_context=20,
        seeds=[0],
        skipped={},
    )
    for window_right, verdict in [(20, "above"), (10, "not separable from"), (0, "below")]:
        rows = [
            dict(task="needle", N=8, method=method, correct=i < k, seconds=0.1, state_bytes=10)
            | dict(context_tokens=80, window_tokens=10)
            for method, k in (("full", 10), ("window+oracle", window_right))
            for i in range(20)
        ]
        needle = {
            r[0]: r[1] for r in llm.needle_records(scoring.summarise(pd.DataFrame(rows)), run)
        }
        assert needle["window_oracle_long"].startswith(f"{window_right / 20:.2f} [")
        assert needle["short_context_verdict"].startswith(f"{verdict} the full cache")
        assert needle["short_context_verdict"].endswith("long one") == (verdict == "above")


def test_records_without_a_language_model():
    empty = scoring.summarise(raw_frame().iloc[:0])
    run = llm.LLMExperiment.from_params(PARAMS, None, None, 0, skipped={"llm": "no model"})
    facts = {r[0]: r[1] for r in llm.fact_records(empty, run)}
    assert facts["oracle_at_nmax"] == facts["full_facts"] == "n/a"
    assert facts["bbpm_vs_oracle_nmax"] == "not measured against"
    assert facts["oracle_flat_p"] is None and facts["facts_n_per_point"] == 6
    needle = {r[0]: r[1] for r in llm.needle_records(empty, run)}
    assert needle["best_press"] == needle["full_vs_length"] == needle["window_oracle_long"] == "n/a"
    assert needle["short_context_verdict"] == "not measured against the full cache"
    ranges = {r[0]: r[1] for r in llm.oracle_range_records(empty, run)}
    assert ranges["bbpm_oracle_range"] == "was not measured against the oracle"
    assert ranges["bbpm_matches_oracle_max_n"] is None
    assert math.isnan(needle["ctx_tokens_max"]) and needle["skipped"] == "llm (no model)"
    decode = pd.DataFrame(run.decode_rows())
    assert llm.decode_records(decode, empty, run)[2][1] == "n/a (debiased), n/a (inverse_noise)"


def test_accuracy_figure_panels():
    import matplotlib.pyplot as plt

    fig = llm.accuracy_figure(scoring.summarise(raw_frame()), 8)
    axes = fig.axes
    assert len(axes) == 3
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == [
        "oracle",
        "bbpm",
        "bbpm_inverse_noise",
        "window",
        "full",
    ]
    assert len(axes[2].patches) == 5  # every method at 8 filler lines
    # curves of equal accuracy stay apart: own marker, own x (a few percent dodge)
    lines = {c.get_label(): c.lines[0] for c in axes[0].containers}
    oracle, bbpm = lines["oracle"], lines["bbpm"]
    assert oracle.get_marker() != bbpm.get_marker()
    assert not np.allclose(oracle.get_xdata()[-1], bbpm.get_xdata()[-1])
    assert np.allclose(bbpm.get_xdata()[-1] / 20, 1, atol=0.1)
    plt.close(fig)
    empty = llm.accuracy_figure(scoring.summarise(raw_frame().iloc[:0]), 8)
    assert empty.axes[0].get_legend() is None
    plt.close(empty)
    header, rows = llm.summary_table(scoring.summarise(raw_frame()))
    assert len(header) == 8 and len(rows) == 12
    assert {r[-1] for r in rows} == {"n/a"}  # no peak_bytes column in the hand-built rows
    frame = raw_frame().assign(peak_bytes=3 * 2**20)
    _, rows = llm.summary_table(scoring.summarise(frame))
    assert {r[-1] for r in rows} == {"3 MiB"}
