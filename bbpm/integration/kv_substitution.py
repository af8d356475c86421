"""Bounded KV caches for a transformers causal LM, and BBPM augmentation of them.

A full KV cache grows with every streamed token. This module keeps it bounded:

* :class:`BoundedKVCompressor` streams a long input through the model in chunks and, after
  each chunk, cuts every layer's cache back to a token ``budget`` made of
  **anchors** (the first tokens), a **local window** (the most recent tokens) and a **global**
  share. With ``policy="attention"`` the global share holds the tokens with the largest
  attention received so far, accumulated over chunks, layers' query heads and query rows
  (BMRT's "exact" selector / H2O; needs eager attention to see the weights). With
  ``policy="recent"`` it holds more recent tokens: a plain limited KV window with anchors
  (StreamingLLM). Selection is per layer and per KV head.
* BBPM augmentation: at question time a controller (:mod:`bbpm.integration.interfaces`)
  retrieves a fact from BBPM; its tokens are appended after the bounded cache, before the
  question (:meth:`BoundedKVCompressor.answer` with ``suffix = fact + question``).

Position ids (``position_mode``):

* ``"compact"`` (default): after each compression the kept keys are re-rotated so that the
  cache holds positions ``0..B-1`` in stream order, and new tokens continue from the cache
  length (StreamingLLM's "positions within the cache"). Positions stay inside the model's
  trained range for any stream length; distances between kept tokens shrink.
* ``"original"``: kept keys keep the rotary phase of their stream position and new tokens
  continue from the number of streamed tokens: true distances, but positions beyond the
  trained context once the stream is longer than it.

Re-rotation assumes the Llama-style rotary layout (``rotate_half``) and a module named
``*rotary_emb`` taking ``(x, position_ids)``; models without rotary embeddings (GPT-2) need
no re-rotation.

Helpers :func:`prefill`, :func:`greedy_generate` and :func:`greedy_generate_batch` run a prompt
(or suffixes after an existing cache) with explicit position ids; every method in exp07 answers
through :func:`greedy_generate_batch`, so decoding is identical across methods.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = [
    "Answer",
    "BoundedKVCompressor",
    "BoundedKVState",
    "BudgetSplit",
    "cache_layers",
    "cache_length",
    "cache_nbytes",
    "crop_cache",
    "find_rotary",
    "greedy_generate",
    "greedy_generate_batch",
    "new_cache",
    "prefill",
    "rerotate_keys",
    "rotate_half",
    "select_kept",
    "set_cache_layers",
    "split_budget",
]

_POLICIES = ("attention", "recent")
_POSITION_MODES = ("compact", "original")


# ---------------------------------------------------------------------- cache access
def new_cache(model: nn.Module) -> Any:
    """An empty ``DynamicCache`` for ``model``."""
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:  # older transformers: no config argument
        return DynamicCache()


def cache_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer ``(keys, values)``, each ``[batch, kv_heads, T, head_dim]``."""
    if hasattr(cache, "layers"):
        return [
            (layer.keys, layer.values)
            for layer in cache.layers
            if getattr(layer, "keys", None) is not None
        ]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache, strict=True))
    raise TypeError(
        f"unsupported cache type {type(cache).__name__}; expected a transformers DynamicCache"
    )


