"""The associative-memory interface, the write-scale convention, and the checks and config
helpers shared by the float BBPM memories."""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch

from bbpm.hashing import hash_from_config
from bbpm.hashing.base import check_keys, check_positive_int

_Memory = TypeVar("_Memory")

WRITE_SCALES = ("unit", "1/sqrt(KH)")
EPS = 1e-8


@runtime_checkable
class AssociativeMemory(Protocol):
    """What every memory in bbpm (BBPM and the peer baselines) offers."""

    def write(self, keys: torch.Tensor, values: torch.Tensor) -> None: ...

    def read(self, keys: torch.Tensor) -> torch.Tensor: ...

    def clear(self) -> None: ...

    @property
    def nbytes(self) -> int: ...


def write_scale_factor(write_scale: str, K: int, H: int) -> float:
    """The factor ``s`` each value is multiplied by on write.

    ``"unit"``: s = 1. ``"1/sqrt(KH)"``: s = 1/sqrt(K*H), so an item spreads unit energy
    over its K*H slots (sum of squares written = ||v||^2), keeping the table's scale
    independent of K and H. Reads divide by s again, so ``read(write(v)) == v`` at low load
    under both settings (the count-debiased mean is linear in what was stored).
    """
    if write_scale == "unit":
        return 1.0
    if write_scale == "1/sqrt(KH)":
        return 1.0 / math.sqrt(K * H)
    raise ValueError(f"write_scale must be one of {WRITE_SCALES}, got {write_scale!r}")


def check_sizes(D: int, d: int, K: int, H: int) -> tuple[int, int, int, int]:
    """Validate a memory's sizes ``D, d, K, H`` (each a positive int, ``K <= D``) and return
    them as Python ints."""
    sizes = (
        check_positive_int("D", D),
        check_positive_int("d", d),
        check_positive_int("K", K),
        check_positive_int("H", H),
    )
    if sizes[2] > sizes[0]:
        raise ValueError(
            f"K={K} slots per hash cannot be distinct in a table of D={D} slots; use K <= D"
        )
    return sizes


def check_hash_output(hash_fn: Any, K: int, H: int, D: int, device: torch.device) -> None:
    """Call ``hash_fn`` once on one key at construction, so a hash that cannot serve these
    ``K, H`` (e.g. K larger than a block) or returns bad slot ids fails when the memory is
    built, not at its first write (skipped on the ``meta`` device)."""
    if device.type == "meta":
        return
    hashed_slots(
        hash_fn, torch.zeros(1, dtype=torch.int64, device=device), K, H, D, check_range=True
    )


def check_hash_and_dtype(hash_fn: Any, D: int, dtype: Any) -> None:
    """Validate that ``hash_fn`` has ``indices`` and addresses ``D`` slots, and that
    ``dtype`` is a floating torch dtype."""
    if not callable(getattr(hash_fn, "indices", None)):
        raise TypeError(f"hash_fn must provide indices(keys, K, H), got {type(hash_fn).__name__}")
    if getattr(hash_fn, "D", D) != D:
        raise ValueError(
            f"hash_fn addresses D={hash_fn.D} slots but the memory has D={D}; build both with the same D"
        )
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")


def counts_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """Dtype of the counts table: float64 for float64 storage, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def memory_config(memory: Any) -> dict[str, Any]:
    """The config dict of a float BBPM memory: sizes, storage dtype, write scale, hash."""
    hash_fn = memory.hash_fn
    return {
        "D": memory.D,
        "d": memory.d,
        "K": memory.K,
        "H": memory.H,
        "dtype": str(memory.memory.dtype).removeprefix("torch."),
        "write_scale": memory.write_scale,
        "hash": hash_fn.config() if hasattr(hash_fn, "config") else None,
    }


def memory_from_config(
    cls: Callable[..., _Memory], config: dict[str, Any], **kwargs: Any
) -> _Memory:
    """``cls(D, d, K, H, hash_fn, dtype=..., write_scale=..., **kwargs)`` from a config dict."""
    return cls(
        config["D"],
        config["d"],
        config["K"],
        config["H"],
        hash_from_config(config["hash"]),
        dtype=getattr(torch, config["dtype"]),
        write_scale=config["write_scale"],
        **kwargs,
    )


def check_values(values: object, keys: torch.Tensor, d: int, check_finite: bool) -> torch.Tensor:
    """Validate ``values: [B, d]`` floating point, on the keys' device, finite (unless
    ``check_finite`` is False)."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(
            f"values must be a torch.Tensor of shape [B, d], got {type(values).__name__}"
        )
    if not values.is_floating_point():
        raise TypeError(
            f"values must be a floating-point tensor, got {values.dtype}; use values.float()"
        )
    if values.dim() != 2 or values.shape[1] != d or values.shape[0] != keys.shape[0]:
        raise ValueError(
            f"values must have shape [B, d] = [{keys.shape[0]}, {d}] to match keys, got {tuple(values.shape)}"
        )
    if values.device != keys.device:
        raise ValueError(
            f"keys and values must be on the same device, got keys on {keys.device} and values on {values.device}"
        )
    if check_finite and values.numel() and not bool(torch.isfinite(values).all()):
        raise ValueError(
            "values contain NaN or inf; clean them or pass check_finite=False to skip this check"
        )
    return values


