"""Backbones: one file per family, and a registry that makes a new backbone one entry.

Nothing in this package knows about DICOM files or data frames: a backbone maps a
float tensor ``(batch, channels, height, width)`` to ``(condition_logits,
severity_logits)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

from torch import nn

from .heads import DualHead
from .inception import InceptionCNN, InceptionModule
from .simple import SimpleCNN
from .torchvision import ARCHITECTURES, TorchvisionBackbone, adapt_input_conv, load_pretrained

__all__ = [
    "BACKBONES",
    "DualHead",
    "InceptionCNN",
    "InceptionModule",
    "SimpleCNN",
    "TorchvisionBackbone",
    "adapt_input_conv",
    "build_backbone",
    "load_pretrained",
    "register_backbone",
]

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "simple": SimpleCNN,
    "inception": InceptionCNN,
    **{arch: partial(TorchvisionBackbone, arch) for arch in ARCHITECTURES},
}
"""Backbone builders by name: ``builder(in_channels, n_conditions, n_severities, **params)``."""


def register_backbone(name: str, builder: Callable[..., nn.Module]) -> None:
    """Make ``builder`` available as ``DualHeadClassifier(backbone=name)``.

    Parameters
    ----------
    name : str
    builder : callable
        ``builder(in_channels, n_conditions, n_severities, **params)`` returning a
        module whose forward gives ``(condition_logits, severity_logits)``. A
        ``weights`` parameter in its signature receives the classifier's ``weights``.
    """
    if not callable(builder):
        raise TypeError(f"builder must be callable, got {type(builder).__name__}")
    BACKBONES[name] = builder


def takes_weights(name: str) -> bool:
    """Whether the backbone's builder accepts pretrained ``weights``."""
    return "weights" in inspect.signature(BACKBONES[name]).parameters


def build_backbone(
    name: str, in_channels: int, n_conditions: int, n_severities: int, **params
) -> nn.Module:
    """Build a registered backbone.

    Parameters
    ----------
    name : str
        A key of :data:`BACKBONES`.
    in_channels, n_conditions, n_severities : int
    **params
        Passed to the builder (e.g. ``hidden``, ``dropout``, ``weights``).

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> net = build_backbone("simple", 1, 5, 3)
    >>> [t.shape for t in net(torch.zeros(2, 1, 32, 32))]
    [torch.Size([2, 5]), torch.Size([2, 3])]
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {name!r}")
    return BACKBONES[name](in_channels, n_conditions, n_severities, **params)
