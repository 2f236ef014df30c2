"""Per-head reports, scorers, the competition score and submissions.

- :func:`dual_head_report`: accuracy, precision, recall and F1 per head (weighted
  averages, as the study reports them), scikit-learn's classification report and the
  confusion matrix, built on :mod:`sklearn.metrics`.
- :func:`head_scorer` and :data:`rsna_scorer`: scorers for ``GridSearchCV(scoring=...)``,
  where scikit-learn's string scorers refuse a two-column y: labels or probabilities of
  one head, and the competition score.
- :func:`rsna_score`: the RSNA 2024 competition metric on frames in its own format;
  :func:`to_submission` and :func:`solution_from_frame` build those frames (they live in
  ``spinecls._competition``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from ._competition import row_ids, rsna_score, solution_from_frame, to_submission
from ._validation import located, two_columns
from .labels import CONDITIONS, HEADS, SEVERITIES

__all__ = [
    "DualHeadReport",
    "HeadScorer",
    "RSNAScorer",
    "dual_head_report",
    "head_scorer",
    "row_ids",
    "rsna_score",
    "rsna_scorer",
    "solution_from_frame",
    "to_submission",
]


# -- label checks ----------------------------------------------------------------------
def _check_no_missing(columns: tuple, name: str) -> None:
    for head, column in zip(HEADS, columns):
        missing = pd.isna(column)
        if missing.any():
            raise ValueError(
                f"{name} has missing {head} labels at {located(missing, range(len(column)))}"
            )


def _check_pair(y_true, y_pred, labels=None) -> tuple[tuple, tuple, list]:
    """The two columns of each (:func:`spinecls._validation.two_columns`) and each head's labels."""
    true, pred = two_columns(y_true, "y_true"), two_columns(y_pred, "y_pred")
    if len(true[0]) != len(pred[0]):
        raise ValueError(f"y_true has {len(true[0])} rows but y_pred has {len(pred[0])}")
    for name, columns in (("y_true", true), ("y_pred", pred)):
        _check_no_missing(columns, name)
    if labels is None:
        labels = []
        for k, vocabulary in enumerate((CONDITIONS, SEVERITIES)):
            seen = set(true[k].tolist())
            labels.append(list(vocabulary) if seen <= set(vocabulary) else None)
    resolved = []
    for k, head in enumerate(HEADS):
        allowed = labels[k]
        values = sorted(set(true[k].tolist()) | set(pred[k].tolist()), key=str)
        if allowed is not None:
            unknown = [v for v in values if v not in set(allowed)]
            if unknown:
                where = "y_pred" if set(unknown) - set(true[k].tolist()) else "y_true"
                raise ValueError(
                    f"unknown {head} label(s) {unknown} in {where}; expected one of {list(allowed)}"
                )
            values = [v for v in allowed if v in set(values)]
        resolved.append(values)
    return true, pred, resolved


# -- reports ---------------------------------------------------------------------------
@dataclass
class DualHeadReport:
    """Metrics of both heads.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per head; columns ``accuracy, precision, recall, f1`` (weighted
        averages) and ``support``.
    classification_reports : dict of DataFrame
        scikit-learn's ``classification_report`` per head, as a frame.
    confusion_matrices : dict of DataFrame
        Confusion matrix per head (rows: true label, columns: predicted label).
    """

    summary: pd.DataFrame
    classification_reports: dict[str, pd.DataFrame] = field(default_factory=dict)
    confusion_matrices: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = ["Per-head metrics (weighted averages):", self.summary.round(4).to_string()]
        for head in self.summary.index:
            parts += [
                "",
                f"{head}: classification report",
                self.classification_reports[head].round(4).to_string(),
                f"{head}: confusion matrix (rows true, columns predicted)",
                self.confusion_matrices[head].to_string(),
            ]
        return "\n".join(parts)

    def to_dict(self) -> dict:
        """Plain dict: ``{"summary": {head: {...}}, "classification_reports": ...,
        "confusion_matrices": {head: {"labels": [...], "matrix": [[...]]}}}``."""
        return {
            "summary": {
                head: {k: float(v) for k, v in row.items()}
                for head, row in self.summary.to_dict(orient="index").items()
            },
            "classification_reports": {
                head: {
                    str(label): {k: float(v) for k, v in row.items()}
                    for label, row in frame.to_dict(orient="index").items()
                }
                for head, frame in self.classification_reports.items()
            },
            "confusion_matrices": {
                head: {
                    "labels": [str(v) for v in frame.index],
                    "matrix": frame.to_numpy().tolist(),
                }
                for head, frame in self.confusion_matrices.items()
            },
        }

    def to_json(self, **kwargs) -> str:
        """:meth:`to_dict` as JSON text (keyword arguments go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)


def dual_head_report(y_true, y_pred, *, labels=None) -> DualHeadReport:
    """Accuracy, precision, recall and F1 of the condition and severity heads.

    Parameters
    ----------
    y_true, y_pred : DataFrame or array of shape (n_samples, 2)
        Condition then severity labels.
    labels : (sequence, sequence), optional
        Allowed labels of each head, in report order. By default, heads whose true
        labels are spinecls's vocabulary (:data:`spinecls.CONDITIONS`,
        :data:`spinecls.SEVERITIES`) use it, and predictions outside it are errors.

    Returns
    -------
    DualHeadReport

    Raises
    ------
    ValueError
        If the inputs differ in length, lack two columns or hold unknown labels.

    Examples
    --------
    >>> scs, lss = "Spinal Canal Stenosis", "Left Subarticular Stenosis"
    >>> y_true = [[scs, "severe"], [lss, "normal_mild"]]
    >>> y_pred = [[scs, "moderate"], [lss, "normal_mild"]]
    >>> report = dual_head_report(y_true, y_pred)
    >>> report.summary.loc["condition", "accuracy"], report.summary.loc["severity", "accuracy"]
    (np.float64(1.0), np.float64(0.5))
    """
    true, pred, labels = _check_pair(y_true, y_pred, labels)
    rows, reports, matrices = {}, {}, {}
    for k, head in enumerate(HEADS):
        t, p, head_labels = true[k], pred[k], labels[k]
        weighted = {"labels": head_labels, "average": "weighted", "zero_division": 0}
        rows[head] = {
            "accuracy": accuracy_score(t, p),
            "precision": precision_score(t, p, **weighted),
            "recall": recall_score(t, p, **weighted),
            "f1": f1_score(t, p, **weighted),
            "support": len(t),
        }
        reports[head] = pd.DataFrame(
            classification_report(t, p, labels=head_labels, output_dict=True, zero_division=0)
        ).T
        matrices[head] = pd.DataFrame(
            confusion_matrix(t, p, labels=head_labels),
            index=pd.Index(head_labels, name="true"),
            columns=pd.Index(head_labels, name="predicted"),
        )
    summary = pd.DataFrame.from_dict(rows, orient="index")
    summary["support"] = summary["support"].astype(int)
    summary.index.name = "head"
    return DualHeadReport(summary, reports, matrices)


# -- scorers ---------------------------------------------------------------------------
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
