"""Per-head reports: :func:`dual_head_report` gives accuracy, precision, recall and F1 per
head (weighted averages, as the study reports them), balanced accuracy, scikit-learn's
classification report and the confusion matrix, built on :mod:`sklearn.metrics`; given the
probabilities, also the log loss, the expected calibration error and a reliability table
per head (:mod:`spinecls.metrics._reliability`)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
)

from .._utils.validation import located, two_columns
from ..labels import CONDITIONS, HEADS, SEVERITIES
from ._reliability import CALIBRATION_BINS, reliability_table, table_ece

__all__ = ["DualHeadReport", "dual_head_report"]


# -- label checks ----------------------------------------------------------------------
def _check_no_missing(columns: tuple, name: str) -> None:
    for head, column in zip(HEADS, columns):
        missing = pd.isna(column)
        if missing.any():
            raise ValueError(
                f"{name} has missing {head} labels at {located(missing, range(len(column)))}"
            )


def _check_pair(y_true, y_pred, labels=None) -> tuple[tuple, tuple, list]:
    """The two columns of each (:func:`spinecls._utils.validation.two_columns`) and each
    head's labels."""
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
        averages), ``balanced_accuracy``, with probabilities also ``log_loss`` and
        ``ece`` (:func:`expected_calibration_error`), and ``support``.
    classification_reports : dict of DataFrame
        scikit-learn's ``classification_report`` per head, as a frame.
    confusion_matrices : dict of DataFrame
        Confusion matrix per head (rows: true label, columns: predicted label).
    reliability : dict of DataFrame
        With probabilities: :func:`reliability_table` per head; else empty.
    """

    summary: pd.DataFrame
    classification_reports: dict[str, pd.DataFrame] = field(default_factory=dict)
    confusion_matrices: dict[str, pd.DataFrame] = field(default_factory=dict)
    reliability: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [
            "Per-head metrics (precision, recall, f1: weighted averages):",
            self.summary.round(4).to_string(),
        ]
        for head in self.summary.index:
            parts += [
                "",
                f"{head}: classification report",
                self.classification_reports[head].round(4).to_string(),
                f"{head}: confusion matrix (rows true, columns predicted)",
                self.confusion_matrices[head].to_string(),
            ]
            if head in self.reliability:
                parts += [
                    f"{head}: reliability (top probability bins)",
                    self.reliability[head].round(4).to_string(index=False),
                ]
        return "\n".join(parts)

    def to_dict(self) -> dict:
        """Plain dict: ``{"summary": {head: {...}}, "classification_reports": ...,
        "confusion_matrices": {head: {"labels": [...], "matrix": [[...]]}},
        "reliability": {head: {column: [...]}}}``."""
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
            "reliability": {
                head: {k: [float(v) for v in values] for k, values in frame.items()}
                for head, frame in self.reliability.items()
            },
        }

    def to_json(self, **kwargs) -> str:
        """:meth:`to_dict` as JSON text (keyword arguments go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)


def dual_head_report(
    y_true,
    y_pred,
    *,
    labels=None,
    proba=None,
    classes=None,
    n_bins: int = CALIBRATION_BINS,
) -> DualHeadReport:
    """Accuracy, precision, recall, F1 and balanced accuracy of both heads.

    Parameters
    ----------
    y_true, y_pred : DataFrame or array of shape (n_samples, 2)
        Condition then severity labels.
    labels : (sequence, sequence), optional
        Allowed labels of each head, in report order. By default, heads whose true
        labels are spinecls's vocabulary (:data:`spinecls.CONDITIONS`,
        :data:`spinecls.SEVERITIES`) use it, and predictions outside it are errors.
    proba : (array, array), optional
        Both heads' probabilities, as ``predict_proba`` returns them. Adds the log loss
        (:func:`sklearn.metrics.log_loss`), the expected calibration error and a
        reliability table per head.
    classes : (sequence, sequence), optional
        The label of each column of ``proba`` (a classifier's ``classes_``); needed
        with ``proba``.
    n_bins : int, default=CALIBRATION_BINS
        Bins of the reliability tables and the ECE.

    Returns
    -------
    DualHeadReport

    Raises
    ------
    ValueError
        If the inputs differ in length, lack two columns or hold unknown labels, or if
        ``proba`` does not match ``classes``.

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
    if proba is not None:
        proba, classes = _check_proba(proba, classes, len(true[0]))
    rows, reports, matrices, reliability = {}, {}, {}, {}
    for k, head in enumerate(HEADS):
        t, p, head_labels = true[k], pred[k], labels[k]
        weighted = {"labels": head_labels, "average": "weighted", "zero_division": 0}
        rows[head] = {
            "accuracy": accuracy_score(t, p),
            "precision": precision_score(t, p, **weighted),
            "recall": recall_score(t, p, **weighted),
            "f1": f1_score(t, p, **weighted),
            "balanced_accuracy": _balanced_accuracy(t, p),
        }
        if proba is not None:
            reliability[head] = reliability_table(t, proba[k], classes=classes[k], n_bins=n_bins)
            rows[head]["log_loss"] = log_loss(t, proba[k], labels=classes[k])
            rows[head]["ece"] = table_ece(reliability[head])
        rows[head]["support"] = len(t)
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
    return DualHeadReport(summary, reports, matrices, reliability)


def _balanced_accuracy(true, predicted) -> float:
    # Classes predicted but never true would count as zero recall and trigger
    # scikit-learn's warning; balanced accuracy is the mean recall of the true classes.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(true, predicted))


def _check_proba(proba, classes, n_rows: int) -> tuple[list[np.ndarray], list[list]]:
    """Both heads' probabilities as float64 rows summing to one, and their classes."""
    if classes is None:
        raise ValueError("proba needs classes= to name its columns (the classifier's classes_)")
    if len(proba) != len(HEADS) or len(classes) != len(HEADS):
        raise ValueError(
            f"proba and classes need one entry per head {list(HEADS)}; got {len(proba)} "
            f"and {len(classes)}"
        )
    checked = []
    for head, p, c in zip(HEADS, proba, classes):
        p = np.asarray(p, dtype=np.float64)
        if p.ndim != 2 or p.shape != (n_rows, len(c)):
            raise ValueError(
                f"the {head} probabilities must have shape ({n_rows}, {len(c)}), one column "
                f"per class {list(c)}; got {p.shape}"
            )
        if not np.isfinite(p).all() or (p < 0).any() or (p.sum(axis=1) == 0).any():
            raise ValueError(f"the {head} probabilities must be finite, non-negative rows")
        checked.append(p / p.sum(axis=1, keepdims=True))  # float32 rows sum to 1 +- 1e-7
    return checked, [np.asarray(c).tolist() for c in classes]
