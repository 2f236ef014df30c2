"""DualHeadClassifier: the study's dual-head CNNs as one scikit-learn estimator.

This module holds the scikit-learn contract: parameters, validation, ``classes_``,
``predict_proba``, scoring. Training runs through skorch; the net, its loss, callbacks
and validation split are in :mod:`spinecls._net`, saving and loading in
:mod:`spinecls.persistence`.
"""

from __future__ import annotations

import difflib
import os
from numbers import Integral, Real

import albumentations as A
import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, MultiOutputMixin
from sklearn.metrics import accuracy_score
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch.utils.data import TensorDataset
from torchvision.models import WeightsEnum

from . import _net
from ._net import DualHeadLoss, DualHeadNet, HeadAccuracy
from ._validation import two_columns
from .augment import PRESET_ALIASES, PRESETS
from .labels import HEADS
from .models import BACKBONES, backbone_name, check_backbone_params, takes_weights
from .persistence import PersistenceMixin

__all__ = ["DualHeadClassifier", "DualHeadLoss", "HeadAccuracy", "DualHeadNet", "HeadProbabilities"]


class HeadProbabilities(list):
    """``[P_condition, P_severity]``, as :meth:`DualHeadClassifier.predict_proba` returns them.

    A list of two arrays that refuses to be read as one array. scikit-learn's string
    scorers (``GridSearchCV(scoring="neg_log_loss")``, ``"roc_auc_ovr"``...) read
    ``predict_proba`` as one array; they fail here with a message that names the scorers
    that work (:func:`spinecls.metrics.head_scorer`, :data:`spinecls.metrics.rsna_scorer`),
    instead of numpy's "inhomogeneous shape".
    """

    def __array__(self, dtype=None, copy=None):
        raise ValueError(
            "predict_proba gives one array per head, [P_condition, P_severity], not one "
            "array: take one (predict_proba(X)[1]); to score one head in GridSearchCV, use "
            "spinecls.metrics.head_scorer(head, metric), e.g. head_scorer('severity', "
            "'neg_log_loss'), or spinecls.metrics.rsna_scorer for the competition score"
        )


