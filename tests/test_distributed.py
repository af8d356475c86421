"""The sharded memory equals the single-process memory, rejects bad input on every rank,
and re-shards its checkpoints across world sizes.

Spawning processes dominates the cost, so one 2-rank and one 4-rank gloo run (module
fixtures) perform every distributed scenario and return what they saw; the tests below
compare those results with a single-process BBPMMemoryFloat replaying the same writes.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

from bbpm import BBPMMemoryFloat, BlockPermutationHash, GlobalAffineHash, MultiHashWrapper
from bbpm.distributed import (
    BlockAssignment,
    ShardedBBPMMemory,
    cost_model,
    from_single_process_state_dict,
    spawn_local,
    to_single_process_state_dict,
)

D, L, d = 512, 64, 4  # 8 blocks: 4 per rank with W = 2, 2 per rank with W = 4

# name -> (constructor kwargs, reads must be bitwise equal to the single-process memory)
CONFIGS: dict[str, tuple[dict[str, Any], bool]] = {
    "H1": (dict(K=8, H=1, hash_fn=BlockPermutationHash(D, L, seed=3)), True),
    "H1_float16": (
        dict(K=8, H=1, hash_fn=BlockPermutationHash(D, L, seed=11), dtype=torch.float16),
        True,
    ),
    "H3": (dict(K=8, H=3, hash_fn=BlockPermutationHash(D, L, seed=5)), False),
    "multihash_modulo": (
        dict(
            K=4,
            H=2,
            hash_fn=MultiHashWrapper(BlockPermutationHash(D, L), seed=7),
            write_scale="unit",
            assignment="modulo",
        ),
        False,
    ),
}
MULTI_HASH_ATOL = 1e-6
# forkserver: the workers of both runs fork from one server that imported torch once
START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


# ---------------------------------------------------------------------------- scenario
def write_rounds(rank: int, world: int) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
    """This rank's batches, one per write call: uneven sizes with duplicate keys (within and
    across ranks), a single-writer round (only rank 0 has data; the others pass None) and a
    round where the last rank passes an empty batch."""
    gen = torch.Generator().manual_seed(100 + rank)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        keys = torch.randint(-20, 40, (n,), generator=gen)
        keys[n // 2 :: 4] = keys[0]  # a duplicate key inside the batch
        return keys, torch.randn(n, d, generator=gen)

    uneven = batch([5, 9, 3, 7][rank % 4] + rank)
    single_writer = batch(6) if rank == 0 else None
    some_empty = (
        (torch.empty(0, dtype=torch.int64), torch.empty(0, d)) if rank == world - 1 else batch(4)
    )
    return [uneven, single_writer, some_empty]


def read_rounds(rank: int) -> list[torch.Tensor | None]:
    """Keys each rank reads: written and unwritten keys with duplicates, then rank 1 reads nothing."""
    keys = torch.cat([torch.arange(-25, 45), torch.tensor([3, 3, -7])]).roll(7 * rank)
    return [keys, None if rank == 1 else keys[: 5 + rank]]


def reference_memory(name: str, world: int) -> BBPMMemoryFloat:
    """Single-process memory after the writes of all ranks, each call's batches concatenated in rank order."""
    kwargs, _ = CONFIGS[name]
    kwargs = {k: v for k, v in kwargs.items() if k != "assignment"}
    memory = BBPMMemoryFloat(D, d, **kwargs)
    per_rank = [write_rounds(r, world) for r in range(world)]
    for call in zip(*per_rank, strict=True):
        present = [b for b in call if b is not None]
        memory.write(torch.cat([b[0] for b in present]), torch.cat([b[1] for b in present]))
    return memory


def build(name: str, group: Any = None) -> ShardedBBPMMemory:
    kwargs, _ = CONFIGS[name]
    return ShardedBBPMMemory(D, d, group=group, **kwargs)


def caught(call) -> tuple[str, str] | None:
    try:
        call()
    except Exception as exc:  # recorded and asserted on in the main process
        return type(exc).__name__, str(exc)
    return None


