"""Estimator parameters as JSON values, and back, for model files.

Values JSON cannot hold are stored as one-key objects: tuples, dicts with non-string
keys, albumentations transforms, ``torch.optim`` classes and torchvision weights
members; a ``torch.device`` is stored as its name. A class or callable is refused: its
code would have to come from the file. :mod:`spinecls.persistence` re-exports
:func:`encode_params` and :func:`decode_params`.
"""

from __future__ import annotations

import os
from typing import Any

import albumentations as A
import numpy as np
import torch

from ..models.torchvision import is_weights_member, torchvision_models

_TAGS = ("tuple", "dict_items", "albumentations", "torch.optim", "torchvision.weights")


def _encode(name: str, value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return _encode(name, value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.random.RandomState):
        return None  # a generator's state is not a parameter worth keeping
    if is_weights_member(value):
        return {"torchvision.weights": str(value)}
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, (A.BaseCompose, A.BasicTransform)):
        return {"albumentations": A.to_dict(value)}
    if isinstance(value, type) and issubclass(value, torch.optim.Optimizer):
        if getattr(torch.optim, value.__name__, None) is not value:
            raise ValueError(f"cannot save {name}={value!r}: only torch.optim classes are saved")
        return {"torch.optim": value.__name__}
    if isinstance(value, tuple):
        return {"tuple": [_encode(name, v) for v in value]}
    if isinstance(value, list):
        return [_encode(name, v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not (
            len(value) == 1 and set(value) & set(_TAGS)
        ):
            return {k: _encode(name, v) for k, v in value.items()}
        return {"dict_items": [[_encode(name, k), _encode(name, v)] for k, v in value.items()]}
    if callable(value):
        raise ValueError(
            f"cannot save {name}={value!r}: a class or function would have to be imported "
            "from the file; register it (spinecls.models.register_backbone) and pass its name"
        )
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ValueError(f"cannot save {name}={value!r}: not a JSON value")


def encode_params(params: dict) -> dict:
    """Parameters as JSON-able values; :func:`decode_params` restores them."""
    return {name: _encode(name, value) for name, value in params.items()}


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or next(iter(value)) not in _TAGS:
        return {k: _decode(v) for k, v in value.items()}
    ((tag, content),) = value.items()
    if tag == "tuple":
        return tuple(_decode(v) for v in content)
    if tag == "dict_items":
        return {_decode(k): _decode(v) for k, v in content}
    if tag == "albumentations":
        return A.from_dict(content)
    if tag == "torch.optim":
        optimizer = getattr(torch.optim, str(content), None)
        if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise ValueError(f"unknown torch.optim optimizer {content!r}")
        return optimizer
    return torchvision_models().get_weight(str(content))


def decode_params(params: dict) -> dict:
    """The parameters :func:`encode_params` stored."""
    decoded = {}
    for name, value in params.items():
        try:
            decoded[name] = _decode(value)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"parameter {name!r} cannot be read ({type(exc).__name__}: {exc})"
            ) from None
    return decoded
