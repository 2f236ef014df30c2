"""Reading the competition's CSV files: one-line errors naming the file and its lines."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils.validation import MAX_LISTED, finite_numbers, located, whole_numbers

DESCRIPTIONS_CSV = "{split}_series_descriptions.csv"
DESCRIPTION_COLUMNS = ("study_id", "series_id", "series_description")
SPLITS = ("train", "test")

# Row numbers in messages are the CSV's own line numbers (header = line 1).
FIRST_DATA_LINE = 2


def read_csv(path: Path, required: tuple[str, ...], text: Iterable[str] = ()) -> pd.DataFrame:
    """A competition CSV with its ``required`` columns and at least one row.

    The ``text`` columns are read as strings: ids, so that :func:`as_int64` converts
    them exactly (pandas would read an id beyond int64 as a float or an unsigned int).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} not found: expected the file {path}")
    expected = f"expected a UTF-8 CSV file with a header line holding {list(required)}"
    try:
        frame = pd.read_csv(path, dtype=dict.fromkeys(text, "string"), keep_default_na=True)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path}: the file is empty; {expected}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({first_bad_byte(path)}); {expected}") from exc
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc}); {expected}") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path.name}: missing column(s) {missing}; found {list(frame.columns)} in {path}"
        )
    if frame.empty:
        raise ValueError(f"{path}: the file has a header line but no rows; expected at least one")
    return frame


def first_bad_byte(path: Path) -> str:
    """Where the file stops being UTF-8 (pandas reports offsets within its own chunks)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return f"line {line}: {exc.reason}, byte {raw[exc.start : exc.start + 1]!r}"
    return "pandas could not decode it"


def at_lines(mask: np.ndarray, lines=None) -> str:
    """``"line(s) ..."`` where ``mask`` is true; ``lines`` default to the rows' positions."""
    lines = np.arange(len(mask)) + FIRST_DATA_LINE if lines is None else lines
    return located(mask, lines, unit="line")


def as_int64(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """``frame[column]`` as exact int64, or a ValueError naming the CSV lines."""
    lines = np.arange(len(frame)) + FIRST_DATA_LINE
    return whole_numbers(frame[column], f"{path.name}: column {column!r}", lines, unit="line")


def as_float64(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """``frame[column]`` as finite float64, or a ValueError naming the CSV lines."""
    lines = np.arange(len(frame)) + FIRST_DATA_LINE
    return finite_numbers(frame[column], f"{path.name}: column {column!r}", lines, unit="line")


def check_vocabulary(values: pd.Series, allowed, column: str, path: Path) -> None:
    """A ValueError naming the unknown values of ``column`` and their CSV lines."""
    bad = ~values.isin(list(allowed)).to_numpy()
    if bad.any():
        unknown = sorted(set(values[bad].astype(str)))
        raise ValueError(
            f"{path.name}: unknown {column} value(s) {unknown[:MAX_LISTED]} at {at_lines(bad)}; "
            f"expected one of {list(allowed)}"
        )


class RSNADataWarning(UserWarning):
    """Rows of the competition CSVs were dropped or left incomplete while loading."""
