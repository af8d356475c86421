"""The kernels benchmark (notebooks/bench03_kernels.py): every read and write path timed on the
same inputs, the roofs they are compared with, the roofline statements drawn from the rows, the
gradient check through the fused read, and the Triton compile reports.

A timed path is a row ``{device, path, op, dtype, pages, library_write, threads, B, <time
statistics>, bytes, flops, effective_gbps, gflops, intensity_flop_per_byte, table_bytes,
repeated_share[, rel_error_vs_canonical, counts_equal]}``; ``roofs`` is ``{device: {copy_gbps,
clone_gbps, gflops, llc_bytes, n_bytes, ..., by_threads: {"<threads>": same}}}`` (CPU only
has ``by_threads``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bbpm import bench
from bbpm.hashing import GlobalAffineHash, diagnostics
from bbpm.memory import kernels
from bbpm.memory.base import EPS
from bbpm.memory.kernels import native, torch_ops, triton_ops
from bbpm.utils.device import zeros_table
from bbpm.utils.progress import progress


def measure_roofs(
    threads_values: Sequence[int], copy_mbytes: int, repeats: int, matmul_n: int, cuda: bool
) -> dict[str, dict]:
    """Copy bandwidth and matmul peak at every thread count an op runs with (torch's default,
    one thread, and ``threads_values``; 0 = the default), and on CUDA when ``cuda``."""
    default_threads = torch.get_num_threads()
    roof_threads = sorted(
        {default_threads, 1} | {t if t > 0 else default_threads for t in threads_values}
    )
    by_threads = {
        str(t): {
            **bench.copy_bandwidth(copy_mbytes * 2**20, repeats, threads=t),
            "gflops": bench.matmul_gflops(matmul_n, 3, threads=t),
        }
        for t in roof_threads
    }
    roofs = {"cpu": {**by_threads[str(default_threads)], "by_threads": by_threads}}
    if cuda:
        roofs["cuda"] = {
            **bench.copy_bandwidth(copy_mbytes * 2**20, repeats, "cuda"),
            "gflops": bench.matmul_gflops(4 * matmul_n, 3, "cuda"),
        }
    return roofs


def roof_lines(roofs: dict[str, dict]) -> list[str]:
    """One line per device and thread count: copy, clone and matmul roofs, buffer and cache size."""
    lines = []
    for device, roof in roofs.items():
        for t, r in roof.get("by_threads", {"-": roof}).items():
            llc = r["llc_bytes"]
            lines.append(
                f"{device}"
                + (f", {t} thread(s)" if t != "-" else "")
                + f": copy_ {r['copy_gbps']:.1f} GB/s (fastest call {r['copy_gbps_best']:.1f}), "
                f"clone {r['clone_gbps']:.1f} GB/s, matmul {r['gflops']:.0f} GFLOP/s; copy buffers "
                f"of {r['n_bytes'] / 2**20:.0f} MiB, last-level cache "
                + (f"{llc / 2**20:.0f} MiB" if llc else "size unknown")
            )
    return lines


def write_scatter_add(m, c, i, v):
    """``scatter_add_`` of the values repeated K*H times, over the slot ids expanded to
    ``[B*K*H, d]`` (torch's CPU scatter has a path for such expanded indices)."""
    flat = i.reshape(-1)
    m.scatter_add_(0, flat[:, None].expand(-1, m.shape[1]), v.repeat_interleave(i.shape[1], dim=0))
    torch_ops.add_counts(c, i)


def write_index_put(m, c, i, v):
    """``index_put_(accumulate=True)`` of the ``[B, d]`` values broadcast over the slots."""
    m.index_put_((i,), v[:, None, :].expand(-1, i.shape[1], -1), accumulate=True)
    torch_ops.add_counts(c, i)


def write_sparse_addmm(m, c, i, v):
    """``memory += S @ values`` with S the sparse COO ``[D, B]`` matrix holding a 1 at
    (slot, item) for every slot entry (duplicates add up), built in every call."""
    B_, M_ = i.shape
    items = torch.arange(B_, device=i.device).repeat_interleave(M_)
    S = torch.sparse_coo_tensor(
        torch.stack([i.reshape(-1), items]),
        torch.ones(B_ * M_, dtype=v.dtype, device=v.device),
        (m.shape[0], B_),
        check_invariants=False,
    )
    m.addmm_(S, v)
    torch_ops.add_counts(c, i)


def _path(op, fn, dtype=torch.float32, pages="huge", threads=None, library=False) -> dict:
    return dict(op=op, fn=fn, dtype=dtype, pages=pages, threads=threads, library=library)


def _read(fn: Callable) -> Callable:
    """A read ``fn(memory, counts, idx)`` as a path function ``(memory, counts, idx, values)``."""
    return lambda m, c, i, v: fn(m, c, i)


def path_table(device: str) -> dict[str, dict]:
    """name -> {op, dtype (storage), fn(memory, counts, idx, values), pages ("huge" or "4k"),
    threads (None: torch's default), library (a write formulation kernels.write does not use)}."""
    auto_read = _read(lambda m, c, i: kernels.read(m, c, i, backend="torch"))
    fp16 = torch.float16
    paths = {
        "read canonical": _path("read", _read(torch_ops.read_gather_mean)),
        "read embedding_bag": _path("read", _read(torch_ops.read_embedding_bag)),
        "read embedding_bag (auto weights)": _path("read", auto_read),
        "read canonical fp16": _path("read", _read(torch_ops.read_gather_mean), fp16),
        "read chunked fp16": _path("read", _read(torch_ops.read_chunked), fp16),
        "write canonical": _path("write", torch_ops.write_index_add),
        "write columns (default)": _path("write", torch_ops.write_columns, library=True),
    }
    for name, group_rows in (("1 per call", 1), ("32k rows per call", 32768)):
        paths[f"write columns ({name})"] = _path(
            "write",
            lambda m, c, i, v, g=group_rows: torch_ops.write_columns(m, c, i, v, group_rows=g),
            library=True,
        )
    paths["write scatter_add_"] = _path("write", write_scatter_add, library=True)
    paths["write index_put_ (accumulate)"] = _path("write", write_index_put, library=True)
    paths["write sparse addmm_"] = _path("write", write_sparse_addmm, library=True)
    if device == "cpu" and native.available():
        one_thread = lambda m, c, i, v: native.write(m, c, i, v, threads=1)  # noqa: E731
        paths["write C kernel"] = _path("write", native.write)
        paths["write C kernel (1 thread)"] = _path("write", one_thread, threads=1)
        paths["read embedding_bag (auto weights), 4 KiB pages"] = _path(
            "read", auto_read, pages="4k"
        )
        paths["write C kernel, 4 KiB pages"] = _path("write", native.write, pages="4k")
    if device == "cuda" and kernels.HAS_TRITON:
        fused = _read(lambda m, c, i: triton_ops.read_fused(m, c, i, EPS))
        paths["read triton"] = _path("read", fused)
        paths["read triton fp16"] = _path("read", fused, fp16)
        paths["write triton"] = _path("write", triton_ops.write_fused)
    return paths


def check_writes(paths: dict, memory, counts, idx, values) -> dict[str, dict]:
    """Run every write path once on the same zeroed rows of the check table and compare the
    rows and counts it leaves with the canonical write's: {name: {rel_error, counts_equal}}."""
    touched = idx.reshape(-1).unique()
    out, reference = {}, None
    for name in ["write canonical"] + [n for n, p in paths.items() if p["op"] == "write"]:
        memory[touched], counts[touched] = 0, 0
        paths[name]["fn"](memory, counts, idx, values)
        rows, row_counts = memory[touched].clone(), counts[touched].clone()
        if reference is None:
            reference = rows, row_counts
            continue
        out[name] = {
            "rel_error_vs_canonical": bench.relative_error(rows, reference[0]),
            "counts_equal": bool(torch.equal(row_counts, reference[1])),
        }
    return out


def _tables(device: str, D: int, d: int, idx, values32) -> dict[tuple, tuple]:
    """Tables as ``BBPMMemoryFloat`` allocates them (``zeros_table``: huge pages where Linux
    grants them) in float32 and float16, plus on CPU a float32 table on ordinary 4 KiB pages;
    each filled by a canonical write of ``values32`` at ``idx``."""
    tables = {}
    for dtype, pages in ((torch.float32, "huge"), (torch.float16, "huge"), (torch.float32, "4k")):
        if pages == "4k" and device != "cpu":
            continue
        alloc = zeros_table if pages == "huge" else torch.zeros
        memory = alloc(D, d, dtype=dtype, device=device)
        counts = alloc(D, 1, dtype=torch.float32, device=device)
        kernels.write(memory, counts, idx, values32.to(dtype), backend="canonical")
        tables[dtype, pages] = (memory, counts)
    return tables


def _row(device: str, name: str, p: dict, B: int, times, D: int, d: int, M: int) -> dict:
    stats = bench.summarize_times(times)
    elem = torch.tensor([], dtype=p["dtype"]).element_size()
    nbytes = bench.traffic_bytes(p["op"], B, M, d, elem)
    nflops = bench.flops(p["op"], B, M, d)
    return {
        "device": device,
        "path": name,
        "op": p["op"],
        "dtype": str(p["dtype"]).removeprefix("torch."),
        "pages": p["pages"],
        "library_write": p["library"],
        "threads": (p["threads"] or torch.get_num_threads()) if device == "cpu" else None,
        "B": B,
        **stats,
        "bytes": nbytes,
        "flops": nflops,
        "effective_gbps": nbytes / stats["median_s"] / 1e9,
        "gflops": nflops / stats["median_s"] / 1e9,
        "intensity_flop_per_byte": nflops / nbytes,
        "table_bytes": D * (d * elem + 4),  # table + float32 counts: the random-access data
    }


def time_paths(
    device: str, D: int, d: int, K: int, H: int, B_values: Sequence[int], repeats: int, seed: int
) -> list[dict]:
    """Every path of :func:`path_table` timed round-robin (``bench.interleaved_times``) on the
    same slot ids at each batch size; reads compared with the canonical read of the same table,
    writes (:func:`check_writes`) with the canonical write on a separate check table."""
    keys, values32 = bench.make_inputs(max(B_values), d, seed=seed, device=device)
    idx_all = GlobalAffineHash(D, seed=seed).indices(keys, K, H)
    tables = _tables(device, D, d, idx_all, values32)
    check_table = (
        zeros_table(D, d, dtype=torch.float32, device=device),
        zeros_table(D, 1, dtype=torch.float32, device=device),
    )
    paths = path_table(device)
    out = []
    for B in progress(B_values, desc=f"batch sizes ({device})"):
        idx = idx_all[:B]
        repeated_share = diagnostics.collision_rate(idx)
        ops, reference = {}, {}
        for name, p in paths.items():
            memory, counts = tables[p["dtype"], p["pages"]]
            values = values32[:B].to(p["dtype"])
            ops[name] = lambda fn=p["fn"], m=memory, c=counts, i=idx, v=values: fn(m, c, i, v)
            if p["op"] == "read":
                reference[name] = (
                    p["fn"](memory, counts, idx, values),
                    torch_ops.read_gather_mean(memory, counts, idx),
                )
        write_checks = check_writes(paths, *check_table, idx, values32[:B])
        with torch.no_grad():
            times = bench.interleaved_times(ops, repeats, 1, device)
        for name, p in paths.items():
            row = _row(device, name, p, B, times[name], D, d, K * H)
            row["repeated_share"] = repeated_share
            row.update(write_checks.get(name, {}))
            if name in reference:
                row["rel_error_vs_canonical"] = bench.relative_error(*reference[name])
            out.append(row)
    return out


def copy_roof(row: dict, roofs: dict) -> dict:
    """The copy/matmul roof measured on the row's device at the row's thread count."""
    roof = roofs[row["device"]]
    return roof["by_threads"][str(row["threads"])] if row["threads"] else roof


def row_line(r: dict) -> str:
    """One timed row as a line: time, effective bandwidth, share of copy, checks."""
    check = (
        f", rel. diff. {r['rel_error_vs_canonical']:.1e}" if "rel_error_vs_canonical" in r else ""
    ) + (f", counts equal {r['counts_equal']}" if "counts_equal" in r else "")
    return (
        f"{r['device']:4s} {r['path']:48s} B={r['B']:6d}: {r['median_s'] * 1e3:8.2f} ms, "
        f"{r['effective_gbps']:6.2f} GB/s effective ({r['copy_share']:.0%} of copy at "
        f"{r['threads'] or '-'} thread(s)){check}"
    )


def fit_through_read(
    D: int, d: int, K: int, N: int, steps: int, lr: float, seed: int
) -> tuple[dict[str, Any], list[float]]:
    """Fit random targets of ``N`` keys (``K`` slots each in a ``[D, d]`` ``nn.Parameter``
    table, counts of 1) through ``kernels.read`` with Adam on the mean squared error. Returns
    the gradient check of the first backward pass (rows with gradient vs rows addressed, rows
    never addressed still zero at the end, first and last loss) and the losses."""
    gen = torch.Generator().manual_seed(seed)
    idx = GlobalAffineHash(D, seed=seed).indices(torch.randint(0, 2**62, (N,), generator=gen), K, 1)
    targets = torch.randn(N, d, generator=gen)
    table = torch.nn.Parameter(torch.zeros(D, d))
    ones = torch.ones(D, 1)  # counts of 1: the read is the plain mean of the K rows
    optimizer = torch.optim.Adam([table], lr=lr)
    addressed = torch.unique(idx)
    losses, summary = [], {}
    for step in progress(range(steps), desc="training"):
        optimizer.zero_grad()
        loss = F.mse_loss(kernels.read(table, ones, idx), targets)
        loss.backward()
        if step == 0:
            rows_with_grad = torch.nonzero(table.grad.abs().sum(dim=1)).flatten()
            summary = {
                "rows_with_grad": int(rows_with_grad.numel()),
                "rows_addressed": int(addressed.numel()),
                "rows_total": D,
                "exact_match": bool(torch.equal(rows_with_grad, addressed)),
            }
        optimizer.step()
        losses.append(loss.item())
    untouched = torch.ones(D, dtype=torch.bool)
    untouched[addressed] = False
    summary["untouched_rows_still_zero"] = bool((table.detach()[untouched] == 0).all())
    summary["loss_first"], summary["loss_last"] = losses[0], losses[-1]
    return summary, losses


def plot_roofline(metrics: dict, B_min: int, title: str):
    """Left: attained GFLOP/s against arithmetic intensity under each measured roof (solid:
    torch's default thread count, dotted: others); right: effective bandwidth against B."""
    import matplotlib.pyplot as plt

    rows = metrics["rows"]
    path_names = list(dict.fromkeys(r["path"] for r in rows))
    colors = dict(zip(path_names, plt.cm.tab20.colors, strict=False))  # up to 20 paths
    markers = {"cpu": "o", "cuda": "^"}
    fig, (ax_roof, ax_bw) = plt.subplots(1, 2, figsize=(17, 5.5))
    intensity = np.logspace(-2.5, 2.5, 200)
    for device, roof in metrics["roofs"].items():
        for t, r in roof.get("by_threads", {str(None): roof}).items():
            default = t in (str(None), str(metrics["threads_default"]))
            ls = ("-" if default else ":") if device == "cpu" else "--"
            who = f"{device}" + (f", {t} thread(s)" if t != str(None) else "")
            ax_roof.plot(
                intensity,
                np.minimum(r["gflops"], intensity * r["copy_gbps"]),
                color="k",
                ls=ls,
                lw=2 if default else 1.2,
                label=f"{who} roof: {r['copy_gbps']:.1f} GB/s copy, {r['gflops']:.0f} GFLOP/s matmul",
            )
            ax_bw.axhline(r["copy_gbps"], color="k", ls=ls, label=f"{who} copy_ bandwidth")
            if default:
                ax_bw.axhline(
                    r["clone_gbps"], color="gray", ls="-.", label=f"{who} clone (fresh pages)"
                )
    for name in path_names:
        for device in metrics["roofs"]:
            sel = [r for r in rows if r["path"] == name and r["device"] == device]
            if not sel:
                continue
            label = f"{name} ({device})"
            ax_roof.scatter(
                [r["intensity_flop_per_byte"] for r in sel],
                [r["gflops"] for r in sel],
                color=colors[name],
                marker=markers[device],
                s=[20 + 10 * np.log2(r["B"] / B_min + 1) for r in sel],
                label=label,
            )
            ax_bw.plot(
                [r["B"] for r in sel],
                [r["effective_gbps"] for r in sel],
                marker=markers[device],
                color=colors[name],
                ls="--" if "canonical" in name else "-",
                label=label,
            )
    for ax in (ax_roof, ax_bw):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    ax_roof.set_xlabel("arithmetic intensity (flop / byte of minimum traffic)")
    ax_roof.set_ylabel("attained GFLOP/s")
    ax_roof.set_title(title)
    ax_roof.legend(fontsize=6, loc="lower right")
    ax_bw.set_xlabel("batch size B (items per call, log scale)")
    ax_bw.set_ylabel("effective bandwidth (GB/s, minimum traffic / time)")
    ax_bw.set_title(f"Effective bandwidth ({metrics['threads_default']} threads unless named)")
    ax_bw.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _ridge_statement(device: str, dev_rows: list[dict], roofs: dict) -> tuple[str, list, float]:
    """Where the device's points sit against the ridge: (statement, points left of it, the
    smallest ridge / intensity factor)."""
    roof_of = lambda r: copy_roof(r, roofs)  # noqa: E731
    ridges = {id(r): roof_of(r)["gflops"] / roof_of(r)["copy_gbps"] for r in dev_rows}
    left = [r for r in dev_rows if r["intensity_flop_per_byte"] < ridges[id(r)]]
    lo = min(r["intensity_flop_per_byte"] for r in dev_rows)
    hi = max(r["intensity_flop_per_byte"] for r in dev_rows)
    margin = min(ridges[id(r)] / r["intensity_flop_per_byte"] for r in dev_rows)
    ridge_text = ", ".join(
        f"{t} thread(s) {r['gflops'] / r['copy_gbps']:.2f}"
        for t, r in roofs[device].get("by_threads", {"-": roofs[device]}).items()
    )
    if len(left) == len(dev_rows):
        return (
            f"{device}: every op's arithmetic intensity ({lo:.3f} to {hi:.3f} flop/byte) is left of the ridge "
            f"(matmul peak / copy bandwidth = {ridge_text} flop/byte), by a factor of {margin:.1f} or more: "
            "their roof is the bandwidth slope, and a point's height below it is the share of the copy "
            "bandwidth the op attains.",
            left,
            margin,
        )
    right = sorted({r["path"] for r in dev_rows if r not in left})
    return (
        f"{device}: {len(dev_rows) - len(left)} of {len(dev_rows)} points are at or right of the ridge "
        f"({ridge_text} flop/byte; intensities {lo:.3f} to {hi:.3f}): {', '.join(right)}; their roof is the "
        "matmul peak, not the bandwidth.",
        left,
        margin,
    )


def roofline_statements(metrics: dict) -> tuple[list[str], dict[str, dict]]:
    """What the roofline shows, per device, from the rows: the points against the ridge, a
    caution where a multi-thread matmul peak is below the one-thread one, the share of the copy
    bandwidth attained, and why a point can sit above the copy roof. Returns the statements
    and ``{device: {points, left_of_ridge, ridge_margin_min, below_copy, above_copy}}``."""
    roofs, lines, summary = metrics["roofs"], [], {}
    for device in roofs:
        dev_rows = [r for r in metrics["rows"] if r["device"] == device]
        statement, left, margin = _ridge_statement(device, dev_rows, roofs)
        lines.append(statement)
        per_thread = roofs[device].get("by_threads", {})
        for t, r in per_thread.items() if "1" in per_thread else ():
            if int(t) > 1 and r["gflops"] < per_thread["1"]["gflops"]:
                lines.append(
                    f"{device}: CAUTION: the matmul peak measured at {t} threads ({r['gflops']:.0f} GFLOP/s) is below "
                    f"the one-thread peak ({per_thread['1']['gflops']:.0f} GFLOP/s), which more threads should not give on an idle "
                    f"machine: other processes most likely slowed that measurement (load average {metrics['load_average_1min']} when the timings "
                    f"were saved), so "
                    f"the {t}-thread compute roof and ridge above are understated."
                )
        below = [r for r in dev_rows if r["copy_share"] < 1]
        above = [r for r in dev_rows if r["copy_share"] >= 1]
        shares = [r["copy_share"] for r in dev_rows]
        lines.append(
            f"{device}: {len(below)} of {len(dev_rows)} (path, B) points attain less than the copy bandwidth at "
            f"their thread count, {len(above)} attain it or more (share of copy from {min(shares):.0%} to {max(shares):.0%})."
        )
        reasons: dict[str, list[str]] = {}
        for r in above:
            reason = bench.beyond_copy_reason(
                r["table_bytes"], copy_roof(r, roofs)["llc_bytes"], r["repeated_share"]
            )
            reasons.setdefault(reason, []).append(
                f"{r['path']} at B={r['B']} ({r['copy_share']:.0%})"
            )
        for reason, who in reasons.items():
            lines.append(
                f"{device}: above the copy roof: {'; '.join(who)}. Effective bandwidth counts bytes, it does not "
                f"measure them, and here {reason}."
            )
        summary[device] = {
            "points": len(dev_rows),
            "left_of_ridge": len(left),
            "ridge_margin_min": margin,
            "below_copy": len(below),
            "above_copy": [(r["path"], r["B"]) for r in above],
        }
    return lines, summary


_COMPILED = (
    ("read", torch.float32),
    ("read", torch.float16),
    ("read", torch.bfloat16),
    ("write", torch.float32),
)


def compile_reports(configs: Sequence[Sequence[int]]) -> list[dict]:
    """``triton_ops.compile_report`` for the read (float32, float16, bfloat16) and the write
    (float32) at each ``[block_m, num_warps]``, on stand-in tensors of d = 64, K = 32; empty
    where triton is missing or runs interpreted."""
    if not kernels.HAS_TRITON or triton_ops.interpreted():
        return []
    stand_in, stand_in_counts = torch.zeros(1024, 64), torch.zeros(1024, 1)
    stand_in_idx = torch.zeros(4, 32, dtype=torch.int64)
    reports = []
    for block_m, warps in progress(configs, desc="compiling for sm_90"):
        for op, dtype in _COMPILED:
            values = torch.zeros(4, 64, dtype=dtype) if op == "write" else None
            reports.append(
                triton_ops.compile_report(
                    op,
                    stand_in.to(dtype),
                    stand_in_counts,
                    stand_in_idx,
                    values,
                    block_m=block_m,
                    num_warps=warps,
                )  # fmt: skip
            )
    return reports


def compile_line(report: dict) -> str:
    """A compile report as one line: registers, spills, shared memory, memory instructions."""
    memory_ops = ", ".join(f"{k} x{v}" for k, v in sorted(report["sass"].items()))
    return (
        f"{report['op']:5s} {report['dtype']:8s} block_m={report['BLOCK_M']:2d} warps={report['num_warps']}: "
        f"{report['registers']} registers, local (spill) {report['local_bytes']} B, "
        f"shared {report['shared_bytes']} B | in the code (static counts): {memory_ops}"
    )


class Timings:
    """The CPU rows of a run, looked up by path and batch size."""

    def __init__(self, rows: Sequence[dict], device: str = "cpu"):
        self.rows = [r for r in rows if r["device"] == device]
        self.paths = list(dict.fromkeys(r["path"] for r in self.rows))

    def at(self, path: str, B: int) -> dict:
        return next(r for r in self.rows if r["path"] == path and r["B"] == B)

    def ratio(self, slow: str, fast: str, B: int) -> float | None:
        """slow's time / fast's time at B (above 1: ``fast`` ran faster; None if not timed)."""
        if not {slow, fast} <= set(self.paths):
            return None
        return self.at(slow, B)["median_s"] / self.at(fast, B)["median_s"]

    def table(self, B: int) -> tuple[list[str], list[list]]:
        """Header and rows of every path at B: time, bandwidth, share of copy, checks."""
        header = ["path", "ms", "GB/s", "share of copy", "threads", "rel. diff. from canonical",
                  "counts equal"]  # fmt: skip
        rows = []
        for name in self.paths:
            r = self.at(name, B)
            rows.append([
                name, f"{r['median_s'] * 1e3:.3f}", f"{r['effective_gbps']:.2f}",
                f"{r['copy_share']:.0%}", r["threads"],
                f"{r['rel_error_vs_canonical']:.1e}" if "rel_error_vs_canonical" in r else "",
                str(r["counts_equal"]) if "counts_equal" in r else "",
            ])  # fmt: skip
        return header, rows


def library_writes(timings: Timings, setting: dict, B_values: Sequence[int]) -> dict[str, Any]:
    """The library write formulations against the canonical write at the write target's B
    when ``setting`` (D, d, K, H, dtype, device) is the target's, else at the largest B:
    speedups, which reach ``bench.WRITE_TARGET``, and whether every write path (at every B)
    left the canonical write's rows (rel. diff. < 1e-5) and counts."""
    on_target_setting = all(bench.TARGET_SETTING[key] == value for key, value in setting.items())
    B_target = bench.TARGET_SETTING["B"]
    B_check = B_target if on_target_setting and B_target in B_values else max(B_values)
    library = [n for n in timings.paths if timings.at(n, B_check).get("library_write")]
    gains = {n: timings.ratio("write canonical", n, B_check) for n in library}
    return {
        "B": B_check,
        "on_target_setting": on_target_setting and B_check == B_target,
        "speedup_vs_canonical": gains,
        "reached_target": [n for n, g in gains.items() if g >= bench.WRITE_TARGET],
        "all_writes_equal_canonical": all(
            r["rel_error_vs_canonical"] < 1e-5 and r["counts_equal"]
            for r in timings.rows
            if r["op"] == "write" and "counts_equal" in r
        ),
    }


def library_write_lines(timings: Timings, writes: dict, setting: dict) -> list[str]:
    """The sentences on the library writes and the write target (:func:`library_writes`)."""
    words, gains, B_check = bench.speed_words, writes["speedup_vs_canonical"], writes["B"]
    lines = [
        f"Library writes at B = {B_check} against the canonical write: "
        + "; ".join(f"{n.removeprefix('write ')} {words(g)}" for n, g in gains.items())
        + ". Every write path left the same rows as the canonical write (rel. diff. < 1e-5) and "
        f"the same counts, at every B: {writes['all_writes_equal_canonical']}."
    ]
    B_target = bench.TARGET_SETTING["B"]
    if not writes["on_target_setting"]:
        return lines + [
            f"This run is not at the write target's setting (D = 1,000,000, d = 64, K = 32, H = 1, B = {B_target}), "
            "so these ratios do not test it."
        ]
    best, reached = max(gains, key=gains.get), writes["reached_target"]
    c_gain = timings.ratio("write canonical", "write C kernel", B_check)
    lines.append(
        f"The write target ({bench.WRITE_TARGET:.0f}x over the canonical write at D = {setting['D']:,}, "
        f"d = {setting['d']}, K = {setting['K']}, H = {setting['H']}, B = {B_target}) is "
        + (
            f"reached by the library formulation(s) {', '.join(reached)}."
            if reached
            else f"reached by none of the library formulations (best: {best.removeprefix('write ')}, {gains[best]:.2f}x)"
        )
        + (
            f"; the C kernel: {c_gain:.2f}x ({'reached' if c_gain >= bench.WRITE_TARGET else 'NOT reached'})."
            if c_gain is not None
            else "."
        )
    )
    return lines


PAIRED_PATHS = (
    ("read embedding_bag", "read embedding_bag (auto weights)",
     "Read with its weights from the C pass", "with torch's weights"),
    ("read embedding_bag (auto weights), 4 KiB pages", "read embedding_bag (auto weights)",
     "Read on huge pages", "on 4 KiB pages"),
    ("write C kernel, 4 KiB pages", "write C kernel", "C write on huge pages", "on 4 KiB pages"),
)  # fmt: skip
"""(slower path, faster path, what, than): the C weights and the huge pages, each on its own."""


def speedup_lines(timings: Timings, B: int) -> list[str]:
    """The headline speedups at B and the paired comparisons of :data:`PAIRED_PATHS`."""
    words, ratio = bench.speed_words, timings.ratio
    fast_read = (  # what kernels.read runs on CPU (C weights where the C kernel is available)
        "read embedding_bag (auto weights)"
        if "read embedding_bag (auto weights)" in timings.paths
        else "read embedding_bag"
    )
    lines = [
        f"At B = {B}: read ({fast_read}) {words(ratio('read canonical', fast_read, B))}; "
        f"fp16 read (chunked) {words(ratio('read canonical fp16', 'read chunked fp16', B))} (canonical fp16); "
        f"write (torch path without temporaries, default column grouping) {words(ratio('write canonical', 'write columns (default)', B))}"
        + (
            f"; write (C kernel) {words(ratio('write canonical', 'write C kernel', B))}."
            if "write C kernel" in timings.paths
            else "; no C kernel in this run."
        )
    ]
    for slow, fast, what, than in PAIRED_PATHS:
        gain = ratio(slow, fast, B)
        if gain is not None:
            lines.append(f"{what}: {words(gain, than)} ('{fast}' vs '{slow}').")
    return lines
