"""Peer associative memories, compared with BBPM at equal bytes (notebook exp08).

Every memory here has the :class:`bbpm.memory.base.AssociativeMemory` interface:
``write(keys [B] int64, values [B, d])``, ``read(keys [B]) -> [B, d]`` (the raw read,
before any cleanup), ``clear()`` and ``nbytes`` (bytes of its state), plus a
``from_budget(nbytes, d, ...)`` constructor. Cleanup against a codebook is the separate,
shared step :func:`decode_top1`. ``write``, ``clear`` and ``load_state_dict`` hold the
memory's re-entrant ``lock`` (as :class:`~bbpm.memory.BBPMMemoryFloat` does), so several
threads may write into one memory; ``read`` does not take it.

- :class:`ExactDictMemory`: the oracle (key 8 bytes + value), FIFO when bounded.
- :class:`FHRRMemory`: FHRR phasor binding, superposed in hashed banks of traces.
- :class:`HopfieldMemory`: two-stage modern Hopfield (top-k cosine, softmax), FIFO.
- :class:`FlyHashHebbianMemory`: Hebbian outer-product W under k-WTA fly-hash codes.
- :class:`CountSketchMemory`: count sketch of vectors (median or mean over rows).
- :func:`bbpm_from_budget`: BBPM itself (global or block-permutation hash).
- :class:`~bbpm.baselines.sdm.SparseDistributedMemory` (``"sdm"``, optional: needs torchhd,
  extra ``bbpm[hd]``): Kanerva's sparse distributed memory as torchhd implements it.

The comparison itself (task, sweep, capacity bisection, theory lines, throughput, tables) is
:mod:`bbpm.baselines.peers`; its figures are :mod:`bbpm.baselines.peer_plots`.
"""

from __future__ import annotations

from typing import Any

import torch

from bbpm.baselines.bbpm_budget import bbpm_from_budget, bbpm_slots_for_budget
from bbpm.baselines.count_sketch import CountSketchMemory
from bbpm.baselines.decode import decode_top1, random_codebook
from bbpm.baselines.exact_dict import ExactDictMemory
from bbpm.baselines.fhrr import FHRRMemory
from bbpm.baselines.flyhash import FlyHashHebbianMemory
from bbpm.baselines.hopfield import HopfieldMemory

METHODS = ("dict", "fhrr", "hopfield", "flyhash", "count_sketch", "bbpm_global", "bbpm_block")
#: peers that need an optional package (``sdm``: torchhd)
OPTIONAL_METHODS = ("sdm",)


def make_memory(
    method: str,
    nbytes: int,
    d: int,
    seed: int = 0,
    device: torch.device | str | None = None,
    **options: Any,
) -> Any:
    """Build memory ``method`` (one of :data:`METHODS` or :data:`OPTIONAL_METHODS`) sized to ``nbytes`` bytes.

    ``options`` go to that memory's constructor (e.g. ``K``/``H`` for BBPM, ``rows`` for
    the count sketch, ``k`` for the fly hash, ``top_k``/``beta`` for Hopfield).
    """
    if method == "dict":
        return ExactDictMemory.from_budget(nbytes, d, device=device, **options)
    if method == "fhrr":
        return FHRRMemory.from_budget(nbytes, d, seed=seed, device=device, **options)
    if method == "hopfield":
        return HopfieldMemory.from_budget(nbytes, d, seed=seed, device=device, **options)
    if method == "flyhash":
        return FlyHashHebbianMemory.from_budget(nbytes, d, seed=seed, device=device, **options)
    if method == "count_sketch":
        return CountSketchMemory.from_budget(nbytes, d, seed=seed, device=device, **options)
    if method in ("bbpm_global", "bbpm_block"):
        return bbpm_from_budget(
            nbytes, d, hash=method.removeprefix("bbpm_"), seed=seed, device=device, **options
        )
    if method == "sdm":
        from bbpm.baselines.sdm import SparseDistributedMemory

        return SparseDistributedMemory.from_budget(nbytes, d, seed=seed, device=device, **options)
    raise ValueError(f"method must be one of {METHODS + OPTIONAL_METHODS}, got {method!r}")


__all__ = [
    "METHODS",
    "OPTIONAL_METHODS",
    "CountSketchMemory",
    "ExactDictMemory",
    "FHRRMemory",
    "FlyHashHebbianMemory",
    "HopfieldMemory",
    "bbpm_from_budget",
    "bbpm_slots_for_budget",
    "decode_top1",
    "make_memory",
    "random_codebook",
]
