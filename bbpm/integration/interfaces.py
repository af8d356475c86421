"""Controller-based retrieval injection: a BBPM memory as an external store for an LLM.

The language model is frozen and never trained. A controller sits beside it:

1. ``observe(fact)``: every streamed fact ``ID=<key> VALUE=<word>`` gets a value id (its
   index in a host-side fact store); BBPM stores ``key -> code(value id)``, where
   ``code`` is a fixed random unit vector (:class:`~bbpm.integration.codebook.ValueCodebook`).
2. ``retrieve(key)``: read BBPM at the key and decode the nearest value id by cosine
   against the codebook; returns ``(value_id, confidence)``.
3. ``build_prompt(question, window)``: parse the id from the question, retrieve, and put the
   retrieved fact's text into the prompt beside the window of recent facts.

The prompt layout lives in a :class:`PromptTemplate`, shared by every method an experiment
compares (window only, BBPM injection, exact-dict oracle injection), so that only the
injected line differs between them.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from bbpm.hashing import GlobalAffineHash
from bbpm.integration.codebook import ValueCodebook
from bbpm.integration.keying import id_keys
from bbpm.memory.float_superposition import BBPMMemoryFloat

__all__ = [
    "DEFAULT_ID_PATTERN",
    "BBPMController",
    "ExactController",
    "Fact",
    "InjectedPrompt",
    "InjectionController",
    "PromptTemplate",
    "WindowOnlyController",
    "parse_fact",
]

#: Matches ``ID=4821``, ``ID 4821`` and ``ID: 4821`` (the first match is used).
DEFAULT_ID_PATTERN = r"\bID\s*[=:]?\s*(-?\d+)"
FACT_FORMAT = "ID={key} VALUE={value}"


@dataclass(frozen=True)
class Fact:
    """One streamed fact. ``text`` is what a prompt shows (default ``ID=<key> VALUE=<value>``)."""

    key: int
    value: str
    text: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.key, bool) or not isinstance(self.key, int):
            raise TypeError(f"Fact.key must be an int, got {type(self.key).__name__}")
        if not self.text:
            object.__setattr__(self, "text", FACT_FORMAT.format(key=self.key, value=self.value))


def parse_fact(text: str) -> Fact:
    """Parse ``"ID=<int> VALUE=<word>"`` into a :class:`Fact`."""
    match = re.fullmatch(r"\s*ID\s*=\s*(-?\d+)\s+VALUE\s*=\s*(\S+)\s*", text)
    if match is None:
        raise ValueError(f"cannot parse fact {text!r}; expected 'ID=<integer> VALUE=<word>'")
    return Fact(int(match.group(1)), match.group(2), text.strip())


def _line(item: Fact | str) -> str:
    return item.text if isinstance(item, Fact) else str(item)


@dataclass(frozen=True)
class PromptTemplate:
    """How a prompt is laid out: ``prefix``, one ``fact_line`` per window fact, the
    ``memory_line`` holding the injected fact (if any), then ``question_line`` + ``suffix``.

    Each piece is a ``str.format`` pattern: ``fact_line``/``memory_line`` get ``{text}``,
    ``question_line`` gets ``{question}``.
    """

    prefix: str = "Facts:\n"
    fact_line: str = "{text}\n"
    memory_line: str = "{text}\n"
    question_line: str = "{question}"
    suffix: str = ""

    def segments(
        self, window: Sequence[Fact | str], question: str, injected: str | None = None
    ) -> list[str]:
        """The prompt as a list of strings: ``[prefix, *window lines, memory line?, question + suffix]``.
        Tokenising the segments one by one and concatenating keeps every method's tokens aligned."""
        parts = [self.prefix] + [self.fact_line.format(text=_line(item)) for item in window]
        if injected is not None:
            parts.append(self.memory_line.format(text=injected))
        parts.append(self.question_line.format(question=question) + self.suffix)
        return parts

    def render(
        self, window: Sequence[Fact | str], question: str, injected: str | None = None
    ) -> str:
        """The prompt as one string."""
        return "".join(self.segments(window, question, injected))

    @classmethod
    def from_chat_template(
        cls,
        tokenizer: Any,
        header: str = "Facts:\n",
        system: str | None = None,
        memory_line: str = "{text}\n",
    ) -> PromptTemplate:
        """A template wrapping the user turn in the tokenizer's chat template (generation prompt
        appended). The chat markup before the user text becomes ``prefix``; after it, ``suffix``."""
        marker = "\x00QUESTION\x00"
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": header + marker}
        ]
        rendered = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        if rendered.count(marker) != 1:
            raise ValueError(
                "the tokenizer's chat template does not keep the user text verbatim; use a plain PromptTemplate"
            )
        before, after = rendered.split(marker)
        return cls(prefix=before, memory_line=memory_line, suffix=after)


