"""Numerical reliability of the memories: eviction arguments, values that overflow the
storage dtype, exact decay, and the write limit of low-precision tables."""

import numpy as np
import pytest
import torch

from bbpm import BBPMMemoryFloat, GlobalAffineHash
from bbpm.memory import TTLEviction, clip, decay


def make_memory(dtype=torch.float32, D=4096, d=4, K=4, H=2, **kwargs):
    return BBPMMemoryFloat(D, d, K, H, GlobalAffineHash(D, seed=3), dtype=dtype, **kwargs)


def buffers(module):
    """Every tensor of the module's state (buffers), cloned."""
    return {
        name: value.clone()
        for name, value in module.state_dict().items()
        if isinstance(value, torch.Tensor)
    }


def assert_bit_identical(before, after):
    assert before.keys() == after.keys()
    for name in before:
        assert before[name].dtype == after[name].dtype, name
        assert torch.equal(
            before[name].reshape(-1).view(torch.uint8), after[name].reshape(-1).view(torch.uint8)
        ), name


@pytest.fixture
def filled():
    mem = make_memory()
    mem.write(torch.arange(100), torch.randn(100, 4, generator=torch.Generator().manual_seed(0)))
    return mem


BAD_NUMBERS = [
    (float("nan"), ValueError, "finite"),
    (float("inf"), ValueError, "finite"),
    (-float("inf"), ValueError, "finite"),
    (-0.5, ValueError, None),
    (0.0, ValueError, None),
    (True, TypeError, "bool"),
    (torch.tensor(0.5), TypeError, r"tensor\.item\(\)"),
    (None, TypeError, "NoneType"),
    ("0.5", TypeError, "str"),
]


@pytest.mark.parametrize(("value", "error", "words"), BAD_NUMBERS)
@pytest.mark.parametrize("policy", ["decay", "clip"])
def test_bad_eviction_number_raises_with_every_buffer_unchanged(
    filled, policy, value, error, words
):
    name = {"decay": "gamma", "clip": "max_norm"}[policy]
    before = buffers(filled)
    with pytest.raises(error, match=words or name) as raised:
        (decay if policy == "decay" else clip)(filled, value)
    assert name in str(raised.value)
    assert_bit_identical(before, buffers(filled))


def test_decay_factor_above_one_is_refused(filled):
    before = buffers(filled)
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\], got 1.5"):
        decay(filled, 1.5)
    assert_bit_identical(before, buffers(filled))


def test_numpy_numbers_are_accepted_as_eviction_arguments(filled):
    decay(filled, np.float32(0.5))
    assert clip(filled, np.float64(1e9)) == 0
    assert TTLEviction(filled, np.int64(3)).ttl == 3


@pytest.mark.parametrize(
    ("ttl", "error"),
    [
        (0, ValueError),
        (-2, ValueError),
        (1.5, TypeError),
        (float("nan"), TypeError),
        (float("inf"), TypeError),
        (True, TypeError),
        (torch.tensor(3), TypeError),
        (None, TypeError),
        ("3", TypeError),
    ],
)
def test_bad_ttl_is_refused(filled, ttl, error):
    before = buffers(filled)
    with pytest.raises(error, match="ttl must be a positive int"):
        TTLEviction(filled, ttl)
    assert_bit_identical(before, buffers(filled))


@pytest.mark.parametrize("not_a_memory", [None, "memory", torch.zeros(10, 4), object()])
def test_eviction_refuses_an_object_that_is_not_a_memory(not_a_memory):
    for call in (lambda: decay(not_a_memory, 0.5), lambda: clip(not_a_memory, 1.0)):
        with pytest.raises(TypeError, match="memory must be a BBPMMemoryFloat"):
            call()
    with pytest.raises(TypeError, match="memory must be a BBPMMemoryFloat"):
        TTLEviction(not_a_memory, 3)


# ---------------------------------------------------------------------------- overflow
@pytest.fixture
def single_rank_group():
    """A one-process gloo group, so a ShardedBBPMMemory runs in the test process."""
    import torch.distributed as dist

    dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    yield
    dist.destroy_process_group()


def make_sharded(dtype=torch.float32):
    from bbpm import BlockPermutationHash
    from bbpm.distributed import ShardedBBPMMemory

    return ShardedBBPMMemory(1024, 4, 4, 2, BlockPermutationHash(1024, 64, seed=2), dtype=dtype)


