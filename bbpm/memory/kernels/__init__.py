"""Read/write kernels behind one call. ``read`` and ``write`` pick the fastest available
path for the tensors' device; every path equals :mod:`torch_ops`' canonical definition
up to the order of float additions.

Backends (``backend=`` argument, default ``"auto"``):

* ``"canonical"``: :func:`torch_ops.write_index_add` / :func:`torch_ops.read_gather_mean`,
  the definitions (they build ``[B*M, d]`` / ``[B, M, d]`` temporaries).
* ``"torch"``: the library-op fast paths, any device: column-wise ``index_add_`` write;
  ``embedding_bag`` read (float32 blocks for fp16/bf16 storage). Differentiable. On CPU the
  read's per-slot weights come from the C kernel where it is available (the same bits).
* ``"native"``: write only: the C scatter kernel of :mod:`native` (CPU, float32/float64,
  compiled on first use with the system C compiler; bitwise the same for every thread count).
* ``"triton"``: the Triton kernels of :mod:`triton_ops` (CUDA, needs triton).
* ``"auto"``: ``"triton"`` for CUDA tensors the kernels support when triton is importable
  (and, for ``read``, no gradient w.r.t. ``memory`` is needed); for a CPU write,
  ``"native"`` where it builds and supports the buffers; else ``"torch"``.
"""

from __future__ import annotations

import torch

from bbpm.memory import read_rules
from bbpm.memory.base import EPS
from bbpm.memory.kernels import native, torch_ops, triton_ops

#: True when triton imported (the CUDA kernels can run).
HAS_TRITON: bool = triton_ops.HAS_TRITON
BACKENDS = ("auto", "canonical", "torch", "native", "triton")
#: Backends that implement ``read`` (``"native"`` is write-only).
READ_BACKENDS = ("auto", "canonical", "torch", "triton")


def _check(
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    values: torch.Tensor | None = None,
) -> None:
    """Validate the buffers (and ``values`` for a write) before any backend touches them, so
    bad input raises here and leaves ``memory`` and ``counts`` unchanged (slot ranges are
    checked per backend: the C and Triton paths check their own)."""
    if memory.dim() != 2:
        raise ValueError(f"memory must be [D, d], got shape {tuple(memory.shape)}")
    if counts.shape != (memory.shape[0], 1):
        raise ValueError(
            f"counts must be [D, 1] = [{memory.shape[0]}, 1], got shape {tuple(counts.shape)}"
        )
    if idx.dim() != 2 or idx.dtype != torch.int64:
        raise ValueError(
            f"idx must be a [B, M] int64 tensor of slot ids, got {idx.dtype} of shape {tuple(idx.shape)}"
        )
    if idx.shape[1] == 0:
        raise ValueError("idx must have at least one slot per item (M = K*H >= 1)")
    for name, tensor in (("counts", counts), ("idx", idx), ("values", values)):
        if tensor is not None and tensor.device != memory.device:
            raise ValueError(
                f"{name} is on {tensor.device} but memory is on {memory.device}; move it with .to(memory.device)"
            )
    if values is not None:
        if values.shape != (idx.shape[0], memory.shape[1]):
            raise ValueError(
                f"values must be [B, d] = [{idx.shape[0]}, {memory.shape[1]}], got shape {tuple(values.shape)}"
            )
        if values.dtype != memory.dtype:
            raise TypeError(
                f"values must have the memory's dtype {memory.dtype}, got {values.dtype}; "
                "convert with values.to(memory.dtype)"
            )


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "triton" and not HAS_TRITON:
        raise RuntimeError(
            "backend='triton' needs triton (pip install triton, CUDA only); use backend='auto'"
        )
    if backend == "native" and not native.available():
        raise RuntimeError(
            f"backend='native' is unavailable ({native.unavailable_reason()}); use backend='auto'"
        )


def read_backend(memory: torch.Tensor, counts: torch.Tensor) -> str:
    """The backend ``read(..., backend="auto")`` uses for these buffers."""
    needs_grad = torch.is_grad_enabled() and memory.requires_grad
    return "triton" if triton_ops.supports_read(memory, counts) and not needs_grad else "torch"


def write_backend(memory: torch.Tensor, counts: torch.Tensor, values: torch.Tensor) -> str:
    """The backend ``write(..., backend="auto")`` uses for these buffers."""
    if triton_ops.supports_write(memory, counts, values):
        return "triton"
    return "native" if native.supports_write(memory, counts, values) else "torch"


