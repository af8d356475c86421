"""Network cost of a sharded BBPM memory: bytes per item and a cluster projection.

Every item (key) becomes H (key, hash) pairs, each sent to the owner of its block. Blocks
are uniform over the table, so a pair is remote (owned by another rank) with probability
``(W - 1) / W`` for W equal shards. Per pair on the wire (the format of
:mod:`bbpm.distributed.sharded_memory`):

* write: key (8 B) + hash id (1 B) + value (``d * value_bytes``) to the owner;
* read: key (8 B) + hash id (1 B) to the owner, and ``d * answer_bytes`` back.

So, with ``f = (W - 1) / W``::

    write bytes / item = H * f * (9 + d * value_bytes)
    read  bytes / item = H * f * (9 + d * answer_bytes)

plus a per-call header of ``24 * (W - 1)`` bytes per rank (pair counts, error flag,
operation), amortised over the rank's batch. Bytes are those handed to the collectives;
the transport adds its own framing (measured separately in bench04).

:func:`project` turns bytes into time on a cluster under stated assumptions (each rank
has its own full-duplex link of ``bandwidth`` bytes/s into a non-blocking network; an
all-to-all over W ranks pays ``latency * (W - 1)``; no overlap of compute and
communication; the per-item compute stays what one rank measured alone). It is a model,
not a measurement.
"""

from __future__ import annotations

from bbpm.distributed.sharded_memory import HASH_ID_BYTES, HEADER_COLUMNS, KEY_BYTES

#: Collectives per call: header + payload (write); header + request + answer (read).
COLLECTIVES_PER_CALL = {"write": 2, "read": 3}


def _check_op(op: str) -> None:
    if op not in COLLECTIVES_PER_CALL:
        raise ValueError(f"op must be 'write' or 'read', got {op!r}")


def pair_bytes(op: str, d: int, value_bytes: int = 4, answer_bytes: int = 4) -> int:
    """Bytes one remote (key, hash) pair moves: request row (+ value) or request + answer."""
    _check_op(op)
    request = KEY_BYTES + HASH_ID_BYTES
    return request + d * (value_bytes if op == "write" else answer_bytes)


def remote_fraction(world_size: int) -> float:
    """Probability that a pair's block lives on another rank, ``(W - 1) / W``."""
    return (world_size - 1) / world_size


def header_bytes_per_call(world_size: int) -> int:
    """Header bytes one rank sends to the other ranks per write or read call."""
    return HEADER_COLUMNS * 8 * (world_size - 1)


def payload_bytes_per_item(
    op: str,
    d: int,
    H: int,
    world_size: int,
    value_bytes: int = 4,
    answer_bytes: int = 4,
    fraction_remote: float | None = None,
) -> float:
    """Expected payload bytes on the network per item: ``H * f * pair_bytes``, with
    ``f = (W - 1) / W`` unless ``fraction_remote`` (e.g. the measured one) is given."""
    f = remote_fraction(world_size) if fraction_remote is None else fraction_remote
    return H * f * pair_bytes(op, d, value_bytes, answer_bytes)


def bytes_per_item(
    op: str,
    d: int,
    H: int,
    world_size: int,
    batch_per_rank: int,
    value_bytes: int = 4,
    answer_bytes: int = 4,
) -> float:
    """Payload plus the per-call header spread over a batch of ``batch_per_rank`` items."""
    header = header_bytes_per_call(world_size) / batch_per_rank
    return payload_bytes_per_item(op, d, H, world_size, value_bytes, answer_bytes) + header


def project(
    op: str,
    d: int,
    H: int,
    world_size: int,
    batch_per_rank: int,
    bandwidth_bytes_per_s: float,
    latency_s: float,
    compute_s_per_item: float,
    value_bytes: int = 4,
    answer_bytes: int = 4,
) -> dict[str, float]:
    """Projected seconds per call and aggregate items/s for W ranks (see module doc).

    ``compute_s_per_item``: one rank's own time per item (hashing, packing, kernels),
    e.g. measured with W = 1. Returns ``seconds_per_call``, ``network_seconds``,
    ``latency_seconds``, ``compute_seconds`` and ``items_per_s`` (all ranks together)."""
    _check_op(op)
    sent = batch_per_rank * bytes_per_item(
        op, d, H, world_size, batch_per_rank, value_bytes, answer_bytes
    )
    latency = COLLECTIVES_PER_CALL[op] * latency_s * (world_size - 1)
    transfer = sent / bandwidth_bytes_per_s
    compute = batch_per_rank * compute_s_per_item
    seconds = latency + transfer + compute
    return {
        "seconds_per_call": seconds,
        "network_seconds": transfer,
        "latency_seconds": latency,
        "compute_seconds": compute,
        "bytes_sent_per_rank": sent,
        "items_per_s": world_size * batch_per_rank / seconds,
    }
