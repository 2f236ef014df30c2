"""The skorch side of DualHeadClassifier: the net, its callbacks and its checks.

The two-head loss is in :mod:`spinecls.classifier._loss`.

Written around skorch's known pitfalls for two-headed models:

- ``NeuralNet.predict_proba`` keeps only the first element of a tuple output, so
  :meth:`DualHeadNet.predict_proba` returns both heads;
- ``NeuralNetClassifier`` infers one ``classes_`` over both columns of y and
  stratifies on them, so the net is a plain ``NeuralNet`` with a two-head loss;
- skorch's default validation split is an unshuffled KFold, which puts patches of one
  study on both sides: :func:`validation_split` shuffles, by study when it can;
- the training iterator does not shuffle unless told: ``iterator_train__shuffle=True``;
- weights are seeded before ``initialize``, inside
  :func:`spinecls._utils.accelerate.torch_seed`, which leaves the caller's global torch
  generators as they were.

Test-time augmentation stacks the views of each batch into one skorch
``evaluation_step`` (:meth:`DualHeadNet.predict_logits`), so no copy of the whole input
is made per view.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, LRScheduler, ProgressBar
from skorch.dataset import unpack_data
from skorch.helper import predefined_split
from skorch.history import History
from skorch.utils import to_device, to_numpy

from .._utils.accelerate import PrecisionMixin, build_net
from ..augment import AugmentedDataset, lateral_swap, make_augmentation, tta_views
from ..labels import HEADS
from ..models import (
    BACKBONES,
    backbone_name,
    build_backbone,
    build_ordinal,
    check_backbone_params,
    takes_weights,
)
from ..persistence._base import check_state_dict
from ._loss import DualHeadLoss, any_severe_params, severity_class_weights, severity_order

__all__ = [
    "OPTIMIZERS",
    "DualHeadLoss",
    "DualHeadNet",
    "HeadAccuracy",
    "any_severe_params",
    "check_net_params",
    "make_net",
    "module_builder",
    "module_params",
    "restore_net",
    "severity_class_weights",
    "validation_split",
]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
"""Optimizers by the names ``DualHeadClassifier(optimizer=...)`` takes."""


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


class DualHeadNet(PrecisionMixin, NeuralNet):
    """skorch ``NeuralNet`` that augments training batches and predicts both heads.

    Parameters
    ----------
    *args, **kwargs
        As for :class:`skorch.NeuralNet`, and ``precision`` and ``channels_last`` of
        :class:`spinecls._utils.accelerate.PrecisionMixin`.
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

    def predict_proba(self, X) -> list[np.ndarray]:
        """Softmax probabilities of both heads, ``[P_condition, P_severity]``.

        skorch's own ``predict_proba`` keeps only the first output of a tuple; this one
        runs the same :meth:`forward_iter` and keeps both.
        """
        return [to_numpy(torch.softmax(torch.from_numpy(z), dim=1)) for z in self.predict_logits(X)]

    def predict_logits(self, X, tta: str | None = None) -> list[np.ndarray]:
        """Both heads' logits, ``[condition, severity]``: their softmax is the probabilities.

        Parameters
        ----------
        X : tensor or ndarray of shape (n_samples, channels, height, width)
        tta : None or one of :data:`spinecls.augment.TTA_MODES`
            Test-time augmentation: every batch runs through each view of
            :func:`spinecls.augment.tta_views`; a mirrored view's condition columns are
            permuted by ``lateral_swap``; the logits returned are the log of the views'
            mean probabilities.

        Returns
        -------
        list of two float32 ndarrays
        """
        parts: tuple[list, list] = ([], [])
        if tta is None:
            for outputs in self.forward_iter(X, training=False, device=self.device):
                for part, logits in zip(parts, outputs):
                    part.append(to_numpy(logits))
            return [np.concatenate(part) for part in parts]
        views = tta_views(tta, *X.shape[-2:])
        swap = torch.as_tensor(self.lateral_swap)
        mirrored = [m for _, m in views]
        for batch in self.get_iterator(self.get_dataset(X), training=False):
            Xi, yi = unpack_data(batch)
            Xi = to_device(Xi, self.device)  # the views run where the model runs
            # One forward pass over all views stacked: larger batches run faster than
            # one pass per view (eval mode, so no row sees another's statistics).
            stacked = torch.cat([view(Xi) for view, _ in views])
            outputs = self.evaluation_step((stacked, yi), training=False)
            for k, (part, logits) in enumerate(zip(parts, outputs)):
                log_ps = torch.log_softmax(logits.float(), dim=1).unflatten(0, (len(views), -1))
                if k == 0 and any(mirrored):
                    swapped = log_ps[:, :, swap.to(log_ps.device)]
                    flags = torch.tensor(mirrored, device=log_ps.device)[:, None, None]
                    log_ps = torch.where(flags, swapped, log_ps)
                mean = torch.logsumexp(log_ps, dim=0) - math.log(len(views))
                part.append(to_numpy(mean))
        return [np.concatenate(part) for part in parts]