# a value finite in its own dtype but not in the table's, and the write scale 1/sqrt(8)
OVERFLOWS = [
    (torch.float32, torch.tensor(1e300, dtype=torch.float64)),
    (torch.float16, torch.tensor(2e5)),
    (torch.bfloat16, torch.tensor(1e300, dtype=torch.float64)),
]


@pytest.mark.parametrize(("dtype", "big"), OVERFLOWS)
def test_a_value_that_overflows_the_storage_dtype_is_refused(dtype, big):
    mem = make_memory(dtype)
    mem.write(torch.arange(10), torch.ones(10, 4))
    before = buffers(mem)
    values = torch.ones(3, 4, dtype=big.dtype)
    values[1, 2] = big
    with pytest.raises(OverflowError, match=f"storage dtype {str(dtype)[6:]}"):
        mem.write(torch.tensor([20, 21, 22]), values)
    assert_bit_identical(before, buffers(mem))
    assert mem.nonfinite_slots() == 0


def test_the_largest_value_that_fits_float16_is_stored():
    mem = make_memory(torch.float16, write_scale="unit")
    mem.write(torch.tensor([5]), torch.full((1, 4), 65504.0))
    assert float(mem.read(torch.tensor([5])).min()) == 65504.0
    with pytest.raises(OverflowError, match="largest finite float16 is 65504"):
        mem.write(torch.tensor([6]), torch.full((1, 4), 65520.0))  # rounds to inf in float16


def test_nan_input_is_still_a_value_error_not_an_overflow():
    mem = make_memory(torch.float16)
    with pytest.raises(ValueError, match="NaN or inf"):
        mem.write(torch.tensor([1]), torch.tensor([[float("nan"), 1e6, 0.0, 0.0]]))


@pytest.mark.parametrize(("dtype", "big"), OVERFLOWS)
def test_sharded_memory_refuses_a_value_that_overflows_its_dtype(single_rank_group, dtype, big):
    mem = make_sharded(dtype)
    mem.write(torch.arange(10), torch.ones(10, 4))
    before = buffers(mem)
    values = torch.ones(2, 4, dtype=big.dtype)
    values[0, 0] = big
    with pytest.raises(OverflowError, match=f"storage dtype {str(dtype)[6:]}"):
        mem.write(torch.tensor([20, 21]), values)
    assert_bit_identical(before, buffers(mem))


BASELINES = ["dict", "fhrr", "hopfield", "flyhash", "count_sketch"]


@pytest.mark.parametrize("method", BASELINES)
def test_every_baseline_refuses_a_value_that_overflows_its_dtype(method):
    from bbpm.baselines import make_memory as make_baseline

    mem = make_baseline(method, 64 * 1024, 8, dtype=torch.float16)
    mem.write(torch.arange(4), torch.ones(4, 8))
    before = buffers(mem)
    values = torch.ones(2, 8)
    values[1, 3] = 1e5
    with pytest.raises(OverflowError, match="storage dtype float16"):
        mem.write(torch.tensor([7, 8]), values)
    assert_bit_identical(before, buffers(mem))


def test_an_accumulated_sum_that_overflows_is_counted_not_hidden():
    mem = make_memory(torch.float16, write_scale="unit")
    key = torch.tensor([9])
    mem.write(key, torch.full((1, 4), 40000.0))
    assert mem.nonfinite_slots() == 0 and mem.diagnostics(key)["nonfinite_slots"] == 0
    mem.write(key, torch.full((1, 4), 40000.0))  # each value fits; the sum 80000 does not
    slots = mem.slots(key).unique().numel()
    assert mem.nonfinite_slots() == slots
    assert mem.diagnostics(key)["nonfinite_slots"] == slots
    assert bool(torch.isinf(mem.read(key)).all())  # the read shows it, no finite wrong number


@pytest.mark.parametrize("method", ["fhrr", "flyhash", "count_sketch"])
def test_a_baseline_sum_that_overflows_is_counted_not_hidden(method):
    """The peers that add values into shared cells report cells whose sum passed the
    storage dtype (each written value fits; their sum does not)."""
    from bbpm.baselines import make_memory as make_baseline

    mem = make_baseline(method, 64 * 1024, 8, dtype=torch.float16)
    keys = torch.arange(4)
    mem.write(keys, torch.ones(4, 8))
    assert mem.nonfinite_slots() == 0
    for _ in range(4):  # 4 x 30000 per element into the same key's cells
        mem.write(torch.tensor([2]), torch.full((1, 8), 30000.0))
    assert mem.nonfinite_slots() > 0
    assert not bool(torch.isfinite(mem.read(torch.tensor([2]))).all())


