"""DualHeadClassifier: the study's dual-head CNNs as one scikit-learn estimator.

Training runs through skorch (``NeuralNet``): its loop, callbacks and history. The
scikit-learn side (parameters, validation, ``classes_``, ``predict_proba``, scoring,
persistence) lives here, around skorch's known pitfalls for two-headed models:

- ``NeuralNet.predict_proba`` keeps only the first element of a tuple output, so
  :meth:`DualHeadClassifier.predict_proba` returns both heads itself;
- ``NeuralNetClassifier`` infers one ``classes_`` over both columns of y and
  stratifies on them, so the net is a plain ``NeuralNet`` with a two-head loss;
- skorch's default validation split is an unshuffled KFold, which puts patches of one
  study on both sides: the split here is shuffled and grouped by study when
  ``groups`` are given;
- the training iterator does not shuffle unless told: ``iterator_train__shuffle=True``;
- weights are seeded before ``initialize``.
"""

from __future__ import annotations

import json
import os
from functools import partial
from numbers import Integral, Real

import albumentations as A
import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, MultiOutputMixin
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, LRScheduler, ProgressBar
from skorch.helper import predefined_split
from skorch.history import History
from torch import nn
from torch.utils.data import TensorDataset

from .augment import AugmentedDataset, lateral_swap, make_augmentation
from .labels import HEADS, SEVERITIES, SEVERITY_WEIGHTS
from .models import BACKBONES, build_backbone, takes_weights

__all__ = ["DualHeadClassifier", "DualHeadLoss", "HeadAccuracy", "DualHeadNet"]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
_FORMAT = "spinecls.DualHeadClassifier"


class DualHeadLoss(nn.Module):
    """Sum of the two heads' cross-entropies; the severity one optionally class-weighted.

    Parameters
    ----------
    severity_weight : sequence of float, optional
        One weight per severity class.
    """

    def __init__(self, severity_weight=None):
        super().__init__()
        weight = None if severity_weight is None else torch.as_tensor(severity_weight).float()
        self.register_buffer("severity_weight", weight)

    def forward(self, y_pred, y_true):
        condition, severity = y_pred
        y_true = y_true.long()
        return nn.functional.cross_entropy(condition, y_true[:, 0]) + nn.functional.cross_entropy(
            severity, y_true[:, 1], weight=self.severity_weight
        )


class HeadAccuracy(Callback):
    """Per-head accuracy of every epoch, from the batches' own predictions.

    Records ``train_condition_acc``, ``train_severity_acc``, ``valid_condition_acc``
    and ``valid_severity_acc`` in the history, without a second pass over the data
    (training accuracy is measured in training mode, as Keras reports it).
    """

    def on_epoch_begin(self, net, **kwargs):
        self.counts_ = {(split, head): [0, 0] for split in ("train", "valid") for head in HEADS}

    def on_batch_end(self, net, batch=None, training=None, y_pred=None, **kwargs):
        if y_pred is None or batch is None:
            return
        y_true = batch[1].to(y_pred[0].device)
        split = "train" if training else "valid"
        for k, head in enumerate(HEADS):
            count = self.counts_[(split, head)]
            count[0] += int((y_pred[k].argmax(dim=1) == y_true[:, k]).sum())
            count[1] += len(y_true)

    def on_epoch_end(self, net, **kwargs):
        for (split, head), (correct, total) in self.counts_.items():
            if total:
                net.history.record(f"{split}_{head}_acc", correct / total)