def check_net_params(params: dict) -> None:
    """Check the backbone, its weights, its parameters and the device, allocating nothing.

    Parameters
    ----------
    params : dict
        A DualHeadClassifier's ``get_params(deep=False)``, already type-checked.
    """
    if "module__weights" in params:
        raise ValueError("pretrained weights are the 'weights' parameter, not module__weights")
    if params["weights"] is not None and not takes_weights(params["backbone"]):
        raise ValueError(
            f"backbone {backbone_name(params['backbone'])} takes no pretrained weights; "
            f"weights={params['weights']!r} is for {[n for n in BACKBONES if takes_weights(n)]}"
        )
    if params["calibration"] is not None and not params["valid_size"]:
        raise ValueError(
            f"calibration={params['calibration']!r} fits on the validation split: "
            f"set valid_size (got {params['valid_size']!r})"
        )
    check_backbone_params(params["backbone"], module_params(params), prefix="module__")
    try:
        torch.device(params["device"])
    except RuntimeError as exc:
        raise ValueError(f"device={params['device']!r} is not a torch device ({exc})") from None


def module_params(params: dict) -> dict:
    """The backbone's keyword arguments from an estimator's parameters (``module__*``)."""
    builder = {k.removeprefix("module__"): v for k, v in params.items() if k.startswith("module__")}
    if takes_weights(params["backbone"]):
        builder["weights"] = params["weights"]
    return builder


def module_builder(params: dict, in_channels: int, classes: list[np.ndarray]) -> partial:
    """The callable skorch builds the module with (``module=``), given ``module_params``.

    With ``ordinal``, the backbone has one severity score and a cumulative link over the
    severity classes in their order (:func:`spinecls.models.build_ordinal`).
    """
    n_conditions, n_severities = map(len, classes)
    if params.get("ordinal"):
        order = severity_order(classes[1])
        return partial(build_ordinal, params["backbone"], in_channels, n_conditions, order)
    return partial(build_backbone, params["backbone"], in_channels, n_conditions, n_severities)


def make_net(
    params: dict, *, classes: list[np.ndarray], in_channels: int, seed=None, valid=None
) -> DualHeadNet:
    """The skorch net for a DualHeadClassifier's parameters (``get_params()``).

    Parameters
    ----------
    params : dict
        The estimator's parameters.
    classes : list of two ndarrays
        ``classes_``: they size the heads and order the severity weights.
    in_channels : int
    seed : int, optional
        Seeds the augmentation.
    valid : torch Dataset, optional
        The validation data (skorch's ``predefined_split``); None: no validation.
    """
    monitor = "valid_loss" if valid is not None else "train_loss"
    callbacks = [("head_accuracy", HeadAccuracy())]
    if params["early_stopping"]:
        stopping = EarlyStopping(monitor=monitor, patience=params["early_stopping"], load_best=True)
        callbacks.append(("early_stopping", stopping))
    if params["lr_patience"] is not None:
        scheduler = LRScheduler(
            policy=torch.optim.lr_scheduler.ReduceLROnPlateau,
            monitor=monitor,
            patience=params["lr_patience"],
            factor=params["lr_factor"],
        )
        callbacks.append(("lr_scheduler", scheduler))
    if params["verbose"]:
        callbacks.append(("progress_bar", ProgressBar()))
    optimizer = params["optimizer"]
    return build_net(
        DualHeadNet,
        params,
        module=module_builder(params, in_channels, classes),
        criterion=DualHeadLoss,
        criterion__severity_weight=severity_class_weights(params["severity_weights"], classes[1]),
        **{
            f"criterion__{k}": v
            for k, v in (any_severe_params(params["any_severe_weight"], classes) or {}).items()
        },
        optimizer=OPTIMIZERS[optimizer] if isinstance(optimizer, str) else optimizer,
        optimizer__weight_decay=params["weight_decay"],
        lr=params["lr"],
        max_epochs=params["max_epochs"],
        batch_size=params["batch_size"],
        iterator_train__shuffle=True,
        train_split=None if valid is None else predefined_split(valid),
        callbacks=callbacks,
        verbose=params["verbose"],
        augmentation=make_augmentation(params["augment"], seed),
        lateral_swap=lateral_swap(classes[0]),
        **{f"module__{k}": v for k, v in module_params(params).items()},
    )


def restore_net(
    params: dict, *, classes: list[np.ndarray], input_shape: tuple, state_dict: dict, history: list
) -> DualHeadNet:
    """A fitted net from saved weights, their names and shapes checked before allocation."""
    params = {**params, "weights": None}  # the state dict holds every weight
    with torch.device("meta"):
        expected = module_builder(params, input_shape[0], classes)(**module_params(params))
    check_state_dict(expected, state_dict)
    net = make_net(params, classes=classes, in_channels=input_shape[0])
    with torch.random.fork_rng(devices=[]):  # the initial weights are replaced at once
        net.initialize()
    net.module_.load_state_dict(state_dict)
    net.history = History(history)
    return net


def validation_split(
    n_samples: int, groups, valid_size, seed: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Training and validation positions for skorch's ``predefined_split``.

    skorch's default split is an unshuffled KFold, which puts patches of one study on
    both sides; this one is shuffled, and grouped when ``groups`` (study ids) are given.
    """
    if not valid_size:
        return np.arange(n_samples), None
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != n_samples:
            raise ValueError(f"groups has {len(groups)} entries for {n_samples} samples")
        if len(np.unique(groups)) < 2:
            raise ValueError("a grouped validation split needs at least two groups")
        splitter = GroupShuffleSplit(n_splits=1, test_size=valid_size, random_state=seed)
    else:
        splitter = ShuffleSplit(n_splits=1, test_size=valid_size, random_state=seed)
    train, valid = next(splitter.split(np.zeros(n_samples), groups=groups))
    if len(valid) == 0 or len(train) == 0:
        raise ValueError(f"valid_size={valid_size} leaves an empty side for {n_samples} samples")
    return train, valid
