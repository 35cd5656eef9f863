"""Squeeze-and-excitation re-weighting of a tower's field embeddings (FiBiNET, Huang et al. 2019)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SENet(nn.Module):
    """Squeeze each field to its mean, excite through a bottleneck MLP, re-weight each field.

    The gate is ``2 * sigmoid(.)`` so that a freshly initialised layer is close to the identity
    (gate ~1) rather than halving every field.
    """

    def __init__(self, num_fields: int, reduction: int = 2) -> None:
        super().__init__()
        if num_fields <= 0:
            raise ValueError(f"SENet: num_fields must be > 0, got {num_fields}")
        hidden = max(1, num_fields // reduction)
        self.squeeze_to_hidden = nn.Linear(num_fields, hidden)
        self.hidden_to_gate = nn.Linear(hidden, num_fields)

    def forward(self, fields: list[Tensor]) -> list[Tensor]:
        """fields: F tensors [B, d_f] (dims may differ) -> the same fields, re-weighted."""
        z = torch.stack([f.mean(dim=1) for f in fields], dim=1)  # [B, F]
        gate = 2.0 * torch.sigmoid(self.hidden_to_gate(torch.relu(self.squeeze_to_hidden(z))))  # [B, F]
        out: list[Tensor] = []
        for i, f in enumerate(fields):
            out.append(f * gate[:, i : i + 1])
        return out
