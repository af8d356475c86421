"""KV-cache compression baselines from NVIDIA's ``kvpress`` (optional extra ``bbpm[kv]``).

kvpress compresses a cache during the prefill: a forward hook on every attention layer hands
the layer's input hidden states, its keys and values and the forward's keyword arguments (RoPE
``position_embeddings``) to a *press*, whose ``score`` ranks the cached tokens; the lowest are
dropped. Those inputs do not depend on what the press drops in the layers below (the prefill
itself attends over the full keys of every layer), so one full prefill that records them per
layer lets every press compress the same context:

* :func:`capture_prefill` runs the prefill once (sdpa attention) and records them;
* :func:`compress` asks a press (any kvpress ``ScorerPress``: StreamingLLM, SnapKV, KNorm,
  ExpectedAttention, TOVA, ...) for its scores and keeps exactly ``n_kept`` tokens per layer
  and KV head, in stream order (a token budget, rather than kvpress's rounded ratio);
* :func:`compress_question_aware` scores the context with the question appended (SnapKV's
  observation window = the question's tokens), for a batch of questions at once; each
  question gets its own compressed cache, stacked along the batch dimension.

Kept keys keep the rotary phase of their original positions, so an answer continues at
position ``prefill.length`` (as kvpress's pipeline does). kvpress is imported only inside
these functions; :func:`kvpress_missing` says why it cannot be used.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bbpm.hashing.base import check_positive_int
from bbpm.integration import kv_substitution as kvs

__all__ = [
    "PRESSES",
    "Prefill",
    "capture_prefill",
    "compress",
    "compress_question_aware",
    "keep_top",
    "kvpress_missing",
    "make_press",
]

#: short name -> kvpress class name
PRESSES = {
    "streaming_llm": "StreamingLLMPress",
    "snapkv": "SnapKVPress",
    "knorm": "KnormPress",
    "expected_attention": "ExpectedAttentionPress",
    "tova": "TOVAPress",
}


#: Warnings raised while kvpress imports its own dependencies, not by anything bbpm does:
#: tqdm.auto without ipywidgets in a notebook kernel, and ``fire`` importing ``pipes``.
_IMPORT_WARNINGS = (
    (r"IProgress not found", Warning),
    (r"'pipes' is deprecated", DeprecationWarning),
)


def _import_kvpress() -> Any:
    """``import kvpress`` without the warnings of :data:`_IMPORT_WARNINGS`."""
    with warnings.catch_warnings():
        for message, category in _IMPORT_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        import kvpress

    return kvpress


def kvpress_missing() -> str | None:
    """``None`` when kvpress can be imported, else the reason (and the fix)."""
    if importlib.util.find_spec("kvpress") is None:
        return "kvpress is not installed (pip install 'bbpm[kv]' -c constraints.txt)"
    try:
        _import_kvpress()
    except Exception as error:  # noqa: BLE001 - any import failure: report it
        return f"kvpress does not import: {type(error).__name__}: {error}"
    return None


def make_press(name: str, **options: Any) -> Any:
    """The kvpress press ``name`` (a key of :data:`PRESSES`) with ``options``."""
    if name not in PRESSES:
        raise ValueError(f"press must be one of {sorted(PRESSES)}, got {name!r}")
    return getattr(_import_kvpress(), PRESSES[name])(**options)


def _decoder(model: nn.Module) -> nn.Module:
    inner = model.model
    return inner.language_model if hasattr(inner, "language_model") else inner


@dataclass
class Prefill:
    """A full prefill and, per layer, what a press reads: the attention input ``hidden[l]``
    ``[1, T, hidden]`` and the rotary ``(cos, sin)`` ``[1, T, head_dim]`` (shared by layers)."""

    cache: Any
    hidden: list[torch.Tensor]
    cos: torch.Tensor
    sin: torch.Tensor
    modules: list[nn.Module]

    @property
    def length(self) -> int:
        return kvs.cache_length(self.cache)


class _Recorder:
    """Forward hooks on every attention layer recording its hidden states and RoPE."""

    def __init__(self, model: nn.Module) -> None:
        decoder = _decoder(model)
        self.modules = [layer.self_attn for layer in decoder.layers]
        for module in self.modules:  # as kvpress does: presses may call module.rotary_emb
            module.rotary_emb = decoder.rotary_emb
        self.hidden: list[torch.Tensor] = []
        self.rope: tuple[torch.Tensor, torch.Tensor] | None = None
        self.handles: list[Any] = []

    def hook(self, module: nn.Module, args: Any, kwargs: dict, output: Any) -> None:
        self.hidden.append(kwargs["hidden_states"].detach())
        if self.rope is None:
            self.rope = tuple(t.detach() for t in kwargs["position_embeddings"])

    def __enter__(self) -> _Recorder:
        self.handles = [m.register_forward_hook(self.hook, with_kwargs=True) for m in self.modules]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def capture_prefill(model: nn.Module, input_ids: Sequence[int] | torch.Tensor) -> Prefill:
    """Prefill ``input_ids`` (one forward, full cache) and record what the presses read."""
    ids = torch.as_tensor(list(input_ids), dtype=torch.long)[None]
    ids = ids.to(next(model.parameters()).device)
    cache = kvs.new_cache(model)
    recorder = _Recorder(model)
    with recorder:
        model(
            input_ids=ids,
            past_key_values=cache,
            position_ids=torch.arange(ids.shape[1], device=ids.device)[None],
            use_cache=True,
            logits_to_keep=1,
        )
    cos, sin = recorder.rope
    return Prefill(cache, recorder.hidden, cos, sin, recorder.modules)


def keep_top(
    keys: torch.Tensor, values: torch.Tensor, scores: torch.Tensor, n_kept: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``n_kept`` highest-scoring tokens per batch row and KV head, in stream order.

    ``keys``/``values``: ``[B, heads, T, head_dim]``; ``scores``: ``[B, heads, T]``.
    """
    length = keys.shape[2]
    if not 0 < n_kept <= length:
        raise ValueError(f"n_kept must be in [1, {length}] (cached tokens), got {n_kept}")
    index = scores.topk(n_kept, dim=-1).indices.sort(dim=-1).values
    index = index[..., None].expand(-1, -1, -1, keys.shape[-1])
    return keys.gather(2, index).contiguous(), values.gather(2, index).contiguous()


