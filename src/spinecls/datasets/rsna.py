"""Reading a directory in the RSNA 2024 lumbar spine competition layout.

:func:`load_rsna` performs the study's "row-wise reshaping" (the 25 wide severity
columns of ``train.csv`` become one row per condition and level) and "dataframe
merging" (coordinates, then series descriptions, joined on the study and series).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils.validation import MAX_LISTED, listing
from ..labels import CONDITIONS, LEVELS, RAW_SEVERITIES, WIDE_COLUMNS
from ._csv import (
    DESCRIPTIONS_CSV,
    FIRST_DATA_LINE,
    RSNADataWarning,
    as_float64,
    as_int64,
    at_lines,
    check_vocabulary,
    read_csv,
)
from ._csv import SPLITS as SPLITS  # shared from here (see ID_COLUMNS)
from ._series import (
    describe_series,
    description_table,
    image_paths,
    load_series,
    read_series_descriptions,
)

__all__ = [
    "RSNADataWarning",
    "image_paths",
    "load_coordinates",
    "load_rsna",
    "load_series",
    "read_series_descriptions",
]

LABELS_CSV = "train.csv"
COORDINATES_CSV = "train_label_coordinates.csv"

# The layout's names, for the package's other readers of these rows (the patch
# transformer, the baselines, the localizer): SPLITS, ID_COLUMNS, COORDINATE_COLUMNS,
# and the series descriptions' description_table and describe_series.
ID_COLUMNS = ("study_id", "series_id", "instance_number")
COORDINATE_COLUMNS = (*ID_COLUMNS, "condition", "level", "x", "y")
OUTPUT_COLUMNS = (*COORDINATE_COLUMNS, "series_description", "severity", "image_path")


def _read_labels(path: Path) -> pd.DataFrame:
    """``train.csv`` reshaped to one row per (study, condition, level) with a known severity."""
    wide = read_csv(path, ("study_id", *WIDE_COLUMNS), text=("study_id", *WIDE_COLUMNS))
    wide["study_id"] = as_int64(wide, "study_id", path)
    duplicated = wide["study_id"].duplicated(keep=False).to_numpy()
    if duplicated.any():
        raise ValueError(
            f"{path.name}: study_id {sorted(set(wide.loc[duplicated, 'study_id']))[:MAX_LISTED]} "
            f"appears more than once, at {at_lines(duplicated)}"
        )
    cells = wide[list(WIDE_COLUMNS)].apply(lambda col: col.str.strip())
    filled = cells.notna() & (cells != "")
    unknown = filled & ~cells.isin(list(RAW_SEVERITIES))
    if unknown.to_numpy().any():
        rows, cols = np.nonzero(unknown.to_numpy())
        where = (
            f"line {r + FIRST_DATA_LINE} ({cells.columns[c]}={cells.iat[r, c]!r})"
            for r, c in zip(rows, cols)
        )
        values = sorted(set(cells.to_numpy()[rows, cols]))
        raise ValueError(
            f"{path.name}: unknown severity value(s) {values}; expected one of "
            f"{list(RAW_SEVERITIES)} or blank. Found at {listing(where)}"
        )
    long = (
        cells.where(filled)
        .assign(study_id=wide["study_id"])
        .melt(id_vars="study_id", var_name="column", value_name="raw")
    )
    pairs = long["column"].map(WIDE_COLUMNS)
    long["condition"] = pairs.str[0]
    long["level"] = pairs.str[1]
    long["severity"] = long["raw"].map(RAW_SEVERITIES)
    return long[["study_id", "condition", "level", "severity"]]


def _read_coordinates(path: Path) -> pd.DataFrame:
    """The coordinates CSV, checked, with each row's CSV ``line``; exact duplicates dropped."""
    coords = read_csv(path, COORDINATE_COLUMNS, text=ID_COLUMNS)[list(COORDINATE_COLUMNS)].copy()
    for column in ID_COLUMNS:
        coords[column] = as_int64(coords, column, path)
    for column in ("x", "y"):
        coords[column] = as_float64(coords, column, path)
    for column, vocabulary in (("condition", CONDITIONS), ("level", LEVELS)):
        coords[column] = coords[column].astype("string").str.strip().astype(object)
        check_vocabulary(coords[column], vocabulary, column, path)
    coords["line"] = np.arange(len(coords)) + FIRST_DATA_LINE
    repeated = coords.duplicated(list(COORDINATE_COLUMNS)).to_numpy()
    if repeated.any():
        # A row repeated word for word is one label entered twice: keeping it would
        # weigh that coordinate double in training and in the score.
        group = coords.groupby(list(COORDINATE_COLUMNS), sort=False).ngroup()
        first = coords["line"].groupby(group).transform("min").to_numpy()
        lines = coords["line"].to_numpy()
        warnings.warn(
            f"{path.name}: dropped {int(repeated.sum())} exact duplicate row(s): "
            + listing(f"line {lines[i]} (= line {first[i]})" for i in np.flatnonzero(repeated)),
            RSNADataWarning,
            stacklevel=3,
        )
        coords = coords.loc[~repeated]
    return coords.reset_index(drop=True)


