"""The study's model 2: a conv stem, one Inception module, dense layers, two heads."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

import torch
from torch import nn

from .heads import DualHead, check_dropout, check_params, check_width, check_widths

__all__ = ["InceptionCNN", "InceptionModule"]


def _conv(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class InceptionModule(nn.Module):
    """GoogLeNet's Inception module: four parallel branches, concatenated.

    Branches: 1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 max-pool then 1x1.

    Parameters
    ----------
    in_channels : int
    branch : (int, int, int, int, int, int)
        Filters of the 1x1 branch, the 3x3 branch's reduction and output, the 5x5
        branch's reduction and output, and the pool branch's projection.
    """

    def __init__(self, in_channels: int, branch=(32, 48, 64, 8, 16, 16)):
        super().__init__()
        b1, r3, b3, r5, b5, bp = branch
        self.branch1 = _conv(in_channels, b1, 1)
        self.branch3 = nn.Sequential(_conv(in_channels, r3, 1), _conv(r3, b3, 3))
        self.branch5 = nn.Sequential(_conv(in_channels, r5, 1), _conv(r5, b5, 5))
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), _conv(in_channels, bp, 1)
        )
        self.out_channels = b1 + b3 + b5 + bp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1
        )


class InceptionCNN(nn.Module):
    """Two stem convolutions, an Inception module, dense layers and two heads.

    Parameters
    ----------
    in_channels : int
        Input channels.
    n_conditions, n_severities : int
        Classes of the two heads.
    stem : (int, int), default=(32, 64)
        Filters of the two stem convolutions (each followed by a 2x2 max-pool).
    branch : tuple of six ints, default=(32, 48, 64, 8, 16, 16)
        The Inception module's filters (see :class:`InceptionModule`).
    hidden : int, default=128
        Width of the dense layer and of each head's hidden layer.
    dropout : float, default=0.3

    Notes
    -----
    Filter counts and ``hidden`` are at most :data:`~spinecls.models.heads.MAX_WIDTH`.
    """

    PARAM_CHECKS: ClassVar[dict] = {
        "stem": partial(check_widths, length=2),
        "branch": partial(check_widths, length=6),
        "hidden": check_width,
        "dropout": check_dropout,
    }
    """Checks of the keyword parameters, run before anything is allocated."""

    def __init__(
        self,
        in_channels: int,
        n_conditions: int,
        n_severities: int,
        stem: tuple[int, int] = (32, 64),
        branch: tuple[int, ...] = (32, 48, 64, 8, 16, 16),
        hidden: int = 128,
        dropout: float = 0.3,
    ):
        super().__init__()
        check_params(
            self.PARAM_CHECKS,
            {"stem": stem, "branch": branch, "hidden": hidden, "dropout": dropout},
        )
        self.stem = nn.Sequential(
            _conv(in_channels, stem[0], 3),
            nn.MaxPool2d(2),
            _conv(stem[0], stem[1], 3),
            nn.MaxPool2d(2),
        )
        self.inception = InceptionModule(stem[1], branch)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.inception.out_channels * 4, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.heads = DualHead(hidden, n_conditions, n_severities, hidden=hidden, dropout=dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.dense(self.pool(self.inception(self.stem(x)))))
