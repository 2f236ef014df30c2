"""A fitted model on labelled rows: the report, the submission and the competition score.

What ``spinecls evaluate`` prints and what ``spinecls demo`` tabulates, computed in one
place from :mod:`spinecls.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .metrics import (
    DualHeadReport,
    dual_head_report,
    rsna_score,
    solution_from_frame,
    to_submission,
)

__all__ = ["Evaluation", "evaluate"]


@dataclass
class Evaluation:
    """How a model did on labelled rows.

    Attributes
    ----------
    report : DualHeadReport
        Accuracy, precision, recall, F1, balanced accuracy, log loss and expected
        calibration error per head (:func:`spinecls.metrics.dual_head_report`).
    submission : pandas.DataFrame
        The competition submission of the rows' studies (:func:`spinecls.metrics.to_submission`).
    score : float
        The competition score of ``submission`` against the rows' labels (lower is better).
    """

    report: DualHeadReport
    submission: pd.DataFrame
    score: float

    def to_dict(self) -> dict:
        """The report as a plain dict plus ``"competition_score"`` (for JSON)."""
        return self.report.to_dict() | {"competition_score": float(self.score)}


def evaluate(estimator, frame: pd.DataFrame, *, complete: bool = False) -> Evaluation:
    """Predict labelled rows and score the predictions.

    Parameters
    ----------
    estimator : fitted pipeline or dual-head estimator
        Takes ``frame`` as X (e.g. a Pipeline of :class:`~spinecls.LumbarPatchTransformer`
        and :class:`~spinecls.DualHeadClassifier`) and has ``predict``,
        ``predict_proba`` and ``classes_``.
    frame : pandas.DataFrame
        Rows with ``study_id, condition, level, severity`` and what the estimator reads,
        e.g. from :func:`spinecls.load_rsna`.
    complete : bool, default=False
        Fill the condition-levels of each study that have no row with the class prior,
        so the submission has 25 rows a study (:func:`~spinecls.metrics.to_submission`).
        The score is computed on the rows' own condition-levels either way.

    Returns
    -------
    Evaluation
    """
    y = frame[["condition", "severity"]]
    proba = estimator.predict_proba(frame)
    # The labels are each head's most probable class: one forward pass serves both.
    predicted = np.column_stack(
        [np.asarray(c)[np.argmax(p, axis=1)] for c, p in zip(estimator.classes_, proba)]
    )
    report = dual_head_report(y, predicted, proba=proba, classes=estimator.classes_)
    submission = to_submission(frame, proba[1], classes=estimator.classes_[1], complete=complete)
    score = rsna_score(solution_from_frame(frame), submission)
    return Evaluation(report=report, submission=submission, score=float(score))