@dataclass
class InjectedPrompt:
    """A built prompt and what the controller did for it."""

    text: str
    segments: list[str]
    key: int | None
    value_id: int
    confidence: float
    injected: str | None
    extra: dict[str, Any] = field(default_factory=dict)


class InjectionController(ABC):
    """Holds a fact store and answers ``retrieve(key) -> (value_id, confidence)``.

    Value ids are indices into the fact store, assigned in observation order.
    ``min_confidence``: inject only retrievals at least this confident (``None``: always).
    """

    def __init__(
        self,
        template: PromptTemplate | None = None,
        id_pattern: str = DEFAULT_ID_PATTERN,
        min_confidence: float | None = None,
    ) -> None:
        self.template = template if template is not None else PromptTemplate()
        self.id_pattern = re.compile(id_pattern)
        self.min_confidence = min_confidence
        self.facts: list[Fact] = []

    # ------------------------------------------------------------------ writing
    def observe(self, fact: Fact | str) -> int:
        """Store one fact (a :class:`Fact` or its ``"ID=.. VALUE=.."`` text); returns its value id."""
        return int(self.observe_many([fact])[0])

    def observe_many(self, facts: Iterable[Fact | str]) -> torch.Tensor:
        """Store a batch of facts; returns their ``[B]`` int64 value ids."""
        batch = [f if isinstance(f, Fact) else parse_fact(f) for f in facts]
        start = len(self.facts)
        self.facts.extend(batch)
        value_ids = torch.arange(start, start + len(batch), dtype=torch.int64)
        if batch:
            self._index(torch.tensor([f.key for f in batch], dtype=torch.int64), value_ids)
        return value_ids

    @abstractmethod
    def _index(self, keys: torch.Tensor, value_ids: torch.Tensor) -> None:
        """Record ``keys [B] -> value_ids [B]`` in the lookup structure."""

    def clear(self) -> None:
        """Forget every fact."""
        self.facts.clear()

    # ------------------------------------------------------------------ reading
    @abstractmethod
    def retrieve_many(
        self, keys: torch.Tensor | Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``keys [B]`` -> ``(value_ids [B] int64, confidence [B] float32)``; value id -1 = nothing found."""

    def retrieve(self, key: int) -> tuple[int, float]:
        """One key -> ``(value_id, confidence)``; value id -1 when nothing was found."""
        value_ids, confidence = self.retrieve_many([int(key)])
        return int(value_ids[0]), float(confidence[0])

    def fact_text(self, value_id: int) -> str:
        """The stored text of a value id."""
        if not 0 <= value_id < len(self.facts):
            raise KeyError(f"value id {value_id} is not in the fact store (size {len(self.facts)})")
        return self.facts[value_id].text

    def parse_id(self, question: str) -> int:
        """The first integer id in ``question`` (see :data:`DEFAULT_ID_PATTERN`)."""
        match = self.id_pattern.search(question)
        if match is None:
            raise ValueError(
                f"no ID found in question {question!r} (pattern {self.id_pattern.pattern!r})"
            )
        return int(match.group(1))

    def prepare(self, question: str, window: Sequence[Fact | str]) -> InjectedPrompt:
        """Parse the id, retrieve, and build the prompt with the retrieved fact injected."""
        key = self.parse_id(question)
        value_id, confidence = self.retrieve(key)
        inject = value_id >= 0 and (
            self.min_confidence is None or confidence >= self.min_confidence
        )
        injected = self.fact_text(value_id) if inject else None
        segments = self.template.segments(window, question, injected)
        return InjectedPrompt("".join(segments), segments, key, value_id, confidence, injected)

    def build_prompt(self, question: str, window: Sequence[Fact | str]) -> str:
        """The prompt text for ``question`` with the retrieved fact injected."""
        return self.prepare(question, window).text

    @property
    def store_nbytes(self) -> int:
        """UTF-8 bytes of the stored fact texts (the host-side store)."""
        return sum(len(f.text.encode("utf-8")) for f in self.facts)


class WindowOnlyController(InjectionController):
    """The baseline: stores nothing, injects nothing (the prompt holds the window only)."""

    def _index(self, keys: torch.Tensor, value_ids: torch.Tensor) -> None:
        self.facts.clear()  # keeps no history: memory stays empty

    def retrieve_many(
        self, keys: torch.Tensor | Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(keys)
        return torch.full((n,), -1, dtype=torch.int64), torch.zeros(n)


class ExactController(InjectionController):
    """The oracle: an exact ``dict`` from key to value id (the latest fact for a repeated key)."""

    def __init__(
        self, template: PromptTemplate | None = None, id_pattern: str = DEFAULT_ID_PATTERN
    ) -> None:
        super().__init__(template, id_pattern)
        self.table: dict[int, int] = {}

    def _index(self, keys: torch.Tensor, value_ids: torch.Tensor) -> None:
        self.table.update(zip(keys.tolist(), value_ids.tolist(), strict=True))

    def clear(self) -> None:
        super().clear()
        self.table.clear()

    def retrieve_many(
        self, keys: torch.Tensor | Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = torch.as_tensor(keys, dtype=torch.int64).tolist()
        found = [self.table.get(k, -1) for k in keys]
        return torch.tensor(found, dtype=torch.int64), torch.tensor(
            [1.0 if v >= 0 else 0.0 for v in found]
        )


class BBPMController(InjectionController):
    """BBPM memory ``key -> code(value id)`` + codebook + fact store.

    Args:
        memory: a :class:`BBPMMemoryFloat` whose value dimension ``d`` is the code size.
        codebook_seed: seed of the value codes.
        namespace: key family passed to :func:`~bbpm.integration.keying.id_keys`.
        verify_top_k: 1 = pure BBPM (nearest code wins). ``k > 1`` decodes the ``k`` nearest
            codes and takes the first whose stored fact has the queried key (the store holds the
            key anyway), falling back to the nearest: an exact check on top of the approximate read.
        template, id_pattern, min_confidence: see :class:`InjectionController`.

    Confidence = cosine between the (normalised) read-out and the chosen code.
    """

    def __init__(
        self,
        memory: BBPMMemoryFloat,
        codebook_seed: int = 0,
        namespace: int | str = "id",
        verify_top_k: int = 1,
        template: PromptTemplate | None = None,
        id_pattern: str = DEFAULT_ID_PATTERN,
        min_confidence: float | None = None,
    ) -> None:
        super().__init__(template, id_pattern, min_confidence)
        if not isinstance(memory, BBPMMemoryFloat):
            raise TypeError(f"memory must be a BBPMMemoryFloat, got {type(memory).__name__}")
        if isinstance(verify_top_k, bool) or not isinstance(verify_top_k, int) or verify_top_k < 1:
            raise ValueError(f"verify_top_k must be an int >= 1, got {verify_top_k!r}")
        self.memory = memory
        self.codebook = ValueCodebook(memory.d, seed=codebook_seed, device=memory.memory.device)
        self.namespace = namespace
        self.verify_top_k = verify_top_k

    @classmethod
    def build(
        cls, D: int, d: int = 64, K: int = 8, H: int = 2, seed: int = 0, **kwargs: Any
    ) -> BBPMController:
        """A controller over a fresh ``BBPMMemoryFloat(D, d, K, H, GlobalAffineHash(D, seed))``."""
        memory = BBPMMemoryFloat(D, d, K, H, GlobalAffineHash(D, seed=seed))
        return cls(memory, codebook_seed=kwargs.pop("codebook_seed", seed), **kwargs)

    def keys_for(self, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Memory keys of fact ids (namespaced splitmix64)."""
        return id_keys(torch.as_tensor(ids, dtype=torch.int64), self.namespace).to(
            self.memory.memory.device
        )

    def _index(self, keys: torch.Tensor, value_ids: torch.Tensor) -> None:
        codes = self.codebook.add(value_ids)
        self.memory.write(self.keys_for(keys), codes)

    def clear(self) -> None:
        super().clear()
        self.memory.clear()
        self.codebook.clear()

    @torch.no_grad()
    def retrieve_many(
        self, keys: torch.Tensor | Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = torch.as_tensor(keys, dtype=torch.int64).reshape(-1)
        if len(self.codebook) == 0:
            return torch.full((keys.numel(),), -1, dtype=torch.int64), torch.zeros(keys.numel())
        readout = self.memory.read(self.keys_for(keys))
        ids, cosines = self.codebook.decode(readout, top_k=self.verify_top_k)
        if self.verify_top_k == 1:
            return ids[:, 0], cosines[:, 0]
        stored_keys = torch.tensor([f.key for f in self.facts], dtype=torch.int64)
        match = (
            stored_keys[ids] == keys[:, None]
        )  # [B, k]: candidate's stored key is the queried key
        first = torch.where(match.any(1), match.float().argmax(1), torch.zeros_like(keys))
        rows = torch.arange(keys.numel())
        return ids[rows, first], cosines[rows, first]

    @property
    def nbytes(self) -> dict[str, int]:
        """Bytes of the BBPM memory (fixed), the code matrix and the fact store (both grow with N)."""
        return {
            "bbpm_memory": self.memory.nbytes,
            "codebook": self.codebook.nbytes,
            "fact_store": self.store_nbytes,
        }
