"""What :class:`~spinecls.DualHeadClassifier` accepts: its parameters, its images, its targets.

:data:`PARAMETER_CONSTRAINTS` is the classifier's scikit-learn constraint table.
:class:`InputChecksMixin` gives it skorch's way with backbone parameters (any
``module__<name>`` keyword is stored, listed by ``get_params`` so that ``clone`` and
``GridSearchCV`` keep it, and set by ``set_params``; any other unknown keyword is a
TypeError with a "did you mean" suggestion), and the checks ``fit`` runs before it
allocates anything: every parameter, the images ``X``, and ``y`` (:func:`check_y`).
"""

from __future__ import annotations

import difflib
import warnings
from numbers import Integral, Real

import albumentations as A
import numpy as np
import pandas as pd
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .._utils import accelerate
from .._utils.dual_head import HeadClasses
from .._utils.validation import check_images, two_columns
from ..augment import PRESET_ALIASES, PRESETS, TTA_MODES
from ..labels import HEADS
from ..models import check_backbone_param_names, resolve_backbone
from ..models.torchvision import check_weights
from . import _net

__all__ = ["PARAMETER_CONSTRAINTS", "InputChecksMixin", "check_y"]

PARAMETER_CONSTRAINTS: dict = {
    "backbone": [str, callable],
    "lr": [Interval(Real, 0, None, closed="neither")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "optimizer": [StrOptions(set(_net.OPTIMIZERS)), callable],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "early_stopping": [Interval(Integral, 0, None, closed="left"), None],
    "lr_patience": [Interval(Integral, 0, None, closed="left"), None],
    "lr_factor": [Interval(Real, 0, 1, closed="neither")],
    "severity_weights": [StrOptions({"rsna"}), "array-like", dict, None],
    "any_severe_weight": [Interval(Real, 0, None, closed="left")],
    "ordinal": ["boolean"],
    "augment": [StrOptions({*PRESETS, *PRESET_ALIASES}), A.BaseCompose, A.BasicTransform, None],
    "tta": [StrOptions(set(TTA_MODES)), None],
    "weights": "no_validation",  # models.torchvision.check_weights: imports no torchvision
    "valid_size": [Interval(Real, 0, 1, closed="left"), None],
    "calibration": [StrOptions({"temperature"}), None],
    "decision": [StrOptions({"argmax", "balanced"})],
    "device": [str, torch.device],
    "accelerator": "no_validation",  # an accelerate.Accelerator: checked in fit
    "precision": [StrOptions(set(accelerate.PRECISIONS))],
    "channels_last": ["boolean"],
    "num_workers": [Interval(Integral, 0, None, closed="left")],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}
"""DualHeadClassifier's ``_parameter_constraints`` (checked by ``_validate_params``)."""


class InputChecksMixin:
    """Backbone parameters (``module__*``) and the checks of a DualHeadClassifier's input."""

    def _store_module_params(self, module_params: dict) -> None:
        """Store ``__init__``'s ``**module_params``; any key without ``module__`` is a TypeError."""
        for key, value in module_params.items():
            if not key.startswith("module__"):
                # As for any Python call, and as skorch does: a typo must not vanish
                # on clone, so it cannot wait for fit.
                raise TypeError(_unexpected(type(self), key))
            setattr(self, key, value)

    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        params.update({k: v for k, v in vars(self).items() if k.startswith("module__")})
        return params

    def set_params(self, **params):
        module = {k: params.pop(k) for k in list(params) if k.startswith("module__")}
        self._check_module_names(params.get("backbone", self.backbone), module)
        super().set_params(**params)
        for key, value in module.items():
            setattr(self, key, value)
        return self

    def _check_module_names(self, backbone, module: dict) -> None:
        """Refuse a ``module__`` name the backbone does not take, as ``set_params`` refuses
        any unknown name: at once, not in each fit of a search."""
        try:
            resolve_backbone(backbone)
        except ValueError:
            return  # a bad backbone is a bad value, which fit names
        try:
            check_backbone_param_names(
                backbone, [k.removeprefix("module__") for k in module], prefix="module__"
            )
        except TypeError as exc:
            raise ValueError(f"Invalid parameter for {type(self).__name__}: {exc}") from None

    def _check_params(self) -> None:
        """Check every parameter as fit does, without allocating a module."""
        self._validate_params()
        check_weights("weights", self.weights)
        _net.check_net_params(self.get_params(deep=False))
        accelerate.check_runtime_params(self.get_params(deep=False))

    def _check_X(self, X, reset: bool) -> np.ndarray:
        """4-D float32 images, writeable and C-contiguous; ``reset``: as ``fit`` takes them."""
        if not reset:
            check_is_fitted(self, "net_")
        array = check_images(X, None if reset else self.input_shape_)
        array = validate_data(
            self,
            array,
            reset=reset,
            allow_nd=True,
            dtype=np.float32,
            ensure_all_finite=True,
            ensure_min_samples=2 if reset else 1,
        )
        if reset:
            self.input_shape_ = tuple(int(v) for v in array.shape[1:])
        # torch refuses to wrap read-only memory (a memmap opened with mode "r") safely.
        return np.require(array, requirements=["C_CONTIGUOUS", "WRITEABLE"])


def _unexpected(cls: type, key: str) -> str:
    close = difflib.get_close_matches(key, cls._get_param_names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"{cls.__name__} got an unexpected parameter {key!r}{hint}; "
        f"backbone parameters take the prefix 'module__' (module__{key})"
    )


def check_y(y, n_samples: int) -> tuple[HeadClasses, np.ndarray]:
    """Classes of each head and the (n_samples, 2) int64 codes of y.

    Parameters
    ----------
    y : DataFrame or array-like of shape (n_samples, 2)
        Condition and severity labels, without missing values: a DataFrame's
        ``condition`` and ``severity`` columns, by name, or an array's two columns,
        condition then severity.
    n_samples : int
        The number of images y labels.

    Returns
    -------
    classes : HeadClasses
        Each head's sorted labels.
    codes : ndarray of shape (n_samples, 2)
        Each label's position in its head's classes.

    Raises
    ------
    ValueError
        A y of the wrong shape or columns, of another length than X, with missing
        values, or whose values are not class labels (continuous numbers: scikit-learn's
        ``check_classification_targets``), naming the head.
    """
    columns = two_columns(y)
    if len(columns[0]) != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {len(columns[0])}")
    classes, codes = [], []
    for head, column in zip(HEADS, columns):
        if pd.isna(column).any():
            raise ValueError(f"y's {head} column has missing values")
        if column.dtype == object and all(isinstance(v, str) for v in column):
            column = column.astype(str)
        try:
            check_classification_targets(column)
        except ValueError as exc:
            raise ValueError(f"y's {head} column does not hold class labels: {exc}") from None
        values = np.unique(column)
        classes.append(values)
        codes.append(np.searchsorted(values, column))
    # A one-class head has one logit: softmax makes it 1 and its cross-entropy 0,
    # gradient included, so it needs no special case in the loss or in predict_proba.
    # A model of one condition group (spinecls.routing) expects one condition; one
    # severity (a small training fold) means the severity head learns nothing: warned,
    # not refused, so that a grid search's small folds still fit.
    if len(classes[1]) < 2:
        warnings.warn(
            f"the severity head has a single class in y ({classes[1].tolist()}): it will "
            "predict it with probability 1",
            UserWarning,
            stacklevel=3,
        )
    return HeadClasses(classes), np.column_stack(codes).astype(np.int64)
