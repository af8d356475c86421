"""A checkpoint is checked whole before anything is copied: config (dtype included), every
buffer's shape and dtype, and for sharded checkpoints the shard file names."""

import json
import os
import tempfile

import pytest
import torch
import torch.distributed as dist

from bbpm import BBPMMemoryFloat, BlockPermutationHash, GlobalAffineHash
from bbpm.distributed import checkpoint
from bbpm.distributed.sharded_memory import ShardedBBPMMemory


def filled(dtype=torch.float32, seed=1, D=4096):
    mem = BBPMMemoryFloat(D, 4, 2, 1, GlobalAffineHash(D, seed=seed), dtype=dtype)
    mem.write(torch.arange(50), torch.randn(50, 4, dtype=dtype))
    return mem


def snapshot(mem):
    return mem.memory.clone(), mem.counts.clone()


def unchanged(mem, before):
    return torch.equal(mem.memory, before[0]) and torch.equal(mem.counts, before[1])


@pytest.mark.parametrize(
    ("saved", "target"),
    [
        (torch.float32, torch.float16),
        (torch.float64, torch.float32),
        (torch.float16, torch.float32),
    ],
)
def test_a_checkpoint_of_another_dtype_is_refused_with_the_memory_unchanged(saved, target):
    state = filled(saved).state_dict()
    mem = filled(target, seed=1)
    before = snapshot(mem)
    with pytest.raises(ValueError, match="dtype"):
        mem.load_state_dict(state)
    assert unchanged(mem, before)


@pytest.mark.parametrize("strict", [True, False])
def test_a_state_dict_without_config_is_refused_unless_the_caller_opts_in(strict):
    other_seed = filled(seed=2).state_dict()
    del other_seed["_extra_state"]
    mem = filled(seed=1)
    before = snapshot(mem)
    with pytest.raises(ValueError, match="allow_missing_config=True"):
        mem.load_state_dict(other_seed, strict=strict)
    assert unchanged(mem, before)
    mem.load_state_dict(other_seed, strict=strict, allow_missing_config=True)
    assert torch.equal(mem.memory, other_seed["memory"])
    assert torch.equal(mem.counts, other_seed["counts"])


def test_the_opt_in_still_checks_the_buffers():
    state = filled(torch.float64).state_dict()
    del state["_extra_state"]
    mem = filled()
    before = snapshot(mem)
    with pytest.raises(ValueError, match="float64"):
        mem.load_state_dict(state, allow_missing_config=True)
    assert unchanged(mem, before)


@pytest.mark.parametrize(
    "broken",
    [
        lambda s: s.update(counts=s["counts"][:-1]),
        lambda s: s.update(counts=s["counts"].reshape(1, -1)),
        lambda s: s.update(memory=s["memory"][:, :3]),
        lambda s: s.pop("counts"),
        lambda s: s.update(counts=[0.0]),
        lambda s: s.update(_extra_state="float32"),
    ],
    ids=["short_counts", "counts_shape", "narrow_memory", "no_counts", "counts_list", "config_str"],
)
def test_a_wrong_buffer_is_refused_before_any_buffer_is_copied(broken):
    state = filled(seed=1).state_dict()
    state["memory"] = state["memory"] + 1.0  # distinguishable from the target's table
    broken(state)
    mem = filled(seed=1)
    before = snapshot(mem)
    with pytest.raises(ValueError):
        mem.load_state_dict(state)
    assert unchanged(mem, before)


def test_from_state_dict_builds_the_saved_dtype_and_a_memory_inside_a_module_is_checked_too():
    state = filled(torch.float16).state_dict()
    assert BBPMMemoryFloat.from_state_dict(state).memory.dtype == torch.float16
    outer = torch.nn.Sequential(filled())
    before = snapshot(outer[0])
    with pytest.raises(ValueError, match="dtype"):
        outer.load_state_dict({f"0.{k}": v for k, v in state.items()})
    assert unchanged(outer[0], before)


# ---------------------------------------------------------------------------- sharded


@pytest.fixture(scope="module")
def group():
    """A world of one process (gloo), so sharded checkpoints run in this process."""
    if dist.is_initialized():
        yield None
        return
    with tempfile.TemporaryDirectory() as store:
        dist.init_process_group(
            "gloo", init_method=f"file://{os.path.join(store, 'store')}", rank=0, world_size=1
        )
        yield None
        dist.destroy_process_group()


def saved_shards(tmp_path):
    mem = ShardedBBPMMemory(4096, 4, 2, 1, BlockPermutationHash(4096, 512, seed=3))
    keys = torch.arange(40)
    mem.write(keys, torch.randn(40, 4))
    mem.save(tmp_path)
    return mem, keys


def rewrite_metadata(tmp_path, **changes):
    path = tmp_path / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata.update(changes)
    path.write_text(json.dumps(metadata))


@pytest.mark.parametrize(
    "name",
    ["../outside.pt", "/etc/passwd", "sub/shard_0_of_1.pt", "..", "", "link.pt"],
)
def test_shard_names_outside_the_checkpoint_folder_are_refused(group, tmp_path, name):
    folder = tmp_path / "ckpt"
    mem, keys = saved_shards(folder)
    outside = tmp_path / "outside.pt"
    torch.save(torch.load(folder / "shard_0_of_1.pt"), outside)
    (folder / "link.pt").symlink_to(outside)
    rewrite_metadata(folder, shards=[name])
    with pytest.raises(ValueError, match="shard"):
        checkpoint.read_metadata(folder)
    with pytest.raises(ValueError, match="shard"):
        ShardedBBPMMemory.load(folder)
    with pytest.raises(ValueError, match="shard"):
        checkpoint.to_single_process_state_dict(folder)
    rewrite_metadata(folder, shards=["shard_0_of_1.pt"])  # the real name loads
    assert torch.equal(ShardedBBPMMemory.load(folder).read(keys), mem.read(keys))


def test_a_shard_of_another_dtype_or_shape_is_refused(group, tmp_path):
    saved_shards(tmp_path)
    shard_file = tmp_path / "shard_0_of_1.pt"
    shard = torch.load(shard_file)
    shard["memory"] = shard["memory"].double()
    torch.save(shard, shard_file)
    with pytest.raises(ValueError, match="float64"):
        ShardedBBPMMemory.load(tmp_path)
    with pytest.raises(ValueError, match="float64"):
        checkpoint.to_single_process_state_dict(tmp_path)
    shard["memory"] = shard["memory"].float()[:-1]
    torch.save(shard, shard_file)
    with pytest.raises(ValueError, match="shape"):
        ShardedBBPMMemory.load(tmp_path)


def test_sharded_load_state_dict_checks_dtype_and_single_process_dicts_are_checked(group):
    mem = ShardedBBPMMemory(4096, 4, 2, 1, BlockPermutationHash(4096, 512))
    mem.write(torch.arange(10), torch.ones(10, 4))
    state = mem.state_dict()
    state["memory"] = state["memory"].half()
    state["_extra_state"] = {**state["_extra_state"], "dtype": "float16"}
    before = snapshot(mem)
    with pytest.raises(ValueError, match="dtype"):
        mem.load_state_dict(state)
    assert unchanged(mem, before)
    single = BBPMMemoryFloat(4096, 4, 2, 1, BlockPermutationHash(4096, 512)).state_dict()
    single["counts"] = single["counts"].double()
    with pytest.raises(ValueError, match="counts"):
        checkpoint.from_single_process_state_dict(single)
