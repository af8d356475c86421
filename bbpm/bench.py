"""Micro-benchmarks of BBPM's read and write: the fast paths against the canonical ones.

``python -m bbpm.bench`` measures, in one process and on the same inputs, the canonical
read/write of :mod:`bbpm.memory.kernels.torch_ops` against the paths
:func:`bbpm.memory.kernels.read` / :func:`~bbpm.memory.kernels.write` pick, and prints the
speedups and the largest relative difference; then the cost of the memory's thread lock
(:func:`lock_cost`: the locked ``BBPMMemoryFloat.write`` against the unlocked method). The helpers here are also used by the
``bench*`` notebooks.

Timing: calls of the compared paths are interleaved round-robin (so a burst of load from
another process hits all of them alike), after warm-up calls; we report medians of wall
time, and the ratio of CPU-time medians beside it. By default the comparison runs with
torch's default thread count and then with one thread: on a machine whose cores are shared
with other processes, every parallel region waits for its slowest thread, and ops made of
many short regions suffer far more than the same work on one thread.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from bbpm.hashing import GlobalAffineHash
from bbpm.hashing.base import HashFunction
from bbpm.memory import kernels
from bbpm.memory.base import EPS, counts_dtype_for
from bbpm.utils.device import zeros_table

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
#: The CPU performance targets at D=1M, d=64, K=32, H=1, B=8192, fp32.
READ_TARGET = 10.0
WRITE_TARGET = 3.0
TARGET_SETTING = {
    "D": 1_000_000,
    "d": 64,
    "K": 32,
    "H": 1,
    "B": 8192,
    "dtype": "float32",
    "device": "cpu",
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_times(
    ops: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    device: torch.device | str = "cpu",
    cpu_times: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Wall-clock seconds per call of each op, ``repeats`` samples each, measured
    round-robin after ``warmup`` untimed rounds. Synchronises CUDA around every call.

    If ``cpu_times`` is given it is filled with the process CPU seconds of the same calls
    (all threads together): with one thread, a measure of the work that other processes on
    the machine barely disturb."""
    device = torch.device(device)
    times: dict[str, list[float]] = {name: [] for name in ops}
    if cpu_times is not None:
        cpu_times.update({name: [] for name in ops})
    for round_ in range(warmup + repeats):
        for name, op in ops.items():
            _sync(device)
            cpu_start, start = time.process_time(), time.perf_counter()
            op()
            _sync(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
                if cpu_times is not None:
                    cpu_times[name].append(time.process_time() - cpu_start)
    return times


def summarize_times(samples: Sequence[float]) -> dict[str, float]:
    """Median, min and max of a list of seconds."""
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples)}


#: Size assumed for the last-level cache where the system does not say (sizes the copy buffer).
FALLBACK_CACHE_BYTES = 32 * 2**20
#: The copy buffers are at least this many times the last-level cache, so the copy streams
#: from DRAM rather than from cache.
COPY_CACHE_MULTIPLE = 8


def _parse_cache_size(text: str) -> int:
    """``"8192K"`` / ``"32M"`` / ``"524288"`` (sysfs cache sizes) -> bytes."""
    text = text.strip().upper()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    return int(text[:-1] if scale > 1 else text) * scale