def to_storage(
    values: torch.Tensor, factor: float, dtype: torch.dtype, check_finite: bool = True
) -> torch.Tensor:
    """``values * factor`` cast to the storage ``dtype``, checked after the cast (unless
    ``check_finite`` is False): NaN/inf in ``values`` raise ``ValueError``; finite values that
    do not fit the storage dtype (1e300 into float32, 7e4 into float16) raise
    ``OverflowError``, so an overflow never reaches the table as inf."""
    scaled = values * factor if factor != 1.0 else values
    stored = scaled.to(dtype)
    if check_finite and stored.numel() and not bool(torch.isfinite(stored).all()):
        if not bool(torch.isfinite(values).all()):
            raise ValueError(
                "values contain NaN or inf; clean them or pass check_finite=False to skip this check"
            )
        largest = float(scaled.detach().abs().max())
        raise OverflowError(
            f"values overflow the memory's storage dtype {str(dtype).removeprefix('torch.')}: "
            f"a value times the write factor {factor:.6g} is {largest:.6g}, but the largest "
            f"finite {str(dtype).removeprefix('torch.')} is {torch.finfo(dtype).max:.6g}; "
            "scale the values down or store them in a wider dtype"
        )
    return stored


# ---------------------------------------------------------------------------- decay
#: Largest write weight kept: beyond it a fold would floor every slot anyway (see
#: :func:`fold_write_weight`), so :func:`bbpm.memory.decay` stops growing the weight there.
WEIGHT_CAP = 2.0**900
#: Rows per block when a fold rescales the table (bounds its temporary memory).
FOLD_ROWS = 65536


def write_weight_range(dtype: torch.dtype) -> tuple[float, float, float]:
    """``(target, high, count_floor)`` of the write weight for a storage ``dtype``.

    A decayed memory stores a fresh write with weight ``w`` (values times ``w``, counts
    ``+= w``) instead of shrinking the table, so ``decay`` never touches the table. Once
    ``w > high`` the next write first folds the table: memory and counts are divided by a
    power of two ``f`` (exact) that brings ``w`` into ``[target, 2 * target)``; a slot whose
    count would drop below ``count_floor`` is scaled to that count instead (its debiased
    value kept), so old content weighs at least ``count_floor / w`` against a fresh write:
    ``2**-32`` or less for float32/bfloat16 (``2**-64`` for float64), below the storage
    precision, and ``2**-11`` for float16, whose range (6e-5 to 65504) holds no more.
    Counts stay >= 1 after a fold except in float16 tables, so the read's 1e-8 stays
    negligible."""
    if dtype == torch.float16:
        return 1.0, 2.0**4, 2.0**-11
    if dtype == torch.float64:
        return 2.0**64, 2.0**128, 1.0
    return 2.0**32, 2.0**64, 1.0


def fold_factor(weight: float, target: float) -> float:
    """The power of two ``f`` that brings ``weight`` into ``[target, 2 * target)`` (1 when
    ``weight < 2 * target``)."""
    if weight < 2.0 * target:
        return 1.0
    return 2.0 ** math.floor(math.log2(weight / target))


@torch.no_grad()
def fold_write_weight(
    memory: torch.Tensor, counts: torch.Tensor, factor: float, count_floor: float
) -> torch.Tensor:
    """Divide ``memory [D, d]`` and ``counts [D, 1]`` by ``factor`` (a power of two), in place
    and block by block; a nonzero count that would fall below ``count_floor`` becomes
    ``count_floor`` and its row is scaled by ``count_floor / count`` (the slot's debiased
    value kept). Returns ``memory`` (a new tensor when it records autograd history)."""
    work = torch.float64 if memory.dtype == torch.float64 else torch.float32
    if memory.requires_grad:  # a graph output: rescale out of place, recorded
        multiplier, new_counts = _fold_multipliers(counts, factor, count_floor)
        counts.copy_(new_counts)
        with torch.enable_grad():
            return (memory.to(work) * multiplier.to(work)).to(memory.dtype)
    for start in range(0, memory.shape[0], FOLD_ROWS):
        rows = slice(start, start + FOLD_ROWS)
        multiplier, new_counts = _fold_multipliers(counts[rows], factor, count_floor)
        memory[rows] = (memory[rows].to(work) * multiplier.to(work)).to(memory.dtype)
        counts[rows] = new_counts
    return memory


