"""CPU kernels in C (``csrc/bbpm_cpu.c``), compiled on first use, called with ctypes: the
BBPM write (:func:`write`), the read's per-slot weights (:func:`slot_weights`) and the
fly-hash encoder of the exp08 baseline (:func:`flyhash_topk`).

Why a C kernel: at the CPU target setting (D=1M, d=64, K=32, B=8192) none of the library
write paths bench03 times (per-column ``index_add_``, ``scatter_add_``, ``index_put_``
with accumulation, a sparse ``addmm_``) reaches the 3x speedup over the prototype's write
that this kernel gives; bench03 prints each one's ratio. The kernel is one loop with
software prefetches over the ``B*M`` slot ids, its slot range split across threads so that
no two threads touch a row (see the C file's header). There is no read kernel: the read is
``embedding_bag``, and only its per-slot weights (one pass where torch makes four) come
from here. It needs no torch headers and builds in
about a second with the system C compiler.

Build and cache: ``$CC`` (default ``cc``) with ``-O3 -std=c99 -shared -fPIC -pthread``
and ``-fopenmp`` (without it where the compiler has no OpenMP)
into ``$BBPM_CACHE_DIR`` (default ``$XDG_CACHE_HOME/bbpm`` or ``~/.cache/bbpm``), one file
per source/compiler/platform hash, written atomically so concurrent processes do not
clash. ``BBPM_NATIVE=0`` disables the kernel. Where it cannot be built (no compiler, not
Linux/macOS), :func:`available` is False, :func:`unavailable_reason` says why, and
``kernels.read`` / ``kernels.write`` and the fly-hash baseline fall back to torch.

Write: CPU tensors, contiguous ``memory [D, d]`` float32/float64, ``counts [D, 1]``
float32/float64, ``values [B, d]`` in the memory's dtype, ``idx [B, M]`` int64.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("csrc") / "bbpm_cpu.c"
CFLAGS = ("-O3", "-std=c99", "-shared", "-fPIC", "-pthread")
#: The build tries these flags first: the kernel's threads then come from the OpenMP
#: runtime, which is torch's own libgomp when torch loaded one (same soname): no thread
#: start-up per call, and no competition with torch's spinning pool threads. Without
#: OpenMP, plain pthreads.
OPENMP_FLAGS = ("-fopenmp",)
#: Minimum slot entries per thread: below it the thread start-up (tens of microseconds)
#: costs more than it saves.
MIN_ENTRIES_PER_THREAD = 4096

_SUFFIXES = {
    (torch.float32, torch.float32): "f32_c32",
    (torch.float32, torch.float64): "f32_c64",
    (torch.float64, torch.float32): "f64_c32",
    (torch.float64, torch.float64): "f64_c64",
}
_library: ctypes.CDLL | None = None
_reason: str | None = None
_loaded = False


def cache_dir() -> Path:
    """Where the compiled kernel is kept: ``$BBPM_CACHE_DIR``, else ``$XDG_CACHE_HOME/bbpm``,
    else ``~/.cache/bbpm``."""
    if os.environ.get("BBPM_CACHE_DIR"):
        return Path(os.environ["BBPM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bbpm"


def _compiler() -> str:
    return os.environ.get("CC", "cc")


def _build_tag(compiler: str, flags: tuple[str, ...]) -> str:
    """Hash of everything the binary depends on: source, flags, compiler version, platform."""
    try:
        version = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise RuntimeError(f"C compiler {compiler!r} not usable: {error}") from error
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(flags).encode(), version.encode()):
        digest.update(part)
    digest.update(f"{sys.platform}-{platform.machine()}".encode())
    return digest.hexdigest()[:16]


def _compile(compiler: str, flags: tuple[str, ...]) -> Path:
    target = cache_dir() / f"bbpm_cpu-{_build_tag(compiler, flags)}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        result = subprocess.run(
            [compiler, *flags, str(SOURCE), "-o", tmp],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {result.stderr.strip()[:500]}")
        os.replace(tmp, target)  # atomic: another process may have built the same file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _build() -> Path:
    """The compiled kernel: with OpenMP where the compiler supports it, else without."""
    compiler = _compiler()
    try:
        return _compile(compiler, CFLAGS + OPENMP_FLAGS)
    except RuntimeError:
        return _compile(compiler, CFLAGS)


def _load() -> ctypes.CDLL | None:
    global _library, _reason, _loaded
    if _loaded:
        return _library
    _loaded = True
    if os.environ.get("BBPM_NATIVE", "1") == "0":
        _reason = "disabled by BBPM_NATIVE=0"
        return None
    if sys.platform not in ("linux", "darwin"):
        _reason = f"not built on {sys.platform} (Linux and macOS only)"
        return None
    try:
        library = ctypes.CDLL(str(_build()))
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        _reason = f"could not build or load {SOURCE.name}: {error}"
        return None
    pointer, i64 = ctypes.c_void_p, ctypes.c_int64
    library.bbpm_first_bad_index.argtypes = [pointer, i64, i64]
    library.bbpm_first_bad_index.restype = i64
    for suffix in _SUFFIXES.values():
        write_fn = getattr(library, f"bbpm_write_{suffix}")
        write_fn.argtypes = [pointer, pointer, pointer, pointer, i64, i64, i64, i64, ctypes.c_int]
        write_fn.argtypes += [ctypes.c_double]
        write_fn.restype = ctypes.c_int
    for name in ("bbpm_slot_weights_f32", "bbpm_slot_weights_f64"):
        weights_fn = getattr(library, name)
        weights_fn.argtypes = [pointer, pointer, pointer, i64, i64, ctypes.c_double, ctypes.c_int]
        weights_fn.restype = None
    for name in _RULE_FUNCTIONS.values():
        rule_fn = getattr(library, name)
        rule_fn.argtypes = [pointer, pointer, pointer, i64, i64, ctypes.c_int, ctypes.c_int]
        rule_fn.restype = None
    library.bbpm_flyhash_topk.argtypes = [pointer, pointer, pointer, i64, i64, i64, i64, i64]
    library.bbpm_flyhash_topk.argtypes += [ctypes.c_int]
    library.bbpm_flyhash_topk.restype = ctypes.c_int
    _library = library
    return _library


def _require_library() -> ctypes.CDLL:
    """The loaded kernel library; ``RuntimeError`` saying why where it is unavailable."""
    library = _load()
    if library is None:
        raise RuntimeError(f"the native CPU kernel is unavailable: {_reason}")
    return library


def available() -> bool:
    """True when the kernel is built and loaded (building it on the first call)."""
    return _load() is not None


def unavailable_reason() -> str | None:
    """Why :func:`available` is False (None when it is True)."""
    _load()
    return _reason


def supports_write(memory: torch.Tensor, counts: torch.Tensor, values: torch.Tensor) -> bool:
    """Whether :func:`write` handles these buffers: contiguous CPU float32/float64 memory
    and counts, values on the CPU in the memory's dtype, no autograd on the table."""
    return (
        memory.device.type == "cpu"
        and counts.device.type == "cpu"
        and values.device.type == "cpu"
        and (memory.dtype, counts.dtype) in _SUFFIXES
        and values.dtype == memory.dtype
        and memory.is_contiguous()
        and counts.is_contiguous()
        and not (memory.requires_grad or counts.requires_grad)
        and available()
    )