# ---------------------------------------------------------------------------- workers
def checks_worker(
    rank: int, world: int, workdir: str, resharding_from: str | None
) -> dict[str, Any]:
    """Every distributed scenario for one rank; returns what it observed."""
    out: dict[str, Any] = {"reads": {}, "state": {}, "traffic": {}, "errors": {}}
    for name in CONFIGS:
        memory = build(name)
        for round_batch in write_rounds(rank, world):
            memory.write(*(round_batch or (None, None)))
        out["reads"][name] = [memory.read(keys) for keys in read_rounds(rank)]
        out.setdefault("rule_reads", {})[name] = {
            rule: [memory.read(keys, read_rule=rule) for keys in read_rounds(rank)]
            for rule in ("mean", "inverse_noise")
        }
        out["state"][name] = {
            "memory": memory.memory.clone(),
            "counts": memory.counts.clone(),
            "blocks": memory.local_blocks,
        }
        out["traffic"][name] = {op: t.as_dict() for op, t in memory.traffic.items()}
        memory.save(Path(workdir) / f"ckpt_{name}_W{world}")

    # Bad input on one rank: every rank raises, nothing changes, the group stays usable.
    memory = build("H1")
    for round_batch in write_rounds(rank, world):
        memory.write(*(round_batch or (None, None)))
    before = (memory.memory.clone(), memory.counts.clone())
    keys = torch.arange(6)
    good = (keys, torch.ones(6, d))
    nan_values = torch.ones(6, d)
    nan_values[2, 1] = float("nan")
    bad_cases = {
        "nan_values_on_last_rank": (
            world - 1,
            lambda: memory.write(keys, nan_values),
            lambda: memory.write(*good),
        ),
        "float_keys_on_rank_0": (0, lambda: memory.read(keys.float()), lambda: memory.read(keys)),
        "wrong_d_on_rank_1": (
            1,
            lambda: memory.write(keys, torch.ones(6, d + 1)),
            lambda: memory.write(*good),
        ),
        "keys_without_values_on_rank_1": (
            1,
            lambda: memory.write(keys, None),
            lambda: memory.write(*good),
        ),
    }
    for case, (bad_rank, bad_call, good_call) in bad_cases.items():
        out["errors"][case] = caught(bad_call if rank == bad_rank else good_call)
    out["errors"]["mismatched_operations"] = caught(
        lambda: memory.read(keys) if rank == 0 else memory.write(*good)
    )
    out["unchanged_after_errors"] = torch.equal(before[0], memory.memory) and torch.equal(
        before[1], memory.counts
    )
    out["reads_after_errors"] = memory.read(read_rounds(rank)[0])
    seed = 99 if rank == world - 1 else 3
    out["errors"]["config_differs_on_last_rank"] = caught(
        lambda: ShardedBBPMMemory(D, d, 8, 1, BlockPermutationHash(D, L, seed=seed))
    )

    if resharding_from is not None:  # checkpoints written by another world size
        out["resharded_reads"] = {}
        for name in CONFIGS:
            loaded = ShardedBBPMMemory.load(Path(resharding_from) / f"ckpt_{name}_W2")
            out["resharded_reads"][name] = [loaded.read(k) for k in read_rounds(0)[:1]]
        solo = dist.new_group([0])  # a world of one inside this run
        if rank == 0:
            loaded = ShardedBBPMMemory.load(Path(resharding_from) / "ckpt_H3_W2", group=solo)
            out["world_of_one"] = {
                "local_slots": loaded.memory.shape[0],
                "reads": loaded.read(read_rounds(0)[0]),
            }
        single = torch.load(Path(workdir) / "single_H1.pt", weights_only=False)
        from_single = from_single_process_state_dict(single)
        out["from_single_reads"] = from_single.read(read_rounds(rank)[0])
    return out


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def run2(tmp_path_factory) -> tuple[list[dict[str, Any]], Path]:
    workdir = tmp_path_factory.mktemp("sharded_W2")
    return spawn_local(
        checks_worker, 2, (str(workdir), None), timeout_s=120, start_method=START_METHOD
    ), workdir


@pytest.fixture(scope="module")
def run4(run2, tmp_path_factory) -> tuple[list[dict[str, Any]], Path]:
    workdir = tmp_path_factory.mktemp("sharded_W4")
    torch.save(reference_memory("H1", 4).state_dict(), workdir / "single_H1.pt")
    return spawn_local(
        checks_worker, 4, (str(workdir), str(run2[1])), timeout_s=120, start_method=START_METHOD
    ), workdir


@pytest.fixture(params=[2, 4], ids=["W2", "W4"])
def run(request, run2, run4) -> tuple[int, list[dict[str, Any]], Path]:
    results, workdir = {2: run2, 4: run4}[request.param]
    return request.param, results, workdir