# ---------------------------------------------------------------------------- decay
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
#: Largest relative error against the exact weighted means: the storage precision (float64:
#: the read's 1e-8 in counts + 1e-8 is that large there).
DECAY_TOLERANCE = {
    torch.float16: 2e-3,
    torch.bfloat16: 1e-2,
    torch.float32: 1e-6,
    torch.float64: 1e-7,
}


def exact_weighted_read(mem, events, keys):
    """Reference semantics of decay: each slot holds the mean of what was written into it,
    each write weighted by gamma**(decays since it), computed in float64 with the weights
    normalised in the log domain (no underflow); a key reads the mean of its slots."""
    total = sum(np.log(event[1]) for event in events if event[0] == "decay")
    elapsed, writes = 0.0, []
    for event in events:
        if event[0] == "decay":
            elapsed += np.log(event[1])
        else:
            writes.append((total - elapsed, event[1], event[2]))
    newest = max(log_weight for log_weight, _, _ in writes)
    num = torch.zeros(mem.D, mem.d, dtype=torch.float64)
    den = torch.zeros(mem.D, 1, dtype=torch.float64)
    for log_weight, keys_written, values in writes:
        weight = float(np.exp(log_weight - newest))
        idx = mem.slots(keys_written).reshape(-1)
        num.index_add_(0, idx, (values.double() * weight).repeat_interleave(mem.K * mem.H, 0))
        den.index_add_(0, idx, torch.full((idx.numel(), 1), weight, dtype=torch.float64))
    per_slot = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))
    return per_slot[mem.slots(keys)].mean(dim=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gamma", [0.5, 0.9])
def test_reads_are_bit_identical_after_1000_decays(dtype, gamma):
    mem = make_memory(dtype)
    keys = torch.arange(300)
    mem.write(keys, torch.randn(300, 4, generator=torch.Generator().manual_seed(1)) * 2.5)
    before = mem.read(keys)
    table = mem.memory.clone()
    for _ in range(1000):
        decay(mem, gamma)
    assert torch.equal(mem.read(keys), before)
    assert torch.equal(mem.memory, table)  # decay never touched the table
    assert mem.write_weight.item() == pytest.approx(min(gamma**-1000, 2.0**900), rel=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gamma", [0.5, 0.9])
def test_decay_between_writes_matches_the_exact_weighted_means(dtype, gamma):
    """1,000 decays with a write every 100 (the table folds several times): every key
    still reads its decay-weighted slot means to the storage precision."""
    mem = BBPMMemoryFloat(1 << 16, 4, 4, 2, GlobalAffineHash(1 << 16, seed=3), dtype=dtype)
    gen, events = torch.Generator().manual_seed(1), []
    for step in range(1000):
        if step % 100 == 0:
            keys = torch.arange(step, step + 20)
            values = torch.randn(20, 4, generator=gen) * 2.5
            mem.write(keys, values)
            events.append(("write", keys, values))
        decay(mem, gamma)
        events.append(("decay", gamma))
    keys = torch.cat([torch.arange(start, start + 20) for start in range(0, 1000, 100)])
    reference = exact_weighted_read(mem, events, keys)
    error = (mem.read(keys).double() - reference).abs().max() / reference.abs().max()
    assert float(error) < DECAY_TOLERANCE[dtype]
    assert mem.nonfinite_slots() == 0


def test_a_new_write_outweighs_decayed_content_in_shared_slots_only():
    """Key 1 written, 1,000 halvings, key 2 written into some of key 1's slots: the shared
    slots hold key 2's value (key 1 weighs 2**-1000 there), key 1's own slots keep its value."""
    mem = BBPMMemoryFloat(64, 1, 4, 1, GlobalAffineHash(64, seed=0), write_scale="unit")
    first, second = torch.tensor([1]), None
    mem.write(first, torch.tensor([[2.5]]))
    for _ in range(1000):
        decay(mem, 0.5)
    slots_1 = set(mem.slots(first)[0].tolist())
    for key in range(2, 2000):  # a key sharing some but not all of key 1's slots
        shared = slots_1 & set(mem.slots(torch.tensor([key]))[0].tolist())
        if (
            0 < len(shared) < len(slots_1)
            and len(set(mem.slots(torch.tensor([key]))[0].tolist())) == 4
        ):
            second = torch.tensor([key])
            break
    mem.write(second, torch.tensor([[-1.0]]))
    n_shared = len(shared)
    expected = (2.5 * (4 - n_shared) + (-1.0) * n_shared) / 4
    assert mem.read(first).item() == pytest.approx(expected, rel=1e-6)
    assert mem.read(second).item() == pytest.approx(-1.0, rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_checkpoint_carries_the_write_weight(dtype):
    mem = make_memory(dtype)
    mem.write(torch.arange(50), torch.randn(50, 4, generator=torch.Generator().manual_seed(2)))
    for _ in range(70):
        decay(mem, 0.7)
    state = mem.state_dict()
    assert state["write_weight"].item() == mem.write_weight.item() > 1
    copy = BBPMMemoryFloat.from_state_dict(state)
    more = torch.randn(30, 4, generator=torch.Generator().manual_seed(3))
    for memory in (mem, copy):
        memory.write(torch.arange(40, 70), more)  # folds the same way in both
    assert_bit_identical(buffers(mem), buffers(copy))
    assert torch.equal(mem.read(torch.arange(70)), copy.read(torch.arange(70)))


def test_a_checkpoint_without_a_write_weight_loads_with_weight_one(filled):
    state = {k: v for k, v in filled.state_dict().items() if k != "write_weight"}
    copy = BBPMMemoryFloat.from_state_dict(state)
    assert copy.write_weight.item() == 1.0
    assert torch.equal(copy.read(torch.arange(100)), filled.read(torch.arange(100)))


def test_statistics_count_writes_in_units_of_a_fresh_write(filled):
    n_items, load = filled.n_items, filled.load_factor
    decay(filled, 0.5)
    assert filled.n_items == pytest.approx(n_items / 2) and filled.load_factor == pytest.approx(
        load / 2
    )
    filled.clear()
    assert filled.write_weight.item() == 1.0 and filled.n_items == 0.0


def test_float16_values_that_fit_only_after_a_fold_fold_first_and_others_are_refused():
    mem = make_memory(torch.float16, write_scale="unit")
    mem.write(torch.arange(10), torch.ones(10, 4))
    for _ in range(3):
        decay(mem, 0.5)  # weight 8: 10000 would be stored as 80000, past 65504
    mem.write(torch.tensor([50]), torch.full((1, 4), 10000.0))
    assert mem.write_weight.item() == 1.0  # folded by 8 first
    # float16 counts may fall below 1 in a fold: the read's 1e-8 is then 8e-8 of a count
    torch.testing.assert_close(mem.read(torch.tensor([50])), torch.full((1, 4), 10000.0))
    torch.testing.assert_close(mem.read(torch.arange(10)), torch.ones(10, 4), rtol=1e-6, atol=0)
    decay(mem, 0.5)
    before = buffers(mem)
    with pytest.raises(OverflowError, match="float16"):
        mem.write(torch.tensor([51]), torch.full((1, 4), 65000.0 * 2))  # too big at any weight
    assert_bit_identical(before, buffers(mem))


def test_sharded_memory_decays_like_the_single_process_memory(single_rank_group):
    from bbpm import BlockPermutationHash

    sharded = make_sharded()
    single = BBPMMemoryFloat(1024, 4, 4, 2, BlockPermutationHash(1024, 64, seed=2))
    gen = torch.Generator().manual_seed(5)
    for step in range(6):
        keys, values = torch.arange(step * 10, step * 10 + 10), torch.randn(10, 4, generator=gen)
        for memory in (sharded, single):
            memory.write(keys, values)
            for _ in range(20):
                decay(memory, 0.3)  # weight 0.3**-120 > 2**64: the writes fold the tables
    assert sharded.write_weight.item() == single.write_weight.item()
    torch.testing.assert_close(
        sharded.read(torch.arange(60)), single.read(torch.arange(60)), rtol=1e-6, atol=1e-7
    )
    assert torch.equal(sharded.counts, single.counts)


def test_sharded_checkpoint_carries_the_write_weight(single_rank_group, tmp_path):
    from bbpm.distributed import ShardedBBPMMemory, to_single_process_state_dict

    mem = make_sharded()
    mem.write(torch.arange(40), torch.randn(40, 4, generator=torch.Generator().manual_seed(6)))
    for _ in range(30):
        decay(mem, 0.6)
    mem.save(str(tmp_path))
    loaded = ShardedBBPMMemory.load(str(tmp_path))
    assert loaded.write_weight.item() == mem.write_weight.item() > 1
    assert_bit_identical(buffers(mem), buffers(loaded))
    single = BBPMMemoryFloat.from_state_dict(to_single_process_state_dict(str(tmp_path)))
    assert single.write_weight.item() == mem.write_weight.item()
    # H = 2: the sharded read averages per-hash means (equal up to float rounding)
    torch.testing.assert_close(single.read(torch.arange(40)), mem.read(torch.arange(40)))


# ---------------------------------------------------------------------------- low precision
@pytest.mark.parametrize(("dtype", "limit"), [(torch.float16, 21), (torch.bfloat16, 3)])
def test_the_stated_write_limit_follows_from_the_unit_roundoff(dtype, limit):
    from bbpm.memory.base import LOW_PRECISION_ERROR_BOUND, low_precision_write_limit

    u = torch.finfo(dtype).eps / 2
    bound = lambda n: (n - 1) * u / (1 - (n - 1) * u)  # noqa: E731
    assert low_precision_write_limit(dtype) == limit
    assert bound(limit) <= LOW_PRECISION_ERROR_BOUND < bound(limit + 1)
    assert low_precision_write_limit(torch.float32) is None


@pytest.mark.parametrize(("dtype", "limit"), [(torch.float16, 21), (torch.bfloat16, 3)])
def test_sums_stay_within_one_percent_up_to_the_write_limit(dtype, limit):
    """Up to the limit, every slot's debiased value is within 1% of the exact mean of what
    was written, relative to the mean magnitude: repeated values, mixed signs, spreads."""
    import warnings

    from bbpm.memory.base import LowPrecisionWarning

    gen, trials = torch.Generator().manual_seed(7), 40
    mem = BBPMMemoryFloat(
        1 << 14, 32, 1, 1, GlobalAffineHash(1 << 14, seed=1), dtype=dtype, write_scale="unit"
    )
    keys = torch.arange(trials)
    assert mem.slots(keys).unique().numel() == trials  # one slot per key, none shared
    kind = (keys % 4)[None, :, None]
    repeated = (torch.randn(1, trials, 32, generator=gen) * 2.5).expand(limit, -1, -1)
    spread = torch.randn(limit, trials, 32, generator=gen) * 2.0 ** torch.randint(
        -5, 6, (limit, trials, 1), generator=gen
    )
    plain = torch.randn(limit, trials, 32, generator=gen) + 0.5 * (kind == 2)
    values = torch.where(kind == 0, repeated, torch.where(kind == 1, spread, plain))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LowPrecisionWarning)  # none up to the limit
        for step in range(limit):
            mem.write(keys, values[step])
    exact = values.double().mean(dim=0)
    magnitude = values.double().abs().mean(dim=0)
    worst = float(((mem.read(keys).double() - exact).abs() / magnitude).max())
    assert worst <= 0.01


@pytest.mark.parametrize(("dtype", "limit"), [(torch.float16, 21), (torch.bfloat16, 3)])
def test_passing_the_write_limit_warns_once_per_memory(dtype, limit):
    from bbpm.memory.base import LowPrecisionWarning

    mem = make_memory(dtype)
    key, value = torch.tensor([3]), torch.full((1, 4), 2.5)
    for _ in range(limit):
        mem.write(key, value)
    with pytest.warns(LowPrecisionWarning, match=f"past the {limit} up to which"):
        mem.write(key, value)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", LowPrecisionWarning)
        mem.write(key, value)  # once per memory
        make_memory(torch.float32).write(key, value.expand(1, 4))


def test_many_float16_writes_lose_precision_as_stated():
    """Why the limit exists: 400 writes of one value into float16 read more than 1% off."""
    mem = make_memory(torch.float16)
    with pytest.warns(match="past the 21"):
        for _ in range(400):
            mem.write(torch.tensor([3]), torch.full((1, 4), 2.5))
    assert abs(mem.read(torch.tensor([3]))[0, 0].item() - 2.5) > 0.025
