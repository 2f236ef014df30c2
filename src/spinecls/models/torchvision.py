"""torchvision backbones (VGG-16, the study's model 3, and the next steps it named).

Each architecture is one row of :data:`ARCHITECTURES`: how to take its convolutional
feature extractor, how wide the pooled features are, and where its first convolution
sits. The feature extractor is followed by global average pooling and two identical,
parallel heads (:class:`~spinecls.models.heads.DualHead`) instead of torchvision's
classifier.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from .heads import DualHead, check_dropout, check_params, check_width

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

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


def torchvision_models():
    """``torchvision.models``, imported when a torchvision backbone or its weights are used.

    torchvision costs seconds of import (it loads ``torch._dynamo``): a simple or Inception
    classifier, and every worker process that builds one, does without it.
    """
    return importlib.import_module("torchvision.models")


def is_weights_member(value: Any) -> bool:
    """Whether ``value`` is a member of a torchvision weights enum.

    One can only exist once torchvision is imported, so this never imports it.
    """
    models = sys.modules.get("torchvision.models")
    return models is not None and isinstance(value, models.WeightsEnum)


def check_weights(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is None, a str, a path or a torchvision weights member."""
    accepted = value is None or isinstance(value, (str, os.PathLike)) or is_weights_member(value)
    if not accepted:
        raise ValueError(
            f"{name} must be None, a file path, a weights name such as 'IMAGENET1K_V1' or a "
            f"torchvision weights member; got {type(value).__name__}"
        )


def _weights_member(arch: str, weights) -> WeightsEnum | None:
    """The member of ``arch``'s weights enum that ``weights`` names, or None for a path."""
    enum = torchvision_models().get_model_weights(arch)
    if is_weights_member(weights):
        try:
            return enum.verify(weights)
        except TypeError:
            raise ValueError(
                f"weights={weights} are not {arch}'s weights; expected one of "
                f"{[f'{enum.__name__}.{m}' for m in enum.__members__]}"
            ) from None
    name = str(weights).removeprefix(f"{enum.__name__}.")
    return enum.verify(name) if isinstance(weights, str) and name in enum.__members__ else None


def load_pretrained(arch: str, weights: str | os.PathLike | WeightsEnum) -> dict[str, torch.Tensor]:
    """The state dict of pretrained weights, without any download.

    Parameters
    ----------
    arch : str
        torchvision architecture name, e.g. ``"vgg16"``.
    weights : str, path-like or torchvision weights member
        A local state dict file (loaded with ``weights_only=True``); the name of a member
        of torchvision's weights enum (``"IMAGENET1K_V1"``, ``"DEFAULT"``,
        ``"ResNet18_Weights.IMAGENET1K_V1"``) or the member itself
        (``torchvision.models.ResNet18_Weights.IMAGENET1K_V1``, checked with
        ``WeightsEnum.verify``), read from torchvision's cache
        (``$TORCH_HOME/hub/checkpoints``).

    Raises
    ------
    FileNotFoundError
        If the file is missing, or the enum's file is not in the cache: the message
        says which file to place where.
    ValueError
        If ``weights`` is neither a file nor a weights name or member of ``arch``.
    """
    member = _weights_member(arch, weights)
    if member is not None:
        filename = member.url.rsplit("/", 1)[-1]
        path = Path(torch.hub.get_dir()) / "checkpoints" / filename
        if not path.is_file():
            raise FileNotFoundError(
                f"{arch} weights {member} are not in torchvision's cache and nothing is "
                f"downloaded at run time: place {filename} (from {member.url}) at {path}, or "
                "pass weights='/path/to/state_dict.pth'"
            )
    else:
        name = os.fspath(weights)
        path = Path(name)
        if not path.is_file():
            if path.suffix or os.sep in name:
                raise FileNotFoundError(f"pretrained weights file not found: {path}")
            enum = torchvision_models().get_model_weights(arch)
            raise ValueError(
                f"weights={name!r} is neither a file nor one of {arch}'s weights "
                f"{list(enum.__members__)}"
            )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def _load_into(model: nn.Module, arch: str, weights) -> None:
    """Load pretrained weights into a torchvision model, or say why they do not fit it."""
    state = load_pretrained(arch, weights)
    expected = model.state_dict()
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError(
            f"weights={os.fspath(weights) if isinstance(weights, os.PathLike) else weights!r} "
            f"hold a {type(state).__name__}, not a state dict; save one with "
            f"torch.save(torchvision.models.{arch}(...).state_dict(), path)"
        )
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or reshaped:
        problems = []
        found = {"missing": missing, "unexpected": unexpected, "reshaped": reshaped}
        for what, keys in found.items():
            if keys:
                more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
                problems.append(f"{len(keys)} {what} ({', '.join(keys[:3])}{more})")
        raise ValueError(
            f"weights={weights!s} are not a state dict of torchvision's {arch}: "
            f"{'; '.join(problems)}. Expected the file torchvision's "
            f"{arch}(weights=...) reads, e.g. the ImageNet weights' file in "
            f"$TORCH_HOME/hub/checkpoints, or torch.save(model.state_dict(), path) of a "
            f"torchvision {arch}"
        )
    model.load_state_dict(state)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


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
    weights : None, str, path-like or torchvision weights member, default=None
        None (random initialisation), a local state dict file, or torchvision weights
        such as ``"IMAGENET1K_V1"`` or ``ResNet18_Weights.IMAGENET1K_V1`` (see
        :func:`load_pretrained`). Pretrained weights are loaded first, then the
        classifier is replaced.
    freeze_features : bool, default=False
        Keep the feature extractor's weights fixed (transfer learning).
    hidden : int or None, default=256
        Width of each head's hidden layer (at most :data:`~spinecls.models.heads.MAX_WIDTH`;
        None: linear heads).
    dropout : float, default=0.3
    """

    PARAM_CHECKS: ClassVar[dict] = {
        "weights": check_weights,
        "freeze_features": _check_bool,
        "hidden": partial(check_width, optional=True),
        "dropout": check_dropout,
    }
    """Checks of the keyword parameters, run before anything is allocated."""

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
        check_params(
            self.PARAM_CHECKS,
            {
                "weights": weights,
                "freeze_features": freeze_features,
                "hidden": hidden,
                "dropout": dropout,
            },
        )
        spec = ARCHITECTURES[arch]
        model = getattr(torchvision_models(), arch)(weights=None)
        if weights is not None:
            _load_into(model, arch, weights)
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
