"""Fidelity falls monotonically as the load N*K*H/D grows."""

import torch

from bbpm import BBPMMemoryFloat, BlockPermutationHash, GlobalAffineHash
from bbpm.theory import snr_bounds
from tests.conftest import unit_vectors


def mean_cosine(mem: BBPMMemoryFloat, N: int, seed: int = 0) -> float:
    mem.clear()
    keys, values = torch.arange(N), unit_vectors(N, mem.d, seed=seed)
    mem.write(keys, values)
    n_eval = min(N, 1000)
    return float(
        torch.nn.functional.cosine_similarity(mem.read(keys[:n_eval]), values[:n_eval]).mean()
    )


def test_mean_cosine_decreases_monotonically_with_load():
    D = 1 << 16
    Ns = (100, 1000, 4000, 16000, 64000)
    for hash_fn, block_size in ((GlobalAffineHash(D), None), (BlockPermutationHash(D, 4096), 4096)):
        mem = BBPMMemoryFloat(D, 32, 8, 1, hash_fn)
        curve = [mean_cosine(mem, N) for N in Ns]
        assert curve[0] > 0.999
        assert all(a > b for a, b in zip(curve, curve[1:])), curve
        assert curve[-1] < 0.8
        # and the curve is the theory's, point by point (a read that skipped the count
        # division or half the slots still falls monotonically, but misses by 0.005-0.04)
        theory = [snr_bounds.expected_cosine(N, D, 8, 1, 32, block_size=block_size) for N in Ns]
        assert max(abs(c - t) for c, t in zip(curve, theory)) < 0.006, (curve, theory)


def cosines(mem: BBPMMemoryFloat, N: int) -> torch.Tensor:
    keys, values = torch.arange(N), unit_vectors(N, mem.d)
    mem.write(keys, values)
    return torch.nn.functional.cosine_similarity(mem.read(keys[:2000]), values[:2000])


def test_at_constant_load_more_slots_per_item_shrink_the_spread():
    # lambda = N*K/D = 2 for every K: the mean stays put, the spread across items shrinks with K.
    D = 1 << 16
    spreads = []
    for K in (4, 16, 64):
        c = cosines(BBPMMemoryFloat(D, 32, K, 1, GlobalAffineHash(D)), 2 * D // K)
        spreads.append(float(c.std()))
        predicted = snr_bounds.cosine_std(2 * D // K, D, K, 1, 32)
        assert abs(spreads[-1] / predicted - 1) < 0.2, (K, spreads[-1], predicted)
    assert spreads[0] > 1.5 * spreads[1] > 1.5 * 1.5 * spreads[2], spreads
