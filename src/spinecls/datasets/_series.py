"""The series of a competition directory: descriptions, image paths and series folders.

Public through :mod:`spinecls.datasets.rsna` and :mod:`spinecls.datasets`
(``from spinecls.datasets import load_series``).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils.validation import MAX_LISTED, listing
from ._csv import (
    DESCRIPTION_COLUMNS,
    DESCRIPTIONS_CSV,
    SPLITS,
    RSNADataWarning,
    as_int64,
    read_csv,
)

__all__ = ["image_paths", "load_series", "read_series_descriptions"]


def read_series_descriptions(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``{train,test}_series_descriptions.csv`` file.

    Parameters
    ----------
    path : str or path-like
        The CSV file.

    Returns
    -------
    pandas.DataFrame
        Columns ``study_id``, ``series_id`` (int64) and ``series_description``, one row
        per series (exact duplicate rows are collapsed).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is empty, has no rows, is not a UTF-8 CSV, a column is missing, an
        id is not a whole number within int64, or one series has two different
        descriptions.
    """
    path = Path(path)
    frame = read_csv(path, DESCRIPTION_COLUMNS, text=("study_id", "series_id"))
    frame = frame[list(DESCRIPTION_COLUMNS)].copy()
    frame["study_id"] = as_int64(frame, "study_id", path)
    frame["series_id"] = as_int64(frame, "series_id", path)
    frame["series_description"] = frame["series_description"].astype("string").str.strip()
    frame = frame.drop_duplicates()
    conflict = frame.duplicated(["study_id", "series_id"], keep=False)
    if conflict.any():
        series = frame.loc[conflict, ["study_id", "series_id"]].drop_duplicates()
        raise ValueError(
            f"{path.name}: series with more than one description: "
            f"{series.head(MAX_LISTED).to_numpy().tolist()}"
        )
    frame["series_description"] = frame["series_description"].astype(object)
    return frame.reset_index(drop=True)


def image_paths(
    root: str | os.PathLike, frame: pd.DataFrame, split: str | None = "train"
) -> pd.Series:
    """Absolute DICOM paths ``{root}/{split}_images/{study}/{series}/{instance}.dcm``.

    Parameters
    ----------
    root : str or path-like
        The competition directory.
    frame : pandas.DataFrame
        Rows with integer ``study_id``, ``series_id`` and ``instance_number``.
    split : {"train", "test"} or None, default="train"
        Which image folder. None: for each study, the split whose
        ``{split}_images/{study_id}`` folder exists (``"train"`` when neither does).

    Returns
    -------
    pandas.Series
        One path string per row, aligned with ``frame.index``.
    """
    root = Path(root).resolve()
    if split is None:
        found = {
            study: next(
                (s for s in SPLITS if (root / f"{s}_images" / str(study)).is_dir()), SPLITS[0]
            )
            for study in frame["study_id"].unique()
        }
        split_of = frame["study_id"].map(found)
    else:
        split_of = pd.Series(split, index=frame.index, dtype=object)
    prefix = split_of.map({s: f"{root / f'{s}_images'}{os.sep}" for s in split_of.unique()})
    return (
        prefix
        + frame["study_id"].astype(str)
        + os.sep
        + frame["series_id"].astype(str)
        + os.sep
        + frame["instance_number"].astype(str)
        + ".dcm"
    )


def description_table(root: str | os.PathLike, splits=SPLITS, required: bool = False):
    """The series descriptions of ``splits`` as one table, the first split's entry first.

    Parameters
    ----------
    root : str or path-like
        The competition directory.
    splits : sequence of {"train", "test"}, default=("train", "test")
        Whose ``{split}_series_descriptions.csv`` to read, in order of precedence.
    required : bool, default=False
        Raise when a file is missing instead of skipping it.

    Returns
    -------
    pandas.DataFrame or None
        As :func:`read_series_descriptions`, one row per series; None when no file exists.
    """
    paths = [Path(root) / DESCRIPTIONS_CSV.format(split=s) for s in splits]
    tables = [read_series_descriptions(p) for p in paths if required or p.is_file()]
    if not tables:
        return None
    return pd.concat(tables).drop_duplicates(["study_id", "series_id"])


def describe_series(frame: pd.DataFrame, table: pd.DataFrame) -> pd.Series:
    """Each row's ``series_description`` from ``table`` (missing where it has none).

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with integer ``study_id`` and ``series_id``.
    table : pandas.DataFrame
        From :func:`description_table`.

    Returns
    -------
    pandas.Series
        Aligned with ``frame.index``.
    """
    merged = frame[["study_id", "series_id"]].merge(
        table, on=["study_id", "series_id"], how="left", validate="m:1"
    )
    return merged["series_description"].set_axis(frame.index)


