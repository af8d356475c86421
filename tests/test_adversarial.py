"""Adversarial suite: random valid and invalid calls across the public API.

Every generated call either matches a plain reference implementation (float64 tables and
Python loops written from the definitions, not from the library's code) or raises one of
the documented errors (TypeError, ValueError, IndexError, OverflowError) with every buffer
and every piece of Python state bit-identical to before the call. Which of the two must
happen is decided by the reference's own validity rules, so a bad call that is silently
accepted fails as surely as a good call that is refused.

Covered: BBPMMemoryFloat (write, read, clear, decay, clip, TTLEviction, load_state_dict with
good and broken checkpoints) in four storage dtypes with three hash families and both write
scales; the hashes themselves; BinaryBloomMemory; the peer baselines; ShardedBBPMMemory at
world size 1 with save/load and hostile shard names; decay exactness and low-precision
accumulation. Examples per test: ``EXAMPLES`` times ``BBPM_ADVERSARIAL_SCALE`` (default 1).
The run is derandomized, so CI tries the same cases every time;
``BBPM_ADVERSARIAL_RANDOM=1`` draws new ones.
"""

# ruff: noqa: B023 - the lambdas given to call() run at once, inside the loop iteration

from __future__ import annotations

import copy
import json
import math
import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bbpm import BBPMMemoryFloat, BlockPermutationHash, GlobalAffineHash, MultiHashWrapper
from bbpm.baselines import CountSketchMemory, ExactDictMemory, FHRRMemory, HopfieldMemory
from bbpm.memory import BinaryBloomMemory, TTLEviction, clip, decay

DOCUMENTED = (TypeError, ValueError, IndexError, OverflowError)
#: Examples per hypothesis test; the counts below are the CI defaults (see the README).
EXAMPLES = {
    "float_memory": 300,
    "hashes": 200,
    "bloom": 150,
    "baselines": 150,
    "sharded": 60,
    "decay": 60,
    "low_precision": 30,
}
_SCALE = float(os.environ.get("BBPM_ADVERSARIAL_SCALE", "1"))


def examples(name: str) -> settings:
    return settings(
        max_examples=max(1, int(EXAMPLES[name] * _SCALE)),
        deadline=None,
        derandomize=os.environ.get("BBPM_ADVERSARIAL_RANDOM") != "1",
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
        # shrinking a failure of a long call sequence can take minutes: CI reports the first
        # failing example as found; BBPM_ADVERSARIAL_SHRINK=1 shrinks it for debugging
        phases=[Phase.explicit, Phase.reuse, Phase.generate]
        + ([Phase.shrink] if os.environ.get("BBPM_ADVERSARIAL_SHRINK") == "1" else []),
    )


# ---------------------------------------------------------------------------- state snapshots


def _tensor_bytes(t: torch.Tensor) -> tuple:
    t = t.detach()
    return (t.dtype, tuple(t.shape), t.contiguous().reshape(-1).view(torch.uint8).clone())


_MODULE_INTERNALS = set(vars(torch.nn.Module()))


def snapshot(obj) -> dict:
    """Every tensor (buffers, parameters, tensor attributes) as raw bytes and every plain
    Python attribute (deep-copied), so NaN bit patterns and counters compare exactly."""
    state = {}
    for name, value in vars(obj).items():
        if name == "lock" or name in _MODULE_INTERNALS:
            continue
        if isinstance(value, torch.Tensor):
            state[name] = _tensor_bytes(value)
        elif isinstance(value, (int, float, str, bool, type(None), list, dict, tuple)):
            state[name] = copy.deepcopy(value)
    if isinstance(obj, torch.nn.Module):
        for name, value in obj.named_buffers():
            state["buffer:" + name] = _tensor_bytes(value)
    return state


def same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, tuple) and len(x) == 3 and isinstance(x[2], torch.Tensor):
            if x[0] != y[0] or x[1] != y[1] or not torch.equal(x[2], y[2]):
                return False
        elif x != y:
            return False
    return True


def call(objs, fn, valid: bool, what: str):
    """Run ``fn()``; a valid call must succeed, an invalid one must raise a documented
    error leaving every object in ``objs`` bit-identical. Returns fn's result (or None)."""
    before = [snapshot(o) for o in objs]
    try:
        result = fn()
    except DOCUMENTED as exc:
        assert not valid, f"{what}: a valid call was refused: {type(exc).__name__}: {exc}"
        for obj, snap in zip(objs, before, strict=True):
            assert same(snapshot(obj), snap), f"{what}: refused ({exc}) but state changed"
        return None
    assert valid, f"{what}: an invalid call was accepted"
    return result


