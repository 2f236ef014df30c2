"""What a report says about a study: its grades, its weak points, why to check it.

Pure pandas: no image is read here. :func:`prior_rows` derives the rows that fell back
to the class prior from the points alone, as :func:`spinecls.predict_studies` decides
them; :func:`summarise` gathers one study's facts for the index and its page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..labels import CONDITION_SHORT_NAMES, CONDITIONS, LEVELS, SEVERITIES, TARGETS

FLAG_WORDS: dict[str, tuple[str, str]] = {
    "qc_outside_coverage": (
        "edge of coverage",
        "on the first or last slice of its series, or beyond the axial coverage: the "
        "structure may lie outside the slices",
    ),
    "qc_outside_image": ("outside the image", "outside its image: not graded"),
    "qc_order": (
        "out of order",
        "out of head-to-foot order with a neighbouring level, or two levels on one axial slice",
    ),
    "qc_level_shift": ("level shift", "the chain of levels may be one disc off"),
}
"""The review flags spinecls knows: ``{column: (short name, what it means)}``. Any other
``qc_*`` column is shown by its name."""

LOW_CONFIDENCE = 0.5
"""A point (or a level naming) below this confidence is a reason to check its study."""

SEVERITY_WORDS = {"normal_mild": "normal/mild", "moderate": "moderate", "severe": "severe"}


def flag_words(column: str) -> tuple[str, str]:
    """A flag's short name and meaning; an unknown flag's column name for both."""
    return FLAG_WORDS.get(column, (column, column))


def row_name(condition: str, level: str) -> str:
    """``"left foraminal L4/L5"``."""
    return f"{CONDITION_SHORT_NAMES[condition]} {level}"


def prior_rows(points: pd.DataFrame, studies) -> set[tuple[int, str, str]]:
    """The (study, condition, level) rows that fell back to the class prior.

    A row falls back when no point of the study grades it: none of that condition and
    level, or only points flagged ``qc_outside_image`` (which
    :func:`spinecls.predict_studies` does not grade).

    Parameters
    ----------
    points : pandas.DataFrame
        The located points, with ``study_id, condition, level`` (and
        ``qc_outside_image`` when the localizer wrote it).
    studies : iterable of int
        The studies whose 25 rows are asked about.

    Returns
    -------
    set of (int, str, str)
    """
    usable = points
    if "qc_outside_image" in points.columns:
        usable = points.loc[~points["qc_outside_image"].to_numpy(bool)]
    graded = set(
        zip(usable["study_id"].astype(int), usable["condition"], usable["level"], strict=True)
    )
    return {
        (int(s), c, lv)
        for s in studies
        for c in CONDITIONS
        for lv in LEVELS
        if (int(s), c, lv) not in graded
    }


@dataclass
class StudySummary:
    """One study's facts, for its row in the index and the top of its page.

    ``rows`` holds the 25 condition-levels in the competition's order: ``condition,
    level, row_id``, the three probabilities (NaN for a row the submission lacks) and
    ``on_prior``.
    """

    study_id: int
    rows: pd.DataFrame
    lowest_confidence: float
    lowest_level_confidence: float
    flags: dict[str, int]
    missing: list[str] = field(default_factory=list)

    @property
    def n_prior(self) -> int:
        """Rows of the study that fell back to the class prior."""
        return int(self.rows["on_prior"].sum())

    @property
    def n_absent(self) -> int:
        """Rows of the study the submission lacks."""
        return int(self.rows[TARGETS[0]].isna().sum())

    def worst(self) -> tuple[str, str, str, float] | None:
        """The most severe predicted grade: (severity, condition, level, its probability).

        Each row's grade is its most probable class; among the most severe grades, the
        row that gives it the highest probability.
        """
        graded = self.rows.dropna(subset=TARGETS)
        if graded.empty:
            return None
        proba = graded[TARGETS].to_numpy(float)
        grade = proba.argmax(axis=1)
        top = grade.max()
        candidates = np.flatnonzero(grade == top)
        best = candidates[np.argmax(proba[candidates, top])]
        row = graded.iloc[best]
        return SEVERITIES[top], row["condition"], row["level"], float(proba[best, top])

    def reasons(self) -> list[str]:
        """Why a reader should check this study, in words; empty when nothing stands out."""
        out = []
        if self.missing:
            out.append("series missing or unreadable")
        if self.n_absent:
            out.append(f"{self.n_absent} row(s) missing from the submission")
        if self.n_prior:
            out.append(f"{self.n_prior} row(s) on the class prior")
        for column, count in self.flags.items():
            if count:
                out.append(f"{flag_words(column)[0]} ({count} point{'s' * (count > 1)})")
        if self.lowest_confidence < LOW_CONFIDENCE:
            out.append(f"a point of confidence {self.lowest_confidence:.2f}")
        if self.lowest_level_confidence < LOW_CONFIDENCE:
            out.append(f"level naming of confidence {self.lowest_level_confidence:.2f}")
        return out

    def sort_key(self) -> tuple:
        """Studies to check first: more reasons, then a lower confidence, then by id."""
        lowest = self.lowest_confidence
        return (-len(self.reasons()), lowest if math.isfinite(lowest) else 2.0, self.study_id)


def _lowest(points: pd.DataFrame, column: str) -> float:
    if column not in points.columns or not points[column].notna().any():
        return math.nan
    return float(points[column].min())


def summarise(
    study_id: int,
    submission: pd.DataFrame,
    points: pd.DataFrame,
    flags: list[str],
    on_prior: set,
) -> StudySummary:
    """The facts of one study from its submission rows and its points.

    Parameters
    ----------
    study_id : int
    submission : pandas.DataFrame
        :func:`read_submission`'s rows of this study (any number, 0 to 25).
    points : pandas.DataFrame
        :func:`read_points`'s rows of this study.
    flags : list of str
        Every flag column of the points (so that each study names the same ones).
    on_prior : set
        :func:`prior_rows`'s rows.
    """
    rows = pd.DataFrame(
        [(c, lv) for c in CONDITIONS for lv in LEVELS], columns=["condition", "level"]
    )
    given = submission.set_index(["condition", "level"])[["row_id", *TARGETS]]
    rows = rows.join(given, on=["condition", "level"])
    rows["on_prior"] = [
        (study_id, c, lv) in on_prior for c, lv in zip(rows["condition"], rows["level"])
    ]
    return StudySummary(
        study_id=int(study_id),
        rows=rows,
        lowest_confidence=_lowest(points, "confidence"),
        lowest_level_confidence=_lowest(points, "level_confidence"),
        flags={c: int(points[c].sum()) for c in flags},
    )
