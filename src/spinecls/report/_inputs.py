"""The report's inputs checked: the located points, the submission and the study folders.

Each reader takes a frame or a CSV file and returns a frame with checked columns, or
raises a one-line ValueError naming the file (or frame), the column and the rows.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils.validation import finite_numbers, listing, located, require_columns, whole_numbers
from ..labels import CONDITION_SERIES, CONDITIONS, LEVELS, TARGETS, slug

POINT_KEYS = ("study_id", "series_id", "instance_number", "condition", "level", "x", "y")
"""The columns every points frame has: ``spinecls localize``'s CSV, or labelled coordinates."""

SERIES_ORDER = tuple(dict.fromkeys(CONDITION_SERIES[c] for c in CONDITIONS))
"""The series types of a study in reading order: the spinal canal's, the foramina's, axial."""

FLAG_PREFIX = "qc_"
# CSV line numbers in messages: the header is line 1.
_FIRST_LINE = 2
_ROW_ID = re.compile(
    rf"(\d+)_({'|'.join(slug(c) for c in CONDITIONS)})_({'|'.join(slug(lv) for lv in LEVELS)})"
)
_TEXT = ("row_id", "study_id", "series_id", "instance_number")
_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}


def _frame(source, name: str) -> tuple[pd.DataFrame, str, np.ndarray, str]:
    """``source`` as a frame, what messages call it, each row's label and what a row is
    called (a CSV file's rows are its lines, the header being line 1)."""
    if isinstance(source, pd.DataFrame):
        frame = source.reset_index(drop=True)
        return frame, name, np.arange(len(frame)), "row"
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"{name} must be a DataFrame or a CSV file; got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{name} file not found: {path}")
    try:
        # Ids as text, converted exactly (whole_numbers): pandas would round large ones.
        frame = pd.read_csv(path, dtype=dict.fromkeys(_TEXT, "string"))
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path}: the file is empty; expected a CSV file of {name}") from exc
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: not a readable CSV file of {name} ({exc})") from exc
    return frame, str(path), np.arange(len(frame)) + _FIRST_LINE, "line"


def _flags(values: pd.Series, what: str, labels, unit: str) -> pd.Series:
    """A flag column as bool: True/False, 1/0 or their text, an empty cell False; anything
    else is an error."""
    if values.dtype == bool:
        return values
    text = values.astype("string").str.strip().str.lower()
    known = (text.isin(_TRUE) | text.isin(_FALSE)).fillna(False)
    bad = (values.notna() & ~known).to_numpy(bool)
    if bad.any():
        raise ValueError(
            f"{what} must hold True or False; got {values[bad].head(3).tolist()} at "
            f"{located(bad, labels, unit)}"
        )
    return text.isin(_TRUE).fillna(False).astype(bool)


def read_points(points, data_dir: Path, split: str) -> pd.DataFrame:
    """The located points, checked, with ``series_description`` and ``image_path``.

    ``points`` is :meth:`spinecls.LevelLocalizer.predict`'s frame, the CSV ``spinecls
    localize`` writes, or labelled coordinates (:func:`spinecls.load_coordinates`):
    :data:`POINT_KEYS`, and optionally ``confidence``, ``level_confidence``, the
    ``qc_*`` flags, ``series_description`` and ``image_path``. A missing
    ``image_path`` is ``{data_dir}/{split}_images/{study}/{series}/{instance}.dcm``; a
    missing ``series_description`` the series type its condition is read on.
    """
    frame, name, labels, unit = _frame(points, "points")
    require_columns(frame, POINT_KEYS, name)
    frame = frame.copy()
    for column in ("study_id", "series_id", "instance_number"):
        frame[column] = whole_numbers(frame[column], f"{name}: column {column!r}", labels, unit)
    for column, vocabulary in (("condition", CONDITIONS), ("level", LEVELS)):
        bad = ~frame[column].isin(vocabulary).to_numpy(bool)
        if bad.any():
            raise ValueError(
                f"{name}: column {column!r} has unknown value(s) "
                f"{listing(sorted(set(frame.loc[bad, column].astype(str))))} at "
                f"{located(bad, labels, unit)}; expected one of {list(vocabulary)}"
            )
    for column in ("x", "y"):
        frame[column] = finite_numbers(frame[column], f"{name}: column {column!r}", labels, unit)
    for column in ("confidence", "level_confidence"):
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = (frame[column].notna() & ~values.between(0, 1)).to_numpy(bool)
            if bad.any():
                raise ValueError(
                    f"{name}: column {column!r} must hold numbers in [0, 1] (or nothing); "
                    f"got {frame.loc[bad, column].head(3).tolist()} at "
                    f"{located(bad, labels, unit)}"
                )
            frame[column] = values.astype(float)
    for column in flag_columns(frame):
        frame[column] = _flags(frame[column], f"{name}: column {column!r}", labels, unit)
    described = frame.get("series_description")
    by_condition = frame["condition"].map(CONDITION_SERIES)
    frame["series_description"] = (
        by_condition if described is None else described.where(described.notna(), by_condition)
    )
    images = Path(data_dir) / f"{split}_images"
    resolved = [
        str(images / str(s) / str(r) / f"{i}.dcm")
        for s, r, i in zip(frame["study_id"], frame["series_id"], frame["instance_number"])
    ]
    given = frame.get("image_path")
    frame["image_path"] = (
        resolved if given is None else given.where(given.notna(), pd.Series(resolved))
    )
    return frame


