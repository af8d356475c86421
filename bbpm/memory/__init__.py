"""BBPM memories: the canonical float superposition with counts, a packed binary
Bloom variant, and eviction policies."""

from bbpm.memory.base import WRITE_SCALES, AssociativeMemory, write_scale_factor
from bbpm.memory.binary_bloom import BinaryBloomMemory
from bbpm.memory.eviction import TTLEviction, clip, decay
from bbpm.memory.float_superposition import BBPMMemoryFloat

__all__ = [
    "WRITE_SCALES",
    "AssociativeMemory",
    "BBPMMemoryFloat",
    "BinaryBloomMemory",
    "TTLEviction",
    "clip",
    "decay",
    "write_scale_factor",
]
