"""A BBPM memory sharded by block over ``torch.distributed`` ranks (gloo on CPU, NCCL on GPUs).

>>> # under torchrun, after torch.distributed.init_process_group(...):
>>> # mem = ShardedBBPMMemory(D, d, K, H, BlockPermutationHash(D, 4096))
>>> # mem.write(my_keys, my_values); out = mem.read(my_keys)   # every rank, together

See the README section "Sharding a memory across processes and machines" for launching and the checkpoint format.
"""

from bbpm.distributed import cost_model
from bbpm.distributed.assignment import BlockAssignment
from bbpm.distributed.checkpoint import (
    from_single_process_state_dict,
    read_metadata,
    to_single_process_state_dict,
)
from bbpm.distributed.launch import spawn_local
from bbpm.distributed.sharded_memory import ShardedBBPMMemory, Traffic, block_size_of

__all__ = [
    "BlockAssignment",
    "ShardedBBPMMemory",
    "Traffic",
    "block_size_of",
    "cost_model",
    "from_single_process_state_dict",
    "read_metadata",
    "spawn_local",
    "to_single_process_state_dict",
]