def thread_count(entries: int, threads: int | None = None) -> int:
    """Threads for a write of ``entries`` slot ids: ``threads`` (default torch's intra-op
    thread count), fewer for small writes (at least :data:`MIN_ENTRIES_PER_THREAD` each)."""
    threads = torch.get_num_threads() if threads is None else threads
    return max(1, min(threads, entries // MIN_ENTRIES_PER_THREAD))


def _checked_slots(library: ctypes.CDLL, idx: torch.Tensor, D: int) -> torch.Tensor:
    """``idx`` made contiguous; ``IndexError`` naming the first slot id outside ``[0, D)``."""
    idx = idx.contiguous()
    bad = library.bbpm_first_bad_index(idx.data_ptr(), idx.numel(), D)
    if bad >= 0:
        raise IndexError(
            f"slot id {int(idx.reshape(-1)[bad])} at flat position {bad} is outside [0, D={D})"
        )
    return idx


def write(
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    values: torch.Tensor,
    threads: int | None = None,
    count_step: float = 1.0,
) -> None:
    """``memory[idx[b, j]] += values[b]`` and ``counts[idx[b, j]] += count_step`` (default 1)
    for every entry, in place; the same sums as :func:`torch_ops.write_index_add`, added in
    entry order.

    Raises ``IndexError`` (table untouched) if a slot id is outside ``[0, D)``, and
    ``RuntimeError`` if the kernel is unavailable or the buffers unsupported."""
    library = _require_library()
    if not supports_write(memory, counts, values):
        raise RuntimeError(
            "the native CPU kernel needs contiguous CPU float32/float64 memory and counts, values "
            f"in the memory's dtype and no autograd on the table; got memory {memory.dtype} on "
            f"{memory.device}, counts {counts.dtype}, values {values.dtype} on {values.device}"
        )
    D, d = memory.shape
    B, M = idx.shape
    if values.shape != (B, d):
        raise ValueError(f"values must be [B, d] = [{B}, {d}], got {tuple(values.shape)}")
    if B == 0:
        return
    idx = _checked_slots(library, idx, D)
    values = values.contiguous()
    function = getattr(library, f"bbpm_write_{_SUFFIXES[(memory.dtype, counts.dtype)]}")
    function(
        memory.data_ptr(),
        counts.data_ptr(),
        values.data_ptr(),
        idx.data_ptr(),
        B,
        M,
        d,
        D,
        thread_count(B * M, threads),
        float(count_step),
    )
    # The kernel wrote through raw pointers: tell autograd the tensors changed, as an
    # in-place torch op would (a graph that saved them then refuses to backpropagate).
    torch.autograd.graph.increment_version(memory)
    torch.autograd.graph.increment_version(counts)


_WEIGHT_FUNCTIONS = {torch.float32: "bbpm_slot_weights_f32", torch.float64: "bbpm_slot_weights_f64"}


def supports_weights(memory: torch.Tensor, counts: torch.Tensor) -> bool:
    """Whether :func:`slot_weights` serves a read of these buffers: CPU, counts contiguous
    and of the memory's dtype (float32 or float64)."""
    return (
        counts.device.type == "cpu"
        and counts.dtype == memory.dtype
        and counts.dtype in _WEIGHT_FUNCTIONS
        and counts.is_contiguous()
        and available()
    )


def _weights_pass(
    counts: torch.Tensor,
    idx: torch.Tensor,
    functions: dict[torch.dtype, str],
    caller: str,
    shape_args: tuple,
    threads: int | None,
) -> torch.Tensor:
    """``[B, M]`` weights in the counts' dtype from one C pass over ``idx``:
    ``functions[counts.dtype](counts, idx, weights, *shape_args, threads)``. ``RuntimeError``
    naming ``caller`` for counts the C code does not serve, ``IndexError`` for a slot id
    outside ``[0, D)``."""
    library = _require_library()
    if counts.dtype not in functions or counts.device.type != "cpu":
        raise RuntimeError(f"{caller} needs float32/float64 CPU counts, got {counts.dtype}")
    counts = counts.contiguous()
    idx = _checked_slots(library, idx, counts.shape[0])
    weights = torch.empty(idx.shape, dtype=counts.dtype)
    getattr(library, functions[counts.dtype])(
        counts.data_ptr(),
        idx.data_ptr(),
        weights.data_ptr(),
        *shape_args,
        thread_count(idx.numel(), threads),
    )
    return weights


def slot_weights(
    counts: torch.Tensor, idx: torch.Tensor, eps: float, threads: int | None = None
) -> torch.Tensor:
    """``[B, M]`` read weights ``1 / ((counts[idx] + eps) * M)`` in the counts' dtype, in one
    pass; bitwise equal to :func:`torch_ops.slot_weights`. ``IndexError`` for a slot id
    outside ``[0, D)``."""
    shape_args = (idx.numel(), idx.shape[1], float(eps))
    return _weights_pass(counts, idx, _WEIGHT_FUNCTIONS, "slot_weights", shape_args, threads)


_RULE_FUNCTIONS = {torch.float32: "bbpm_rule_weights_f32", torch.float64: "bbpm_rule_weights_f64"}
_RULE_CODES = {"mean": 1, "inverse_noise": 2}


def supports_rule_weights(counts: torch.Tensor, idx: torch.Tensor) -> bool:
    """Whether :func:`rule_weights` serves these buffers: CPU float32/float64 counts."""
    return (
        counts.device.type == "cpu"
        and idx.device.type == "cpu"
        and counts.dtype in _RULE_FUNCTIONS
        and available()
    )


def rule_weights(
    counts: torch.Tensor, idx: torch.Tensor, rule: str, eps: float, threads: int | None = None
) -> torch.Tensor:
    """``[B, M]`` weights of a :mod:`~bbpm.memory.read_rules` rule in the counts' dtype, in
    one pass over the rows (``"debiased"``: :func:`slot_weights`); equal to
    :func:`bbpm.memory.read_rules.slot_weights` up to float rounding. ``IndexError`` for a
    slot id outside ``[0, D)``."""
    if rule == "debiased":
        return slot_weights(counts, idx, eps, threads)
    if rule not in _RULE_CODES:
        raise ValueError(f"rule must be 'debiased', 'mean' or 'inverse_noise', got {rule!r}")
    shape_args = (idx.shape[0], idx.shape[1], _RULE_CODES[rule])
    return _weights_pass(counts, idx, _RULE_FUNCTIONS, "rule_weights", shape_args, threads)


def flyhash_topk(
    patterns: torch.Tensor, inputs: torch.Tensor, k: int, threads: int | None = None
) -> torch.Tensor:
    """Fly-hash codes: for each row of ``patterns [B, key_dim]`` float32, the ids of the ``k``
    largest unit activations, unit ``u`` summing ``patterns[:, inputs[u]]`` left to right
    (``inputs [m, fan_in]`` int32). Returns ``[B, k]`` int64, in no particular order; among
    equal activations the lower unit id wins. O(m * fan_in) adds per key, O(k) extra memory
    (no ``[B, m]`` activation matrix). Used by :class:`bbpm.baselines.FlyHashHebbianMemory`.
    """
    library = _require_library()
    if patterns.dtype != torch.float32 or patterns.dim() != 2 or patterns.device.type != "cpu":
        raise ValueError(
            f"patterns must be a [B, key_dim] float32 CPU tensor, got {patterns.dtype} "
            f"{tuple(patterns.shape)} on {patterns.device}"
        )
    if inputs.dtype != torch.int32 or inputs.dim() != 2 or inputs.device.type != "cpu":
        raise ValueError(
            f"inputs must be a [m, fan_in] int32 CPU tensor, got {inputs.dtype} {tuple(inputs.shape)}"
        )
    B, key_dim = patterns.shape
    m, fan_in = inputs.shape
    if not 1 <= k <= m or fan_in < 1:
        raise ValueError(f"need 1 <= k <= m and fan_in >= 1, got k={k}, m={m}, fan_in={fan_in}")
    if inputs.numel() and (int(inputs.min()) < 0 or int(inputs.max()) >= key_dim):
        raise ValueError(f"inputs must be unit input ids in [0, key_dim={key_dim})")
    patterns, inputs = patterns.contiguous(), inputs.contiguous()
    out = torch.empty(B, k, dtype=torch.int64)
    if B == 0:
        return out
    threads = torch.get_num_threads() if threads is None else threads
    status = library.bbpm_flyhash_topk(
        patterns.data_ptr(), inputs.data_ptr(), out.data_ptr(), B, key_dim, m, fan_in, k, threads
    )
    if status != 0:
        raise MemoryError("bbpm_flyhash_topk could not allocate its per-thread buffers")
    return out


__all__ = [
    "MIN_ENTRIES_PER_THREAD",
    "available",
    "cache_dir",
    "flyhash_topk",
    "rule_weights",
    "slot_weights",
    "supports_rule_weights",
    "supports_weights",
    "supports_write",
    "thread_count",
    "unavailable_reason",
    "write",
]