# ---------------------------------------------------------------------------- argument strategies

FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@st.composite
def keys_case(draw, max_batch=6):
    """(keys object, valid)."""
    n = draw(st.integers(0, max_batch))
    kind = draw(
        st.sampled_from(
            ["int64"] * 6
            + ["int32", "uint8", "uint64", "float", "bool", "2d", "list", "numpy", "none", "big"]
        )
    )
    ints = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n))
    small = [abs(v) % 200 for v in ints]
    if kind == "int64":
        return torch.tensor(ints, dtype=torch.int64), True
    if kind == "big":  # the int64 extremes
        return torch.tensor([-(2**63), 2**63 - 1, 0, -1][: max(n, 1)], dtype=torch.int64), True
    if kind == "int32":
        return torch.tensor(small, dtype=torch.int32), True
    if kind == "uint8":
        return torch.tensor(small, dtype=torch.uint8), True
    if kind == "uint64":
        return torch.tensor(small, dtype=torch.int64).to(torch.uint64), False
    if kind == "float":
        return torch.tensor(small, dtype=torch.float32), False
    if kind == "bool":
        return torch.tensor([v % 2 == 0 for v in small], dtype=torch.bool), False
    if kind == "2d":
        return torch.tensor(ints, dtype=torch.int64).reshape(-1, 1), False
    if kind == "list":
        return small, False
    if kind == "numpy":
        return np.array(small, dtype=np.int64), False
    return None, False


def key_list(keys) -> list[int]:
    return [int(k) for k in keys.to(torch.int64).tolist()]


@st.composite
def values_case(draw, n, d, storage, scale):
    """(values object, valid) for a batch of n keys."""
    kind = draw(
        st.sampled_from(
            ["ok"] * 8
            + ["ok64", "nan", "inf", "huge", "int", "shape", "rows", "list", "none", "grad"]
        )
    )
    grid = draw(
        st.lists(st.integers(-8, 8), min_size=n * d, max_size=n * d)
    )  # multiples of 1/2: exact in every dtype
    base = torch.tensor(grid, dtype=torch.float64).reshape(n, d) / 2
    if kind == "ok":
        return base.to(draw(st.sampled_from([torch.float32, storage]))), True
    if kind == "ok64":
        return base, True
    if kind == "grad":
        return base.float().requires_grad_(True), True
    if kind in ("nan", "inf") and n:
        bad = base.clone()
        bad[draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))] = (
            math.nan if kind == "nan" else -math.inf
        )
        return bad.float(), False
    if kind == "huge" and n:
        # finite as float64, not in the storage dtype after the write scale
        big = base.clone()
        big[0, 0] = torch.finfo(storage).max * 4 / scale
        return big, False
    if kind == "int":
        return base.to(torch.int64), False
    if kind == "shape":
        return base.reshape(-1), False
    if kind == "rows":
        return torch.zeros(n + 1, d), False
    if kind == "list":
        return base.tolist(), False
    if kind == "none":
        return None, False
    return base.float(), True


@st.composite
def real_case(draw, low_open: float, high: float | None):
    """(number-like object, valid) for an argument in (low_open, high]."""
    kind = draw(
        st.sampled_from(
            ["ok"] * 6
            + ["nan", "inf", "-inf", "neg", "zero", "bool", "tensor", "none", "str", "big", "np"]
        )
    )
    top = high if high is not None else 10.0
    if kind == "ok":
        return draw(st.sampled_from([0.5, 0.75, 0.9, top, 1.0, 2.0, 0.25])), True
    if kind == "np":
        return np.float64(0.5), True
    table = {
        "nan": math.nan,
        "inf": math.inf,
        "-inf": -math.inf,
        "neg": -0.5,
        "zero": low_open,
        "bool": True,
        "tensor": torch.tensor(0.5),
        "none": None,
        "str": "0.5",
        "big": (high * 2 if high is not None else math.inf),
    }
    return table[kind], False


def real_ok(value, low_open, high) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.floating))
        and math.isfinite(float(value))
        and float(value) > low_open
        and (high is None or float(value) <= high)
    )


