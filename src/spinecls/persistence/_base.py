"""Saving fitted estimators that have weights, without pickle.

A model file is one ``torch.save`` archive of plain values: the estimator's format
name and file version, its parameters, its fitted attributes and any metadata as JSON
text, and the module's state dict (tensors). :func:`load` reads it with
``torch.load(weights_only=True)``, so loading runs no code from the file, and checks
every key, every parameter (with the estimator's own checks, before a module is
allocated) and every tensor shape before it builds anything. The layout, and the checks
on reading, are in :mod:`spinecls.persistence._model_file`.

An estimator takes part by inheriting :class:`PersistenceMixin` (its ``save`` and
``load`` methods) and providing:

- ``_persisted_fields``: the names of its fitted attributes in the file;
- ``_persisted_defaults`` (optional): values of fields that older files lack, e.g.
  ``{"temperatures": None}``;
- ``_missing_params`` (optional): values of parameters that older files lack, where
  the new default would not reproduce the saved model, e.g. ``{"pixel_mm": None}``;
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

import copy
import os

import torch
from skorch.exceptions import DeviceWarning
from torch import nn

from .._utils.atomic import check_destination, replacing
from ._model_file import FIELDS, FILE_VERSION, archive, build, device_problem, read
from ._param_codec import decode_params, encode_params

__all__ = [
    "DeviceWarning",
    "FIELDS",
    "FILE_VERSION",
    "PersistenceMixin",
    "check_device",
    "check_state_dict",
    "decode_params",
    "encode_params",
    "load",
    "save",
]


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
        exist or cannot be written (:func:`spinecls._utils.atomic.check_destination`).
    ValueError
        A parameter or ``metadata`` that cannot be saved as JSON.
    """
    check_destination(path, directory=False, overwrite=True)
    state = archive(estimator, metadata)
    with replacing(path) as tmp:
        torch.save(state, tmp)


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
    return build(cls, read(path, cls), path, device)


def check_device(device: str | torch.device, name: str = "device") -> None:
    """Raise ValueError unless torch can place tensors on ``device`` on this machine.

    Parameters
    ----------
    device : str or torch.device
    name : str, default="device"
        How the message calls it (``"--device"`` in the command line).
    """
    problem = device_problem(device)
    if problem is not None:
        raise ValueError(f"{name} {device} cannot be used: {problem}")


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

    def __setstate__(self, state):
        # A pickle (joblib) of an earlier release lacks what later releases added: the same
        # values as for a file written by ``save`` (``_missing_params``; a fitted estimator's
        # ``_persisted_defaults``), so that get_params, clone and predict work on it.
        parent = getattr(super(), "__setstate__", None)
        if parent is not None:
            parent(state)
        else:  # pragma: no cover - object has __setstate__ from Python 3.11 on
            self.__dict__.update(state)
        for name, value in getattr(type(self), "_missing_params", {}).items():
            if name not in self.__dict__:
                setattr(self, name, copy.deepcopy(value))
        fields = getattr(type(self), "_persisted_fields", ())
        if any(f"{field}_" in self.__dict__ for field in fields):  # fitted
            for field, value in getattr(type(self), "_persisted_defaults", {}).items():
                if f"{field}_" not in self.__dict__:
                    setattr(self, f"{field}_", copy.deepcopy(value))

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
