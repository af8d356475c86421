"""Several threads writing into one memory lose nothing: every count, value and bit of a
concurrent run equals a one-thread run of the same batches (integer values, so float sums
are exact in any order). Without the memories' lock these runs lose updates (torch's
index_add_, the C kernel and the Bloom filter's byte read-modify-write are not atomic)."""

import copy
import io
import pickle
import threading

import pytest
import torch

from bbpm import BBPMMemoryFloat, GlobalAffineHash
from bbpm.baselines import CountSketchMemory, ExactDictMemory
from bbpm.memory import BinaryBloomMemory, TTLEviction, decay

THREADS = 4


def hammer(work, n_batches):
    """Run ``work(batch_id)`` for every batch, spread over THREADS threads started together."""
    barrier = threading.Barrier(THREADS)
    errors = []

    def worker(first):
        barrier.wait()
        try:
            for i in range(first, n_batches, THREADS):
                work(i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def integer_batches(n, B, d, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randint(0, 10**9, (B,), generator=gen),
            torch.randint(-1, 2, (B, d), generator=gen).to(dtype),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_concurrent_writes_lose_no_counts_or_values(dtype):
    D, batches = 256, integer_batches(40, 4096, 4, dtype)

    def build():
        return BBPMMemoryFloat(D, 4, 4, 1, GlobalAffineHash(D), dtype=dtype, write_scale="unit")

    shared, reference = build(), build()
    hammer(lambda i: shared.write(*batches[i]), len(batches))
    for keys, values in batches:
        reference.write(keys, values)
    assert float(shared.counts.sum()) == 40 * 4096 * 4
    assert torch.equal(shared.counts, reference.counts)
    assert torch.equal(shared.memory, reference.memory)


def test_concurrent_bloom_writes_give_no_false_negatives():
    bloom = BinaryBloomMemory(1 << 20, 2, 1, GlobalAffineHash(1 << 20))
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 10**12, (16384,), generator=gen) for _ in range(16)]
    hammer(lambda i: bloom.write(batches[i]), len(batches))
    reference = BinaryBloomMemory(1 << 20, 2, 1, GlobalAffineHash(1 << 20))
    for keys in batches:
        reference.write(keys)
    assert bool(bloom.contains(torch.cat(batches)).all())
    assert torch.equal(bloom.bits, reference.bits) and bloom.n_written == 16 * 16384


@pytest.mark.parametrize(
    ("build", "n_batches", "B"),
    [
        (lambda: CountSketchMemory(4, rows=3, width=64, dtype=torch.float64), 40, 2048),
        (lambda: ExactDictMemory(4, capacity=None, dtype=torch.float64), 24, 8192),
    ],
    ids=["count_sketch", "exact_dict"],
)
def test_concurrent_writes_into_a_baseline_equal_one_thread(build, n_batches, B):
    batches = integer_batches(n_batches, B, 4, torch.float64, seed=2)
    if isinstance(build(), ExactDictMemory):  # distinct keys: the final table is order-free
        keys = torch.randperm(n_batches * B)
        batches = [(keys[i * B : (i + 1) * B], v) for i, (_, v) in enumerate(batches)]
    shared, reference = build(), build()
    hammer(lambda i: shared.write(*batches[i]), len(batches))
    for keys, values in batches:
        reference.write(keys, values)
    probe = torch.cat([k for k, _ in batches])
    assert torch.equal(shared.read(probe), reference.read(probe))


def test_decay_and_ttl_steps_interleaved_with_writes_keep_memory_and_counts_together():
    # Every value is 1 (unit scale), so in any serial order of writes, decays (memory and
    # counts halved) and TTL steps (both zeroed) each slot holds memory == counts exactly.
    # A decay or a TTL step that runs in the middle of a write breaks that equality.
    D = 1024
    mem = BBPMMemoryFloat(D, 2, 8, 1, GlobalAffineHash(D), dtype=torch.float64, write_scale="unit")
    ttl = TTLEviction(mem, ttl=2)
    gen = torch.Generator().manual_seed(3)
    keys = [torch.randint(0, 10**9, (4096,), generator=gen) for _ in range(120)]
    ones = torch.ones(4096, 2, dtype=torch.float64)

    def work(i):
        if i % 3 == 0:
            decay(mem, 0.5)
        elif i % 3 == 1:
            ttl.step()
        ttl.write(keys[i], ones)

    hammer(work, len(keys))
    assert torch.equal(mem.memory, mem.counts.expand(-1, 2))


def test_the_lock_is_not_state_copies_and_checkpoints_work():
    mem = BBPMMemoryFloat(512, 4, 2, 1, GlobalAffineHash(512))
    mem.write(torch.arange(20), torch.randn(20, 4))
    assert "lock" not in mem.state_dict() and "_extra_state" in mem.state_dict()
    for twin in (copy.deepcopy(mem), pickle.loads(pickle.dumps(mem))):
        assert twin.lock is not mem.lock and isinstance(twin.lock, type(mem.lock))
        assert torch.equal(twin.read(torch.arange(20)), mem.read(torch.arange(20)))
        twin.write(torch.arange(3), torch.ones(3, 4))  # the copy's lock works
    buffer = io.BytesIO()
    torch.save(mem, buffer)  # whole-module pickling
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(loaded.memory, mem.memory) and loaded.lock is not mem.lock
    outer = torch.nn.Sequential(mem).to(torch.float64)  # plain module use: .to, containers
    assert outer[0].memory.dtype == torch.float64
    outer[0].write(torch.arange(2), torch.ones(2, 4, dtype=torch.float64))
    bloom = BinaryBloomMemory(256, 2, 1, GlobalAffineHash(256))
    bloom.write(torch.arange(5))
    assert bool(copy.deepcopy(bloom).contains(torch.arange(5)).all())
    assert bool(pickle.loads(pickle.dumps(bloom)).contains(torch.arange(5)).all())


def test_a_write_waits_for_a_reader_holding_the_lock():
    mem = BBPMMemoryFloat(512, 4, 2, 1, GlobalAffineHash(512))
    done = threading.Event()
    with mem.lock:
        writer = threading.Thread(
            target=lambda: (mem.write(torch.arange(3), torch.ones(3, 4)), done.set())
        )
        writer.start()
        assert not done.wait(0.2)  # blocked while the lock is held
        assert not mem.counts.any()
    writer.join()
    assert done.is_set() and float(mem.counts.sum()) == 3 * 2


def test_bench_times_the_locked_write_against_the_unlocked_method(capsys):
    from bbpm import bench

    rows = bench.lock_cost(D=4096, d=8, K=4, batch_sizes=(64, 4), repeats=3)
    assert [row["B"] for row in rows] == [64, 4]
    assert all(row["ratio"] == row["locked_median_s"] / row["unlocked_median_s"] for row in rows)
    print(bench.format_lock_report(rows, 3))
    assert "locked vs" in capsys.readouterr().out
    # the unlocked method the benchmark times is the same write
    keys, values = bench.make_inputs(64, 8)
    a = BBPMMemoryFloat(4096, 8, 4, 1, GlobalAffineHash(4096))
    b = BBPMMemoryFloat(4096, 8, 4, 1, GlobalAffineHash(4096))
    a.write(keys, values)
    BBPMMemoryFloat.write.__wrapped__(b, keys, values)
    assert torch.equal(a.memory, b.memory) and torch.equal(a.counts, b.counts)
