"""Start a local process group without a launcher: tests, notebooks and benchmarks.

:func:`spawn_local` runs ``fn(rank, world_size, *args)`` in ``world_size`` fresh processes
(``torch.multiprocessing`` with the "spawn" start method) joined into one gloo (or NCCL)
group through a ``FileStore`` in a temporary directory, so no TCP port has to be picked.
Each worker's return value is sent back (through a file) and returned in rank order: the
files are ``torch.save``-d by the workers into that temporary directory (created for the call,
mode 0700) and read back with ``torch.load(weights_only=False)``, since a return value may be
any picklable object; no path from the caller is ever loaded.
For real jobs launch with ``torchrun`` instead (see the README section "Sharding a memory across processes and machines").
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException


def _entry(
    local_rank: int,
    fn: Callable[..., Any],
    world_size: int,
    workdir: str,
    backend: str,
    threads: int | None,
    timeout_s: float,
    args: tuple[Any, ...],
) -> None:
    if threads is not None:
        torch.set_num_threads(threads)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend,
        init_method=f"file://{os.path.join(workdir, 'store')}",
        rank=local_rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout_s),
    )
    try:
        result = fn(local_rank, world_size, *args)
        torch.save(result, os.path.join(workdir, f"result_{local_rank}.pt"))
    except BaseException:
        # Record when and why this rank failed: the first failure is usually the cause, the
        # others are peers losing their connection to it.
        with open(
            os.path.join(workdir, f"error_{local_rank}.txt"), "w", encoding="utf-8"
        ) as report:
            report.write(f"{time.time():.6f}\n{traceback.format_exc()}")
        raise
    finally:
        dist.destroy_process_group()


def _failure_report(workdir: str, world_size: int) -> str:
    """Every failed rank's traceback, earliest failure first."""
    reports = []
    for rank in range(world_size):
        path = Path(workdir) / f"error_{rank}.txt"
        if path.is_file():
            stamp, _, trace = path.read_text(encoding="utf-8").partition("\n")
            reports.append((float(stamp), rank, trace))
    if not reports:
        return "spawn_local: a worker died without a Python traceback (see its stderr)"
    reports.sort()
    return "spawn_local: workers failed, earliest first:\n" + "\n".join(
        f"--- rank {rank} of {world_size} ---\n{trace}" for _, rank, trace in reports
    )


def spawn_local(
    fn: Callable[..., Any],
    world_size: int,
    args: tuple[Any, ...] = (),
    backend: str = "gloo",
    threads_per_process: int | None = 1,
    timeout_s: float = 300.0,
    start_method: str = "spawn",
) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` local processes in one group.

    Args:
        fn: a module-level (importable, picklable) function; its return value must be
            ``torch.save``-able.
        world_size: number of processes.
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (one GPU per process).
        threads_per_process: ``torch.set_num_threads`` in each worker (None: leave it).
        timeout_s: the process group's collective timeout and the overall deadline; past
            it the workers are terminated and ``TimeoutError`` is raised.
        start_method: ``"spawn"`` (fresh interpreters, works everywhere) or
            ``"forkserver"`` (Unix: workers fork from a clean server process that has
            already imported torch and bbpm, so repeated launches start much faster).

    Returns: the workers' return values, in rank order. If a worker raises, a
    ``RuntimeError`` carrying every failed rank's traceback (earliest first) is raised here.
    """
    if start_method == "forkserver":
        # The server imports these once; every worker forked from it skips the imports.
        multiprocessing.set_forkserver_preload(["torch", "torch.distributed", "bbpm.distributed"])
    with tempfile.TemporaryDirectory(prefix="bbpm_spawn_") as workdir:
        context = mp.start_processes(
            _entry,
            args=(fn, world_size, workdir, backend, threads_per_process, timeout_s, tuple(args)),
            nprocs=world_size,
            join=False,
            start_method=start_method,
        )
        deadline = time.monotonic() + timeout_s
        try:
            while not context.join(timeout=0.2):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"spawn_local: workers did not finish within {timeout_s} s")
        except ProcessException as exc:
            raise RuntimeError(_failure_report(workdir, world_size)) from exc
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.terminate()
                    process.join(5)
        return [
            torch.load(Path(workdir) / f"result_{r}.pt", weights_only=False)
            for r in range(world_size)
        ]
