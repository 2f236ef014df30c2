"""Scorers for ``GridSearchCV(scoring=...)`` on a two-column y: one head, or the competition score.

Public through :mod:`spinecls.metrics` (``from spinecls.metrics import head_scorer``).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from .._utils.validation import located, two_columns
from ..labels import HEADS
from ._competition import rsna_score, solution_from_frame, to_submission

__all__ = ["HeadScorer", "RSNAScorer", "head_scorer", "rsna_scorer"]

_LABEL_METRICS = {
    "accuracy": accuracy_score,
    "balanced_accuracy": balanced_accuracy_score,
    **{
        f"{name}_{average}": partial(func, average=average, zero_division=0)
        for name, func in (
            ("f1", f1_score),
            ("precision", precision_score),
            ("recall", recall_score),
        )
        for average in ("weighted", "macro", "micro")
    },
}


def _roc_auc(multi_class: str, average: str):
    def score(true, proba, classes, sample_weight=None) -> float:
        if len(classes) == 2:  # scikit-learn's binary form: the second class is positive
            return roc_auc_score(true == classes[1], proba[:, 1], sample_weight=sample_weight)
        return roc_auc_score(
            true,
            proba,
            multi_class=multi_class,
            average=average,
            labels=classes,
            sample_weight=sample_weight,
        )

    return score


def _negated(metric):
    def score(true, proba, classes, sample_weight=None) -> float:
        return -metric(true, proba, labels=classes, sample_weight=sample_weight)

    return score


# Each takes the head's classes as labels, so that a fold whose true labels lack a class
# is still scored (scikit-learn's own "neg_log_loss" refuses it).
_PROBABILITY_METRICS = {
    "neg_log_loss": _negated(log_loss),
    "neg_brier_score": _negated(brier_score_loss),
    "roc_auc_ovr": _roc_auc("ovr", "macro"),
    "roc_auc_ovo": _roc_auc("ovo", "macro"),
    "roc_auc_ovr_weighted": _roc_auc("ovr", "weighted"),
    "roc_auc_ovo_weighted": _roc_auc("ovo", "weighted"),
}


class HeadScorer:
    """A scorer ``(estimator, X, y) -> float`` for one head of a two-column y.

    Built by :func:`head_scorer`; usable in ``GridSearchCV(scoring=...)``, alone or in
    a dict of metrics with ``refit=``.

    Parameters
    ----------
    head : {"condition", "severity"}
    metric : str
        One of :func:`head_scorer`'s metrics.
    """

    def __init__(self, head: str, metric: str):
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if metric not in _LABEL_METRICS and metric not in _PROBABILITY_METRICS:
            raise ValueError(
                f"metric must be one of {sorted(_LABEL_METRICS)} (labels) or "
                f"{sorted(_PROBABILITY_METRICS)} (probabilities), got {metric!r}"
            )
        self.head = head
        self.metric = metric

    def __call__(self, estimator, X, y, sample_weight=None) -> float:
        k = HEADS.index(self.head)
        true = two_columns(y)[k]
        missing = pd.isna(true)
        if missing.any():
            raise ValueError(
                f"y has missing {self.head} labels at {located(missing, range(len(true)))}"
            )
        if self.metric in _LABEL_METRICS:
            predicted = two_columns(estimator.predict(X), "predictions")[k]
            return float(_LABEL_METRICS[self.metric](true, predicted, sample_weight=sample_weight))
        proba = np.asarray(estimator.predict_proba(X)[k], dtype=np.float64)
        classes = np.asarray(estimator.classes_[k])
        if proba.shape != (len(true), len(classes)):
            raise ValueError(
                f"the {self.head} probabilities have shape {proba.shape}; expected "
                f"{(len(true), len(classes))} (one row per sample, one column per class)"
            )
        # A float32 softmax sums to one within 1e-7, beyond what sklearn's float64 checks
        # accept without a warning.
        proba = proba / proba.sum(axis=1, keepdims=True)
        metric = _PROBABILITY_METRICS[self.metric]
        return float(metric(true, proba, classes, sample_weight=sample_weight))

    def __repr__(self) -> str:
        return f"head_scorer({self.head!r}, {self.metric!r})"


def head_scorer(head: str, metric: str = "accuracy") -> HeadScorer:
    """A scorer of one head for ``GridSearchCV(scoring=...)``.

    scikit-learn's string scorers (``scoring="accuracy"``, ``"neg_log_loss"``...) cannot
    score a two-column y; this scores one head with the metric of the same name.

    Parameters
    ----------
    head : {"condition", "severity"}
    metric : str, default="accuracy"
        From the head's labels (``predict``): ``"accuracy"``, ``"balanced_accuracy"``,
        or ``"{f1,precision,recall}_{weighted,macro,micro}"`` (sklearn.metrics with
        ``zero_division=0``). From its probabilities (``predict_proba(X)[k]`` and
        ``classes_[k]``): ``"neg_log_loss"``, ``"neg_brier_score"``, ``"roc_auc_ovr"``,
        ``"roc_auc_ovo"``, ``"roc_auc_ovr_weighted"``, ``"roc_auc_ovo_weighted"``; the
        fitted classes are the metric's labels, so a fold whose true labels lack a class
        is scored too (ROC AUC is then undefined: scikit-learn warns and gives NaN). A
        head of two classes gets the binary ROC AUC. Greater is better.

    Returns
    -------
    HeadScorer

    Examples
    --------
    >>> head_scorer("severity", "f1_weighted")
    head_scorer('severity', 'f1_weighted')
    >>> head_scorer("severity", "neg_log_loss")
    head_scorer('severity', 'neg_log_loss')
    """
    return HeadScorer(head, metric)


class RSNAScorer:
    """The competition score as a scorer: ``-rsna_score`` (greater is better).

    ``X`` must be the rows of a :func:`spinecls.load_rsna`-style frame (``study_id``,
    ``condition``, ``level``), as a Pipeline that starts with
    :class:`~spinecls.LumbarPatchTransformer` receives them; the severity labels come
    from the second column of ``y``.
    """

    def __call__(self, estimator, X, y, sample_weight=None) -> float:
        if sample_weight is not None:
            raise ValueError(
                "rsna_scorer weights rows as the competition does (1 / 2 / 4 by severity); "
                "it takes no sample_weight"
            )
        if not isinstance(X, pd.DataFrame) or not {"study_id", "condition", "level"} <= set(
            X.columns
        ):
            raise ValueError(
                "rsna_scorer needs X to be rows with study_id, condition and level (a "
                "Pipeline of LumbarPatchTransformer and DualHeadClassifier on load_rsna's frame)"
            )
        severity = two_columns(y)[1]
        frame = X[["study_id", "condition", "level"]].assign(severity=severity)
        proba = estimator.predict_proba(X)[1]
        submission = to_submission(frame, proba, classes=estimator.classes_[1], complete=False)
        return -rsna_score(solution_from_frame(frame), submission)

    def __repr__(self) -> str:
        return "rsna_scorer"


rsna_scorer = RSNAScorer()
"""Scorer of the competition score, negated so that greater is better."""
