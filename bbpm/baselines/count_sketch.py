"""Count sketch of vectors (Charikar, Chen & Farach-Colton 2002) used as a key -> value map.

``R`` rows of ``W`` buckets, each bucket a d-vector. Row r hashes a key to a bucket
``h_r(k)`` and a sign ``s_r(k)``::

    write:  table[r, h_r(k)] += s_r(k) * v                 for every row r
    read:   r_est = median_r ( s_r(k) * table[r, h_r(k)] )   (elementwise; or the mean)

Each row's estimate is ``v`` plus the signed sum of the items sharing its bucket: unbiased,
with crosstalk energy ``(N-1)/W`` for unit values. The mean over R rows divides that by R;
the median is robust to a few heavy collisions but for many small (near-Gaussian)
collisions its variance is larger by the median's efficiency factor (pi/2 for large R).
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
from bbpm.baselines.keycodes import key_bucket, key_sign, stream_salt
from bbpm.memory.base import MutationLock, locked
from bbpm.utils.device import check_device

ESTIMATORS = ("median", "mean")


class CountSketchMemory(MutationLock, ReportsNonfinite, nn.Module):
    """Count sketch with ``rows x width`` buckets of d-vectors.

    Args:
        d: value dimension.
        rows: R independent hash rows.
        width: W buckets per row.
        estimator: ``"median"`` (classic) or ``"mean"`` over the rows.
        seed: seeds the bucket and sign hashes.

    Buffer: ``table [R, W, d]``; ``nbytes = R * W * d * itemsize``.
    """

    _sum_buffers = ("table",)
    load_state_dict = locked(nn.Module.load_state_dict)

    def __init__(
        self,
        d: int,
        rows: int,
        width: int,
        estimator: str = "median",
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self._init_lock()
        device = check_device(device)
        self.d = check_positive_int("d", d)
        self.rows = check_positive_int("rows", rows)
        self.width = check_positive_int("width", width)
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.estimator = estimator
        self.seed = check_seed(seed)
        dtype = check_float_dtype(dtype)
        self._bucket_salts = [stream_salt(seed, 100 + 2 * r) for r in range(rows)]
        self._sign_salts = [stream_salt(seed, 101 + 2 * r) for r in range(rows)]
        self.register_buffer("table", torch.zeros(rows, width, d, dtype=dtype, device=device))

    @classmethod
    def from_budget(
        cls, nbytes: int, d: int, rows: int = 5, dtype: torch.dtype = torch.float32, **kwargs
    ) -> CountSketchMemory:
        """``width = nbytes // (rows * d * itemsize)``."""
        d = check_positive_int("d", d)
        rows = check_positive_int("rows", rows)
        per_bucket_column = rows * d * float_itemsize(dtype)
        nbytes = check_budget(
            nbytes,
            per_bucket_column,
            f"one bucket in each of {rows} rows, {per_bucket_column} bytes",
        )
        return cls(d, rows=rows, width=nbytes // per_bucket_column, dtype=dtype, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.table.device

    def buckets(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(flat bucket ids [B, R] into table.view(R*W, d), signs [B, R])``."""
        keys = check_read(keys, self.device)
        flat = torch.stack(
            [
                r * self.width + key_bucket(keys, salt, self.width)
                for r, salt in enumerate(self._bucket_salts)
            ],
            dim=1,
        )
        signs = torch.stack(
            [key_sign(keys, salt, self.table.dtype) for salt in self._sign_salts], dim=1
        )
        return flat, signs

    @locked
    @torch.no_grad()
    def clear(self) -> None:
        self.table.zero_()

    @locked
    @torch.no_grad()
    def write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Add ``s_r(k) * v`` into bucket ``h_r(k)`` of every row."""
        keys, values = check_write(keys, values, self.d, self.device, self.table.dtype)
        flat, signs = self.buckets(keys)
        signed = signs[:, :, None] * values[:, None, :]  # [B, R, d]
        self.table.view(-1, self.d).index_add_(0, flat.reshape(-1), signed.reshape(-1, self.d))

    @torch.no_grad()
    def read(self, keys: torch.Tensor) -> torch.Tensor:
        """Median (or mean) over rows of the sign-corrected buckets: ``[B, d]``."""
        flat, signs = self.buckets(keys)
        estimates = signs[:, :, None] * self.table.view(-1, self.d)[flat]  # [B, R, d]
        if self.estimator == "mean":
            return estimates.mean(dim=1)
        if self.rows % 2 == 1:
            return estimates.median(dim=1).values
        # even R: torch's median returns the lower middle; use the midpoint of the two middles
        ordered = estimates.sort(dim=1).values
        return 0.5 * (ordered[:, self.rows // 2 - 1] + ordered[:, self.rows // 2])

    def forward(self, keys: torch.Tensor) -> torch.Tensor:
        return self.read(keys)

    @property
    def nbytes(self) -> int:
        return self.table.numel() * self.table.element_size()

    def extra_repr(self) -> str:
        return f"d={self.d}, rows={self.rows}, width={self.width}, estimator={self.estimator!r}, nbytes={self.nbytes}"
