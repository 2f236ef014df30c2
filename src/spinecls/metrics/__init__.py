"""Per-head reports, scorers, the competition score and submissions.

:func:`dual_head_report` and :class:`DualHeadReport` are in ``_report``; reliability
tables and the expected calibration error in ``_reliability``; the scorers for
``GridSearchCV(scoring=...)`` in ``_scorers``; the competition's row ids, prior and
submissions in ``_competition``, and its score in ``_score``.
"""

from ._competition import row_ids, solution_from_frame, to_submission
from ._reliability import CALIBRATION_BINS, expected_calibration_error, reliability_table
from ._report import DualHeadReport, dual_head_report
from ._score import rsna_score
from ._scorers import HeadScorer, RSNAScorer, head_scorer, rsna_scorer

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
