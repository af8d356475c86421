"""At low load, read(write(v)) returns v itself: cosine 1 and the same norm."""

import pytest
import torch

from bbpm import BBPMMemoryFloat, BlockPermutationHash, GlobalAffineHash
from tests.conftest import unit_vectors


@pytest.mark.parametrize("write_scale", ["unit", "1/sqrt(KH)"])
@pytest.mark.parametrize(
    "make_hash", [lambda D: GlobalAffineHash(D), lambda D: BlockPermutationHash(D, 1024)]
)
def test_low_load_read_returns_the_written_value(write_scale, make_hash):
    D, d, K, H = 1 << 20, 32, 8, 2
    mem = BBPMMemoryFloat(D, d, K, H, make_hash(D), write_scale=write_scale)
    keys = torch.arange(20) * 7919
    values = 3.0 * unit_vectors(20, d)
    mem.write(keys, values)
    out = mem.read(keys)
    cosine = torch.nn.functional.cosine_similarity(out, values)
    assert float(cosine.min()) > 1 - 1e-6
    torch.testing.assert_close(out.norm(dim=1), values.norm(dim=1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, values, rtol=1e-5, atol=1e-6)


def test_write_scale_changes_storage_but_not_reads():
    D, d, K, H = 50_000, 16, 4, 4
    keys, values = torch.arange(10), unit_vectors(10, 16)
    mems = {
        s: BBPMMemoryFloat(D, d, K, H, GlobalAffineHash(D), write_scale=s)
        for s in ("unit", "1/sqrt(KH)")
    }
    for mem in mems.values():
        mem.write(keys, values)
    # stored energy: unit writes K*H copies; 1/sqrt(KH) spreads unit energy over the slots
    assert float(mems["unit"].memory.pow(2).sum()) == pytest.approx(10 * K * H, rel=1e-4)
    assert float(mems["1/sqrt(KH)"].memory.pow(2).sum()) == pytest.approx(10, rel=1e-4)
    torch.testing.assert_close(mems["unit"].read(keys), mems["1/sqrt(KH)"].read(keys))


def test_unwritten_key_reads_zero_and_clear_forgets():
    mem = BBPMMemoryFloat(10_000, 8, 4, 1, GlobalAffineHash(10_000))
    mem.write(torch.tensor([1, 2]), torch.ones(2, 8))
    assert float(mem.read(torch.tensor([10**12])).abs().max()) == 0.0
    mem.clear()
    assert float(mem.memory.abs().sum()) == 0.0 and float(mem.counts.sum()) == 0.0
    assert float(mem.read(torch.tensor([1])).abs().max()) == 0.0


def test_empty_batch_is_a_no_op():
    mem = BBPMMemoryFloat(1000, 8, 4, 1, GlobalAffineHash(1000))
    mem.write(torch.empty(0, dtype=torch.int64), torch.empty(0, 8))
    assert mem.read(torch.empty(0, dtype=torch.int64)).shape == (0, 8)
    assert float(mem.counts.sum()) == 0.0


def test_read_is_differentiable_with_respect_to_written_values():
    mem = BBPMMemoryFloat(2000, 4, 3, 1, GlobalAffineHash(2000), dtype=torch.float64)
    values = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    mem.write(torch.arange(5), values)
    mem.read(torch.arange(5)).sum().backward()
    torch.testing.assert_close(values.grad, torch.ones_like(values))


def test_read_gradient_equals_the_by_hand_crosstalk_coefficients():
    # With collisions, d read(x) / d v_y = c_xy = (1/M) sum_j [y hits slot j of x] / counts_j
    # (write scale and 1/s cancel). A read without the count division, or over fewer slots,
    # has other coefficients.
    D, d, K, H, N = 40, 3, 3, 2, 12
    mem = BBPMMemoryFloat(D, d, K, H, GlobalAffineHash(D), dtype=torch.float64)
    keys = torch.arange(N)
    values = torch.randn(N, d, dtype=torch.float64, requires_grad=True)
    mem.write(keys, values)
    mem.read(keys[:1]).sum().backward()
    idx = mem.slots(keys)
    counts = torch.zeros(D, dtype=torch.float64).index_add_(
        0, idx.reshape(-1), torch.ones(idx.numel(), dtype=torch.float64)
    )
    M = K * H
    coefficients = torch.tensor(
        [
            sum(float((idx[y] == slot).sum()) / float(counts[slot]) for slot in idx[0]) / M
            for y in range(N)
        ],
        dtype=torch.float64,
    )
    assert int((coefficients[1:] > 0).sum()) > 0  # the setting does collide
    torch.testing.assert_close(values.grad, coefficients[:, None].expand(N, d))
