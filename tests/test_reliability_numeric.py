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
        assert torch.equal(before[name].view(torch.uint8), after[name].view(torch.uint8)), name


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
