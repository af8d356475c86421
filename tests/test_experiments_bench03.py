"""The kernels benchmark's plumbing (bbpm.experiments.bench03_kernels): every write formulation
leaves the canonical write's rows, the timed rows carry the traffic model, the roofline
statements and the write-target verdict follow from the numbers, the gradient check holds."""

import pytest
import torch

from bbpm import GlobalAffineHash, bench
from bbpm.experiments import bench03_kernels as kb
from bbpm.utils.device import zeros_table


def small_inputs(D=2000, d=8, K=4, B=64, seed=0):
    keys, values = bench.make_inputs(B, d, seed=seed)
    return GlobalAffineHash(D, seed=seed).indices(keys, K, 1), values


def test_every_write_formulation_leaves_the_canonical_rows_and_counts():
    idx, values = small_inputs()
    paths = kb.path_table("cpu")
    memory, counts = (
        zeros_table(2000, 8, dtype=torch.float32),
        zeros_table(2000, 1, dtype=torch.float32),
    )
    checks = kb.check_writes(paths, memory, counts, idx, values)
    writes = [n for n, p in paths.items() if p["op"] == "write"]  # canonical: against itself
    assert sorted(checks) == sorted(writes)
    for name, check in checks.items():
        assert check["rel_error_vs_canonical"] < 1e-6, name
        assert check["counts_equal"], name
    touched = idx.reshape(-1).unique()
    assert float(counts[touched].sum()) == idx.numel()  # the last write's counts, nothing else


def test_library_writes_are_flagged_and_the_dispatch_paths_are_not():
    paths = kb.path_table("cpu")
    assert paths["write canonical"]["library"] is False
    assert paths["write scatter_add_"]["library"] is True
    assert paths["write columns (1 per call)"]["library"] is True
    assert {p["op"] for p in paths.values()} == {"read", "write"}


def test_timed_rows_carry_the_traffic_model_and_match_the_canonical_read():
    rows = kb.time_paths("cpu", D=4096, d=8, K=4, H=1, B_values=[16, 32], repeats=1, seed=0)
    n_paths = len(kb.path_table("cpu"))
    assert len(rows) == 2 * n_paths
    for r in rows:
        elem = 2 if r["dtype"] == "float16" else 4
        assert r["bytes"] == bench.traffic_bytes(r["op"], r["B"], 4, 8, elem)
        assert r["intensity_flop_per_byte"] == pytest.approx(r["flops"] / r["bytes"])
        assert r["table_bytes"] == 4096 * (8 * elem + 4)
        if r["op"] == "read":
            assert r["rel_error_vs_canonical"] < (1e-3 if elem == 2 else 1e-5)
        else:
            assert r["counts_equal"] and r["rel_error_vs_canonical"] < 1e-5


def test_copy_roof_is_the_one_at_the_rows_thread_count():
    roofs = {"cpu": {"copy_gbps": 9.0, "by_threads": {"1": {"copy_gbps": 5.0}}}}
    assert kb.copy_roof({"device": "cpu", "threads": 1}, roofs)["copy_gbps"] == 5.0
    assert kb.copy_roof({"device": "cpu", "threads": None}, roofs)["copy_gbps"] == 9.0


def roofline_metrics(intensities, shares):
    roof = {"copy_gbps": 10.0, "gflops": 100.0, "llc_bytes": 2**20, "clone_gbps": 8.0}
    rows = [
        {"device": "cpu", "path": f"p{i}", "B": 8, "threads": 1, "intensity_flop_per_byte": x,
         "copy_share": s, "table_bytes": 2**30, "repeated_share": 0.0}
        for i, (x, s) in enumerate(zip(intensities, shares, strict=True))
    ]  # fmt: skip
    roofs = {"cpu": {**roof, "by_threads": {"1": roof}}}
    return {"roofs": roofs, "rows": rows, "load_average_1min": 0.5}


def test_roofline_statements_place_points_against_the_ridge_and_the_copy_roof():
    lines, summary = kb.roofline_statements(roofline_metrics([0.5, 0.25], [0.5, 1.2]))
    assert summary["cpu"]["left_of_ridge"] == 2  # ridge 100 / 10 = 10 flop/byte
    assert summary["cpu"]["ridge_margin_min"] == pytest.approx(20.0)
    assert summary["cpu"]["below_copy"] == 1 and summary["cpu"]["above_copy"] == [("p1", 8)]
    assert "every op's arithmetic intensity" in lines[0]
    assert any("above the copy roof: p1 at B=8 (120%)" in line for line in lines)
    lines, summary = kb.roofline_statements(roofline_metrics([0.5, 20.0], [0.5, 0.5]))
    assert summary["cpu"]["left_of_ridge"] == 1
    assert lines[0].startswith("cpu: 1 of 2 points are at or right of the ridge")


def timing_rows(canonical_s, library_s, B=8192):
    rows = [{"device": "cpu", "path": "write canonical", "op": "write", "B": B,
             "median_s": canonical_s, "library_write": False}]  # fmt: skip
    for name, seconds in library_s.items():
        rows.append({"device": "cpu", "path": name, "op": "write", "B": B, "median_s": seconds,
                     "library_write": True, "rel_error_vs_canonical": 0.0, "counts_equal": True})  # fmt: skip
    return rows


def test_library_writes_test_the_target_only_at_its_setting():
    timings = kb.Timings(timing_rows(3.0, {"write a": 0.5, "write b": 2.0}))
    on_target = {k: bench.TARGET_SETTING[k] for k in ("D", "d", "K", "H", "dtype", "device")}
    writes = kb.library_writes(timings, on_target, [1024, bench.TARGET_SETTING["B"]])
    assert writes["on_target_setting"] and writes["B"] == bench.TARGET_SETTING["B"]
    assert writes["speedup_vs_canonical"] == {"write a": 6.0, "write b": 1.5}
    assert writes["reached_target"] == ["write a"] and writes["all_writes_equal_canonical"]
    assert "reached by the library formulation(s) write a." in " ".join(
        kb.library_write_lines(timings, writes, on_target)
    )
    off_target = {**on_target, "D": 1000}
    writes = kb.library_writes(timings, off_target, [bench.TARGET_SETTING["B"]])
    assert not writes["on_target_setting"]
    assert "do not test it" in kb.library_write_lines(timings, writes, off_target)[-1]


def test_timings_ratio_is_none_for_a_path_not_timed():
    timings = kb.Timings(timing_rows(3.0, {"write a": 1.5}))
    assert timings.ratio("write canonical", "write a", 8192) == 2.0
    assert timings.ratio("write canonical", "write C kernel", 8192) is None


def test_gradient_reaches_exactly_the_addressed_rows_and_the_fit_improves():
    summary, losses = kb.fit_through_read(D=256, d=4, K=3, N=32, steps=20, lr=0.05, seed=0)
    assert summary["exact_match"] and summary["untouched_rows_still_zero"]
    assert summary["rows_with_grad"] == summary["rows_addressed"] <= 32 * 3
    assert len(losses) == 20 and losses[-1] < 0.5 * losses[0]
