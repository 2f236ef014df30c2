"""Per-head reports, scorers, the competition score and submissions.

- :func:`dual_head_report`: accuracy, precision, recall and F1 per head (weighted
  averages, as the study reports them), balanced accuracy, scikit-learn's
  classification report and the confusion matrix, built on :mod:`sklearn.metrics`;
  given the probabilities, also the log loss, the expected calibration error and a
  reliability table per head.
- :func:`reliability_table` and :func:`expected_calibration_error`: how well one
  head's top probability matches its accuracy.
- :func:`head_scorer` and :data:`rsna_scorer`: scorers for ``GridSearchCV(scoring=...)``,
  where scikit-learn's string scorers refuse a two-column y.
- :func:`rsna_score`: the RSNA 2024 competition metric on frames in its own format;
  :func:`to_submission` and :func:`solution_from_frame` build those frames.
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
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
)

from ._validation import two_columns
from .labels import (
    CONDITIONS,
    HEADS,
    LEVELS,
    ROW_ID_GROUP,
    SCORE_EPSILON,
    SCORE_GROUPS,
    SEVERITIES,
    SEVERITY_PRIORS,
    SEVERITY_WEIGHTS,
    TARGETS,
    slug,
)

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
def _check_pair(y_true, y_pred, labels=None) -> tuple[tuple, tuple, list]:
    """The two columns of each (:func:`spinecls._validation.two_columns`) and each head's labels."""
    true, pred = two_columns(y_true, "y_true"), two_columns(y_pred, "y_pred")
    if len(true[0]) != len(pred[0]):
        raise ValueError(f"y_true has {len(true[0])} rows but y_pred has {len(pred[0])}")
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


class HeadScorer:
    """A scorer ``(estimator, X, y) -> float`` for one head of a two-column y.

    Built by :func:`head_scorer`; usable in ``GridSearchCV(scoring=...)``, alone or in
    a dict of metrics with ``refit=``.
    """

    def __init__(self, head: str, metric: str):
        self.head = head
        self.metric = metric

    def __call__(self, estimator, X, y, sample_weight=None) -> float:
        k = HEADS.index(self.head)
        true = two_columns(y)[k]
        predicted = two_columns(estimator.predict(X), "predictions")[k]
        return float(_LABEL_METRICS[self.metric](true, predicted, sample_weight=sample_weight))

    def __repr__(self) -> str:
        return f"head_scorer({self.head!r}, {self.metric!r})"


def head_scorer(head: str, metric: str = "accuracy") -> HeadScorer:
    """A scorer of one head for ``GridSearchCV(scoring=...)``.

    Parameters
    ----------
    head : {"condition", "severity"}
    metric : str, default="accuracy"
        ``"accuracy"``, ``"balanced_accuracy"``, or ``"{f1,precision,recall}_{weighted,
        macro,micro}"`` (sklearn.metrics with ``zero_division=0``). Greater is better.

    Returns
    -------
    HeadScorer

    Examples
    --------
    >>> head_scorer("severity", "f1_weighted")
    head_scorer('severity', 'f1_weighted')
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if metric not in _LABEL_METRICS:
        raise ValueError(f"metric must be one of {sorted(_LABEL_METRICS)}, got {metric!r}")
    return HeadScorer(head, metric)


class RSNAScorer:
    """The competition score as a scorer: ``-rsna_score`` (greater is better).

    ``X`` must be the rows of a :func:`spinecls.load_rsna`-style frame (``study_id``,
    ``condition``, ``level``), as a Pipeline that starts with
    :class:`~spinecls.LumbarPatchTransformer` receives them; the severity labels come
    from the second column of ``y``.
    """

    def __call__(self, estimator, X, y, sample_weight=None) -> float:
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


# -- the competition format ------------------------------------------------------------
def row_ids(frame: pd.DataFrame) -> pd.Series:
    """Competition row ids ``{study_id}_{condition}_{level}`` in snake case.

    For example ``44036939_left_neural_foraminal_narrowing_l1_l2``.
    """
    condition = frame["condition"].map({c: slug(c) for c in CONDITIONS})
    level = frame["level"].map({lv: slug(lv) for lv in LEVELS})
    return frame["study_id"].astype(np.int64).astype(str) + "_" + condition + "_" + level


def _check_rows(frame: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing}; it has {list(frame.columns)}")
    for column, vocabulary in (("condition", CONDITIONS), ("level", LEVELS)):
        if column in columns:
            bad = sorted(set(frame[column]) - set(vocabulary), key=str)
            if bad:
                raise ValueError(
                    f"unknown {column} value(s) {bad[:_MAX_LISTED]}; expected {list(vocabulary)}"
                )


def solution_from_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The competition's solution frame from labelled rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with ``study_id, condition, level, severity`` (e.g. :func:`spinecls.load_rsna`);
        several rows of one (study, condition, level) must agree on the severity.

    Returns
    -------
    pandas.DataFrame
        ``row_id, normal_mild, moderate, severe`` (one-hot) and ``sample_weight``
        (1 / 2 / 4), one row per (study, condition, level), sorted by ``row_id``.
    """
    _check_rows(frame, ("study_id", "condition", "level", "severity"))
    bad = sorted(set(frame["severity"]) - set(SEVERITIES), key=str)
    if bad:
        raise ValueError(f"unknown severity value(s) {bad}; expected {TARGETS}")
    rows = pd.DataFrame({"row_id": row_ids(frame), "severity": frame["severity"].to_numpy()})
    rows = rows.drop_duplicates()
    conflict = rows["row_id"].duplicated(keep=False)
    if conflict.any():
        raise ValueError(
            "rows of one (study, condition, level) disagree on the severity: "
            f"{sorted(set(rows.loc[conflict, 'row_id']))[:_MAX_LISTED]}"
        )
    solution = pd.DataFrame({"row_id": rows["row_id"].to_numpy()})
    for target in TARGETS:
        solution[target] = (rows["severity"].to_numpy() == target).astype(np.int64)
    solution["sample_weight"] = rows["severity"].map(SEVERITY_WEIGHTS).to_numpy()
    return solution.sort_values("row_id").reset_index(drop=True)