# ---------------------------------------------------------------------------- reference memory


class ReferenceMemory:
    """The definition of BBPM in float64: slot sums and counts; a read is the mean over the
    key's K*H slots of sum/count (an empty slot reads 0) divided by the write scale."""

    def __init__(self, D, d, hash_fn, K, H, scale, storage):
        self.D, self.d, self.K, self.H = D, d, K, H
        self.hash_fn, self.scale, self.storage = hash_fn, scale, storage
        self.sums = torch.zeros(D, d, dtype=torch.float64)
        self.counts = torch.zeros(D, dtype=torch.float64)
        self.adds = torch.zeros(D, dtype=torch.float64)  # writes per slot, for tolerances
        self.clipped = False

    def slots(self, keys):
        return self.hash_fn.indices(torch.tensor(key_list(keys), dtype=torch.int64), self.K, self.H)

    def write(self, keys, values):
        # the scaled value is rounded in the values' dtype, then stored in the table's
        stored = (values.detach() * self.scale).to(self.storage).double()
        for row, slots in zip(stored, self.slots(keys).tolist(), strict=True):
            for slot in slots:
                self.sums[slot] += row
                self.counts[slot] += 1
                self.adds[slot] += 1

    def read(self, keys):
        out = []
        for slots in self.slots(keys).tolist():
            parts = [
                self.sums[s] / self.counts[s]
                if self.counts[s] > 0
                else torch.zeros(self.d, dtype=torch.float64)
                for s in slots
            ]
            out.append(torch.stack(parts).mean(0) / self.scale)
        return torch.stack(out) if out else torch.zeros(0, self.d, dtype=torch.float64)

    def tolerance(self, keys):
        """Rounding of the storage dtype (each add may round by one unit in the last place
        of the slot's magnitude), the memory's 1e-8 count epsilon relative to the smallest
        count, and float32 rounding of the clip factor once a clip has run."""
        slots = self.slots(keys)
        adds = float(self.adds[slots].max()) if slots.numel() else 0.0
        magnitude = float(self.sums.abs().max()) / self.scale + 4
        eps = 1e-15 if self.storage == torch.float64 else torch.finfo(self.storage).eps
        positive = self.counts[self.counts > 0]
        smallest = float(positive.min()) if positive.numel() else 1.0
        clip_rounding = 1e-6 if self.clipped else 0.0
        return (4 * eps * (adds + 2) + 1e-8 / smallest + clip_rounding) * magnitude + 1e-12


