"""The read rules of BBPMMemoryFloat (bbpm.memory.read_rules): each against a by-hand
reference on tables with hand-counted collisions, exact recall at low load, self-hits of a
key (H > 1), repeated writes, write-scale invariance, gradients, the fast paths (C weights,
embedding_bag, chunked fp16) against the canonical rule, and the order of the rules' mean
cosine over load."""

import pytest
import torch
import torch.nn.functional as F

from bbpm import BBPMMemoryFloat, GlobalAffineHash
from bbpm.memory import kernels, read_rules
from bbpm.memory.kernels import native, torch_ops

RULES = read_rules.READ_RULES


class TableHash:
    """A hash given by a table: key k -> row k of ``rows`` (hand-placed collisions)."""

    def __init__(self, D, rows):
        self.D = D
        self.rows = torch.tensor(rows, dtype=torch.int64)

    def indices(self, keys, K, H):
        return self.rows[keys]


def hand_memory(rows, D, d=3, write_scale="unit"):
    M = len(rows[0])
    memory = BBPMMemoryFloat(
        D, d, M, 1, TableHash(D, rows), dtype=torch.float64, write_scale=write_scale
    )
    values = torch.randn(
        len(rows), d, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    memory.write(torch.arange(len(rows)), values)
    return memory, values


def test_rules_equal_hand_computed_reads_with_clean_slots_and_a_self_hit():
    # slot:     0   1   2      3   4      5
    # holds:    v0  v0  v0+v1  v1  v1+v2  2 v2      (key 2 hits slot 5 twice)
    memory, v = hand_memory([[0, 1, 2], [2, 3, 4], [4, 5, 5]], D=6)
    v0, v1, v2 = v
    expected = {
        "debiased": [
            (v0 + v0 + (v0 + v1) / 2) / 3,
            ((v0 + v1) / 2 + v1 + (v1 + v2) / 2) / 3,
            ((v1 + v2) / 2 + v2 + v2) / 3,
        ],
        "mean": [v0 + v1 / 3, v1 + (v0 + v2) / 3, v2 + v1 / 5],  # 1 / sum m = 1/3, 1/3, 1/5
        "inverse_noise": [v0, v1, v2],  # every key has a clean slot (key 2: slot 5, m = 2)
    }
    for rule in RULES:
        got = memory.read(torch.arange(3), read_rule=rule)
        # eps = 1e-8 in the debiased divisor moves it by ~1e-8 relative
        torch.testing.assert_close(got, torch.stack(expected[rule]), rtol=0, atol=1e-7)


def test_inverse_noise_weights_noisy_slots_by_one_over_other_writes():
    # key 0 at slots 0, 1; slot 0 also holds key 1 (n = 1), slot 1 keys 2 and 3 (n = 2)
    memory, v = hand_memory([[0, 1], [0, 2], [1, 2], [1, 3]], D=4)
    weights = torch.tensor([1.0, 0.5], dtype=torch.float64) / 1.5  # (1/n_j) / sum_k (1/n_k)
    expected = weights[0] * (v[0] + v[1]) + weights[1] * (v[0] + v[2] + v[3])
    got = memory.read(torch.tensor([0]), read_rule="inverse_noise")[0]
    torch.testing.assert_close(got, expected.double(), rtol=0, atol=1e-12)
    mean = memory.read(torch.tensor([0]), read_rule="mean")[0]
    torch.testing.assert_close(mean, v[0] + (v[1] + v[2] + v[3]) / 2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("write_scale", ["unit", "1/sqrt(KH)"])
@pytest.mark.parametrize("rule", RULES)
def test_every_rule_recalls_exactly_at_low_load(rule, write_scale):
    memory = BBPMMemoryFloat(
        100_000, 32, 8, 2, GlobalAffineHash(100_000, seed=3), write_scale=write_scale
    )
    keys = torch.arange(6)
    values = torch.randn(6, 32)
    memory.write(keys, values)
    assert float(memory.counts.max()) == 1  # no collisions at all
    torch.testing.assert_close(memory.read(keys, read_rule=rule), values, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rule", RULES)
def test_self_hits_of_one_key_still_read_back_exactly(rule):
    """H = 4 hashes of K = 4 slots in D = 16: the key's own hashes share slots."""
    memory = BBPMMemoryFloat(16, 8, 4, 4, GlobalAffineHash(16, seed=0), write_scale="unit")
    key = torch.tensor([5])
    mult = read_rules.slot_multiplicity(memory.slots(key))
    assert float(mult.max()) > 1
    value = torch.randn(1, 8)
    memory.write(key, value)
    torch.testing.assert_close(memory.read(key, read_rule=rule), value, rtol=1e-6, atol=1e-6)


def test_slot_multiplicity_counts_equal_ids_in_each_row():
    idx = torch.randint(0, 6, (200, 9))
    brute = (idx[:, :, None] == idx[:, None, :]).sum(-1).float()
    assert torch.equal(read_rules.slot_multiplicity(idx), brute)
    distinct = torch.stack([torch.randperm(50)[:9] for _ in range(10)])
    assert torch.equal(read_rules.slot_multiplicity(distinct), torch.ones(10, 9))


def test_repeated_writes_inverse_noise_and_mean_return_the_sum_debiased_the_mean():
    memory = BBPMMemoryFloat(100_000, 16, 8, 1, GlobalAffineHash(100_000, seed=1))
    key = torch.tensor([7])
    first, second = torch.randn(1, 16), torch.randn(1, 16)
    memory.write(key, first)
    memory.write(key, second)
    total = first + second
    torch.testing.assert_close(
        memory.read(key, read_rule="inverse_noise"), total, rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(memory.read(key, read_rule="mean"), total, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        memory.read(key, read_rule="debiased"), total / 2, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("rule", RULES)
def test_write_scale_does_not_change_any_rule(rule):
    D, K, H = 4096, 8, 2
    reads = []
    for write_scale in ("unit", "1/sqrt(KH)"):
        memory = BBPMMemoryFloat(
            D, 16, K, H, GlobalAffineHash(D, seed=2), dtype=torch.float64, write_scale=write_scale
        )
        memory.write(
            torch.arange(800),
            torch.randn(800, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0)),
        )
        reads.append(memory.read(torch.arange(900), read_rule=rule))
    torch.testing.assert_close(reads[0], reads[1], rtol=1e-12, atol=1e-12)


def test_default_rule_override_and_bad_rule():
    memory = BBPMMemoryFloat(4096, 8, 4, 1, GlobalAffineHash(4096), read_rule="inverse_noise")
    memory.write(torch.arange(3000), torch.randn(3000, 8))
    keys = torch.arange(100)
    torch.testing.assert_close(memory.read(keys), memory.read(keys, read_rule="inverse_noise"))
    assert not torch.allclose(memory.read(keys), memory.read(keys, read_rule="debiased"))
    before = memory.memory.clone(), memory.counts.clone()
    with pytest.raises(ValueError, match="read_rule must be one of"):
        memory.read(keys, read_rule="median")
    with pytest.raises(ValueError, match="read_rule must be one of"):
        BBPMMemoryFloat(4096, 8, 4, 1, GlobalAffineHash(4096), read_rule="Mean")
    assert torch.equal(memory.memory, before[0]) and torch.equal(memory.counts, before[1])
    rebuilt = BBPMMemoryFloat.from_state_dict(memory.state_dict())
    assert rebuilt.read_rule == "inverse_noise"
    torch.testing.assert_close(rebuilt.read(keys), memory.read(keys))


@pytest.mark.parametrize("rule", RULES)
def test_gradient_equals_the_rules_weights(rule):
    """d read / d values is the rule's linear map: read = W V with W[x, y] = sum over the
    slots j of x of w_xj * (times y wrote slot j)."""
    D, K, H, N, d = 64, 3, 2, 30, 4
    memory = BBPMMemoryFloat(D, d, K, H, GlobalAffineHash(D, seed=5))
    keys = torch.arange(N)
    values = torch.randn(N, d, dtype=torch.float32, requires_grad=True)
    memory.write(keys, values)
    target = torch.randn(N, d)
    (memory.read(keys, read_rule=rule) * target).sum().backward()
    idx = memory.slots(keys)
    weights = read_rules.slot_weights(memory.counts, idx, rule).double()
    hits = torch.zeros(N, D, dtype=torch.float64)  # hits[y, slot]: times y wrote the slot
    hits.index_put_(
        (keys[:, None].expand_as(idx), idx),
        torch.ones(idx.shape, dtype=torch.float64),
        accumulate=True,
    )
    W = torch.einsum("xj,yxj->xy", weights, hits[:, idx])
    torch.testing.assert_close(values.grad.double(), W.T @ target.double(), rtol=1e-5, atol=1e-6)


def rule_table(D=3000, d=24, B=400, M=12, dtype=torch.float32, seed=0):
    """A table after one canonical write of B items with self-hits (every row repeats one
    slot), and those items' slot ids (plus unseen rows)."""
    gen = torch.Generator().manual_seed(seed)
    counts_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    memory, counts = torch.zeros(D, d, dtype=dtype), torch.zeros(D, 1, dtype=counts_dtype)
    idx = torch.randint(0, D, (B, M), generator=gen)
    idx[::3, -1] = idx[::3, 0]
    torch_ops.write_index_add(memory, counts, idx, torch.randn(B, d, generator=gen).to(dtype))
    return memory, counts, torch.cat([idx, torch.randint(0, D, (50, M), generator=gen)])


@pytest.mark.parametrize("rule", ["mean", "inverse_noise"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_fast_read_equals_canonical_rule(rule, dtype):
    memory, counts, idx = rule_table(dtype=dtype)
    reference = read_rules.read_reference(memory, counts, idx, rule)
    fast = kernels.read(memory, counts, idx, backend="torch", rule=rule)
    canonical = kernels.read(memory, counts, idx, backend="canonical", rule=rule)
    assert fast.dtype == reference.dtype
    assert torch.equal(canonical, reference)
    scale = float(reference.abs().max())
    tol = 1e-13 if dtype == torch.float64 else 1e-6
    assert float((fast - reference).abs().max()) / scale < tol


@pytest.mark.skipif(not native.available(), reason="needs the C kernel")
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_c_rule_weights_equal_torch_weights(rule, dtype):
    _, counts, idx = rule_table(dtype=dtype)
    c_weights = native.rule_weights(counts, idx, rule, 1e-8)
    torch_weights = read_rules.slot_weights(counts, idx, rule, 1e-8)
    assert float((c_weights - torch_weights).abs().max()) < (
        1e-7 if dtype == torch.float32 else 1e-15
    )
    with pytest.raises(IndexError, match="outside"):
        native.rule_weights(counts, idx + counts.shape[0], rule, 1e-8)


def test_rule_reads_keep_gradients_through_the_fast_path():
    memory, counts, idx = rule_table()
    table = memory.clone().requires_grad_(True)
    kernels.read(table, counts, idx, backend="torch", rule="inverse_noise").sum().backward()
    expected = torch.zeros(memory.shape[0], dtype=torch.float64)
    expected.index_add_(
        0,
        idx.reshape(-1),
        read_rules.slot_weights(counts, idx, "inverse_noise").double().reshape(-1),
    )
    torch.testing.assert_close(table.grad[:, 0].double(), expected, rtol=1e-6, atol=1e-7)


def mean_cosines(D, K, H, loads, d=32, seed=0):
    """Mean cosine of every rule at each load (one memory filled step by step)."""
    memory = BBPMMemoryFloat(D, d, K, H, GlobalAffineHash(D, seed=seed))
    n_final = int(loads[-1] * D / (K * H))
    values = F.normalize(
        torch.randn(n_final, d, generator=torch.Generator().manual_seed(seed)), dim=1
    )
    out, written = [], 0
    for load in loads:
        n = int(load * D / (K * H))
        memory.write(torch.arange(written, n), values[written:n])
        written = n
        keys = torch.arange(n)
        out.append(
            {
                rule: float(
                    F.cosine_similarity(memory.read(keys, read_rule=rule), values[:n]).mean()
                )
                for rule in RULES
            }
        )
    return out


def test_inverse_noise_beats_debiased_beats_mean_over_load():
    for row in mean_cosines(8192, 8, 1, [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]):
        assert row["inverse_noise"] >= row["debiased"] - 0.002
        assert row["debiased"] >= row["mean"] - 0.002


def test_rules_after_decay_read_in_units_of_a_fresh_write():
    from bbpm.memory import decay

    torch.manual_seed(0)
    D, d = 1 << 16, 8

    def memory():
        return BBPMMemoryFloat(D=D, d=d, K=4, H=1, hash_fn=GlobalAffineHash(D, seed=3))

    old_keys, new_keys = torch.arange(0, 20), torch.arange(100, 120)
    old_vals, new_vals = torch.randn(20, d), torch.randn(20, d)
    mem = memory()
    mem.write(old_keys, old_vals)
    decay(mem, 0.5)
    decay(mem, 0.5)
    mem.write(new_keys, new_vals)
    assert float(mem.write_weight) == 4.0
    # "mean": the table in units of a fresh write, as if old items had been scaled by gamma**2
    twin = memory()
    twin.write(old_keys, 0.25 * old_vals)
    twin.write(new_keys, new_vals)
    keys = torch.cat([old_keys, new_keys])
    torch.testing.assert_close(
        mem.read(keys, read_rule="mean"), twin.read(keys, read_rule="mean"), atol=1e-6, rtol=0
    )
    # "inverse_noise" at this low load: keys written after the decays exactly, older keys
    # as their value times gamma**2
    torch.testing.assert_close(mem.read(new_keys, read_rule="inverse_noise"), new_vals)
    torch.testing.assert_close(mem.read(old_keys, read_rule="inverse_noise"), 0.25 * old_vals)
    # the default read is unchanged by decay alone
    torch.testing.assert_close(mem.read(old_keys), old_vals)


def test_solve_known_keys_recovers_every_value_where_per_key_rules_cannot():
    """At load 2 with K = 4 many keys have no clean slot (the inverse-noise read is not
    exact for them), but the incidence of the known key set has full column rank: the
    least-squares solve returns every written value."""
    D, d, K, N = 2000, 8, 4, 1000
    memory = BBPMMemoryFloat(D, d, K, 1, GlobalAffineHash(D, seed=4), dtype=torch.float64)
    keys = torch.arange(N)
    values = torch.randn(N, d, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    memory.write(keys, values)
    per_key = memory.read(keys, read_rule="inverse_noise")
    assert float((per_key - values).abs().amax(dim=1).gt(1e-6).double().mean()) > 0.3
    solved = read_rules.solve_known_keys(memory, keys, iterations=300, tol=1e-10)
    torch.testing.assert_close(solved, values, rtol=0, atol=1e-6)
