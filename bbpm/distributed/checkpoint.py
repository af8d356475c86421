"""Checkpoints of a sharded BBPM memory, re-shardable to any world size.

Layout of a checkpoint directory (written by :func:`save`, every rank at once)::

    shard_{rank}_of_{W}.pt   {"memory": [n_local_blocks*L, d], "counts": [n_local_blocks*L, 1],
                              "blocks": [n_local_blocks] global block ids, in local order,
                              "rank": rank, "world_size": W,
                              "write_weight": [] float64 (decay's write weight; 1 if absent)}
    metadata.json            config (as BBPMMemoryFloat.config()), world size, the block -> rank
                             assignment (rule and per-rank blocks), shard file names, totals

``metadata.json`` is written last (after a barrier), so a directory with metadata holds a
complete checkpoint. The directory must be visible to every rank (a shared filesystem) for
re-sharding: :func:`load` lets each new rank read the blocks it now owns from whichever old
shard files hold them (opened with ``mmap``, so only those rows are read), and
:func:`to_single_process_state_dict` assembles the whole table for a plain
:class:`~bbpm.memory.BBPMMemoryFloat` without any process group.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from bbpm.distributed.assignment import BlockAssignment
from bbpm.distributed.sharded_memory import ShardedBBPMMemory, block_size_of
from bbpm.hashing import hash_from_config
from bbpm.memory.base import check_checkpoint_tensor, counts_dtype_for

FORMAT = "bbpm.distributed.shards/v1"
METADATA = "metadata.json"


def shard_file_name(rank: int, world_size: int) -> str:
    return f"shard_{rank}_of_{world_size}.pt"


def _block_rows(blocks: torch.Tensor, block_size: int) -> torch.Tensor:
    """``[n]`` block positions -> ``[n * L]`` row ids of those blocks' slots."""
    return (blocks[:, None] * block_size + torch.arange(block_size, dtype=torch.int64)).reshape(-1)


def save(memory: ShardedBBPMMemory, path: str | os.PathLike) -> Path:
    """Collective: every rank writes its shard into directory ``path``; rank 0 then writes
    ``metadata.json``. Returns the directory."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    name = shard_file_name(memory.rank, memory.world_size)
    shard = {
        "memory": memory.memory.detach().cpu(),
        "counts": memory.counts.detach().cpu(),
        "blocks": memory.local_blocks.clone(),
        "rank": memory.rank,
        "world_size": memory.world_size,
        "write_weight": memory.write_weight.detach().cpu(),
    }
    torch.save(shard, directory / (name + ".tmp"))
    os.replace(directory / (name + ".tmp"), directory / name)
    totals = memory.global_stats()  # collective; also orders the shard writes before the metadata
    dist.barrier(group=memory.group)
    if memory.rank == 0:
        metadata = {
            "format": FORMAT,
            "config": memory.config(),
            "world_size": memory.world_size,
            "block_size": memory.block_size,
            "assignment": memory.assignment.describe(),
            "shards": [shard_file_name(r, memory.world_size) for r in range(memory.world_size)],
            "n_items": totals["n_items"],
            "load_factor": totals["load_factor"],
            "write_weight": float(memory.write_weight),
        }
        (directory / (METADATA + ".tmp")).write_text(
            json.dumps(metadata, indent=2), encoding="utf-8"
        )
        os.replace(directory / (METADATA + ".tmp"), directory / METADATA)
    dist.barrier(group=memory.group)
    return directory


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata.json`` of a sharded checkpoint directory."""
    file = Path(path) / METADATA
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} not found: {path} is not a complete sharded BBPM checkpoint (metadata.json is "
            "written last by ShardedBBPMMemory.save; was the save interrupted?)"
        )
    metadata = json.loads(file.read_text(encoding="utf-8"))
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise ValueError(f"{file} has format {found!r}, expected {FORMAT!r}")
    shards = metadata.get("shards")
    if not isinstance(shards, list) or len(shards) != metadata.get("world_size"):
        raise ValueError(f"{file}: 'shards' must list one file per rank of the saved world size")
    for name in shards:
        shard_path(path, name)  # every name inside the folder, before any file is opened
    return metadata