def make_hash(kind, D, seed):
    if kind == "global":
        return GlobalAffineHash(D, seed=seed)
    if kind == "block":
        return BlockPermutationHash(D, D // 4, seed=seed)
    return MultiHashWrapper(BlockPermutationHash(D, D // 2), seed=seed)


memory_settings = st.fixed_dictionaries(
    {
        "D": st.sampled_from([64, 128, 256]),
        "d": st.integers(1, 3),
        "K": st.integers(1, 4),
        "H": st.integers(1, 3),
        "dtype": st.sampled_from(FLOAT_DTYPES),
        "write_scale": st.sampled_from(["unit", "1/sqrt(KH)"]),
        "hash": st.sampled_from(["global", "block", "multi"]),
        "seed": st.integers(0, 5),
    }
)

OPS = ["write"] * 5 + ["read"] * 3 + ["decay", "clip", "clear", "ttl_step", "load", "keys_read"]
LOADS = [
    "own",
    "other_dtype",
    "no_config",
    "short_counts",
    "other_seed",
    "counts_1d",
    "allow_missing",
]


@examples("float_memory")
@given(
    setting=memory_settings,
    ops=st.lists(st.sampled_from(OPS), min_size=1, max_size=10),
    data=st.data(),
)
def test_float_memory_calls_match_the_reference_or_change_nothing(setting, ops, data):
    D, d, K, H, dtype = (setting[k] for k in ("D", "d", "K", "H", "dtype"))
    hash_fn = make_hash(setting["hash"], D, setting["seed"])
    mem = BBPMMemoryFloat(D, d, K, H, hash_fn, dtype=dtype, write_scale=setting["write_scale"])
    ref = ReferenceMemory(D, d, hash_fn, K, H, mem.scale, dtype)
    ttl = TTLEviction(mem, ttl=2)
    last_write = torch.full((D,), -1, dtype=torch.int64)
    now, written = 0, []
    for op in ops:
        if op == "write":
            keys, keys_ok = data.draw(keys_case())
            n = keys.shape[0] if isinstance(keys, torch.Tensor) and keys.dim() == 1 else 2
            values, values_ok = data.draw(values_case(n, d, dtype, mem.scale))
            ok = keys_ok and values_ok
            via_ttl = data.draw(st.booleans())
            target = ttl.write if via_ttl else mem.write
            call([mem, ttl], lambda: target(keys, values), ok, f"write {keys!r} {values!r}")
            if ok:
                ref.write(keys, values)
                if via_ttl:
                    last_write[ref.slots(keys).reshape(-1)] = now
                written.extend(key_list(keys))
        elif op in ("read", "keys_read"):
            keys, ok = data.draw(keys_case())
            if op == "keys_read" and written:
                keys, ok = torch.tensor(written[-8:], dtype=torch.int64), True
            out = call([mem], lambda: mem.read(keys), ok, f"read {keys!r}")
            if ok:
                expected = ref.read(keys)
                assert out.shape == expected.shape and torch.isfinite(out).all()
                torch.testing.assert_close(
                    out.double(),
                    expected,
                    rtol=0,
                    atol=ref.tolerance(keys),
                    msg=lambda text: f"read {keys!r}: {text}",
                )
        elif op == "decay":
            gamma, _ = data.draw(real_case(0.0, 1.0))
            ok = real_ok(gamma, 0.0, 1.0)
            call([mem], lambda: decay(mem, gamma), ok, f"decay {gamma!r}")
            if ok:
                ref.sums *= float(gamma)
                ref.counts *= float(gamma)
        elif op == "clip":
            max_norm, _ = data.draw(real_case(0.0, None))
            ok = real_ok(max_norm, 0.0, None)
            n_clipped = call([mem], lambda: clip(mem, max_norm), ok, f"clip {max_norm!r}")
            if ok:
                occupied = ref.counts > 0
                norm = torch.zeros(D, dtype=torch.float64)
                norm[occupied] = ref.sums[occupied].norm(dim=1) / ref.counts[occupied]
                limit = float(max_norm)
                if bool(((norm - limit).abs() <= 1e-3 * limit).any()) or dtype in (
                    torch.float16,
                    torch.bfloat16,
                ):
                    return  # a slot at the threshold (or a low-precision norm): stop comparing
                over = norm > limit
                ref.sums *= torch.where(over, limit / norm.clamp_min(1e-300), 1.0)[:, None]
                ref.clipped = ref.clipped or bool(over.any())
                assert n_clipped == int(over.sum())
        elif op == "clear":
            call([mem], mem.clear, True, "clear")
            ref = ReferenceMemory(D, d, hash_fn, K, H, mem.scale, dtype)
            written = []
        elif op == "ttl_step":
            call([mem, ttl], ttl.step, True, "ttl step")
            now += 1
            expired = (last_write >= 0) & (now - last_write > 2)
            ref.sums[expired] = 0
            ref.counts[expired] = 0
            last_write[expired] = -1
        elif op == "load":
            variant = data.draw(st.sampled_from(LOADS))
            state = mem.state_dict()
            ok, allow = variant == "own", False
            if variant == "other_dtype":
                other = torch.float64 if dtype != torch.float64 else torch.float32
                state = BBPMMemoryFloat(
                    D, d, K, H, hash_fn, dtype=other, write_scale=setting["write_scale"]
                ).state_dict()
            elif variant == "no_config":
                state = {k: v for k, v in state.items() if k != "_extra_state"}
            elif variant == "allow_missing":
                state = {k: v.clone() for k, v in state.items() if k != "_extra_state"}
                ok = allow = True
            elif variant == "short_counts":
                state = {**state, "memory": state["memory"] + 1, "counts": state["counts"][:-1]}
            elif variant == "counts_1d":
                state = {
                    **state,
                    "memory": state["memory"] + 1,
                    "counts": state["counts"].reshape(-1),
                }
            elif variant == "other_seed":
                state = BBPMMemoryFloat(
                    D,
                    d,
                    K,
                    H,
                    make_hash(setting["hash"], D, setting["seed"] + 1),
                    dtype=dtype,
                    write_scale=setting["write_scale"],
                ).state_dict()
            if variant == "own":
                state = {
                    k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in state.items()
                }
            kwargs = {"allow_missing_config": True} if allow else {}
            call([mem], lambda: mem.load_state_dict(state, **kwargs), ok, f"load {variant}")


# ---------------------------------------------------------------------------- hashes

K_H_CASES = st.sampled_from([1, 2, 3, 5, 0, -1, True, 2.0, "2", None, np.int64(2)])


def positive_int_ok(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v > 0


@examples("hashes")
@given(
    kind=st.sampled_from(["global", "block", "multi", "prototype"]),
    D=st.sampled_from([16, 64, 1024]),
    K=K_H_CASES,
    H=K_H_CASES,
    seed=st.integers(0, 2**32),
    keys=keys_case(max_batch=8),
)
def test_hashes_return_valid_deterministic_slots_or_refuse(kind, D, K, H, seed, keys):
    hash_fn = (
        GlobalAffineHash(D, mode="prototype") if kind == "prototype" else make_hash(kind, D, seed)
    )
    keys, keys_ok = keys
    ok = keys_ok and positive_int_ok(K) and positive_int_ok(H)
    block = {"global": D, "prototype": D, "block": D // 4, "multi": D // 2}[kind]
    ok = ok and int(K) <= block
    if kind == "block":  # distinct blocks per hash: H <= n_blocks = 4
        ok = ok and int(H) <= 4
    # hashes are stateless functions: nothing to compare on refusal
    idx = call([], lambda: hash_fn.indices(keys, K, H), ok, f"{kind} {K} {H} {keys!r}")
    if not ok:
        return
    n = len(key_list(keys))
    assert idx.dtype == torch.int64 and tuple(idx.shape) == (n, int(K) * int(H))
    assert n == 0 or (int(idx.min()) >= 0 and int(idx.max()) < D)
    assert torch.equal(idx, hash_fn.indices(keys.clone(), K, H))  # deterministic
    per_hash = idx.reshape(n, int(H), int(K))
    if kind in ("block", "multi"):  # K distinct slots of one block per hash
        blocks = per_hash // block
        assert bool((blocks == blocks[..., :1]).all())
        assert all(len(set(row)) == int(K) for row in per_hash.reshape(-1, int(K)).tolist())


# ---------------------------------------------------------------------------- Bloom filter


@examples("bloom")
@given(
    D=st.sampled_from([8, 61, 256]),
    K=st.integers(1, 4),
    H=st.integers(1, 2),
    batches=st.lists(keys_case(max_batch=10), min_size=1, max_size=6),
)
def test_bloom_has_the_reference_bits_and_no_false_negatives(D, K, H, batches):
    K = min(K, D)
    hash_fn = GlobalAffineHash(D, seed=1)
    bloom = BinaryBloomMemory(D, K, H, hash_fn)
    bits, written = set(), []
    for keys, ok in batches:
        call([bloom], lambda keys=keys: bloom.write(keys), ok, f"bloom write {keys!r}")
        if ok:
            slots = hash_fn.indices(torch.tensor(key_list(keys), dtype=torch.int64), K, H)
            bits.update(slots.reshape(-1).tolist())
            written.extend(key_list(keys))
    unpacked = ((bloom.bits[:, None].int() >> torch.arange(8)) & 1).reshape(-1)[:D]
    assert set(unpacked.nonzero().reshape(-1).tolist()) == bits
    if written:
        probe = torch.tensor(written, dtype=torch.int64)
        assert bool(bloom.contains(probe).all())
        expected = [
            sum(s in bits for s in row) / (K * H) for row in hash_fn.indices(probe, K, H).tolist()
        ]
        assert bloom.set_fraction(probe).tolist() == pytest.approx(expected)
    assert bloom.n_written == len(written)


# ---------------------------------------------------------------------------- baselines


BASELINES = {
    "dict": lambda d, dtype: ExactDictMemory(d, capacity=None, dtype=dtype),
    "dict_bounded": lambda d, dtype: ExactDictMemory(d, capacity=5, dtype=dtype),
    "sketch": lambda d, dtype: CountSketchMemory(d, rows=3, width=16, dtype=dtype),
    "fhrr": lambda d, dtype: FHRRMemory(d, n_banks=4, dtype=dtype),
    "hopfield": lambda d, dtype: HopfieldMemory(d, capacity=6, key_dim=8, top_k=3, dtype=dtype),
}


def reference_sketch(mem, pairs, keys):
    """Count sketch from its definition: every row adds sign * v into its bucket; the read
    is the median (odd rows) of the sign-corrected buckets."""
    table = torch.zeros(mem.rows * mem.width, mem.d, dtype=torch.float64)
    for k, v in pairs:
        flat, signs = mem.buckets(torch.tensor([k]))
        for b, s in zip(flat[0].tolist(), signs[0].tolist(), strict=True):
            table[b] += s * v.double()
    flat, signs = mem.buckets(keys)
    return (signs.double()[:, :, None] * table[flat]).median(dim=1).values


@examples("baselines")
@given(
    name=st.sampled_from(sorted(BASELINES)),
    d=st.integers(1, 3),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16]),
    data=st.data(),
)
def test_baselines_match_their_definitions_or_change_nothing(name, d, dtype, data):
    mem = BASELINES[name](d, dtype)
    stored: dict[int, torch.Tensor] = {}
    held: dict[int, torch.Tensor] = {}
    pairs = []
    for _ in range(data.draw(st.integers(1, 5))):
        keys, keys_ok = data.draw(keys_case())
        n = keys.shape[0] if isinstance(keys, torch.Tensor) and keys.dim() == 1 else 2
        values, values_ok = data.draw(values_case(n, d, dtype, 1.0))
        ok = keys_ok and values_ok
        call([mem], lambda: mem.write(keys, values), ok, f"{name} write {keys!r} {values!r}")
        if ok:
            for k, v in zip(key_list(keys), values.detach().to(dtype).double(), strict=True):
                pairs.append((k, v))
                stored[k] = v
                if k not in held and len(held) == 5:  # bounded dict: FIFO over first writes
                    held.pop(next(iter(held)))
                held[k] = v
    probe = torch.tensor(sorted(stored) or [0], dtype=torch.int64)
    out = mem.read(probe)
    assert out.shape == (probe.numel(), d)
    if name == "dict":
        expected = torch.stack(
            [stored.get(k, torch.zeros(d, dtype=torch.float64)) for k in probe.tolist()]
        )
        assert torch.equal(out.double(), expected)
    elif name == "dict_bounded":
        for row, k in zip(out.double(), probe.tolist(), strict=True):
            assert torch.equal(row, held[k] if k in held else torch.zeros(d, dtype=torch.float64))
    elif name == "sketch" and dtype == torch.float64:
        torch.testing.assert_close(out, reference_sketch(mem, pairs, probe), rtol=0, atol=1e-9)


@examples("baselines")
@given(
    value=st.sampled_from(
        [
            math.inf,
            math.nan,
            -1.0,
            0.0,
            True,
            None,
            "16",
            torch.tensor(2.0),
            4,
            16.0,
            np.float32(2.0),
        ]
    )
)
def test_baseline_settings_must_be_finite(value):
    ok = real_ok(value, 0.0, None)
    try:
        HopfieldMemory(2, capacity=4, beta=value)
    except DOCUMENTED:
        assert not ok, f"beta={value!r} refused"
    else:
        assert ok, f"beta={value!r} accepted"


# ---------------------------------------------------------------------------- sharded, world of one


@pytest.fixture(scope="module")
def world_of_one():
    if dist.is_initialized():
        yield
        return
    with tempfile.TemporaryDirectory() as store:
        dist.init_process_group(
            "gloo", init_method=f"file://{os.path.join(store, 'store')}", rank=0, world_size=1
        )
        yield
        dist.destroy_process_group()


SHARD_NAMES = st.sampled_from(
    [
        "../x.pt",
        "/etc/hosts",
        "a/../../x.pt",
        "sub/shard_0_of_1.pt",
        "..",
        "",
        ".",
        "link.pt",
        "shard_0_of_1.pt",
        7,
        None,
    ]
)


@examples("sharded")
@given(
    dtype=st.sampled_from([torch.float32, torch.float64]),
    batches=st.lists(keys_case(), min_size=1, max_size=4),
    name=SHARD_NAMES,
    data=st.data(),
)
def test_sharded_memory_of_one_rank_equals_the_plain_memory(
    world_of_one, dtype, batches, name, data
):
    from bbpm.distributed import ShardedBBPMMemory, checkpoint

    D, d, K = 256, 2, 4
    sharded = ShardedBBPMMemory(D, d, K, 1, BlockPermutationHash(D, 64, seed=2), dtype=dtype)
    plain = BBPMMemoryFloat(D, d, K, 1, BlockPermutationHash(D, 64, seed=2), dtype=dtype)
    written = []
    for keys, keys_ok in batches:
        n = keys.shape[0] if isinstance(keys, torch.Tensor) and keys.dim() == 1 else 2
        values, values_ok = data.draw(values_case(n, d, dtype, sharded.scale))
        grad = isinstance(values, torch.Tensor) and values.requires_grad
        ok = keys_ok and values_ok and not grad  # the sharded memory refuses autograd writes
        call([sharded], lambda: sharded.write(keys, values), ok, f"sharded write {keys!r}")
        if ok:
            plain.write(keys, values.detach())
            written.extend(key_list(keys))
    assert torch.equal(sharded.memory, plain.memory) and torch.equal(sharded.counts, plain.counts)
    probe = torch.tensor(written[-6:] or [0], dtype=torch.int64)
    assert torch.equal(sharded.read(probe), plain.read(probe))
    with tempfile.TemporaryDirectory() as folder:
        sharded.save(folder)
        assert torch.equal(ShardedBBPMMemory.load(folder).read(probe), plain.read(probe))
        os.symlink(os.path.join(folder, "shard_0_of_1.pt"), os.path.join(folder, "link.pt"))
        meta = os.path.join(folder, "metadata.json")
        with open(meta) as handle:
            metadata = json.load(handle)
        metadata["shards"] = [name]
        with open(meta, "w") as handle:
            json.dump(metadata, handle)
        ok = name in ("shard_0_of_1.pt", "link.pt")  # link.pt: a symlink to a file inside
        result = call(
            [], lambda: checkpoint.to_single_process_state_dict(folder), ok, f"shard name {name!r}"
        )
        if ok:
            assert torch.equal(result["memory"], plain.memory)


# ---------------------------------------------------------------------------- decay and low precision


@examples("decay")
@given(
    dtype=st.sampled_from(FLOAT_DTYPES),
    gamma=st.sampled_from([0.5, 0.9, 0.99]),
    n=st.one_of(st.sampled_from([30, 1000]), st.integers(1, 1000)),
    value=st.sampled_from([2.5, -1.0, 0.125]),
)
def test_decay_alone_leaves_a_slot_value_unchanged(dtype, gamma, n, value):
    mem = BBPMMemoryFloat(64, 1, 2, 1, GlobalAffineHash(64), dtype=dtype, write_scale="unit")
    mem.write(torch.tensor([5]), torch.tensor([[value]]))
    for _ in range(n):
        decay(mem, gamma)
    assert float(mem.read(torch.tensor([5]))) == pytest.approx(value, rel=1e-2)


@examples("low_precision")
@given(
    dtype=st.sampled_from([torch.float16, torch.bfloat16]),
    n=st.one_of(st.sampled_from([20_000, 5_000, 21, 3]), st.integers(1, 20_000)),
    batch=st.sampled_from([10, 100, 1000]),
    value=st.sampled_from([2.5, -0.75]),
)
def test_repeated_writes_into_low_precision_tables_hold_or_warn(dtype, n, batch, value):
    """One key written n times into a float16/bfloat16 table: within the stated limit
    (low_precision_write_limit writes per slot) it reads back within 1%; past it, the
    memory has said so with a LowPrecisionWarning."""
    import warnings

    from bbpm.memory.base import LowPrecisionWarning, low_precision_write_limit

    limit = low_precision_write_limit(dtype)
    mem = BBPMMemoryFloat(64, 1, 2, 1, GlobalAffineHash(64), dtype=dtype, write_scale="unit")
    batch = min(batch, n)
    written = (n // batch) * batch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(n // batch):  # one key written n times, in calls of `batch` duplicates
            mem.write(torch.full((batch,), 5), torch.full((batch, 1), value, dtype=dtype))
    warned = any(issubclass(w.category, LowPrecisionWarning) for w in caught)
    if written <= limit:
        assert not warned
        assert float(mem.read(torch.tensor([5]))) == pytest.approx(value, rel=1e-2)
    else:
        assert warned
