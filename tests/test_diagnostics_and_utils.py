"""Diagnostics as the spec defines them, and the utilities."""

import json
import logging
import os
import random
import time

import numpy as np
import pytest
import torch

from bbpm import Experiment, Timer, get_device, load_config, set_global_seed
from bbpm.hashing import diagnostics as dg
from bbpm.utils import get_logger


def test_diagnostics_on_a_hand_made_index_set():
    idx = torch.tensor([[0, 1], [1, 2], [1, 3]])
    assert dg.occupancy_hist(idx, 5).tolist() == [1, 3, 0, 1]
    assert dg.max_load(idx, 5) == 3
    assert dg.collision_rate(idx) == pytest.approx(2 / 6)
    assert dg.estimate_q2(idx, 5) == pytest.approx((1 + 9 + 1 + 1) / 36)
    loads = np.array([1, 3, 1, 1, 0], dtype=float)
    gini = np.abs(loads[:, None] - loads[None, :]).sum() / (2 * len(loads) ** 2 * loads.mean())
    assert dg.gini_load(idx, 5) == pytest.approx(gini)
    assert dg.self_collision_rate(torch.tensor([[0, 0], [1, 2]])) == 0.5


def test_diagnostics_reject_out_of_range_indices():
    with pytest.raises(ValueError, match=r"\[0, D\)"):
        dg.max_load(torch.tensor([0, 5]), 5)


def test_uniform_hash_q2_is_near_one_over_D():
    from bbpm import GlobalAffineHash

    D = 10_000
    idx = GlobalAffineHash(D).indices(torch.arange(20_000), 5, 1)
    assert dg.estimate_q2(idx, D) == pytest.approx(1 / D + 1 / idx.numel(), rel=0.05)


def test_set_global_seed_makes_all_generators_repeat():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    set_global_seed(123)
    first = draw()
    set_global_seed(123)
    assert draw() == first
    with pytest.raises(ValueError):
        set_global_seed(-1)


def test_timer_measures_elapsed_time():
    with Timer() as t:
        time.sleep(0.02)
    assert 0.015 < t.elapsed < 1.0


def test_get_device_and_load_config(tmp_path):
    assert get_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_device("cuda")
    path = tmp_path / "c.yaml"
    path.write_text("D: 100\nK: [1, 2]\n")
    assert load_config(path) == {"D": 100, "K": [1, 2]}
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(path)


def test_logger_with_a_log_dir_writes_the_file_only(tmp_path, capsys):
    logger = get_logger("bbpm.test_logger", tmp_path)
    logger.info("hello %d", 7)
    for handler in logger.handlers:
        handler.flush()
    assert "hello 7" in (tmp_path / "log.txt").read_text()
    assert capsys.readouterr().out == ""
    logger.handlers.clear()


def test_logger_prints_to_the_console_without_a_log_dir_or_on_request(tmp_path, capsys):
    get_logger("bbpm.test_console").info("plain %d", 1)
    get_logger("bbpm.test_both", tmp_path, console=True).info("both %d", 2)
    out = capsys.readouterr().out
    assert "plain 1" in out and "both 2" in out
    assert "both 2" in (tmp_path / "log.txt").read_text()
    for name in ("bbpm.test_console", "bbpm.test_both"):
        logging.getLogger(name).handlers.clear()


def test_experiment_writes_metrics_raw_and_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exp = Experiment("exp99_test", {"seed": 5, "D": 10}, root=tmp_path)
    exp.save_metrics({"value": torch.tensor(1.5), "bad": float("nan")})
    exp.save_raw([{"N": 1, "cos": 0.5}, {"N": 2, "extra": 3}])
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    exp.save_figure(fig, "f.png")
    metrics = json.loads((tmp_path / "results/exp99_test/metrics.json").read_text())
    assert (
        metrics["hyperparameters"] == {"seed": 5, "D": 10}
        and metrics["value"] == 1.5
        and metrics["bad"] is None
    )
    assert (tmp_path / "results/exp99_test/raw.csv").read_text().splitlines()[0] == "N,cos,extra"
    assert (tmp_path / "figures/exp99_test/f.png").stat().st_size > 0
    assert (tmp_path / "results/exp99_test/log.txt").exists()


def test_experiment_writes_latex_tables_with_escaped_cells(tmp_path):
    exp = Experiment("exp98_table", {"seed": 1}, root=tmp_path)
    path = exp.save_latex_table("t.tex", ["K", "mean_cos"], [[4, 0.912345]], caption="50% check")
    text = path.read_text()
    assert r"mean\_cos \\" in text and r"4 & 0.9123 \\" in text and r"50\% check" in text


def test_rss_bytes_grows_with_a_large_allocation():
    from bbpm.utils import rss_bytes

    before = rss_bytes()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    after = rss_bytes()
    assert before is not None and after - before > 32 * 2**20
    del block


def test_zeros_table_is_zero_filled_and_asks_for_huge_pages_only_where_it_can():
    import sys

    from bbpm.utils.device import advise_huge_pages, zeros_table

    table = zeros_table(3000, 700, dtype=torch.float32)  # 8.4 MB: several 2 MiB pages
    assert table.shape == (3000, 700) and table.dtype == torch.float32
    assert int(torch.count_nonzero(table)) == 0
    small = torch.ones(16)
    assert advise_huge_pages(small) is False  # no whole 2 MiB page inside
    assert torch.equal(small, torch.ones(16))  # a hint only: values untouched
    thp = "/sys/kernel/mm/transparent_hugepage/enabled"
    if sys.platform == "linux" and os.path.exists(thp) and "[never]" not in open(thp).read():
        assert advise_huge_pages(torch.empty(2**22)) is True
    assert zeros_table(5, 1, dtype=torch.float64).sum() == 0


