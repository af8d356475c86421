"""Needle-in-filler contexts for the LLM chapter (a task a small model can do in context).

A context is ``filler_lines`` copies of the pass-key filler line, with ``n_needles`` needle
sentences ``"The secret word for locker <key> is <word>."`` inserted at seeded random line
positions (distinct keys, so each needle is asked once). Each needle is a
:class:`~bbpm.integration.interfaces.Fact` (``key`` = locker number, ``value`` = the word,
``text`` = the sentence), so the same controllers that store the fact stream store needles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bbpm.integration.interfaces import Fact

__all__ = ["FILLER_LINE", "NeedleContext", "needle_contexts", "needle_fact", "needle_question"]

#: the pass-key retrieval filler (Mohtashami & Jaggi, 2023)
FILLER_LINE = (
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
)
KEY_LOW, KEY_HIGH = 10_000, 100_000


def needle_fact(key: int, word: str) -> Fact:
    return Fact(int(key), word, f"The secret word for locker {int(key)} is {word}.")


def needle_question(key: int) -> str:
    """The completion prompt asking for a needle (the answer is the next word)."""
    return f"The secret word for locker {int(key)} is"


@dataclass(frozen=True)
class NeedleContext:
    """``lines`` (filler and needles, in order); ``needles[i]`` sits at ``lines[positions[i]]``."""

    lines: list[str]
    needles: list[Fact]
    positions: list[int]

    def window(self, n_lines: int) -> list[str]:
        """The last ``n_lines`` lines (what a sliding window keeps)."""
        return self.lines[max(0, len(self.lines) - n_lines) :]


def needle_contexts(
    n_contexts: int,
    filler_lines: int,
    n_needles: int,
    words: Sequence[str],
    seed: int,
) -> list[NeedleContext]:
    """``n_contexts`` seeded contexts; needle keys are distinct across all of them."""
    for name, value in (("n_contexts", n_contexts), ("n_needles", n_needles)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(filler_lines, bool) or not isinstance(filler_lines, int) or filler_lines < 0:
        raise ValueError(f"filler_lines must be an int >= 0, got {filler_lines!r}")
    if not words:
        raise ValueError("words must not be empty")
    total = n_contexts * n_needles
    if total > KEY_HIGH - KEY_LOW:
        raise ValueError(
            f"at most {KEY_HIGH - KEY_LOW} needles (distinct 5-digit keys), asked {total}"
        )
    rng = np.random.default_rng(seed)
    keys = rng.choice(KEY_HIGH - KEY_LOW, size=total, replace=False) + KEY_LOW
    contexts = []
    for c in range(n_contexts):
        facts = [
            needle_fact(int(k), words[int(rng.integers(len(words)))])
            for k in keys[c * n_needles : (c + 1) * n_needles]
        ]
        length = filler_lines + n_needles
        positions = sorted(int(p) for p in rng.choice(length, size=n_needles, replace=False))
        lines = [FILLER_LINE] * length
        for p, f in zip(positions, facts, strict=True):
            lines[p] = f.text
        contexts.append(NeedleContext(lines, facts, positions))
    return contexts
