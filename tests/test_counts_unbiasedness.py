"""Counts record every write exactly and the debiased read is the per-slot average."""

import torch

from bbpm import BBPMMemoryFloat, GlobalAffineHash
from bbpm.hashing.diagnostics import slot_loads
from tests.conftest import unit_vectors


def test_counts_equal_the_slot_loads_of_all_writes():
    D, K, H = 5000, 6, 2
    mem = BBPMMemoryFloat(D, 4, K, H, GlobalAffineHash(D))
    keys = torch.randint(0, 10**9, (3000,))
    mem.write(keys, torch.randn(3000, 4))
    assert float(mem.counts.sum()) == 3000 * K * H
    assert torch.equal(mem.counts[:, 0].long(), slot_loads(mem.slots(keys), D))
    assert mem.n_items == 3000 and mem.load_factor == 3000 * K * H / D


def test_duplicate_keys_count_twice_and_read_their_average():
    mem = BBPMMemoryFloat(100_000, 3, 4, 1, GlobalAffineHash(100_000), write_scale="unit")
    key = torch.tensor([42, 42])
    mem.write(key, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert set(mem.counts[mem.slots(key[:1])].flatten().tolist()) == {2.0}
    torch.testing.assert_close(mem.read(key[:1]), torch.tensor([[0.5, 0.5, 0.0]]))


def test_read_equals_the_mean_over_slots_of_the_average_value_in_each_slot():
    D, d, K, H = 300, 5, 4, 2
    mem = BBPMMemoryFloat(
        D, d, K, H, GlobalAffineHash(D, seed=5), dtype=torch.float64, write_scale="unit"
    )
    keys, values = torch.arange(200), unit_vectors(200, d, dtype=torch.float64)
    mem.write(keys, values)
    slots = mem.slots(keys).tolist()
    members: dict[int, list[int]] = {}
    for item, row in enumerate(slots):
        for slot in row:
            members.setdefault(slot, []).append(item)
    expected = torch.stack(
        [torch.stack([values[members[s]].mean(dim=0) for s in row]).mean(dim=0) for row in slots]
    )
    torch.testing.assert_close(mem.read(keys), expected)


def test_signal_weight_matches_one_over_one_plus_load():
    # For random unit values, E[<read, v>] = mean_j 1/(1 + n_j): the count debias is exact in expectation.
    D, d, K = 4000, 256, 16
    mem = BBPMMemoryFloat(D, d, K, 1, GlobalAffineHash(D), dtype=torch.float64)
    keys, values = torch.arange(500), unit_vectors(500, d, dtype=torch.float64)
    mem.write(keys, values)
    counts = mem.counts[mem.slots(keys)].squeeze(-1)
    signal = (1.0 / counts).mean(dim=1)
    projection = (mem.read(keys) * values).sum(dim=1)
    assert (
        abs(float((projection - signal).mean()))
        < 3 * float((projection - signal).std()) / 500**0.5 + 1e-3
    )
