"""The benchmark notebooks' plumbing: bbpm.experiments.write_read (bench01) and
bbpm.experiments.occupancy (bench02)."""

import math

import pytest
import torch

from bbpm.experiments import occupancy, write_read
from bbpm.hashing import GlobalAffineHash


def test_one_at_a_time_varies_one_variable_per_config():
    base = {"K": 8, "D": 100, "dtype": "float32"}
    configs = write_read.one_at_a_time(base, {"K": [4, 8], "dtype": ["float16"]})
    assert configs[0] == ("base", None, base)
    assert [(s, v) for s, v, _ in configs[1:]] == [("K", 4), ("K", 8), ("dtype", "float16")]
    for sweep, value, cfg in configs[1:]:
        assert cfg == {**base, sweep: value}
    assert base == {"K": 8, "D": 100, "dtype": "float32"}  # not modified


def test_add_copy_floors():
    rows = [{"read_bytes": 2e9, "write_bytes": 5e8}]
    write_read.add_copy_floors(rows, 4.0)
    assert rows[0]["read_floor_s"] == pytest.approx(0.5)
    assert rows[0]["write_floor_s"] == pytest.approx(0.125)


def test_time_vs_variables_figure_has_one_panel_per_variable():
    import matplotlib

    matplotlib.use("Agg")
    rows = []
    for sweep, values in (("K", [8, 16]), ("dtype", ["float32", "float16"])):
        for i, value in enumerate(values):
            row = {"sweep": sweep, "value": value, "read_bytes": 1e6, "write_bytes": 2e6}
            for op in ("read", "write"):
                for path in ("canonical", "fast"):
                    row[f"{op}_{path}_median_s"] = 1e-3 * (i + 1)
            rows.append(row)
    write_read.add_copy_floors(rows, 1.0)
    fig = write_read.time_vs_variables_figure(rows, ["K", "dtype"], "title")
    assert [ax.get_title() for ax in fig.axes] == ["vs K", "vs dtype"]
    # four timed paths and two floors per panel; the floor of the read is 1e6 B / 1 GB/s = 1 ms
    assert len(fig.axes[0].get_lines()) == 6
    assert list(fig.axes[0].get_lines()[4].get_ydata()) == pytest.approx([1.0, 1.0])
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["float32", "float16"]
    labels = [line.get_label() for line in fig.axes[0].get_lines()[:4]]
    assert labels == ["read canonical", "read library", "write canonical", "write library"]


def test_hash_families_place_k_slots_per_key():
    families = occupancy.hash_families(D=4096, K=8, multi_H=2, block_size=1024, seed=0)
    assert len(families) == 5
    keys = torch.arange(100)
    for hash_fn, k, h in families.values():
        assert k * h == 8
        idx = hash_fn.indices(keys, k, h)
        assert idx.numel() == 100 * 8 and int(idx.min()) >= 0 and int(idx.max()) < 4096


@pytest.mark.parametrize(
    ("K", "multi_H", "D", "match"), [(8, 3, 4096, "multi_H"), (8, 2, 4000, "block_size")]
)
def test_hash_families_reject_bad_sizes(K, multi_H, D, match):
    with pytest.raises(ValueError, match=match):
        occupancy.hash_families(D=D, K=K, multi_H=multi_H, block_size=1024, seed=0)


def test_make_keys():
    assert torch.equal(occupancy.make_keys("consecutive", 5, 0), torch.arange(5))
    a, b = occupancy.make_keys("random", 50, 1), occupancy.make_keys("random", 50, 1)
    assert torch.equal(a, b) and a.unique().numel() == 50 and int(a.min()) >= 0
    with pytest.raises(ValueError, match="key kind"):
        occupancy.make_keys("sorted", 5, 0)


def test_occupancy_row_matches_uniform_hashing_theory():
    D, K = 1 << 14, 8
    keys = occupancy.make_keys("random", D // K, 0)  # load factor 1
    row, hist = occupancy.occupancy_row(GlobalAffineHash(D, seed=0), K, 1, keys, D)
    assert sum(hist["measured"]) == D  # every slot counted once
    assert sum(j * c for j, c in enumerate(hist["measured"])) == D  # N K slot writes
    # occupied fraction near 1 - e^-1 for uniform hashing at load 1
    assert row["occupied_fraction_theory"] == pytest.approx(1 - math.exp(-1), abs=1e-3)
    assert row["tv_distance"] < 0.02
    assert abs(row["gini_load"] - row["gini_theory"]) < 0.02
    assert len(hist["theory"]) >= 12


def test_occupancy_figures_from_a_small_run():
    import matplotlib

    matplotlib.use("Agg")
    D, K = 4096, 8
    families = occupancy.hash_families(D=D, K=K, multi_H=2, block_size=1024, seed=0)
    rows, histograms = [], {}
    for name, (hash_fn, k, h) in families.items():
        for kind in ("consecutive", "random"):
            for lam in (0.5, 1.0):
                keys = occupancy.make_keys(kind, round(lam * D / K), 0)
                row, hist = occupancy.occupancy_row(hash_fn, k, h, keys, D)
                rows.append({"hash": name, "keys": kind, "load_factor": lam, **row})
                histograms[f"{name}|{kind}"] = hist
    metrics = {"hash_configs": dict.fromkeys(families), "rows": rows, "histograms": histograms,
               "hyperparameters": {"key_kinds": ["consecutive", "random"], "D": D}}  # fmt: skip
    fig = occupancy.histogram_figure(metrics, "t")
    assert len(fig.axes) == 2 * 5 and fig.axes[0].get_title() == "global mixed\nconsecutive keys"
    fig = occupancy.skew_figure(metrics)
    assert [ax.get_ylabel() for ax in fig.axes][:2] == [
        "largest slot load",
        "Gini coefficient of slot loads",
    ]
    # ten measured lines (5 hashes x 2 key kinds) and the theory line in each panel with theory
    assert len(fig.axes[0].get_lines()) == 11 and len(fig.axes[3].get_lines()) == 10
    q2_line = fig.axes[2].get_lines()[0]  # q2 scaled by D: about 1 + 1/(load) for uniform hashing
    assert all(0.5 < y < 5 for y in q2_line.get_ydata())


def test_time_split_figure_labels_hash_share():
    import matplotlib

    matplotlib.use("Agg")
    base = {"hash_median_s": 1e-3, "read_canonical_median_s": 3e-3, "read_fast_median_s": 1e-3,
            "write_canonical_median_s": 9e-3, "write_fast_median_s": 4e-3}  # fmt: skip
    fig = write_read.time_split_figure(base, "split")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 4
    assert texts[1].endswith("ms (50% hash)") and texts[3].endswith("ms (20% hash)")
    assert fig.axes[0].get_xlim()[1] == pytest.approx(1.35 * 10.0)
    bars = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert bars == ["read canonical", "read library", "write canonical", "write library"]
