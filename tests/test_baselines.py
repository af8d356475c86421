"""Peer memories (bbpm.baselines): retrieval at low load, degradation with load, byte
budgets, input errors, determinism, and the closed-form predictions beside them."""

import math

import numpy as np
import pytest
import torch

from bbpm.baselines import (
    METHODS,
    CountSketchMemory,
    ExactDictMemory,
    FHRRMemory,
    FlyHashHebbianMemory,
    HopfieldMemory,
    bbpm_from_budget,
    decode_top1,
    make_memory,
    random_codebook,
    theory,
)
from bbpm.baselines.keycodes import _splitmix64_, key_gaussian, key_phases, key_uniform
from bbpm.hashing.mixing import splitmix64
from bbpm.memory.base import AssociativeMemory
from bbpm.memory.kernels import native

D_VALUE, CODES, BUDGET = 32, 256, 32 * 1024  # the budget holds 256 float32 32-vectors
VALUE_SLOTS = BUDGET // (4 * D_VALUE)


def task(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n distinct keys, their code ids and the codebook (the notebook's task, small)."""
    keys = splitmix64(torch.arange(n) + 1000 * seed)
    ids = torch.randint(0, CODES, (n,), generator=torch.Generator().manual_seed(seed))
    return keys, ids, random_codebook(CODES, D_VALUE, seed=1)


def accuracy(method: str, n: int, seed: int = 0) -> float:
    keys, ids, codebook = task(n)
    memory = make_memory(method, BUDGET, D_VALUE, seed=seed)
    memory.write(keys, codebook[ids])
    decoded, _, _ = decode_top1(memory.read(keys), codebook)
    return float((decoded == ids).double().mean())


# ---------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize("method", METHODS)
def test_low_load_decodes_every_key(method):
    assert accuracy(method, VALUE_SLOTS // 16) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_accuracy_falls_with_load(method):
    low, high = accuracy(method, VALUE_SLOTS // 16), accuracy(method, 16 * VALUE_SLOTS)
    assert high < low - 0.5


@pytest.mark.parametrize("method", METHODS)
def test_nbytes_fills_the_budget_within_rounding(method):
    memory = make_memory(method, BUDGET, D_VALUE)
    unit = {
        "dict": 8 + 4 * D_VALUE,
        "hopfield": 4 * (64 + D_VALUE),
        "fhrr": 8 * D_VALUE,
        "flyhash": 4 * D_VALUE,
        "count_sketch": 5 * 4 * D_VALUE,
    }.get(method, 4 * D_VALUE + 4)
    if method == "bbpm_block":
        unit *= 2  # one slot lost per block at most, on top of the slot rounding
    assert BUDGET - unit < memory.nbytes <= BUDGET
    assert isinstance(memory, AssociativeMemory)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_reads_and_clear_forgets(method):
    keys, ids, codebook = task(200)
    reads = []
    for _ in range(2):
        memory = make_memory(method, BUDGET, D_VALUE, seed=3)
        memory.write(keys, codebook[ids])
        reads.append(memory.read(keys))
    torch.testing.assert_close(reads[0], reads[1], rtol=0, atol=0)
    memory.clear()
    assert float(memory.read(keys).abs().max()) == 0.0


@pytest.mark.parametrize(
    "method", ["fhrr", "hopfield", "flyhash", "count_sketch", "bbpm_global", "bbpm_block"]
)
def test_seed_changes_the_hashing(method):
    keys, ids, codebook = task(2 * VALUE_SLOTS)
    reads = []
    for seed in (0, 1):
        memory = make_memory(method, BUDGET, D_VALUE, seed=seed)
        memory.write(keys, codebook[ids])
        reads.append(memory.read(keys[:50]))
    assert float((reads[0] - reads[1]).abs().max()) > 1e-3


def test_fhrr_unbinds_a_lone_item_exactly_and_crosstalk_matches_theory():
    memory = FHRRMemory(d=256, n_banks=1)
    value = torch.nn.functional.normalize(torch.randn(1, 256), dim=1)
    memory.write(torch.tensor([7]), value)
    torch.testing.assert_close(memory.read(torch.tensor([7])), value, rtol=1e-5, atol=1e-5)
    memory.clear()
    n = 33
    keys = torch.arange(n) * 11
    values = torch.nn.functional.normalize(torch.randn(n, 256), dim=1)
    memory.write(keys, values)
    measured = float(torch.nn.functional.cosine_similarity(memory.read(keys), values).mean())
    # crosstalk energy (n-1)/2 = 16 -> cos ~ 1/sqrt(17) = 0.243
    assert measured == pytest.approx(
        float(theory.expected_cosine_gaussian((n - 1) / 2)[0]), abs=0.04
    )


def test_fhrr_banks_prediction_tracks_the_measurement():
    keys, ids, codebook = task(4 * VALUE_SLOTS)
    memory = make_memory("fhrr", BUDGET, D_VALUE)
    memory.write(keys, codebook[ids])
    reads = memory.read(keys)
    decoded, _, _ = decode_top1(reads, codebook)
    predicted = theory.fhrr_banks_prediction(keys.numel(), memory.n_banks, D_VALUE, CODES)
    cosine = float(torch.nn.functional.cosine_similarity(reads, codebook[ids]).mean())
    assert cosine == pytest.approx(predicted["cosine"], abs=0.05)
    assert float((decoded == ids).double().mean()) == pytest.approx(predicted["accuracy"], abs=0.1)


def test_dict_is_fifo_when_full_and_rewrites_in_place():
    memory = ExactDictMemory(d=2, capacity=3)
    memory.write(torch.tensor([1, 2, 3]), torch.eye(3)[:, :2] + 1)
    memory.write(torch.tensor([2]), torch.tensor([[9.0, 9.0]]))  # rewrite: no new row
    assert len(memory) == 3
    memory.write(torch.tensor([4]), torch.tensor([[5.0, 5.0]]))  # full: key 1 (oldest row) goes
    out = memory.read(torch.tensor([1, 2, 3, 4, 99]))
    torch.testing.assert_close(
        out, torch.tensor([[0.0, 0.0], [9.0, 9.0], [1.0, 1.0], [5.0, 5.0], [0.0, 0.0]])
    )
    memory.write(torch.tensor([5, 5]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # last write wins
    torch.testing.assert_close(memory.read(torch.tensor([5])), torch.tensor([[0.0, 1.0]]))
    assert memory.nbytes == 3 * (8 + 2 * 4)


def test_dict_batch_larger_than_capacity_equals_one_key_at_a_time():
    """The bulk path for a batch of more new keys than rows leaves the same state (rows,
    ring pointer, reads) as writing the keys one by one."""
    keys, values = torch.arange(100, 137), torch.randn(37, 2)
    bulk, single = ExactDictMemory(d=2, capacity=8), ExactDictMemory(d=2, capacity=8)
    for memory in (bulk, single):
        memory.write(torch.tensor([1, 2, 3]), torch.ones(3, 2))  # ring pointer not at 0
    bulk.write(keys, values)
    for key, value in zip(keys, values):
        single.write(key.reshape(1), value.reshape(1, 2))
    assert bulk._next == single._next and bulk._row_of == single._row_of
    assert torch.equal(bulk.keys, single.keys) and torch.equal(bulk.values, single.values)
    probe = torch.cat([torch.tensor([1, 2, 3]), keys])
    torch.testing.assert_close(bulk.read(probe), single.read(probe))
    assert len(bulk) == 8 and torch.equal(bulk.read(keys[-8:]), values[-8:])


def test_unbounded_dict_grows_and_counts_its_bytes():
    memory = ExactDictMemory(d=4)
    keys, values = torch.arange(1000), torch.randn(1000, 4)
    memory.write(keys[:600], values[:600])
    memory.write(keys[400:], values[400:])  # 200 rewrites, 400 new
    torch.testing.assert_close(memory.read(keys), values)
    assert memory.nbytes == 1000 * (8 + 16)


def test_hopfield_forgets_the_oldest_beyond_capacity():
    memory = HopfieldMemory(d=D_VALUE, capacity=64)
    keys, ids, codebook = task(96)
    memory.write(keys[:50], codebook[ids[:50]])
    memory.write(keys[50:], codebook[ids[50:]])
    decoded, _, _ = decode_top1(memory.read(keys), codebook)
    correct = (decoded == ids).double()
    assert float(correct[32:].mean()) == 1.0  # the last 64 are held exactly
    assert float(correct[:32].mean()) < 0.2  # the first 32 were overwritten
    assert len(memory) == 64


def test_hopfield_settle_steps_keep_exact_retrieval():
    memory = HopfieldMemory(d=D_VALUE, capacity=128, settle_steps=3)
    keys, ids, codebook = task(100)
    memory.write(keys, codebook[ids])
    decoded, cosine, _ = decode_top1(memory.read(keys), codebook)
    assert float((decoded == ids).double().mean()) == 1.0
    assert float(cosine.min()) > 0.95


def test_flyhash_codes_are_k_distinct_winners():
    memory = FlyHashHebbianMemory(d=8, m=512, k=8)
    codes = memory.codes(torch.arange(100))
    assert codes.shape == (100, 8)
    assert all(len(set(row)) == 8 for row in codes.tolist())
    assert int(codes.min()) >= 0 and int(codes.max()) < 512
    # different keys get nearly disjoint codes (expected overlap k^2/m = 0.125 units)
    overlap = np.mean(
        [
            len(set(a) & set(b))
            for a, b in zip(codes[:50].tolist(), codes[50:].tolist(), strict=True)
        ]
    )
    assert overlap < 1.0


@pytest.mark.skipif(not native.available(), reason="needs the native CPU kernel")
@pytest.mark.parametrize("m, k", [(512, 8), (3000, 50), (20, 20)])
def test_flyhash_native_encoder_picks_the_same_winners_as_torch(m, k):
    fast = FlyHashHebbianMemory(d=8, m=m, k=k, backend="native")
    slow = FlyHashHebbianMemory(d=8, m=m, k=k, backend="torch")
    assert fast.encoder_backend() == "native" and slow.encoder_backend() == "torch"
    keys = torch.arange(-500, 537)  # 1037 keys: not a multiple of the kernel's 16 lanes
    patterns = key_gaussian(keys, fast._salt, fast.key_dim)
    act = slow.activations(patterns)
    winners_fast, winners_slow = fast.codes(keys), slow.codes(keys)
    # bitwise the same activations; ties aside, the same sets of winners
    values_fast = act.gather(1, winners_fast).sort(dim=1).values
    values_slow = act.gather(1, winners_slow).sort(dim=1).values
    assert torch.equal(values_fast, values_slow)
    assert all(len(set(row)) == k for row in winners_fast.tolist())
    same_sets = (winners_fast.sort(dim=1).values == winners_slow.sort(dim=1).values).all(dim=1)
    assert float(same_sets.double().mean()) > 0.99


def test_flyhash_native_encoder_breaks_ties_towards_lower_units():
    if not native.available():
        pytest.skip("needs the native CPU kernel")
    inputs = torch.tensor([[0, 1], [0, 1], [2, 3], [0, 1]], dtype=torch.int32)  # units 0, 1, 3 tie
    patterns = torch.tensor([[1.0, 1.0, 0.5, 0.5]])
    assert sorted(native.flyhash_topk(patterns, inputs, 2)[0].tolist()) == [0, 1]
    with pytest.raises(ValueError, match="inputs must be unit input ids"):
        native.flyhash_topk(patterns, inputs + 4, 2)
    with pytest.raises(ValueError, match="k <= m"):
        native.flyhash_topk(patterns, inputs, 5)


def test_flyhash_rejects_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        FlyHashHebbianMemory(d=8, m=64, backend="gpu")
    if native.available():
        with pytest.raises(ValueError, match="float32 patterns on the CPU"):
            FlyHashHebbianMemory(d=8, m=64, backend="native", dtype=torch.float64)
        assert FlyHashHebbianMemory(d=8, m=64, dtype=torch.float64).encoder_backend() == "torch"


def test_count_sketch_median_and_mean_and_even_rows():
    keys = torch.arange(3)
    values = torch.randn(3, 4)
    for rows in (4, 5):
        for estimator in ("median", "mean"):
            memory = CountSketchMemory(d=4, rows=rows, width=4096, estimator=estimator)
            memory.write(keys, values)
            torch.testing.assert_close(memory.read(keys), values)


def test_bbpm_from_budget_block_sizes_divide_the_table():
    memory = bbpm_from_budget(4 * 1024 * 1024, 64, K=4, hash="block")
    assert memory.D % memory.hash_fn.block_size == 0
    assert memory.hash_fn.block_size <= 4096
    assert 4 * 1024 * 1024 - memory.nbytes < memory.hash_fn.n_blocks * (64 * 4 + 4) + 64 * 4 + 4


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("method", METHODS)
def test_bad_keys_and_values_raise_clear_errors(method):
    memory = make_memory(method, BUDGET, D_VALUE)
    with pytest.raises(TypeError, match="keys must be an integer tensor"):
        memory.write(torch.tensor([1.0]), torch.zeros(1, D_VALUE))
    with pytest.raises(ValueError, match="values must have shape"):
        memory.write(torch.tensor([1]), torch.zeros(1, D_VALUE + 1))
    with pytest.raises(ValueError, match="NaN or inf"):
        memory.write(torch.tensor([1]), torch.full((1, D_VALUE), float("nan")))
    with pytest.raises(ValueError, match="1-D"):
        memory.read(torch.zeros(2, 2, dtype=torch.int64))


def test_budget_and_setting_errors_name_the_fix():
    with pytest.raises(ValueError, match="too small"):
        FHRRMemory.from_budget(100, 64)
    with pytest.raises(ValueError, match="too small"):
        ExactDictMemory.from_budget(10, 64)
    with pytest.raises(TypeError, match="nbytes must be an int"):
        HopfieldMemory.from_budget(1.5e6, 64)
    with pytest.raises(ValueError, match="k \\(winners\\) must be <= m"):
        FlyHashHebbianMemory(d=4, m=4, k=8)
    with pytest.raises(ValueError, match="fan_in must be < key_dim"):
        FlyHashHebbianMemory(d=4, m=64, key_dim=6, fan_in=6)
    with pytest.raises(ValueError, match="estimator must be one of"):
        CountSketchMemory(d=4, rows=3, width=8, estimator="mode")
    with pytest.raises(ValueError, match="beta must be a positive"):
        HopfieldMemory(d=4, capacity=8, beta=0.0)
    with pytest.raises(ValueError, match="method must be one of"):
        make_memory("lsh", BUDGET, D_VALUE)
    with pytest.raises(ValueError, match="hash must be one of"):
        bbpm_from_budget(BUDGET, D_VALUE, hash="cuckoo")
    with pytest.raises(ValueError, match="same d"):
        decode_top1(torch.zeros(2, 3), torch.zeros(5, 4))


# ---------------------------------------------------------------------------- helpers and theory


def test_decode_top1_reports_cosine_and_score():
    codebook = torch.eye(3)
    reads = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    ids, cosine, score = decode_top1(reads, codebook)
    assert ids[0] == 1 and cosine[0] == pytest.approx(1.0) and score[0] == pytest.approx(2.0)
    assert ids[1] == -1 and cosine[1] == 0.0 and score[1] == 0.0  # an empty read decodes to nothing
    assert cosine[2] == pytest.approx(1 / math.sqrt(2)) and score[2] == pytest.approx(1.0)


def test_key_codes_are_the_reference_splitmix_and_well_distributed():
    x = torch.randint(-(2**62), 2**62, (1000,))
    assert torch.equal(_splitmix64_(x.clone()), splitmix64(x))
    keys = torch.arange(20000)
    u = key_uniform(keys, 5, 16)
    assert (
        0.0 < float(u.min())
        and float(u.max()) <= 1.0
        and float(u.mean()) == pytest.approx(0.5, abs=0.01)
    )
    g = key_gaussian(keys, 5, 33)
    assert g.shape == (20000, 33) and float(g.std()) == pytest.approx(1.0, abs=0.02)
    p = key_phases(keys, 5, 64)
    assert float(torch.cos(p).pow(2).mean()) == pytest.approx(0.5, abs=0.01)
    assert torch.equal(key_phases(keys[:10], 5, 64), p[:10])  # a key's code ignores its batch


def test_gaussian_cleanup_theory_limits():
    acc = theory.top1_accuracy_gaussian(np.array([0.0, 1.0, 4.0, 64.0, 1e6]), d=64, C=1024)
    assert acc[0] == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.diff(acc) < 0) and acc[3] < 0.05
    assert acc[-1] == pytest.approx(1 / 1024, rel=0.2)  # pure noise: chance
    assert theory.median_variance_factor(1) == 1.0
    assert theory.median_variance_factor(3) == pytest.approx(1.3463, abs=2e-3)  # known: 0.4487 * 3
    assert theory.median_variance_factor(101) == pytest.approx(math.pi / 2, abs=0.02)
    np.testing.assert_allclose(theory.fifo_accuracy([10, 100, 400], 100), [1.0, 1.0, 0.25])


def test_flyhash_crosstalk_matches_the_code_overlap_theory():
    d, m, k = 64, 2048, 8
    memory = FlyHashHebbianMemory(d=d, m=m, k=k, seed=3)
    keys = splitmix64(torch.arange(6000))
    gen = torch.Generator().manual_seed(0)
    values = torch.nn.functional.normalize(torch.randn(6000, d, generator=gen), dim=1)
    overlap = theory.code_overlap_per_key(memory.codes(keys), m)
    # random keys give nearly uniform unit usage here: mean overlap close to k^2/m
    assert float(overlap.mean()) == pytest.approx(k * k / m, rel=0.1)
    written = 0
    for N in (1000, 3000, 6000):
        memory.write(keys[written:N], values[written:N])
        written = N
        measured = torch.nn.functional.cosine_similarity(memory.read(keys[:N]), values[:N]).mean()
        predicted = theory.hebbian_code_prediction(N, overlap, k, d, 1024)["cosine"]
        assert float(measured) == pytest.approx(predicted, abs=0.03), N
    with pytest.raises(ValueError, match="codes must be"):
        theory.code_overlap_per_key(torch.zeros(1, k, dtype=torch.int64), m)