def last_level_cache_bytes(device: torch.device | str = "cpu") -> int | None:
    """Size in bytes of the largest (last-level) data cache: on CPU the highest-level
    data/unified cache of cpu0 in Linux sysfs, on CUDA the device's L2; None where unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).L2_cache_size) or None
    if device.type != "cpu":
        return None
    best_level, best_size = 0, None
    try:
        for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level = int((index / "level").read_text())
            if level >= best_level:
                best_level, best_size = level, _parse_cache_size((index / "size").read_text())
    except (OSError, ValueError):
        return None
    return best_size


def _with_threads(threads: int | None, fn: Callable[[], Any]) -> Any:
    """``fn()`` with ``torch.set_num_threads(threads)`` (restored after); as is for None."""
    if threads is None:
        return fn()
    if threads <= 0:
        raise ValueError(f"threads must be a positive count or None, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def copy_bandwidth(
    n_bytes: int = 256 * 2**20,
    repeats: int = 5,
    device: torch.device | str = "cpu",
    threads: int | None = None,
    cache_multiple: float = COPY_CACHE_MULTIPLE,
) -> dict[str, Any]:
    """The machine's copy bandwidth in GB/s (1e9 bytes/s), counting bytes read + written:
    the one copy roof every benchmark here compares its ops with.

    The buffer holds ``max(n_bytes, cache_multiple x last-level cache)`` bytes
    (:func:`last_level_cache_bytes`, :data:`FALLBACK_CACHE_BYTES` where unknown), so the copy
    streams from DRAM, not from cache. ``threads``: torch threads during the measurement
    (default: the current setting), to match the ops it is compared with; restored after.

    ``copy_gbps``: median of ``dst.copy_(src)`` into a preallocated tensor (the roof for the
    ops here; ``copy_gbps_best``: the fastest call). ``clone_gbps``: ``src.clone()``, which
    also pays for fresh pages (first touch). Also returned: the buffer size ``n_bytes``,
    ``llc_bytes`` (None where unknown) and ``threads``."""
    device = torch.device(device)
    llc = last_level_cache_bytes(device)
    size = max(int(n_bytes), int(cache_multiple * (llc or FALLBACK_CACHE_BYTES)))

    def measure() -> dict[str, Any]:
        src = torch.ones(size // 4, dtype=torch.float32, device=device)
        dst = torch.empty_like(src)
        times = interleaved_times(
            {"copy": lambda: dst.copy_(src), "clone": lambda: src.clone()}, repeats, 1, device
        )
        moved = 2 * src.numel() * src.element_size()
        return {
            "n_bytes": src.numel() * src.element_size(),
            "llc_bytes": llc,
            "threads": torch.get_num_threads() if device.type == "cpu" else None,
            "copy_gbps": moved / statistics.median(times["copy"]) / 1e9,
            "copy_gbps_best": moved / min(times["copy"]) / 1e9,
            "clone_gbps": moved / statistics.median(times["clone"]) / 1e9,
        }

    return _with_threads(threads if device.type == "cpu" else None, measure)


def matmul_gflops(
    n: int = 1024,
    repeats: int = 3,
    device: torch.device | str = "cpu",
    threads: int | None = None,
) -> float:
    """float32 ``n x n`` matmul throughput in GFLOP/s (the compute roof of the roofline),
    median of ``repeats`` calls, with ``threads`` torch threads (default: the current
    setting)."""
    device = torch.device(device)

    def measure() -> float:
        a = torch.randn(n, n, device=device)
        times = interleaved_times({"mm": lambda: a @ a}, repeats, 1, device)["mm"]
        return 2 * n**3 / statistics.median(times) / 1e9

    return _with_threads(threads if device.type == "cpu" else None, measure)


def beyond_copy_reason(
    working_set_bytes: int, llc_bytes: int | None, repeated_share: float | None = None
) -> str:
    """Why an op's effective bandwidth (:func:`traffic_bytes` per second) can exceed the copy
    roof, for the sentence that reports it: the randomly accessed data (``working_set_bytes``:
    table and counts) fit in the last-level cache, so rows come from cache rather than DRAM;
    or, where they do not fit, the counted bytes over-estimate the DRAM traffic
    (``repeated_share``: fraction of slot entries that repeat a row already touched in the
    same call, counted again but likely served from cache)."""
    mib = 2**20
    if llc_bytes is not None and working_set_bytes <= llc_bytes:
        return (
            f"its table and counts ({working_set_bytes / mib:.1f} MiB) fit in the "
            f"{llc_bytes / mib:.0f} MiB last-level cache, so its rows come from cache, not DRAM, "
            "while the copy roof streams a buffer far larger than the cache"
        )
    cache = f"the {llc_bytes / mib:.0f} MiB" if llc_bytes is not None else "the (unknown-size)"
    repeated = (
        f"; {repeated_share:.1%} of the slot entries repeat a row touched earlier in the same call"
        if repeated_share is not None
        else ""
    )
    return (
        f"its table and counts ({working_set_bytes / mib:.1f} MiB) exceed {cache} last-level "
        "cache, so the counted bytes (every slot's row and count as if moved from DRAM) must "
        f"over-estimate the traffic: rows or cache lines reused within the call{repeated}, or "
        "the part of the table that stays cached, are counted but not fetched again"
    )


def format_ms(seconds: float, digits: int = 3) -> str:
    """Milliseconds with ``digits`` significant digits and no exponent (``0.283``, ``12.4``,
    ``108``), so that ratios of printed times match the printed ratios."""
    value = seconds * 1e3
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def speed_words(ratio: float, than: str = "canonical") -> str:
    """``ratio`` = reference time / path time, in words that read right either way:
    ``"2.71x faster than canonical"``, ``"3.33x slower than canonical (0.30x its speed)"``,
    or ``"as fast as canonical (1.00x)"`` when the ratio rounds to 1.00."""
    if round(ratio, 2) == 1.0:
        return f"as fast as {than} ({ratio:.2f}x)"
    if ratio >= 1:
        return f"{ratio:.2f}x faster than {than}"
    return f"{1 / ratio:.2f}x slower than {than} ({ratio:.2f}x its speed)"


def traffic_bytes(op: str, B: int, M: int, d: int, elem_bytes: int, count_bytes: int = 4) -> int:
    """Minimum bytes a read or write must move (the numerator of effective bandwidth).

    read: gather ``B*M`` rows of ``d`` elements and their counts, the ``[B, M]`` int64
    slot ids, write the ``[B, d]`` float32 result. write: read and write back ``B*M`` rows
    and counts, the slot ids, read the ``[B, d]`` values."""
    slots = B * M
    if op == "read":
        return slots * (d * elem_bytes + count_bytes + 8) + B * d * 4
    if op == "write":
        return slots * (2 * d * elem_bytes + 2 * count_bytes + 8) + B * d * elem_bytes
    raise ValueError(f"op must be 'read' or 'write', got {op!r}")


def flops(op: str, B: int, M: int, d: int) -> int:
    """Floating-point operations: read divides and adds each gathered element (2 per
    element); write adds each element once."""
    if op == "read":
        return 2 * B * M * d
    if op == "write":
        return B * M * d
    raise ValueError(f"op must be 'read' or 'write', got {op!r}")


def load_average() -> float | None:
    """The machine's 1-minute load average (runnable processes; compare with the core
    count to see how busy the machine was during a timing), or None where unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def busy_machine_note(load: float | None, threads: int) -> str:
    """A warning to print beside timings taken with more than one torch thread while the
    1-minute load average exceeded the core count (more runnable threads than cores; the
    benchmark itself accounts for up to ``threads`` of the load); empty otherwise."""
    cores = os.cpu_count() or 1
    if load is None or threads <= 1 or load <= cores:
        return ""
    return (
        f"CAUTION: load average {load} on {cores} cores during this run. With {threads} torch threads every "
        "parallel region waits for its slowest thread, and OpenMP's spinning waits compete with the other "
        "processes for the cores: every op slows down, and ops made of many short regions (the column-wise "
        "write, the blocked fp16 read, the hash) far more than the canonical ops. Rerun on an idle machine, with "
        "threads=1, or with OMP_WAIT_POLICY=PASSIVE to measure the kernels themselves."
    )


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    """``max |result - reference| / max |reference|`` in float64 (0 for empty tensors)."""
    if reference.numel() == 0:
        return 0.0
    scale = float(reference.double().abs().max())
    diff = float((result.double() - reference.double()).abs().max())
    return diff / scale if scale > 0 else diff


