"""Read rules: how a float BBPM memory combines the M = K*H slots of a key into one value.

Every rule is a weighted sum of the raw slot rows, ``r = (1/s) sum_j w_j memory[idx_j]``
(``s`` the write scale), with weights that depend only on the counts and the slot ids, so
each read is linear in ``memory`` (differentiable w.r.t. it) and the write scale cancels.
With ``c_j`` the count of slot ``idx_j`` and ``m_j`` the number of times the key's own row
holds that slot (``m_j > 1`` when two of its hashes meet, possible for H > 1)::

    "debiased"       w_j = 1 / ((c_j + eps) M)                     (the spec's read)
    "mean"           w_j = 1 / sum_k m_k                           (raw slots, unity gain)
    "inverse_noise"  n_j = max(c_j - m_j, 0)   (writes of other items in slot j)
                     some n_j = 0:  w_j = [n_j = 0] / sum_k m_k [n_k = 0]   (clean slots only)
                     else:          w_j = (1/n_j) / sum_k (m_k / n_k)

Assumption behind ``"inverse_noise"``: each key is written once. Slot j then holds
``m_j s v`` plus ``n_j`` other items, so ``memory[idx_j] / (m_j s)`` estimates ``v`` with
crosstalk variance proportional to ``n_j / m_j^2``, and the weights above are the
minimum-variance unbiased combination (inverse-variance weighting); a clean slot
(``n_j = 0``) holds ``v`` exactly, and the read then returns it exactly. ``"mean"`` has the
same unit gain but weights every slot alike; ``"debiased"`` divides each slot by its count,
which shrinks the signal to ``mean_j m_j / c_j`` under load.

Repeated writes. A key written ``r`` times (values ``v_1 .. v_r``) holds ``m_j s sum_i v_i``
in each slot and ``c_j = r m_j + n_j``. ``"inverse_noise"`` and ``"mean"`` then return the
*sum* ``v_1 + ... + v_r`` (plus crosstalk; ``"inverse_noise"`` sees ``(r-1) m_j`` extra
writes in every slot, so it no longer finds clean slots and weights by ``1/(n_j + (r-1)
m_j)``). ``"debiased"`` returns the *mean* of the ``v_i`` at low load (each clean slot
divided by its count ``r m_j``). Keys never written: ``"inverse_noise"`` treats an empty
slot as clean and returns its zero row, and a slot holding exactly one other item as clean
too (it returns that item).

Decay. :func:`bbpm.memory.decay` raises the memory's ``write_weight`` instead of shrinking
the table, so later writes are stored with that weight (values and counts). The memory
reads ``"mean"`` and ``"inverse_noise"`` in units of a fresh write: counts divided by the
weight, result divided by it. A key written after the last decay reads as without decay
(clean slots exact); a key written before reads ``gamma**k`` times its value after ``k``
decays of factor ``gamma``, and its slots' counts are fractions, so the clean-slot test
(``n_j < 0.5``) can take a slot shared by older items for clean. The rule's assumption is
then "each key written once, after the last decay"; ``"debiased"`` is exactly unchanged
by decay alone.

:func:`solve_known_keys` goes beyond per-key rules: given the set of written keys it decodes
all of them at once by least squares over the slot incidence.
"""

from __future__ import annotations

import torch

from bbpm.memory.base import EPS

#: The read rules a float BBPM memory offers (the first is the default).
READ_RULES = ("debiased", "mean", "inverse_noise")


def check_read_rule(rule: object) -> str:
    """``rule`` when it is one of :data:`READ_RULES`, else ``ValueError`` naming them."""
    if not isinstance(rule, str) or rule not in READ_RULES:
        raise ValueError(f"read_rule must be one of {READ_RULES}, got {rule!r}")
    return rule


