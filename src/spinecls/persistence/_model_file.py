"""The model file's layout: the archive written, and the checks and the build on reading.

:func:`archive` makes the plain dict :func:`spinecls.persistence.save` writes;
:func:`read` loads one with ``torch.load(weights_only=True)`` and checks its keys and
their types (:func:`torch_load`, :func:`check_archive`); :func:`build` decodes the
parameters and fitted fields and hands them to the estimator's ``_set_persisted``. The
contract an estimator follows is in :mod:`spinecls.persistence`, which re-exports
:data:`FILE_VERSION` and :data:`FIELDS`; :mod:`spinecls.persistence._pipeline_file` puts two
archives in one file with the same functions.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

import numpy as np
import torch
from skorch.exceptions import DeviceWarning

from ._param_codec import decode_params, encode_params

__all__ = [
    "FIELDS",
    "FILE_VERSION",
    "archive",
    "build",
    "check_archive",
    "device_problem",
    "format_name",
    "read",
    "torch_load",
]

FILE_VERSION = 1
"""Layout version written by :func:`spinecls.persistence.save`; ``load`` reads it and older."""

_COMMON = {"format": str, "version": int, "params": str, "metadata": str, "state_dict": dict}


def format_name(cls: type) -> str:
    return f"spinecls.{cls.__name__}"


# -- writing ---------------------------------------------------------------------------
def _saved_params(estimator) -> dict:
    unsaved = dict.fromkeys(getattr(estimator, "_unsaved_params", ()))
    return estimator.get_params(deep=False) | unsaved


def archive(estimator, metadata: dict | None) -> dict:
    """The plain dict :func:`spinecls.persistence.save` writes for ``estimator``."""
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
        "format": format_name(type(estimator)),
        "version": FILE_VERSION,
        **text,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
    }
    return state


# -- reading ---------------------------------------------------------------------------
def read(path: str, cls: type) -> dict:
    """The file's dict, its keys and their types checked, JSON still undecoded."""
    return check_archive(torch_load(path, cls), path, cls)


def torch_load(path: str, cls: type) -> Any:
    """What ``torch.load(weights_only=True)`` reads from ``path``, errors in one line."""
    what = f"{path} is not a model file written by {cls.__name__}.save"
    if Path(path).is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a model file")
    try:
        with warnings.catch_warnings():
            # torch warns about a plain pickle's protocol before refusing it: we refuse it
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
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


def check_archive(state: Any, path: str, cls: type) -> dict:
    """``state`` if it is an archive of ``cls`` with every key of the right type."""
    what = f"{path} is not a model file written by {cls.__name__}.save"
    if not isinstance(state, dict) or state.get("format") != format_name(cls):
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
        if labels != sorted(labels):
            # fit finds them sorted (np.unique), in the order of the weights' outputs: any
            # other order would permute the probability columns
            raise ValueError(
                f"'classes' must list each output's labels in sorted order, as fit finds "
                f"them; got {labels[:10]} (an edited file?)"
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


def build(cls: type, state: dict, path: str, device) -> Any:
    """The fitted estimator a checked archive describes (see :func:`spinecls.persistence.load`)."""
    params = _json(path, state, "params", dict)
    try:
        # a parameter added since an older file was written takes the value that
        # reproduces that file's model, not the new default
        params = {**getattr(cls, "_missing_params", {}), **decode_params(params)}
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


def device_problem(device: Any) -> str | None:
    """Why torch cannot place tensors on ``device`` here; None when it can."""
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:  # AssertionError: torch built without CUDA
        return _first_line(exc)
    return None


def _usable_or_cpu(saved: Any, path: str) -> Any:
    """The saved device, or "cpu" with a warning when this machine cannot use it."""
    try:
        torch.device(saved)
    except (RuntimeError, TypeError):
        return saved  # not a device at all: the estimator's own checks name it
    problem = device_problem(saved)
    if problem is None:
        return saved
    warnings.warn(
        f"{path} was saved for device={saved!r}, which this machine cannot use "
        f"({problem}); it is loaded on 'cpu' (pass device= to choose)",
        DeviceWarning,
        stacklevel=4,
    )
    return "cpu"