def set_cache_layers(cache: Any, layers: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Replace every layer's ``(keys, values)`` in place (same number of layers)."""
    if hasattr(cache, "layers"):
        targets = [layer for layer in cache.layers if getattr(layer, "keys", None) is not None]
        if len(targets) != len(layers):
            raise ValueError(
                f"cache has {len(targets)} filled layers, got {len(layers)} replacements"
            )
        for layer, (keys, values) in zip(targets, layers, strict=True):
            layer.keys, layer.values = keys, values
        return
    if hasattr(cache, "key_cache"):
        cache.key_cache[:] = [k for k, _ in layers]
        cache.value_cache[:] = [v for _, v in layers]
        return
    raise TypeError(
        f"unsupported cache type {type(cache).__name__}; expected a transformers DynamicCache"
    )


def cache_length(cache: Any) -> int:
    """Tokens held by the cache (layer 0)."""
    layers = cache_layers(cache) if cache is not None else []
    return int(layers[0][0].shape[-2]) if layers else 0


def cache_nbytes(cache: Any) -> int:
    """Bytes of all key and value tensors in the cache (measured from the tensors)."""
    if cache is None:
        return 0
    return sum(
        k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in cache_layers(cache)
    )


def crop_cache(cache: Any, length: int) -> None:
    """Keep the first ``length`` tokens of every layer."""
    set_cache_layers(
        cache, [(k[..., :length, :], v[..., :length, :]) for k, v in cache_layers(cache)]
    )


# ---------------------------------------------------------------------- running the model
def _as_ids(input_ids: torch.Tensor | Sequence[int], device: torch.device) -> torch.Tensor:
    ids = torch.as_tensor(input_ids, dtype=torch.long, device=device)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[0] != 1:
        raise ValueError(f"input_ids must be [T] or [1, T] (batch 1), got shape {tuple(ids.shape)}")
    return ids


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _forward(
    model: nn.Module, ids: torch.Tensor, cache: Any, position_start: int, **kwargs: Any
) -> Any:
    positions = torch.arange(position_start, position_start + ids.shape[1], device=ids.device)[None]
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs.setdefault("logits_to_keep", 1)
    return model(
        input_ids=ids, past_key_values=cache, position_ids=positions, use_cache=True, **kwargs
    )


@torch.no_grad()
def prefill(
    model: nn.Module,
    input_ids: torch.Tensor | Sequence[int],
    cache: Any = None,
    position_start: int | None = None,
    chunk_size: int = 512,
) -> Any:
    """Run ``input_ids`` through the model into ``cache`` (new if ``None``), ``chunk_size`` tokens
    at a time, at positions ``position_start, ...`` (default: the cache length). Returns the cache."""
    cache = new_cache(model) if cache is None else cache
    ids = _as_ids(input_ids, _model_device(model))
    position = cache_length(cache) if position_start is None else int(position_start)
    for start in range(0, ids.shape[1], chunk_size):
        chunk = ids[:, start : start + chunk_size]
        _forward(model, chunk, cache, position)
        position += chunk.shape[1]
    return cache


@dataclass
class Answer:
    """Greedy continuation: generated ``token_ids``, prompt (suffix) length, wall time."""

    token_ids: list[int]
    prompt_tokens: int
    seconds: float
    stopped: bool = False


@torch.no_grad()
def greedy_generate(
    model: nn.Module,
    input_ids: torch.Tensor | Sequence[int],
    cache: Any = None,
    position_start: int | None = None,
    max_new_tokens: int = 16,
    stop_token_ids: Iterable[int] = (),
    restore_cache: bool = True,
    chunk_size: int = 512,
) -> Answer:
    """Greedy decoding after an optional cache.

    Args:
        model: a transformers causal LM.
        input_ids: ``[T]`` or ``[1, T]`` tokens that follow the cache (the whole prompt if no cache).
        cache: a ``DynamicCache`` holding the context (``None``: empty).
        position_start: position id of ``input_ids[0]`` (default: the cache length).
        max_new_tokens: generation cap.
        stop_token_ids: stop after emitting one of these (it is kept in ``token_ids``).
        restore_cache: crop the cache back to its length on entry, so it can serve the next question.
        chunk_size: prompt tokens per forward pass.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    started = time.perf_counter()
    cache = new_cache(model) if cache is None else cache
    ids = _as_ids(input_ids, _model_device(model))
    if ids.shape[1] == 0:
        raise ValueError("input_ids is empty: the question must contribute at least one token")
    entry_length = cache_length(cache)
    position = entry_length if position_start is None else int(position_start)
    stops = set(int(t) for t in stop_token_ids)
    try:
        for start in range(0, ids.shape[1], chunk_size):
            chunk = ids[:, start : start + chunk_size]
            logits = _forward(model, chunk, cache, position).logits[:, -1]
            position += chunk.shape[1]
        generated: list[int] = []
        stopped = False
        for step in range(max_new_tokens):
            token = int(logits.argmax(-1))
            generated.append(token)
            if token in stops:
                stopped = True
                break
            if step + 1 < max_new_tokens:
                next_ids = torch.tensor([[token]], device=ids.device)
                logits = _forward(model, next_ids, cache, position).logits[:, -1]
                position += 1
    finally:
        if restore_cache:
            crop_cache(cache, entry_length)
    return Answer(generated, int(ids.shape[1]), time.perf_counter() - started, stopped)


@torch.no_grad()
def greedy_generate_batch(
    model: nn.Module,
    suffixes: Sequence[Sequence[int]],
    cache: Any = None,
    position_start: int | None = None,
    max_new_tokens: int = 16,
    stop_token_ids: Iterable[int] = (),
    pad_token_id: int = 0,
) -> list[Answer]:
    """:func:`greedy_generate` for several prompts that share one cached prefix, in one batch.

    The suffixes are left-padded to a common length; padding is masked out of attention and
    each row gets its own position ids, so row ``i`` is decoded as ``greedy_generate(model,
    suffixes[i], cache, ...)`` would decode it (up to floating-point rounding). Rows that hit a
    stop token keep running but their extra tokens are dropped. A cache of one row is shared:
    broadcast to the batch; a cache with one row per suffix gives each its own context (e.g.
    question-aware compression). The cache is left unchanged. ``Answer.seconds`` is the batch wall time divided by the
    batch size.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not suffixes or any(len(s) == 0 for s in suffixes):
        raise ValueError("suffixes must be a non-empty list of non-empty token lists")
    started = time.perf_counter()
    device = _model_device(model)
    batch = len(suffixes)
    cache = new_cache(model) if cache is None else cache
    saved = cache_layers(cache)
    entry = cache_length(cache)
    start = entry if position_start is None else int(position_start)
    width = max(len(s) for s in suffixes)
    ids = torch.full((batch, width), int(pad_token_id), dtype=torch.long, device=device)
    mask = torch.zeros(batch, entry + width, dtype=torch.long, device=device)
    mask[:, :entry] = 1
    positions = torch.full((batch, width), start, dtype=torch.long, device=device)
    lengths = torch.tensor([len(s) for s in suffixes], device=device)
    for row, suffix in enumerate(suffixes):
        pad = width - len(suffix)
        ids[row, pad:] = torch.as_tensor(list(suffix), dtype=torch.long, device=device)
        mask[row, entry + pad :] = 1
        positions[row, pad:] = torch.arange(start, start + len(suffix), device=device)
    stops = set(int(t) for t in stop_token_ids)
    kwargs: dict[str, Any] = {}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs["logits_to_keep"] = 1
    if saved and saved[0][0].shape[0] not in (1, batch):
        raise ValueError(
            f"the cache holds {saved[0][0].shape[0]} rows; it must hold 1 (shared by every "
            f"suffix) or one per suffix ({batch})"
        )
    if saved:
        set_cache_layers(
            cache, [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in saved]
        )
    try:
        out = model(
            input_ids=ids,
            attention_mask=mask,
            past_key_values=cache,
            position_ids=positions,
            use_cache=True,
            **kwargs,
        )
        generated: list[list[int]] = [[] for _ in range(batch)]
        done = [False] * batch
        next_positions = start + lengths
        for step in range(max_new_tokens):
            tokens = out.logits[:, -1].argmax(-1)
            for row, token in enumerate(tokens.tolist()):
                if not done[row]:
                    generated[row].append(token)
                    done[row] = token in stops
            if all(done) or step + 1 == max_new_tokens:
                break
            mask = torch.cat([mask, torch.ones(batch, 1, dtype=mask.dtype, device=device)], dim=1)
            out = model(
                input_ids=tokens[:, None],
                attention_mask=mask,
                past_key_values=cache,
                position_ids=(next_positions + step)[:, None],
                use_cache=True,
                **kwargs,
            )
    finally:
        if saved:
            set_cache_layers(cache, saved)
        else:
            crop_cache(cache, 0)
    seconds = (time.perf_counter() - started) / batch
    return [
        Answer(tokens, len(suffix), seconds, bool(tokens) and tokens[-1] in stops)
        for tokens, suffix in zip(generated, suffixes, strict=True)
    ]


# ---------------------------------------------------------------------- budget selection
@dataclass(frozen=True)
class BudgetSplit:
    """Token budget ``anchors + local + global_``."""

    anchors: int
    local: int
    global_: int

    @property
    def total(self) -> int:
        return self.anchors + self.local + self.global_


def split_budget(budget: int, protection_divisor: int = 4) -> BudgetSplit:
    """BMRT's split: ``budget // n`` anchors, ``budget // n`` local, the rest global."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    if (
        isinstance(protection_divisor, bool)
        or not isinstance(protection_divisor, int)
        or protection_divisor < 2
    ):
        raise ValueError(f"protection_divisor must be an int >= 2, got {protection_divisor!r}")
    share = budget // protection_divisor
    return BudgetSplit(share, share, budget - 2 * share)


def select_kept(
    scores: torch.Tensor | None, length: int, split: BudgetSplit, heads: int = 1
) -> torch.Tensor:
    """Which cached tokens to keep.

    Args:
        scores: ``[heads, length]`` accumulated attention, or ``None`` for recency only
            (the global share then goes to the local window).
        length: current cache length.
        split: the budget.
        heads: number of KV heads (used when ``scores`` is ``None``).

    Returns:
        ``[heads, min(length, budget)]`` int64 cache indices, ascending in each row: the first
        ``anchors`` indices, the last ``local`` ones, and the ``global_`` highest-scoring ones
        between them.
    """
    if scores is not None:
        if scores.dim() != 2 or scores.shape[1] != length:
            raise ValueError(f"scores must be [heads, {length}], got shape {tuple(scores.shape)}")
        heads = scores.shape[0]
    device = scores.device if scores is not None else None
    budget = split.total
    if length <= budget:
        return torch.arange(length, device=device).expand(heads, length).clone()
    anchors = torch.arange(split.anchors, device=device).expand(heads, -1)
    if scores is None:
        local = torch.arange(length - (budget - split.anchors), length, device=device).expand(
            heads, -1
        )
        return torch.cat([anchors, local], dim=1)
    local = torch.arange(length - split.local, length, device=device).expand(heads, -1)
    middle = scores[:, split.anchors : length - split.local]
    chosen = middle.topk(split.global_, dim=1).indices + split.anchors
    return torch.cat([anchors, chosen.sort(dim=1).values, local], dim=1)


# ---------------------------------------------------------------------- rotary re-positioning
def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Llama's ``rotate_half``: ``[x1, x2] -> [-x2, x1]`` on the last dimension."""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def find_rotary(model: nn.Module) -> nn.Module | None:
    """The model's rotary embedding module (named ``*rotary_emb``), or ``None``."""
    for name, module in model.named_modules():
        if name.endswith("rotary_emb"):
            return module
    return None


def rerotate_keys(keys: torch.Tensor, delta: torch.Tensor, rotary: nn.Module) -> torch.Tensor:
    """Move cached (already rotated) keys by ``delta`` positions.

    RoPE rotates each 2-D pair by ``position * theta``; rotations compose, so a key cached at
    position ``p`` becomes the key at ``p + delta`` by one more rotation by ``delta``.

    Args:
        keys: ``[batch, heads, T, head_dim]``.
        delta: ``[heads, T]`` (or ``[T]``) integer shifts.
        rotary: the model's rotary module, called as ``rotary(x, position_ids)`` -> ``(cos, sin)``.
    """
    heads, length = keys.shape[1], keys.shape[2]
    delta = torch.as_tensor(delta, device=keys.device)
    if delta.dim() == 1:
        delta = delta.expand(heads, length)
    if tuple(delta.shape) != (heads, length):
        raise ValueError(
            f"delta must be [heads={heads}, T={length}] or [T], got shape {tuple(delta.shape)}"
        )
    cos, sin = rotary(keys, delta.long())  # [heads, T, head_dim]
    scaling = float(getattr(rotary, "attention_scaling", 1.0) or 1.0)
    cos, sin = (cos / scaling).to(keys.dtype)[None], (sin / scaling).to(keys.dtype)[None]
    return keys * cos + rotate_half(keys) * sin


# ---------------------------------------------------------------------- the compressor
@dataclass
class BoundedKVState:
    """A bounded cache after streaming.

    ``positions[l]``: ``[kv_heads, L]`` original stream positions of the tokens layer ``l`` keeps;
    ``scores[l]``: their accumulated attention (``None`` for the recency policy).
    """

    cache: Any
    position_mode: str
    positions: list[torch.Tensor] = field(default_factory=list)
    scores: list[torch.Tensor] | None = None
    stream_tokens: int = 0
    compressions: int = 0
    seconds: float = 0.0

    @property
    def length(self) -> int:
        return cache_length(self.cache)

    @property
    def next_position(self) -> int:
        """Position id of the next token: the cache length (compact) or the stream length (original)."""
        return self.length if self.position_mode == "compact" else self.stream_tokens

    @property
    def nbytes(self) -> int:
        return cache_nbytes(self.cache)


class BoundedKVCompressor:
    """``State_n = Compress(State_{n-1} + Chunk_n)`` with a fixed token budget (BMRT style).

    Args:
        model: a transformers causal LM. ``policy="attention"`` needs eager attention
            (``model.set_attn_implementation("eager")``) to read attention weights.
        budget: tokens kept per layer and KV head after each chunk.
        protection_divisor: ``n`` in BMRT's split (``budget/n`` anchors, ``budget/n`` local).
        chunk_size: tokens per forward pass while streaming (the cache peaks at ``budget + chunk_size``).
        policy: ``"attention"`` (global share by accumulated attention) or ``"recent"``.
        position_mode: ``"compact"`` or ``"original"`` (see the module docstring).
    """

    def __init__(
        self,
        model: nn.Module,
        budget: int,
        protection_divisor: int = 4,
        chunk_size: int = 128,
        policy: str = "attention",
        position_mode: str = "compact",
    ) -> None:
        if policy not in _POLICIES:
            raise ValueError(f"policy must be one of {_POLICIES}, got {policy!r}")
        if position_mode not in _POSITION_MODES:
            raise ValueError(
                f"position_mode must be one of {_POSITION_MODES}, got {position_mode!r}"
            )
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        self.model = model
        self.split = split_budget(budget, protection_divisor)
        self.budget = budget
        self.protection_divisor = protection_divisor
        self.chunk_size = chunk_size
        self.policy = policy
        self.position_mode = position_mode
        self.rotary = find_rotary(model)
        uses_rope = self.rotary is not None or any(
            hasattr(model.config, name)
            for name in ("rope_theta", "rope_parameters", "rope_scaling")
        )
        if position_mode == "compact" and uses_rope and self.rotary is None:
            raise ValueError(
                "compact positions need the model's rotary module (*rotary_emb); use position_mode='original'"
            )

    def _check_attention(self) -> None:
        implementation = getattr(self.model.config, "_attn_implementation", None)
        if self.policy == "attention" and implementation != "eager":
            raise ValueError(
                f"policy='attention' reads attention weights, which needs eager attention (model uses {implementation!r}); "
                "call model.set_attn_implementation('eager') or load with attn_implementation='eager'"
            )

    def start(self) -> BoundedKVState:
        """An empty state."""
        scores: list[torch.Tensor] | None = [] if self.policy == "attention" else None
        return BoundedKVState(new_cache(self.model), self.position_mode, scores=scores)

    @torch.no_grad()
    def stream(
        self,
        input_ids: torch.Tensor | Sequence[int],
        state: BoundedKVState | None = None,
        on_chunk: Callable[[BoundedKVState], None] | None = None,
    ) -> BoundedKVState:
        """Feed ``input_ids`` chunk by chunk, compressing after each chunk; returns the state."""
        self._check_attention()
        state = self.start() if state is None else state
        ids = _as_ids(input_ids, _model_device(self.model))
        started = time.perf_counter()
        for start in range(0, ids.shape[1], self.chunk_size):
            chunk = ids[:, start : start + self.chunk_size]
            n = chunk.shape[1]
            out = _forward(
                self.model,
                chunk,
                state.cache,
                state.next_position,
                output_attentions=self.policy == "attention",
            )
            new_positions = torch.arange(
                state.stream_tokens, state.stream_tokens + n, device=ids.device
            )
            state.stream_tokens += n
            layers = cache_layers(state.cache)
            if not state.positions:
                state.positions = [new_positions.expand(k.shape[1], n).clone() for k, _ in layers]
            else:
                state.positions = [
                    torch.cat([p, new_positions.expand(p.shape[0], n)], dim=1)
                    for p in state.positions
                ]
            if state.scores is not None:
                state.scores = self._accumulate(state.scores, out.attentions, layers)
            del out
            if state.length > self.budget:
                self.compress(state)
            if on_chunk is not None:
                on_chunk(state)
        state.seconds += time.perf_counter() - started
        return state

    def _accumulate(
        self,
        scores: list[torch.Tensor],
        attentions: Sequence[torch.Tensor] | None,
        layers: Sequence[tuple[torch.Tensor, torch.Tensor]],
    ) -> list[torch.Tensor]:
        if not attentions or len(attentions) != len(layers):
            raise RuntimeError(
                "the model returned no attention weights; is attn_implementation 'eager'?"
            )
        updated = []
        for index, (attention, (keys, _)) in enumerate(zip(attentions, layers, strict=True)):
            kv_heads, length = keys.shape[1], keys.shape[2]
            q_heads, queries = attention.shape[1], attention.shape[2]
            # query head h reads KV head h // group (transformers' repeat_kv layout)
            received = (
                attention[0]
                .float()
                .reshape(kv_heads, q_heads // kv_heads, queries, length)
                .sum(dim=(1, 2))
            )
            previous = (
                scores[index]
                if index < len(scores)
                else torch.zeros(kv_heads, 0, device=received.device)
            )
            pad = torch.zeros(kv_heads, length - previous.shape[1], device=received.device)
            updated.append(torch.cat([previous, pad], dim=1) + received)
        return updated

    @torch.no_grad()
    def compress(self, state: BoundedKVState) -> None:
        """Cut every layer to the budget (in place)."""
        new_layers, new_positions, new_scores = [], [], []
        for index, (keys, values) in enumerate(cache_layers(state.cache)):
            batch, heads, length, head_dim = keys.shape
            scores = state.scores[index] if state.scores is not None else None
            kept = select_kept(scores, length, self.split, heads=heads).to(
                keys.device
            )  # [heads, B]
            gather = kept[None, :, :, None].expand(batch, heads, kept.shape[1], head_dim)
            keys, values = keys.gather(2, gather), values.gather(2, gather)
            if self.position_mode == "compact" and self.rotary is not None:
                # cache index == position in compact mode: kept token at index i moves to its rank j
                delta = torch.arange(kept.shape[1], device=keys.device)[None] - kept
                keys = rerotate_keys(keys, delta, self.rotary)
            new_layers.append((keys, values))
            new_positions.append(state.positions[index].gather(1, kept))
            if scores is not None:
                new_scores.append(scores.gather(1, kept))
        set_cache_layers(state.cache, new_layers)
        state.positions = new_positions
        if state.scores is not None:
            state.scores = new_scores
        state.compressions += 1

    def answer(
        self, state: BoundedKVState, suffix_ids: torch.Tensor | Sequence[int], **kwargs: Any
    ) -> Answer:
        """Greedy answer to ``suffix_ids`` (e.g. an injected fact + the question) after the bounded
        cache; the cache is restored afterwards. ``kwargs`` go to :func:`greedy_generate`."""
        return greedy_generate(
            self.model, suffix_ids, state.cache, state.next_position, restore_cache=True, **kwargs
        )
