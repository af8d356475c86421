"""Integer keys for a BBPM memory used beside a language model.

A BBPM memory addresses slots by ``int64`` keys. This module turns the things an LLM
controller wants to look up into such keys:

* :func:`id_keys`: explicit integer identifiers (``ID=4821`` in a fact), salted by a
  namespace so that several key families can share one memory without colliding;
* :func:`position_keys`: ``(layer, head, position)`` triples, for KV-style memories;
* :class:`ProjectionKeys`: content keys for hidden vectors: the sign pattern of a fixed random
  projection (SimHash, Charikar 2002) of the **detached** vector, hashed to ``int64``.
  Nearby vectors share most sign bits, so they often share a key; the key carries no gradient
  (the address is discrete, the payload stays differentiable; see :mod:`bbpm.integration.fusion`).

All keys pass through the splitmix64 finalizer, so they are uniformly spread 64-bit patterns.
"""

from __future__ import annotations

import torch

from bbpm.hashing.mixing import splitmix64, splitmix64_int

__all__ = ["ProjectionKeys", "combine_keys", "id_keys", "namespace_salt", "position_keys"]


def namespace_salt(namespace: int | str) -> int:
    """A signed 64-bit salt for a key family (an int, or a string hashed stably with FNV-1a)."""
    if isinstance(namespace, str):
        value = 0xCBF29CE484222325
        for byte in namespace.encode("utf-8"):
            value = ((value ^ byte) * 0x100000001B3) & ((1 << 64) - 1)
        namespace = value
    if isinstance(namespace, bool) or not isinstance(namespace, int):
        raise TypeError(f"namespace must be an int or a str, got {type(namespace).__name__}")
    return splitmix64_int(namespace)


def _as_int64(name: str, values: torch.Tensor | list[int] | int) -> torch.Tensor:
    tensor = torch.as_tensor(values)
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise TypeError(
            f"{name} must hold integers, got dtype {tensor.dtype}; convert with .long()"
        )
    return tensor.to(torch.int64)


def combine_keys(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mix two int64 tensors (broadcast) into one key: ``splitmix64(splitmix64(a) ^ b)``."""
    return splitmix64(splitmix64(a) ^ b)


def id_keys(ids: torch.Tensor | list[int] | int, namespace: int | str = "id") -> torch.Tensor:
    """Keys for integer identifiers.

    Args:
        ids: integers of any shape (tensor, list or int).
        namespace: key family; the same id in two namespaces gives two unrelated keys.

    Returns:
        int64 tensor of the same shape as ``ids``.
    """
    ids = _as_int64("ids", ids)
    return splitmix64(ids ^ namespace_salt(namespace))


def position_keys(
    positions: torch.Tensor | list[int] | int,
    layer: int = 0,
    head: int = 0,
    namespace: int | str = "position",
) -> torch.Tensor:
    """Keys for token positions of one ``(layer, head)`` stream.

    Args:
        positions: integer positions of any shape.
        layer, head: which attention stream the positions belong to (non-negative).
        namespace: key family.

    Returns:
        int64 tensor of the same shape as ``positions``; distinct (layer, head) pairs give
        unrelated keys for the same position.
    """
    for name, value in (("layer", layer), ("head", head)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    positions = _as_int64("positions", positions)
    stream = splitmix64_int(splitmix64_int(namespace_salt(namespace) ^ layer) ^ head)
    return combine_keys(torch.full_like(positions, stream), positions)


class ProjectionKeys:
    """Stop-gradient content keys: ``key(x) = hash(sign(x.detach() @ R))``.

    Args:
        dim: input vector size.
        n_bits: number of random hyperplanes (sign bits) per key, 1..512. More bits make
            the key more specific (fewer unrelated vectors share it, fewer near copies do).
        seed: seeds the projection ``R [dim, n_bits]`` (standard normal).
        namespace: key family salt.

    Two vectors at angle ``theta`` agree on each bit with probability ``1 - theta / pi``,
    so they share a key with probability ``(1 - theta / pi) ** n_bits``. A positive scale
    of ``x`` never changes its key.
    """

    def __init__(
        self, dim: int, n_bits: int = 16, seed: int = 0, namespace: int | str = "projection"
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if isinstance(n_bits, bool) or not isinstance(n_bits, int) or not 1 <= n_bits <= 512:
            raise ValueError(f"n_bits must be an int in [1, 512], got {n_bits!r}")
        self.dim = dim
        self.n_bits = n_bits
        self.seed = int(seed)
        self.salt = namespace_salt(namespace)
        generator = torch.Generator().manual_seed(self.seed)
        self.projection = torch.randn(dim, n_bits, generator=generator)

    def bits(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [..., dim]`` float -> ``[..., n_bits]`` bool sign bits of the detached projection."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(
                f"x must be a floating tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}"
            )
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must end in dim={self.dim}, got shape {tuple(x.shape)}")
        with torch.no_grad():
            projection = self.projection.to(device=x.device, dtype=torch.float32)
            return (x.detach().float() @ projection) > 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [..., dim]`` -> ``[...]`` int64 keys (no autograd graph)."""
        bits = self.bits(x).to(torch.int64)
        key = torch.full(bits.shape[:-1], self.salt, dtype=torch.int64, device=bits.device)
        for start in range(0, self.n_bits, 63):  # pack 63 bits per word, fold words with the mixer
            chunk = bits[..., start : start + 63]
            weights = torch.ones(
                chunk.shape[-1], dtype=torch.int64, device=bits.device
            ) << torch.arange(chunk.shape[-1], dtype=torch.int64, device=bits.device)
            key = combine_keys(key, (chunk * weights).sum(-1))
        return key

    def __repr__(self) -> str:
        return f"ProjectionKeys(dim={self.dim}, n_bits={self.n_bits}, seed={self.seed})"