def _id_folders(parent: Path, what: str, odd: list) -> dict[int, Path]:
    """The sub-folders of ``parent`` named by an id, by id; the others are added to ``odd``.

    An id is written in ASCII digits without leading zeros, as the competition writes
    them. A folder whose name reads as the same number otherwise (``0123``, other
    scripts' digits) is not taken for it: alone it is odd, beside the id's folder an error.
    """
    by_number: dict[int, list[Path]] = {}
    for entry in sorted(parent.iterdir()):
        if not entry.is_dir():
            continue
        if not entry.name.isdecimal():
            odd.append(entry)
            continue
        by_number.setdefault(int(entry.name), []).append(entry)
    found = {}
    for number, folders in by_number.items():
        if len(folders) > 1:
            raise ValueError(
                f"{listing(str(f) for f in folders)}: {len(folders)} folders name {what} "
                f"{number}; ids are ASCII digits without leading zeros: rename or remove the others"
            )
        if re.fullmatch("0|[1-9][0-9]*", folders[0].name):
            found[number] = folders[0]
        else:
            odd.append(folders[0])
    return found


def load_series(root: str | os.PathLike, split: str = "train") -> pd.DataFrame:
    """One row per series of a competition directory, with the folder of its files.

    Reads ``{split}_series_descriptions.csv`` and matches it with the folders
    ``{split}_images/{study_id}/{series_id}/``; no image is opened. This is the input of
    :class:`spinecls.LevelLocalizer`, which needs no coordinates.

    Parameters
    ----------
    root : str or path-like
        The competition directory.
    split : {"train", "test"}, default="train"
        Which descriptions file and image folder.

    Returns
    -------
    pandas.DataFrame
        In the descriptions file's order, index ``0..n-1``, columns ``study_id``,
        ``series_id`` (int64), ``series_description`` and ``series_dir`` (the absolute
        path of the series' folder, holding ``{instance_number}.dcm`` files).

    Warns
    -----
    RSNADataWarning
        For series listed in the descriptions file whose folder is missing or holds no
        ``.dcm`` file (dropped), for series folders on disk that the file does not
        list (ignored), and for folders whose names are not ids (ASCII digits without
        leading zeros: ``0123`` or ``١٢٣`` is not study 123), naming them.

    Raises
    ------
    ValueError
        If ``split`` is not ``"train"`` or ``"test"``, the descriptions file is bad
        (see :func:`read_series_descriptions`), or two folders name one id (``123``
        and ``0123``), naming both.
    FileNotFoundError
        If the descriptions file or the image folder does not exist.

    Examples
    --------
    >>> import spinecls, tempfile
    >>> root = spinecls.make_synthetic_rsna(tempfile.mkdtemp() + "/rsna", n_studies=1)
    >>> series = spinecls.load_series(root)
    >>> list(series.columns)
    ['study_id', 'series_id', 'series_description', 'series_dir']
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    root = Path(root).resolve()
    frame = read_series_descriptions(root / DESCRIPTIONS_CSV.format(split=split))
    images = root / f"{split}_images"
    if not images.is_dir():
        raise FileNotFoundError(f"{images.name} not found: expected the folder {images}")
    odd: list[Path] = []
    on_disk = {
        (study_id, series_id): series
        for study_id, study in _id_folders(images, "study", odd).items()
        for series_id, series in _id_folders(study, "series", odd).items()
        if any(series.glob("*.dcm"))
    }
    if odd:
        warnings.warn(
            f"load_series: ignored {len(odd)} folder(s) under {images} whose names are not ids "
            f"(ASCII digits without leading zeros): {listing(str(p) for p in odd)}",
            RSNADataWarning,
            stacklevel=2,
        )
    keys = list(zip(frame["study_id"].tolist(), frame["series_id"].tolist()))
    present = np.array([key in on_disk for key in keys], dtype=bool)
    if not present.all():
        missing = [list(key) for key, ok in zip(keys, present) if not ok]
        warnings.warn(
            f"load_series: dropped {len(missing)} series of {DESCRIPTIONS_CSV.format(split=split)} "
            f"without DICOM files under {images}: [study_id, series_id] {listing(missing)}",
            RSNADataWarning,
            stacklevel=2,
        )
    unlisted = [list(key) for key in sorted(set(on_disk) - set(keys))]
    if unlisted:
        warnings.warn(
            f"load_series: ignored {len(unlisted)} series folder(s) under {images} absent from "
            f"{DESCRIPTIONS_CSV.format(split=split)}: [study_id, series_id] {listing(unlisted)}",
            RSNADataWarning,
            stacklevel=2,
        )
    frame = frame.loc[present].reset_index(drop=True)
    frame["series_dir"] = [str(on_disk[key]) for key, ok in zip(keys, present) if ok]
    return frame
