"""torchvision backbones (VGG-16, the study's model 3, and the next steps it named).

Each architecture is one row of :data:`ARCHITECTURES`: how to take its convolutional
feature extractor, how wide the pooled features are, and where its first convolution
sits. The feature extractor is followed by global average pooling and two identical,
parallel heads (:class:`~spinecls.models.heads.DualHead`) instead of torchvision's
classifier.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from .heads import DualHead

__all__ = ["ARCHITECTURES", "TorchvisionBackbone", "adapt_input_conv", "load_pretrained"]


@dataclass(frozen=True)
class Architecture:
    features: Callable[[nn.Module], nn.Module]
    out_features: int
    first_conv: str


ARCHITECTURES: dict[str, Architecture] = {
    "vgg16": Architecture(lambda m: m.features, 512, "0"),
    "resnet18": Architecture(lambda m: nn.Sequential(*list(m.children())[:-2]), 512, "0"),
    "efficientnet_b0": Architecture(lambda m: m.features, 1280, "0.0"),
    "densenet121": Architecture(
        lambda m: nn.Sequential(m.features, nn.ReLU(inplace=True)), 1024, "0.conv0"
    ),
}
"""torchvision architectures: feature extractor, pooled width, first conv (in features)."""


def adapt_input_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of a pretrained RGB convolution that takes ``in_channels`` channels.

    One channel: the kernels summed over the RGB axis (equal to feeding the grey
    image three times, at a third of the cost). Other counts: the RGB kernels
    repeated to cover the channels and scaled by ``3 / in_channels``, as timm's
    ``adapt_input_conv`` does.

    Parameters
    ----------
    conv : torch.nn.Conv2d
        The 3-channel convolution.
    in_channels : int
        Channels of the new input.

    Returns
    -------
    torch.nn.Conv2d
    """
    if in_channels == conv.in_channels:
        return conv
    weight = conv.weight.detach()
    if in_channels == 1:
        new_weight = weight.sum(dim=1, keepdim=True)
    else:
        repeats = -(-in_channels // weight.shape[1])
        new_weight = weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (
            weight.shape[1] / in_channels
        )
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(new_weight)
        if conv.bias is not None:
            new.bias.copy_(conv.bias.detach())
    return new


def load_pretrained(arch: str, weights: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of pretrained weights, without any download.

    Parameters
    ----------
    arch : str
        torchvision architecture name, e.g. ``"vgg16"``.
    weights : str or path-like
        A local state dict file (loaded with ``weights_only=True``), or the name of a
        member of torchvision's weights enum (``"IMAGENET1K_V1"``, ``"DEFAULT"``),
        read from torchvision's cache (``$TORCH_HOME/hub/checkpoints``).

    Raises
    ------
    FileNotFoundError
        If the file is missing, or the enum's file is not in the cache: the message
        says which file to place where.
    ValueError
        If ``weights`` is neither a file nor a weights name of ``arch``.
    """
    enum = torchvision.models.get_model_weights(arch)
    name = str(weights)
    if name in enum.__members__:
        member = enum[name]
        filename = member.url.rsplit("/", 1)[-1]
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        path = cache / filename
        if not path.is_file():
            raise FileNotFoundError(
                f"{arch} weights {enum.__name__}.{member.name} are not in torchvision's cache "
                f"and nothing is downloaded at run time: place {filename} (from {member.url}) "
                f"at {path}, or pass weights='/path/to/state_dict.pth'"
            )
    else:
        path = Path(weights)
        if not path.is_file():
            if path.suffix or os.sep in name:
                raise FileNotFoundError(f"pretrained weights file not found: {path}")
            raise ValueError(
                f"weights={name!r} is neither a file nor one of {arch}'s weights "
                f"{list(enum.__members__)}"
            )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def _submodule(root: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    *parents, leaf = dotted.split(".")
    for part in parents:
        root = root[int(part)] if part.isdigit() else getattr(root, part)
    return root, leaf


class TorchvisionBackbone(nn.Module):
    """A torchvision feature extractor, global average pooling and two parallel heads.

    Parameters
    ----------
    arch : str
        A key of :data:`ARCHITECTURES` (``"vgg16"``, ``"resnet18"``,
        ``"efficientnet_b0"``, ``"densenet121"``).
    in_channels : int
        Input channels; the first convolution is adapted (see :func:`adapt_input_conv`).
    n_conditions, n_severities : int
        Classes of the two heads.
    weights : None, str or path-like, default=None
        None (random initialisation), a local state dict file, or a torchvision
        weights name such as ``"IMAGENET1K_V1"`` (see :func:`load_pretrained`).
        Pretrained weights are loaded first, then the classifier is replaced.
    freeze_features : bool, default=False
        Keep the feature extractor's weights fixed (transfer learning).
    hidden : int, default=256
        Width of each head's hidden layer.
    dropout : float, default=0.3
    """

    def __init__(
        self,
        arch: str,
        in_channels: int,
        n_conditions: int,
        n_severities: int,
        weights=None,
        freeze_features: bool = False,
        hidden: int = 256,
        dropout: float = 0.3,
    ):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {list(ARCHITECTURES)}, got {arch!r}")
        spec = ARCHITECTURES[arch]
        model = getattr(torchvision.models, arch)(weights=None)
        if weights is not None:
            model.load_state_dict(load_pretrained(arch, weights))
        self.features = spec.features(model)
        parent, leaf = _submodule(self.features, spec.first_conv)
        first = parent[int(leaf)] if leaf.isdigit() else getattr(parent, leaf)
        adapted = adapt_input_conv(first, in_channels)
        if leaf.isdigit():
            parent[int(leaf)] = adapted
        else:
            setattr(parent, leaf, adapted)
        if freeze_features:
            for parameter in self.features.parameters():
                parameter.requires_grad_(False)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = DualHead(spec.out_features, n_conditions, n_severities, hidden, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.pool(self.features(x)))
