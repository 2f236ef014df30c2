"""Temperature scaling of the two heads: the code behind :mod:`spinecls.calibration`.

Here, inside the classifier, because ``DualHeadClassifier(calibration="temperature")``
fits the temperatures in its own ``fit``; :mod:`spinecls.calibration` is the public face.
"""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import PredefinedSplit
from sklearn.utils.validation import check_is_fitted

from .._utils.validation import check_sample_weight, located, two_columns
from ..labels import HEADS
from ._loss import severity_class_weights

__all__ = [
    "MIN_CALIBRATION_ROWS",
    "HeadView",
    "calibrate_heads",
    "check_temperatures",
    "fit_temperatures",
    "softmax",
]

MIN_CALIBRATION_ROWS = 100
"""Rows a head needs for its temperature to be fitted; with fewer it stays at 1."""


class HeadView(ClassifierMixin, BaseEstimator):
    """One head of a fitted DualHeadClassifier as a single-output scikit-learn classifier.

    Its ``decision_function`` is the head's logits before any temperature (with the
    classifier's test-time augmentation, ``tta``; a two-class head's in scikit-learn's
    binary form, one score per row), and its classes are the head's class
    codes ``0 .. k-1``: ``classifier.classes_[head][code]`` is the label. Wrapped in
    :class:`sklearn.frozen.FrozenEstimator`, it is what
    :class:`sklearn.calibration.CalibratedClassifierCV` calibrates.

    Parameters
    ----------
    classifier : DualHeadClassifier
        Fitted.
    head : {"condition", "severity"}, default="severity"

    Examples
    --------
    >>> import numpy as np
    >>> from spinecls import DualHeadClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((30, 1, 32, 32), dtype=np.float32)
    >>> y = np.column_stack([rng.integers(0, 5, 30), rng.integers(0, 3, 30)])
    >>> clf = DualHeadClassifier(max_epochs=1, valid_size=None, random_state=0).fit(X, y)
    >>> view = HeadView(clf, "severity")
    >>> view.classes_.tolist(), view.decision_function(X[:4]).shape
    ([0, 1, 2], (4, 3))
    """

    def __init__(self, classifier, head: str = "severity"):
        self.classifier = classifier
        self.head = head

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self.classifier, "net_")

    @property
    def _k(self) -> int:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {list(HEADS)}; got {self.head!r}")
        return HEADS.index(self.head)

    @property
    def classes_(self) -> np.ndarray:
        """The head's class codes, ``0 .. k-1``."""
        return np.arange(len(self.classifier.classes_[self._k]))

    def fit(self, X=None, y=None) -> HeadView:
        """Do nothing: the view shows a classifier that is already fitted."""
        return self

    def decision_function(self, X) -> np.ndarray:
        """The head's uncalibrated logits, float64: ``(n_samples, n_classes)``.

        A two-class head gives scikit-learn's binary form, ``(n_samples,)``: half the
        second class's logit minus the first's, which scikit-learn's temperature scaling
        reads as the logits ``(-x, x)``: the head's own softmax at any temperature.
        """
        logits = self.classifier.predict_logits(X)[self._k].astype(np.float64)
        return (logits[:, 1] - logits[:, 0]) / 2 if logits.shape[1] == 2 else logits

    def predict(self, X) -> np.ndarray:
        """The head's class codes (the temperature never changes them)."""
        scores = self.decision_function(X)
        return (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)