def load_coordinates(root: str | os.PathLike, split: str = "test") -> pd.DataFrame:
    """Coordinates to predict at, without labels: ``{split}_label_coordinates.csv``.

    Parameters
    ----------
    root : str or path-like
        The competition directory.
    split : {"test", "train"}, default="test"
        Reads ``{split}_label_coordinates.csv`` and ``{split}_series_descriptions.csv``
        (when present); images under ``{split}_images/``.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`load_rsna` but ``severity``, in the file's order.

    Warns
    -----
    RSNADataWarning
        When exact duplicate rows are dropped (as :func:`load_rsna`).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`load_rsna`.
    """
    root = Path(root)
    coords = _read_coordinates(root / f"{split}_label_coordinates.csv")
    descriptions = description_table(root, [split])
    coords["series_description"] = (
        None if descriptions is None else describe_series(coords, descriptions)
    )
    coords["image_path"] = image_paths(root, coords, split=split)
    columns = [c for c in OUTPUT_COLUMNS if c != "severity"]
    return coords[columns].reset_index(drop=True)


def load_rsna(root: str | os.PathLike) -> pd.DataFrame:
    """Load the competition's training metadata as one long frame.

    Reshapes the wide ``train.csv`` to one row per (study, condition, level), joins
    ``train_label_coordinates.csv`` on those keys and ``train_series_descriptions.csv``
    on (study, series). No image is opened: the directory may lack ``train_images/``.

    Parameters
    ----------
    root : str or path-like
        Directory holding ``train.csv``, ``train_label_coordinates.csv`` and
        ``train_series_descriptions.csv`` (images, when present, under
        ``train_images/{study_id}/{series_id}/{instance_number}.dcm``).

    Returns
    -------
    pandas.DataFrame
        One row per labelled coordinate whose severity is known, in the order of
        ``train_label_coordinates.csv``, index ``0..n-1``, with columns

        - ``study_id``, ``series_id``, ``instance_number``: int64;
        - ``condition``: one of :data:`spinecls.CONDITIONS`;
        - ``level``: one of :data:`spinecls.LEVELS`;
        - ``x``, ``y``: float64 pixel coordinates in that instance (x = column, y = row);
        - ``series_description``: ``"Sagittal T1"``, ``"Sagittal T2/STIR"``, ``"Axial T2"``,
          or missing when the series is absent from the descriptions file;
        - ``severity``: one of :data:`spinecls.SEVERITIES`;
        - ``image_path``: absolute path of the DICOM file.

    Warns
    -----
    RSNADataWarning
        When coordinates are dropped because their severity cell is blank, their
        (study, condition, level) has no row in ``train.csv``, or they repeat an earlier
        row of ``train_label_coordinates.csv`` word for word (only the first is kept),
        and when coordinates lie on a series missing from the descriptions file (kept,
        description missing). Each warning gives the count and the CSV lines.

    Raises
    ------
    FileNotFoundError
        If one of the three CSV files is missing (the message names it).
    ValueError
        If a file is empty, has a header but no rows, is not UTF-8 or not a CSV, a
        column is missing (naming the column and file), condition, level or severity
        strings are unknown, ids and coordinates are not numbers, or an id is not a
        whole number within int64 (listing the bad values and their CSV line numbers).

    Examples
    --------
    >>> import spinecls, tempfile
    >>> root = spinecls.make_synthetic_rsna(tempfile.mkdtemp() + "/rsna", n_studies=1)
    >>> frame = spinecls.load_rsna(root)
    >>> len(frame), bool(frame["severity"].isin(spinecls.SEVERITIES).all())
    (25, True)
    """
    root = Path(root)
    labels = _read_labels(root / LABELS_CSV)
    coords = _read_coordinates(root / COORDINATES_CSV)
    descriptions = description_table(root, ["train"], required=True)

    merged = coords.merge(labels, on=["study_id", "condition", "level"], how="left", indicator=True)
    unlabelled = (merged["_merge"] == "left_only").to_numpy()
    blank = ~unlabelled & merged["severity"].isna().to_numpy()
    lines = merged["line"].to_numpy()
    if unlabelled.any():
        warnings.warn(
            f"load_rsna: dropped {int(unlabelled.sum())} coordinate row(s) whose "
            f"(study_id, condition, level) has no row in {LABELS_CSV} "
            f"({COORDINATES_CSV} {at_lines(unlabelled, lines)})",
            RSNADataWarning,
            stacklevel=2,
        )
    if blank.any():
        warnings.warn(
            f"load_rsna: dropped {int(blank.sum())} coordinate row(s) whose severity is "
            f"blank in {LABELS_CSV} ({COORDINATES_CSV} {at_lines(blank, lines)})",
            RSNADataWarning,
            stacklevel=2,
        )
    merged = merged.loc[~(unlabelled | blank)].drop(columns="_merge")

    merged["series_description"] = describe_series(merged, descriptions)
    undescribed = merged["series_description"].isna()
    if undescribed.any():
        series = merged.loc[undescribed, ["study_id", "series_id"]].drop_duplicates()
        warnings.warn(
            f"load_rsna: {int(undescribed.sum())} coordinate row(s) lie on "
            f"{len(series)} series absent from {DESCRIPTIONS_CSV.format(split='train')}; "
            f"kept with a missing series_description: "
            f"{series.head(MAX_LISTED).to_numpy().tolist()}",
            RSNADataWarning,
            stacklevel=2,
        )
    merged["image_path"] = image_paths(root, merged)
    return merged[list(OUTPUT_COLUMNS)].reset_index(drop=True)
