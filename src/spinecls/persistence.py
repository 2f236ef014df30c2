"""Saving fitted estimators that have weights, without pickle.

A model file is one ``torch.save`` archive of plain values: the estimator's format
name and file version, its parameters, its fitted attributes and any metadata as JSON
text, and the module's state dict (tensors). :func:`load` reads it with
``torch.load(weights_only=True)``, so loading runs no code from the file, and checks
every key, every parameter (with the estimator's own checks, before a module is
allocated) and every tensor shape before it builds anything.

An estimator takes part by inheriting :class:`PersistenceMixin` (its ``save`` and
``load`` methods) and providing:

- ``_persisted_fields``: the names of its fitted attributes in the file;
- ``_get_persisted()``: ``(fitted, state_dict)``, the JSON-able values of those fields
  and the module's tensors;
- ``_set_persisted(fitted, state_dict)``: checks them and makes the estimator fitted,
  raising ValueError for anything wrong.

Parameter values JSON cannot hold are stored as one-key objects: tuples, dicts with
non-string keys, albumentations transforms, ``torch.optim`` classes and torchvision
weights members; a ``torch.device`` is stored as its name. A backbone given as a class
or callable is not saved: its code would have to come from the file.

Tensors are saved on the CPU and loaded there first, so a file written on a GPU machine
reads anywhere. The estimator then goes to its saved ``device`` when torch can use it
here, else to ``"cpu"`` with a :class:`skorch.exceptions.DeviceWarning` (as skorch does
for its own nets); ``load(..., device=...)`` chooses instead.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

import albumentations as A
import numpy as np
import torch
import torchvision
from skorch.exceptions import DeviceWarning
from torch import nn
from torchvision.models import WeightsEnum

from ._atomic import check_destination, replacing

__all__ = [
    "FIELDS",
    "FILE_VERSION",
    "PersistenceMixin",
    "check_device",
    "check_state_dict",
    "decode_params",
    "encode_params",
    "load",
    "load_pipeline",
    "save",
    "save_pipeline",
]

FILE_VERSION = 1
"""Layout version written by :func:`save`; :func:`load` reads this version and older."""

_COMMON = {"format": str, "version": int, "params": str, "metadata": str, "state_dict": dict}
_TAGS = ("tuple", "dict_items", "albumentations", "torch.optim", "torchvision.weights")


def _format(cls: type) -> str:
    return f"spinecls.{cls.__name__}"


# -- parameters as JSON ----------------------------------------------------------------
def _encode(name: str, value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return _encode(name, value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.random.RandomState):
        return None  # a generator's state is not a parameter worth keeping
    if isinstance(value, WeightsEnum):
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
    return torchvision.models.get_weight(str(content))


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


# -- the file --------------------------------------------------------------------------
def save(estimator, path: str | os.PathLike, *, metadata: dict | None = None) -> None:
    """Write a fitted estimator to one file, without pickle.

    Parameters
    ----------
    estimator : estimator with weights
        Fitted; it provides ``_persisted_fields`` and ``_get_persisted`` (module docstring).
    path : str or path-like
        Written through a temporary sibling file and a rename: a failed save leaves any
        earlier file at ``path`` as it was.
    metadata : dict, optional
        Anything JSON-serialisable to keep beside the model; :func:`load` returns it as
        ``metadata_``.

    Raises
    ------
    IsADirectoryError, FileNotFoundError, NotADirectoryError, PermissionError
        Before anything is written: ``path`` is a directory, or its directory does not
        exist or cannot be written (:func:`spinecls._atomic.check_destination`).
    ValueError
        A parameter or ``metadata`` that cannot be saved as JSON.
    """
    fitted, state_dict = estimator._get_persisted()
    check_destination(path, directory=False, overwrite=True)
    try:
        text = {
            "params": json.dumps(encode_params(estimator.get_params(deep=False))),
            "metadata": json.dumps(metadata or {}),
            **{k: json.dumps(fitted[k], default=float) for k in estimator._persisted_fields},
        }
    except TypeError as exc:
        raise ValueError(f"cannot save as JSON: {exc}") from exc
    state = {
        "format": _format(type(estimator)),
        "version": FILE_VERSION,
        **text,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
    }
    with replacing(path) as tmp:
        torch.save(state, tmp)


def _read(path: str, cls: type) -> dict:
    """The file's dict, its keys and their types checked, JSON still undecoded."""
    what = f"{path} is not a model file written by {cls.__name__}.save"
    if Path(path).is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a model file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except UnpicklingError:
        raise ValueError(f"{what}: it holds objects other than tensors and plain values") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        if not zipfile.is_zipfile(path):  # every torch.save archive is a zip file
            raise ValueError(
                f"{what}: it is not a complete torch archive (truncated, or another kind of file)"
            ) from None
        raise ValueError(f"{what} ({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != _format(cls):
        found = state.get("format") if isinstance(state, dict) else None
        raise ValueError(f"{what}" + (f" (its format is {found!r})" if found else ""))
    expected = {**_COMMON, **dict.fromkeys(cls._persisted_fields, (str, list))}
    for key, kind in expected.items():
        if key not in state:
            raise ValueError(f"{path}: the model file has no {key!r} entry")
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            raise ValueError(f"{path}: {key!r} has the wrong type ({type(state[key]).__name__})")
    if state["version"] > FILE_VERSION:
        raise ValueError(
            f"{path} is a version {state['version']} model file; this spinecls reads "
            f"version {FILE_VERSION} and older: upgrade spinecls"
        )
    bad = [k for k, v in state["state_dict"].items() if not isinstance(v, torch.Tensor)]
    if bad or not all(isinstance(k, str) for k in state["state_dict"]):
        raise ValueError(f"{path}: 'state_dict' must map names to tensors; see {bad[:3]}")
    nan = [k for k, v in state["state_dict"].items() if v.is_floating_point() and v.isnan().any()]
    if nan:
        raise ValueError(f"{path}: the weights hold NaN values; see {nan[:3]}")
    return state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _classes(value: Any) -> list[np.ndarray]:
    if not (
        isinstance(value, list)
        and all(isinstance(c, list) and len(c) >= 2 for c in value)
        and all(isinstance(v, (str, int, float)) for c in value for v in c)
    ):
        raise ValueError("'classes' must be lists of at least two labels, one list per output")
    for labels in value:
        if len({type(v) for v in labels}) > 1 or len(set(labels)) < len(labels):
            raise ValueError(
                f"'classes' must list distinct labels of one type per output; got {labels[:10]}"
            )
    return [np.asarray(c) for c in value]


def _input_shape(value: Any) -> tuple[int, ...]:
    if not (
        isinstance(value, list)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise ValueError(f"'input_shape' must be a list of positive ints; got {value!r}")
    return tuple(value)


def _history(value: Any) -> list[dict]:
    if not (isinstance(value, list) and all(isinstance(row, dict) for row in value)):
        raise ValueError("'history' must be a list of per-epoch records")
    return value


FIELDS = {"classes": _classes, "input_shape": _input_shape, "history": _history}
"""Checks of the fitted attributes an estimator may persist: ``classes`` (a list of
label lists), ``input_shape`` (positive ints) and ``history`` (skorch's records). They
return the values the estimator restores (``classes`` as arrays, ``input_shape`` as a
tuple); other fields reach the estimator as decoded JSON."""


def _json(path: str, state: dict, key: str, kind: type | None = None) -> Any:
    value = state[key]
    if isinstance(value, str):  # older files stored some lists as they are
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: {key!r} is not valid JSON ({exc})") from None
    if kind is not None and not isinstance(value, kind):
        raise ValueError(f"{path}: {key!r} must hold a {kind.__name__}")
    return value


def load(cls: type, path: str | os.PathLike, *, device: str | torch.device | None = None):
    """Read an estimator of class ``cls`` written by :func:`save`.

    Parameters
    ----------
    cls : type
        The estimator class (e.g. :class:`spinecls.DualHeadClassifier`).
    path : str or path-like
    device : str or torch.device, optional
        Where the estimator runs, instead of its saved ``device``. By default the saved
        device when torch can use it here, else ``"cpu"`` with a
        :class:`skorch.exceptions.DeviceWarning` (a model trained on a GPU loads on a
        machine without one).

    Returns
    -------
    estimator
        Fitted; ``metadata_`` holds what :func:`save` was given.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        If there is no file at ``path``, or a directory.
    ValueError
        One line naming the file and what is wrong: not a model file of ``cls`` (a
        truncated one included), a missing entry or one of the wrong type, a parameter
        the estimator refuses, or a tensor whose shape or kind does not fit the model or
        that holds NaN; or a ``device`` torch cannot use here.
    """
    path = os.fspath(path)
    if device is not None:
        check_device(device)
    state = _read(path, cls)
    params = _json(path, state, "params", dict)
    try:
        params = decode_params(params)
        if device is not None:
            params["device"] = device
        elif "device" in params:
            params["device"] = _usable_or_cpu(params["device"], path)
        estimator = cls(**params)
        fitted = {k: _json(path, state, k) for k in cls._persisted_fields}
        fitted = {k: FIELDS[k](v) if k in FIELDS else v for k, v in fitted.items()}
        estimator._set_persisted(fitted, state["state_dict"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    estimator.metadata_ = _json(path, state, "metadata", dict)
    return estimator


def _device_problem(device: Any) -> str | None:
    """Why torch cannot place tensors on ``device`` here; None when it can."""
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:  # AssertionError: torch built without CUDA
        return _first_line(exc)
    return None


def check_device(device: str | torch.device, name: str = "device") -> None:
    """Raise ValueError unless torch can place tensors on ``device`` on this machine.

    Parameters
    ----------
    device : str or torch.device
    name : str, default="device"
        How the message calls it (``"--device"`` in the command line).
    """
    problem = _device_problem(device)
    if problem is not None:
        raise ValueError(f"{name} {device} cannot be used: {problem}")


def _usable_or_cpu(saved: Any, path: str) -> Any:
    """The saved device, or "cpu" with a warning when this machine cannot use it."""
    try:
        torch.device(saved)
    except (RuntimeError, TypeError):
        return saved  # not a device at all: the estimator's own checks name it
    problem = _device_problem(saved)
    if problem is None:
        return saved
    warnings.warn(
        f"{path} was saved for device={saved!r}, which this machine cannot use "
        f"({problem}); it is loaded on 'cpu' (pass device= to choose)",
        DeviceWarning,
        stacklevel=4,
    )
    return "cpu"


def check_state_dict(module: nn.Module, state_dict: dict) -> None:
    """Raise ValueError unless ``state_dict`` has exactly the keys and shapes of ``module``.

    Build ``module`` on the meta device (``with torch.device("meta"): ...``) to check a
    file before allocating anything.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"the weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for key, tensor in expected.items():
        if tuple(state_dict[key].shape) != tuple(tensor.shape):
            raise ValueError(
                f"the weights do not fit the model: {key!r} has shape "
                f"{tuple(state_dict[key].shape)}, the model expects {tuple(tensor.shape)}"
            )
        if state_dict[key].is_floating_point() != tensor.is_floating_point():
            raise ValueError(
                f"the weights do not fit the model: {key!r} holds {state_dict[key].dtype}, "
                f"the model expects {tensor.dtype}"
            )


class PersistenceMixin:
    """``save`` and ``load`` methods for an estimator with weights (see the module docs)."""

    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> None:
        """Write the fitted estimator to one file, without pickle.

        The file holds the module's state dict (tensors) and, as JSON, the parameters,
        the fitted attributes (classes, input shape, training history) and ``metadata``;
        :meth:`load` reads it with ``torch.load(weights_only=True)``, so loading runs no
        code from the file. It is written through a temporary sibling and a rename.

        Parameters
        ----------
        path : str or path-like
        metadata : dict, optional
            Anything JSON-serialisable to keep beside the model (e.g. the parameters of
            the transformer that made its patches); :meth:`load` returns it as
            ``metadata_``.
        """
        save(self, path, metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None):
        """Read an estimator written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
        device : str or torch.device, optional
            Where the estimator runs, instead of its saved ``device``. By default the
            saved device when this machine can use it, else "cpu" with a
            :class:`skorch.exceptions.DeviceWarning`.

        Returns
        -------
        estimator
            Fitted: it predicts what the saved one did; ``metadata_`` holds what
            :meth:`save` was given.

        Raises
        ------
        ValueError
            One line naming the file and what is wrong with it.
        """
        return load(cls, path, device=device)


# -- a whole pipeline ------------------------------------------------------------------
def save_pipeline(pipeline, path: str | os.PathLike, *, metadata: dict | None = None) -> None:
    """Write a fitted patch-and-classify pipeline to one model file.

    The final step is saved with :func:`save`; the first step, a
    :class:`~spinecls.LumbarPatchTransformer`, is recorded by the parameters that
    decide what its patches look like (everything but where the data lies and how it
    is read: :data:`spinecls.preprocessing.RUNTIME_PARAMS`), so that
    :func:`load_pipeline` cuts the same patches from any directory.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        ``[LumbarPatchTransformer, fitted estimator with weights]``.
    path : str or path-like
        The model file (written through a temporary sibling and a rename).
    metadata : dict, optional
        More JSON-serialisable values to keep; the transformer's are stored under
        ``"transformer"``.

    Raises
    ------
    ValueError
        If the pipeline is not a transformer followed by a savable estimator.
    """
    from .preprocessing import LumbarPatchTransformer, recipe_params

    steps = getattr(pipeline, "steps", None)
    if (
        not steps
        or len(steps) != 2
        or not isinstance(steps[0][1], LumbarPatchTransformer)
        or not isinstance(steps[1][1], PersistenceMixin)
    ):
        raise ValueError(
            "save_pipeline needs a Pipeline of a LumbarPatchTransformer and a fitted "
            f"spinecls estimator with weights; got {pipeline!r}"
        )
    metadata = dict(metadata or {}) | {"transformer": recipe_params(steps[0][1])}
    steps[1][1].save(path, metadata=metadata)


def load_pipeline(
    path: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    estimator_class: type | None = None,
    **transformer_params,
):
    """Read a model file written by :func:`save_pipeline` as a ready pipeline.

    Parameters
    ----------
    path : str or path-like
    data_dir : str or path-like, optional
        The competition directory the transformer resolves image paths under.
    device : str or torch.device, optional
        Where the estimator runs, instead of its saved ``device`` (see :func:`load`).
    estimator_class : type, default=DualHeadClassifier
        The class of the saved estimator.
    **transformer_params
        Run-time parameters of the transformer (``n_jobs``, ``memory``, ``verbose``,
        ``on_error``); parameters that shape the patches come from the file.

    Returns
    -------
    sklearn.pipeline.Pipeline
        ``[("patches", LumbarPatchTransformer), ("clf", estimator)]``.

    Raises
    ------
    ValueError
        If the file is not a model file (see :func:`load`), or does not record its
        transformer (it was written by ``save`` rather than :func:`save_pipeline`) or
        records one with unknown or run-time parameters, or a parameter that shapes the
        patches is given.
    """
    from sklearn.pipeline import Pipeline

    from .classifier import DualHeadClassifier
    from .preprocessing import RUNTIME_PARAMS, LumbarPatchTransformer

    shaping = sorted(set(transformer_params) - RUNTIME_PARAMS)
    if shaping:
        raise ValueError(
            f"load_pipeline takes only run-time transformer parameters {sorted(RUNTIME_PARAMS)}"
            f"; {shaping} come from the model file"
        )
    estimator = load(estimator_class or DualHeadClassifier, path, device=device)
    recorded = estimator.metadata_.get("transformer")
    if not isinstance(recorded, dict):
        raise ValueError(
            f"{os.fspath(path)}: the model file does not record how its patches were made "
            "(write it with spinecls.persistence.save_pipeline or spinecls train)"
        )
    runtime = sorted(set(recorded) & RUNTIME_PARAMS)
    if runtime:  # where data lies and is cached is the caller's choice, never the file's
        raise ValueError(
            f"{os.fspath(path)}: the recorded transformer holds run-time parameters {runtime}"
        )
    try:
        transformer = LumbarPatchTransformer(data_dir=data_dir, **recorded, **transformer_params)
    except TypeError as exc:
        raise ValueError(f"{os.fspath(path)}: bad transformer parameters: {exc}") from None
    return Pipeline([("patches", transformer), ("clf", estimator)])