def _fold_multipliers(
    counts: torch.Tensor, factor: float, count_floor: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slot multiplier ``[n, 1]`` (float64) and the folded counts (counts' dtype)."""
    wide = counts.to(torch.float64)
    folded = wide / factor
    floored = (folded < count_floor) & (wide > 0)
    new_counts = torch.where(floored, torch.full_like(folded, count_floor), folded)
    multiplier = torch.where(floored, count_floor / wide, torch.full_like(folded, 1.0 / factor))
    return multiplier, new_counts.to(counts.dtype)


def plan_weighted_write(
    module: Any, values: torch.Tensor, fold_on_overflow: bool = True
) -> tuple[torch.Tensor, float]:
    """The values a write of ``module`` (a BBPM float memory) stores and the weight it uses:
    ``values * scale * w`` in the storage dtype (checked by :func:`to_storage`) and ``w``,
    the memory's write weight, or the folded weight when ``w`` passed its range
    (:func:`write_weight_range`) or (with ``fold_on_overflow``) when the values only fit the
    storage dtype at the folded weight. Changes nothing; :func:`apply_write_weight` then
    folds the table to that weight."""
    dtype = module.memory.dtype
    weight = float(module.write_weight)
    target, high, _ = write_weight_range(dtype)
    folded = weight / fold_factor(weight, target)
    new_weight = folded if weight > high else weight
    try:
        stored = to_storage(values, module.scale * new_weight, dtype, module.check_finite)
    except OverflowError:
        if new_weight == folded or not fold_on_overflow:
            raise
        stored = to_storage(values, module.scale * folded, dtype, module.check_finite)
        new_weight = folded
    return stored, new_weight


def apply_write_weight(module: Any, new_weight: float) -> None:
    """Fold ``module``'s table from its write weight to ``new_weight`` (planned by
    :func:`plan_weighted_write`; nothing to do when they are equal)."""
    weight = float(module.write_weight)
    if new_weight == weight:
        return
    count_floor = write_weight_range(module.memory.dtype)[2]
    module.memory = fold_write_weight(
        module.memory, module.counts, weight / new_weight, count_floor
    )
    module.write_weight.fill_(new_weight)


def weighted_values(
    module: Any, values: torch.Tensor, idx: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """:func:`plan_weighted_write` then :func:`apply_write_weight` for a single-process
    memory; ``idx`` is range-checked before a fold, so a refused write leaves every buffer
    unchanged. Returns the stored values and the count step."""
    stored, new_weight = plan_weighted_write(module, values)
    if new_weight != float(module.write_weight):
        from bbpm.memory.kernels.torch_ops import check_slot_range

        check_slot_range(idx, module.memory.shape[0])
        apply_write_weight(module, new_weight)
    return stored, new_weight


def load_default_write_weight(state_dict: dict[str, Any], prefix: str) -> None:
    """A checkpoint saved before memories had a write weight loads with weight 1 (its
    counts are then plain write counts)."""
    key = prefix + "write_weight"
    if key not in state_dict and prefix + "memory" in state_dict:
        state_dict[key] = torch.ones((), dtype=torch.float64)


# ---------------------------------------------------------------------------- low precision
#: Worst-case relative error of a slot's stored sum that the write limit of float16 and
#: bfloat16 tables keeps (see :func:`low_precision_write_limit`).
LOW_PRECISION_ERROR_BOUND = 0.01


class LowPrecisionWarning(UserWarning):
    """A float16/bfloat16 slot received more writes than its stated limit
    (:func:`low_precision_write_limit`): its sum may be off by more than 1%."""


def low_precision_write_limit(dtype: torch.dtype) -> int | None:
    """Writes per slot up to which a float16/bfloat16 table's sums are guaranteed within
    :data:`LOW_PRECISION_ERROR_BOUND` (1%) relative error; None for float32/float64.

    Each write adds into the slot's sum with one rounding to the storage precision
    (unit roundoff ``u = 2**-11`` for float16, ``2**-8`` for bfloat16), so after ``n`` writes
    the sum is off by at most ``(n-1) u / (1 - (n-1) u)`` times the sum of the magnitudes
    written (the classic bound for recursive summation), and so is the slot's debiased
    value relative to the mean magnitude written. That stays within 1% for ``n <= 21``
    (float16) and ``n <= 3`` (bfloat16): the limits returned. Past them the error grows
    with ``n`` until a sum stops growing at all (a write smaller than half a unit in the
    last place of the sum is lost: about ``2**11`` float16 / ``2**8`` bfloat16 writes of
    similar values)."""
    if dtype not in (torch.float16, torch.bfloat16):
        return None
    unit_roundoff = torch.finfo(dtype).eps / 2
    allowed = LOW_PRECISION_ERROR_BOUND / (1 + LOW_PRECISION_ERROR_BOUND)
    return 1 + math.floor(allowed / unit_roundoff)


def warn_past_write_limit(module: Any, idx: torch.Tensor) -> None:
    """After a write into a float16/bfloat16 table: one :class:`LowPrecisionWarning` per
    memory when a written slot's count (in fresh writes) passed the write limit."""
    limit = low_precision_write_limit(module.memory.dtype)
    if limit is None or getattr(module, "_warned_write_limit", False) or idx.numel() == 0:
        return
    written = module.counts[:, 0].index_select(0, idx.reshape(-1))
    most = float(written.max()) / float(module.write_weight)
    if most > limit * (1 + 1e-6):
        module._warned_write_limit = True
        import warnings

        dtype = str(module.memory.dtype).removeprefix("torch.")
        warnings.warn(
            f"a {dtype} slot of this memory now holds {most:.0f} writes, past the {limit} up to "
            f"which {dtype} sums are guaranteed within {LOW_PRECISION_ERROR_BOUND:.0%}; its "
            "reads may be off by more (bbpm.memory.base.low_precision_write_limit). Use "
            "float32 storage for many writes per slot (this warning is shown once per memory)",
            LowPrecisionWarning,
            stacklevel=3,
        )


def nonfinite_rows(table: torch.Tensor, counts: torch.Tensor | None = None) -> int:
    """Number of rows of ``table [D, ...]`` holding a NaN or inf (or whose ``counts [D, 1]``
    entry does): slots whose accumulated sum overflowed the storage dtype."""
    bad = ~torch.isfinite(table.reshape(table.shape[0], -1)).all(dim=1)
    if counts is not None:
        bad |= ~torch.isfinite(counts.reshape(counts.shape[0], -1)).all(dim=1)
    return int(bad.sum())


def check_keys_on(keys: object, device: torch.device) -> torch.Tensor:
    keys = check_keys(keys)
    if keys.device != device:
        raise ValueError(
            f"keys are on {keys.device} but the memory is on {device}; move them with keys.to({str(device)!r})"
        )
    return keys


def hashed_slots(
    hash_fn: Any, keys: torch.Tensor, K: int, H: int, D: int, check_range: bool = False
) -> torch.Tensor:
    """``hash_fn.indices(keys, K, H)`` for checked ``keys``, itself checked: a custom hash
    that returns the wrong shape, dtype or device (or, with ``check_range``, a slot id
    outside ``[0, D)``) raises ``ValueError`` here instead of touching the wrong slots."""
    idx = hash_fn.indices(keys, K, H)
    expected = (keys.shape[0], K * H)
    if (
        not isinstance(idx, torch.Tensor)
        or idx.dtype != torch.int64
        or tuple(idx.shape) != expected
        or idx.device != keys.device
    ):
        got = (
            f"{idx.dtype} of shape {tuple(idx.shape)} on {idx.device}"
            if isinstance(idx, torch.Tensor)
            else type(idx).__name__
        )
        raise ValueError(
            f"hash_fn.indices(keys, K={K}, H={H}) returned {got}; a HashFunction must return "
            f"[B, K*H] = [{expected[0]}, {expected[1]}] int64 slot ids on the keys' device"
        )
    bad = out_of_range_slot(idx, D) if check_range else None
    if bad is not None:
        raise ValueError(
            f"hash_fn.indices returned slot id {bad}, outside [0, D={D}); "
            "a HashFunction must return ids in [0, D)"
        )
    return idx


def out_of_range_slot(idx: torch.Tensor, D: int) -> int | None:
    """The extreme slot id of ``idx`` outside ``[0, D)`` (the most negative, else the
    largest), or None when all are in range: one reduction (one device sync on CUDA)."""
    if idx.numel() == 0:
        return None
    low, high = (int(v) for v in torch.aminmax(idx))
    if low < 0:
        return low
    return high if high >= D else None


_Method = TypeVar("_Method", bound=Callable[..., Any])


class MutationLock:
    """Mixin: a re-entrant ``lock`` (``threading.RLock``) that every mutating method of a
    memory holds (see :func:`locked`), so writes, evictions, ``clear`` and checkpoint loads
    from several threads never interleave inside one update (no lost counts, values or
    bits). Reads do not take it: a read that runs during a write may see part of that
    write; hold ``with memory.lock:`` around the read to see whole writes only.

    The lock is not part of the object's state: pickling, ``copy.deepcopy`` and
    ``torch.save(module)`` drop it and the copy gets a fresh one; ``state_dict`` never
    contains it. Subclasses call :meth:`_init_lock` in ``__init__``.
    """

    lock: threading.RLock

    def _init_lock(self) -> None:
        self.lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # type: ignore[misc]
        state.pop("lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        parent = getattr(super(), "__setstate__", None)
        if parent is not None:
            parent(state)
        else:
            self.__dict__.update(state)
        self._init_lock()


def locked(method: _Method) -> _Method:
    """Run ``method`` holding ``self.lock`` (a :class:`MutationLock`). The unlocked method
    stays reachable as ``method.__wrapped__`` (the benchmark times both)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class CheckedExtraState:
    """Mixin for an ``nn.Module`` whose ``get_extra_state()`` is a config a checkpoint must
    match (sizes, storage dtype, write scale, hash). ``load_state_dict`` checks the whole
    checkpoint before torch copies any buffer, so a refused load raises with the module
    unchanged (torch itself calls ``set_extra_state`` only after copying the buffers, and
    casts a buffer of another dtype silently):

    * the config entry ``_extra_state`` must be present (``ValueError`` otherwise; pass
      ``allow_missing_config=True`` to ``load_state_dict`` to load a hand-built dict as if
      it carried this memory's config) and match (``check_extra_state``);
    * every buffer (``memory``, ``counts``) must be present, a tensor, of this module's
      shape and dtype.
    """

    def check_extra_state(self, state: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def set_extra_state(self, state: Any) -> None:
        self.check_extra_state(state)

    def load_state_dict(self, state_dict, strict=True, assign=False, allow_missing_config=False):  # type: ignore[no-untyped-def,override]
        """``nn.Module.load_state_dict``, checked whole first (see the class docstring).
        ``allow_missing_config=True`` accepts a dict without ``_extra_state`` (older or
        hand-built files) as holding this memory's own config: the caller vouches that its
        tables were written with the same sizes, dtype, write scale and hash."""
        if allow_missing_config and "_extra_state" not in state_dict:
            state_dict = {**state_dict, "_extra_state": self.get_extra_state()}  # type: ignore[attr-defined]
        with self.lock:  # type: ignore[attr-defined]
            return super().load_state_dict(state_dict, strict=strict, assign=assign)  # type: ignore[misc]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        key = prefix + "_extra_state"
        if key not in state_dict:
            raise ValueError(
                f"state_dict has no BBPM config ({key!r}): it was not saved by "
                f"{type(self).__name__}.state_dict(), so its tables may belong to another hash, "
                "size or dtype; nothing was loaded. If you know it matches this memory, call "
                "memory.load_state_dict(state_dict, allow_missing_config=True)"
            )
        self.check_extra_state(state_dict[key])
        for name, buffer in self._buffers.items():  # type: ignore[attr-defined]
            if buffer is None:
                continue
            check_checkpoint_tensor(state_dict.get(prefix + name), prefix + name, buffer)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[misc]


def check_checkpoint_tensor(saved: Any, name: str, expected: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``saved`` is a tensor with ``expected``'s shape and dtype
    (a checkpoint is never cast or partially copied)."""
    if not isinstance(saved, torch.Tensor):
        raise ValueError(
            f"checkpoint entry {name!r} is missing or not a tensor (got {type(saved).__name__}); "
            "nothing was loaded"
        )
    if tuple(saved.shape) != tuple(expected.shape) or saved.dtype != expected.dtype:
        raise ValueError(
            f"checkpoint entry {name!r} is {saved.dtype} of shape {tuple(saved.shape)}, but this "
            f"memory holds {expected.dtype} of shape {tuple(expected.shape)}; nothing was loaded "
            "(build a matching memory, e.g. with from_state_dict)"
        )