def fit_temperatures(
    classifier,
    X,
    codes: np.ndarray,
    *,
    sample_weight=None,
    severity_weights=None,
    min_rows: int = MIN_CALIBRATION_ROWS,
) -> np.ndarray:
    """Each head's temperature, fitted on images ``X`` and class codes ``codes``.

    Parameters
    ----------
    classifier : DualHeadClassifier
        Fitted.
    X : ndarray of shape (n_samples, channels, height, width)
    codes : ndarray of int, shape (n_samples, 2)
        Each row's position in ``classes_[0]`` and ``classes_[1]``.
    sample_weight : array-like of shape (n_samples,), optional
        Weights of the rows in the log loss that the temperatures minimise.
    severity_weights : None, "rsna", sequence or dict, optional
        Class weights of the severity head's rows, as ``DualHeadClassifier`` takes them
        (multiplying ``sample_weight``); the condition head's rows are not weighted by them.
    min_rows : int, default=MIN_CALIBRATION_ROWS

    Returns
    -------
    ndarray of shape (2,)
        Condition and severity temperatures; 1 where a head is left as it was.
    """
    temperatures = np.ones(len(HEADS))
    logits = classifier.predict_logits(X)
    weights = _head_weights(classifier, codes, sample_weight, severity_weights)
    for k, head in enumerate(HEADS):
        classes = np.asarray(classifier.classes_[k])
        if len(classes) < 2:
            continue  # a one-class head predicts probability 1 at any temperature
        y = codes[:, k]
        why = _cannot_calibrate(logits[k], y, classes, min_rows, weights[k])
        if why:
            warnings.warn(
                f"the {head} head is left uncalibrated (temperature 1): {why}",
                UserWarning,
                stacklevel=3,
            )
            continue
        # The frozen view needs no folds: one split predicts every row once, without
        # StratifiedKFold's warnings about rare classes.
        calibrated = CalibratedClassifierCV(
            FrozenEstimator(HeadView(classifier, head)),
            method="temperature",
            cv=PredefinedSplit(np.zeros(len(y))),
        )
        with warnings.catch_warnings():
            # "weights will only be used for the calibration itself": as they should.
            warnings.filterwarnings("ignore", "Since FrozenEstimator does not appear")
            calibrated.fit(X, y, sample_weight=weights[k])
        # scikit-learn keeps the fitted inverse temperature on its one calibrator.
        beta = calibrated.calibrated_classifiers_[0].calibrators[0].beta_
        temperatures[k] = 1.0 / float(beta)
    return temperatures


def _head_weights(classifier, codes, sample_weight, severity_weights) -> list:
    """Each head's row weights for its log loss (None: equal)."""
    by_class = severity_class_weights(severity_weights, np.asarray(classifier.classes_[1]))
    if by_class is None:
        return [sample_weight, sample_weight]
    severity = np.asarray(by_class, dtype=np.float64)[codes[:, 1]]
    if sample_weight is not None:
        severity = severity * np.asarray(sample_weight, dtype=np.float64)
    return [sample_weight, severity]


def _cannot_calibrate(
    logits: np.ndarray, y: np.ndarray, classes: np.ndarray, min_rows: int, weight=None
):
    """Why a head's temperature cannot be fitted on these rows, or None.

    Rows of weight 0 count for nothing: the checks see only the others.
    """
    if weight is not None:
        kept = np.asarray(weight) > 0
        logits, y = logits[kept], y[kept]
    if len(y) < min_rows:
        weighted = "" if weight is None else " of positive weight"
        return f"it needs at least {min_rows} rows{weighted} and got {len(y)}"
    absent = classes[np.setdiff1d(np.arange(len(classes)), y)].tolist()
    if absent:
        return f"no row has the class(es) {absent}"
    if (logits.argmax(axis=1) == y).all():
        # Then the log loss falls all the way to T = 0: certainty, which the next
        # mistake on new data would cost dearly.
        return "every row is predicted right, so the fit would make it certain"
    return None


