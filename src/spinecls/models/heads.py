"""The two parallel classification heads every backbone ends in."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DualHead", "mlp_head"]


def mlp_head(in_features: int, n_classes: int, hidden: int | None, dropout: float) -> nn.Module:
    """A classification head: optional hidden layer (ReLU, dropout), then logits."""
    if not hidden:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, n_classes))
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_classes),
    )


class DualHead(nn.Module):
    """Two identical, parallel heads on one feature vector: condition and severity.

    Parameters
    ----------
    in_features : int
        Length of the feature vector.
    n_conditions, n_severities : int
        Classes of each head.
    hidden : int or None, default=256
        Width of each head's hidden layer (None: a linear head).
    dropout : float, default=0.3
        Dropout before each head's output layer.

    Returns
    -------
    tuple of tensors
        ``(condition_logits, severity_logits)`` from :meth:`forward`.
    """

    def __init__(
        self,
        in_features: int,
        n_conditions: int,
        n_severities: int,
        hidden: int | None = 256,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.condition = mlp_head(in_features, n_conditions, hidden, dropout)
        self.severity = mlp_head(in_features, n_severities, hidden, dropout)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.condition(features), self.severity(features)