class DualHeadNet(NeuralNet):
    """skorch ``NeuralNet`` whose training iterator augments images on the fly.

    Parameters
    ----------
    *args, **kwargs
        As for :class:`skorch.NeuralNet`.
    augmentation : albumentations.Compose, optional
        Applied per sample in training only (see :func:`spinecls.augment.make_augmentation`).
    lateral_swap : ndarray of int, optional
        Condition code a mirrored image shows (see :func:`spinecls.augment.lateral_swap`).
    """

    def __init__(self, *args, augmentation=None, lateral_swap=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.augmentation = augmentation
        self.lateral_swap = lateral_swap

    def get_iterator(self, dataset, training=False):
        if training and self.augmentation is not None:
            dataset = AugmentedDataset(dataset, self.augmentation, self.lateral_swap)
        return super().get_iterator(dataset, training=training)


def _seed(random_state) -> int | None:
    if random_state is None:
        return None
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    return int(random_state)


class DualHeadClassifier(MultiOutputMixin, ClassifierMixin, BaseEstimator):
    """A dual-head CNN (condition and severity) trained with skorch.

    Parameters
    ----------
    backbone : str, default="simple"
        A key of :data:`spinecls.models.BACKBONES`: ``"simple"`` (the study's model 1),
        ``"inception"`` (model 2), ``"vgg16"`` (model 3), ``"resnet18"``,
        ``"efficientnet_b0"``, ``"densenet121"``, or one registered with
        :func:`spinecls.models.register_backbone`.
    lr : float, default=1e-3
        Learning rate.
    max_epochs : int, default=20
    batch_size : int, default=16
        Training and inference batch size.
    optimizer : {"adam", "adamw", "sgd"} or torch optimizer class, default="adam"
    weight_decay : float, default=0
    early_stopping : int or None, default=5
        Patience (epochs) of early stopping on the validation loss (the training loss
        without validation); the best epoch's weights are kept. None: off.
    lr_patience : int, default=2
        Patience of ReduceLROnPlateau on the same loss.
    lr_factor : float, default=0.75
        ReduceLROnPlateau's factor.
    severity_weights : None, "rsna", sequence or dict, default=None
        Class weights of the severity loss. ``"rsna"``: the competition's 1 / 2 / 4
        for normal_mild / moderate / severe (severity labels as names or codes 0-2).
    augment : None, "seed", "light" or albumentations transform, default=None
        Per-sample augmentation in training only. ``"seed"`` is the study's model 3
        list. A horizontal flip swaps Left and Right condition labels.
    weights : None, str or path-like, default=None
        Pretrained weights for backbones that take them (torchvision's): a local
        state dict file or a torchvision weights name such as ``"IMAGENET1K_V1"`` read
        from torchvision's cache. Nothing is downloaded.
    valid_size : float or None, default=0.15
        Share of the training data held out for validation (by study when ``fit``
        gets ``groups``). None or 0: no validation.
    device : str, default="cpu"
        Torch device, e.g. ``"cuda"``.
    random_state : int or None, default=None
        Seeds the split, the weights, the batch order and the augmentation.
    verbose : int, default=0
        1: skorch's epoch table and a tqdm bar over batches.
    **module_params
        Backbone parameters, prefixed ``module__`` as in skorch (e.g.
        ``module__hidden=64``, ``module__dropout=0.5``, ``module__freeze_features=True``).

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
            setattr(self, key, value)

    # -- scikit-learn plumbing ---------------------------------------------------------
    def _module_params(self) -> dict:
        return {k: v for k, v in vars(self).items() if k.startswith("module__")}

    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        params.update(self._module_params())
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
    def _check_X(self, X, reset: bool) -> np.ndarray:
        if not reset:
            check_is_fitted(self, "net_")
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
        if not reset and tuple(array.shape[1:]) != tuple(self.input_shape_):
            raise ValueError(
                f"X has images of shape (channels, height, width) = {tuple(array.shape[1:])}, "
                f"but this classifier was fitted on {tuple(self.input_shape_)}"
            )
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
        return np.ascontiguousarray(array)

    def _check_y(self, y, n_samples: int) -> tuple[list[np.ndarray], np.ndarray]:
        if y is None:
            raise ValueError("y is required: two columns, condition then severity")
        columns = (
            [y.iloc[:, k].to_numpy() for k in range(y.shape[1])]
            if isinstance(y, pd.DataFrame)
            else None
        )
        if columns is None:
            array = np.asarray(y)
            if array.ndim != 2 or array.shape[1] != 2:
                raise ValueError(
                    "y must have two columns, condition then severity (a DataFrame or an "
                    f"(n_samples, 2) array); got shape {array.shape}"
                )
            columns = [array[:, 0], array[:, 1]]
        if len(columns) != 2:
            raise ValueError(
                f"y must have two columns, condition then severity; got {len(columns)}"
            )
        if len(columns[0]) != n_samples:
            raise ValueError(f"X has {n_samples} samples but y has {len(columns[0])}")
        classes, codes = [], []
        for head, column in zip(HEADS, columns):
            if pd.isna(column).any():
                raise ValueError(f"y's {head} column has missing values")
            if column.dtype == object:
                column = column.astype(str) if all(isinstance(v, str) for v in column) else column
            values = np.unique(column)
            if len(values) < 2:
                raise ValueError(
                    f"the {head} head needs at least two classes in y; got {values.tolist()}"
                )
            classes.append(values)
            codes.append(np.searchsorted(values, column))
        return classes, np.column_stack(codes).astype(np.int64)

    def _severity_weight(self) -> list[float] | None:
        weights, classes = self.severity_weights, self.classes_[1]
        if weights is None:
            return None
        if isinstance(weights, str):
            if weights != "rsna":
                raise ValueError(
                    f"severity_weights must be None, 'rsna', a sequence or a dict; got {weights!r}"
                )
            table = {**SEVERITY_WEIGHTS, **dict(enumerate(SEVERITY_WEIGHTS[s] for s in SEVERITIES))}
            unknown = [c for c in classes.tolist() if c not in table]
            if unknown:
                raise ValueError(
                    f"severity_weights='rsna' needs severity labels {list(SEVERITIES)} or codes "
                    f"0-2; got {unknown}"
                )
            return [float(table[c]) for c in classes.tolist()]
        if isinstance(weights, dict):
            missing = [c for c in classes.tolist() if c not in weights]
            if missing:
                raise ValueError(f"severity_weights has no weight for class(es) {missing}")
            return [float(weights[c]) for c in classes.tolist()]
        weights = [float(w) for w in weights]
        if len(weights) != len(classes):
            raise ValueError(
                f"severity_weights needs one weight per severity class {classes.tolist()}; "
                f"got {len(weights)}"
            )
        return weights

    def _check_params(self):
        unknown = [
            k
            for k in vars(self)
            if not k.startswith("module__")
            and not k.endswith("_")
            and not k.startswith("_")
            and k not in self._get_param_names()
        ]
        if unknown:
            raise TypeError(
                f"DualHeadClassifier got unexpected parameter(s) {unknown}; "
                "backbone parameters take the prefix 'module__'"
            )
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {self.backbone!r}")
        optimizer = self.optimizer
        if isinstance(optimizer, str):
            if optimizer not in OPTIMIZERS:
                raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or a class")
            optimizer = OPTIMIZERS[optimizer]
        for name, low in (("max_epochs", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if not isinstance(value, Integral) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if not isinstance(self.lr, Real) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.valid_size is not None and not 0 <= self.valid_size < 1:
            raise ValueError(f"valid_size must be None or in [0, 1), got {self.valid_size!r}")
        return optimizer

    # -- training ----------------------------------------------------------------------
    def _make_net(self, n_classes, optimizer, seed, train_split, swap):
        has_valid = train_split is not None
        monitor = "valid_loss" if has_valid else "train_loss"
        callbacks = [("head_accuracy", HeadAccuracy())]
        if self.early_stopping:
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(monitor=monitor, patience=self.early_stopping, load_best=True),
                )
            )
        if self.lr_patience is not None:
            callbacks.append(
                (
                    "lr_scheduler",
                    LRScheduler(
                        policy=torch.optim.lr_scheduler.ReduceLROnPlateau,
                        monitor=monitor,
                        patience=self.lr_patience,
                        factor=self.lr_factor,
                    ),
                )
            )
        if self.verbose:
            callbacks.append(("progress_bar", ProgressBar()))
        module_params = {k.removeprefix("module__"): v for k, v in self._module_params().items()}
        if takes_weights(self.backbone):
            module_params["weights"] = self.weights
        module = partial(
            build_backbone, self.backbone, self.input_shape_[0], n_classes[0], n_classes[1]
        )
        return DualHeadNet(
            module=module,
            criterion=DualHeadLoss,
            criterion__severity_weight=self._severity_weight(),
            optimizer=optimizer,
            optimizer__weight_decay=self.weight_decay,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            iterator_train__shuffle=True,
            train_split=train_split,
            callbacks=callbacks,
            device=self.device,
            verbose=self.verbose,
            augmentation=make_augmentation(self.augment, seed),
            lateral_swap=swap,
            **{f"module__{k}": v for k, v in module_params.items()},
        )

    def _split(self, n_samples, groups, seed):
        if not self.valid_size:
            return np.arange(n_samples), None
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != n_samples:
                raise ValueError(f"groups has {len(groups)} entries for {n_samples} samples")
            if len(np.unique(groups)) < 2:
                raise ValueError("a grouped validation split needs at least two groups")
            splitter = GroupShuffleSplit(n_splits=1, test_size=self.valid_size, random_state=seed)
        else:
            splitter = ShuffleSplit(n_splits=1, test_size=self.valid_size, random_state=seed)
        train, valid = next(splitter.split(np.zeros(n_samples), groups=groups))
        if len(valid) == 0 or len(train) == 0:
            raise ValueError(
                f"valid_size={self.valid_size} leaves an empty side for {n_samples} samples"
            )
        return train, valid

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
        optimizer = self._check_params()
        X = self._check_X(X, reset=True)
        self.classes_, codes = self._check_y(y, len(X))
        seed = _seed(self.random_state)
        train, valid = self._split(len(X), groups, seed)
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(codes)
        train_split = None
        if valid is not None:
            train_split = predefined_split(TensorDataset(X_t[valid], y_t[valid]))
        net = self._make_net(
            [len(c) for c in self.classes_],
            optimizer,
            seed,
            train_split,
            lateral_swap(self.classes_[0]),
        )
        if seed is not None:
            torch.manual_seed(seed)  # skorch's fit initialises the module from here
        # Tensor datasets batch by slicing tensors, without skorch's per-sample indexing.
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
        list of two ndarrays
            ``[P_condition (n_samples, n_condition_classes), P_severity (n_samples,
            n_severity_classes)]``, columns in the order of ``classes_[0]`` and
            ``classes_[1]``.
        """
        X = self._check_X(X, reset=False)
        module = self.net_.module_
        module.eval()
        device = self.net_.device
        parts: tuple[list, list] = ([], [])
        with torch.inference_mode():
            for start in range(0, len(X), self.batch_size):
                batch = torch.from_numpy(X[start : start + self.batch_size]).to(device)
                for k, logits in enumerate(self.net_.infer(batch)):
                    parts[k].append(torch.softmax(logits, dim=1).cpu().numpy())
        return [np.concatenate(p) for p in parts]

    def predict(self, X) -> np.ndarray:
        """Labels of both heads: an (n_samples, 2) array, condition then severity."""
        probas = self.predict_proba(X)
        columns = [c[p.argmax(axis=1)] for c, p in zip(self.classes_, probas)]
        same_kind = (
            columns[0].dtype.kind == columns[1].dtype.kind and columns[0].dtype.kind in "iuUS"
        )
        dtype = np.result_type(*columns) if same_kind else object
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
        y = y.to_numpy() if isinstance(y, pd.DataFrame) else np.asarray(y)
        if y.ndim != 2 or y.shape[1] != 2:
            raise ValueError(f"y must have two columns; got shape {y.shape}")
        return float(
            np.mean(
                [
                    accuracy_score(
                        y[:, k].astype(self.classes_[k].dtype),
                        predicted[:, k].astype(self.classes_[k].dtype),
                        sample_weight=sample_weight,
                    )
                    for k in range(2)
                ]
            )
        )

    # -- persistence -------------------------------------------------------------------
    def _params_to_json(self) -> dict:
        params = self.get_params(deep=False)
        augment = params["augment"]
        if isinstance(augment, (A.BaseCompose, A.BasicTransform)):
            params["augment"] = {"albumentations": A.to_dict(augment)}
        optimizer = params["optimizer"]
        if not isinstance(optimizer, str):
            names = {cls: name for name, cls in OPTIMIZERS.items()}
            if optimizer not in names:
                raise ValueError(
                    f"cannot save optimizer {optimizer!r}: only {sorted(OPTIMIZERS)} are saved"
                )
            params["optimizer"] = names[optimizer]
        if isinstance(params["weights"], os.PathLike):
            params["weights"] = os.fspath(params["weights"])
        if isinstance(params["random_state"], np.random.RandomState):
            params["random_state"] = None
        try:
            return json.loads(json.dumps(params))
        except TypeError as exc:
            raise ValueError(f"cannot save parameters as JSON: {exc}") from exc

    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> None:
        """Write the fitted model to one file, without pickle.

        The file holds the module's state dict (tensors) and, as JSON strings, the
        parameters, classes, input shape and training history; :meth:`load` reads it
        with ``torch.load(weights_only=True)``, so loading runs no code from the file.

        Parameters
        ----------
        path : str or path-like
        metadata : dict, optional
            Anything JSON-serialisable to keep beside the model (e.g. the parameters of
            the transformer that made its patches); :meth:`load` returns it as
            ``metadata_``.
        """
        check_is_fitted(self, "net_")
        classes = [c.tolist() for c in self.classes_]
        state = {
            "format": _FORMAT,
            "version": 1,
            "params": json.dumps(self._params_to_json()),
            "classes": json.dumps(classes),
            "input_shape": list(self.input_shape_),
            "history": json.dumps(self.history_.to_list(), default=float),
            "metadata": json.dumps(metadata or {}),
            "state_dict": {k: v.detach().cpu() for k, v in self.net_.module_.state_dict().items()},
        }
        path = os.fspath(path)
        tmp = f"{path}.partial"
        torch.save(state, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> DualHeadClassifier:
        """Read a model written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
        device : str, optional
            Overrides the saved ``device`` (e.g. load a GPU-trained model on "cpu").

        Returns
        -------
        DualHeadClassifier
            Fitted: ``predict_proba`` gives what the saved model gave; ``metadata_``
            holds what :meth:`save` was given.
        """
        try:
            state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
            raise ValueError(
                f"{path} is not a model file written by DualHeadClassifier.save "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a model file written by DualHeadClassifier.save")
        params = json.loads(state["params"])
        augment = params.get("augment")
        if isinstance(augment, dict) and "albumentations" in augment:
            params["augment"] = A.from_dict(augment["albumentations"])
        if device is not None:
            params["device"] = device
        model = cls(**params)
        model.classes_ = [np.asarray(c) for c in json.loads(state["classes"])]
        model.input_shape_ = tuple(state["input_shape"])
        model.n_features_in_ = model.input_shape_[0]
        saved_weights, model.weights = model.weights, None  # the state dict has them all
        net = model._make_net(
            [len(c) for c in model.classes_],
            model._check_params(),
            None,
            None,
            lateral_swap(model.classes_[0]),
        )
        model.weights = saved_weights
        net.initialize()
        net.module_.load_state_dict(state["state_dict"])
        net.history = History(json.loads(state["history"]))
        model.net_ = net
        model.history_ = net.history
        model.metadata_ = json.loads(state.get("metadata", "{}"))
        return model
