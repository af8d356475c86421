"""A BBPM memory whose blocks are spread over the ranks of a ``torch.distributed`` group.

With :class:`~bbpm.hashing.BlockPermutationHash` the K slots of one (key, hash) pair lie
in one block of ``L`` slots, so one rank owns all of them. Every rank stores only its own
blocks (``memory [n_local_blocks * L, d]``, ``counts [n_local_blocks * L, 1]``, see
:mod:`bbpm.distributed.assignment`), and ``write`` / ``read`` are collectives that every rank
of the group calls together, each with its own batch (any size, 0 included)::

    write(keys, values):  route each (key, hash) pair and its scaled value to the owner of
                          its block; the owner adds it with bbpm.memory.kernels.write
    read(keys):           route each (key, hash) pair to its owner; the owner returns the
                          debiased mean of the pair's K slots (bbpm.memory.kernels.read);
                          the caller averages its H partial means and divides by the scale

Because every hash contributes exactly K slots, the mean of the H per-hash means *is* the
mean over all K*H slots of ``memory / (counts + eps)``, the single-process read. For H = 1
the owner runs the very same kernel on the very same slot rows, so the sharded memory is
bitwise equal to :class:`~bbpm.memory.BBPMMemoryFloat` (fp32 writes in the same order: the
concatenation of the ranks' batches in rank order). For H > 1 the float additions are grouped
differently (per hash, then over hashes; and the column-wise write adds a slot's values in
another order), so the results agree up to float rounding (about 1e-7 for unit-scale fp32
values); counts are always exact.

Wire format (one ``all_to_all_single`` per direction, after an exchange of split sizes): a
(key, hash) pair travels as one row of bytes, ``key`` (int64, 8 bytes) + ``hash id`` (uint8,
1 byte) + for a write its scaled value (``d`` elements of ``memory.dtype``); a read answer is
``d`` elements of ``promote_types(memory.dtype, counts.dtype)``. The split-size exchange (a
``[W, 3]`` int64 header: count, error flag, operation) doubles as the error barrier: a rank
whose input fails validation raises on *every* rank before any value moves, so a bad batch
writes nothing anywhere and no rank hangs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from bbpm.distributed.assignment import BlockAssignment
from bbpm.hashing import BlockPermutationHash, MultiHashWrapper
from bbpm.hashing.base import HashFunction
from bbpm.memory import kernels, read_rules
from bbpm.memory.base import (
    EPS,
    CheckedExtraState,
    MutationLock,
    apply_write_weight,
    check_hash_and_dtype,
    check_keys_on,
    check_sizes,
    check_values,
    counts_dtype_for,
    load_default_write_weight,
    locked,
    memory_config,
    memory_from_config,
    nonfinite_rows,
    plan_weighted_write,
    warn_past_write_limit,
    write_scale_factor,
)
from bbpm.utils.device import zeros_table

KEY_BYTES = 8  # a key travels as int64
HASH_ID_BYTES = 1  # ... with its hash number h as uint8 (hence H <= 256)
HEADER_COLUMNS = 3  # per destination: pair count, error flag, operation code
# a read's code carries its rule: a read rule other than "debiased" answers 2d + 2 numbers
_OPS = {1: "write", 2: "read", 3: "read:mean", 4: "read:inverse_noise"}
_OP_CODES = {name: code for code, name in _OPS.items()}


def block_size_of(hash_fn: HashFunction) -> int:
    """Block size ``L`` of a block-structured hash: a :class:`BlockPermutationHash`, or a
    :class:`MultiHashWrapper` over one (each hash's K slots then still lie in one block)."""
    if isinstance(hash_fn, BlockPermutationHash):
        return hash_fn.block_size
    if isinstance(hash_fn, MultiHashWrapper) and isinstance(hash_fn.base, BlockPermutationHash):
        return hash_fn.base.block_size
    raise TypeError(
        "ShardedBBPMMemory needs a block hash whose K slots per hash lie in one block: "
        f"BlockPermutationHash or MultiHashWrapper(BlockPermutationHash), got {type(hash_fn).__name__}"
    )


def _bytes_as(columns: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Reinterpret ``[n, m]`` uint8 columns (a slice of packed rows) as ``dtype``: copied
    into a fresh buffer first, since a dtype view needs aligned, contiguous bytes."""
    aligned = torch.empty(columns.shape, dtype=torch.uint8, device=columns.device)
    aligned.copy_(columns)
    return aligned.view(dtype)


@dataclass
class Traffic:
    """What one rank handed to the collectives, counted from the split sizes.

    ``payload_bytes_remote`` are the bytes this rank sent to *other* ranks (requests with
    their values, and for reads the answers it sent back as an owner); the part addressed
    to itself (``payload_bytes_local``) is a local copy, not network traffic.
    ``header_bytes_remote`` are the split-size headers sent to other ranks (per call)."""

    calls: int = 0
    keys: int = 0
    pairs: int = 0
    pairs_remote: int = 0
    payload_bytes_remote: int = 0
    payload_bytes_local: int = 0
    header_bytes_remote: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ShardedBBPMMemory(MutationLock, CheckedExtraState, nn.Module):
    """BBPM float memory sharded by block over a ``torch.distributed`` process group.

    Same constructor arguments and ``write`` / ``read`` / ``clear`` / ``state_dict`` API as
    :class:`~bbpm.memory.BBPMMemoryFloat`, plus:

    Args:
        assignment: ``"contiguous"`` (rank r owns a contiguous range of blocks) or
            ``"modulo"`` (block b on rank b % W); see :mod:`bbpm.distributed.assignment`.
        group: the process group (default: the global group). ``torch.distributed`` must
            be initialised first (gloo on CPU, NCCL on GPUs).
        device: where this rank's shard lives; default ``cuda:<current device>`` for an
            NCCL group, else CPU. Keys and values must be on this device.

    ``write``, ``read``, ``save`` and the constructor are collectives: every rank of the
    group calls them in the same order. A rank with nothing to write or read passes an
    empty batch or ``None`` (single-writer mode: rank 0 writes, the others call
    ``write(None, None)``). ``clear`` is local (call it on every rank).

    Buffers (this rank's blocks only): ``memory [n_local_blocks * L, d]``,
    ``counts [n_local_blocks * L, 1]``. Writes are not recorded by autograd.

    Threads: ``write``, ``clear`` and ``load_state_dict`` hold ``memory.lock`` (as in
    :class:`~bbpm.memory.BBPMMemoryFloat`). Since ``write`` and ``read`` are collectives,
    threads of one rank that call them must still keep the same call order on every rank.
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
        assignment: str = "contiguous",
        group: dist.ProcessGroup | None = None,
        read_rule: str = "debiased",
    ) -> None:
        super().__init__()
        self._init_lock()
        self.D, self.d, self.K, self.H = check_sizes(D, d, K, H)
        self.read_rule = read_rules.check_read_rule(read_rule)
        if H > 256:
            raise ValueError(f"H must be <= 256 (the hash id travels as one byte), got H={H}")
        self.block_size = block_size_of(hash_fn)
        check_hash_and_dtype(hash_fn, D, dtype)
        hash_fn.indices(
            torch.zeros(1, dtype=torch.int64), K, H
        )  # K, H vs block size: fail here, not mid-collective
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "ShardedBBPMMemory needs an initialised torch.distributed process group: call "
                "torch.distributed.init_process_group('gloo' or 'nccl') first (torchrun sets the "
                "rank and world size), or use BBPMMemoryFloat in a single process"
            )
        self.group = group
        self.rank = dist.get_rank(group)
        if self.rank < 0:
            raise ValueError(
                "this process is not a member of `group`; only members may build its memory"
            )
        self.world_size = dist.get_world_size(group)
        self.scale = write_scale_factor(write_scale, K, H)
        self.write_scale = write_scale
        self.hash_fn = hash_fn
        self.check_finite = bool(check_finite)
        self.assignment = BlockAssignment(D // self.block_size, self.world_size, assignment)
        self.local_blocks = self.assignment.blocks_of(self.rank)
        if device is None:
            nccl = "nccl" in str(dist.get_backend(group)).lower()
            device = (
                torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
            )
        n_local_slots = self.local_blocks.numel() * self.block_size
        counts_dtype = counts_dtype_for(dtype)
        self.register_buffer("memory", zeros_table(n_local_slots, d, dtype=dtype, device=device))
        self.register_buffer(
            "counts", zeros_table(n_local_slots, 1, dtype=counts_dtype, device=device)
        )
        # decay's write weight (see BBPMMemoryFloat); equal on every rank when every rank
        # decays with the same gamma
        self.register_buffer(
            "write_weight", torch.ones((), dtype=torch.float64, device=self.memory.device)
        )
        self.read_dtype = torch.promote_types(dtype, counts_dtype)
        self.traffic = {"write": Traffic(), "read": Traffic()}
        self._check_same_config_on_every_rank()

    # ------------------------------------------------------------------ core API
    def slots(self, keys: torch.Tensor) -> torch.Tensor:
        """``keys: [B]`` -> ``[B, K*H]`` int64 *global* slot ids (local computation)."""
        keys = check_keys_on(keys, self.memory.device)
        return self.hash_fn.indices(keys, self.K, self.H)

    def owners(self, keys: torch.Tensor) -> torch.Tensor:
        """``keys: [B]`` -> ``[B, H]`` rank owning each hash's block (local computation)."""
        keys = check_keys_on(keys, self.memory.device)
        return self.assignment.owner(self._blocks(keys))

    @locked
    @torch.no_grad()
    def clear(self) -> None:
        """Zero this rank's shard (call on every rank to clear the whole memory)."""
        self.memory.zero_()
        self.counts.zero_()
        self.write_weight.fill_(1.0)

    @locked
    def write(self, keys: torch.Tensor | None, values: torch.Tensor | None) -> None:
        """Collective. Add ``values: [B, d]`` under ``keys: [B]`` int64 (B may differ per
        rank, 0 included; ``None, None`` = nothing to write). Inputs are validated on every
        rank before anything moves: one bad batch raises on every rank and writes nothing."""
        error, route, scaled, weight = None, None, None, 1.0
        try:
            keys, values = self._empty_if_none(keys, values)
            keys = check_keys_on(keys, self.memory.device)
            values = check_values(values, keys, self.d, check_finite=False)
            if values.requires_grad and torch.is_grad_enabled():
                raise ValueError(
                    "ShardedBBPMMemory does not record writes for autograd; pass values.detach()"
                )
            route = self._route(keys)
            # no fold on overflow: the weight must stay the same on every rank
            stored, weight = plan_weighted_write(self, values, fold_on_overflow=False)
            scaled = stored[route["pair_item"]]
        except Exception as exc:  # reported on every rank by _exchange_header
            error = exc
        recv_counts = self._exchange_header("write", route, error)
        rows = self._pack(route["keys"], route["hash_ids"], scaled)
        received = self._all_to_all(rows, route["send_counts"], recv_counts)
        pair_keys, hash_ids, pair_values = self._unpack(received, with_values=True)
        with torch.no_grad():
            apply_write_weight(self, weight)
            local_slots = self._local_slots(pair_keys, hash_ids)
            kernels.write(self.memory, self.counts, local_slots, pair_values, count_step=weight)
            warn_past_write_limit(self, local_slots)
        self._count("write", route, recv_counts, rows.shape[1], answer_bytes=0)

    def read(self, keys: torch.Tensor | None, read_rule: str | None = None) -> torch.Tensor:
        """Collective. Each key's K*H slots combined by ``read_rule`` (None: the memory's
        rule, default the count-debiased mean; every rank passes the same rule) divided by
        the write scale, ``[B, d]`` in the caller's order (``None`` = nothing to read, gives
        ``[0, d]``). For ``"mean"`` and ``"inverse_noise"`` the owner of each (key, hash)
        pair answers the partial sums of :func:`bbpm.memory.read_rules.rule_terms` over its
        K slots (``2d + 2`` numbers) and the caller adds the H pairs' sums and normalises."""
        error, route, rule = None, None, self.read_rule
        try:
            rule = rule if read_rule is None else read_rules.check_read_rule(read_rule)
            keys, _ = self._empty_if_none(keys, None)
            keys = check_keys_on(keys, self.memory.device)
            route = self._route(keys)
        except Exception as exc:
            error = exc
        op = "read" if rule == "debiased" else f"read:{rule}"
        recv_counts = self._exchange_header(op, route, error)
        requests = self._pack(route["keys"], route["hash_ids"], None)
        received = self._all_to_all(requests, route["send_counts"], recv_counts)
        pair_keys, hash_ids, _ = self._unpack(received, with_values=False)
        if rule != "debiased":
            return self._read_rule(rule, route, recv_counts, requests, pair_keys, hash_ids)
        with torch.no_grad():
            partial = kernels.read(
                self.memory, self.counts, self._local_slots(pair_keys, hash_ids), self.eps
            )
            answers = self._all_to_all(
                partial.to(self.read_dtype).contiguous(), recv_counts, route["send_counts"]
            )
            per_pair = torch.empty_like(answers)
            per_pair[route["order"]] = answers  # back to key-major (key, hash) order
        answer_bytes = self.d * per_pair.element_size()
        self._count("read", route, recv_counts, requests.shape[1], answer_bytes)
        per_key = per_pair.view(-1, self.H, self.d)
        # Each hash holds K slots, so the mean of the H per-hash means is the mean over K*H.
        combined = per_key[:, 0] if self.H == 1 else per_key.mean(dim=1)
        return combined / self.scale

    @torch.no_grad()
    def _read_rule(self, rule, route, recv_counts, requests, pair_keys, hash_ids) -> torch.Tensor:
        """The owner's partial sums for the pairs it received, sent back, combined per key."""
        n, work = pair_keys.shape[0], self.read_dtype
        local = self._local_slots(pair_keys, hash_ids)  # [n, K]
        # a key's multiplicities count its whole K*H row (its hashes may share slots)
        full = self.hash_fn.indices(pair_keys, self.K, self.H)
        mult = read_rules.slot_multiplicity(full, work).view(n, self.H, self.K)
        mult = mult[torch.arange(n, device=mult.device), hash_ids]
        weight = float(self.write_weight)  # after a decay: units of a fresh write
        counts = self.counts if weight == 1.0 else self.counts / weight
        g, h = read_rules.rule_terms(counts, local, rule, mult, work)
        rows = self.memory[local].to(work)  # [n, K, d]
        partial = torch.cat(
            [
                torch.einsum("pk,pkd->pd", g, rows),
                (mult * g).sum(1, keepdim=True),
                torch.einsum("pk,pkd->pd", h, rows),
                (mult * h).sum(1, keepdim=True),
            ],
            dim=1,
        )
        answers = self._all_to_all(partial.contiguous(), recv_counts, route["send_counts"])
        per_pair = torch.empty_like(answers)
        per_pair[route["order"]] = answers
        self._count(
            "read", route, recv_counts, requests.shape[1], partial.shape[1] * partial.element_size()
        )
        d = self.d
        sums = per_pair.view(-1, self.H, 2 * d + 2).sum(dim=1)
        zg, zh = sums[:, d : d + 1], sums[:, 2 * d + 1 :]
        combined = torch.where(
            zg > 0,
            sums[:, :d] / zg.clamp_min(1e-30),
            sums[:, d + 1 : 2 * d + 1] / zh.clamp_min(1e-30),
        )
        return combined / (self.scale * weight)

    def forward(self, keys: torch.Tensor | None) -> torch.Tensor:
        return self.read(keys)

    # ------------------------------------------------------------------ routing
    def _empty_if_none(self, keys: Any, values: Any) -> tuple[Any, Any]:
        if keys is None and values is None:
            device = self.memory.device
            return torch.empty(0, dtype=torch.int64, device=device), torch.empty(
                0, self.d, device=device
            )
        if keys is None:
            raise TypeError(
                "keys is None but values were given; pass both (or both None for an empty batch)"
            )
        return keys, values

    def _blocks(self, keys: torch.Tensor) -> torch.Tensor:
        """``[B, H]`` block of each hash of each key (K = 1 is enough to find the block)."""
        return self.hash_fn.indices(keys, 1, self.H) // self.block_size

    def _route(self, keys: torch.Tensor) -> dict[str, Any]:
        """Sort the B*H (key, hash) pairs by owner. The sort is stable, so each owner gets a
        rank's pairs in key-major order, as the single-process memory sees them."""
        owners = self.assignment.owner(self._blocks(keys)).reshape(-1)  # [B*H], key-major
        order = torch.sort(owners, stable=True).indices
        pair_item = torch.div(order, self.H, rounding_mode="floor")
        return {
            "order": order,
            "pair_item": pair_item,
            "keys": keys[pair_item],
            "hash_ids": torch.remainder(order, self.H),
            "send_counts": torch.bincount(owners, minlength=self.world_size).tolist(),
            "n_keys": keys.shape[0],
        }

    def _exchange_header(
        self, op: str, route: dict[str, Any] | None, error: BaseException | None
    ) -> list[int]:
        """Send every rank its pair count, this rank's error flag and the operation; raise on
        every rank if any rank's input was bad or the ranks called different operations."""
        header = torch.zeros(self.world_size, HEADER_COLUMNS, dtype=torch.int64)
        if error is None:
            header[:, 0] = torch.tensor(route["send_counts"], dtype=torch.int64)
        header[:, 1] = int(error is not None)
        header[:, 2] = _OP_CODES[op]
        header = header.to(self.memory.device)
        received = torch.empty_like(header)
        dist.all_to_all_single(received, header, group=self.group)
        received = received.cpu()
        if bool(received[:, 1].any()):
            self._raise_everywhere(op, error)
        ops = received[:, 2].tolist()
        if any(code != _OP_CODES[op] for code in ops):
            calls = ", ".join(f"rank {r}: {_OPS.get(code, code)}" for r, code in enumerate(ops))
            raise RuntimeError(
                f"ShardedBBPMMemory ranks called different operations ({calls}); every rank must "
                "call write (or read) together, passing an empty batch or None when it has no data"
            )
        return received[:, 0].tolist()

    def _raise_everywhere(self, op: str, error: BaseException | None) -> None:
        """Gather every rank's validation error and raise the same message on every rank."""
        mine = None if error is None else (type(error).__name__, str(error))
        reports: list[Any] = [None] * self.world_size
        dist.all_gather_object(reports, mine, group=self.group)
        bad = [(r, report) for r, report in enumerate(reports) if report is not None]
        problems = "; ".join(
            f"rank {r} of {self.world_size}: {name}: {message}" for r, (name, message) in bad
        )
        message = f"ShardedBBPMMemory.{op} rejected on every rank (nothing was written or read): {problems}"
        first_type = bad[0][1][0]
        exc_type = (
            TypeError
            if first_type == "TypeError"
            else ValueError
            if first_type == "ValueError"
            else OverflowError
            if first_type == "OverflowError"
            else RuntimeError
        )
        raise exc_type(message) from error

    def _pack(
        self, keys: torch.Tensor, hash_ids: torch.Tensor, values: torch.Tensor | None
    ) -> torch.Tensor:
        """``[n]`` keys, ``[n]`` hash ids (and ``[n, d]`` values) -> ``[n, 9 (+ d*e)]`` uint8
        rows, so each direction is one all_to_all_single (the wire format of the module doc)."""
        n = keys.shape[0]
        parts = [
            keys.contiguous().view(torch.uint8).view(n, KEY_BYTES),
            hash_ids.to(torch.uint8).view(n, 1),
        ]
        if values is not None:
            parts.append(
                values.contiguous().view(torch.uint8).view(n, self.d * values.element_size())
            )
        return torch.cat(parts, dim=1)

    def _unpack(
        self, rows: torch.Tensor, with_values: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        n = rows.shape[0]
        keys = _bytes_as(rows[:, :KEY_BYTES], torch.int64).view(n)
        hash_ids = rows[:, KEY_BYTES].long()
        if not with_values:
            return keys, hash_ids, None
        values = _bytes_as(rows[:, KEY_BYTES + HASH_ID_BYTES :], self.memory.dtype).view(n, self.d)
        return keys, hash_ids, values

    def _all_to_all(
        self, send: torch.Tensor, send_counts: list[int], recv_counts: list[int]
    ) -> torch.Tensor:
        """Rows ``send[sum(send_counts[:j]) : ...]`` go to rank j; returns the rows received,
        grouped by source rank in rank order."""
        received = send.new_empty((sum(recv_counts), *send.shape[1:]))
        dist.all_to_all_single(received, send, recv_counts, send_counts, group=self.group)
        return received

    def _local_slots(self, keys: torch.Tensor, hash_ids: torch.Tensor) -> torch.Tensor:
        """``[n]`` keys and their hash ids -> ``[n, K]`` slot rows of this rank's shard."""
        n = keys.shape[0]
        per_hash = self.hash_fn.indices(keys, self.K, self.H).view(n, self.H, self.K)
        slots = per_hash[torch.arange(n, device=keys.device), hash_ids]
        # The K slots of a pair share one block: move them by (local block - block) * L.
        L = self.block_size
        blocks = torch.div(slots[:, :1], L, rounding_mode="floor")
        return slots + (self.assignment.local_index_on(self.rank, blocks) - blocks) * L

    def _count(
        self,
        op: str,
        route: dict[str, Any],
        recv_counts: list[int],
        row_bytes: int,
        answer_bytes: int,
    ) -> None:
        traffic, me = self.traffic[op], self.rank
        sent = route["send_counts"]
        remote_pairs = sum(sent) - sent[me]
        traffic.calls += 1
        traffic.keys += route["n_keys"]
        traffic.pairs += sum(sent)
        traffic.pairs_remote += remote_pairs
        answered_remote = sum(recv_counts) - recv_counts[me]
        traffic.payload_bytes_remote += remote_pairs * row_bytes + answered_remote * answer_bytes
        traffic.payload_bytes_local += sent[me] * (row_bytes + answer_bytes)
        traffic.header_bytes_remote += (self.world_size - 1) * HEADER_COLUMNS * 8

    def reset_traffic(self) -> None:
        """Zero the :class:`Traffic` counters of both operations."""
        self.traffic = {"write": Traffic(), "read": Traffic()}

    # ------------------------------------------------------------------ inspection
    @property
    def nbytes(self) -> int:
        """Bytes of *this rank's* ``memory`` and ``counts``."""
        return (
            self.memory.numel() * self.memory.element_size()
            + self.counts.numel() * self.counts.element_size()
        )

    @torch.no_grad()
    def global_stats(self) -> dict[str, float]:
        """Collective: ``n_items`` (items written so far), ``load_factor`` (N*K*H/D),
        ``nbytes`` and ``nonfinite_slots`` (slots whose sum overflowed the storage dtype; see
        :meth:`BBPMMemoryFloat.nonfinite_slots`) summed over all ranks."""
        totals = torch.tensor(
            [float(self.counts.sum()), float(self.nbytes), float(self.nonfinite_slots())],
            dtype=torch.float64,
            device=self.memory.device,
        )
        dist.all_reduce(totals, group=self.group)
        total_count, nbytes, nonfinite = totals.tolist()
        total_count /= float(self.write_weight)  # in units of a fresh write (see decay)
        return {
            "n_items": total_count / (self.K * self.H),
            "load_factor": total_count / self.D,
            "nbytes": nbytes,
            "nonfinite_slots": int(nonfinite),
        }

    @torch.no_grad()
    def nonfinite_slots(self) -> int:
        """Slots of *this rank's* shard whose sum or count is inf or NaN (local)."""
        return nonfinite_rows(self.memory, self.counts)

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild an empty memory (same dict as BBPMMemoryFloat.config())."""
        return {**memory_config(self), "read_rule": self.read_rule}

    def sharding(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "world_size": self.world_size,
            "assignment": self.assignment.strategy,
        }

    def _check_same_config_on_every_rank(self) -> None:
        mine = {
            **self.config(),
            "assignment": self.assignment.strategy,
            "world_size": self.world_size,
        }
        everyone: list[Any] = [None] * self.world_size
        dist.all_gather_object(everyone, mine, group=self.group)
        for r, theirs in enumerate(everyone):
            if theirs != everyone[0]:
                diff = sorted(k for k in mine if theirs.get(k) != everyone[0].get(k))
                raise ValueError(
                    f"ShardedBBPMMemory settings differ between ranks in {', '.join(diff)}: rank 0 has "
                    f"{ ({k: everyone[0].get(k) for k in diff}) }, rank {r} has { ({k: theirs.get(k) for k in diff}) }; "
                    "build the memory with the same D, d, K, H, hash, dtype, write_scale and assignment on every rank"
                )

    # ------------------------------------------------------------------ checkpoints
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        load_default_write_weight(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def get_extra_state(self) -> dict[str, Any]:
        return {**self.config(), "sharding": self.sharding()}

    def check_extra_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict):
            raise ValueError(
                f"shard config (_extra_state) must be a dict, got {type(state).__name__}"
            )
        mine = self.get_extra_state()
        mismatched = [
            k
            for k in ("D", "d", "K", "H", "dtype", "write_scale", "hash", "sharding")
            if state.get(k) != mine.get(k)
        ]
        if mismatched:
            raise ValueError(
                "shard state_dict does not match this memory in "
                + ", ".join(mismatched)
                + f": state { ({k: state.get(k) for k in mismatched}) } vs memory { ({k: mine.get(k) for k in mismatched}) }; "
                "to change the world size or assignment, save with memory.save(path) and re-shard with "
                "ShardedBBPMMemory.load(path)"
            )

    def save(self, path: str) -> None:
        """Collective: write ``shard_{rank}_of_{W}.pt`` per rank and ``metadata.json`` into the
        directory ``path`` (must be shared by all ranks to re-shard later). See
        :func:`bbpm.distributed.checkpoint.save`."""
        from bbpm.distributed import checkpoint

        checkpoint.save(self, path)

    @classmethod
    def load(
        cls,
        path: str,
        group: dist.ProcessGroup | None = None,
        device: torch.device | str | None = None,
        assignment: str | None = None,
    ) -> ShardedBBPMMemory:
        """Collective: rebuild a memory saved by :meth:`save` with any world size; each rank
        reads only the blocks it now owns. See :func:`bbpm.distributed.checkpoint.load`."""
        from bbpm.distributed import checkpoint

        return checkpoint.load(path, group=group, device=device, assignment=assignment)

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        group: dist.ProcessGroup | None = None,
        device: torch.device | str | None = None,
        assignment: str = "contiguous",
    ) -> ShardedBBPMMemory:
        """Collective: an empty memory from a ``config()`` dict (this class's or BBPMMemoryFloat's)."""
        return memory_from_config(
            cls,
            config,
            device=device,
            assignment=assignment,
            group=group,
            read_rule=config.get("read_rule", "debiased"),
        )

    def extra_repr(self) -> str:
        return (
            f"D={self.D}, d={self.d}, K={self.K}, H={self.H}, dtype={self.memory.dtype}, "
            f"write_scale={self.write_scale!r}, hash_fn={self.hash_fn!r}, rank={self.rank}, "
            f"world_size={self.world_size}, assignment={self.assignment.strategy!r}, "
            f"local_blocks={self.local_blocks.numel()}"
        )
