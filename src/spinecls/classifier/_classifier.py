"""DualHeadClassifier: the study's dual-head CNNs as one scikit-learn estimator.

This module holds the scikit-learn contract: parameters, ``fit``, ``classes_``,
``predict_proba``, scoring. What the classifier accepts (the parameter constraints, the
``module__*`` backbone parameters, the checks of X and y) is in
:mod:`spinecls.classifier._checks`; what its model file holds in
:mod:`spinecls.classifier._state` (saving and loading themselves in
:mod:`spinecls.persistence`). Training runs through skorch; the net, its loss, callbacks,
validation split and test-time augmentation are in :mod:`spinecls.classifier._net`, the
augmentations themselves in :mod:`spinecls.augment`, temperature scaling in
:mod:`spinecls.calibration`.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, MultiOutputMixin
from torch.utils.data import TensorDataset

from .._utils import accelerate
from .._utils.dual_head import HeadClasses, HeadProbabilities, decided_labels, mean_head_accuracy
from .._utils.validation import check_sample_weight
from ..augment import check_intensity_range
from . import _net
from ._calibration import fit_temperatures, softmax
from ._checks import PARAMETER_CONSTRAINTS, InputChecksMixin, check_y
from ._net import DualHeadLoss, DualHeadNet, HeadAccuracy
from ._state import ClassifierFileMixin

__all__ = [
    "DualHeadClassifier",
    "DualHeadLoss",
    "HeadAccuracy",
    "DualHeadNet",
    "HeadClasses",
    "HeadProbabilities",
]


class DualHeadClassifier(
    ClassifierFileMixin, InputChecksMixin, MultiOutputMixin, ClassifierMixin, BaseEstimator
):
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
        (:class:`spinecls.classifier._loss.DualHeadLoss`). 0: off.
    ordinal : bool, default=False
        True: the severity head knows its classes are ordered. It gives one score per
        image and learns ``K - 1`` ordered thresholds with it, ``P(severity <= k) =
        sigmoid(threshold_k - score)`` (a cumulative-link, proportional-odds model:
        :class:`spinecls.models.CumulativeLink`). ``predict_proba`` still gives one
        probability per class, in ``classes_[1]``'s order, summing to one;
        ``severity_weights``, ``calibration``, ``tta`` and ``save`` work as without it.
        The order is :data:`spinecls.SEVERITIES`' (normal_mild, moderate, severe) for
        those names, the numbers' for numeric labels (e.g. Pfirrmann grades 1-5);
        other labels are refused in ``fit``. docs/real_data.md measures it on real
        graded discs.
    augment : None, "study", "light", "mri" or albumentations transform, default=None
        Per-sample augmentation in training only. ``"study"`` is the study's model 3
        list (``"seed"``, its former name, still works); ``"mri"`` suits real MRI crops
        (intensity, noise and a small affine, no flip: :data:`spinecls.augment.PRESETS`).
        Intensity transforms expect images in [0, 1] and clip the rest: ``fit``
        warns when the images leave that range
        (:func:`spinecls.augment.check_intensity_range`). A horizontal flip swaps Left
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
        validation split (needs ``valid_size``), minimising the head's cross-entropy as
        trained (the severity rows weighted by ``severity_weights``; the any-severe term
        is not part of it); a head with
        too few rows there stays uncalibrated, with a warning (:mod:`spinecls.calibration`).
    decision : {"argmax", "balanced"}, default="argmax"
        How ``predict`` picks each head's label from ``predict_proba``: ``"argmax"``, the
        most probable class; ``"balanced"``, the class of largest ``P(class | image) /
        P(class)``, the probability over the class's share of the training rows
        (``class_prior_``), which is the best guess for balanced accuracy (every class's
        recall weighing alike) when the probabilities are calibrated. ``predict_proba``
        is the same either way.
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
    classes_ : HeadClasses
        Condition classes and severity classes, sorted, as found in y: a list of two
        arrays that refuses to be read as one (scikit-learn's single-output scorers and
        CalibratedClassifierCV would), with a message naming what works instead.
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
    class_prior_ : list of two ndarrays
        Each head's class shares among the training rows (``decision="balanced"``
        divides by them).
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

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

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
        ordinal=False,
        augment=None,
        tta=None,
        weights=None,
        valid_size=0.15,
        calibration=None,
        decision="argmax",
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
        self.ordinal = ordinal
        self.augment = augment
        self.tta = tta
        self.weights = weights
        self.valid_size = valid_size
        self.calibration = calibration
        self.decision = decision
        self.device = device
        self.accelerator = accelerator
        self.precision = precision
        self.channels_last = channels_last
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose
        self._store_module_params(module_params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.single_output = False
        tags.target_tags.multi_output = True
        tags.non_deterministic = self.random_state is None
        return tags

    # -- training ----------------------------------------------------------------------
    def fit(self, X, y, groups=None, sample_weight=None):
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
        sample_weight : array-like of shape (n_samples,), optional
            Weight of each image in the loss: each head's cross-entropy is the weighted
            mean over a batch, a severity row weighing its sample weight times its
            class weight (``severity_weights``); the validation loss and
            ``calibration="temperature"`` weigh the held-out rows alike. Finite,
            non-negative, not all 0. In a Pipeline, ``clf__sample_weight=...``; with
            scikit-learn's metadata routing, ``set_fit_request(sample_weight=True)``.

        Returns
        -------
        self
        """
        self._check_params()
        X = self._check_X(X, reset=True)
        self.classes_, codes = check_y(y, len(X))
        sample_weight = check_sample_weight(sample_weight, len(X))
        check_intensity_range(self.augment, X)
        if _net.any_severe_params(self.any_severe_weight, self.classes_) is None:
            warnings.warn(
                f"any_severe_weight={self.any_severe_weight} has no effect: the condition "
                "classes have no spinal canal class ('Spinal Canal Stenosis' or code 0)",
                UserWarning,
                stacklevel=2,
            )
        seed = accelerate.seed_from(self.random_state)
        train, valid = _net.validation_split(len(X), groups, self.valid_size, seed)
        # Tensors made once here; skorch's own Dataset would convert every sample. The
        # loss reads a sample weight as a third column of y (DualHeadLoss).
        targets = codes
        if sample_weight is not None:
            targets = np.column_stack([codes, sample_weight]).astype(np.float32)
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(targets)
        net = _net.make_net(
            self.get_params(deep=False),
            classes=self.classes_,
            in_channels=self.input_shape_[0],
            seed=seed,
            valid=None if valid is None else TensorDataset(X_t[valid], y_t[valid]),
        )
        device = accelerate.training_device(self.get_params(deep=False))
        with accelerate.torch_seed(seed, device):  # skorch initialises the module in fit
            net.fit(TensorDataset(X_t[train], y_t[train]), y=None)
        self.net_ = net
        self.history_ = net.history
        self.class_prior_ = [
            np.bincount(codes[:, k], minlength=len(c)) / len(codes)
            for k, c in enumerate(self.classes_)
        ]
        self.valid_index_ = valid
        self.temperatures_ = None
        if self.calibration is not None:
            self.temperatures_ = fit_temperatures(
                self,
                X[valid],
                codes[valid],
                sample_weight=None if sample_weight is None else sample_weight[valid],
                severity_weights=self.severity_weights,
            )
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
        logits = self.predict_logits(X)  # checks that the classifier is fitted
        temperatures = self.temperatures_
        return HeadProbabilities(
            softmax(z, None if temperatures is None else temperatures[k])
            for k, z in enumerate(logits)
        )

    def predict_logits(self, X) -> list[np.ndarray]:
        """Both heads' logits before any temperature, with test-time augmentation.

        What :meth:`predict_proba` divides by ``temperatures_`` and turns into
        probabilities; what temperature scaling fits
        (:class:`spinecls.calibration.HeadView`).

        Parameters
        ----------
        X : ndarray of shape (n_samples, channels, height, width)

        Returns
        -------
        list of two float32 ndarrays
            ``[condition logits (n_samples, n_condition_classes), severity logits
            (n_samples, n_severity_classes)]``; with ``tta``, the log of the views'
            mean probabilities.
        """
        X = self._check_X(X, reset=False)
        return self.net_.predict_logits(torch.from_numpy(X), tta=self.tta)

    def predict(self, X) -> np.ndarray:
        """Labels of both heads: an (n_samples, 2) array, condition then severity.

        The most probable class of each head, or with ``decision="balanced"`` the class of
        largest probability over its training share.
        """
        probas = self.predict_proba(X)  # checks that the classifier is fitted
        return decided_labels(
            self,
            probas,
            "(class_prior_), which this model's file, written before they were "
            "kept, lacks: refit it",
        )

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