def _saved_assignment(metadata: dict[str, Any]) -> BlockAssignment:
    described = metadata["assignment"]
    return BlockAssignment(described["n_blocks"], described["world_size"], described["strategy"])


def shard_path(directory: str | os.PathLike, name: Any) -> Path:
    """The file ``name`` (a shard entry of ``metadata.json``) inside ``directory``, refusing
    any name that is not a plain file name resolving inside the directory (absolute paths,
    ``..``, sub-folders, symlinks that lead out) with ``ValueError``."""
    folder = Path(directory).resolve()
    if (
        not isinstance(name, str)
        or not name
        or name != Path(name).name
        or name in (".", "..")
        or "\\" in name
    ):
        raise ValueError(
            f"metadata.json names shard file {name!r}; a shard must be a plain file name inside "
            f"the checkpoint folder {str(directory)!r} (no folders, '..' or absolute paths)"
        )
    path = (folder / name).resolve()
    if path.parent != folder:
        raise ValueError(
            f"shard file {name!r} resolves to {str(path)!r}, outside the checkpoint folder "
            f"{str(folder)!r}; refusing to open it"
        )
    return path


def _check_shard_tensors(shard: Any, name: str, metadata: dict[str, Any], n_rows: int) -> None:
    """Raise ``ValueError`` unless the shard's tables have the config's dtype and ``n_rows``
    rows (a checkpoint is never cast or partially copied)."""
    config = metadata["config"]
    dtype = getattr(torch, config["dtype"])
    expected = {
        "memory": ((n_rows, config["d"]), dtype),
        "counts": ((n_rows, 1), counts_dtype_for(dtype)),
    }
    for key, (shape, want) in expected.items():
        saved = shard.get(key) if isinstance(shard, dict) else None
        if not isinstance(saved, torch.Tensor):
            raise ValueError(f"{name} has no {key!r} tensor; nothing was loaded")
        if tuple(saved.shape) != shape or saved.dtype != want:
            raise ValueError(
                f"{name}: {key!r} is {saved.dtype} of shape {tuple(saved.shape)}, metadata.json "
                f"says {want} of shape {shape}; nothing was loaded"
            )


def _open_shard(path: Path, metadata: dict[str, Any], rank: int) -> dict[str, Any]:
    name = metadata["shards"][rank]
    shard = torch.load(shard_path(path, name), map_location="cpu", mmap=True, weights_only=True)
    expected = _saved_assignment(metadata).blocks_of(rank)
    blocks = shard.get("blocks") if isinstance(shard, dict) else None
    if not isinstance(blocks, torch.Tensor) or not torch.equal(blocks, expected):
        raise ValueError(
            f"{name} does not hold the blocks metadata.json assigns to rank {rank}; "
            "the directory mixes files of different checkpoints"
        )
    _check_shard_tensors(shard, name, metadata, expected.numel() * metadata["block_size"])
    return shard


def load(
    path: str | os.PathLike,
    group: dist.ProcessGroup | None = None,
    device: torch.device | str | None = None,
    assignment: str | None = None,
) -> ShardedBBPMMemory:
    """Collective: rebuild a sharded memory from directory ``path`` on the current group,
    whatever world size saved it. ``assignment`` defaults to the saved strategy."""
    directory = Path(path)
    metadata = read_metadata(directory)
    old = _saved_assignment(metadata)
    memory = ShardedBBPMMemory.from_config(
        metadata["config"], group=group, device=device, assignment=assignment or old.strategy
    )
    L = memory.block_size
    mine = memory.local_blocks
    old_owner, old_local = old.owner(mine), old.local_index(mine)
    weight = float(metadata.get("write_weight", 1.0))
    sources = old_owner.unique().tolist()
    shards = {source: _open_shard(directory, metadata, source) for source in sources}
    with torch.no_grad():
        memory.write_weight.fill_(weight)
        for source, shard in shards.items():
            from_source = (old_owner == source).nonzero().view(-1)
            new_rows = _block_rows(from_source, L).to(memory.memory.device)
            old_rows = _block_rows(old_local[from_source], L)
            rows, counts = _at_weight(shard, old_rows, weight)
            memory.memory[new_rows] = rows.to(memory.memory.device)
            memory.counts[new_rows] = counts.to(memory.counts.device)
    return memory


