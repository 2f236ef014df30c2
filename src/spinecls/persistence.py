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
- ``_persisted_defaults`` (optional): values of fields that older files lack, e.g.
  ``{"temperatures": None}``;
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
for its own nets); ``load(..., device=...)`` chooses instead. Parameters an
estimator lists in ``_unsaved_params`` (run-time resources such as an
``accelerate.Accelerator``) are stored as None.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path
from pickle import UnpicklingError
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from skorch.exceptions import DeviceWarning
from torch import nn

from ._atomic import check_destination, replacing
from ._param_codec import decode_params, encode_params

if TYPE_CHECKING:  # re-exported lazily, see __getattr__ at the end
    from ._pipeline_file import load_localizer, load_pipeline, save_pipeline

__all__ = [
    "FIELDS",
    "FILE_VERSION",
    "PersistenceMixin",
    "check_device",
    "check_state_dict",
    "decode_params",
    "encode_params",
    "load",
    "load_localizer",
    "load_pipeline",
    "save",
    "save_pipeline",
]

FILE_VERSION = 1
"""Layout version written by :func:`save`; :func:`load` reads this version and older."""

_COMMON = {"format": str, "version": int, "params": str, "metadata": str, "state_dict": dict}


def _format(cls: type) -> str:
    return f"spinecls.{cls.__name__}"


# -- the file --------------------------------------------------------------------------
def _saved_params(estimator) -> dict:
    unsaved = dict.fromkeys(getattr(estimator, "_unsaved_params", ()))
    return estimator.get_params(deep=False) | unsaved


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
    check_destination(path, directory=False, overwrite=True)
    state = _archive(estimator, metadata)
    with replacing(path) as tmp:
        torch.save(state, tmp)


def _archive(estimator, metadata: dict | None) -> dict:
    """The plain dict :func:`save` writes for ``estimator``."""
    fitted, state_dict = estimator._get_persisted()
    try:
        text = {
            "params": json.dumps(encode_params(_saved_params(estimator))),
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
    return state


def _read(path: str, cls: type) -> dict:
    """The file's dict, its keys and their types checked, JSON still undecoded."""
    return _check_archive(_torch_load(path, cls), path, cls)


def _torch_load(path: str, cls: type) -> Any:
    """What ``torch.load(weights_only=True)`` reads from ``path``, errors in one line."""
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
    return state


def _check_archive(state: Any, path: str, cls: type) -> dict:
    """``state`` if it is an archive of ``cls`` with every key of the right type."""
    what = f"{path} is not a model file written by {cls.__name__}.save"
    if not isinstance(state, dict) or state.get("format") != _format(cls):
        found = state.get("format") if isinstance(state, dict) else None
        raise ValueError(f"{what}" + (f" (its format is {found!r})" if found else ""))
    optional = getattr(cls, "_persisted_defaults", {})
    expected = {**_COMMON, **dict.fromkeys(cls._persisted_fields, (str, list))}
    for key, kind in expected.items():
        if key in optional and key not in state:
            continue
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
    return _build(cls, _read(path, cls), path, device)


def _build(cls: type, state: dict, path: str, device) -> Any:
    """The fitted estimator a checked archive describes (see :func:`load`)."""
    params = _json(path, state, "params", dict)
    try:
        params = decode_params(params)
        if device is not None:
            params["device"] = device
        elif "device" in params:
            params["device"] = _usable_or_cpu(params["device"], path)
        estimator = cls(**params)
        defaults = getattr(cls, "_persisted_defaults", {})
        fitted = {
            k: _json(path, state, k) if k in state else defaults[k] for k in cls._persisted_fields
        }
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


# The pipeline file imports this module's archive functions; re-exporting its names lazily
# (PEP 562) keeps that import one way.
_PIPELINE_NAMES = ("LOCALIZER_ENTRY", "load_localizer", "load_pipeline", "save_pipeline")


def __getattr__(name: str):
    if name in _PIPELINE_NAMES:
        from . import _pipeline_file

        return getattr(_pipeline_file, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PIPELINE_NAMES})
