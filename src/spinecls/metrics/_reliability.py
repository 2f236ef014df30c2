"""Reliability of one head's top probability: per-bin tables and the expected calibration error.

Public through :mod:`spinecls.metrics` (``from spinecls.metrics import reliability_table``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils.validation import listing

__all__ = ["CALIBRATION_BINS", "expected_calibration_error", "reliability_table"]

CALIBRATION_BINS = 10
"""Equal-width bins of the top probability in reliability tables and the ECE."""


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
        raise ValueError(f"y_true has label(s) {listing(map(repr, unknown))} not in the classes")
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


def table_ece(table: pd.DataFrame) -> float:
    """The expected calibration error of a :func:`reliability_table`: the mean of
    ``|accuracy - confidence|`` over its bins, weighted by their counts."""
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
    return table_ece(reliability_table(y_true, proba, classes=classes, n_bins=n_bins))
