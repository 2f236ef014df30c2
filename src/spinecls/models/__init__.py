"""Backbones: one file per family, and a registry that makes a new backbone one entry.

Nothing in this package knows about DICOM files or data frames: a backbone maps a
float tensor ``(batch, channels, height, width)`` to ``(condition_logits,
severity_logits)``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from functools import partial

from torch import nn

from .heads import MAX_WIDTH, CumulativeLink, DualHead, OrdinalSeverity, check_params
from .inception import InceptionCNN, InceptionModule
from .simple import SimpleCNN
from .torchvision import ARCHITECTURES, TorchvisionBackbone, adapt_input_conv, load_pretrained

__all__ = [
    "BACKBONES",
    "MAX_WIDTH",
    "CumulativeLink",
    "DualHead",
    "InceptionCNN",
    "InceptionModule",
    "OrdinalSeverity",
    "SimpleCNN",
    "TorchvisionBackbone",
    "adapt_input_conv",
    "backbone_name",
    "build_backbone",
    "check_backbone_param_names",
    "build_ordinal",
    "check_backbone_params",
    "load_pretrained",
    "register_backbone",
    "resolve_backbone",
    "takes_weights",
]

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "simple": SimpleCNN,
    "inception": InceptionCNN,
    **{arch: partial(TorchvisionBackbone, arch) for arch in ARCHITECTURES},
}
"""Backbone builders by name: ``builder(in_channels, n_conditions, n_severities, **params)``."""


def register_backbone(name: str, builder: Callable[..., nn.Module]) -> None:
    """Make ``builder`` available as ``DualHeadClassifier(backbone=name)``.

    A registry entry lives in the process that made it: worker processes of
    ``GridSearchCV(n_jobs=2)`` do not see it. Pass the class or builder itself as
    ``backbone=`` to search in parallel.

    Parameters
    ----------
    name : str
    builder : callable
        ``builder(in_channels, n_conditions, n_severities, **params)`` returning a
        module whose forward gives ``(condition_logits, severity_logits)``. A
        ``weights`` parameter in its signature receives the classifier's ``weights``;
        a ``PARAM_CHECKS`` mapping ``{param: check(name, value)}`` on it is run on the
        parameters before anything is built.
    """
    if not callable(builder):
        raise TypeError(f"builder must be callable, got {type(builder).__name__}")
    BACKBONES[name] = builder


def resolve_backbone(backbone: str | Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """The builder of a backbone given by name, as a ``torch.nn.Module`` class or a callable.

    Raises
    ------
    ValueError
        If ``backbone`` is an unknown name, a built module or not callable.
    """
    if isinstance(backbone, str):
        if backbone not in BACKBONES:
            raise ValueError(
                f"backbone must be one of {sorted(BACKBONES)}, a torch.nn.Module class or a "
                f"callable returning a module; got {backbone!r}"
            )
        return BACKBONES[backbone]
    if isinstance(backbone, nn.Module):
        raise ValueError(
            f"backbone must be a class or a builder, not a built {type(backbone).__name__}: "
            "it is built for the data's channels and classes at fit"
        )
    if not callable(backbone):
        raise ValueError(
            f"backbone must be one of {sorted(BACKBONES)}, a torch.nn.Module class or a "
            f"callable returning a module; got {backbone!r}"
        )
    return backbone


def backbone_name(backbone: str | Callable[..., nn.Module]) -> str:
    """How messages name a backbone: its registry key or its qualified name."""
    if isinstance(backbone, str):
        return repr(backbone)
    target = getattr(backbone, "func", backbone)  # functools.partial
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', target)}"


def _keyword_names(builder: Callable[..., nn.Module]) -> list[str] | None:
    """The builder's parameters after the three positional ones; None if it takes **kwargs."""
    try:
        parameters = list(inspect.signature(builder).parameters.values())
    except (TypeError, ValueError):  # builtins and C callables have no signature
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters[3:]]


