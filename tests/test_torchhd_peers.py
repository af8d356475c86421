"""Cross-checks against torchhd (optional extra bbpm[hd]): the library's FHRR agrees with
torchhd's FHRR on the same task within sampling error, complex components are counted as two
floats, and torchhd's sparse distributed memory works as a peer at a byte budget."""

from __future__ import annotations

import math

import pytest
import torch

from bbpm.baselines import FHRRMemory, decode_top1, make_memory, random_codebook
from bbpm.hashing.mixing import splitmix64

torchhd = pytest.importorskip("torchhd")
from bbpm.baselines.sdm import SparseDistributedMemory, tune_active  # noqa: E402

D = 256


def fhrr_cosines_library(n: int, trials: int, seed: int) -> torch.Tensor:
    """Cosine of read vs written value, n items in one trace (library FHRR)."""
    out = []
    for t in range(trials):
        g = torch.Generator().manual_seed(seed + t)
        values = torch.randn(n, D, generator=g)
        keys = splitmix64(torch.arange(n) + 10_000 * (seed + t))
        memory = FHRRMemory(D, n_banks=1, seed=seed + t)
        memory.write(keys, values)
        out.append(torch.nn.functional.cosine_similarity(memory.read(keys), values, dim=1))
    return torch.cat(out)


def fhrr_cosines_torchhd(n: int, trials: int, seed: int) -> torch.Tensor:
    """The same task with torchhd's FHRR: bind (phasor x value), bundle, unbind with the inverse."""
    out = []
    for t in range(trials):
        torch.manual_seed(seed + t)
        keys = torchhd.random(n, D, "FHRR")
        values = torch.randn(n, D)
        bound = torchhd.bind(keys, torchhd.FHRRTensor(values.to(keys.dtype)))
        trace = torchhd.multiset(bound)
        read = torchhd.bind(trace, torchhd.inverse(keys)).as_subclass(torch.Tensor).real
        out.append(torch.nn.functional.cosine_similarity(read, values, dim=1))
    return torch.cat(out)


@pytest.mark.parametrize("n", [4, 32])
def test_library_fhrr_agrees_with_torchhd_within_sampling_error(n):
    trials = 400 // n
    ours, theirs = fhrr_cosines_library(n, trials, seed=1), fhrr_cosines_torchhd(n, trials, seed=2)
    se = math.sqrt(ours.var() / ours.numel() + theirs.var() / theirs.numel())
    assert abs(float(ours.mean() - theirs.mean())) < 4 * se, (ours.mean(), theirs.mean(), se)
    # and both sit near the crosstalk theory cos ~ 1/sqrt(1 + (n-1)/2)
    assert abs(float(ours.mean()) - 1 / math.sqrt(1 + (n - 1) / 2)) < 0.05


def test_fhrr_bytes_count_a_complex_component_as_two_floats():
    memory = FHRRMemory(D, n_banks=3)
    complex_bytes = torchhd.random(1, D, "FHRR").element_size()  # complex64: two float32
    assert complex_bytes == 2 * 4
    assert memory.nbytes == 3 * D * complex_bytes


def test_sdm_bytes_count_the_address_matrix_and_fill_the_budget():
    budget = 64 * 1024
    memory = make_memory("sdm", budget, 64, address_dim=64, active=4)
    assert memory.nbytes == memory.n_locations * (64 + 64) * 4
    assert budget - (64 + 64) * 4 < memory.nbytes <= budget
    assert memory.sdm.keys.numel() == memory.n_locations * 64


def test_sdm_reads_back_at_low_load_degrades_with_load_and_clear_forgets():
    codebook = random_codebook(256, 64, seed=1)

    def accuracy(n: int) -> float:
        memory = SparseDistributedMemory.from_budget(64 * 1024, 64, active=4, seed=0)
        keys = splitmix64(torch.arange(n))
        ids = torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(0))
        memory.write(keys, codebook[ids])
        decoded, _, _ = decode_top1(memory.read(keys), codebook)
        return float((decoded == ids).double().mean())

    low, high = accuracy(16), accuracy(2048)
    assert low >= 0.9 and high < low - 0.5
    memory = SparseDistributedMemory.from_budget(64 * 1024, 64, seed=0)
    memory.write(splitmix64(torch.arange(10)), codebook[:10])
    memory.clear()
    assert float(memory.read(splitmix64(torch.arange(10))).abs().max()) == 0.0


def test_sdm_activation_follows_p_and_is_deterministic():
    memory = SparseDistributedMemory(1024, 64, address_dim=128, active=16, seed=3)
    addresses = memory.addresses(splitmix64(torch.arange(2000)))
    active = ((addresses @ memory.sdm.keys.T) >= memory.sdm.threshold).sum(1).double()
    from scipy.stats import binom

    expected = 1024 * binom.cdf(memory.radius, 128, 0.5)  # the quantile rounds p up
    assert expected >= 16
    assert abs(float(active.mean()) - expected) < 4 * math.sqrt(expected / 2000) + 0.5
    again = SparseDistributedMemory(1024, 64, address_dim=128, active=16, seed=3)
    assert torch.equal(again.sdm.keys, memory.sdm.keys)


def test_tune_active_picks_the_best_of_the_grid():
    best, scores = tune_active(32 * 1024, 64, 128, grid=(1, 4, 64), codebook_size=256)
    assert best == max(scores, key=scores.get) and scores[64.0] < scores[best]


def test_sdm_rejects_bad_settings_with_the_fix():
    with pytest.raises(ValueError, match="active"):
        SparseDistributedMemory(16, 8, active=32)
    with pytest.raises(ValueError, match="too small"):
        SparseDistributedMemory.from_budget(100, 64)