def _set_ratio(press: Any, length: int, n_kept: int) -> None:
    """Some presses' scores depend on their ratio (StreamingLLM ranks by it): set the ratio
    whose kept count (``int(length * (1 - ratio))`` in kvpress) is ``n_kept``."""
    if hasattr(press, "compression_ratio"):
        press.compression_ratio = max(0.0, (length - n_kept - 0.5) / length)


def _cache_from(model: nn.Module, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
    cache = kvs.new_cache(model)
    for index, (keys, values) in enumerate(layers):
        cache.update(keys, values, index)
    return cache


@torch.no_grad()
def compress(press: Any, model: nn.Module, prefill: Prefill, n_kept: int) -> Any:
    """A new cache holding the ``n_kept`` tokens per layer and KV head that ``press`` scores
    highest on the recorded prefill (the prefill's cache is left unchanged)."""
    press.post_init_from_model(model)
    _set_ratio(press, prefill.length, n_kept)
    layers = []
    kwargs = {"position_embeddings": (prefill.cos, prefill.sin)}
    for module, hidden, (keys, values) in zip(
        prefill.modules, prefill.hidden, kvs.cache_layers(prefill.cache), strict=True
    ):
        scores = press.score(module, hidden, keys, values, None, kwargs)
        layers.append(keep_top(keys, values, scores, n_kept))
    return _cache_from(model, layers)


@torch.no_grad()
def _question_states(
    model: nn.Module, prefill: Prefill, questions: Sequence[Sequence[int]]
) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]], Any]:
    """The questions' tokens run after the full context, batched: per layer the questions'
    attention input ``[B, width, hidden]`` and the keys/values of context plus question
    ``[B, heads, T + width, head_dim]``, and the questions' RoPE. The prefill's cache is left
    unchanged."""
    batch, context, width = len(questions), prefill.length, len(questions[0])
    saved = kvs.cache_layers(prefill.cache)
    ids = torch.as_tensor([list(q) for q in questions], dtype=torch.long, device=saved[0][0].device)
    recorder = _Recorder(model)
    kvs.set_cache_layers(
        prefill.cache,
        [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in saved],
    )
    try:
        with recorder:
            model(
                input_ids=ids,
                past_key_values=prefill.cache,
                position_ids=torch.arange(context, context + width, device=ids.device).expand(
                    batch, -1
                ),
                use_cache=True,
                logits_to_keep=1,
            )
        extended = kvs.cache_layers(prefill.cache)
    finally:
        kvs.set_cache_layers(prefill.cache, saved)
    return recorder.hidden, extended, recorder.rope


