"""The rows :class:`~spinecls.preprocessing.LumbarPatchTransformer` reads.

Its five columns checked (:func:`check_rows`), and what ``data_dir`` completes: the
DICOM paths (:func:`resolve_paths`) and the series descriptions
(:func:`with_metadata`), both resolved by :mod:`spinecls.datasets.rsna`.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .._utils.validation import finite_numbers, require_columns, whole_numbers
from ..datasets.rsna import ID_COLUMNS, SPLITS, describe_series, description_table, image_paths

REQUIRED_COLUMNS = (*ID_COLUMNS, "x", "y")


def check_rows(X, data_dir: str | os.PathLike | None) -> pd.DataFrame:
    """The five required columns of ``X`` as int64 ids and float64 coordinates.

    Raises
    ------
    ValueError
        If ``X`` is not a DataFrame, lacks a required column, has no ``image_path``
        column while ``data_dir`` is None, or holds ids that are not whole numbers or
        coordinates that are not finite (listing the rows).
    """
    if not isinstance(X, pd.DataFrame):
        raise ValueError(
            f"X must be a pandas DataFrame with columns {list(REQUIRED_COLUMNS)}, "
            f"got {type(X).__name__}"
        )
    require_columns(X, REQUIRED_COLUMNS, "X")
    if "image_path" not in X.columns and data_dir is None:
        raise ValueError("X has no image_path column: set data_dir to resolve the DICOM paths")
    checked = {c: finite_numbers(X[c], f"X column {c!r}") for c in ("x", "y")}
    checked |= {c: whole_numbers(X[c], f"X column {c!r}") for c in ID_COLUMNS}
    return pd.DataFrame(
        {c: checked[c].to_numpy() for c in REQUIRED_COLUMNS}, index=X.index, copy=False
    )


def resolve_paths(X: pd.DataFrame, checked: pd.DataFrame, data_dir) -> pd.Series:
    """``X``'s image_path, the missing ones resolved under ``data_dir`` when it is set.

    ``checked`` is :func:`check_rows`' frame of ``X``.
    """
    if "image_path" in X.columns:
        paths = X["image_path"]
    else:
        paths = pd.Series(pd.NA, index=X.index, dtype=object)
    need = paths.isna().to_numpy()
    if need.any() and data_dir is not None:
        resolved = np.full(len(paths), None, dtype=object)
        resolved[need] = image_paths(data_dir, checked[need], split=None).to_numpy()
        # where, unlike setting values, turns a column of NaN floats into strings
        paths = paths.where(~need, resolved)
    return paths


def with_metadata(X: pd.DataFrame, checked: pd.DataFrame, data_dir) -> pd.DataFrame:
    """A copy of ``X`` whose missing image paths and series descriptions ``data_dir``
    completes (descriptions from ``{train,test}_series_descriptions.csv``, when there)."""
    frame = X.copy()
    if data_dir is None:
        return frame
    frame["image_path"] = resolve_paths(X, checked, data_dir)
    descriptions = frame.get("series_description")
    if descriptions is None or descriptions.isna().any():
        table = description_table(data_dir, SPLITS)
        if table is not None:
            merged = describe_series(checked, table).to_numpy()
            frame["series_description"] = (
                merged if descriptions is None else descriptions.where(descriptions.notna(), merged)
            )
    return frame