def _at_weight(
    shard: dict[str, Any], rows: torch.Tensor, weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """A shard's ``rows`` of memory and counts, rescaled from the shard's write weight to
    ``weight`` (unchanged when they agree, as when every rank decayed alike)."""
    memory, counts = shard["memory"][rows], shard["counts"][rows]
    ratio = weight / float(shard.get("write_weight", 1.0))
    if ratio == 1.0:
        return memory, counts
    wide = torch.float64
    return (memory.to(wide) * ratio).to(memory.dtype), (counts.to(wide) * ratio).to(counts.dtype)


def to_single_process_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Assemble a sharded checkpoint into a :class:`~bbpm.memory.BBPMMemoryFloat`
    ``state_dict`` (no process group needed)::

        memory = BBPMMemoryFloat.from_state_dict(to_single_process_state_dict(path))
    """
    directory = Path(path)
    metadata = read_metadata(directory)
    config = metadata["config"]
    L = metadata["block_size"]
    dtype = getattr(torch, config["dtype"])
    counts_dtype = counts_dtype_for(dtype)
    memory = torch.zeros(config["D"], config["d"], dtype=dtype)
    counts = torch.zeros(config["D"], 1, dtype=counts_dtype)
    weight = float(metadata.get("write_weight", 1.0))
    for rank in range(metadata["world_size"]):
        shard = _open_shard(directory, metadata, rank)
        rows = _block_rows(shard["blocks"], L)
        memory[rows], counts[rows] = _at_weight(shard, torch.arange(rows.numel()), weight)
    return {
        "memory": memory,
        "counts": counts,
        "write_weight": torch.tensor(weight, dtype=torch.float64),
        "_extra_state": dict(config),
    }


def from_single_process_state_dict(
    state_dict: dict[str, Any],
    group: dist.ProcessGroup | None = None,
    device: torch.device | str | None = None,
    assignment: str = "contiguous",
) -> ShardedBBPMMemory:
    """Collective: shard a :class:`~bbpm.memory.BBPMMemoryFloat` ``state_dict`` (every rank
    passes the same one, e.g. ``torch.load(..., mmap=True)``); each rank keeps its blocks."""
    config = state_dict.get("_extra_state")
    if not isinstance(config, dict) or config.get("hash") is None:
        raise ValueError(
            "state_dict has no BBPM config (_extra_state); it was not saved by BBPMMemoryFloat.state_dict()"
        )
    block_size_of(hash_from_config(config["hash"]))  # TypeError for a hash without blocks
    memory = ShardedBBPMMemory.from_config(
        config, group=group, device=device, assignment=assignment
    )
    dtype = getattr(torch, config["dtype"])
    whole = {"memory": (config["D"], config["d"]), "counts": (config["D"], 1)}
    for key, shape in whole.items():
        want = dtype if key == "memory" else counts_dtype_for(dtype)
        check_checkpoint_tensor(
            state_dict.get(key), key, torch.empty(shape, dtype=want, device="meta")
        )
    rows = _block_rows(memory.local_blocks, memory.block_size)
    with torch.no_grad():
        memory.memory.copy_(state_dict["memory"][rows].to(memory.memory.device))
        memory.counts.copy_(state_dict["counts"][rows].to(memory.counts.device))
        memory.write_weight.fill_(float(state_dict.get("write_weight", 1.0)))
    return memory