def test_format_bytes_uses_binary_units_at_three_digits():
    from bbpm.utils import format_bytes

    assert format_bytes(65536) == "64 KiB"
    assert format_bytes(2**20) == "1 MiB"
    assert format_bytes(1081344) == "1.03 MiB"
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 2**30) == "3 GiB"


def test_memory_diagnostics_report_its_real_load_and_occupancy():
    from bbpm import BBPMMemoryFloat, GlobalAffineHash
    from bbpm.theory import collision_model

    D, K, H, N = 20_000, 4, 2, 3_000
    mem = BBPMMemoryFloat(D, 4, K, H, GlobalAffineHash(D))
    mem.write(torch.arange(N), torch.randn(N, 4))
    stats = mem.diagnostics(torch.arange(N))
    assert stats["load_factor"] == pytest.approx(N * K * H / D)
    assert stats["memory_max_count"] == float(mem.counts.max())
    assert stats["memory_max_count"] == dg.max_load(mem.slots(torch.arange(N)), D)
    expected = collision_model.expected_occupied_fraction(N, D, K, H)  # ~ 1 - exp(-1.2)
    sd = (expected * (1 - expected) / D) ** 0.5
    assert abs(stats["memory_occupied_fraction"] - expected) < 5 * sd


def test_experiment_records_numbers_by_name(tmp_path):
    exp = Experiment("exp_rec", {"seed": 1}, root=tmp_path)
    assert exp.record("capacity_90", 1234.5678, ",.0f", "items at 90%", glue=False) == "1,235"
    assert exp.record("share_exact", 0.91234, ".1%", glue=False) == "91.2%"
    assert exp.record("verdict", "holds", glue=False) == "holds"
    assert exp.record("missing", float("nan"), ".3f", glue=False) == "n/a"
    saved = json.loads((tmp_path / "results" / "exp_rec" / "records.json").read_text())
    assert saved["experiment"] == "exp_rec"
    assert saved["records"]["capacity_90"] == {
        "value": 1234.5678,
        "text": "1,235",
        "description": "items at 90%",
    }
    assert saved["records"]["missing"]["value"] is None
    exp.save_metrics({"x": 1})
    assert exp.load_metrics()["records"]["share_exact"]["text"] == "91.2%"
    for bad in ("Capacity", "9lives", "a-b", "", 3):
        with pytest.raises(ValueError, match="record name"):
            exp.record(bad, 1.0, glue=False)


def test_progress_bar_counts_and_is_switched_off_by_the_environment(monkeypatch, capsys):
    from bbpm.utils import progress

    monkeypatch.setenv("BBPM_PROGRESS", "1")
    bar = progress(range(3), desc="items")
    assert not bar.disable and not bar.leave
    assert list(bar) == [0, 1, 2] and bar.n == 3
    assert "items" in capsys.readouterr().err
    monkeypatch.setenv("BBPM_PROGRESS", "0")
    quiet = progress(range(4), desc="items")
    assert list(quiet) == [0, 1, 2, 3] and quiet.disable
    assert capsys.readouterr().err == ""


def test_crossing_reads_the_first_grid_point_above_and_interpolates():
    from bbpm.utils.memory_stats import crossing

    assert crossing([1, 2, 3, 4], [10, 20, 30, 40], 25) == (3, 2.5)
    assert crossing([1, 2], [10, 20], 50) == (None, None)
    assert crossing([1, 2], [10, 20], 5) == (1, None)


def test_storage_bytes_counts_the_allocation_behind_views():
    from bbpm.utils.memory_stats import storage_bytes

    table = torch.zeros(10, 4, dtype=torch.float16)
    assert storage_bytes(table) == 80
    assert storage_bytes(table[:2], torch.zeros(3, dtype=torch.float32)) == 80 + 12


def test_markdown_table_escapes_pipes():
    from bbpm.utils import markdown_table

    assert markdown_table(["a", "b|c"], [[1, "x|y"]]).splitlines() == [
        "| a | b\\|c |",
        "|---|---|",
        "| 1 | x\\|y |",
    ]


def test_neighbour_overlap_matches_a_brute_force_count():
    from bbpm.hashing.diagnostics import neighbour_overlap

    gen = torch.Generator().manual_seed(3)
    D, n_items, M = 50, 40, 4
    idx = torch.stack([torch.randperm(D, generator=gen)[:M] for _ in range(n_items)])
    eval_rows = torch.tensor([0, 5, 17])
    got = neighbour_overlap(idx, eval_rows, D)
    neighbours, shared, largest = [], [], []
    for row in eval_rows.tolist():
        mine = set(idx[row].tolist())
        counts = [len(mine & set(idx[j].tolist())) for j in range(n_items) if j != row]
        counts = [c for c in counts if c > 0]
        neighbours.append(len(counts))
        shared.extend(counts)
        largest.append(max(counts, default=0))
    assert got["neighbours_per_item"] == pytest.approx(sum(neighbours) / 3)
    assert got["shared_slots_per_neighbour"] == pytest.approx(sum(shared) / len(shared))
    assert got["max_shared_slots"] == pytest.approx(sum(largest) / 3)


def test_gini_of_histogram_equals_the_gini_of_the_loads_it_summarises():
    from bbpm.hashing.diagnostics import gini_load, gini_of_histogram, occupancy_hist

    gen = torch.Generator().manual_seed(5)
    idx = torch.randint(0, 200, (300, 4), generator=gen)
    hist = occupancy_hist(idx, 200).double().numpy()
    assert gini_of_histogram(hist) == pytest.approx(gini_load(idx, 200), rel=1e-9)
    assert gini_of_histogram([5, 0, 0]) == 0.0  # nothing written
