"""Cleanup: decode raw reads against a codebook, the same way for every memory."""

from __future__ import annotations

import torch


def decode_top1(
    reads: torch.Tensor, codebook: torch.Tensor, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest codebook row by cosine.

    Args:
        reads: ``[B, d]`` raw memory reads.
        codebook: ``[C, d]`` rows (normalised here).
        chunk: reads scored at once.

    Returns:
        ``ids [B]`` int64 (the top-1 row; ``-1`` for an all-zero read, which carries no
        answer: a dict or BBPM read of a key that touched nothing), ``cosine [B]`` (cosine of
        the read to that row; 0 for an all-zero read) and ``score [B]`` (projection
        ``<read, row>`` of the read on that unit row: the cosine times the read's norm, so it
        keeps the read's magnitude).
    """
    if reads.dim() != 2 or codebook.dim() != 2 or reads.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"reads must be [B, d] and codebook [C, d] with the same d, got {tuple(reads.shape)} and {tuple(codebook.shape)}"
        )
    if codebook.shape[0] == 0:
        raise ValueError("codebook is empty; pass at least one row")
    rows = torch.nn.functional.normalize(codebook.to(reads.dtype), dim=1)
    ids = torch.empty(reads.shape[0], dtype=torch.int64, device=reads.device)
    score = torch.empty(reads.shape[0], dtype=reads.dtype, device=reads.device)
    for start in range(0, reads.shape[0], chunk):
        best = (reads[start : start + chunk] @ rows.T).max(dim=1)
        ids[start : start + chunk] = best.indices
        score[start : start + chunk] = best.values
    norms = reads.norm(dim=1)
    ids[norms == 0] = -1
    cosine = torch.where(
        norms > 0, score / norms.clamp_min(torch.finfo(reads.dtype).tiny), torch.zeros_like(score)
    )
    return ids, cosine, score


def random_codebook(
    C: int, d: int, seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``[C, d]`` unit-norm Gaussian rows from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(C, d, generator=generator, dtype=dtype), dim=1)