def write(
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    values: torch.Tensor,
    backend: str = "auto",
    check_bounds: bool = True,
    count_step: float = 1.0,
) -> None:
    """Add ``values [B, d]`` (in ``memory.dtype``) into the ``idx [B, M]`` slots of
    ``memory [D, d]`` and add ``count_step`` (1 by default; a decayed memory's write weight)
    to those slots of ``counts [D, 1]``, in place.

    Bad input raises before anything is written: ``ValueError``/``TypeError`` for shapes,
    dtypes and devices, ``IndexError`` for a slot id outside ``[0, D)``. ``check_bounds=False``
    skips that range check (one reduction; a device sync on CUDA): for ids known to be in
    range, such as a :class:`~bbpm.hashing.HashFunction`'s. The C paths (``"native"``
    and the CPU read's weights) check in their own pass whatever ``check_bounds`` says."""
    _check(memory, counts, idx, values)
    _check_backend(backend)
    if backend == "auto":
        backend = write_backend(memory, counts, values)
    if backend == "triton":
        triton_ops.write_fused(
            memory, counts, idx, values, check_bounds=check_bounds, count_step=count_step
        )
    elif backend == "native":
        native.write(memory, counts, idx, values, count_step=count_step)
    else:
        if check_bounds:
            torch_ops.check_slot_range(idx, memory.shape[0])
        if backend == "canonical":
            torch_ops.write_index_add(memory, counts, idx, values, count_step)
        else:
            torch_ops.write_columns(memory, counts, idx, values, count_step=count_step)


def read(
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    eps: float = EPS,
    backend: str = "auto",
    check_bounds: bool = True,
    rule: str = "debiased",
) -> torch.Tensor:
    """Count-debiased mean over the ``idx [B, M]`` slots, ``[B, d]``, in
    ``promote_types(memory.dtype, counts.dtype)`` (float32 for fp16/bf16 storage).
    Input checks and ``check_bounds`` as in :func:`write`. ``rule``: one of
    :data:`bbpm.memory.read_rules.READ_RULES` (see :func:`read_with_rule`)."""
    _check(memory, counts, idx)
    if backend == "native":
        raise ValueError(f"backend='native' is write-only; read backends: {READ_BACKENDS}")
    _check_backend(backend)
    if backend == "auto":
        backend = read_backend(memory, counts)
    if read_rules.check_read_rule(rule) != "debiased":
        return read_with_rule(memory, counts, idx, rule, eps, backend, check_bounds)
    if backend == "triton":
        return triton_ops.read_fused(memory, counts, idx, eps, check_bounds=check_bounds)
    native_weights = backend == "torch" and idx.shape[0] and native.supports_weights(memory, counts)
    if check_bounds and not native_weights:
        torch_ops.check_slot_range(idx, memory.shape[0])
    if backend == "canonical":
        return torch_ops.read_gather_mean(memory, counts, idx, eps)
    weights = native.slot_weights(counts, idx, eps) if native_weights else None  # one pass, checked
    return torch_ops.read_embedding_bag(memory, counts, idx, eps, weights)


def read_with_rule(
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    rule: str,
    eps: float = EPS,
    backend: str = "torch",
    check_bounds: bool = True,
) -> torch.Tensor:
    """Read under a :mod:`~bbpm.memory.read_rules` rule: the rule's ``[B, M]`` slot weights
    (one C pass on CPU where the library builds, else torch ops) feed the weighted gather of
    each backend: ``embedding_bag`` (``"torch"``), the Triton weighted read (``"triton"``) or
    :func:`read_rules.read_reference` (``"canonical"``). Called by :func:`read`."""
    if backend == "canonical":
        if check_bounds:
            torch_ops.check_slot_range(idx, memory.shape[0])
        return read_rules.read_reference(memory, counts, idx, rule, eps)
    out_dtype = torch_ops.read_dtype(memory, counts)
    if idx.shape[0] == 0:
        return memory.new_zeros(0, memory.shape[1], dtype=out_dtype)
    if native.supports_rule_weights(counts, idx):
        weights = native.rule_weights(counts, idx, rule, eps)  # one pass, range checked
    else:
        if check_bounds:
            torch_ops.check_slot_range(idx, memory.shape[0])
        weights = read_rules.slot_weights(counts, idx, rule, eps)
    if backend == "triton":
        return triton_ops.read_weighted(memory, idx, weights.to(torch.float32), check_bounds=False)
    if memory.dtype in (torch.float16, torch.bfloat16):
        return torch_ops.read_chunked(memory, counts, idx, eps, weights=weights.to(out_dtype))
    return torch_ops.read_embedding_bag(memory, counts, idx, eps, weights.to(memory.dtype))


__all__ = [
    "BACKENDS",
    "HAS_TRITON",
    "READ_BACKENDS",
    "native",
    "read",
    "read_backend",
    "read_with_rule",
    "torch_ops",
    "triton_ops",
    "write",
    "write_backend",
]
