"""Per-key random vectors generated from the key id alone (nothing per key is stored).

Every peer memory that needs a dense code for an integer key (FHRR phasors, Hopfield key
patterns, the fly-hash input) derives it here from ``splitmix64(key XOR salt)``: word j of
a key is the j-th output of a splitmix64 generator seeded with that mix, and each 64-bit
word is reinterpreted as several random fields (four 16-bit phases, or two 32-bit
uniforms). The same key gives the same vector in every run, process and device.
"""

from __future__ import annotations

import math
import numbers

import torch

from bbpm.hashing.mixing import GOLDEN, as_int64, splitmix64, splitmix64_int, uniform_mod

_M1 = as_int64(0xBF58476D1CE4E5B9)  # splitmix64 finalizer multipliers (Steele et al. 2014)
_M2 = as_int64(0x94D049BB133111EB)


def stream_salt(seed: int, stream: int) -> int:
    """A signed 64-bit salt for (``seed``, ``stream``): different streams give unrelated
    numbers for the same key (the bank index and the phasors of one memory, say)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return splitmix64_int(splitmix64_int(int(seed)) + stream)


def _splitmix64_(z: torch.Tensor) -> torch.Tensor:
    """In-place :func:`bbpm.hashing.mixing.splitmix64` (same output, fewer temporaries)."""
    z += GOLDEN
    z ^= (z >> 30) & ((1 << 34) - 1)
    z *= _M1
    z ^= (z >> 27) & ((1 << 37) - 1)
    z *= _M2
    z ^= (z >> 31) & ((1 << 33) - 1)
    return z


def key_words(keys: torch.Tensor, salt: int, n_words: int) -> torch.Tensor:
    """``keys: [B] int64`` -> ``[B, n_words]`` int64 random 64-bit words."""
    base = splitmix64(keys ^ salt)
    j = torch.arange(n_words, dtype=torch.int64, device=keys.device) * GOLDEN
    words = _splitmix64_(base[:, None] + j[None, :])
    if words.numel() == 0:  # an empty batch: strides a dtype view accepts
        return torch.zeros(keys.shape[0], n_words, dtype=torch.int64, device=keys.device)
    return words


def key_uniform(
    keys: torch.Tensor, salt: int, n_cols: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``[B, n_cols]`` uniforms in ``(0, 1)``, one 32-bit field of a random word each."""
    words = key_words(keys, salt, -(-n_cols // 2))
    fields = words.view(torch.int32)[:, :n_cols].to(
        torch.float64
    )  # reinterpret: two fields per word
    return ((fields + 2147483648.5) * (1.0 / 4294967296.0)).to(dtype)


def key_phases(
    keys: torch.Tensor, salt: int, dim: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``[B, dim]`` phase angles uniform on the 2**16 points ``2*pi*j/2**16 - pi``: the FHRR
    phasor ``exp(i*theta)`` (16-bit phase resolution, four phases per random word)."""
    words = key_words(keys, salt, -(-dim // 4))
    fields = words.view(torch.int16)[:, :dim]  # reinterpret the 64-bit words as 16-bit fields
    return fields.to(dtype) * (2.0 * math.pi / float(1 << 16))


def key_gaussian(
    keys: torch.Tensor, salt: int, dim: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``[B, dim]`` standard normal entries (Box-Muller on the key's uniforms)."""
    half = (dim + 1) // 2
    u = key_uniform(keys, salt, 2 * half, dtype)
    radius = torch.sqrt(-2.0 * torch.log(u[:, :half]))
    angle = (2.0 * math.pi) * u[:, half:]
    return torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)[:, :dim]


def key_bucket(keys: torch.Tensor, salt: int, n_buckets: int) -> torch.Tensor:
    """``[B]`` int64 bucket ids in ``[0, n_buckets)``."""
    return uniform_mod(splitmix64(keys ^ salt), n_buckets)


def key_sign(keys: torch.Tensor, salt: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[B]`` random signs +-1 of the key ids."""
    bit = (splitmix64(keys ^ salt) >> 17) & 1
    return (1 - 2 * bit).to(dtype)
