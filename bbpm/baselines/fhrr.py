"""FHRR superposition trace (Plate's Fourier HRR, as in the cube-memory VSA layer).

A key ``k`` gets a random phasor ``p = exp(i*theta)``, ``theta: [d]`` uniform on
``[0, 2*pi)``, generated from the key id (nothing per key is stored). Binding is the
elementwise product, unbinding multiplication by the conjugate::

    write:  T[b(k)] += p(k) * v                    (v: [d] real, T: [G, d] complex)
    read:   r = Re( conj(p(k)) * T[b(k)] ) = v + sum_j Re(p(k_j) / p(k)) * v_j

For another item j in the same trace each component of ``Re(p_j / p)`` is ``cos`` of a
uniform angle (mean 0, variance 1/2), so with ``n`` other items in the trace the crosstalk
has energy ``n/2`` against the unit signal: ``cos(r, v) ~ 1/sqrt(1 + n/2)``.

Using the budget: one trace of dimension d holds d complex numbers (8d bytes). To spend a
larger budget the memory keeps ``G = nbytes // (8d)`` independent traces ("banks") and a
key's bank ``b(k)`` is a hash of its id; each bank then holds about N/G items. This has
the same crosstalk energy per byte as one long trace of dimension G*d with a random
embedding of the value, without the d x (G*d) embedding matrix. ``read`` returns the raw
unbound vector; cleanup against a codebook is a separate step
(:func:`bbpm.baselines.decode.decode_top1`).
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
from bbpm.baselines.keycodes import key_bucket, key_phases, stream_salt
from bbpm.memory.base import MutationLock, locked
from bbpm.utils.device import check_device

_STREAM_BANK = 1
_STREAM_PHASE = 2


class FHRRMemory(MutationLock, ReportsNonfinite, nn.Module):
    """``G`` FHRR traces of dimension ``d``, stored as real and imaginary parts.

    Args:
        d: value (and trace) dimension.
        n_banks: number of traces G (1 = a single classic trace).
        seed: seeds the key -> (bank, phasor) maps.
        dtype, device: of the traces.

    Buffers: ``real [G, d]``, ``imag [G, d]``; ``nbytes = 2 * G * d * itemsize``.
    """

    _sum_buffers = ("real", "imag")
    load_state_dict = locked(nn.Module.load_state_dict)

    def __init__(
        self,
        d: int,
        n_banks: int = 1,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self._init_lock()
        device = check_device(device)
        self.d = check_positive_int("d", d)
        self.n_banks = check_positive_int("n_banks", n_banks)
        self.seed = check_seed(seed)
        dtype = check_float_dtype(dtype)
        self._bank_salt = stream_salt(seed, _STREAM_BANK)
        self._phase_salt = stream_salt(seed, _STREAM_PHASE)
        self.register_buffer("real", torch.zeros(n_banks, d, dtype=dtype, device=device))
        self.register_buffer("imag", torch.zeros(n_banks, d, dtype=dtype, device=device))

    @classmethod
    def from_budget(
        cls,
        nbytes: int,
        d: int,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> FHRRMemory:
        """As many banks as fit: ``G = nbytes // (2 * d * itemsize)``."""
        d = check_positive_int("d", d)
        per_bank = 2 * d * float_itemsize(dtype)
        nbytes = check_budget(nbytes, per_bank, f"one complex trace of d={d}, {per_bank} bytes")
        return cls(d, n_banks=nbytes // per_bank, seed=seed, dtype=dtype, device=device)

    @property
    def device(self) -> torch.device:
        return self.real.device

    def banks(self, keys: torch.Tensor) -> torch.Tensor:
        """``[B]`` int64 trace index of each key."""
        return key_bucket(check_read(keys, self.device), self._bank_salt, self.n_banks)

    def phasors(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos theta, sin theta)``, each ``[B, d]``: the key's phasor."""
        theta = key_phases(check_read(keys, self.device), self._phase_salt, self.d, self.real.dtype)
        return torch.cos(theta), torch.sin(theta)

    @locked
    @torch.no_grad()
    def clear(self) -> None:
        self.real.zero_()
        self.imag.zero_()

    @locked
    @torch.no_grad()
    def write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Bind ``values: [B, d]`` to their keys' phasors and add them to their banks."""
        keys, values = check_write(keys, values, self.d, self.device, self.real.dtype)
        bank = self.banks(keys)
        cos, sin = self.phasors(keys)
        self.real.index_add_(0, bank, cos * values)
        self.imag.index_add_(0, bank, sin * values)

    @torch.no_grad()
    def read(self, keys: torch.Tensor) -> torch.Tensor:
        """Unbind: ``Re(conj(p) * T[bank])``, the raw (noisy) value ``[B, d]``."""
        keys = check_read(keys, self.device)
        bank = self.banks(keys)
        cos, sin = self.phasors(keys)
        return cos * self.real[bank] + sin * self.imag[bank]

    def forward(self, keys: torch.Tensor) -> torch.Tensor:
        return self.read(keys)

    @property
    def nbytes(self) -> int:
        return 2 * self.real.numel() * self.real.element_size()

    def extra_repr(self) -> str:
        return f"d={self.d}, n_banks={self.n_banks}, seed={self.seed}, nbytes={self.nbytes}"