@torch.no_grad()
def compress_question_aware(
    press: Any,
    model: nn.Module,
    prefill: Prefill,
    questions: Sequence[Sequence[int]],
    n_kept: int | Sequence[int],
    rows_per_forward: int | None = None,
) -> Any:
    """One compressed cache per question, stacked along the batch (``[len(questions), ...]``).

    The question's tokens are run after the full context (batched, with the same recording),
    and ``press`` (SnapKV with ``window_size`` = the question length) scores the context with
    the question as its observation window; the ``n_kept`` best *context* tokens are kept (the
    question is asked again after the compressed cache). Questions must have equal token length.

    ``n_kept`` may be a list of budgets: the questions' forward runs once and one cache per
    budget is returned (a list). ``rows_per_forward`` runs the questions in groups of that
    many (each row of the forward holds a copy of the context's keys and values); the result
    does not depend on it.
    """
    lengths = {len(q) for q in questions}
    if len(lengths) != 1:
        raise ValueError(f"questions must have one token length to share a window, got {lengths}")
    width = lengths.pop()
    if getattr(press, "window_size", width) != width:
        raise ValueError(
            f"press.window_size={press.window_size} must equal the question length {width}"
        )
    if rows_per_forward is not None:
        check_positive_int("rows_per_forward", rows_per_forward)
    budgets = [n_kept] if isinstance(n_kept, int) else list(n_kept)
    press.post_init_from_model(model)
    context = prefill.length
    step = rows_per_forward or len(questions)
    parts: list[list[list[tuple[torch.Tensor, torch.Tensor]]]] = [[] for _ in budgets]
    for start in range(0, len(questions), step):
        group = questions[start : start + step]
        batch = len(group)
        hidden_q, extended, (cos_q, sin_q) = _question_states(model, prefill, group)
        cos = torch.cat([prefill.cos.expand(batch, -1, -1), cos_q.expand(batch, -1, -1)], dim=1)
        sin = torch.cat([prefill.sin.expand(batch, -1, -1), sin_q.expand(batch, -1, -1)], dim=1)
        kwargs = {"position_embeddings": (cos, sin)}
        for b, budget in enumerate(budgets):
            _set_ratio(press, context + width, budget)
            layers = []
            for module, hidden, h_q, (keys, values) in zip(
                prefill.modules, prefill.hidden, hidden_q, extended, strict=True
            ):
                states = torch.cat([hidden.expand(batch, -1, -1), h_q], dim=1)
                scores = press.score(module, states, keys, values, None, kwargs)[..., :context]
                layers.append(
                    keep_top(keys[:, :, :context], values[:, :, :context], scores, budget)
                )
            parts[b].append(layers)
        del hidden_q, extended
    caches = [
        _cache_from(
            model,
            [
                tuple(torch.cat([g[layer][i] for g in groups]) for i in (0, 1))
                for layer in range(len(groups[0]))
            ],
        )
        for groups in parts
    ]
    return caches[0] if isinstance(n_kept, int) else caches
