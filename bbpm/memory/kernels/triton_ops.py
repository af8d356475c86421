"""Triton kernels for CUDA: the fused read and the scatter-add write.

Importing this module never fails: without triton, :data:`HAS_TRITON` is False and the
entry points raise ``RuntimeError``. :mod:`bbpm.memory.kernels` calls them only for CUDA
tensors of supported dtypes (see :func:`supports_read` / :func:`supports_write`).

* ``_read_kernel``: one program per (item b, block of ``BLOCK_D`` columns). It loads the
  item's slot ids ``BLOCK_M`` at a time, gathers their counts and ``[BLOCK_M, BLOCK_D]``
  rows (any float storage, upcast to float32), adds ``rows / (counts + eps)`` into a float32
  ``[BLOCK_M, BLOCK_D]`` accumulator, sums it over slots once at the end (one cross-warp
  reduction, not one per step) and stores ``sum / M``: the canonical read, with no
  ``[B, M, d]`` tensor.
* ``_weighted_read_kernel``: the same tiling with a given ``[B, M]`` weight per slot in
  place of ``1 / ((counts + eps) M)``: the reads of :mod:`bbpm.memory.read_rules`.
* ``_write_kernel``: one program per (item b, block of columns); it loads the value row once
  and ``atomic_add``-s it into the item's M slots (duplicates add up, as ``index_add_``
  does); the column-block-0 program also adds 1 to each slot's count. Relaxed atomics:
  the sums need atomicity, not ordering.

Both kernels mask slot ids outside ``[0, D)`` (no access outside the table whatever the
input); the entry points first raise ``IndexError`` for such ids unless
``check_bounds=False``. ``block_m`` / ``num_warps`` tune the launch (``python -m
bbpm.gpu_bench`` sweeps them).

Float atomics make the order of additions (hence the last bits of a slot shared by
several items) vary from run to run; counts are integers and stay exact below 2**24.

Without a GPU the same kernels run on CPU tensors in Triton's interpreter
(``TRITON_INTERPRET=1`` before triton is imported; :func:`interpreted`), which is how the
test suite checks them on machines with no CUDA.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import torch

from bbpm.memory.kernels import torch_ops

try:  # triton is optional: CPU installs and macOS have none
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the install
    triton = None
    tl = None
    HAS_TRITON = False

#: Storage dtypes each kernel handles (others fall back to the torch fast paths).
READ_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
WRITE_DTYPES = (torch.float32,)

if HAS_TRITON:

    @triton.jit
    def _read_kernel(
        memory_ptr,
        counts_ptr,
        idx_ptr,
        out_ptr,
        D,
        M,
        d,
        stride_memory,
        stride_counts,
        stride_idx,
        stride_out,
        eps,
        BLOCK_M: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        item = tl.program_id(0).to(tl.int64)
        cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        col_mask = cols < d
        acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)  # reduced over slots once, at the end
        for first in range(0, M, BLOCK_M):
            offs = first + tl.arange(0, BLOCK_M)
            slot_mask = offs < M
            slots = tl.load(idx_ptr + item * stride_idx + offs, mask=slot_mask, other=0).to(
                tl.int64
            )
            slot_mask = slot_mask & (slots >= 0) & (slots < D)  # never touch memory outside
            slot_counts = tl.load(counts_ptr + slots * stride_counts, mask=slot_mask, other=1.0).to(
                tl.float32
            )
            rows = tl.load(
                memory_ptr + slots[:, None] * stride_memory + cols[None, :],
                mask=slot_mask[:, None] & col_mask[None, :],
                other=0.0,
            ).to(tl.float32)
            acc += rows / (slot_counts[:, None] + eps)
        tl.store(out_ptr + item * stride_out + cols, tl.sum(acc, axis=0) / M, mask=col_mask)

    @triton.jit
    def _weighted_read_kernel(
        memory_ptr,
        weights_ptr,
        idx_ptr,
        out_ptr,
        D,
        M,
        d,
        stride_memory,
        stride_weights,
        stride_idx,
        stride_out,
        BLOCK_M: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        item = tl.program_id(0).to(tl.int64)
        cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        col_mask = cols < d
        acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
        for first in range(0, M, BLOCK_M):
            offs = first + tl.arange(0, BLOCK_M)
            slot_mask = offs < M
            slots = tl.load(idx_ptr + item * stride_idx + offs, mask=slot_mask, other=0).to(
                tl.int64
            )
            slot_mask = slot_mask & (slots >= 0) & (slots < D)
            weight = tl.load(
                weights_ptr + item * stride_weights + offs, mask=slot_mask, other=0.0
            ).to(tl.float32)
            rows = tl.load(
                memory_ptr + slots[:, None] * stride_memory + cols[None, :],
                mask=slot_mask[:, None] & col_mask[None, :],
                other=0.0,
            ).to(tl.float32)
            acc += rows * weight[:, None]
        tl.store(out_ptr + item * stride_out + cols, tl.sum(acc, axis=0), mask=col_mask)

    @triton.jit
    def _write_kernel(
        memory_ptr,
        counts_ptr,
        idx_ptr,
        values_ptr,
        D,
        M,
        d,
        stride_memory,
        stride_counts,
        stride_idx,
        stride_values,
        count_step,
        BLOCK_M: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        item = tl.program_id(0).to(tl.int64)
        col_block = tl.program_id(1)
        cols = col_block * BLOCK_D + tl.arange(0, BLOCK_D)
        col_mask = cols < d
        value = tl.load(values_ptr + item * stride_values + cols, mask=col_mask, other=0.0)
        tile = tl.zeros([BLOCK_M, BLOCK_D], dtype=value.dtype) + value[None, :]
        for first in range(0, M, BLOCK_M):
            offs = first + tl.arange(0, BLOCK_M)
            slot_mask = offs < M
            slots = tl.load(idx_ptr + item * stride_idx + offs, mask=slot_mask, other=0).to(
                tl.int64
            )
            slot_mask = slot_mask & (slots >= 0) & (slots < D)  # never touch memory outside
            tl.atomic_add(
                memory_ptr + slots[:, None] * stride_memory + cols[None, :],
                tile,
                mask=slot_mask[:, None] & col_mask[None, :],
                sem="relaxed",
            )
            if col_block == 0:
                tl.atomic_add(
                    counts_ptr + slots * stride_counts,
                    tl.zeros([BLOCK_M], dtype=tl.float32) + count_step,
                    mask=slot_mask,
                    sem="relaxed",
                )


#: Largest slot tile (``block_m``) and column tile the kernels take per step.
MAX_BLOCK_M = 64
MAX_BLOCK_D = 128


def _blocks(M: int, d: int, block_m: int | None) -> tuple[int, int]:
    """Tile sizes (powers of two, as ``tl.arange`` needs): ``block_m`` slots (default up to
    16) x up to 128 columns per step."""
    if block_m is None:
        block_m = min(16, triton.next_power_of_2(max(M, 1)))
    elif not (
        isinstance(block_m, int) and 1 <= block_m <= MAX_BLOCK_M and block_m & (block_m - 1) == 0
    ):
        raise ValueError(
            f"block_m must be a power of two between 1 and {MAX_BLOCK_M}, got {block_m!r}"
        )
    block_d = min(MAX_BLOCK_D, triton.next_power_of_2(max(d, 1)))
    return block_m, block_d


def _launch_options(num_warps: int | None) -> dict[str, object]:
    # fp fusion (a*b + c -> fma) stated, not left to triton's default, which changes in 3.10
    options: dict[str, object] = {"enable_fp_fusion": True}
    if num_warps is None:
        return options
    if not (isinstance(num_warps, int) and num_warps in (1, 2, 4, 8, 16)):
        raise ValueError(f"num_warps must be one of 1, 2, 4, 8, 16, got {num_warps!r}")
    return {**options, "num_warps": num_warps}


def _require_triton() -> None:
    if not HAS_TRITON:
        raise RuntimeError(
            "triton is not installed; use bbpm.memory.kernels.read/write, which fall back to torch"
        )


def interpreted() -> bool:
    """True when this module's kernels were built by Triton's CPU interpreter
    (``TRITON_INTERPRET=1`` at import): they then run on CPU tensors, slowly, for tests."""
    return HAS_TRITON and type(_read_kernel).__name__ == "InterpretedFunction"


def _check_buffers(
    op: str,
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    values: torch.Tensor | None = None,
    launch: bool = True,
) -> None:
    """ValueError naming the argument when the kernels cannot take these buffers
    (``launch=False``: for :func:`compile_report`, any device)."""
    dtypes = READ_DTYPES if op == "read" else WRITE_DTYPES
    if memory.dim() != 2 or memory.stride(1) != 1:
        raise ValueError(
            f"memory must be a [D, d] tensor with contiguous rows, got shape "
            f"{tuple(memory.shape)} and strides {memory.stride()}; pass memory.contiguous()"
        )
    if memory.dtype not in dtypes:
        raise ValueError(
            f"the triton {op} takes memory of dtype {', '.join(map(str, dtypes))}, got "
            f"{memory.dtype}; use bbpm.memory.kernels.{op}(..., backend='torch')"
        )
    if counts.dtype != torch.float32:
        raise ValueError(f"counts must be float32 for the triton kernels, got {counts.dtype}")
    if idx.dtype != torch.int64:
        raise ValueError(f"idx must be int64 slot ids, got {idx.dtype}")
    if values is not None and values.dtype != memory.dtype:
        raise ValueError(f"values must have memory's dtype {memory.dtype}, got {values.dtype}")
    tensors = [memory, counts, idx] + ([] if values is None else [values])
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(
            f"memory, counts, idx{', values' if values is not None else ''} must be on one device, got {sorted(map(str, devices))}"
        )
    if launch and not memory.is_cuda and not interpreted():
        raise ValueError(
            f"the triton kernels need CUDA tensors, got {memory.device}; use "
            "bbpm.memory.kernels.read/write with backend='auto' (or run under TRITON_INTERPRET=1 for tests)"
        )


def supports_read(memory: torch.Tensor, counts: torch.Tensor) -> bool:
    """True when :func:`read_fused` handles these buffers: CUDA, rows contiguous,
    fp32/fp16/bf16 storage with float32 counts."""
    return (
        HAS_TRITON
        and memory.is_cuda
        and memory.dtype in READ_DTYPES
        and counts.dtype == torch.float32
        and memory.dim() == 2
        and memory.stride(1) == 1
    )


def supports_write(memory: torch.Tensor, counts: torch.Tensor, values: torch.Tensor) -> bool:
    """True when :func:`write_fused` handles these buffers: CUDA, rows contiguous, float32
    storage, counts and values (float atomics in other dtypes are not on every GPU)."""
    return (
        HAS_TRITON
        and memory.is_cuda
        and memory.dtype in WRITE_DTYPES
        and counts.dtype == torch.float32
        and values.dtype == memory.dtype
        and memory.dim() == 2
        and memory.stride(1) == 1
    )


def _tiling(memory, idx, block_m, check_bounds):
    """The common part of every launch: ``idx`` made contiguous (with ``check_bounds``, its
    slot ids checked against ``[0, D)``), the grid (one program per item and block of
    columns) and the ``BLOCK_M``/``BLOCK_D`` constexprs."""
    idx = idx.contiguous()
    if check_bounds:
        torch_ops.check_slot_range(idx, memory.shape[0])
    B, M = idx.shape
    d = memory.shape[1]
    block_m, block_d = _blocks(M, d, block_m)
    grid = (B, triton.cdiv(d, block_d))
    return idx, grid, {"BLOCK_M": block_m, "BLOCK_D": block_d}


def _read_plan(memory, counts, idx, eps, block_m, num_warps, launch=True, check_bounds=False):
    """Validated launch of the read: (kernel, grid, args, constexprs, options, out)."""
    _require_triton()
    _check_buffers("read", memory, counts, idx, launch=launch)
    idx, grid, constexprs = _tiling(memory, idx, block_m, check_bounds)
    (B, M), d = idx.shape, memory.shape[1]
    out = torch.empty(B, d, dtype=torch.float32, device=memory.device)
    args = (memory, counts, idx, out, memory.shape[0], M, d)
    args += (memory.stride(0), counts.stride(0), idx.stride(0), out.stride(0), float(eps))
    return _read_kernel, grid, args, constexprs, _launch_options(num_warps), out


def _write_plan(
    memory,
    counts,
    idx,
    values,
    block_m,
    num_warps,
    launch=True,
    check_bounds=False,
    count_step=1.0,
):
    """Validated launch of the write: (kernel, grid, args, constexprs, options)."""
    _require_triton()
    _check_buffers("write", memory, counts, idx, values, launch=launch)
    idx, grid, constexprs = _tiling(memory, idx, block_m, check_bounds)
    values = values.contiguous()
    (B, M), d = idx.shape, memory.shape[1]
    if values.shape != (B, d):
        raise ValueError(f"values must be [B, d] = [{B}, {d}], got shape {tuple(values.shape)}")
    args = (memory, counts, idx, values, memory.shape[0], M, d)
    args += (memory.stride(0), counts.stride(0), idx.stride(0), values.stride(0))
    args += (float(count_step),)
    return _write_kernel, grid, args, constexprs, _launch_options(num_warps)


def read_fused(
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    eps: float,
    block_m: int | None = None,
    num_warps: int | None = None,
    check_bounds: bool = True,
) -> torch.Tensor:
    """Fused read on CUDA, ``[B, d]`` float32. ``memory [D, d]``, ``counts [D, 1]``,
    ``idx [B, M]`` int64. Not differentiable (the dispatcher uses ``embedding_bag`` when
    gradients are needed). ``block_m`` (slots per step, a power of two up to 64) and
    ``num_warps`` tune the launch; the defaults are 16 (or M's next power of two, if
    smaller) and Triton's default. ``check_bounds``: raise ``IndexError`` for a slot id
    outside ``[0, D)`` (costs a reduction and a sync; off, such ids are skipped)."""
    kernel, grid, args, constexprs, options, out = _read_plan(
        memory, counts, idx, eps, block_m, num_warps, check_bounds=check_bounds
    )
    if grid[0]:
        kernel[grid](*args, **constexprs, **options)
    return out


def read_weighted(
    memory: torch.Tensor,
    idx: torch.Tensor,
    weights: torch.Tensor,
    block_m: int | None = None,
    num_warps: int | None = None,
    check_bounds: bool = True,
) -> torch.Tensor:
    """Weighted read on CUDA, ``[B, d]`` float32: ``sum_j weights[b, j] memory[idx[b, j]]``
    (the read rules of :mod:`bbpm.memory.read_rules` pass their slot weights). ``weights``:
    ``[B, M]`` float32 on the memory's device. Launch options and ``check_bounds`` as in
    :func:`read_fused`."""
    _require_triton()
    placeholder_counts = torch.empty(0, 1, dtype=torch.float32, device=memory.device)
    _check_buffers("read", memory, placeholder_counts, idx)
    if weights.shape != idx.shape or weights.dtype != torch.float32:
        raise ValueError(
            f"weights must be float32 of idx's shape {tuple(idx.shape)}, got "
            f"{weights.dtype} of shape {tuple(weights.shape)}"
        )
    if weights.device != memory.device:
        raise ValueError(f"weights must be on {memory.device}, got {weights.device}")
    idx, grid, constexprs = _tiling(memory, idx, block_m, check_bounds)
    weights = weights.contiguous()
    (B, M), d = idx.shape, memory.shape[1]
    out = torch.empty(B, d, dtype=torch.float32, device=memory.device)
    if B:
        _weighted_read_kernel[grid](
            memory, weights, idx, out, memory.shape[0], M, d,
            memory.stride(0), weights.stride(0), idx.stride(0), out.stride(0),
            **constexprs, **_launch_options(num_warps),
        )  # fmt: skip
    return out


def write_fused(
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    values: torch.Tensor,
    block_m: int | None = None,
    num_warps: int | None = None,
    check_bounds: bool = True,
    count_step: float = 1.0,
) -> None:
    """Scatter-add write on CUDA: ``memory[idx[b, j]] += values[b]`` and
    ``counts[idx[b, j]] += count_step`` (1 by default; a decayed memory's write weight) for
    all b, j, with relaxed float atomics (in place; only atomicity is needed, not ordering).
    ``block_m``, ``num_warps`` and ``check_bounds`` as in :func:`read_fused`; with the check
    on, a bad slot id leaves the table untouched."""
    kernel, grid, args, constexprs, options = _write_plan(
        memory,
        counts,
        idx,
        values,
        block_m,
        num_warps,
        check_bounds=check_bounds,
        count_step=count_step,
    )
    if grid[0]:
        kernel[grid](*args, **constexprs, **options)


_RES_USAGE = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")
_SASS_OPS = re.compile(r"\b(LDG|STG|REDG|RED|ATOMG|ATOM|BAR)(?:\.[A-Za-z0-9_]+)*")


def compile_report(
    op: str,
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    values: torch.Tensor | None = None,
    eps: float = 1e-8,
    block_m: int | None = None,
    num_warps: int | None = None,
    capability: int = 90,
) -> dict:
    """Compile the ``op`` ("read" or "write") kernel for a CUDA GPU of compute capability
    ``capability`` (90: Hopper, H100/H200) on this machine, no GPU needed, with the argument
    specialisation a launch on these tensors would get (CPU tensors stand in for device
    buffers: 16-byte aligned, like CUDA allocations). Returns the machine code's resource
    use from ``cuobjdump -res-usage`` (registers, stack, shared and local bytes; local bytes
    are register spills) and counts of its memory instructions (``LDG.E.128``, ``REDG...``).

    Uses Triton's ahead-of-time compile path and its bundled CUDA tools; a compile error
    here is one the GPU would hit too."""
    import subprocess

    import triton.backends.nvidia as nvidia_backend
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import CUDABackend
    from triton.compiler import ASTSource, make_backend

    if op not in ("read", "write"):
        raise ValueError(f"op must be 'read' or 'write', got {op!r}")
    if interpreted():
        raise RuntimeError("compile_report needs the compiled kernels (TRITON_INTERPRET is set)")
    if op == "read":
        kernel, _, args, constexprs, options, _ = _read_plan(
            memory, counts, idx, eps, block_m, num_warps, launch=False
        )
    else:
        if values is None:
            raise ValueError("values is required for op='write'")
        kernel, _, args, constexprs, options = _write_plan(
            memory, counts, idx, values, block_m, num_warps, launch=False
        )
    signature: dict[str, str] = {}
    constants: dict[str, object] = dict(constexprs)
    attrs: dict[tuple[int], list] = {}
    for i, name in enumerate(kernel.arg_names):
        if name in constexprs:
            signature[name] = "constexpr"
            continue
        kind, key = native_specialize_impl(CUDABackend, args[i], False, True, True)[:2]
        if kind == "constexpr":  # ints equal to 1 become constants, as at launch
            signature[name], constants[name] = "constexpr", key
        else:
            signature[name] = kind
            if key == "D":  # 16-divisible ints and 16-aligned pointers
                attrs[(i,)] = [["tt.divisibility", 16]]
    target = GPUTarget("cuda", capability, 32)
    parsed = make_backend(target).parse_options(dict(options))
    compiled = triton.compile(
        ASTSource(fn=kernel, signature=signature, constexprs=constants, attrs=attrs),
        target=target,
        options=parsed.__dict__,
    )
    cubin = compiled.asm["cubin"]
    report = {
        "op": op,
        "capability": capability,
        "dtype": str(memory.dtype).removeprefix("torch."),
        "num_warps": parsed.num_warps,
        **constexprs,
        "cubin_bytes": len(cubin),
        "registers": None,
        "stack_bytes": None,
        "shared_bytes": None,
        "local_bytes": None,
        "sass": {},
    }
    cuobjdump = Path(nvidia_backend.__file__).parent / "bin" / "cuobjdump"
    if cuobjdump.exists():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "kernel.cubin"
            path.write_bytes(cubin)
            usage = subprocess.run(
                [str(cuobjdump), "-res-usage", str(path)], capture_output=True, text=True
            ).stdout
            sass = subprocess.run(
                [str(cuobjdump), "--dump-sass", str(path)], capture_output=True, text=True
            ).stdout
        found = _RES_USAGE.search(usage)
        if found:
            report.update(
                zip(
                    ("registers", "stack_bytes", "shared_bytes", "local_bytes"),
                    map(int, found.groups()),
                )
            )
        for match in _SASS_OPS.finditer(sass):
            report["sass"][match.group(0)] = report["sass"].get(match.group(0), 0) + 1
    return report


__all__ = [
    "HAS_TRITON",
    "READ_DTYPES",
    "WRITE_DTYPES",
    "compile_report",
    "interpreted",
    "read_fused",
    "read_weighted",
    "supports_read",
    "supports_write",
    "write_fused",
]