def make_inputs(
    B: int,
    d: int,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The benchmark's inputs: ``keys [B]`` int64 uniform in ``[0, 2**62)`` and
    ``values [B, d]`` standard normal in ``dtype``, from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    keys = torch.randint(0, 2**62, (B,), generator=gen)
    values = torch.randn(B, d, generator=gen)
    return keys.to(device), values.to(device=device, dtype=dtype)


def compare_paths(
    D: int = 1_000_000,
    d: int = 64,
    K: int = 32,
    H: int = 1,
    B: int = 8192,
    dtype: torch.dtype = torch.float32,
    repeats: int = 5,
    warmup: int = 1,
    hash_fn: HashFunction | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Time the canonical and the fast (``backend="auto"``) read and write on the same
    inputs, and the hash, and measure how far the fast results are from the canonical ones.

    Inputs: :func:`make_inputs`. Memory state: the B items are written once before the
    read timings, so counts are realistic (load ``B*K*H/D``). Write timings keep
    adding into that table; the values do not change the cost.

    Returns a flat dict: ``{read,write,hash}_{canonical,fast}`` time stats in seconds,
    ``read_speedup`` / ``write_speedup`` (ratio of wall-clock medians), ``*_cpu_speedup``
    (ratio of CPU-time medians), ``*_e2e_speedup`` (hash time added to both sides), ``read_rel_error`` / ``write_rel_error`` / ``counts_equal`` and
    the backends used.
    """
    device = torch.device(device)
    hash_fn = hash_fn if hash_fn is not None else GlobalAffineHash(D, seed=seed)
    keys, values = make_inputs(B, d, dtype, seed, device)
    idx = hash_fn.indices(keys, K, H)
    M = idx.shape[1]

    # Correctness on a fresh table: canonical and fast write from the same zero state. The
    # table is allocated like BBPMMemoryFloat's buffers (huge pages where Linux grants them).
    memory = zeros_table(D, d, dtype=dtype, device=device)
    counts = zeros_table(D, 1, dtype=counts_dtype_for(dtype), device=device)
    kernels.write(memory, counts, idx, values, backend="canonical")
    touched = idx.reshape(-1).unique()
    reference_rows, reference_counts = memory[touched].clone(), counts[touched].clone()
    memory.zero_()
    counts.zero_()
    kernels.write(memory, counts, idx, values, backend="auto")
    write_error = relative_error(memory[touched], reference_rows)
    counts_equal = bool(torch.equal(counts[touched], reference_counts))
    del reference_rows
    read_reference = kernels.read(memory, counts, idx, EPS, backend="canonical")
    read_error = relative_error(
        kernels.read(memory, counts, idx, EPS, backend="auto"), read_reference
    )
    del read_reference
    rule_error = relative_error(
        kernels.read(memory, counts, idx, EPS, backend="auto", rule="inverse_noise"),
        kernels.read(memory, counts, idx, EPS, backend="canonical", rule="inverse_noise"),
    )

    cpu_times: dict[str, list[float]] = {}
    with torch.no_grad():
        times = interleaved_times(
            {
                "hash": lambda: hash_fn.indices(keys, K, H),
                "read_canonical": lambda: kernels.read(
                    memory, counts, idx, EPS, backend="canonical"
                ),
                "read_fast": lambda: kernels.read(memory, counts, idx, EPS, backend="auto"),
                "read_inverse_noise": lambda: kernels.read(
                    memory, counts, idx, EPS, backend="auto", rule="inverse_noise"
                ),
                "write_canonical": lambda: kernels.write(
                    memory, counts, idx, values, backend="canonical"
                ),
                "write_fast": lambda: kernels.write(memory, counts, idx, values, backend="auto"),
            },
            repeats,
            warmup,
            device,
            cpu_times,
        )
    result: dict[str, Any] = {
        "D": D,
        "d": d,
        "K": K,
        "H": H,
        "B": B,
        "M": M,
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "load_average_1min": load_average(),
        "repeats": repeats,
        "hash": type(hash_fn).__name__,
        "read_backend": kernels.read_backend(memory, counts),
        "write_backend": kernels.write_backend(memory, counts, values),
        "read_weights": "C kernel" if kernels.native.supports_weights(memory, counts) else "torch",
    }
    for name, samples in times.items():
        for stat, value in summarize_times(samples).items():
            result[f"{name}_{stat}"] = value
    hash_s = result["hash_median_s"]
    for op in ("read", "write"):
        canonical, fast = result[f"{op}_canonical_median_s"], result[f"{op}_fast_median_s"]
        result[f"{op}_speedup"] = canonical / fast
        result[f"{op}_cpu_speedup"] = statistics.median(
            cpu_times[f"{op}_canonical"]
        ) / statistics.median(cpu_times[f"{op}_fast"])
        result[f"{op}_e2e_speedup"] = (canonical + hash_s) / (fast + hash_s)
        result[f"{op}_bytes"] = traffic_bytes(
            op, B, M, d, memory.element_size(), counts.element_size()
        )
        result[f"{op}_flops"] = flops(op, B, M, d)
        result[f"{op}_hash_share_fast"] = hash_s / (fast + hash_s)
    result["read_rel_error"] = read_error
    # the inverse-noise read (bbpm.memory.read_rules) on the same fast path, against the
    # debiased fast read: > 1 means slower
    result["read_inverse_noise_time_ratio"] = (
        result["read_inverse_noise_median_s"] / result["read_fast_median_s"]
    )
    result["read_inverse_noise_rel_error"] = rule_error
    result["write_rel_error"] = write_error
    result["counts_equal"] = counts_equal
    return result


def lock_cost(
    D: int = 1_000_000,
    d: int = 64,
    K: int = 32,
    H: int = 1,
    batch_sizes: Sequence[int] = (8192, 16),
    dtype: torch.dtype = torch.float32,
    repeats: int = 5,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Cost of the memory's thread lock: ``BBPMMemoryFloat.write`` (holds ``memory.lock``)
    against the same method unlocked (``BBPMMemoryFloat.write.__wrapped__``) on one memory and
    the same inputs, interleaved, per batch size; one thread calls both (no contention).
    Returns per batch size the medians and ``ratio`` = locked / unlocked median."""
    from bbpm.memory.float_superposition import BBPMMemoryFloat

    memory = BBPMMemoryFloat(D, d, K, H, GlobalAffineHash(D, seed=seed), dtype=dtype, device=device)
    unlocked = BBPMMemoryFloat.write.__wrapped__  # type: ignore[attr-defined]
    rows = []
    for B in batch_sizes:
        keys, values = make_inputs(B, d, dtype, seed, device)
        times = interleaved_times(
            {
                "locked": lambda k=keys, v=values: memory.write(k, v),
                "unlocked": lambda k=keys, v=values: unlocked(memory, k, v),
            },
            repeats,
            warmup=1,
            device=device,
        )
        locked_s = statistics.median(times["locked"])
        unlocked_s = statistics.median(times["unlocked"])
        rows.append(
            {
                "B": B,
                "locked_median_s": locked_s,
                "unlocked_median_s": unlocked_s,
                "ratio": locked_s / unlocked_s,
            }
        )
    return rows


def format_lock_report(rows: Sequence[dict[str, Any]], repeats: int) -> str:
    """The lock line ``python -m bbpm.bench`` prints."""
    parts = [
        f"B={row['B']}: {format_ms(row['locked_median_s'])} ms locked vs "
        f"{format_ms(row['unlocked_median_s'])} ms unlocked ({row['ratio']:.3f}x)"
        for row in rows
    ]
    return f"lock : BBPMMemoryFloat.write with its thread lock, median of {repeats}: " + "; ".join(
        parts
    )


def format_report(result: dict[str, Any]) -> str:
    """The lines ``python -m bbpm.bench`` prints."""
    on_target = all(result[key] == value for key, value in TARGET_SETTING.items())
    lines = [
        f"bbpm.bench: D={result['D']:,} d={result['d']} K={result['K']} H={result['H']} B={result['B']} "
        f"{result['dtype']} on {result['device']}, torch {torch.__version__}, {result['threads']} threads, "
        f"median of {result['repeats']} interleaved calls, load average {result['load_average_1min']} "
        f"on {os.cpu_count()} cores",
    ]
    for op, target, fast_name in (
        (
            "read",
            READ_TARGET,
            {
                "torch": f"embedding_bag, {result['read_weights']} weights",
                "triton": "triton",
            }[result["read_backend"]],
        ),
        (
            "write",
            WRITE_TARGET,
            {
                "torch": "index_add_ per column",
                "native": "C kernel",
                "triton": "triton",
            }[result["write_backend"]],
        ),
    ):
        speedup = result[f"{op}_speedup"]
        lines.append(
            f"{op:5s}: canonical {format_ms(result[f'{op}_canonical_median_s']):>7s} ms | fast ({fast_name}) "
            f"{format_ms(result[f'{op}_fast_median_s']):>7s} ms | speedup {speedup:5.2f}x "
            + (
                f"(target {target:.0f}x: {'met' if speedup >= target else 'NOT met'}) "
                if on_target
                else ""
            )
            + f"| "
            f"with hashing {result[f'{op}_e2e_speedup']:4.1f}x | CPU time {result[f'{op}_cpu_speedup']:4.1f}x | "
            f"max rel err {result[f'{op}_rel_error']:.1e}"
        )
    lines.append(
        f"read inverse_noise (same fast path, rule weights): {format_ms(result['read_inverse_noise_median_s']):>7s} ms "
        f"= {result['read_inverse_noise_time_ratio']:.2f}x the debiased fast read's time | max rel err vs its "
        f"canonical rule {result['read_inverse_noise_rel_error']:.1e}"
    )
    note = busy_machine_note(result["load_average_1min"], result["threads"])
    if note:
        lines.append(note)
    lines.append(
        f"hash : {format_ms(result['hash_median_s'])} ms per call ({result['hash']}): "
        f"{result['read_hash_share_fast']:.0%} of hash + fast read, {result['write_hash_share_fast']:.0%} of "
        f"hash + fast write; counts equal: {result['counts_equal']}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bbpm.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--D", type=int, default=1_000_000, help="slots (default 1,000,000)")
    parser.add_argument("--d", type=int, default=64, help="value dimension (default 64)")
    parser.add_argument("--K", type=int, default=32, help="slots per item per hash (default 32)")
    parser.add_argument("--H", type=int, default=1, help="hashes (default 1)")
    parser.add_argument("--B", type=int, default=8192, help="batch size (default 8192)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per path (default 5)")
    parser.add_argument(
        "--dtype", choices=sorted(DTYPES), default="float32", help="storage dtype (default float32)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="torch thread counts to run, e.g. --threads 1 2 (default: torch's default, "
        "then 1 when the default is larger)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("D", "d", "K", "H", "B", "repeats"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    default_threads = torch.get_num_threads()
    thread_counts = args.threads or ([default_threads, 1] if default_threads > 1 else [1])
    if any(n <= 0 for n in thread_counts):
        parser.error(f"--threads must be positive integers, got {thread_counts}")
    try:
        for n_threads in thread_counts:
            torch.set_num_threads(n_threads)
            result = compare_paths(
                D=args.D,
                d=args.d,
                K=args.K,
                H=args.H,
                B=args.B,
                dtype=DTYPES[args.dtype],
                repeats=args.repeats,
                device=args.device,
                seed=args.seed,
            )
            print(format_report(result))
            if n_threads == thread_counts[0]:
                lock_repeats = max(args.repeats, 21)
                rows = lock_cost(
                    D=args.D,
                    d=args.d,
                    K=args.K,
                    H=args.H,
                    batch_sizes=(args.B, 16),
                    dtype=DTYPES[args.dtype],
                    repeats=lock_repeats,
                    device=args.device,
                    seed=args.seed,
                )
                print(format_lock_report(rows, lock_repeats))
    finally:
        torch.set_num_threads(default_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
