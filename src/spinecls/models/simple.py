"""The study's model 1: three convolution blocks, two dense layers, two heads."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

import torch
from torch import nn

from .heads import DualHead, check_dropout, check_params, check_width, check_widths

__all__ = ["SimpleCNN"]


class SimpleCNN(nn.Module):
    """Three conv blocks (conv 3x3, batch norm, ReLU, 2x2 max-pool), two dense layers.

    Parameters
    ----------
    in_channels : int
        Input channels (slices, plus a marker channel in marker mode).
    n_conditions, n_severities : int
        Classes of the two heads.
    widths : tuple of three ints, default=(32, 64, 128)
        Filters of the three conv blocks.
    hidden : int, default=128
        Width of the two fully connected layers.
    dropout : float, default=0.3
        Dropout after each fully connected layer.

    Notes
    -----
    An adaptive average pool to 4 x 4 before the dense layers makes the network
    accept any input of at least 8 x 8 pixels. Widths are at most
    :data:`~spinecls.models.heads.MAX_WIDTH`.
    """

    PARAM_CHECKS: ClassVar[dict] = {
        "widths": partial(check_widths, length=3),
        "hidden": check_width,
        "dropout": check_dropout,
    }
    """Checks of the keyword parameters, run before anything is allocated."""

    def __init__(
        self,
        in_channels: int,
        n_conditions: int,
        n_severities: int,
        widths: tuple[int, int, int] = (32, 64, 128),
        hidden: int = 128,
        dropout: float = 0.3,
    ):
        super().__init__()
        check_params(self.PARAM_CHECKS, {"widths": widths, "hidden": hidden, "dropout": dropout})
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * 16, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.heads = DualHead(hidden, n_conditions, n_severities, hidden=None, dropout=0.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.dense(self.pool(self.features(x))))
