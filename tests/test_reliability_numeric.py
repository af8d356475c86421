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
