"""A BBPM memory sharded over the ranks of a torchrun job (gloo on CPU, NCCL on GPUs).

One machine, two processes::

    torchrun --standalone --nproc_per_node=2 examples/sharded_demo.py

Two machines with 8 GPUs each (run the same command on both; HOST is the first machine)::

    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \\
        examples/sharded_demo.py --save /shared/bbpm_ckpt

Every rank writes its own items, then reads back the items another rank wrote (they are
spread over all ranks' shards), then rank 0 alone writes a few more items while the others
pass ``None`` (single-writer mode). With ``--save DIR`` the memory is checkpointed (one shard
file per rank plus metadata.json; DIR must be shared by all machines) and reloaded.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F

from bbpm import BlockPermutationHash
from bbpm.distributed import ShardedBBPMMemory


def items_of(rank: int, n: int, d: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n`` keys and unit-norm ``[n, d]`` values that ``rank`` writes (same on every rank)."""
    keys = torch.arange(n, dtype=torch.int64) + rank * n
    values = torch.randn(n, d, generator=torch.Generator().manual_seed(rank))
    return keys.to(device), F.normalize(values, dim=1).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--D", type=int, default=1 << 20, help="total slots over all ranks")
    parser.add_argument("--block-size", type=int, default=4096)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--K", type=int, default=32)
    parser.add_argument("--H", type=int, default=2)
    parser.add_argument("--items-per-rank", type=int, default=2000)
    parser.add_argument("--save", default=None, help="checkpoint directory (shared by all ranks)")
    args = parser.parse_args()

    use_cuda = torch.cuda.is_available()
    if use_cuda:  # NCCL: one GPU per process, chosen before the group starts
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if use_cuda else "gloo")  # rank/world from torchrun's env
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu")

    hash_fn = BlockPermutationHash(args.D, args.block_size, seed=0)
    memory = ShardedBBPMMemory(args.D, args.d, args.K, args.H, hash_fn, device=device)

    # 1. every rank writes its own batch (a collective: all ranks call write together)
    keys, values = items_of(rank, args.items_per_rank, args.d, device)
    memory.write(keys, values)

    # 2. every rank reads the items of the next rank
    peer = (rank + 1) % world
    peer_keys, peer_values = items_of(peer, args.items_per_rank, args.d, device)
    cosine = F.cosine_similarity(memory.read(peer_keys), peer_values, dim=1).mean().item()

    # 3. single-writer mode: only rank 0 has data, the others pass None
    extra_keys = torch.arange(10, device=device) + world * args.items_per_rank
    extra_values = F.normalize(torch.ones(10, args.d, device=device), dim=1)
    memory.write(*((extra_keys, extra_values) if rank == 0 else (None, None)))
    extra_cosine = F.cosine_similarity(memory.read(extra_keys), extra_values, dim=1).mean().item()

    stats = memory.global_stats()  # collective
    blocks = memory.local_blocks
    sent = (
        memory.traffic["write"].payload_bytes_remote + memory.traffic["read"].payload_bytes_remote
    )
    print(
        f"[rank {rank}/{world} on {device}] blocks {int(blocks[0])}..{int(blocks[-1])} "
        f"({memory.nbytes / 2**20:.1f} MiB); read rank {peer}'s {args.items_per_rank} items: "
        f"mean cosine {cosine:.4f}; rank 0's single-writer items: {extra_cosine:.4f}; "
        f"sent {sent / 1e6:.2f} MB to other ranks",
        flush=True,
    )
    if rank == 0:
        print(
            f"total: {stats['n_items']:.0f} items, load N*K*H/D = {stats['load_factor']:.3f}, {stats['nbytes'] / 2**20:.1f} MiB"
        )

    if args.save:
        memory.save(args.save)
        reloaded = ShardedBBPMMemory.load(args.save)
        same = torch.equal(reloaded.read(peer_keys), memory.read(peer_keys))
        if rank == 0:
            print(f"saved to {args.save} and reloaded: reads identical = {same}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