def _probabilities(severity_proba, classes, n_rows: int) -> np.ndarray:
    if isinstance(severity_proba, pd.DataFrame):
        if classes is None:
            classes = list(severity_proba.columns)
        severity_proba = severity_proba.to_numpy()
    proba = np.asarray(severity_proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != 3:
        raise ValueError(
            f"severity probabilities must have 3 columns ({TARGETS}); got shape {proba.shape}"
        )
    if len(proba) != n_rows:
        raise ValueError(f"{len(proba)} probability rows for {n_rows} frame rows")
    if not np.isfinite(proba).all():
        rows = np.flatnonzero(~np.isfinite(proba).all(axis=1))[:_MAX_LISTED].tolist()
        raise ValueError(f"severity probabilities hold NaN or infinite values at row(s) {rows}")
    if (proba < 0).any():
        raise ValueError("severity probabilities must not be negative")
    if classes is not None:
        classes = [SEVERITIES[c] if isinstance(c, (int, np.integer)) else c for c in classes]
        if sorted(classes) != sorted(TARGETS):
            raise ValueError(f"classes must be the three severities {TARGETS}; got {classes}")
        proba = proba[:, [classes.index(t) for t in TARGETS]]
    return proba


def to_submission(
    frame: pd.DataFrame,
    severity_proba,
    *,
    classes=None,
    prior: dict | None = None,
    complete: bool = True,
) -> pd.DataFrame:
    """The competition's submission frame from rows and severity probabilities.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with ``study_id, condition, level`` (e.g. from :func:`spinecls.load_rsna`).
    severity_proba : array of shape (n_rows, 3) or DataFrame
        Probabilities of each row. Columns are ``normal_mild, moderate, severe`` unless
        ``classes`` (e.g. a classifier's ``classes_[1]``) or the DataFrame's column
        names say otherwise.
    classes : sequence, optional
        The severity of each column (names, or codes 0-2).
    prior : dict, optional
        ``{condition: (normal_mild, moderate, severe)}`` for the condition-levels of a
        study that have no row; default :data:`spinecls.labels.SEVERITY_PRIORS`, the
        real training labels' balance per condition.
    complete : bool, default=True
        Give all 25 rows of every study (filling with ``prior``); False: only the rows
        that ``frame`` has.

    Returns
    -------
    pandas.DataFrame
        ``row_id, normal_mild, moderate, severe``, sorted by study and ``row_id``;
        several rows of one (study, condition, level) are averaged. Write it with
        ``to_csv(path, index=False)``.
    """
    _check_rows(frame, ("study_id", "condition", "level"))
    proba = _probabilities(severity_proba, classes, len(frame))
    ids = row_ids(frame).to_numpy()
    table = pd.DataFrame(proba, columns=TARGETS).assign(row_id=ids).groupby("row_id").mean()
    if complete:
        prior = SEVERITY_PRIORS if prior is None else prior
        studies = pd.unique(frame["study_id"].astype(np.int64))
        wanted = [
            (f"{s}_{slug(c)}_{slug(lv)}", c) for s in studies for c in CONDITIONS for lv in LEVELS
        ]
        missing = [(rid, c) for rid, c in wanted if rid not in table.index]
        if missing:
            filler = pd.DataFrame(
                [prior[c] for _, c in missing],
                columns=TARGETS,
                index=pd.Index([rid for rid, _ in missing], name="row_id"),
            )
            table = pd.concat([table, filler])
    table = table.reset_index()
    table["_study"] = table["row_id"].str.split("_").str[0].astype(np.int64)
    table = table.sort_values(["_study", "row_id"]).drop(columns="_study")
    return table[["row_id", *TARGETS]].reset_index(drop=True)


# -- the score -------------------------------------------------------------------------
def _group(row_id: pd.Series) -> pd.Series:
    return row_id.str.extract(ROW_ID_GROUP, expand=False)


def _weighted_log_loss(y_true: np.ndarray, proba: np.ndarray, weight: np.ndarray) -> float:
    # sklearn.metrics.log_loss on rows that sum to one; computed here so that the
    # clipping is exactly the competition's [1e-15, 1 - 1e-15].
    losses = -(y_true * np.log(proba)).sum(axis=1)
    return float(np.average(losses, weights=weight))


def rsna_score(solution: pd.DataFrame, submission: pd.DataFrame) -> float:
    """The RSNA 2024 Lumbar Spine Degenerative Classification metric (lower is better).

    Per row, probabilities are divided by their sum, then clipped to
    ``[1e-15, 1 - 1e-15]``. Rows are grouped into spinal (5 levels), foraminal (left
    and right pooled) and subarticular (pooled); each group scores a log loss over the
    three severities weighted by ``sample_weight`` (1 / 2 / 4). A fourth, binary term
    per study, any_severe_spinal, takes as label whether any spinal level is severe,
    as prediction the largest normalised severe probability of its spinal rows and
    as weight the largest spinal sample weight. The score is the mean of the four.

    Parameters
    ----------
    solution : pandas.DataFrame
        ``row_id, normal_mild, moderate, severe`` (one-hot) and ``sample_weight``.
    submission : pandas.DataFrame
        ``row_id, normal_mild, moderate, severe`` probabilities. Rows are matched by
        ``row_id`` in any order; rows absent from the solution are ignored.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Missing columns, submission rows missing for solution rows, NaN or negative
        probabilities, or row ids of no known condition.

    Examples
    --------
    >>> import pandas as pd
    >>> ids = ["1_spinal_canal_stenosis_l1_l2", "1_left_neural_foraminal_narrowing_l1_l2",
    ...        "1_right_subarticular_stenosis_l1_l2"]
    >>> solution = pd.DataFrame({"row_id": ids, "normal_mild": 1, "moderate": 0, "severe": 0,
    ...                          "sample_weight": 1.0})
    >>> uniform = solution[["row_id"]].assign(normal_mild=1, moderate=1, severe=1)
    >>> round(rsna_score(solution, uniform), 4)  # (3 log 3 + log 3/2) / 4
    0.9253
    """
    for name, frame, columns in (
        ("solution", solution, ["row_id", *TARGETS, "sample_weight"]),
        ("submission", submission, ["row_id", *TARGETS]),
    ):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} is missing column(s) {missing}")
    if submission["row_id"].duplicated().any():
        raise ValueError("submission has duplicated row_id values")
    merged = solution[["row_id", *TARGETS, "sample_weight"]].merge(
        submission[["row_id", *TARGETS]], on="row_id", how="left", suffixes=("", "_pred")
    )
    predicted = merged[[f"{t}_pred" for t in TARGETS]].to_numpy(dtype=np.float64)
    absent = np.isnan(predicted).all(axis=1)
    if absent.any():
        ids = merged.loc[absent, "row_id"].tolist()
        raise ValueError(f"submission lacks {len(ids)} row(s) of the solution: {ids[:_MAX_LISTED]}")
    if not np.isfinite(predicted).all() or (predicted < 0).any():
        bad = merged.loc[~np.isfinite(predicted).all(axis=1) | (predicted < 0).any(axis=1)]
        raise ValueError(
            f"submission probabilities must be finite and non-negative; see row(s) "
            f"{bad['row_id'].tolist()[:_MAX_LISTED]}"
        )
    totals = predicted.sum(axis=1, keepdims=True)
    if (totals == 0).any():
        raise ValueError("submission rows whose probabilities sum to zero cannot be normalised")
    predicted = np.clip(predicted / totals, SCORE_EPSILON, 1 - SCORE_EPSILON)
    truth = merged[TARGETS].to_numpy(dtype=np.float64)
    weight = merged["sample_weight"].to_numpy(dtype=np.float64)
    group = _group(merged["row_id"])
    if group.isna().any():
        raise ValueError(
            f"row_id of no known condition: {merged.loc[group.isna(), 'row_id'].tolist()[:5]}"
        )
    losses = []
    for name in SCORE_GROUPS:
        rows = (group == name).to_numpy()
        if not rows.any():
            raise ValueError(f"the solution has no {name} rows; the score needs all three groups")
        losses.append(_weighted_log_loss(truth[rows], predicted[rows], weight[rows]))

    spinal = (group == "spinal").to_numpy()
    study = merged.loc[spinal, "row_id"].str.split("_").str[0].to_numpy()
    per_study = pd.DataFrame(
        {
            "study": study,
            "label": truth[spinal, 2],
            "severe": predicted[spinal, 2],
            "weight": weight[spinal],
        }
    ).groupby("study")
    label = per_study["label"].max().to_numpy()
    severe = per_study["severe"].max().to_numpy()
    binary_truth = np.column_stack([1 - label, label])
    binary_pred = np.column_stack([1 - severe, severe])
    losses.append(
        _weighted_log_loss(binary_truth, binary_pred, per_study["weight"].max().to_numpy())
    )
    return float(np.mean(losses))
