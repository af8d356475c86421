"""Worker functions of the sharded-memory benchmark (notebooks/bench04_sharded.py).

They live here, not in the notebook, because ``torch.multiprocessing`` spawns fresh
interpreters that must import the function. Run them with
:func:`bbpm.distributed.launch.spawn_local`.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.distributed as dist

from bbpm.distributed.sharded_memory import ShardedBBPMMemory
from bbpm.hashing import BlockPermutationHash
from bbpm.memory import BBPMMemoryFloat


def syscall_write_bytes() -> int | None:
    """Bytes this process has passed to write-type system calls (``wchar`` of
    ``/proc/self/io``; gloo's socket writes count here). None where unavailable."""
    try:
        with open("/proc/self/io") as io_stats:
            for line in io_stats:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rank_batches(cfg: dict[str, Any], rank: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Distinct random keys and unit-norm values for one rank (seeded by seed and rank)."""
    gen = torch.Generator().manual_seed(int(cfg["seed"]) * 1_000_003 + rank)
    keys, values = [], []
    for _ in range(cfg["n_batches"]):
        keys.append(torch.randint(0, 2**62, (cfg["batch"],), generator=gen))
        v = torch.randn(cfg["batch"], cfg["d"], generator=gen)
        values.append(v / v.norm(dim=1, keepdim=True))
    return keys, values


def _timed(step: Any, batches: list[Any], sync: Any) -> tuple[float, int | None, Any]:
    """Seconds and syscall write bytes for ``step`` over the batches, between barriers."""
    sync()
    before, start = syscall_write_bytes(), time.perf_counter()
    out = None
    for batch in batches:
        out = step(batch)
    sync()
    seconds, after = time.perf_counter() - start, syscall_write_bytes()
    return seconds, (None if before is None else after - before), out


def throughput_worker(rank: int, world_size: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """Write then read ``n_batches`` batches of ``batch`` keys per rank into a sharded memory.

    ``cfg``: D, d, K, H, block_size, batch, n_batches, seed, and optionally repeats (the
    whole write-then-read measurement is repeated on a cleared table). Returns this rank's
    seconds and syscall write bytes per repeat (lists), the
    :class:`~bbpm.distributed.sharded_memory.Traffic` counters of one repeat, the read-back
    cosine, and (W = 1 only) the plain BBPMMemoryFloat seconds per repeat."""
    hash_fn = BlockPermutationHash(cfg["D"], cfg["block_size"], seed=cfg["seed"])
    memory = ShardedBBPMMemory(cfg["D"], cfg["d"], cfg["K"], cfg["H"], hash_fn)
    keys, values = rank_batches(cfg, rank)

    memory.write(keys[0][:64], values[0][:64])  # warm-up: first-call allocations
    memory.read(keys[0][:64])

    def barrier() -> None:
        dist.barrier()

    pairs = list(zip(keys, values, strict=True))
    timings: dict[str, list[Any]] = {
        k: []
        for k in ("write_seconds", "read_seconds", "write_syscall_bytes", "read_syscall_bytes")
    }
    for _ in range(
        cfg.get("repeats", 1)
    ):  # the same writes and reads each time, from an empty table
        memory.clear()
        memory.reset_traffic()
        write_s, write_bytes, _ = _timed(lambda kv: memory.write(*kv), pairs, barrier)
        read_s, read_bytes, last = _timed(memory.read, keys, barrier)
        for key, value in zip(timings, (write_s, read_s, write_bytes, read_bytes), strict=True):
            timings[key].append(value)
    cosine = torch.nn.functional.cosine_similarity(last, values[-1], dim=1).mean().item()
    result: dict[str, Any] = {
        "rank": rank,
        "world_size": world_size,
        **timings,
        "traffic": {op: counter.as_dict() for op, counter in memory.traffic.items()},  # one repeat
        "local_slots": memory.memory.shape[0],
        "read_cosine_last_batch": cosine,
    }
    if world_size == 1:  # the same work on the plain single-process memory
        plain = BBPMMemoryFloat(cfg["D"], cfg["d"], cfg["K"], cfg["H"], hash_fn)
        plain.write(keys[0][:64], values[0][:64])
        plain.read(keys[0][:64])
        result["plain_write_seconds"], result["plain_read_seconds"] = [], []
        for _ in range(cfg.get("repeats", 1)):
            plain.clear()
            result["plain_write_seconds"].append(
                _timed(lambda kv: plain.write(*kv), pairs, lambda: None)[0]
            )
            result["plain_read_seconds"].append(_timed(plain.read, keys, lambda: None)[0])
    return result


def main(argv: list[str] | None = None) -> None:
    """``python -m bbpm.distributed.bench --world-size W --config '{...}' --out result.json``:
    run :func:`throughput_worker` on W local gloo processes and write their results as JSON.

    Notebooks call this through ``subprocess`` rather than spawning directly: a spawned
    worker re-imports the parent's ``__main__``, which for a notebook run as a script would
    be the notebook itself."""
    import argparse
    import json
    import multiprocessing

    from bbpm.distributed.launch import spawn_local

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--world-size", type=int, required=True)
    parser.add_argument(
        "--config",
        required=True,
        help="JSON dict: D, d, K, H, block_size, batch, n_batches, seed[, repeats]",
    )
    parser.add_argument("--out", required=True, help="where to write the per-rank results (JSON)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    start_method = (
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    results = spawn_local(
        throughput_worker,
        args.world_size,
        (json.loads(args.config),),
        timeout_s=args.timeout,
        start_method=start_method,
    )
    payload = {
        "world_size": args.world_size,
        "launch_seconds": time.perf_counter() - start,
        "ranks": results,
    }
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)


if __name__ == "__main__":
    main()
