"""Hebbian outer-product fast weights addressed by winner-take-all fly-hash codes
(Dasgupta et al. 2017; the NuoNuo / BDH "sparse code + Hebbian W" memory).

A key's dense pattern ``x(k)`` (``key_dim`` normal entries from the key id) is projected
to ``m`` units by a fixed random sparse binary matrix (each unit sums ``fan_in`` randomly
chosen inputs, the fly's projection-neuron -> Kenyon-cell wiring); the ``k`` largest
units win and form the binary sparse code ``c(k)`` (k ones out of m)::

    write:  W += c(k)^T v          (W: [m, d], a Hebbian outer-product update)
    read:   r = c(k) W / k

With no other item ``r = v`` exactly. Another item j adds ``v_j * |c(k) & c(k_j)| / k``;
random codes overlap in about k^2/m units, so N items give crosstalk energy about N/m.

Budget: W is m*d floats, so ``m = nbytes // (d * itemsize)``. The projection (m x
``fan_in`` input ids, a function of the seed) is not counted in ``nbytes``, like a hash
seed; see :attr:`FlyHashHebbianMemory.projection_nbytes` for what it takes in RAM here.
Its cost: every key is projected to all m units and ranked, O(m * fan_in) work per key, so
key encoding slows down as the budget grows. On CPU with float32 patterns the encoding is
the fused C kernel :func:`bbpm.memory.kernels.native.flyhash_topk` (sums and a running
top-k, no ``[B, m]`` activation matrix); elsewhere the same sums in torch, chunked, then
``topk``. Both add a unit's inputs left to right in float32, so they compute bitwise the
same activations and pick the same winners up to exact ties (units with equal activation,
e.g. two units wired to the same inputs).
"""

from __future__ import annotations

import torch
from torch import nn

from bbpm.baselines.base import (
    ReportsNonfinite,
    check_budget,
    check_float_dtype,
    check_positive_int,
    check_read,
    check_seed,
    check_write,
    float_itemsize,
)
from bbpm.baselines.keycodes import key_gaussian, stream_salt
from bbpm.memory.base import MutationLock, locked
from bbpm.memory.kernels import native
from bbpm.utils.device import check_device

_STREAM_INPUT = 4
_BACKENDS = ("auto", "torch", "native")
#: The torch path encodes at most this many (key, unit) activations at once (64 MiB float32).
_MAX_ACTIVATIONS = 1 << 24


