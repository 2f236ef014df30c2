"""The two parallel classification heads every backbone ends in, and parameter checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from numbers import Integral, Real
from typing import Any

import torch
from torch import nn

__all__ = [
    "MAX_WIDTH",
    "CumulativeLink",
    "DualHead",
    "OrdinalSeverity",
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


_MIN_STEP = 1e-4  # the least gap between thresholds: every class keeps some probability


class CumulativeLink(nn.Module):
    """Ordered class log-probabilities from one score: a cumulative-link (logit) model.

    With ``K`` classes in their order and ``K - 1`` thresholds
    ``theta_1 < ... < theta_{K-1}`` learnt with the network,
    ``P(y <= k) = sigmoid(theta_k - score)``: a higher score moves the probability
    towards the higher classes, every class keeps a band of scores where it is the
    most likely one, and the probabilities of the classes sum to one (the
    proportional-odds model; CORAL is the same model trained on its binary terms).
    The thresholds are kept ordered by learning the first one and softplus steps.

    Parameters
    ----------
    n_classes : int
        Number of ordered classes.

    Returns
    -------
    tensor of shape (batch, n_classes)
        From :meth:`forward`: the log-probabilities of the classes, in their order;
        their softmax is the probabilities themselves.
    """

    def __init__(self, n_classes: int):
        super().__init__()
        check_width("n_classes", n_classes)
        gaps = max(n_classes - 1, 1)
        # Thresholds start at the logistic quantiles of equal class shares: a score of 0
        # predicts every class alike.
        quantiles = torch.logit(torch.arange(1, gaps + 1, dtype=torch.float32) / n_classes)
        self.first = nn.Parameter(quantiles[:1].clone())
        steps = quantiles.diff() - _MIN_STEP
        self.steps = nn.Parameter(torch.log(torch.expm1(steps)))  # softplus inverse
        self.n_classes = n_classes

    def thresholds(self) -> torch.Tensor:
        """The ``K - 1`` ordered thresholds."""
        steps = nn.functional.softplus(self.steps) + _MIN_STEP
        return torch.cat([self.first, self.first + steps.cumsum(0)])

    def forward(self, score: torch.Tensor) -> torch.Tensor:
        if self.n_classes == 1:
            return score.new_zeros(len(score), 1)
        z = self.thresholds()[None, :] - score.reshape(-1, 1).float()
        log_below = nn.functional.logsigmoid(z)  # log P(y <= k), k = 1 .. K-1
        log_above = nn.functional.logsigmoid(-z)  # log P(y > k)
        # P(y = k) = P(y <= k) - P(y <= k-1), in log space without cancellation:
        # log P(y <= k) + log(1 - exp(log P(y <= k-1) - log P(y <= k))).
        # The clamp keeps the gradient finite where both are 0 in float32 (a far score).
        gap = -torch.expm1(log_below[:, :-1] - log_below[:, 1:])
        middle = log_below[:, 1:] + torch.log(gap.clamp_min(1e-30))
        return torch.cat([log_below[:, :1], middle, log_above[:, -1:]], dim=1)


class OrdinalSeverity(nn.Module):
    """A dual-head backbone whose severity head is a :class:`CumulativeLink`.

    Parameters
    ----------
    backbone : torch.nn.Module
        Built with one severity output: its forward gives ``(condition_logits,
        severity_score)``, the score of shape ``(batch, 1)``.
    order : sequence of int
        The severity classes' columns (as the classifier's ``classes_[1]`` sorts them)
        from the lowest class to the highest: ``order[k]`` is the column of the
        ``k``-th class.

    Returns
    -------
    tuple of tensors
        ``(condition_logits, severity_log_probabilities)`` from :meth:`forward`, the
        second in the columns' order.
    """

    def __init__(self, backbone: nn.Module, order):
        super().__init__()
        order = [int(k) for k in order]
        if sorted(order) != list(range(len(order))):
            raise ValueError(f"order must be a permutation of 0..{len(order) - 1}, got {order}")
        self.backbone = backbone
        self.link = CumulativeLink(len(order))
        # rank of each column: the link's output indexed by it gives the columns' order
        self.register_buffer("ranks", torch.argsort(torch.tensor(order)), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        condition, score = self.backbone(x)
        if score.shape[-1] != 1:
            raise ValueError(
                f"an ordinal severity head needs one severity score per image; the backbone "
                f"gave {score.shape[-1]}"
            )
        return condition, self.link(score)[:, self.ranks]
