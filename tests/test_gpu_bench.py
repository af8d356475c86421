"""python -m bbpm.gpu_bench: the record it writes, the targets it checks and the figure the
book draws from it. On CPU only the torch paths run; the CUDA test runs the Triton ones."""

import copy
import json

import matplotlib
import pytest
import torch

from bbpm import gpu_bench

matplotlib.use("Agg")

TINY = dict(D_values=[3000, 8000], d=8, K=4, B=96, repeats=2, warmup=1, copy_bytes=2**20)


@pytest.fixture(scope="module")
def cpu_record():
    return gpu_bench.run(device="cpu", sweep=(), progress=False, **TINY)


def test_cpu_record_holds_every_path_equal_to_canonical(cpu_record, tmp_path):
    rows = cpu_record["rows"]
    paths = {(r["op"], r["dtype"], r["path"]) for r in rows}
    for dtype in ("float32", "float16", "bfloat16"):  # half dtypes at the first D only
        assert {("read", dtype, p) for p in ("canonical", "torch", "kernels.read")} <= paths
    assert {("write", "float32", p) for p in ("canonical", "torch", "kernels.write")} <= paths
    assert not any(r["path"].startswith("triton") for r in rows)  # no CUDA here
    assert {r["D"] for r in rows if r["dtype"] == "float16"} == {3000}
    for r in rows:
        assert r["rel_error"] < 1e-5 and r["counts_equal"], r
        assert r["gbps"] == pytest.approx(r["bytes"] / r["median_s"] / 1e9)
        assert r["min_s"] <= r["median_s"]
    assert cpu_record["copy"]["copy_gbps"] > 0
    assert cpu_record["info"]["device"] == "cpu" and cpu_record["settings"]["B"] == 96
    path = tmp_path / "record.json"
    path.write_text(json.dumps(cpu_record))
    assert gpu_bench.load_records(tmp_path) == [json.loads(path.read_text())]
    assert gpu_bench.load_records(tmp_path / "missing") == []


def test_targets_without_triton_say_so(cpu_record):
    t = gpu_bench.targets(cpu_record)
    assert t["triton_ran"] is False and [e["D"] for e in t["per_D"]] == [3000, 8000]
    assert "no Triton path ran" in gpu_bench.format_targets(cpu_record)
    summary = gpu_bench.summary_rows(cpu_record)
    assert all(r["speedup_vs_canonical"] == 1.0 for r in summary if r["path"] == "canonical") and {
        r["path"] for r in summary
    } == {"canonical", "torch", "kernels.read", "kernels.write"}
    fig = gpu_bench.plot_record(cpu_record)
    assert len(fig.axes) == 2
    matplotlib.pyplot.close(fig)


def test_targets_arithmetic_on_rows_named_triton(cpu_record):
    """The target checks pick the best Triton variant per D and divide as documented
    (rows relabelled from the torch ones, with times set by hand: a logic test)."""
    record = copy.deepcopy(cpu_record)
    copy_gbps = record["copy"]["copy_gbps"]
    extra = []
    for r in record["rows"]:
        if r["path"] == "torch" and r["dtype"] == "float32":
            for name, scale in (("triton", 1.0), ("triton m8 w2", 0.5)):
                row = dict(r, path=name, median_s=r["median_s"] * scale)
                row["gbps"] = row["bytes"] / row["median_s"] / 1e9
                extra.append(row)
    record["rows"] += extra
    t = gpu_bench.targets(record)
    assert t["triton_ran"]
    for e in t["per_D"]:
        torch_read = next(
            r
            for r in record["rows"]
            if (r["op"], r["path"], r["D"], r["dtype"]) == ("read", "torch", e["D"], "float32")
        )
        canonical_write = next(
            r
            for r in record["rows"]
            if (r["op"], r["path"], r["D"]) == ("write", "canonical", e["D"])
        )
        torch_write = next(
            r for r in record["rows"] if (r["op"], r["path"], r["D"]) == ("write", "torch", e["D"])
        )
        assert e["read_path"] == "triton m8 w2" and e["write_path"] == "triton m8 w2"
        assert e["read_gbps"] == pytest.approx(2 * torch_read["gbps"])
        assert e["read_default_gbps"] == pytest.approx(torch_read["gbps"])
        assert e["read_copy_fraction"] == pytest.approx(e["read_gbps"] / copy_gbps)
        assert e["write_speedup"] == pytest.approx(
            canonical_write["median_s"] / (0.5 * torch_write["median_s"])
        )
    for tiles, key in (("", "read_default_gbps"), ("_best_tiles", "read_gbps")):
        expected = all(e[key] >= gpu_bench.READ_TARGET_GBPS for e in t["per_D"])
        assert t["read_gbps_met" + tiles] is expected
        share = all(e[key] >= gpu_bench.READ_TARGET_COPY_FRACTION * copy_gbps for e in t["per_D"])
        assert t["read_copy_fraction_met" + tiles] is share
    # the default tiles' write is the torch time (x1), the best half of it (x0.5)
    speedups = [e["write_default_speedup"] for e in t["per_D"]]
    assert t["write_speedup_met"] is all(x >= gpu_bench.WRITE_TARGET_SPEEDUP for x in speedups)
    text = gpu_bench.format_targets(dict(record, targets=t))
    assert (
        "best triton read" in text
        and "default tiles:" in text
        and "best tiles of the sweep:" in text
    )


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="B must be"):
        gpu_bench.run(device="cpu", **dict(TINY, B=0))
    with pytest.raises(ValueError, match="D_values"):
        gpu_bench.run(device="cpu", **dict(TINY, D_values=[]))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="--device cpu"):
            gpu_bench.run(device="cuda", **TINY)


@pytest.mark.skipif(
    not (torch.cuda.is_available() and gpu_bench.triton_ops.HAS_TRITON),
    reason="needs CUDA and triton",
)
def test_cuda_record_runs_the_triton_paths_exactly():
    record = gpu_bench.run(
        device="cuda", sweep=((8, 2), (32, 4)), progress=False, **dict(TINY, copy_bytes=2**24)
    )
    names = {r["path"] for r in record["rows"]}
    assert {"triton", "triton m8 w2", "triton m32 w4", "kernels.read", "kernels.write"} <= names
    for r in record["rows"]:
        assert r["rel_error"] < 1e-5 and r["counts_equal"], r
    t = record["targets"]
    assert t["triton_ran"] and all(e["read_gbps"] > 0 for e in t["per_D"])
    assert record["info"]["device_name"] == torch.cuda.get_device_name()


def test_cli_writes_the_record(tmp_path, capsys):
    out = tmp_path / "rec.json"
    argv = ["--device", "cpu", "--D", "2000", "--d", "4", "--K", "2", "--B", "16"]
    assert (
        gpu_bench.main(
            argv + ["--repeats", "1", "--copy-mib", "1", "--no-sweep", "--out", str(out)]
        )
        == 0
    )
    record = json.loads(out.read_text())
    assert (
        record["settings"]["D_values"] == [2000] and record["version"] == gpu_bench.RECORD_VERSION
    )
    assert "record written" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        gpu_bench.main(["--device", "cpu", "--B", "0"])


def test_partial_record_reports_the_sizes_it_measured(cpu_record):
    partial = dict(cpu_record, complete=False)
    partial["rows"] = [r for r in cpu_record["rows"] if r["D"] == 3000]
    t = gpu_bench.targets(partial)
    assert [e["D"] for e in t["per_D"]] == [3000]
    assert "PARTIAL record: the run stopped after D = 3,000" in gpu_bench.format_targets(
        dict(partial, targets=t)
    )