class FlyHashHebbianMemory(MutationLock, ReportsNonfinite, nn.Module):
    """``W [m, d]`` written through k-winner-take-all fly-hash codes.

    Args:
        d: value dimension.
        m: code dimension (rows of W).
        k: winners per code (active units). Default 8: larger k spreads each item over more
            rows, so items that share a value add up coherently in a read (noise grows
            with k^2 * N / m when values repeat); NuoNuo used k=50 of m=16384.
        key_dim: dimension of the dense key pattern.
        fan_in: inputs summed by each unit of the sparse projection.
        seed: seeds the projection and the key patterns.
        key_chunk: keys encoded at once by the torch path (fewer where ``chunk * m`` would
            exceed 2**24 activations).
        backend: ``"auto"`` (the C kernel where it is available and the patterns are float32
            on CPU, else torch), ``"torch"`` or ``"native"``.
    """

    _sum_buffers = ("weights",)
    load_state_dict = locked(nn.Module.load_state_dict)

    def __init__(
        self,
        d: int,
        m: int,
        k: int = 8,
        key_dim: int = 64,
        fan_in: int = 6,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        key_chunk: int = 2048,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self._init_lock()
        device = check_device(device)
        self.d = check_positive_int("d", d)
        self.m = check_positive_int("m", m)
        self.k = check_positive_int("k", k)
        self.key_dim = check_positive_int("key_dim", key_dim)
        self.fan_in = check_positive_int("fan_in", fan_in)
        self.key_chunk = check_positive_int("key_chunk", key_chunk)
        if self.k > self.m:
            raise ValueError(
                f"k (winners) must be <= m (code dimension), got k={k}, m={m}; lower k or raise the budget"
            )
        if self.fan_in >= self.key_dim:
            raise ValueError(
                f"fan_in must be < key_dim (with fan_in == key_dim every unit sums the same inputs and "
                f"the code is degenerate), got fan_in={fan_in}, key_dim={key_dim}"
            )
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        if backend == "native" and not native.available():
            raise RuntimeError(
                f"backend='native' is unavailable ({native.unavailable_reason()}); use 'auto'"
            )
        self.backend = backend
        self.seed = check_seed(seed)
        dtype = check_float_dtype(dtype)
        if backend == "native" and (
            dtype != torch.float32 or torch.device(device or "cpu").type != "cpu"
        ):
            raise ValueError(
                f"backend='native' encodes float32 patterns on the CPU; got dtype={dtype}, "
                f"device={device}: use backend='auto' or 'torch'"
            )
        self._salt = stream_salt(seed, _STREAM_INPUT)
        generator = torch.Generator().manual_seed(stream_salt(seed, 5) & 0x7FFFFFFFFFFFFFFF)
        # [m, fan_in] distinct input ids per unit: the fly's sparse projection-neuron ->
        # Kenyon-cell wiring (a function of the seed, not saved in the state dict)
        inputs = torch.rand(m, key_dim, generator=generator).topk(fan_in, dim=1).indices
        self.register_buffer("inputs", inputs.to(torch.int32).to(device), persistent=False)
        self.register_buffer("weights", torch.zeros(m, d, dtype=dtype, device=device))

    @classmethod
    def from_budget(
        cls, nbytes: int, d: int, dtype: torch.dtype = torch.float32, **kwargs
    ) -> FlyHashHebbianMemory:
        """``m = nbytes // (d * itemsize)`` code units."""
        d = check_positive_int("d", d)
        per_row = d * float_itemsize(dtype)
        k = kwargs.get("k", 8)
        nbytes = check_budget(
            nbytes, per_row * k, f"m >= k={k} rows of d*itemsize = {per_row} bytes"
        )
        return cls(d, m=nbytes // per_row, dtype=dtype, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.weights.device

    def encoder_backend(self) -> str:
        """``"native"`` or ``"torch"``: what :meth:`codes` uses."""
        if self.backend != "auto":
            return self.backend
        usable = self.device.type == "cpu" and self.weights.dtype == torch.float32
        return "native" if usable and native.available() else "torch"

    def activations(self, patterns: torch.Tensor) -> torch.Tensor:
        """``patterns [B, key_dim]`` -> ``[B, m]`` unit activations, each the sum of the
        unit's ``fan_in`` inputs added left to right (the C kernel's order)."""
        columns = self.inputs.long().t()  # [fan_in, m]
        total = patterns[:, columns[0]]
        for column in columns[1:]:
            total = total + patterns[:, column]
        return total

    def codes(self, keys: torch.Tensor) -> torch.Tensor:
        """``keys: [B]`` -> ``[B, k]`` int64 indices of the winning units (the sparse code)."""
        keys = check_read(keys, self.device)
        if self.encoder_backend() == "native":
            patterns = key_gaussian(keys, self._salt, self.key_dim, torch.float32)
            return native.flyhash_topk(patterns, self.inputs, self.k)
        out = torch.empty(keys.shape[0], self.k, dtype=torch.int64, device=self.device)
        chunk = max(1, min(self.key_chunk, _MAX_ACTIVATIONS // self.m))
        for start in range(0, keys.shape[0], chunk):
            x = key_gaussian(
                keys[start : start + chunk], self._salt, self.key_dim, self.weights.dtype
            )
            out[start : start + chunk] = (
                self.activations(x).topk(self.k, dim=1, sorted=False).indices
            )
        return out

    @locked
    @torch.no_grad()
    def clear(self) -> None:
        self.weights.zero_()

    @locked
    @torch.no_grad()
    def write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Hebbian update ``W[code] += v`` for every winner of every key."""
        keys, values = check_write(keys, values, self.d, self.device, self.weights.dtype)
        code = self.codes(keys)
        self.weights.index_add_(0, code.reshape(-1), values.repeat_interleave(self.k, dim=0))

    @torch.no_grad()
    def read(self, keys: torch.Tensor) -> torch.Tensor:
        """``code(k) W / k``: ``[B, d]``."""
        code = self.codes(keys)
        return self.weights[code].sum(dim=1) / self.k

    def forward(self, keys: torch.Tensor) -> torch.Tensor:
        return self.read(keys)

    @property
    def nbytes(self) -> int:
        """Bytes of W (the projection is regenerated from the seed and not counted)."""
        return self.weights.numel() * self.weights.element_size()

    @property
    def projection_nbytes(self) -> int:
        """Bytes of the projection this implementation keeps in RAM: ``m*fan_in`` int32
        input ids (not counted in ``nbytes``; nothing if regenerated from the seed)."""
        return self.inputs.numel() * self.inputs.element_size()

    def extra_repr(self) -> str:
        return f"d={self.d}, m={self.m}, k={self.k}, key_dim={self.key_dim}, fan_in={self.fan_in}, nbytes={self.nbytes}"
