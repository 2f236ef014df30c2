"""The two parallel classification heads every backbone ends in, and parameter checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from numbers import Integral, Real
from typing import Any

import torch
from torch import nn

__all__ = [
    "MAX_WIDTH",
    "DualHead",
    "check_dropout",
    "check_params",
    "check_width",
    "check_widths",
    "mlp_head",
]

MAX_WIDTH = 4096
"""The most filters or hidden units one layer of a built-in backbone may ask for.

VGG-16's widest layer has 4,096 units; the bound keeps a mistyped or tampered parameter
(``module__hidden=10**9`` in a model file) from allocating gigabytes."""


def check_width(name: str, value: Any, *, optional: bool = False) -> None:
    """Raise ValueError unless ``value`` is an int in ``[1, MAX_WIDTH]`` (or None if optional)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, Integral) or not 1 <= value <= MAX_WIDTH:
        allowed = "None or an int" if optional else "an int"
        raise ValueError(f"{name} must be {allowed} in [1, {MAX_WIDTH}], got {value!r}")


def check_widths(name: str, value: Any, *, length: int) -> None:
    """Raise ValueError unless ``value`` is ``length`` ints, each in ``[1, MAX_WIDTH]``."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != length:
        raise ValueError(f"{name} must be {length} ints in [1, {MAX_WIDTH}], got {value!r}")
    for k, width in enumerate(value):
        check_width(f"{name}[{k}]", width)


def check_dropout(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a probability in ``[0, 1]``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def check_params(
    checks: Mapping[str, Callable[[str, Any], None]], params: Mapping[str, Any], prefix: str = ""
) -> None:
    """Run ``checks[name](prefix + name, value)`` for every parameter that has a check."""
    for name, value in params.items():
        if name in checks:
            checks[name](prefix + name, value)


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
        check_width("hidden", hidden, optional=True)
        check_dropout("dropout", dropout)
        self.condition = mlp_head(in_features, n_conditions, hidden, dropout)
        self.severity = mlp_head(in_features, n_severities, hidden, dropout)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.condition(features), self.severity(features)
