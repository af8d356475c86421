"""Fixed random unit codes for value ids, and nearest-code decoding.

The code of value id ``v`` is a deterministic function of ``(seed, v)``: standard normal
numbers drawn by a counter-based generator (splitmix64 of ``seed, v, j`` followed by a
Box-Muller transform), normalised to unit length. No table has to be stored to reproduce a
code, and codes do not depend on the order in which ids were first seen.
"""

from __future__ import annotations

import math

import torch

from bbpm.hashing.mixing import splitmix64, splitmix64_int

__all__ = ["ValueCodebook", "random_unit_codes"]

_MANTISSA = (1 << 53) - 1


def _uniform_open(bits: torch.Tensor) -> torch.Tensor:
    """int64 bit patterns -> float64 uniforms in the open interval (0, 1)."""
    return (((bits >> 11) & _MANTISSA).to(torch.float64) + 0.5) / float(1 << 53)


def random_unit_codes(value_ids: torch.Tensor, d: int, seed: int = 0) -> torch.Tensor:
    """Unit-norm pseudo-Gaussian codes.

    Args:
        value_ids: ``[B]`` integer ids.
        d: code dimension.
        seed: codebook seed.

    Returns:
        ``[B, d]`` float32, each row unit norm, row ``i`` a function of ``(seed, value_ids[i])`` only.
    """
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be a positive int, got {d!r}")
    ids = torch.as_tensor(value_ids)
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.dim() != 1:
        raise TypeError(
            f"value_ids must be a 1-D integer tensor, got dtype {ids.dtype} shape {tuple(ids.shape)}"
        )
    ids = ids.to(torch.int64)
    pairs = (d + 1) // 2
    counters = splitmix64(ids ^ splitmix64_int(seed))[:, None] * (2 * pairs) + torch.arange(
        2 * pairs, dtype=torch.int64, device=ids.device
    )
    uniforms = _uniform_open(splitmix64(counters))
    radius = torch.sqrt(-2.0 * torch.log(uniforms[:, 0::2]))
    angle = 2.0 * math.pi * uniforms[:, 1::2]
    normals = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)[:, :d]
    return (normals / normals.norm(dim=1, keepdim=True)).to(torch.float32)


class ValueCodebook:
    """Codes for a growing set of value ids, with cosine nearest-neighbour decoding.

    Args:
        d: code dimension.
        seed: codebook seed.
        device: where the materialised code matrix lives.

    ``add(ids)`` registers candidates; ``decode(vectors)`` returns the nearest registered ids.
    """

    def __init__(self, d: int, seed: int = 0, device: torch.device | str | None = None) -> None:
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise ValueError(f"d must be a positive int, got {d!r}")
        self.d = d
        self.seed = int(seed)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._ids: list[torch.Tensor] = []
        self._codes: list[torch.Tensor] = []
        self._ids_cat: torch.Tensor | None = None
        self._codes_cat: torch.Tensor | None = None

    def codes(self, value_ids: torch.Tensor) -> torch.Tensor:
        """``[B]`` ids -> ``[B, d]`` unit codes on the codebook's device."""
        return random_unit_codes(torch.as_tensor(value_ids), self.d, self.seed).to(self.device)

    def add(self, value_ids: torch.Tensor) -> torch.Tensor:
        """Register ``[B]`` ids as decoding candidates; returns their ``[B, d]`` codes."""
        ids = torch.as_tensor(value_ids).to(torch.int64).reshape(-1).cpu()
        codes = self.codes(ids)
        self._ids.append(ids)
        self._codes.append(codes)
        self._ids_cat = self._codes_cat = None
        return codes

    def __len__(self) -> int:
        return sum(int(ids.numel()) for ids in self._ids)

    @property
    def ids(self) -> torch.Tensor:
        """``[C]`` int64 registered ids (CPU)."""
        if self._ids_cat is None:
            self._ids_cat = torch.cat(self._ids) if self._ids else torch.zeros(0, dtype=torch.int64)
        return self._ids_cat

    @property
    def matrix(self) -> torch.Tensor:
        """``[C, d]`` codes of the registered ids."""
        if self._codes_cat is None:
            self._codes_cat = (
                torch.cat(self._codes)
                if self._codes
                else torch.zeros(0, self.d, device=self.device)
            )
            self._codes, self._ids = [self._codes_cat], [self.ids]
        return self._codes_cat

    @property
    def nbytes(self) -> int:
        """Bytes of the materialised code matrix (it could be regenerated from the seed instead)."""
        return len(self) * self.d * 4

    def clear(self) -> None:
        """Forget every registered id."""
        self._ids, self._codes = [], []
        self._ids_cat = self._codes_cat = None

    @torch.no_grad()
    def decode(
        self, vectors: torch.Tensor, top_k: int = 1, chunk: int = 1024
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest registered ids by cosine similarity.

        Args:
            vectors: ``[B, d]`` read-outs.
            top_k: how many candidates to return per row.
            chunk: rows scored at once (bounds the ``[chunk, C]`` similarity matrix).

        Returns:
            ``(ids [B, top_k] int64, cosines [B, top_k] float32)``, best first.
        """
        if vectors.dim() != 2 or vectors.shape[1] != self.d:
            raise ValueError(f"vectors must be [B, {self.d}], got shape {tuple(vectors.shape)}")
        if len(self) == 0:
            raise ValueError("the codebook is empty: add candidate ids before decoding")
        top_k = min(int(top_k), len(self))
        matrix = self.matrix
        unit = vectors.to(matrix.device, torch.float32)
        unit = unit / unit.norm(dim=1, keepdim=True).clamp_min(1e-12)
        best_ids, best_cos = [], []
        for start in range(0, unit.shape[0], chunk):
            cosines, positions = (unit[start : start + chunk] @ matrix.T).topk(top_k, dim=1)
            best_ids.append(self.ids[positions.cpu()])
            best_cos.append(cosines.cpu())
        return torch.cat(best_ids), torch.cat(best_cos)
