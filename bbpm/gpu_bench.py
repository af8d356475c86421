"""The GPU benchmark of the Triton kernels: effective bandwidth against the device's copy
bandwidth, and the write against the plain ``index_add_`` path, in one process.

``python -m bbpm.gpu_bench --out record.json`` runs, for each table size D (default 1M,
4M and 16M rows), ``d`` = 64, ``K`` = 32, ``H`` = 1 and a batch of ``B`` = 65,536 keys
(the CUDA target setting):

* the device's copy bandwidth (``dst.copy_(src)`` of a 2 GiB buffer, bytes read + written);
* reads: the canonical gather-divide-mean, ``embedding_bag`` (the torch path), the Triton
  kernel with its default tiles, each ``(block_m, num_warps)`` of a small sweep (both
  without the bounds check), and ``kernels.read`` as the memory calls it (on CUDA the
  Triton kernel plus its bounds check); fp16 and bf16 storage at the first D;
* writes: the canonical ``repeat_interleave`` + ``index_add_`` (the plain path), the
  column-wise ``index_add_`` (the torch path), the Triton kernel (default and sweep) and
  ``kernels.write``;
* for every path its largest relative difference from the canonical result (writes: from
  the same starting table) and whether the counts are equal.

Times are CUDA-event times of 5 back-to-back calls (per call: divided by 5), interleaved
round-robin across the paths after warm-up calls; medians are reported. Effective bandwidth is :func:`bbpm.bench.traffic_bytes`
(the bytes an op must move at least) over the median time. The record (JSON) names the
device, the versions and the settings; ``book/gpu/`` keeps the records that the book's
performance chapter (bench03) draws. On a machine without CUDA, ``--device cpu`` runs the
same measurements for the torch paths (the Triton ones need CUDA), which is how the tests
exercise this module.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from bbpm import bench as cpu_bench
from bbpm.hashing import GlobalAffineHash
from bbpm.memory import kernels
from bbpm.memory.base import EPS
from bbpm.memory.kernels import torch_ops, triton_ops

#: The CUDA performance targets (stated for an H100).
READ_TARGET_GBPS = 1800.0
READ_TARGET_COPY_FRACTION = 0.65
WRITE_TARGET_SPEEDUP = 2.0
DEFAULT_D = (1_000_000, 4_000_000, 16_000_000)
#: (block_m, num_warps) tile configurations timed for each Triton kernel.
SWEEP = tuple((m, w) for m in (8, 16, 32) for w in (2, 4, 8))
RECORD_VERSION = 1


def event_times(
    ops: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int,
    device: torch.device,
    inner: int = 1,
) -> dict[str, list[float]]:
    """Seconds per call of each op, ``repeats`` samples each, round-robin after ``warmup``
    rounds. On CUDA a sample is the CUDA-event time of ``inner`` back-to-back calls divided
    by ``inner`` (the queue fills after the first launch, so the host's launch cost hides
    behind the GPU's work as it does in a real loop; no host sync inside a round). Else
    :func:`bbpm.bench.interleaved_times` (one call per sample)."""
    if device.type != "cuda":
        return cpu_bench.interleaved_times(ops, repeats, warmup, device)
    times: dict[str, list[float]] = {name: [] for name in ops}
    for round_ in range(warmup + repeats):
        events = []
        for name, op in ops.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                op()
            end.record()
            events.append((name, start, end))
        torch.cuda.synchronize(device)
        if round_ >= warmup:
            for name, start, end in events:
                times[name].append(start.elapsed_time(end) / 1e3 / inner)
    return times


def device_info(device: torch.device) -> dict[str, Any]:
    """What ran: device name, versions, host, date and the git commit (where known)."""
    info: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "triton": getattr(triton_ops.triton, "__version__", None),
        "python": platform.python_version(),
        "host_cpus": torch.get_num_threads(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            device_name=props.name,
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
        )
    else:
        info["device_name"] = platform.processor() or platform.machine()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
        info["commit"] = commit.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    return info


def _read_paths(device: torch.device, sweep: Sequence[tuple[int, int]]) -> dict[str, Callable]:
    paths: dict[str, Callable] = {
        "canonical": lambda m, c, i: torch_ops.read_gather_mean(m, c, i, EPS),
        "torch": lambda m, c, i: torch_ops.read_embedding_bag(m, c, i, EPS),
    }
    if device.type == "cuda" and triton_ops.HAS_TRITON:
        paths["triton"] = lambda m, c, i: triton_ops.read_fused(m, c, i, EPS, check_bounds=False)
        for block_m, warps in sweep:
            paths[f"triton m{block_m} w{warps}"] = lambda m, c, i, bm=block_m, w=warps: (
                triton_ops.read_fused(m, c, i, EPS, block_m=bm, num_warps=w, check_bounds=False)
            )
    paths["kernels.read"] = lambda m, c, i: kernels.read(m, c, i, EPS)  # what the memory runs
    return paths


def _write_paths(device: torch.device, sweep: Sequence[tuple[int, int]]) -> dict[str, Callable]:
    paths: dict[str, Callable] = {
        "canonical": torch_ops.write_index_add,
        "torch": torch_ops.write_columns,
    }
    if device.type == "cuda" and triton_ops.HAS_TRITON:
        paths["triton"] = lambda m, c, i, v: triton_ops.write_fused(m, c, i, v, check_bounds=False)
        for block_m, warps in sweep:
            paths[f"triton m{block_m} w{warps}"] = lambda m, c, i, v, bm=block_m, w=warps: (
                triton_ops.write_fused(m, c, i, v, block_m=bm, num_warps=w, check_bounds=False)
            )
    paths["kernels.write"] = kernels.write
    return paths


def _row(op: str, path: str, D: int, B: int, M: int, d: int, dtype: torch.dtype, times, error):
    elem = torch.empty((), dtype=dtype).element_size()
    median = statistics.median(times)
    moved = cpu_bench.traffic_bytes(op, B, M, d, elem, 4)
    return {
        "op": op,
        "path": path,
        "D": D,
        "B": B,
        "M": M,
        "d": d,
        "dtype": str(dtype).removeprefix("torch."),
        "median_s": median,
        "min_s": min(times),
        "bytes": moved,
        "gbps": moved / median / 1e9,
        "rel_error": error[0],
        "counts_equal": error[1],
    }


def bench_table(
    D: int,
    d: int,
    K: int,
    B: int,
    device: torch.device,
    repeats: int,
    warmup: int,
    sweep: Sequence[tuple[int, int]],
    read_dtypes: Sequence[torch.dtype] = (torch.float32,),
    seed: int = 0,
    inner: int = 5,
) -> list[dict[str, Any]]:
    """Rows of timings for one table size: every read path for each storage dtype in
    ``read_dtypes``, every write path in float32."""
    keys, values = cpu_bench.make_inputs(B, d, torch.float32, seed, device)
    idx = GlobalAffineHash(D, seed=seed).indices(keys, K, 1)
    M = idx.shape[1]
    rows: list[dict[str, Any]] = []
    with torch.no_grad():
        memory = torch.zeros(D, d, device=device)
        counts = torch.zeros(D, 1, device=device)
        torch_ops.write_index_add(memory, counts, idx, values)
        for dtype in read_dtypes:
            table = memory.to(dtype)
            reference = torch_ops.read_gather_mean(table, counts, idx, EPS)
            paths = _read_paths(device, sweep)
            errors = {
                name: (cpu_bench.relative_error(fn(table, counts, idx), reference), True)
                for name, fn in paths.items()
            }
            del reference
            times = event_times(
                {name: (lambda fn=fn, t=table: fn(t, counts, idx)) for name, fn in paths.items()},
                repeats,
                warmup,
                device,
                inner,
            )
            rows += [_row("read", n, D, B, M, d, dtype, times[n], errors[n]) for n in paths]
            del table
        paths = _write_paths(device, sweep)
        ref_memory, ref_counts = memory.clone(), counts.clone()
        torch_ops.write_index_add(ref_memory, ref_counts, idx, values)
        errors = {}
        for name, fn in paths.items():
            test_memory, test_counts = memory.clone(), counts.clone()
            fn(test_memory, test_counts, idx, values)
            errors[name] = (
                cpu_bench.relative_error(test_memory, ref_memory),
                bool(torch.equal(test_counts, ref_counts)),
            )
            del test_memory, test_counts
        del ref_memory, ref_counts
        times = event_times(
            {name: (lambda fn=fn: fn(memory, counts, idx, values)) for name, fn in paths.items()},
            repeats,
            warmup,
            device,
            inner,
        )
        rows += [_row("write", n, D, B, M, d, torch.float32, times[n], errors[n]) for n in paths]
    return rows


def targets(record: dict[str, Any]) -> dict[str, Any]:
    """The performance targets checked on a record: per D, the Triton read's bandwidth (absolute
    and as a fraction of the copy bandwidth) and the Triton write's speedup over the
    canonical write, with the default tiles and with the best tiles of the sweep; ``None``
    entries where no Triton path ran. The ``*_met`` verdicts hold at every D with the
    default tiles (what ``kernels.read`` / ``write`` launch); ``*_met_best_tiles`` with the
    best ones (what changing the defaults would give)."""
    copy = record["copy"]["copy_gbps"]
    out: dict[str, Any] = {"per_D": [], "copy_gbps": copy}
    for D in sorted({r["D"] for r in record["rows"]}):  # the sizes measured so far
        reads = _rows(record, "read", "triton", D=D, prefix=True)
        writes = _rows(record, "write", "triton", D=D, prefix=True)
        canonical_write = _rows(record, "write", "canonical", D=D)[0]["median_s"]
        entry: dict[str, Any] = {"D": D, "read_gbps": None, "write_speedup": None}
        if reads:
            best = max(reads, key=lambda r: r["gbps"])
            entry.update(
                read_path=best["path"],
                read_gbps=best["gbps"],
                read_copy_fraction=best["gbps"] / copy,
                read_default_gbps=next(r["gbps"] for r in reads if r["path"] == "triton"),
            )
        if writes:
            best = min(writes, key=lambda r: r["median_s"])
            entry.update(
                write_path=best["path"],
                write_speedup=canonical_write / best["median_s"],
                write_default_speedup=canonical_write
                / next(r["median_s"] for r in writes if r["path"] == "triton"),
            )
        out["per_D"].append(entry)
    ran = [e for e in out["per_D"] if e["read_gbps"] is not None]
    out["triton_ran"] = bool(ran)
    if ran:  # verdicts on the default tiles (what kernels.read/write launch) and on the best
        for tiles, read_key, write_key in (
            ("", "read_default_gbps", "write_default_speedup"),
            ("_best_tiles", "read_gbps", "write_speedup"),
        ):
            out[f"read_gbps_met{tiles}"] = all(e[read_key] >= READ_TARGET_GBPS for e in ran)
            out[f"read_copy_fraction_met{tiles}"] = all(
                e[read_key] >= READ_TARGET_COPY_FRACTION * copy for e in ran
            )
            out[f"write_speedup_met{tiles}"] = all(
                e[write_key] >= WRITE_TARGET_SPEEDUP for e in ran
            )
    return out


def run(
    D_values: Sequence[int] = DEFAULT_D,
    d: int = 64,
    K: int = 32,
    B: int = 65536,
    device: str | torch.device = "cuda",
    repeats: int = 20,
    warmup: int = 3,
    copy_bytes: int = 2 * 2**30,
    sweep: Sequence[tuple[int, int]] = SWEEP,
    half_dtypes: bool = True,
    seed: int = 0,
    progress: bool = True,
    inner: int = 5,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """The whole benchmark; returns the record (see the module docstring). With
    ``checkpoint``, the record so far is written there (JSON) after each table size, so a
    run cut short still leaves what it measured."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device='cuda' but torch sees no CUDA device; pass device='cpu' (--device cpu) to "
            "run the torch paths on the CPU"
        )
    for name, value in (("d", d), ("K", K), ("B", B), ("repeats", repeats)):
        if value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if not D_values or min(D_values) <= 0:
        raise ValueError(f"D_values must be positive table sizes, got {list(D_values)}")
    record: dict[str, Any] = {
        "version": RECORD_VERSION,
        "info": device_info(device),
        "settings": {
            "D_values": list(D_values),
            "d": d,
            "K": K,
            "H": 1,
            "B": B,
            "repeats": repeats,
            "warmup": warmup,
            "sweep": [list(s) for s in sweep],
            "seed": seed,
            "inner_calls_per_sample": inner if device.type == "cuda" else 1,
        },
        "copy": cpu_bench.copy_bandwidth(copy_bytes, max(repeats // 2, 3), device),
        "rows": [],
    }
    say = print if progress else (lambda *a, **k: None)
    say(
        f"[gpu_bench] {record['info']['device_name']} ({device}): copy_ "
        f"{record['copy']['copy_gbps']:.0f} GB/s over {record['copy']['n_bytes'] / 2**20:.0f} MiB"
    )
    for i, D in enumerate(D_values):
        read_dtypes = [torch.float32]
        if half_dtypes and i == 0:
            read_dtypes += [torch.float16, torch.bfloat16]
        rows = bench_table(D, d, K, B, device, repeats, warmup, sweep, read_dtypes, seed, inner)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the tables of this D
        record["rows"] += rows
        if checkpoint is not None:
            save_record(dict(record, targets=targets(record), complete=False), checkpoint)
        for r in rows:
            if r["path"] in ("canonical", "torch", "triton", "kernels.read", "kernels.write"):
                say(
                    f"[gpu_bench] D={D:>10,} {r['op']:5s} {r['dtype']:8s} {r['path']:13s} "
                    f"{r['median_s'] * 1e3:8.3f} ms {r['gbps']:8.1f} GB/s  rel err {r['rel_error']:.1e}"
                )
    record["targets"] = targets(record)
    record["complete"] = True
    if checkpoint is not None:
        save_record(record, checkpoint)
    return record


def save_record(record: dict[str, Any], path: str | Path) -> Path:
    """Write ``record`` as JSON to ``path`` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def format_targets(record: dict[str, Any]) -> str:
    """Lines that state the targets and what the record measured against them."""
    t = record.get("targets") or targets(record)
    name = record["info"]["device_name"]
    lines = [
        f"{name}: copy_ bandwidth {t['copy_gbps']:.0f} GB/s (read + written), measured in the same run"
    ]
    if record.get("complete") is False:
        done = ", ".join(f"{e['D']:,}" for e in t["per_D"])
        lines.append(f"PARTIAL record: the run stopped after D = {done}")
    if not t["triton_ran"]:
        lines.append("no Triton path ran in this record (needs CUDA and triton)")
        return "\n".join(lines)
    for e in t["per_D"]:
        lines.append(
            f"D={e['D']:>10,}: best triton read {e['read_gbps']:.0f} GB/s = {e['read_copy_fraction']:.0%} of copy "
            f"({e['read_path']}; default tiles {e['read_default_gbps']:.0f} GB/s) | best triton write "
            f"{e['write_speedup']:.2f}x the canonical index_add_ ({e['write_path']}; default {e['write_default_speedup']:.2f}x)"
        )

    def verdict(flag: bool) -> str:
        return "met" if flag else "NOT met"

    for tiles, label in (("", "default tiles"), ("_best_tiles", "best tiles of the sweep")):
        lines.append(
            f"targets (stated for an H100), {label}: "
            f"read >= {READ_TARGET_GBPS:.0f} GB/s {verdict(t['read_gbps_met' + tiles])}; "
            f"read >= {READ_TARGET_COPY_FRACTION:.0%} of copy {verdict(t['read_copy_fraction_met' + tiles])}; "
            f"write >= {WRITE_TARGET_SPEEDUP:.0f}x index_add_ {verdict(t['write_speedup_met' + tiles])} (at every D)"
        )
    return "\n".join(lines)


def load_records(folder: str | Path) -> list[dict[str, Any]]:
    """The records (``*.json``) in ``folder``, oldest first; [] when there are none."""
    folder = Path(folder)
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return sorted(records, key=lambda r: r["info"]["date_utc"])


def _rows(
    record: dict[str, Any],
    op: str,
    path: str,
    dtype: str = "float32",
    D: int | None = None,
    prefix: bool = False,
) -> list[dict]:
    """The record's rows of ``op``/``dtype`` whose path is ``path`` (or starts with it,
    ``prefix=True``: a path and its sweep variants), at table size ``D`` or all, by D."""
    return sorted(
        (
            r
            for r in record["rows"]
            if r["op"] == op
            and r["dtype"] == dtype
            and (r["path"].startswith(path) if prefix else r["path"] == path)
            and (D is None or r["D"] == D)
        ),
        key=lambda r: r["D"],
    )


def summary_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (op, dtype, path) without the sweep's variants: median ms, GB/s and
    share of copy at each D, speedup over that op's canonical path, largest rel. error."""
    copy = record["copy"]["copy_gbps"]
    out = []
    keys = []
    for r in record["rows"]:
        key = (r["op"], r["dtype"], r["path"])
        if key not in keys and not r["path"].startswith("triton m"):
            keys.append(key)
    for op, dtype, path in keys:
        rows = _rows(record, op, path, dtype)
        canonical = {r["D"]: r["median_s"] for r in _rows(record, op, "canonical", dtype)}
        for r in rows:
            out.append(
                {
                    "op": op,
                    "dtype": dtype,
                    "path": path,
                    "D": r["D"],
                    "ms": r["median_s"] * 1e3,
                    "gbps": r["gbps"],
                    "copy_share": r["gbps"] / copy,
                    "speedup_vs_canonical": canonical[r["D"]] / r["median_s"],
                    "rel_error": r["rel_error"],
                    "counts_equal": r["counts_equal"],
                }
            )
    return out


def plot_record(record: dict[str, Any]):
    """Figure: read effective bandwidth vs D (left) against the copy bandwidth and the
    targets, write speedup over the canonical write vs D (right). Returns the figure."""
    import matplotlib.pyplot as plt

    t = record.get("targets") or targets(record)
    copy = t["copy_gbps"]
    fig, (ax_r, ax_w) = plt.subplots(1, 2, figsize=(11, 4.2))

    def plot_best(ax, key: str) -> None:
        best = [e for e in t["per_D"] if e[key] is not None]
        if best:
            xs, ys = [e["D"] for e in best], [e[key] for e in best]
            ax.plot(xs, ys, "*-", ms=10, label="triton, best tiles of the sweep")

    styles = {"canonical": "s:", "torch": "o--", "triton": "^-", "kernels.read": "v-"}
    for path, style in styles.items():
        rows = _rows(record, "read", path)
        if rows:
            ax_r.plot([r["D"] for r in rows], [r["gbps"] for r in rows], style, label=path)
    plot_best(ax_r, "read_gbps")
    ax_r.axhline(copy, color="k", label=f"copy_ {copy:.0f} GB/s")
    ax_r.axhline(
        READ_TARGET_COPY_FRACTION * copy,
        color="k",
        ls="--",
        label=f"{READ_TARGET_COPY_FRACTION:.0%} of copy (target)",
    )
    ax_r.axhline(
        READ_TARGET_GBPS, color="gray", ls=":", label=f"{READ_TARGET_GBPS:.0f} GB/s (H100 target)"
    )
    ax_r.set_xscale("log")
    ax_r.set_yscale("log")
    ax_r.set_xlabel("table rows D")
    ax_r.set_ylabel("effective bandwidth (GB/s)")
    ax_r.set_title(f"read, float32, B={record['settings']['B']:,}, K={record['settings']['K']}")
    ax_r.legend(fontsize=7)
    ax_r.grid(True, which="both", alpha=0.3)
    for path, style in {"torch": "o--", "triton": "^-", "kernels.write": "v-"}.items():
        rows = _rows(record, "write", path)
        canonical = {r["D"]: r["median_s"] for r in _rows(record, "write", "canonical")}
        if rows:
            ax_w.plot(
                [r["D"] for r in rows],
                [canonical[r["D"]] / r["median_s"] for r in rows],
                style,
                label=path,
            )
    plot_best(ax_w, "write_speedup")
    ax_w.axhline(1.0, color="k", lw=0.8)
    ax_w.axhline(
        WRITE_TARGET_SPEEDUP, color="k", ls="--", label=f"{WRITE_TARGET_SPEEDUP:.0f}x (target)"
    )
    ax_w.set_xscale("log")
    ax_w.set_xlabel("table rows D")
    ax_w.set_ylabel("speedup over repeat + index_add_")
    ax_w.set_title("write, float32")
    ax_w.legend(fontsize=7)
    ax_w.grid(True, which="both", alpha=0.3)
    info = record["info"]
    fig.suptitle(
        f"{info['device_name']} ({info['date_utc']} UTC, torch {info['torch']}, triton {info['triton']})",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bbpm.gpu_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--D", type=int, nargs="+", default=list(DEFAULT_D), help="table sizes")
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--K", type=int, default=32)
    parser.add_argument("--B", type=int, default=65536)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--copy-mib", type=int, default=2048, help="copy-bandwidth buffer (MiB)")
    parser.add_argument("--no-sweep", action="store_true", help="only the default Triton tiles")
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--out", type=Path, default=None, help="write the record (JSON) here, after each D"
    )
    args = parser.parse_args(argv)
    try:
        record = run(
            D_values=args.D,
            d=args.d,
            K=args.K,
            B=args.B,
            device=args.device,
            repeats=args.repeats,
            copy_bytes=args.copy_mib * 2**20,
            sweep=() if args.no_sweep else SWEEP,
            checkpoint=args.out,
        )
    except (RuntimeError, ValueError) as err:
        parser.error(str(err))
    print(format_targets(record))
    if args.out is not None:
        print(f"[gpu_bench] record written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