def calibrate_heads(
    estimator,
    X,
    y,
    *,
    sample_weight=None,
    severity_weights=None,
    min_rows: int = MIN_CALIBRATION_ROWS,
):
    """Fit the temperatures of an already-fitted classifier on rows of your own.

    The classifier's ``temperatures_`` are replaced (in place); ``predict_proba`` then
    divides each head's logits by its temperature, and ``save`` keeps them. Use rows the
    network did not train on, from studies it did not see.

    Parameters
    ----------
    estimator : DualHeadClassifier or Pipeline ending in one
        Fitted. A Pipeline's earlier steps transform ``X`` first.
    X : array-like
        What ``estimator.predict_proba`` takes: images, or a Pipeline's rows.
    y : DataFrame or array of shape (n_samples, 2)
        Condition then severity labels, as in training.
    sample_weight : array-like of shape (n_samples,), optional
        Weights of the rows in the log loss the temperatures minimise (both heads).
    severity_weights : None, "rsna", sequence or dict, optional
        Weights of the severity head's rows by their true class, as
        ``DualHeadClassifier(severity_weights=...)`` takes them: ``"rsna"`` (the
        competition's 1 / 2 / 4) fits the score's weighted log loss rather than
        calibrated probabilities (see docs/quality.md). None: unweighted. ``fit``
        with ``calibration="temperature"`` uses the classifier's own
        ``severity_weights``: pass them to fit the temperatures as it does.
    min_rows : int, default=MIN_CALIBRATION_ROWS
        Fewer rows leave a head uncalibrated, with a warning.

    Returns
    -------
    estimator
        The same object, calibrated.

    Raises
    ------
    ValueError
        If ``y`` holds a label the classifier was not trained on.

    Examples
    --------
    >>> import numpy as np
    >>> from spinecls import DualHeadClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((160, 1, 32, 32), dtype=np.float32)
    >>> y = np.column_stack([rng.integers(0, 5, 160), rng.integers(0, 3, 160)])
    >>> clf = DualHeadClassifier(max_epochs=1, valid_size=None, random_state=0).fit(X[:40], y[:40])
    >>> clf = calibrate_heads(clf, X[40:], y[40:])
    >>> clf.temperatures_.shape
    (2,)
    """
    if not isinstance(min_rows, Integral) or min_rows < 1:
        raise ValueError(f"min_rows must be a positive int; got {min_rows!r}")
    classifier = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    check_is_fitted(classifier, "net_")
    if classifier is not estimator:
        X = estimator[:-1].transform(X)
    columns = two_columns(y)
    codes = []
    for head, column, classes in zip(HEADS, columns, classifier.classes_):
        index = {c: i for i, c in enumerate(np.asarray(classes).tolist())}
        values = np.asarray(column).tolist()
        missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in values])
        if missing.any():
            raise ValueError(
                f"y's {head} column has {int(missing.sum())} missing value(s) (NaN or None) at "
                f"{located(missing, np.arange(len(values)))}"
            )
        unknown = sorted({v for v in values if v not in index}, key=str)
        if unknown:
            raise ValueError(
                f"y's {head} column has label(s) {unknown[:10]} the classifier was not "
                f"trained on; its classes are {list(index)}"
            )
        codes.append([index[v] for v in values])
    if len(codes[0]) != len(X):
        raise ValueError(f"X has {len(X)} samples but y has {len(codes[0])}")
    sample_weight = check_sample_weight(sample_weight, len(X))
    classifier.temperatures_ = fit_temperatures(
        classifier,
        X,
        np.column_stack(codes),
        sample_weight=sample_weight,
        severity_weights=severity_weights,
        min_rows=min_rows,
    )
    return estimator


def check_temperatures(value) -> np.ndarray | None:
    """Temperatures read from a model file: None, or one positive finite number per head."""
    if value is None:
        return None
    array = np.asarray(value, dtype=object)
    if array.shape != (len(HEADS),) or not all(
        isinstance(t, (int, float)) and not isinstance(t, bool) and np.isfinite(t) and t > 0
        for t in array
    ):
        raise ValueError(
            f"'temperatures' must be null or {len(HEADS)} positive numbers; got {value!r}"
        )
    return array.astype(np.float64)


def softmax(logits: np.ndarray, temperature: float | None = None) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (torch's, as in training)."""
    if temperature is not None and temperature != 1.0:
        logits = logits / temperature
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy()
