"""Gated residual fusion of a memory read-out into a hidden state.

    out = h + sigmoid(gate([h, m])) * proj(m)

``h: [..., d_model]`` is the model's hidden state, ``m: [..., d_mem]`` the vector read from
a BBPM memory. The gate decides, per hidden unit, how much of the projected read-out enters
the residual stream. Everything is differentiable with respect to ``m`` (and through
:meth:`BBPMMemoryFloat.read` with respect to the values written, when they were written with
``requires_grad``); the memory *addresses* are discrete and carry no gradient.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GatedResidualFusion"]


class GatedResidualFusion(nn.Module):
    """``h + sigmoid(gate([h, m])) * proj(m)``.

    Args:
        d_model: hidden size of ``h``.
        d_mem: size of the memory read-out ``m``.
        gate_bias: initial bias of the gate; negative values start the layer close to the
            identity (``sigmoid(-4) = 0.018``), so inserting it into a pretrained model changes
            little until it is trained.
        per_unit_gate: one gate per hidden unit (``d_model`` outputs) or one scalar gate.
    """

    def __init__(
        self, d_model: int, d_mem: int, gate_bias: float = -4.0, per_unit_gate: bool = True
    ) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("d_mem", d_mem)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.d_model = d_model
        self.d_mem = d_mem
        self.proj = nn.Linear(d_mem, d_model)
        self.gate = nn.Linear(d_model + d_mem, d_model if per_unit_gate else 1)
        nn.init.constant_(self.gate.bias, float(gate_bias))

    def gate_values(self, h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """``sigmoid(gate([h, m]))``: ``[..., d_model]`` (or ``[..., 1]``) in (0, 1)."""
        self._check(h, m)
        return torch.sigmoid(self.gate(torch.cat([h, m.to(h.dtype)], dim=-1)))

    def forward(self, h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """``h: [..., d_model]``, ``m: [..., d_mem]`` (same leading shape) -> ``[..., d_model]``."""
        return h + self.gate_values(h, m) * self.proj(m.to(h.dtype))

    def _check(self, h: torch.Tensor, m: torch.Tensor) -> None:
        if h.shape[-1] != self.d_model:
            raise ValueError(f"h must end in d_model={self.d_model}, got shape {tuple(h.shape)}")
        if m.shape[-1] != self.d_mem:
            raise ValueError(f"m must end in d_mem={self.d_mem}, got shape {tuple(m.shape)}")
        if h.shape[:-1] != m.shape[:-1]:
            raise ValueError(
                f"h and m must share leading dims, got {tuple(h.shape)} and {tuple(m.shape)}"
            )

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, d_mem={self.d_mem}"
