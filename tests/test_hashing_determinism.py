"""Hashing: range, shape, determinism (runs, processes), prototype exactness, block offsets."""

import math
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bbpm.hashing import BlockPermutationHash, GlobalAffineHash, MultiHashWrapper, hash_from_config
from bbpm.hashing import diagnostics as dg
from bbpm.hashing.mixing import splitmix64, splitmix64_int

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def all_hashes(D: int = 4096):
    return [
        GlobalAffineHash(D),
        GlobalAffineHash(D, mode="prototype"),
        BlockPermutationHash(D, 256),
        BlockPermutationHash(D, 256, distinct_blocks=False),
        MultiHashWrapper(GlobalAffineHash(D), seed=3),
        MultiHashWrapper(BlockPermutationHash(D, 512), seed=3),
    ]


@pytest.mark.parametrize("hash_fn", all_hashes(), ids=repr)
def test_indices_shape_dtype_and_range(hash_fn):
    keys = torch.arange(-500, 500)
    idx = hash_fn.indices(keys, 5, 3)
    assert idx.shape == (1000, 15)
    assert idx.dtype == torch.int64
    assert int(idx.min()) >= 0 and int(idx.max()) < hash_fn.D


@pytest.mark.parametrize("hash_fn", all_hashes(), ids=repr)
def test_same_indices_on_repeated_calls_and_fresh_objects(hash_fn):
    keys = torch.randint(-(2**62), 2**62, (300,))
    first = hash_fn.indices(keys, 7, 2)
    rebuilt = hash_from_config(hash_fn.config())
    assert torch.equal(first, hash_fn.indices(keys, 7, 2))
    assert torch.equal(first, rebuilt.indices(keys, 7, 2))


def test_same_indices_in_another_process():
    code = (
        "import torch;from bbpm.hashing import GlobalAffineHash, BlockPermutationHash;"
        "k=torch.arange(-50,50)*1000003;"
        "print(GlobalAffineHash(99991,seed=7).indices(k,4,2).sum().item(),"
        "BlockPermutationHash(4096*3,4096,seed=7).indices(k,4,2).sum().item())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    k = torch.arange(-50, 50) * 1000003
    assert int(out[0]) == GlobalAffineHash(99991, seed=7).indices(k, 4, 2).sum().item()
    assert int(out[1]) == BlockPermutationHash(4096 * 3, 4096, seed=7).indices(k, 4, 2).sum().item()


def test_splitmix64_matches_reference_values():
    # Reference: splitmix64 of state 0 produces 0xE220A8397B1DCDAF as its first output.
    assert splitmix64_int(0) == 0xE220A8397B1DCDAF - 2**64
    xs = [0, 1, -1, 2**63 - 1, -(2**63), 123456789]
    assert splitmix64(torch.tensor(xs)).tolist() == [splitmix64_int(x) for x in xs]


def test_prototype_mode_reproduces_the_salted_formula_exactly():
    D, K, H = 1_000_000, 50, 3
    keys = list(range(0, 5000, 37))
    idx = GlobalAffineHash(D, mode="prototype").indices(torch.tensor(keys), K, H)
    for row, key in zip(idx.tolist(), keys):
        expected = [
            (key * (h * 123456789 + 987654321) + k * 1337) % D for h in range(H) for k in range(K)
        ]
        assert row == expected


def test_seed_changes_the_default_hash():
    keys = torch.arange(1000)
    assert not torch.equal(
        GlobalAffineHash(10_000, seed=0).indices(keys, 4, 1),
        GlobalAffineHash(10_000, seed=1).indices(keys, 4, 1),
    )


def test_first_hash_is_a_prefix_when_H_grows():
    keys = torch.arange(100)
    for hash_fn in (GlobalAffineHash(5000), BlockPermutationHash(5000, 500, distinct_blocks=False)):
        assert torch.equal(hash_fn.indices(keys, 4, 3)[:, :4], hash_fn.indices(keys, 4, 1))


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(INT64, min_size=1, max_size=50),
    D=st.integers(1, 10**9),
    K=st.integers(1, 8),
    H=st.integers(1, 3),
)
def test_property_global_hash_range_and_determinism(keys, D, K, H):
    hash_fn = GlobalAffineHash(D)
    t = torch.tensor(keys, dtype=torch.int64)
    if K > D:  # K distinct slots do not fit
        with pytest.raises(ValueError, match="K <= D"):
            hash_fn.indices(t, K, H)
        return
    idx = hash_fn.indices(t, K, H)
    assert idx.shape == (len(keys), K * H)
    assert int(idx.min()) >= 0 and int(idx.max()) < D
    assert torch.equal(idx, GlobalAffineHash(D).indices(t.clone(), K, H))


@settings(max_examples=80, deadline=None)
@given(
    keys=st.lists(INT64, min_size=1, max_size=30),
    L=st.integers(1, 600),
    n_blocks=st.integers(1, 9),
    data=st.data(),
)
def test_property_block_offsets_pairwise_distinct_for_any_block_size(keys, L, n_blocks, data):
    K = data.draw(st.integers(1, L))
    H = data.draw(st.integers(1, n_blocks))
    hash_fn = BlockPermutationHash(L * n_blocks, L, seed=data.draw(st.integers(0, 2**31)))
    idx = hash_fn.indices(torch.tensor(keys, dtype=torch.int64), K, H)
    assert int(idx.min()) >= 0 and int(idx.max()) < L * n_blocks
    per_hash = idx.view(len(keys), H, K)
    blocks = per_hash // L
    assert bool((blocks == blocks[:, :, :1]).all()), "a hash's K slots must share one block"
    # distinct inside each hash, and (distinct_blocks=True) across the H hashes too
    for row in idx.tolist():
        assert len(set(row)) == K * H