def flag_columns(points: pd.DataFrame) -> list[str]:
    """The points' review flags: every ``qc_*`` column, in the frame's order."""
    return [c for c in points.columns if str(c).startswith(FLAG_PREFIX)]


def read_submission(submission) -> pd.DataFrame:
    """The submission, checked: ``row_id``, its ``study_id``, ``condition`` and ``level``,
    and the three probabilities."""
    frame, name, labels, unit = _frame(submission, "submission")
    require_columns(frame, ["row_id", *TARGETS], name)
    ids = frame["row_id"].astype("string")
    parts = ids.str.fullmatch(_ROW_ID.pattern).fillna(False).to_numpy(bool)
    if not parts.all():
        raise ValueError(
            f"{name}: row_id must read {{study_id}}_{{condition}}_{{level}} "
            f"(e.g. 44036939_spinal_canal_stenosis_l1_l2); got "
            f"{frame.loc[~parts, 'row_id'].head(3).tolist()} at {located(~parts, labels, unit)}"
        )
    twice = ids.duplicated(keep=False).to_numpy(bool)
    if twice.any():
        raise ValueError(
            f"{name}: each row_id must appear once; {listing(sorted(set(ids[twice])))} at "
            f"{located(twice, labels, unit)}"
        )
    found = ids.str.extract(_ROW_ID.pattern)
    out = pd.DataFrame({"row_id": ids.astype(object)})
    out["study_id"] = found[0].astype(np.int64)
    out["condition"] = found[1].map({slug(c): c for c in CONDITIONS})
    out["level"] = found[2].map({slug(lv): lv for lv in LEVELS})
    for column in TARGETS:
        values = finite_numbers(frame[column], f"{name}: column {column!r}", labels, unit)
        negative = (values < 0).to_numpy()
        if negative.any():
            raise ValueError(
                f"{name}: column {column!r} must hold probabilities (>= 0); got negative "
                f"values at {located(negative, labels, unit)}"
            )
        out[column] = values.to_numpy()
    return out


def series_listing(data_dir: Path, split: str) -> pd.DataFrame | None:
    """The series ``{split}_series_descriptions.csv`` lists and whether their files are there.

    Returns None without that file; else one row per series: ``study_id, series_id,
    series_description`` and ``problem`` (None, or why the series cannot be shown).
    """
    from ..datasets import read_series_descriptions

    path = Path(data_dir) / f"{split}_series_descriptions.csv"
    if not path.is_file():
        return None
    frame = read_series_descriptions(path)
    images = Path(data_dir) / f"{split}_images"
    problems = []
    for study, series in zip(frame["study_id"], frame["series_id"]):
        folder = images / str(study) / str(series)
        if not folder.is_dir():
            problems.append(f"its folder {split}_images/{study}/{series} is missing")
        elif not any(folder.glob("*.dcm")):
            problems.append(f"its folder {split}_images/{study}/{series} holds no .dcm file")
        else:
            problems.append(None)
    frame = frame.assign(problem=problems)
    return frame.astype({"series_description": object})
