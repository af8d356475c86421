"""bbpm: Block-Based Permutation Memory, a fixed-size hashed superposition memory.

>>> import torch, bbpm
>>> mem = bbpm.BBPMMemoryFloat(D=4096, d=8, K=4, H=1, hash_fn=bbpm.BlockPermutationHash(4096, 512))
>>> keys, values = torch.arange(3), torch.randn(3, 8)
>>> mem.write(keys, values)
>>> torch.allclose(mem.read(keys), values, atol=1e-5)
True
"""

from bbpm.config import load_config
from bbpm.hashing import BlockPermutationHash, GlobalAffineHash, HashFunction, MultiHashWrapper
from bbpm.memory import BBPMMemoryFloat, BinaryBloomMemory
from bbpm.utils import Experiment, Timer, get_device, get_logger, set_global_seed

__version__ = "0.1.0"

__all__ = [
    "BBPMMemoryFloat",
    "BinaryBloomMemory",
    "BlockPermutationHash",
    "Experiment",
    "GlobalAffineHash",
    "HashFunction",
    "MultiHashWrapper",
    "Timer",
    "get_device",
    "get_logger",
    "load_config",
    "set_global_seed",
    "__version__",
]
