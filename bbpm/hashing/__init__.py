"""Hash families mapping integer keys to memory slots, and their diagnostics."""

from __future__ import annotations

from typing import Any

from bbpm.hashing import diagnostics
from bbpm.hashing.base import HashFunction
from bbpm.hashing.block_hash import BlockPermutationHash
from bbpm.hashing.global_hash import GlobalAffineHash
from bbpm.hashing.mixing import splitmix64
from bbpm.hashing.multihash import MultiHashWrapper


def hash_from_config(config: dict[str, Any]) -> HashFunction:
    """Rebuild a hash from its ``config()`` dict (used by memory checkpoints)."""
    config = dict(config)
    kind = config.pop("type", None)
    if kind == "GlobalAffineHash":
        return GlobalAffineHash(**config)
    if kind == "BlockPermutationHash":
        return BlockPermutationHash(**config)
    if kind == "MultiHashWrapper":
        return MultiHashWrapper(hash_from_config(config["base"]), seed=config["seed"])
    raise ValueError(
        f"unknown hash type {kind!r} in config; expected GlobalAffineHash, BlockPermutationHash or MultiHashWrapper"
    )


__all__ = [
    "BlockPermutationHash",
    "GlobalAffineHash",
    "HashFunction",
    "MultiHashWrapper",
    "diagnostics",
    "hash_from_config",
    "splitmix64",
]
