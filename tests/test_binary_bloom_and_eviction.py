"""Packed Bloom memory and eviction policies."""

import pytest
import torch

from bbpm import BBPMMemoryFloat, BinaryBloomMemory, GlobalAffineHash
from bbpm.memory import TTLEviction, clip, decay


def test_bloom_stores_one_bit_per_bit_and_has_no_false_negatives():
    D = 80_000
    bloom = BinaryBloomMemory(D, 5, 2, GlobalAffineHash(D))
    assert bloom.nbytes == D // 8
    bloom.write(torch.arange(2000))
    assert bool(bloom.contains(torch.arange(2000)).all())
    assert float(bloom.set_fraction(torch.arange(2000)).min()) == 1.0


def test_bloom_false_positive_rate_and_fill_match_theory():
    D, K, H, n = 200_000, 4, 2, 20_000
    bloom = BinaryBloomMemory(D, K, H, GlobalAffineHash(D, seed=4))
    bloom.write(torch.arange(n))
    fp = float(bloom.contains(torch.arange(10**9, 10**9 + 100_000)).double().mean())
    theory = bloom.false_positive_theory()
    assert fp == pytest.approx(theory, rel=0.15)
    assert bloom.fill_ratio() == pytest.approx(1 - (1 - 1 / D) ** (K * H * n), rel=0.01)
    bloom.clear()
    assert bloom.fill_ratio() == 0.0


def test_decay_keeps_debiased_values_and_lets_new_writes_dominate():
    mem = BBPMMemoryFloat(1000, 2, 1, 1, GlobalAffineHash(1000), write_scale="unit")
    key = torch.tensor([5])
    mem.write(key, torch.tensor([[1.0, 0.0]]))
    decay(mem, 0.5)
    torch.testing.assert_close(mem.read(key), torch.tensor([[1.0, 0.0]]), atol=1e-6, rtol=1e-6)
    mem.write(key, torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(mem.read(key), torch.tensor([[1 / 3, 2 / 3]]), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="gamma"):
        decay(mem, 1.5)


def test_clip_bounds_the_debiased_slot_norm():
    mem = BBPMMemoryFloat(1000, 2, 2, 1, GlobalAffineHash(1000), write_scale="unit")
    mem.write(torch.tensor([1, 2]), torch.tensor([[30.0, 40.0], [0.3, 0.4]]))
    n = clip(mem, 1.0)
    assert n == 2
    norms = mem.memory.norm(dim=1) / (mem.counts[:, 0] + mem.eps)
    assert float(norms.max()) <= 1.0 + 1e-5
    torch.testing.assert_close(mem.read(torch.tensor([2])), torch.tensor([[0.3, 0.4]]))
    # the clipped item is rescaled to norm 1 with its direction kept (not zeroed)
    torch.testing.assert_close(mem.read(torch.tensor([1])), torch.tensor([[0.6, 0.8]]))


def test_ttl_evicts_slots_not_rewritten():
    mem = BBPMMemoryFloat(100_000, 4, 4, 1, GlobalAffineHash(100_000))
    ttl = TTLEviction(mem, ttl=2)
    ttl.write(torch.tensor([1]), torch.ones(1, 4))
    ttl.step()
    ttl.write(torch.tensor([2]), torch.ones(1, 4))
    assert ttl.step() == 0 and ttl.step() == 4  # key 1's 4 slots expire after 2 idle steps
    assert float(mem.read(torch.tensor([1])).abs().max()) == 0.0
    torch.testing.assert_close(mem.read(torch.tensor([2])), torch.ones(1, 4))
    with pytest.raises(ValueError, match="ttl"):
        TTLEviction(mem, ttl=0)


def test_bloom_rejects_a_hash_returning_ids_outside_the_bits():
    class OutOfRange:
        D = 64
        slot = 64

        def indices(self, keys, K, H):
            return torch.full((keys.shape[0], K * H), self.slot, dtype=torch.int64)

    with pytest.raises(ValueError, match=r"slot id 64, outside \[0, D=64\)"):
        BinaryBloomMemory(64, 2, 1, OutOfRange())  # one probe call at construction
    hash_fn = OutOfRange()
    hash_fn.slot = 0
    bloom = BinaryBloomMemory(64, 2, 1, hash_fn)
    hash_fn.slot = 64  # a hash that goes bad later is caught on every call
    before = bloom.bits.clone()
    with pytest.raises(ValueError, match=r"slot id 64, outside \[0, D=64\)"):
        bloom.write(torch.arange(3))
    assert torch.equal(bloom.bits, before) and bloom.n_written == 0