def assemble(states: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole [D, d] memory and [D, 1] counts from the ranks' shards."""
    memory = torch.zeros(D, d, dtype=states[0]["memory"].dtype)
    counts = torch.zeros(D, 1, dtype=states[0]["counts"].dtype)
    for state in states:
        rows = (state["blocks"][:, None] * L + torch.arange(L)).reshape(-1)
        memory[rows], counts[rows] = state["memory"], state["counts"]
    return memory, counts


# ---------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("name", list(CONFIGS))
def test_reads_equal_single_process_memory(run, name):
    world, results, _ = run
    reference = reference_memory(name, world)
    bitwise = CONFIGS[name][1]
    for rank, result in enumerate(results):
        for keys, got in zip(read_rounds(rank), result["reads"][name], strict=True):
            expected = reference.read(
                keys if keys is not None else torch.empty(0, dtype=torch.int64)
            )
            assert got.shape == expected.shape == (0 if keys is None else keys.numel(), d)
            if bitwise:
                assert torch.equal(got, expected), (rank, (got - expected).abs().max())
            else:
                torch.testing.assert_close(got, expected, rtol=0, atol=MULTI_HASH_ATOL)


@pytest.mark.parametrize("rule", ["mean", "inverse_noise"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_read_rules_equal_single_process_memory(run, name, rule):
    """The sharded rules (owners' partial sums, combined by the caller) give the
    single-process memory's read under the same rule, self-hits across hashes included."""
    world, results, _ = run
    reference = reference_memory(name, world)
    for rank, result in enumerate(results):
        for keys, got in zip(read_rounds(rank), result["rule_reads"][name][rule], strict=True):
            keys = keys if keys is not None else torch.empty(0, dtype=torch.int64)
            expected = reference.read(keys, read_rule=rule)
            assert got.shape == expected.shape
            torch.testing.assert_close(got, expected, rtol=0, atol=MULTI_HASH_ATOL)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_shards_together_hold_the_single_process_table(run, name):
    world, results, _ = run
    reference = reference_memory(name, world)
    memory, counts = assemble([result["state"][name] for result in results])
    assert torch.equal(counts, reference.counts)  # counts are exact integers
    assert reference.counts.max() >= 3  # slots really are shared: addition order matters
    if CONFIGS[name][1]:
        assert torch.equal(memory, reference.memory)
    else:
        torch.testing.assert_close(memory, reference.memory, rtol=0, atol=MULTI_HASH_ATOL)


def test_each_rank_stores_only_the_blocks_it_owns(run):
    world, results, _ = run
    for name, (kwargs, _) in CONFIGS.items():
        assignment = BlockAssignment(D // L, world, kwargs.get("assignment", "contiguous"))
        for rank, result in enumerate(results):
            state = result["state"][name]
            assert torch.equal(state["blocks"], assignment.blocks_of(rank))
            assert state["memory"].shape == (D // world, d)


def test_counted_bytes_match_the_pairs_sent_to_other_ranks(run):
    world, results, _ = run
    kwargs, _ = CONFIGS["H3"]
    assignment = BlockAssignment(D // L, world)
    for rank, result in enumerate(results):
        batches = [b for b in write_rounds(rank, world) if b is not None]
        keys = torch.cat([b[0] for b in batches])
        blocks = kwargs["hash_fn"].indices(keys, 1, kwargs["H"]) // L
        remote = int((assignment.owner(blocks) != rank).sum())
        traffic = result["traffic"]["H3"]["write"]
        assert traffic["pairs_remote"] == remote
        assert traffic["payload_bytes_remote"] == remote * cost_model.pair_bytes("write", d)
        assert traffic["header_bytes_remote"] == 3 * cost_model.header_bytes_per_call(world)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "case, exc_type, bad_rank, words",
    [
        ("nan_values_on_last_rank", "ValueError", -1, "NaN"),
        ("float_keys_on_rank_0", "TypeError", 0, "integer"),
        ("wrong_d_on_rank_1", "ValueError", 1, "shape [B, d]"),
        ("keys_without_values_on_rank_1", "TypeError", 1, "values must be a torch.Tensor"),
    ],
)
def test_bad_input_on_one_rank_raises_on_every_rank(run, case, exc_type, bad_rank, words):
    world, results, _ = run
    bad_rank = bad_rank % world
    for result in results:
        name, message = result["errors"][case]
        assert name == exc_type
        assert f"rank {bad_rank} of {world}" in message and words in message
        assert "nothing was written" in message


def test_rejected_batches_change_nothing_and_the_group_keeps_working(run):
    world, results, _ = run
    reference = reference_memory("H1", world)
    for rank, result in enumerate(results):
        assert result["unchanged_after_errors"]
        assert torch.equal(result["reads_after_errors"], reference.read(read_rounds(rank)[0]))


def test_ranks_calling_different_operations_all_raise(run):
    _, results, _ = run
    for result in results:
        name, message = result["errors"]["mismatched_operations"]
        assert name == "RuntimeError" and "rank 0: read" in message and "rank 1: write" in message


def test_settings_that_differ_between_ranks_are_refused_on_every_rank(run):
    world, results, _ = run
    for result in results:
        name, message = result["errors"]["config_differs_on_last_rank"]
        assert name == "ValueError" and "hash" in message and f"rank {world - 1}" in message


# ---------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("name", list(CONFIGS))
def test_checkpoint_from_two_ranks_reads_the_same_on_four(run2, run4, name):
    for rank, result in enumerate(run4[0]):
        expected = run2[0][0]["reads"][name][0]  # rank 0 of W=2 read read_rounds(0)[0]
        assert torch.equal(result["resharded_reads"][name][0], expected), (name, rank)


def test_checkpoint_from_two_ranks_loads_into_a_world_of_one(run2, run4):
    solo = run4[0][0]["world_of_one"]
    assert solo["local_slots"] == D
    assert torch.equal(solo["reads"], run2[0][0]["reads"]["H3"][0])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_checkpoint_converts_to_a_plain_single_process_memory(run2, name):
    results, workdir = run2
    plain = BBPMMemoryFloat.from_state_dict(
        to_single_process_state_dict(workdir / f"ckpt_{name}_W2")
    )
    memory, counts = assemble([result["state"][name] for result in results])
    assert torch.equal(plain.memory, memory) and torch.equal(plain.counts, counts)
    keys = read_rounds(0)[0]
    expected = reference_memory(name, 2).read(keys)
    if CONFIGS[name][1]:
        assert torch.equal(plain.read(keys), expected)
    else:
        torch.testing.assert_close(plain.read(keys), expected, rtol=0, atol=MULTI_HASH_ATOL)


def test_single_process_state_dict_shards_onto_four_ranks(run4):
    reference = reference_memory("H1", 4)
    for rank, result in enumerate(run4[0]):
        assert torch.equal(result["from_single_reads"], reference.read(read_rounds(rank)[0]))


# ---------------------------------------------------------------------------- no process group
@pytest.mark.parametrize("n_blocks, world", [(8, 2), (8, 3), (10, 4), (3, 4), (1, 1)])
@pytest.mark.parametrize("strategy", ["contiguous", "modulo"])
def test_block_assignment_gives_every_block_one_owner(n_blocks, world, strategy):
    assignment = BlockAssignment(n_blocks, world, strategy)
    blocks = torch.arange(n_blocks)
    owner, local = assignment.owner(blocks), assignment.local_index(blocks)
    sizes = [assignment.n_local_blocks(r) for r in range(world)]
    assert sum(sizes) == n_blocks and max(sizes) - min(sizes) <= 1
    for rank in range(world):
        mine = assignment.blocks_of(rank)
        assert torch.equal(owner[mine], torch.full_like(mine, rank))
        assert torch.equal(local[mine], torch.arange(mine.numel()))


def test_memory_needs_an_initialised_process_group():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        ShardedBBPMMemory(D, d, 8, 1, BlockPermutationHash(D, L))


def test_memory_checks_K_against_the_block_size_before_any_collective():
    with pytest.raises(ValueError, match="block_size"):
        ShardedBBPMMemory(D, d, L + 1, 1, BlockPermutationHash(D, L))


def test_memory_needs_a_block_hash():
    with pytest.raises(TypeError, match="BlockPermutationHash"):
        ShardedBBPMMemory(D, d, 8, 1, GlobalAffineHash(D))


def test_cost_model_counts_key_hash_id_and_value_bytes():
    # write: H * (W-1)/W * (8 + 1 + d*4); read: the same request plus d*4 answered.
    assert cost_model.payload_bytes_per_item("write", d=64, H=2, world_size=4) == 2 * 0.75 * (
        9 + 256
    )
    assert cost_model.payload_bytes_per_item(
        "read", d=64, H=1, world_size=2, answer_bytes=8
    ) == 0.5 * (9 + 512)
    assert cost_model.payload_bytes_per_item("write", d=64, H=2, world_size=1) == 0
    assert cost_model.bytes_per_item("read", 64, 1, 3, batch_per_rank=48) == pytest.approx(
        2 / 3 * 265 + 48 / 48
    )
    fast = cost_model.project("write", 64, 1, 8, 4096, 12.5e9, 5e-6, 1e-7)
    slow = cost_model.project("write", 64, 1, 8, 4096, 1.25e9, 5e-6, 1e-7)
    assert fast["items_per_s"] > slow["items_per_s"]


def test_missing_checkpoint_names_the_metadata_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        to_single_process_state_dict(tmp_path)