def takes_weights(backbone: str | Callable[..., nn.Module]) -> bool:
    """Whether the backbone's builder accepts pretrained ``weights``."""
    names = _keyword_names(resolve_backbone(backbone))
    return names is not None and "weights" in names


def check_backbone_param_names(
    backbone: str | Callable[..., nn.Module], names: Iterable[str], prefix: str = ""
) -> None:
    """Check that a backbone's builder takes parameters of these names.

    Parameters
    ----------
    backbone : str, torch.nn.Module class or callable
    names : iterable of str
        Keyword names for the builder (without ``prefix``).
    prefix : str, default=""
        How messages prefix parameter names (``"module__"`` for a classifier's).

    Raises
    ------
    TypeError
        For a name the builder does not take, with the closest one it takes. A builder
        that takes ``**kwargs`` takes any name.
    ValueError
        If ``backbone`` is not a backbone (:func:`resolve_backbone`).
    """
    known = _keyword_names(resolve_backbone(backbone))
    if known is None:
        return
    for key in names:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise TypeError(
                f"backbone {backbone_name(backbone)} has no parameter {prefix}{key}{hint}; "
                f"it takes {[prefix + name for name in known]}"
            )


def check_backbone_params(
    backbone: str | Callable[..., nn.Module], params: dict, prefix: str = ""
) -> None:
    """Check parameter names and values for a backbone without building it.

    Names are checked against the builder's signature, values with the builder's
    ``PARAM_CHECKS`` when it has them (the built-in backbones do: widths are at most
    :data:`~spinecls.models.heads.MAX_WIDTH`).

    Parameters
    ----------
    backbone : str, torch.nn.Module class or callable
    params : dict
        Keyword arguments for the builder.
    prefix : str, default=""
        How messages prefix parameter names (``"module__"`` for a classifier's).

    Raises
    ------
    TypeError
        For a parameter the builder does not take (with the closest name).
    ValueError
        For a value the builder's checks refuse.
    """
    builder = resolve_backbone(backbone)
    check_backbone_param_names(backbone, params, prefix)
    checks = getattr(getattr(builder, "func", builder), "PARAM_CHECKS", None)
    if checks:
        check_params(checks, params, prefix)


def build_backbone(
    backbone: str | Callable[..., nn.Module],
    in_channels: int,
    n_conditions: int,
    n_severities: int,
    **params,
) -> nn.Module:
    """Build a backbone.

    Parameters
    ----------
    backbone : str, torch.nn.Module class or callable
        A key of :data:`BACKBONES`, or a builder called as
        ``backbone(in_channels, n_conditions, n_severities, **params)``.
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
    module = resolve_backbone(backbone)(in_channels, n_conditions, n_severities, **params)
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"backbone {backbone_name(backbone)} returned a {type(module).__name__!r} object, "
            "not a torch.nn.Module"
        )
    return module


def build_ordinal(
    backbone: str | Callable[..., nn.Module],
    in_channels: int,
    n_conditions: int,
    order,
    **params,
) -> OrdinalSeverity:
    """Build a backbone with an ordinal severity head (:class:`OrdinalSeverity`).

    The backbone is built with one severity output, the score that a
    :class:`CumulativeLink` turns into the probabilities of the ordered classes.

    Parameters
    ----------
    backbone : str, torch.nn.Module class or callable
        As for :func:`build_backbone`.
    in_channels, n_conditions : int
    order : sequence of int
        The severity columns from the lowest class to the highest (see
        :class:`OrdinalSeverity`); its length is the number of severity classes.
    **params
        Passed to the backbone's builder.

    Returns
    -------
    OrdinalSeverity

    Examples
    --------
    >>> import torch
    >>> net = build_ordinal("simple", 1, 5, [1, 0, 2])
    >>> condition, log_p = net(torch.zeros(2, 1, 32, 32))
    >>> log_p.shape, bool(torch.allclose(log_p.exp().sum(dim=1), torch.ones(2)))
    (torch.Size([2, 3]), True)
    """
    return OrdinalSeverity(build_backbone(backbone, in_channels, n_conditions, 1, **params), order)
