"""Kanerva's sparse distributed memory, as implemented by torchhd (optional extra ``bbpm[hd]``).

``torchhd.memory.SparseDistributed`` holds ``M`` random bipolar hard locations (the address
matrix, ``[M, a]``) and a content matrix ``[M, d]``. A write adds the value to the content of
every location within Hamming radius ``r`` of the key's address; a read sums the contents of
the same locations. ``r`` comes from the activation probability ``p`` (``r`` = the ``p``
quantile of Binomial(a, 1/2)), so about ``p * M`` locations are active per key: ``p`` must be
tuned to the size (torchhd's default ``p = 0.000368`` activates ~0.4 locations at M = 1,024,
and a key with no active location reads zero). :func:`tune_active` picks the expected number
of active locations on a tuning draw.

Bytes: the address matrix counts (it is state the memory cannot work without), at the dtype
torchhd stores it in (float32 here), plus the content matrix. A key's address is a function of
its id (splitmix64 words), so nothing per key is stored.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import torch
from torch import nn

from bbpm.baselines.base import (
    check_budget,
    check_float_dtype,
    check_positive_int,
    check_read,
    check_seed,
    check_write,
    float_itemsize,
)
from bbpm.baselines.decode import decode_top1, random_codebook
from bbpm.baselines.keycodes import key_gaussian, stream_salt
from bbpm.hashing.mixing import splitmix64

_STREAM_ADDRESS = 3


def torchhd_missing() -> str | None:
    """``None`` when torchhd can be imported, else the reason (and the fix)."""
    if importlib.util.find_spec("torchhd") is None:
        return "torchhd is not installed (pip install 'bbpm[hd]' -c constraints.txt)"
    return None


class SparseDistributedMemory(nn.Module):
    """``torchhd.memory.SparseDistributed`` behind the peers' write/read/nbytes interface.

    Args:
        n_locations: hard locations ``M``.
        d: value dimension.
        address_dim: bits ``a`` of an address.
        active: expected active locations per key; ``p = active / M``.
        seed: seeds the address matrix and the key -> address map.
    """

    def __init__(
        self,
        n_locations: int,
        d: int,
        address_dim: int = 64,
        active: float = 8.0,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        missing = torchhd_missing()
        if missing:
            raise ImportError(missing)
        from torchhd.memory import SparseDistributed

        self.n_locations = check_positive_int("n_locations", n_locations)
        self.d = check_positive_int("d", d)
        self.address_dim = check_positive_int("address_dim", address_dim)
        if not 0 < active <= n_locations:
            raise ValueError(f"active must be in (0, n_locations={n_locations}], got {active!r}")
        self.active = float(active)
        self.seed = check_seed(seed)
        self._salt = stream_salt(seed, _STREAM_ADDRESS)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.sdm = SparseDistributed(
                n_locations,
                address_dim,
                d,
                p=active / n_locations,
                dtype=check_float_dtype(dtype),
                device=device,
            )
        self.clear()

    @classmethod
    def from_budget(
        cls,
        nbytes: int,
        d: int,
        address_dim: int = 64,
        active: float = 8.0,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> SparseDistributedMemory:
        """As many locations as fit: ``M = nbytes // ((a + d) * itemsize)``."""
        per = (
            check_positive_int("address_dim", address_dim) + check_positive_int("d", d)
        ) * float_itemsize(dtype)
        nbytes = check_budget(nbytes, per, f"one location: address + content, {per} bytes")
        return cls(nbytes // per, d, address_dim, min(active, nbytes // per), seed, dtype, device)

    @property
    def device(self) -> torch.device:
        return self.sdm.values.device

    @property
    def radius(self) -> int:
        """Hamming radius of activation."""
        return (self.address_dim - self.sdm.threshold) // 2

    def addresses(self, keys: torch.Tensor) -> torch.Tensor:
        """``[B, a]`` bipolar (+-1) addresses of the keys."""
        keys = check_read(keys, self.device)
        return key_gaussian(keys, self._salt, self.address_dim, self.sdm.values.dtype).sign()

    @torch.no_grad()
    def clear(self) -> None:
        self.sdm.values.zero_()

    @torch.no_grad()
    def write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        keys, values = check_write(keys, values, self.d, self.device)
        self.sdm.write(self.addresses(keys), values.to(self.sdm.values.dtype))

    @torch.no_grad()
    def read(self, keys: torch.Tensor) -> torch.Tensor:
        """Sum of the active locations' contents, ``[B, d]`` (zero when none is active)."""
        return self.sdm.read(self.addresses(keys)).as_subclass(torch.Tensor)

    def forward(self, keys: torch.Tensor) -> torch.Tensor:
        return self.read(keys)

    @property
    def nbytes(self) -> int:
        """Address matrix + content matrix, at their stored dtypes."""
        return sum(t.numel() * t.element_size() for t in (self.sdm.keys, self.sdm.values))

    def extra_repr(self) -> str:
        return (
            f"n_locations={self.n_locations}, d={self.d}, address_dim={self.address_dim}, "
            f"active={self.active}, radius={self.radius}, nbytes={self.nbytes}"
        )


def tune_active(
    nbytes: int,
    d: int,
    n_items: int,
    grid: Sequence[float] = (1, 2, 4, 8, 16, 32, 64),
    address_dim: int = 64,
    codebook_size: int = 1024,
    seed: int = 12345,
) -> tuple[float, dict[float, float]]:
    """The ``active`` of ``grid`` with the best top-1 decode accuracy for ``n_items`` items at
    ``nbytes`` (a tuning draw: its own seed, keys and codebook); returns it and every accuracy."""
    codebook = random_codebook(codebook_size, d, seed=seed)
    keys = splitmix64(torch.arange(n_items, dtype=torch.int64) + (seed << 32))
    ids = torch.randint(0, codebook_size, (n_items,), generator=torch.Generator().manual_seed(seed))
    scores = {}
    for active in grid:
        memory = SparseDistributedMemory.from_budget(nbytes, d, address_dim, active, seed=seed)
        memory.write(keys, codebook[ids])
        decoded, _, _ = decode_top1(memory.read(keys), codebook)
        scores[float(active)] = float((decoded == ids).double().mean())
    return max(scores, key=lambda a: (scores[a], -a)), scores
