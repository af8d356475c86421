"""BBPM beside a frozen language model: keys, retrieval injection, fusion, bounded KV caches.

* :mod:`~bbpm.integration.interfaces`: the retrieval-injection controller
  (:class:`BBPMController`: ``observe``, ``retrieve``, ``build_prompt``) and its baselines.
* :mod:`~bbpm.integration.keying`: id, position and stop-gradient projection keys.
* :mod:`~bbpm.integration.codebook`: fixed random unit codes and cosine decoding.
* :mod:`~bbpm.integration.fusion`: gated residual fusion of a memory read-out.
* :mod:`~bbpm.integration.kv_substitution`: bounded KV caches (BMRT-style compressor, limited
  window) for transformers models, greedy decoding (single and batched) after a cache.
* :mod:`~bbpm.integration.models`: load the offline SmolLM2 GGUF or any transformers model id.

``kv_substitution`` imports transformers lazily, so this package imports without it.
"""

from bbpm.integration.codebook import ValueCodebook, random_unit_codes
from bbpm.integration.fusion import GatedResidualFusion
from bbpm.integration.interfaces import (
    BBPMController,
    ExactController,
    Fact,
    InjectedPrompt,
    InjectionController,
    PromptTemplate,
    WindowOnlyController,
    parse_fact,
)
from bbpm.integration.keying import ProjectionKeys, id_keys, position_keys
from bbpm.integration.kv_substitution import (
    Answer,
    BoundedKVCompressor,
    BoundedKVState,
    greedy_generate,
    greedy_generate_batch,
    prefill,
    select_kept,
    split_budget,
)
from bbpm.integration.models import SMOLLM2_GGUF, load_causal_lm

__all__ = [
    "SMOLLM2_GGUF",
    "Answer",
    "BBPMController",
    "BoundedKVCompressor",
    "BoundedKVState",
    "ExactController",
    "Fact",
    "GatedResidualFusion",
    "InjectedPrompt",
    "InjectionController",
    "ProjectionKeys",
    "PromptTemplate",
    "ValueCodebook",
    "WindowOnlyController",
    "greedy_generate",
    "greedy_generate_batch",
    "load_causal_lm",
    "id_keys",
    "parse_fact",
    "position_keys",
    "prefill",
    "random_unit_codes",
    "select_kept",
    "split_budget",
]
