"""Checks and error formats used in several modules."""

from __future__ import annotations

import numpy as np
import pandas as pd


# -- two-column targets ----------------------------------------------------------------
def two_columns(y, name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """The condition and the severity column of a two-column target.

    Parameters
    ----------
    y : DataFrame or array-like of shape (n_samples, 2)
        Condition then severity labels.
    name : str, default="y"
        How error messages call ``y``.

    Returns
    -------
    condition, severity : ndarray of shape (n_samples,)
        A DataFrame's columns keep their dtype; object columns (lists, mixed frames) take
        the dtype of their values (ints as ints), as :mod:`sklearn.metrics` expects.

    Raises
    ------
    ValueError
        If ``y`` is None or does not have exactly two columns.
    """
    if y is None:
        raise ValueError(f"{name} is required: two columns, condition then severity")
    if isinstance(y, pd.DataFrame):
        columns = [y.iloc[:, k].to_numpy() for k in range(y.shape[1])]
        shape = y.shape
    else:
        array = y if isinstance(y, np.ndarray) else np.asarray(y, dtype=object)
        columns = list(array.T) if array.ndim == 2 else []
        shape = array.shape
    if len(shape) != 2 or shape[1] != 2:
        raise ValueError(
            f"{name} must have two columns, condition then severity (a DataFrame or an "
            f"(n_samples, 2) array); got shape {shape}"
        )
    return tuple(
        pd.Series(c, dtype=object).infer_objects().to_numpy() if c.dtype == object else c
        for c in columns
    )
