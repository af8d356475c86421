"""The sharded benchmark's plumbing (bbpm.experiments.bench04_sharded): the per-world summary
of the ranks' counters, the byte-model check, the cluster projection and its sentences."""

import pytest

from bbpm.distributed import cost_model
from bbpm.experiments import bench04_sharded as sb


def rank(r, keys, pairs, remote, pair_b, seconds, syscall=(1000, 1000)):
    traffic = {
        "keys": keys,
        "pairs": pairs,
        "pairs_remote": remote,
        "payload_bytes_remote": remote * pair_b,
        "header_bytes_remote": 24,
    }
    return {
        "rank": r,
        "traffic": {"write": dict(traffic), "read": dict(traffic)},
        "write_seconds": list(seconds),
        "read_seconds": list(seconds),
        "write_syscall_bytes": list(syscall),
        "read_syscall_bytes": list(syscall),
        "read_cosine_last_batch": 0.5 + 0.25 * r,
        "plain_write_seconds": [2.0, 1.0],
        "plain_read_seconds": [4.0],
    }


def two_rank_run(d=16, H=2):
    pair_b = cost_model.pair_bytes("write", d)
    assert pair_b == cost_model.pair_bytes("read", d)
    ranks = [rank(0, 100, 200, 90, pair_b, (1.0, 3.0)), rank(1, 100, 200, 110, pair_b, (2.0, 0.5))]
    return {"launch_seconds": 1.5, "ranks": ranks}


def test_world_summary_takes_the_best_repeat_of_the_slowest_rank_and_counts_bytes():
    entry = sb.summarize_world(2, two_rank_run(), d=16, H=2, batch=50, cpu_cores=1)
    assert entry["oversubscribed"] and entry["launch_seconds"] == 1.5
    write = entry["write"]
    assert write["seconds"] == 2.0  # repeats: max(1, 2) = 2, max(3, 0.5) = 3 -> best 2
    assert write["items_per_s"] == 100.0
    assert write["remote_pair_share"] == 0.5
    assert write["syscall_bytes_per_item"] == 10.0
    assert write["model_payload_bytes_per_item"] == cost_model.payload_bytes_per_item(
        "write", 16, 2, 2
    )
    assert write["counted_payload_bytes_per_item"] == pytest.approx(
        write["model_payload_bytes_per_item_at_measured_share"]
    )
    assert entry["read_cosine_mean"] == 0.625
    assert "plain_write_items_per_s" not in entry


def test_one_process_summary_carries_the_plain_memory_speeds():
    run = {"launch_seconds": 1.0, "ranks": [rank(0, 100, 200, 0, 73, (1.0,))]}
    entry = sb.summarize_world(1, run, d=16, H=2, batch=50, cpu_cores=4)
    assert entry["plain_write_items_per_s"] == 100.0 and entry["plain_read_items_per_s"] == 25.0
    assert "One process: sharded write 100 vs BBPMMemoryFloat 100 items/s" in sb.routing_sentence(
        entry
    )


def test_rank_rows_are_one_per_rank_and_repeat():
    rows = sb.rank_rows(2, two_rank_run(), repeats=2)
    assert [(r["rank"], r["repeat"]) for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert rows[1]["write_seconds"] == 3.0 and rows[3]["read_pairs_remote"] == 110


def test_traffic_table_refuses_counted_bytes_off_the_model():
    entry = sb.summarize_world(2, two_rank_run(), d=16, H=2, batch=50, cpu_cores=4)
    header, rows = sb.traffic_table([entry])
    assert len(header) == 6 and [r[:2] for r in rows] == [[2, "write"], [2, "read"]]
    entry["read"]["counted_payload_bytes_per_item"] += 1.0
    with pytest.raises(AssertionError):
        sb.traffic_table([entry])


def projection_metrics(compute_s=1e-5):
    per_world = [{"world_size": 1, **{op: {"items_per_s": 1 / compute_s} for op in sb.OPS}}]
    hp = {"cluster_world_sizes": [8, 64], "link_gbit_per_s": [10, 100], "latency_us": 10.0,
          "batch": 256}  # fmt: skip
    compute, projection = sb.project(per_world, 16, 2, 256, [8, 64], [10, 100], 10.0)
    return {"hyperparameters": hp, "projection": projection, "compute_seconds_per_item_W1": compute}


def test_projection_bounds_and_break_even_follow_the_cost_model():
    m = projection_metrics()
    write = m["projection"]["write"]
    assert write["compute_bound_items_per_s"] == pytest.approx([8e5, 6.4e6])
    pair = cost_model.payload_bytes_per_item("write", 16, 2, 2, fraction_remote=1.0)
    assert write["break_even_items_per_s_per_rank"]["10"] == pytest.approx(10e9 / 8 / pair)
    for link in ("10", "100"):  # the model is slower than each of its two bounds
        for p, net, comp in zip(
            write[link],
            write["network_bound_items_per_s"][link],
            write["compute_bound_items_per_s"],
            strict=True,
        ):
            assert p["items_per_s"] < min(net, comp)
    assert sb.project([{"world_size": 2}], 16, 2, 256, [8], [10], 10.0) == (None, {})


def test_projection_sentences_name_the_largest_term():
    slow = sb.projection_sentences(projection_metrics(compute_s=1e-3))
    assert "W=8: compute" in slow and "stays below compute at every link speed" in slow
    fast = sb.projection_sentences(projection_metrics(compute_s=1e-9))
    assert "Where latency is largest" in fast or "the links themselves are the bottleneck" in fast
    assert sb.projection_sentences({"projection": {}}).startswith("No projection")
    header, rows = sb.projection_table(projection_metrics())
    assert len(rows) == 2 * 2 * 2 and all(len(r) == len(header) for r in rows)


@pytest.mark.parametrize(
    "values, text",
    [([], "none"), ([1], "1"), ([1, 2], "1 and 2"), ([8, 64, 512], "8, 64 and 512")],
)
def test_and_list_writes_a_parameter_list_as_prose(values, text):
    assert sb.and_list(values) == text
