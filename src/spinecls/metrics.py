"""Per-head reports, scorers, the competition score and submissions.

- :func:`dual_head_report`: accuracy, precision, recall and F1 per head (weighted
  averages, as the study reports them), balanced accuracy, scikit-learn's
  classification report and the confusion matrix, built on :mod:`sklearn.metrics`;
  given the probabilities, also the log loss, the expected calibration error and a
  reliability table per head.
- :func:`reliability_table` and :func:`expected_calibration_error`: how well one
  head's top probability matches its accuracy.
- :func:`head_scorer` and :data:`rsna_scorer`: scorers for ``GridSearchCV(scoring=...)``,
  where scikit-learn's string scorers refuse a two-column y: labels or probabilities of
  one head, and the competition score.
- :func:`rsna_score`: the RSNA 2024 competition metric on frames in its own format;
  :func:`to_submission` and :func:`solution_from_frame` build those frames (they live in
  ``spinecls._competition``).
"""

from __future__ import annotations

import json
import warnings
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
    "CALIBRATION_BINS",
    "DualHeadReport",
    "HeadScorer",
    "RSNAScorer",
    "dual_head_report",
    "expected_calibration_error",
    "head_scorer",
    "reliability_table",
    "row_ids",
    "rsna_score",
    "rsna_scorer",
    "solution_from_frame",
    "to_submission",
]

_MAX_LISTED = 10

CALIBRATION_BINS = 10
"""Equal-width bins of the top probability in reliability tables and the ECE."""


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
            rows[head]["ece"] = _ece(reliability[head])
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


def reliability_table(
    y_true, proba, *, classes=None, n_bins: int = CALIBRATION_BINS
) -> pd.DataFrame:
    """One head's top-label reliability: accuracy against confidence, per bin.

    Each row's confidence is its largest probability; rows are put in ``n_bins``
    equal-width bins of ``[0, 1]`` (bin ``b`` holds confidences in ``(b/n, (b+1)/n]``,
    the first one also 0), and each bin's accuracy is the share of its rows whose most
    probable class is the true one. A calibrated head has accuracy = confidence.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels of one head.
    proba : array of shape (n_samples, n_classes)
        That head's probabilities.
    classes : sequence, optional
        The label of each column; default the sorted labels of ``y_true``, which must
        then number ``n_classes``.
    n_bins : int, default=CALIBRATION_BINS

    Returns
    -------
    pandas.DataFrame
        One row per bin holding at least one row: ``lower, upper, count, confidence``
        (mean top probability) and ``accuracy``.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    if classes is None:
        classes = np.unique(y_true)
    classes = np.asarray(classes)
    if proba.ndim != 2 or proba.shape != (len(y_true), len(classes)):
        raise ValueError(
            f"proba must have shape ({len(y_true)}, {len(classes)}): one row per label and "
            f"one column per class {classes.tolist()}; got {proba.shape}"
        )
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int; got {n_bins!r}")
    unknown = sorted(set(y_true.tolist()) - set(classes.tolist()), key=str)
    if unknown:
        raise ValueError(f"y_true has label(s) {unknown[:_MAX_LISTED]} not in the classes")
    confidence = proba.max(axis=1)
    correct = classes[proba.argmax(axis=1)] == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    table = pd.DataFrame({"bin": which, "confidence": confidence, "accuracy": correct})
    table = table.groupby("bin").agg(
        count=("confidence", "size"),
        confidence=("confidence", "mean"),
        accuracy=("accuracy", "mean"),
    )
    table.insert(0, "lower", edges[table.index])
    table.insert(1, "upper", edges[table.index + 1])
    return table.reset_index(drop=True)


def _ece(table: pd.DataFrame) -> float:
    weights = table["count"] / table["count"].sum()
    return float((weights * (table["accuracy"] - table["confidence"]).abs()).sum())


def expected_calibration_error(
    y_true, proba, *, classes=None, n_bins: int = CALIBRATION_BINS
) -> float:
    """The expected calibration error (ECE) of one head's top probability.

    The mean over :func:`reliability_table`'s bins of ``|accuracy - confidence|``,
    weighted by the share of rows in each bin: 0 for a calibrated head.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    proba : array of shape (n_samples, n_classes)
    classes : sequence, optional
        The label of each column (default: the sorted labels of ``y_true``).
    n_bins : int, default=CALIBRATION_BINS

    Returns
    -------
    float

    Examples
    --------
    >>> # right at 0.9 and 0.8, wrong at 0.7: (0.1 + 0.2 + 0.7) / 3
    >>> round(expected_calibration_error([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]), 4)
    0.3333
    """
    return _ece(reliability_table(y_true, proba, classes=classes, n_bins=n_bins))


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