class DualHeadClassifier(PersistenceMixin, MultiOutputMixin, ClassifierMixin, BaseEstimator):
    """A dual-head CNN (condition and severity) trained with skorch.

    Parameters
    ----------
    backbone : str, torch.nn.Module class or callable, default="simple"
        A key of :data:`spinecls.models.BACKBONES`: ``"simple"`` (the study's model 1),
        ``"inception"`` (model 2), ``"vgg16"`` (model 3), ``"resnet18"``,
        ``"efficientnet_b0"``, ``"densenet121"``, or one registered with
        :func:`spinecls.models.register_backbone`. Or, as skorch's ``module=``, a
        module class or a callable, built as ``backbone(in_channels, n_conditions,
        n_severities, **module_params)``: unlike a registry entry, it reaches the
        worker processes of ``GridSearchCV(n_jobs=2)``.
    lr : float, default=1e-3
        Learning rate.
    max_epochs : int, default=20
    batch_size : int, default=16
        Training and inference batch size.
    optimizer : {"adam", "adamw", "sgd"} or torch optimizer class, default="adam"
    weight_decay : float, default=0
    early_stopping : int or None, default=5
        Patience (epochs) of early stopping on the validation loss (the training loss
        without validation); the best epoch's weights are kept. None or 0: off.
    lr_patience : int or None, default=2
        Patience of ReduceLROnPlateau on the same loss. None: off.
    lr_factor : float, default=0.75
        ReduceLROnPlateau's factor.
    severity_weights : None, "rsna", sequence or dict, default=None
        Class weights of the severity loss. ``"rsna"``: the competition's 1 / 2 / 4
        for normal_mild / moderate / severe (severity labels as names or codes 0-2).
    augment : None, "study", "light" or albumentations transform, default=None
        Per-sample augmentation in training only. ``"study"`` is the study's model 3
        list (``"seed"``, its former name, still works). A horizontal flip swaps Left
        and Right condition labels.
    weights : None, str, path-like or torchvision weights member, default=None
        Pretrained weights for backbones that take them (torchvision's): a local state
        dict file, or torchvision weights such as ``"IMAGENET1K_V1"`` or
        ``ResNet18_Weights.IMAGENET1K_V1`` read from torchvision's cache. Nothing is
        downloaded. Other backbones refuse them.
    valid_size : float or None, default=0.15
        Share of the training data held out for validation (by study when ``fit``
        gets ``groups``). None or 0: no validation.
    device : str, default="cpu"
        Torch device, e.g. ``"cuda"``.
    random_state : int, RandomState or None, default=None
        Seeds the split, the weights, the batch order and the augmentation; the
        caller's global torch generators are left as they were.
    verbose : int, default=0
        1: skorch's epoch table and a tqdm bar over batches.
    **module_params
        Backbone parameters, prefixed ``module__`` as in skorch (e.g.
        ``module__hidden=64``, ``module__dropout=0.5``, ``module__freeze_features=True``).
        Any other name raises TypeError.

    Attributes
    ----------
    classes_ : list of two ndarrays
        Condition classes and severity classes, sorted, as found in y.
    n_features_in_ : int
        Channels of the training images.
    input_shape_ : tuple of int
        ``(channels, height, width)`` of the training images.
    net_ : DualHeadNet
        The fitted skorch net (its ``module_`` is the torch model).
    valid_index_ : ndarray of int or None
        Positions (in ``X``) of the samples held out for validation.
    history_ : skorch.history.History
        Per epoch: ``train_loss``, ``valid_loss``, ``{train,valid}_{condition,severity}_acc``,
        ``lr``-scheduler state, timings.

    See Also
    --------
    spinecls.LumbarPatchTransformer : Makes the images this estimator takes.

    Examples
    --------
    >>> import numpy as np
    >>> from spinecls import DualHeadClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 1, 32, 32), dtype=np.float32)
    >>> y = np.column_stack([rng.integers(0, 5, 40), rng.integers(0, 3, 40)])
    >>> clf = DualHeadClassifier(max_epochs=1, random_state=0).fit(X, y)
    >>> [p.shape for p in clf.predict_proba(X)]
    [(40, 5), (40, 3)]
    """

    _parameter_constraints: dict = {
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
        "augment": [StrOptions({*PRESETS, *PRESET_ALIASES}), A.BaseCompose, A.BasicTransform, None],
        "weights": [str, os.PathLike, WeightsEnum, None],
        "valid_size": [Interval(Real, 0, 1, closed="left"), None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }
    _persisted_fields = ("classes", "input_shape", "history")

    def __init__(
        self,
        backbone="simple",
        lr=1e-3,
        max_epochs=20,
        batch_size=16,
        optimizer="adam",
        weight_decay=0.0,
        early_stopping=5,
        lr_patience=2,
        lr_factor=0.75,
        severity_weights=None,
        augment=None,
        weights=None,
        valid_size=0.15,
        device="cpu",
        random_state=None,
        verbose=0,
        **module_params,
    ):
        self.backbone = backbone
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.lr_patience = lr_patience
        self.lr_factor = lr_factor
        self.severity_weights = severity_weights
        self.augment = augment
        self.weights = weights
        self.valid_size = valid_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        for key, value in module_params.items():
            if not key.startswith("module__"):
                # As for any Python call, and as skorch does: a typo must not vanish
                # on clone, so it cannot wait for fit.
                raise TypeError(_unexpected(type(self), key))
            setattr(self, key, value)

    # -- scikit-learn plumbing ---------------------------------------------------------
    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        params.update({k: v for k, v in vars(self).items() if k.startswith("module__")})
        return params

    def set_params(self, **params):
        for key in [k for k in params if k.startswith("module__")]:
            setattr(self, key, params.pop(key))
        return super().set_params(**params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.single_output = False
        tags.target_tags.multi_output = True
        tags.non_deterministic = self.random_state is None
        return tags

    # -- validation --------------------------------------------------------------------
    def _check_params(self) -> None:
        """Check every parameter as fit does, without allocating a module."""
        self._validate_params()
        if any(k == "module__weights" for k in vars(self)):
            raise ValueError("pretrained weights are the 'weights' parameter, not module__weights")
        if self.weights is not None and not takes_weights(self.backbone):
            raise ValueError(
                f"backbone {backbone_name(self.backbone)} takes no pretrained weights; "
                f"weights={self.weights!r} is for {[n for n in BACKBONES if takes_weights(n)]}"
            )
        params = _net.module_params(self.get_params(deep=False))
        check_backbone_params(self.backbone, params, prefix="module__")
        try:
            torch.device(self.device)
        except RuntimeError as exc:
            raise ValueError(f"device={self.device!r} is not a torch device ({exc})") from None

    def _check_X(self, X, reset: bool) -> np.ndarray:
        if not reset:
            check_is_fitted(self, "net_")
        array = _check_images(X, None if reset else self.input_shape_)
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

    # -- training ----------------------------------------------------------------------
    def fit(self, X, y, groups=None):
        """Train the network.

        Parameters
        ----------
        X : ndarray of shape (n_samples, channels, height, width), float
            Images, e.g. from :class:`spinecls.LumbarPatchTransformer`.
        y : DataFrame or array of shape (n_samples, 2)
            Condition then severity labels (strings or ints).
        groups : array-like of shape (n_samples,), optional
            Study ids: the validation split keeps each study on one side.

        Returns
        -------
        self
        """
        self._check_params()
        X = self._check_X(X, reset=True)
        self.classes_, codes = _check_y(y, len(X))
        seed = _net.seed_from(self.random_state)
        train, valid = _net.validation_split(len(X), groups, self.valid_size, seed)
        # Tensors made once here; skorch's own Dataset would convert every sample.
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(codes)
        net = _net.make_net(
            self.get_params(deep=False),
            classes=self.classes_,
            in_channels=self.input_shape_[0],
            seed=seed,
            valid=None if valid is None else TensorDataset(X_t[valid], y_t[valid]),
        )
        with _net.torch_seed(seed, self.device):  # skorch initialises the module in fit
            net.fit(TensorDataset(X_t[train], y_t[train]), y=None)
        self.net_ = net
        self.history_ = net.history
        self.valid_index_ = valid
        return self

    # -- inference ---------------------------------------------------------------------
    def predict_proba(self, X) -> list[np.ndarray]:
        """Class probabilities of both heads.

        Parameters
        ----------
        X : ndarray of shape (n_samples, channels, height, width)

        Returns
        -------
        HeadProbabilities
            A list ``[P_condition (n_samples, n_condition_classes), P_severity
            (n_samples, n_severity_classes)]``, columns in the order of ``classes_[0]``
            and ``classes_[1]``. It is not one array: ``np.asarray`` on it raises an
            error that names the per-head scorers (:func:`spinecls.metrics.head_scorer`).
        """
        X = self._check_X(X, reset=False)
        return HeadProbabilities(self.net_.predict_proba(torch.from_numpy(X)))

    def predict(self, X) -> np.ndarray:
        """Labels of both heads: an (n_samples, 2) array, condition then severity."""
        probas = self.predict_proba(X)
        columns = [c[p.argmax(axis=1)] for c, p in zip(self.classes_, probas)]
        kinds = {column.dtype.kind for column in columns}
        dtype = np.result_type(*columns) if len(kinds) == 1 and kinds <= set("iuUS") else object
        out = np.empty((len(columns[0]), 2), dtype=dtype)
        out[:, 0], out[:, 1] = columns
        return out

    def score(self, X, y, sample_weight=None) -> float:
        """Mean of the condition head's and the severity head's accuracies.

        Parameters
        ----------
        X : ndarray of shape (n_samples, channels, height, width)
        y : DataFrame or array of shape (n_samples, 2)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        predicted = self.predict(X)
        accuracies = [
            accuracy_score(
                truth.astype(classes.dtype),
                predicted[:, k].astype(classes.dtype),
                sample_weight=sample_weight,
            )
            for k, (truth, classes) in enumerate(zip(two_columns(y), self.classes_))
        ]
        return float(np.mean(accuracies))

    # -- persistence (PersistenceMixin: save, load) -----------------------------------
    def _get_persisted(self) -> tuple[dict, dict]:
        check_is_fitted(self, "net_")
        fitted = {
            "classes": [c.tolist() for c in self.classes_],
            "input_shape": list(self.input_shape_),
            "history": self.history_.to_list(),
        }
        return fitted, self.net_.module_.state_dict()

    def _set_persisted(self, fitted: dict, state_dict: dict) -> None:
        classes, shape = fitted["classes"], fitted["input_shape"]  # types checked on reading
        if len(classes) != 2 or len(shape) != 3:
            raise ValueError("a DualHeadClassifier has two 'classes' lists and a 3-D 'input_shape'")
        self._check_params()
        self.net_ = _net.restore_net(
            self.get_params(deep=False),
            classes=classes,
            input_shape=shape,
            state_dict=state_dict,
            history=fitted["history"],
        )
        self.classes_, self.input_shape_, self.n_features_in_ = classes, shape, shape[0]
        self.history_ = self.net_.history


def _unexpected(cls: type, key: str) -> str:
    close = difflib.get_close_matches(key, cls._get_param_names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"{cls.__name__} got an unexpected parameter {key!r}{hint}; "
        f"backbone parameters take the prefix 'module__' (module__{key})"
    )


def _check_images(X, fitted_shape: tuple | None) -> np.ndarray:
    """X as an array of 4-D float images, of the fitted shape when there is one."""
    array = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if array.ndim != 4:
        raise ValueError(
            "X must be a 4-D array (n_samples, channels, height, width) as "
            f"LumbarPatchTransformer returns; got shape {array.shape}"
        )
    if array.dtype.kind != "f":
        raise ValueError(
            f"X must hold floating point values (float32 patches); got dtype {array.dtype}"
        )
    if min(array.shape[2:]) < 8:
        raise ValueError(f"images must be at least 8 x 8 pixels; got {array.shape[2:]}")
    if fitted_shape is not None and tuple(array.shape[1:]) != tuple(fitted_shape):
        raise ValueError(
            f"X has images of shape (channels, height, width) = {tuple(array.shape[1:])}, "
            f"but this classifier was fitted on {tuple(fitted_shape)}"
        )
    return array


def _check_y(y, n_samples: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Classes of each head and the (n_samples, 2) codes of y."""
    columns = two_columns(y)
    if len(columns[0]) != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {len(columns[0])}")
    classes, codes = [], []
    for head, column in zip(HEADS, columns):
        if pd.isna(column).any():
            raise ValueError(f"y's {head} column has missing values")
        if column.dtype == object and all(isinstance(v, str) for v in column):
            column = column.astype(str)
        values = np.unique(column)
        if len(values) < 2:
            raise ValueError(
                f"the {head} head needs at least two classes in y; got {values.tolist()}"
            )
        classes.append(values)
        codes.append(np.searchsorted(values, column))
    return classes, np.column_stack(codes).astype(np.int64)
