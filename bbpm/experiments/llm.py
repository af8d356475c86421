"""Language-model experiment (notebook exp07): a frozen causal language model that keeps a
short window of its input, with facts injected from a BBPM memory, against kvpress presses
and a BMRT-style bounded cache.

:class:`LLMExperiment` holds the model, its tokenizer and the run's settings: it encodes
prompts and answers batches of questions from a KV cache (:meth:`~LLMExperiment.ask`), runs
one fact-stream point (:meth:`~LLMExperiment.run_fact_point`), BBPM decoding alone
(:meth:`~LLMExperiment.decode_rows`), builds the caches of one needle context
(:meth:`~LLMExperiment.needle_caches`) and scores them
(:meth:`~LLMExperiment.run_needle_context`). :func:`fact_stream` draws a seed's facts;
:func:`accuracy_figure` draws the three panels and the ``*_records`` functions list the
headline numbers as ``(name, value, fmt, description)`` for ``Experiment.record``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from bbpm.integration import BBPMController, ExactController, Fact, PromptTemplate, scoring
from bbpm.integration import kv_substitution as kvs
from bbpm.integration import presses as kvp
from bbpm.integration.tasks import needle_question
from bbpm.theory.snr_bounds import expected_cosine
from bbpm.utils.memory_stats import PeakResident, release_freed_memory, resident_bytes

VALUE_WORDS = (
    "apple river stone cloud tiger piano garden silver candle forest rocket window violin dragon "
    "castle pepper ocean marble lemon eagle bridge mirror coffee desert planet rabbit anchor "
    "basket camera island jacket ladder mountain needle orange pillow rainbow saddle tomato "
    "umbrella wagon yellow zebra bottle cherry dolphin feather guitar hammer"
).split()
TEMPLATE = PromptTemplate(prefix="Facts:\n", memory_line="{text}\n", question_line="{question}")
ID_LOW, ID_HIGH = 100_000, 1_000_000
# Presses run under another kvpress name with options: question-aware SnapKV is SnapKV whose
# observation window is each question's own tokens.
PRESS_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {"snapkv_question": ("snapkv", {})}
SCORE_RULE = "value word appears in the answer as a whole word, any case"
Record = tuple[str, Any, str, str]


def bbpm_methods(read_rules: Sequence[str]) -> dict[str, str]:
    """Method name -> BBPM read rule: ``"bbpm"`` for the debiased rule, ``"bbpm_<rule>"``
    for the others."""
    return {("bbpm" if r == "debiased" else f"bbpm_{r}"): r for r in read_rules}


def fact_stream(seed: int, N: int, n_ids: int, window_facts: int) -> list[Fact]:
    """The ``N`` facts ``The value of ID <id> is <word>.`` of stream ``seed``: ``n_ids``
    distinct ids are drawn once per seed, the first ``window_facts`` of them form the window
    (the last facts of every stream of that seed, whatever ``N``) and the facts before the
    window are the next ``N - window_facts`` ids."""
    rng = np.random.default_rng([seed, 11])
    ids = rng.choice(ID_HIGH - ID_LOW, size=n_ids, replace=False) + ID_LOW
    words = rng.integers(len(VALUE_WORDS), size=len(ids))
    facts = [
        Fact(int(k), VALUE_WORDS[w], f"The value of ID {k} is {VALUE_WORDS[w]}.")
        for k, w in zip(ids, words, strict=True)
    ]
    window, earlier = facts[:window_facts], facts[window_facts:]
    return earlier[: N - window_facts] + window


def injected_text(controller: Any, key: int, rule: str | None) -> str | None:
    """The fact text ``controller`` retrieves for ``key`` (under read ``rule`` when given),
    None when it decodes no value."""
    if rule is not None:
        controller.memory.read_rule = rule
    value_id, _ = controller.retrieve(key)
    return controller.fact_text(value_id) if value_id >= 0 else None


@dataclass
class LLMExperiment:
    """A language model (``None``: BBPM decoding only), its tokenizer and the settings of a
    run; the field names are the notebook's parameter names (:meth:`from_params`)."""

    model: Any
    tokenizer: Any
    kv_bytes_per_token: int
    seed: int
    seeds: list[int]
    questions_per_point: int
    window_facts: int
    llm_N: list[int]
    full_context_max_N: int
    decode_N: list[int]
    decode_queries: int
    bbpm_D: int
    bbpm_d: int
    bbpm_K: int
    bbpm_H: int
    context_lines: list[int]
    needles_per_context: int
    window_lines: int
    presses: list[str]
    bmrt: bool
    bmrt_chunk_size: int
    read_rules: list[str]
    max_new_tokens: int
    answer_batch: int
    answer_row_tokens: int = 8192
    skipped: Mapping[str, str] = field(default_factory=dict)
    template: PromptTemplate = TEMPLATE

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any],
        model: Any,
        tokenizer: Any,
        kv_bytes_per_token: int,
        skipped: Mapping[str, str],
    ) -> LLMExperiment:
        """The experiment with every field that ``params`` names taken from it."""
        names = {f.name for f in dataclasses.fields(cls)} - {"model", "tokenizer", "skipped"}
        settings = {k: v for k, v in params.items() if k in names}
        return cls(
            model=model,
            tokenizer=tokenizer,
            kv_bytes_per_token=kv_bytes_per_token,
            skipped=skipped,
            **settings,
        )

    def __post_init__(self) -> None:
        self.bbpm_bytes = self.new_bbpm().memory.nbytes
        self.bbpm_tokens = (
            self.bbpm_bytes // self.kv_bytes_per_token if self.kv_bytes_per_token else 0
        )
        self.stop_ids = (
            {self.tokenizer.eos_token_id, *self.encode(["\n"])} if self.model is not None else set()
        )

    @property
    def per_seed(self) -> int:
        """Fact-stream questions per seed and point."""
        return math.ceil(self.questions_per_point / len(self.seeds))

    @property
    def contexts_per_seed(self) -> int:
        """Needle contexts per seed and length."""
        return math.ceil(self.questions_per_point / (len(self.seeds) * self.needles_per_context))

    @property
    def active_presses(self) -> list[str]:
        """The presses that run (not in ``skipped``)."""
        return [p for p in self.presses if p not in self.skipped]

    @property
    def methods(self) -> dict[str, str]:
        """BBPM injection method -> read rule (:func:`bbpm_methods`)."""
        return bbpm_methods(self.read_rules)

    def new_bbpm(self) -> BBPMController:
        """An empty BBPM controller of the run's shape and seed."""
        return BBPMController.build(
            D=self.bbpm_D,
            d=self.bbpm_d,
            K=self.bbpm_K,
            H=self.bbpm_H,
            seed=self.seed,
            template=self.template,
        )

    def stream(self, seed: int, N: int) -> list[Fact]:
        """:func:`fact_stream` with ids for the largest ``N`` of the run."""
        n_ids = max(self.llm_N + self.decode_N) + self.window_facts
        return fact_stream(seed, N, n_ids, self.window_facts)

    def encode(self, segments: list[str]) -> list[int]:
        """Token ids of the segments, each tokenized on its own, concatenated."""
        ids: list[int] = []
        for segment in segments:
            ids += self.tokenizer(segment, add_special_tokens=False).input_ids
        return ids

    def rows_per_batch(self, cached_tokens: int) -> int:
        """Rows of a batch that holds a copy of a ``cached_tokens`` cache per row: at most
        ``answer_row_tokens`` rows x tokens, at least one row."""
        return max(1, self.answer_row_tokens // max(cached_tokens, 1))

    def ask(
        self, cache: Any, suffixes: list[list[int]], position: int | None = None
    ) -> tuple[list[str], float]:
        """Greedy answers to token suffixes after ``cache``; returns texts and seconds.

        A cache with one row per suffix is answered in one batch. A one-row cache is shared
        by batches of at most ``answer_batch`` suffixes and at most ``answer_row_tokens``
        rows x cached tokens: every decoding step appends to a copy of the cache per row, so
        long caches are fastest in small batches."""
        t, texts = time.perf_counter(), []
        length = kvs.cache_length(cache)
        rows = kvs.cache_layers(cache)[0][0].shape[0] if length else 1
        step = min(self.answer_batch, self.rows_per_batch(length)) if rows == 1 else len(suffixes)
        for start in range(0, len(suffixes), step):
            answers = kvs.greedy_generate_batch(
                self.model,
                suffixes[start : start + step],
                cache=cache,
                position_start=position,
                max_new_tokens=self.max_new_tokens,
                stop_token_ids=self.stop_ids,
                pad_token_id=self.tokenizer.eos_token_id,
            )
            texts += [self.tokenizer.decode(a.token_ids, skip_special_tokens=True) for a in answers]
        return texts, time.perf_counter() - t

    def fact_suffixes(self, stream: list[Fact], asked: Any, source: Any) -> list[list[int]]:
        """Token suffixes after the cache: the injected fact line (``source``: a controller
        and its read rule, or None for no injection), then the question."""
        lines = [
            [
                self.template.memory_line.format(
                    text=injected_text(source[0], stream[i].key, source[1])
                )
            ]
            if source
            else []
            for i in asked
        ]
        return [
            self.encode(line) + self.encode([f"The value of ID {stream[i].key} is"])
            for line, i in zip(lines, asked, strict=True)
        ]

    def run_fact_point(self, s: int, N: int) -> list[dict]:
        """One row per question of seed ``s`` at ``N`` facts and per method: ``window``
        (the last ``window_facts`` facts cached), ``oracle`` and the BBPM methods (the
        window plus an injected fact line) and ``full`` (every fact cached, up to
        ``full_context_max_N``)."""
        stream = self.stream(s, N)
        bbpm, exact = self.new_bbpm(), ExactController(template=self.template)
        bbpm.observe_many(stream)
        exact.observe_many(stream)
        asked = np.random.default_rng([s, N, 2]).choice(
            N, size=min(self.per_seed, N), replace=False
        )
        sources = {"window": None, "oracle": (exact, None)}
        sources |= {m: (bbpm, r) for m, r in self.methods.items()}
        contexts = {"window": self.template.segments(stream[-self.window_facts :], "")[:-1]}
        if N <= self.full_context_max_N:
            contexts["full"] = self.template.segments(stream, "")[:-1]
        rows = []
        for context_name, context in contexts.items():
            cache = kvs.prefill(self.model, self.encode(context))
            for method in sources if context_name == "window" else ["full"]:
                suffixes = self.fact_suffixes(stream, asked, sources.get(method))
                texts, seconds = self.ask(cache, suffixes)
                state = kvs.cache_nbytes(cache)
                state += self.bbpm_bytes if method.startswith("bbpm") else 0
                rows += [
                    dict(task="facts", seed=s, N=N, method=method, value=stream[i].value, answer=t)
                    | dict(correct=scoring.word_match(t, stream[i].value), state_bytes=state)
                    | dict(seconds=seconds / len(asked))
                    for i, t in zip(asked, texts, strict=True)
                ]
        return rows

    def decode_rows(self) -> list[dict]:
        """BBPM decoding alone on the first seed's streams, per ``decode_N`` and read rule:
        top-1 accuracy, mean read cosine to the true code and its theory
        (:func:`bbpm.theory.snr_bounds.expected_cosine`)."""
        out = []
        for N, rule in [(N, rule) for N in self.decode_N for rule in self.read_rules]:
            stream = self.stream(self.seeds[0], N)
            controller = self.new_bbpm()
            controller.observe_many(stream)
            controller.memory.read_rule = rule
            size = min(self.decode_queries, N)
            asked = np.random.default_rng([N, 3]).choice(N, size=size, replace=False)
            keys = torch.tensor([stream[i].key for i in asked])
            ids, _ = controller.retrieve_many(keys)
            read = controller.memory.read(controller.keys_for(keys))
            codes = controller.codebook.codes(torch.as_tensor(asked))
            cos = torch.nn.functional.cosine_similarity(read, codes, dim=1)
            D, K, H, d = self.bbpm_D, self.bbpm_K, self.bbpm_H, self.bbpm_d
            out.append(
                dict(N=N, read_rule=rule, accuracy=float((ids.numpy() == asked).mean()))
                | dict(n=len(asked), cosine=float(cos.mean()))
                | dict(theory=expected_cosine(N, D, K, H, d, read_rule=rule))
            )
        return out

    def press_caches(
        self, name: str, prefill: Any, budgets: list[int], questions: list[list[int]]
    ) -> list[Any]:
        """The caches of press ``name`` keeping each of ``budgets`` tokens of ``prefill`` (one
        row per question for question-aware SnapKV, whose questions run after the context
        once for every budget, in groups of at most ``answer_row_tokens`` rows x tokens)."""
        base, options = PRESS_OPTIONS.get(name, (name, {}))
        if name == "snapkv_question":
            press = kvp.make_press(base, window_size=len(questions[0]), **options)
            return kvp.compress_question_aware(
                press,
                self.model,
                prefill,
                questions,
                budgets,
                rows_per_forward=self.rows_per_batch(prefill.length),
            )
        return [
            kvp.compress(kvp.make_press(base, **options), self.model, prefill, n) for n in budgets
        ]

    def bmrt_cache(self, ids: list[int], budget: int) -> Any:
        """The BMRT-style bounded cache of ``ids`` (streamed in ``bmrt_chunk_size`` chunks
        with eager attention, cut to ``budget`` tokens)."""
        implementation = self.model.config._attn_implementation
        self.model.set_attn_implementation("eager")
        try:
            compressor = kvs.BoundedKVCompressor(
                self.model, budget, chunk_size=self.bmrt_chunk_size, position_mode="original"
            )
            return compressor.stream(ids)
        finally:
            self.model.set_attn_implementation(implementation)

    def needle_caches(
        self, ids: list[int], window_ids: list[int], questions: list, injected: dict, bounded: bool
    ) -> Iterator[tuple]:
        """(method, cache, suffixes, position, seconds spent building the cache) per method,
        built one after the other: the window's cache, then the full prefill (which the
        presses score; it is freed before BMRT streams the context), each press's caches of
        both budgets (from one scoring pass, whose seconds both are charged), BMRT. The
        presses and BMRT only where ``bounded``."""
        t = time.perf_counter()
        wcache = kvs.prefill(self.model, window_ids)
        w_sec = time.perf_counter() - t
        yield ("window", wcache, questions, None, w_sec)
        yield ("window+bbpm", wcache, injected["bbpm"], None, w_sec)
        yield ("window+oracle", wcache, injected["oracle"], None, w_sec)
        del wcache
        t = time.perf_counter()
        prefill = kvp.capture_prefill(self.model, ids) if self.active_presses and bounded else None
        full_cache = prefill.cache if prefill else kvs.prefill(self.model, ids)
        prefill_seconds = time.perf_counter() - t
        yield ("full", full_cache, questions, None, prefill_seconds)
        budgets = (
            (len(window_ids) + self.bbpm_tokens, "", questions),
            (len(window_ids), "+bbpm", injected["bbpm"]),
        )
        for name in self.active_presses if bounded else ():
            t = time.perf_counter()
            caches = self.press_caches(
                name, prefill, [min(n_kept, len(ids)) for n_kept, _, _ in budgets], questions
            )
            seconds = prefill_seconds + time.perf_counter() - t
            for (_, tag, suffixes), cache in zip(budgets, caches, strict=True):
                yield (name + tag, cache, suffixes, len(ids), seconds)
            del caches
        del prefill, full_cache
        for n_kept, tag, suffixes in budgets if self.bmrt and bounded else ():
            state = self.bmrt_cache(ids, n_kept)
            yield ("bmrt" + tag, state.cache, suffixes, state.next_position, state.seconds)
            del state

    def run_needle_context(
        self, s: int, L: int, context: Any, controller: Any, exact: Any
    ) -> list[dict]:
        """One row per needle of ``context`` (seed ``s``, ``L`` filler lines) and per method
        of :meth:`needle_caches`, bounded at the longest ``context_lines``; the controllers
        observe the context's needles first.

        ``peak_bytes``: the process's peak resident memory while the method's cache was built
        and its questions answered, above the resident memory at the start of the context
        (model and controllers loaded; :class:`~bbpm.utils.memory_stats.PeakResident`). It
        counts what the method needs resident: a press its full prefill and its own cache,
        BMRT its streamed cache, the window methods the window's cache; None where resident
        memory cannot be read."""
        controller.observe_many(context.needles)
        exact.observe_many(context.needles)
        prefix = [self.template.prefix]
        ids = self.encode(prefix + [line + "\n" for line in context.lines])
        window_ids = self.encode(
            prefix + [line + "\n" for line in context.window(self.window_lines)]
        )
        questions = [self.encode([needle_question(f.key)]) for f in context.needles]
        injected = {
            name: [
                self.encode([c.fact_text(c.retrieve(f.key)[0]) + "\n"]) + q
                for f, q in zip(context.needles, questions, strict=True)
            ]
            for name, c in (("bbpm", controller), ("oracle", exact))
        }
        rows: dict[str, list[dict]] = {}
        runs = self.needle_caches(
            ids, window_ids, questions, injected, bounded=L == max(self.context_lines)
        )
        release_freed_memory()
        base = resident_bytes()
        while True:
            with PeakResident() as peak:
                item = next(runs, None)
                if item is None:
                    break
                method, cache, suffixes, position, cache_seconds = item
                texts, seconds = self.ask(cache, suffixes, position)
                state = kvs.cache_nbytes(cache) // kvs.cache_layers(cache)[0][0].shape[0]
                del item, cache
            measured = None if base is None else peak.start_bytes + peak.peak_bytes - base
            state += self.bbpm_bytes if "bbpm" in method else 0
            rows[method] = [
                dict(task="needle", seed=s, N=L, method=method, value=f.value, answer=text)
                | dict(correct=scoring.word_match(text, f.value))
                | dict(seconds=(seconds + cache_seconds) / len(texts), state_bytes=state)
                | dict(context_tokens=len(ids), window_tokens=len(window_ids))
                | dict(peak_bytes=measured)
                for f, text in zip(context.needles, texts, strict=True)
            ]
        order = ["full", *(m for m in rows if m != "full")]  # the full cache's row first
        return [row for m in order for row in rows[m]]


#: markers and line styles cycled per curve, so curves that coincide stay distinguishable
MARKERS = "osD^vPX"
LINESTYLES = ("-", "--", ":", "-.")


def curves(
    ax: Any, summary: pd.DataFrame, task: str, methods: list[str] | None, xlabel: str
) -> None:
    """Accuracy with 95% Wilson error bars per method of ``task`` (all methods for None),
    against ``N`` for the fact stream and context tokens for the needles, log x. Each curve
    has its own marker and line style and is shifted by a few percent along x (a dodge), so
    methods with equal accuracy (e.g. BBPM and the oracle at low load) do not hide each
    other."""
    sub = summary[summary.task == task] if len(summary) else summary
    groups = [
        (method, g)
        for method, g in sub.groupby("method", sort=False)
        if methods is None or method in methods
    ]
    for i, (method, g) in enumerate(groups):
        x = (g.N if task == "facts" else g.context_tokens).to_numpy(dtype=float)
        dodge = 1.04 ** (i - (len(groups) - 1) / 2)
        y, low, high = (g[c].to_numpy(dtype=float) for c in ("accuracy", "low", "high"))
        ax.errorbar(
            x * dodge,
            y,
            yerr=[y - low, high - y],
            marker=MARKERS[i % len(MARKERS)],
            linestyle=LINESTYLES[i % len(LINESTYLES)],
            ms=4,
            capsize=2,
            label=method,
        )
    ax.set(xscale="log", xlabel=xlabel, ylabel="accuracy (95% Wilson)", ylim=(-0.03, 1.03))
    if ax.get_legend_handles_labels()[0]:  # no curves without a language model
        ax.legend(fontsize=7)


def longest_needles(summary: pd.DataFrame, L_max: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The needle rows of ``summary`` and those at ``L_max`` filler lines."""
    needle = summary[summary.task == "needle"] if len(summary) else summary
    return needle, needle[needle.N == L_max] if len(needle) else needle


def accuracy_figure(summary: pd.DataFrame, L_max: int) -> Any:
    """Three panels: the fact-stream curves, the needle curves of the unbounded methods and
    window injection, and every method's needle accuracy at ``L_max`` filler lines."""
    import matplotlib.pyplot as plt

    big = longest_needles(summary, L_max)[1]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    curves(axes[0], summary, "facts", None, "facts in the stream N")
    axes[0].set_title("fact stream")
    unbounded = ["full", "window", "window+bbpm", "window+oracle"]
    curves(axes[1], summary, "needle", unbounded, "context tokens")
    axes[1].set_title("needles: the answer in context")
    last = big.sort_values("accuracy") if len(big) else big
    y, low, high = (last[c].to_numpy(dtype=float) for c in ("accuracy", "low", "high"))
    axes[2].barh(last.method.to_list(), y, xerr=[y - low, high - y], capsize=2)
    axes[2].set(
        xlabel="accuracy (95% Wilson)", xlim=(0, 1.03), title=f"needles, {L_max} filler lines"
    )
    axes[2].tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def summary_table(summary: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the per-point table (accuracy with its Wilson interval, seconds
    per question, state bytes, peak resident memory above the model where measured)."""
    from bbpm.utils.formatting import format_bytes

    header = ["task", "N", "method", "n", "accuracy [95% Wilson]", "seconds / question", "state"]
    header += ["peak memory"]

    def peak(r: Any) -> str:
        value = getattr(r, "peak_bytes", None)
        return "n/a" if value is None or pd.isna(value) else format_bytes(value)

    rows = [
        [r.task, r.N, r.method, r.n, scoring.accuracy_text(r)]
        + [f"{r.seconds_per_question:.3f}", format_bytes(r.state_bytes), peak(r)]
        for r in summary.itertuples()
    ]
    return header, rows


def decode_table(decode: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the BBPM decoding table."""
    header = ["N", "read rule", "queries", "top-1 accuracy", "cosine", "theory"]
    rows = [
        [f"{r.N:,}", r.read_rule, r.n, f"{r.accuracy:.3f}", f"{r.cosine:.3f}", f"{r.theory:.3f}"]
        for r in decode.itertuples()
    ]
    return header, rows


def _acc(summary: pd.DataFrame, task: str, method: str, N: int) -> str:
    return scoring.accuracy_text(scoring.point(summary, task, method, N))


def fact_records(summary: pd.DataFrame, run: LLMExperiment) -> list[Record]:
    """Records of the fact stream: the oracle's flatness across ``N`` (chi-square), the
    methods at the largest ``N`` and the full-context accuracy."""
    N_max, N_full = max(run.llm_N), run.full_context_max_N
    p_oracle = scoring.chi2_equal_p(summary, "facts", "oracle")
    verdict = f"{'not detectably ' if p_oracle is None or p_oracle >= 0.05 else ''}different"
    bbpm_max = scoring.point(summary, "facts", "bbpm", N_max)
    oracle_max = scoring.point(summary, "facts", "oracle", N_max)

    def at_max(method: str) -> str:
        return _acc(summary, "facts", method, N_max)

    return [
        (
            "facts_n_per_point",
            run.per_seed * len(run.seeds),
            ",d",
            "questions per fact-stream point",
        ),
        ("oracle_flat_p", p_oracle, ".2g", "chi-square p: oracle accuracy equal at every N"),
        ("oracle_verdict", f"{verdict} across N", "", "oracle vs N"),
        ("oracle_at_nmax", at_max("oracle"), "", "oracle accuracy at the largest N"),
        ("bbpm_at_nmax", at_max("bbpm"), "", "BBPM injection at the largest N"),
        ("window_at_nmax", at_max("window"), "", "window alone at the largest N"),
        ("n_max", N_max, ",d", "largest N"),
        ("window_facts", run.window_facts, ",d", "facts in the window"),
        ("full_facts", _acc(summary, "facts", "full", N_full), "", "full context accuracy"),
        ("full_facts_n", N_full, ",d", "facts in the full-context run"),
        (
            "bbpm_vs_oracle_nmax",
            scoring.compare(bbpm_max, oracle_max),
            "",
            "BBPM vs oracle at the largest N",
        ),
    ]


def load(N: int, run: LLMExperiment) -> float:
    """BBPM's load ``N K H / D``: the mean number of items that share a slot."""
    return N * run.bbpm_K * run.bbpm_H / run.bbpm_D


def bbpm_matches_oracle_max_n(
    summary: pd.DataFrame, llm_N: Sequence[int], method: str = "bbpm"
) -> int | None:
    """The largest ``N`` of ``llm_N`` such that BBPM injection (``method``: one per read rule,
    :func:`bbpm_methods`) is not below the oracle (:func:`scoring.compare`: the Wilson
    intervals do not put it below) at that ``N`` and at every smaller one; None when it is
    below (or not measured) at the smallest ``N``."""
    matched = None
    for N in sorted(llm_N):
        bbpm = scoring.point(summary, "facts", method, N)
        oracle = scoring.point(summary, "facts", "oracle", N)
        if scoring.compare(bbpm, oracle) not in ("above", "not separable from"):
            break
        matched = N
    return matched


def oracle_range_records(summary: pd.DataFrame, run: LLMExperiment) -> list[Record]:
    """Records of where BBPM injection keeps up with the oracle on the fact stream: the
    largest ``N`` up to which it is not below it (:func:`bbpm_matches_oracle_max_n`), the
    load there and at the largest ``N``, and a sentence that says it."""
    Ns = sorted(run.llm_N)
    matched = bbpm_matches_oracle_max_n(summary, Ns)

    def at(N: int) -> str:
        return f"N = {N:,} (load {load(N, run):.3g})"

    first = scoring.compare(
        scoring.point(summary, "facts", "bbpm", Ns[0]),
        scoring.point(summary, "facts", "oracle", Ns[0]),
    )
    if matched is None:
        sentence = (
            "was not measured against the oracle"
            if first == "not measured against"
            else f"is already {first} the oracle at the smallest {at(Ns[0])}"
        )
    else:
        sentence = f"is not below the oracle at any N up to {at(matched)}"
        if matched != Ns[-1]:
            N_next = Ns[Ns.index(matched) + 1]
            verdict = scoring.compare(
                scoring.point(summary, "facts", "bbpm", N_next),
                scoring.point(summary, "facts", "oracle", N_next),
            )
            sentence += f" and {verdict} it at {at(N_next)}"
    return [
        (
            "bbpm_matches_oracle_max_n",
            matched,
            ",d",
            "largest N up to which BBPM injection is not below the oracle (at every N <= it)",
        ),
        (
            "load_bbpm_matches_oracle",
            None if matched is None else load(matched, run),
            ".3g",
            "BBPM load NKH/D at that N",
        ),
        ("load_at_nmax", load(Ns[-1], run), ".3g", "BBPM load NKH/D at the largest N"),
        ("bbpm_oracle_range", sentence, "", "BBPM injection against the oracle over N"),
        (
            "rules_match_oracle_max_n",
            ", ".join(
                f"{'none' if n is None else f'{n:,}'} ({rule})"
                for method, rule in bbpm_methods(run.read_rules).items()
                for n in [bbpm_matches_oracle_max_n(summary, Ns, method)]
            ),
            "",
            "per read rule: largest N up to which BBPM injection is not below the oracle",
        ),
    ]


def decode_records(decode: pd.DataFrame, summary: pd.DataFrame, run: LLMExperiment) -> list[Record]:
    """Records of BBPM decoding (accuracy per read rule at the largest decode ``N``, the
    largest gap between measured and theoretical cosine) and of injection per read rule."""
    last = decode[decode.N == decode.N.max()]
    N_max = max(run.llm_N)
    return [
        (
            "decode_at_nmax",
            ", ".join(f"{r.accuracy:.3f} ({r.read_rule})" for r in last.itertuples()),
            "",
            "BBPM top-1 decode accuracy per read rule, largest decode N",
        ),
        ("decode_nmax", int(decode.N.max()), ",d", "largest decode N"),
        (
            "rules_at_nmax",
            ", ".join(f"{_acc(summary, 'facts', m, N_max)} ({r})" for m, r in run.methods.items()),
            "",
            "BBPM injection accuracy per read rule at the largest N",
        ),
        (
            "decode_cosine_error",
            float((decode.cosine - decode.theory).abs().max()),
            ".1e",
            "max |measured - theory| cosine",
        ),
    ]


def needle_records(summary: pd.DataFrame, run: LLMExperiment) -> list[Record]:
    """Records of the needle task: the full cache against context length, the longest
    contexts' tokens and the bounded caches' budget there, the best bounded caches with and
    without BBPM injection against window + BBPM, the window with the true needle injected
    against the full cache, and the baselines not run."""
    L_max = max(run.context_lines)
    needle, big = longest_needles(summary, L_max)
    full_curve = needle[needle.method == "full"] if len(needle) else needle
    ctx = float(big.context_tokens.mean()) if len(big) else float("nan")
    kept = min(ctx, float(big.window_tokens.mean()) + run.bbpm_tokens) if len(big) else float("nan")
    bounded = big[~big.method.str.contains("window|full")] if len(big) else big
    with_bbpm = bounded.method.str.endswith("+bbpm") if len(big) else None
    best_plain = scoring.best_row(bounded[~with_bbpm]) if len(big) else None
    best_bbpm = scoring.best_row(bounded[with_bbpm]) if len(big) else None
    full_text = "; ".join(
        f"{scoring.accuracy_text(r)} at {r.context_tokens:,.0f} tokens"
        for r in full_curve.itertuples()
    )
    window_bbpm = scoring.point(summary, "needle", "window+bbpm", L_max)
    window_oracle = scoring.point(summary, "needle", "window+oracle", L_max)
    short_vs_long = scoring.compare(window_oracle, scoring.point(summary, "needle", "full", L_max))
    short_context = f"{short_vs_long} the full cache" + (
        ": this model reads a needle better from a short context than from a long one"
        if short_vs_long == "above"
        else ""
    )
    skipped = ", ".join(f"{k} ({v})" for k, v in run.skipped.items()) or "none"
    n_per_point = run.contexts_per_seed * run.needles_per_context * len(run.seeds)
    return [
        ("needle_n_per_point", n_per_point, ",d", "questions per needle point"),
        ("full_vs_length", full_text or "n/a", "", "full-cache needle accuracy by context length"),
        (
            "full_length_p",
            scoring.chi2_equal_p(summary, "needle", "full"),
            ".2g",
            "chi-square p: full-cache accuracy equal at every length",
        ),
        ("ctx_tokens_max", ctx, ",.0f", "tokens of the longest contexts"),
        ("budget_tokens", kept, ",.0f", "tokens kept by the bounded caches there"),
        ("compression_ratio", 1 - kept / ctx, ".3f", "kvpress compression ratio there"),
        ("best_press", scoring.row_text(best_plain), "", "best bounded cache without BBPM"),
        ("best_press_bbpm", scoring.row_text(best_bbpm), "", "best bounded cache with BBPM"),
        ("window_bbpm_long", _acc(summary, "needle", "window+bbpm", L_max), "", "window + BBPM"),
        ("full_long", _acc(summary, "needle", "full", L_max), "", "full cache, longest contexts"),
        (
            "window_oracle_long",
            _acc(summary, "needle", "window+oracle", L_max),
            "",
            "window with the true needle injected, longest contexts",
        ),
        (
            "short_context_verdict",
            short_context,
            "",
            "window + true needle against the full cache, longest contexts",
        ),
        (
            "bbpm_vs_best_press",
            scoring.compare(window_bbpm, best_plain),
            "",
            "window+BBPM vs the best press, longest contexts",
        ),
        ("skipped", skipped, "", "baselines not run, and why"),
    ]
