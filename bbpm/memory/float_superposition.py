"""The canonical BBPM memory: float superposition with per-slot counts.

Each item (key, value) is added into the K*H slots ``idx = hash_fn.indices(key, K, H)``
of a ``[D, d]`` table, and a ``[D, 1]`` counts table records how many writes hit each slot::

    write:  memory[idx] += s * v          counts[idx] += 1
    read:   r = mean_j( memory[idx_j] / (counts[idx_j] + eps) ) / s

with ``s`` the write scale (1 or 1/sqrt(K*H)) and ``eps = 1e-8`` (after :func:`~bbpm.memory.decay`,
a write adds ``w * s * v`` and ``w``, with ``w`` the memory's write weight). At low load every slot
holds only this item, so ``read(write(v)) == v``. As load grows each slot returns the
average of the items sharing it; averaging over K*H slots shrinks that crosstalk.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bbpm.hashing import diagnostics as hash_diagnostics
from bbpm.hashing.base import HashFunction
from bbpm.memory import kernels, read_rules
from bbpm.memory.base import (
    EPS,
    CheckedExtraState,
    MutationLock,
    check_hash_and_dtype,
    check_hash_output,
    check_keys_on,
    check_sizes,
    check_values,
    counts_dtype_for,
    hashed_slots,
    load_default_write_weight,
    locked,
    memory_config,
    memory_from_config,
    nonfinite_rows,
    warn_past_write_limit,
    weighted_values,
    write_scale_factor,
)
from bbpm.utils.device import zeros_table


class BBPMMemoryFloat(MutationLock, CheckedExtraState, nn.Module):
    """Fixed-size hashed superposition memory with count debiasing.

    Args:
        D: total slots.
        d: value dimension.
        K: active slots per item per hash.
        H: number of hashes (K*H slots per item).
        hash_fn: a :class:`~bbpm.hashing.HashFunction` with ``hash_fn.D == D``.
        dtype: storage dtype of ``memory`` (floating point). ``counts`` are float32
            (float64 when dtype is float64): exact integers up to 2**24 (2**53) writes per slot.
            With float16/bfloat16 storage the table's dtype is what the memory costs: writes
            add in the storage dtype (each rounds the slot's sum), reads accumulate in
            float32 and return float32. A slot's value is guaranteed within 1% only up to
            21 writes per slot (float16) or 3 (bfloat16)
            (:func:`~bbpm.memory.base.low_precision_write_limit`); the first write that
            takes a slot past it raises one :class:`~bbpm.memory.base.LowPrecisionWarning`
            per memory. Use float32 for many writes per slot.
        device: where the buffers live.
        write_scale: ``"1/sqrt(KH)"`` (default) or ``"unit"``; see
            :func:`bbpm.memory.base.write_scale_factor`.
        check_finite: reject NaN/inf values on write (``ValueError``) and values that
            overflow the storage dtype once scaled and cast (``OverflowError``, e.g. 7e4 into
            float16); set False to skip the scan.
        read_rule: how :meth:`read` combines a key's K*H slots: ``"debiased"`` (default,
            the count-debiased mean above), ``"mean"`` or ``"inverse_noise"``; see
            :mod:`bbpm.memory.read_rules` (``read(keys, read_rule=...)`` overrides it per call).

    Overflow of a slot's sum: each written value is checked, but a slot's accumulated sum
    can still pass the storage dtype's largest finite number after many large writes
    (float16: 65504). Such a write is not refused (checking every touched slot would cost
    a second pass over the rows); it is reported: :meth:`nonfinite_slots` and
    ``diagnostics()["nonfinite_slots"]`` count the slots holding inf or NaN, and a read of
    such a slot returns inf/NaN rather than a finite wrong number.

    Decay (:func:`bbpm.memory.decay`) does not touch the table: it raises the weight
    ``write_weight`` (a float64 scalar buffer, 1 until the first decay) with which later
    writes are stored (values times the weight, counts ``+=`` the weight), so a slot's
    debiased value is exactly unchanged by any number of decays. The table is rescaled by a
    power of two only when the weight leaves its range (see
    :func:`bbpm.memory.base.write_weight_range`). ``load_factor``, ``n_items`` and the
    diagnostics' counts are in units of a fresh write (counts divided by the weight).

    Buffers: ``memory [D, d]``, ``counts [D, 1]``, ``write_weight []`` (float64).

    Threads: ``write``, ``clear``, ``load_state_dict`` and the eviction policies of
    :mod:`bbpm.memory.eviction` hold ``memory.lock`` (a re-entrant lock), so several threads
    may write into one memory and nothing is lost. ``read`` does not take the lock; a read
    concurrent with a write may see part of it (wrap it in ``with memory.lock:`` to avoid
    that). The lock is not saved: pickling and ``copy.deepcopy`` give the copy its own.

    Checkpoints: ``load_state_dict`` checks the whole checkpoint (config with dtype, buffer
    shapes and dtypes) before copying anything; see
    :class:`~bbpm.memory.base.CheckedExtraState`.
    """

    eps = EPS

    def __init__(
        self,
        D: int,
        d: int,
        K: int,
        H: int,
        hash_fn: HashFunction,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        write_scale: str = "1/sqrt(KH)",
        check_finite: bool = True,
        read_rule: str = "debiased",
    ) -> None:
        super().__init__()
        self._init_lock()
        self.D, self.d, self.K, self.H = check_sizes(D, d, K, H)
        check_hash_and_dtype(hash_fn, D, dtype)
        self.read_rule = read_rules.check_read_rule(read_rule)
        self.scale = write_scale_factor(write_scale, K, H)
        self.write_scale = write_scale
        self.hash_fn = hash_fn
        self.check_finite = bool(check_finite)
        counts_dtype = counts_dtype_for(dtype)
        self.register_buffer("memory", zeros_table(D, d, dtype=dtype, device=device))
        self.register_buffer("counts", zeros_table(D, 1, dtype=counts_dtype, device=device))
        self.register_buffer(
            "write_weight", torch.ones((), dtype=torch.float64, device=self.memory.device)
        )
        check_hash_output(hash_fn, self.K, self.H, self.D, self.memory.device)

    # ------------------------------------------------------------------ core API
    def slots(self, keys: torch.Tensor) -> torch.Tensor:
        """``keys: [B]`` integer -> ``[B, K*H]`` int64 slot ids on the memory's device."""
        keys = check_keys_on(keys, self.memory.device)
        return hashed_slots(self.hash_fn, keys, self.K, self.H, self.D)

    @locked
    @torch.no_grad()
    def clear(self) -> None:
        """Zero the memory and the counts. After a gradient-recording write the table is a
        graph output; it becomes a plain zero buffer again (the graph is released)."""
        if self.memory.grad_fn is not None:
            self.memory = torch.zeros_like(self.memory)
        else:
            self.memory.zero_()
        self.counts.zero_()
        self.write_weight.fill_(1.0)

    @locked
    def write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Add ``values: [B, d]`` under ``keys: [B]`` int64. Duplicate keys add twice.
        Inputs are validated before anything is written (bad input leaves state unchanged).

        Autograd: when ``values`` requires grad the write is recorded (out of place), so a
        later :meth:`read` is differentiable with respect to the written values. The table
        then holds that graph (and later writes take the torch path) until :meth:`clear`."""
        keys = check_keys_on(keys, self.memory.device)
        values = check_values(values, keys, self.d, check_finite=False)
        idx = hashed_slots(self.hash_fn, keys, self.K, self.H, self.D)
        scaled, weight = weighted_values(self, values, idx)
        if values.requires_grad and torch.is_grad_enabled():
            # Out-of-place so the graph keeps the values; counts never need gradients.
            kernels.torch_ops.check_slot_range(idx, self.D)  # index_add would stop halfway
            flat = idx.reshape(-1)
            self.memory = self.memory.index_add(
                0, flat, scaled.repeat_interleave(idx.shape[1], dim=0)
            )
            with torch.no_grad():
                self.counts.index_add_(
                    0,
                    flat,
                    torch.full(
                        (flat.numel(), 1), weight, dtype=self.counts.dtype, device=flat.device
                    ),
                )
                warn_past_write_limit(self, idx)
            return
        with torch.no_grad():
            kernels.write(self.memory, self.counts, idx, scaled, count_step=weight)
            warn_past_write_limit(self, idx)

    def read(self, keys: torch.Tensor, read_rule: str | None = None) -> torch.Tensor:
        """The key's K*H slots combined by ``read_rule`` (None: the memory's rule; default
        the count-debiased mean), divided by the write scale: ``[B, d]``."""
        rule = self.read_rule if read_rule is None else read_rules.check_read_rule(read_rule)
        idx = self.slots(keys)
        weight = float(self.write_weight)
        if rule == "debiased" or weight == 1.0:
            return kernels.read(self.memory, self.counts, idx, self.eps, rule=rule) / self.scale
        # after a decay: counts and values in units of a fresh write (see read_rules)
        counts = self.counts / weight
        return kernels.read(self.memory, counts, idx, self.eps, rule=rule) / (self.scale * weight)

    def forward(self, keys: torch.Tensor) -> torch.Tensor:
        return self.read(keys)

    # ------------------------------------------------------------------ inspection
    @property
    def nbytes(self) -> int:
        """Bytes held by ``memory`` and ``counts``."""
        return (
            self.memory.numel() * self.memory.element_size()
            + self.counts.numel() * self.counts.element_size()
        )

    @property
    def load_factor(self) -> float:
        """Average writes per slot so far, ``lambda = N * K * H / D`` (after decay: each
        write weighted by its decay, in units of a fresh write)."""
        return float(self.counts.sum()) / float(self.write_weight) / self.D

    @property
    def n_items(self) -> float:
        """Number of items written so far (``counts.sum() / (K*H)``; after decay weighted
        as :attr:`load_factor`)."""
        return float(self.counts.sum()) / float(self.write_weight) / (self.K * self.H)

    @torch.no_grad()
    def diagnostics(self, keys: torch.Tensor) -> dict[str, Any]:
        """Collision diagnostics of these keys' slots (see :mod:`bbpm.hashing.diagnostics`),
        plus the memory's current load factor and occupied fraction."""
        idx = self.slots(keys)
        stats = hash_diagnostics.summarize(idx.cpu(), self.D)
        stats["load_factor"] = self.load_factor
        stats["memory_occupied_fraction"] = float((self.counts > 0).double().mean())
        stats["memory_max_count"] = float(self.counts.max()) / float(self.write_weight)
        stats["nonfinite_slots"] = self.nonfinite_slots()
        return stats

    @torch.no_grad()
    def nonfinite_slots(self) -> int:
        """Number of slots whose stored sum or count is inf or NaN (an accumulated sum that
        overflowed the storage dtype, or a write with ``check_finite=False``); 0 when the
        table is sound."""
        return nonfinite_rows(self.memory.detach(), self.counts)

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild an empty memory of the same shape and hashing."""
        return {**memory_config(self), "read_rule": self.read_rule}

    # ------------------------------------------------------------------ checkpoints
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        load_default_write_weight(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def get_extra_state(self) -> dict[str, Any]:
        return self.config()

    def check_extra_state(self, state: dict[str, Any]) -> None:
        """Raise ``ValueError`` unless the checkpoint's config equals this memory's
        (sizes, storage dtype, write scale, hash)."""
        if not isinstance(state, dict):
            raise ValueError(
                f"checkpoint config (_extra_state) must be a dict, got {type(state).__name__}"
            )
        mine = self.config()
        mismatched = [
            k
            for k in ("D", "d", "K", "H", "dtype", "write_scale", "hash")
            if state.get(k) != mine.get(k)
        ]
        if mismatched:
            raise ValueError(
                "checkpoint does not match this memory in "
                + ", ".join(mismatched)
                + f": checkpoint { ({k: state.get(k) for k in mismatched}) } vs memory { ({k: mine.get(k) for k in mismatched}) }; "
                "build the memory with BBPMMemoryFloat.from_state_dict(state_dict)"
            )

    @classmethod
    def from_state_dict(
        cls, state_dict: dict[str, Any], device: torch.device | str | None = None
    ) -> BBPMMemoryFloat:
        """Rebuild a memory (hash settings included) from ``module.state_dict()``."""
        config = state_dict.get("_extra_state")
        if not isinstance(config, dict):
            raise ValueError(
                "state_dict has no BBPM config (_extra_state); it was not saved by BBPMMemoryFloat.state_dict()"
            )
        if config.get("hash") is None:
            raise ValueError(
                "the checkpoint's hash_fn has no config() to rebuild it from; build the memory "
                "with the same hash_fn and call memory.load_state_dict(state_dict)"
            )
        memory = memory_from_config(
            cls, config, device=device, read_rule=config.get("read_rule", "debiased")
        )
        memory.load_state_dict(state_dict)
        return memory

    def extra_repr(self) -> str:
        return (
            f"D={self.D}, d={self.d}, K={self.K}, H={self.H}, dtype={self.memory.dtype}, "
            f"write_scale={self.write_scale!r}, read_rule={self.read_rule!r}, hash_fn={self.hash_fn!r}"
        )
