"""DualHeadClassifier: the study's dual-head CNNs as one scikit-learn estimator.

This module holds the scikit-learn contract: parameters, validation, ``classes_``,
``predict_proba``, scoring. Training runs through skorch; the net, its loss, callbacks,
validation split and test-time augmentation are in :mod:`spinecls._net`, the
augmentations themselves in :mod:`spinecls.augment`, temperature scaling in
:mod:`spinecls.calibration`, saving and loading in :mod:`spinecls.persistence`.
"""

from __future__ import annotations

import difflib
import os
import warnings
from numbers import Integral, Real

import albumentations as A
import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, MultiOutputMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch.utils.data import TensorDataset
from torchvision.models import WeightsEnum

from . import _accelerate, _net
from ._meta import mean_head_accuracy
from ._net import DualHeadLoss, DualHeadNet, HeadAccuracy
from ._validation import check_images, two_columns
from .augment import PRESET_ALIASES, PRESETS, TTA_MODES
from .calibration import check_temperatures, fit_temperatures, softmax
from .labels import HEADS
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
    any_severe_weight : float, default=0
        Factor of an auxiliary loss for the score's any-severe spinal term: on spinal
        canal rows, the cross-entropy of P(severe) weighted 1 / 2 / 4 like the metric
        (:class:`spinecls._loss.DualHeadLoss`). 0: off.
    augment : None, "study", "light" or albumentations transform, default=None
        Per-sample augmentation in training only. ``"study"`` is the study's model 3
        list (``"seed"``, its former name, still works). A horizontal flip swaps Left
        and Right condition labels of axial (subarticular) crops only; on a sagittal
        crop it mirrors front and back (:func:`spinecls.augment.lateral_swap`).
    tta : None, "flip" or "flip+shift", default=None
        Test-time augmentation: ``predict_proba`` averages over the image and its mirror
        (condition columns swapped by the training rule), and for ``"flip+shift"`` two
        shifted copies (:func:`spinecls.augment.tta_views`), stacked in one forward pass.
    weights : None, str, path-like or torchvision weights member, default=None
        Pretrained weights for backbones that take them (torchvision's): a local state
        dict file, or torchvision weights such as ``"IMAGENET1K_V1"`` or
        ``ResNet18_Weights.IMAGENET1K_V1`` read from torchvision's cache. Nothing is
        downloaded. Other backbones refuse them.
    valid_size : float or None, default=0.15
        Share of the training data held out for validation (by study when ``fit``
        gets ``groups``). None or 0: no validation.
    calibration : None or "temperature", default=None
        ``"temperature"``: after training, fit one temperature per head on the
        validation split (needs ``valid_size``); a head with too few rows there stays
        uncalibrated, with a warning (:mod:`spinecls.calibration`).
    device : str, default="cpu"
        Torch device, e.g. ``"cuda"``. With an ``accelerator``, leave it at its default
        (or name the accelerator's device): the accelerator places the model.
    accelerator : accelerate.Accelerator or None, default=None
        Train through Hugging Face accelerate (skorch's ``AccelerateMixin``): on every
        GPU or node of an ``accelerate launch`` run, data-parallel. ``batch_size`` is
        then per process. Not saved: a loaded model has ``accelerator=None``.
        Needs the ``accelerate`` extra.
    precision : {"32", "bf16", "fp16"}, default="32"
        Autocast precision of the forward passes (outputs stay float32). ``"fp16"``
        scales the loss and needs a CUDA device. With an ``accelerator``, leave it at
        ``"32"`` (or repeat it): ``Accelerator(mixed_precision=...)`` decides.
    channels_last : bool, default=False
        Keep weights and images in channels-last memory format (faster convolutions
        on GPUs with tensor cores, above all with bf16 or fp16).
    num_workers : int, default=0
        DataLoader worker processes that assemble (and augment) batches; 0: in the
        main process. Memory is pinned automatically when training on CUDA.
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
    temperatures_ : ndarray of shape (2,) or None
        Condition and severity temperatures that ``predict_proba`` divides the logits
        by (``calibration="temperature"`` or :func:`spinecls.calibration.calibrate_heads`);
        None: uncalibrated.

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
        "any_severe_weight": [Interval(Real, 0, None, closed="left")],
        "augment": [StrOptions({*PRESETS, *PRESET_ALIASES}), A.BaseCompose, A.BasicTransform, None],
        "tta": [StrOptions(set(TTA_MODES)), None],
        "weights": [str, os.PathLike, WeightsEnum, None],
        "valid_size": [Interval(Real, 0, 1, closed="left"), None],
        "calibration": [StrOptions({"temperature"}), None],
        "device": [str, torch.device],
        "accelerator": "no_validation",  # an accelerate.Accelerator: checked in fit
        "precision": [StrOptions(set(_accelerate.PRECISIONS))],
        "channels_last": ["boolean"],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }
    _persisted_fields = ("classes", "input_shape", "history", "temperatures")
    _persisted_defaults = {"temperatures": None}  # files written before calibration
    _unsaved_params = ("accelerator",)

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
        any_severe_weight=0.0,
        augment=None,
        tta=None,
        weights=None,
        valid_size=0.15,
        calibration=None,
        device="cpu",
        accelerator=None,
        precision="32",
        channels_last=False,
        num_workers=0,
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
        self.any_severe_weight = any_severe_weight
        self.augment = augment
        self.tta = tta
        self.weights = weights
        self.valid_size = valid_size
        self.calibration = calibration
        self.device = device
        self.accelerator = accelerator
        self.precision = precision
        self.channels_last = channels_last
        self.num_workers = num_workers
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
        _net.check_params(self.get_params(deep=False))
        _accelerate.check_params(self.get_params(deep=False))

    def _check_X(self, X, reset: bool) -> np.ndarray:
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

    # -- training ----------------------------------------------------------------------
    def fit(self, X, y, groups=None):
        """Train the network.

        Parameters
        ----------
        X : ndarray of shape (n_samples, channels, height, width), float
            Images, e.g. from :class:`spinecls.LumbarPatchTransformer`.
        y : DataFrame or array of shape (n_samples, 2)
            Condition then severity labels (strings or ints). A head with a single
            class in y (the condition head of a model of one condition group, see
            :class:`spinecls.routing.ConditionGroupClassifier`) predicts it with
            probability 1 and adds nothing to the loss; a single severity class also
            warns, as that head then learns nothing.
        groups : array-like of shape (n_samples,), optional
            Study ids: the validation split keeps each study on one side.

        Returns
        -------
        self
        """
        self._check_params()
        X = self._check_X(X, reset=True)
        self.classes_, codes = _check_y(y, len(X))
        if _net.any_severe_params(self.any_severe_weight, self.classes_) is None:
            warnings.warn(
                f"any_severe_weight={self.any_severe_weight} has no effect: the condition "
                "classes have no spinal canal class ('Spinal Canal Stenosis' or code 0)",
                UserWarning,
                stacklevel=2,
            )
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
        device = _accelerate.training_device(self.get_params(deep=False))
        with _net.torch_seed(seed, device):  # skorch initialises the module in fit
            net.fit(TensorDataset(X_t[train], y_t[train]), y=None)
        self.net_ = net
        self.history_ = net.history
        self.valid_index_ = valid
        self.temperatures_ = None
        if self.calibration is not None:
            self.temperatures_ = fit_temperatures(self, X[valid], codes[valid])
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
            and ``classes_[1]``; averaged over the views of ``tta``, then divided by
            ``temperatures_`` (in logit space). It is not one array: ``np.asarray`` on it
            raises an error that names the per-head scorers
            (:func:`spinecls.metrics.head_scorer`).
        """
        logits = self._logits(X)  # checks that the classifier is fitted
        temperatures = self.temperatures_
        return HeadProbabilities(
            softmax(z, None if temperatures is None else temperatures[k])
            for k, z in enumerate(logits)
        )

    def _logits(self, X) -> list[np.ndarray]:
        """Both heads' logits before any temperature, with test-time augmentation."""
        X = self._check_X(X, reset=False)
        return self.net_.predict_logits(torch.from_numpy(X), tta=self.tta)

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
        return mean_head_accuracy(self, X, y, sample_weight)

    # -- persistence (PersistenceMixin: save, load) -----------------------------------
    def _get_persisted(self) -> tuple[dict, dict]:
        check_is_fitted(self, "net_")
        fitted = {
            "classes": [c.tolist() for c in self.classes_],
            "input_shape": list(self.input_shape_),
            "history": self.history_.to_list(),
            "temperatures": None if self.temperatures_ is None else self.temperatures_.tolist(),
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
        self.temperatures_ = check_temperatures(fitted["temperatures"])


def _unexpected(cls: type, key: str) -> str:
    close = difflib.get_close_matches(key, cls._get_param_names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"{cls.__name__} got an unexpected parameter {key!r}{hint}; "
        f"backbone parameters take the prefix 'module__' (module__{key})"
    )


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
    return classes, np.column_stack(codes).astype(np.int64)