def test_block_hash_without_distinct_blocks_can_self_collide_across_hashes():
    hash_fn = BlockPermutationHash(2 * 64, 64, distinct_blocks=False)
    idx = hash_fn.indices(torch.arange(2000), 32, 2)
    repeats = sum(len(set(row)) < 64 for row in idx.tolist())
    assert repeats > 0


def test_multihash_members_use_distinct_salts_and_report_diagnostics():
    wrapper = MultiHashWrapper(GlobalAffineHash(50_000), seed=1)
    keys = torch.arange(2000)
    idx = wrapper.indices(keys, 8, 3)
    assert not torch.equal(idx[:, :8], idx[:, 8:16])
    stats = wrapper.diagnostics(keys, 8, 3)
    for name in (
        "collision_rate",
        "max_load",
        "gini_load",
        "q2",
        "cross_hash_overlap",
        "per_hash_max_load",
    ):
        assert name in stats
    assert 0.0 <= stats["cross_hash_overlap"] < 0.05
    assert (idx[:, :8] == idx[:, 8:16]).double().mean() < 0.01  # not just one slot apart
    # values, not only keys: within one hash the 8 slots are distinct, so every repeated
    # slot of a key is a cross-hash overlap; per-hash max loads are those of each block
    small = MultiHashWrapper(GlobalAffineHash(5_000), seed=1)
    small_idx = small.indices(keys, 8, 3)
    small_stats = small.diagnostics(keys, 8, 3)
    assert small_stats["cross_hash_overlap"] == dg.self_collision_rate(small_idx)
    assert small_stats["per_hash_max_load"] == [
        dg.max_load(small_idx[:, 8 * h : 8 * h + 8], 5_000) for h in range(3)
    ]
    p = 1 - (1 - 64 / 5_000) ** 3  # P(some of hash g's 8 slots hit hash h's 8), 3 pairs
    assert abs(small_stats["cross_hash_overlap"] - p) < 4 * math.sqrt(p * (1 - p) / 2000)
    assert len(stats["per_hash_max_load"]) == 3


@pytest.mark.parametrize("D", [1_000_000, 1 << 20, 999_983, 4096, 7])
def test_default_global_hash_never_repeats_a_slot_within_one_hash(D):
    K = min(50, D)
    idx = GlobalAffineHash(D).indices(torch.arange(20_000), K, 1)
    sorted_rows = torch.sort(idx, dim=1).values
    assert not bool((sorted_rows[:, 1:] == sorted_rows[:, :-1]).any())


@pytest.mark.parametrize("D", [1_000_000, 999_983, 1 << 20, 4096 * 3, 2])
def test_stride_by_prime_factors_equals_the_gcd_reference(D, monkeypatch):
    keys = torch.randint(-(2**62), 2**62, (5000,))
    fast = GlobalAffineHash(D).indices(keys, 2, 2)
    monkeypatch.setattr("bbpm.hashing.global_hash.prime_factors", lambda n: None)
    assert torch.equal(fast, GlobalAffineHash(D).indices(keys, 2, 2))


# Pinned outputs: checkpoints store the hash's config, not its slots, so a change to any
# hash formula (a salt, a mixing step, the sign handling) would silently scramble every
# saved memory. These lists were produced by this code; a deliberate formula change must
# update them (and say so: old checkpoints then read wrongly).
PINNED_KEYS = [0, 1, -1, 2**63 - 1]
PINNED = {
    "GlobalAffineHash(99991, seed=7)": (
        lambda: GlobalAffineHash(99991, seed=7),
        [
            [8107, 4323, 539, 96746, 44151, 56169, 68187, 80205],
            [1299, 15172, 29045, 42918, 89151, 41525, 93890, 46264],
            [37304, 30410, 23516, 16622, 11821, 66084, 20356, 74619],
            [2147, 62789, 23440, 84082, 44182, 91926, 39679, 87423],
        ],
    ),
    "BlockPermutationHash(12288, 4096, seed=7)": (
        lambda: BlockPermutationHash(12288, 4096, seed=7),
        [
            [165, 2460, 659, 2954, 5703, 7862, 5925, 8084],
            [8614, 9807, 11000, 12193, 7141, 6322, 5503, 4684],
            [5584, 5449, 5314, 5179, 1215, 3850, 2389, 928],
            [6386, 4673, 7056, 5343, 2624, 705, 2882, 963],
        ],
    ),
    "GlobalAffineHash(99991, mode='prototype')": (
        lambda: GlobalAffineHash(99991, mode="prototype"),
        [
            [0, 1337, 2674, 4011, 0, 1337, 2674, 4011],
            [43214, 44551, 45888, 47225, 11118, 12455, 13792, 15129],
            [56777, 58114, 59451, 60788, 88873, 90210, 91547, 92884],
            [87454, 88791, 90128, 91465, 88873, 90210, 91547, 92884],
        ],
    ),
}


@pytest.mark.parametrize("name", list(PINNED))
def test_hash_outputs_are_pinned_across_versions(name):
    make, expected = PINNED[name]
    assert make().indices(torch.tensor(PINNED_KEYS), 4, 2).tolist() == expected


def test_prototype_pinned_values_follow_its_formula():
    # (key * salt_h + k * 1337) mod D with salt_h = h * 123456789 + 987654321, computed in
    # Python integers (no int64 wrap-around) for the keys that do not overflow int64 products
    D = 99991
    for row, key in zip(PINNED["GlobalAffineHash(99991, mode='prototype')"][1], PINNED_KEYS[:3]):
        formula = [
            (key * (h * 123456789 + 987654321) + k * 1337) % D for h in range(2) for k in range(4)
        ]
        assert row == formula