def slot_multiplicity(idx: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[B, M]``: how many entries of row b of ``idx`` equal ``idx[b, j]`` (1 when the row's
    slots are distinct), in ``dtype``. One sort per row, no ``[B, M, M]`` tensor."""
    B, M = idx.shape
    if M == 1 or B == 0:
        return torch.ones(idx.shape, dtype=dtype, device=idx.device)
    ordered, order = idx.sort(dim=1)
    starts = torch.ones(idx.shape, dtype=torch.bool, device=idx.device)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    if bool(starts.all()):
        return torch.ones(idx.shape, dtype=dtype, device=idx.device)
    run = starts.long().cumsum(dim=1) - 1  # run number of each sorted entry
    run_length = torch.zeros(idx.shape, dtype=dtype, device=idx.device)
    run_length.scatter_add_(1, run, torch.ones(idx.shape, dtype=dtype, device=idx.device))
    mult = torch.empty(idx.shape, dtype=dtype, device=idx.device)
    mult.scatter_(1, order, run_length.gather(1, run))
    return mult


def rule_terms(
    counts: torch.Tensor,
    idx: torch.Tensor,
    rule: str,
    mult: torch.Tensor,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised weights ``(g, h)``, each ``[B, M]`` in ``dtype``, for ``"mean"`` and
    ``"inverse_noise"``: the rule's weights are ``g / sum(m g)`` where ``sum(m g) > 0``, else
    ``h / sum(m h)`` (sums over the key's entries, ``m`` = :func:`slot_multiplicity`).
    Sums over any partition of the entries add up, which the sharded memory uses."""
    if rule == "mean":
        g = torch.ones(idx.shape, dtype=dtype, device=idx.device)
        return g, g
    if rule != "inverse_noise":
        raise ValueError(f"rule_terms covers 'mean' and 'inverse_noise', got {rule!r}")
    c = counts[:, 0].index_select(0, idx.reshape(-1)).view(idx.shape).to(dtype)
    others = (c - mult.to(dtype)).clamp_min(0.0)
    clean = others < 0.5  # counts hold integers; 0.5 guards against rounding
    g = clean.to(dtype)
    h = torch.where(clean, torch.zeros_like(others), 1.0 / others.clamp_min(1.0))
    return g, h


def normalise(
    g: torch.Tensor, h: torch.Tensor, mult: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights [B, M], uses_g [B] bool)`` from :func:`rule_terms`' ``g, h``."""
    mult = mult.to(g.dtype)
    zg = (mult * g).sum(dim=1, keepdim=True)
    zh = (mult * h).sum(dim=1, keepdim=True)
    uses_g = zg > 0
    weights = torch.where(uses_g, g / zg.clamp_min(1e-30), h / zh.clamp_min(1e-30))
    return weights, uses_g[:, 0]


def slot_weights(
    counts: torch.Tensor,
    idx: torch.Tensor,
    rule: str = "debiased",
    eps: float = EPS,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``[B, M]`` weights of ``rule`` on the raw slot rows ``memory[idx]`` (see the module
    docstring), in ``dtype`` (default: the counts' dtype). ``"debiased"`` gives exactly
    :func:`bbpm.memory.kernels.torch_ops.slot_weights`."""
    from bbpm.memory.kernels import torch_ops

    rule = check_read_rule(rule)
    dtype = dtype or counts.dtype
    if rule == "debiased":
        return torch_ops.slot_weights(counts, idx, eps, dtype=dtype)
    work = torch.promote_types(counts.dtype, torch.float32)
    mult = slot_multiplicity(idx, work)
    if rule == "mean":
        if bool((mult == 1).all()):
            return torch.full(idx.shape, 1.0 / idx.shape[1], dtype=dtype, device=idx.device)
        return (1.0 / mult.sum(dim=1, keepdim=True)).expand(idx.shape).to(dtype)
    g, h = rule_terms(counts, idx, rule, mult, work)
    return normalise(g, h, mult)[0].to(dtype)


def read_reference(
    memory: torch.Tensor,
    counts: torch.Tensor,
    idx: torch.Tensor,
    rule: str = "debiased",
    eps: float = EPS,
) -> torch.Tensor:
    """Canonical read under ``rule``, ``[B, d]``: gather ``[B, M, d]`` slot rows and sum them
    with :func:`slot_weights` (``"debiased"``: the canonical count-debiased mean itself).
    Returned in ``promote_types(memory.dtype, counts.dtype)``; divide by the write scale."""
    from bbpm.memory.kernels import torch_ops

    rule = check_read_rule(rule)
    if rule == "debiased":
        return torch_ops.read_gather_mean(memory, counts, idx, eps)
    out_dtype = torch_ops.read_dtype(memory, counts)
    weights = slot_weights(counts, idx, rule, eps, dtype=out_dtype)
    return (memory[idx].to(out_dtype) * weights[..., None]).sum(dim=1)


def solve_known_keys(
    memory: torch.nn.Module, keys: torch.Tensor, iterations: int = 100, tol: float = 1e-6
) -> torch.Tensor:
    """Values of *all* ``keys`` at once, ``[N, d]``, when the set of written keys is known
    (each written once): the least-squares solution of ``A V = memory / s`` by conjugate
    gradients on the normal equations (CGLS, one run per value column), where ``A [D, N]``
    is the slot incidence of the keys (``A[i, x]`` = times key x hit slot i). Every
    iteration is one write-shaped ``index_add`` and one read-shaped gather over the N keys.

    Where ``A`` has full column rank (the keys' slots are not too crowded) this returns the
    written values exactly (up to ``tol``), including keys with no clean slot; the per-key
    rules cannot, since they ignore what the other keys' slots reveal. It needs the key set
    (``8 N`` more bytes as int64 keys) and costs ``iterations`` passes over all N keys.
    ``memory``: a :class:`~bbpm.memory.BBPMMemoryFloat`; ``keys``: the distinct written keys.
    Stops when every column's normal-equation residual falls below ``tol`` times its start."""
    idx = memory.slots(keys)
    flat = idx.reshape(-1)
    M = idx.shape[1]
    table = memory.memory.detach()
    work = torch.promote_types(table.dtype, torch.float32)
    target = table.to(work) / (memory.scale * float(memory.write_weight))  # fresh-write units

    def forward(values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(table.shape, dtype=work, device=table.device)
        return out.index_add_(0, flat, values.repeat_interleave(M, dim=0))

    def adjoint(slots: torch.Tensor) -> torch.Tensor:
        return slots.index_select(0, flat).view(idx.shape[0], M, -1).sum(dim=1)

    x = torch.zeros(idx.shape[0], table.shape[1], dtype=work, device=table.device)
    residual = target.clone()
    s = adjoint(residual)
    p = s.clone()
    gamma = (s * s).sum(dim=0)
    start = gamma.clone()
    for _ in range(iterations):
        if bool((gamma <= (tol**2) * start).all()):
            break
        q = forward(p)
        alpha = gamma / (q * q).sum(dim=0).clamp_min(1e-300)
        x += alpha * p
        residual -= alpha * q
        s = adjoint(residual)
        new_gamma = (s * s).sum(dim=0)
        p = s + (new_gamma / gamma.clamp_min(1e-300)) * p
        gamma = new_gamma
    return x


__all__ = [
    "READ_RULES",
    "solve_known_keys",
    "check_read_rule",
    "normalise",
    "read_reference",
    "rule_terms",
    "slot_multiplicity",
    "slot_weights",
]
