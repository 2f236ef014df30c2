"""Checks and error formats used in several modules.

Every message that names bad entries lists the first few and counts the rest, in one
format: ``"a, b, c and 7 more"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd

from ..labels import HEADS

MAX_LISTED = 10
"""How many bad entries a message names before counting the rest."""

_INT64 = np.iinfo(np.int64)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    """Raise ValueError naming the ``columns`` that ``frame`` (called ``name``) lacks.

    Parameters
    ----------
    frame : DataFrame
    columns : iterable of str
        The columns the caller reads.
    name : str
        What the message calls the frame (``"X"``, ``"truth"``...).
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has {list(frame.columns)}")


def listing(items: Iterable, limit: int = MAX_LISTED, sep: str = ", ") -> str:
    """The first ``limit`` items joined by ``sep``, then how many were left out.

    Parameters
    ----------
    items : iterable
        Anything; each item is shown with ``str``.
    limit : int, default=MAX_LISTED
        How many items to show.
    sep : str, default=", "
        Between two shown items.

    Returns
    -------
    str

    Examples
    --------
    >>> listing(range(12), limit=3)
    '0, 1, 2 and 9 more'
    >>> listing(["a", "b"])
    'a, b'
    """
    items = list(items)
    shown = sep.join(str(item) for item in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def located(bad: np.ndarray, labels, unit: str = "row") -> str:
    """Where ``bad`` is true, as ``"row(s) 3, 7 and 2 more"``.

    Parameters
    ----------
    bad : ndarray of bool
        One flag per entry.
    labels : array-like
        The name of each entry in messages: a frame's index, or CSV line numbers.
    unit : str, default="row"
        What an entry is called.
    """
    return f"{unit}(s) {listing(np.asarray(labels)[np.asarray(bad, dtype=bool)].tolist())}"


def whole_numbers(values: pd.Series, name: str, labels=None, unit: str = "row") -> pd.Series:
    """``values`` as int64, or a ValueError naming the entries that are not whole numbers
    or do not fit in int64.

    Text is converted exactly: ``"9223372036854775808"`` (one past the int64 maximum)
    is rejected, never wrapped to a negative number nor rounded through a float.

    Parameters
    ----------
    values : pandas.Series
        Numbers, or strings of numbers.
    name : str
        How the message names the column, e.g. ``"X column 'study_id'"``.
    labels : array-like, default=None
        Entry names for the message (see :func:`located`); default ``values.index``.
    unit : str, default="row"
        What an entry is called.

    Returns
    -------
    pandas.Series of int64, with ``values``' index.

    Raises
    ------
    ValueError
        ``"{name} must hold whole numbers; got [...] at row(s) ..."``, or
        ``"{name} must hold whole numbers from -2**63 to 2**63 - 1; got [...] at ..."``.

    Examples
    --------
    >>> import pandas as pd
    >>> whole_numbers(pd.Series(["12", " 7", "3.0", "9223372036854775807"]), "ids").tolist()
    [12, 7, 3, 9223372036854775807]
    """
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.dtype.kind == "i":  # every value read as a signed 64-bit integer: exact
        _raise_if_any(
            values, numbers.isna().to_numpy(), f"{name} must hold whole numbers", labels, unit
        )
        return numbers.astype(np.int64)
    # A float no longer holds every whole number beyond 2**53, and uint64 or Python
    # ints may exceed int64: read each value again, exactly.
    exact = pd.Series(
        [_exact_whole(v, n) for v, n in zip(values.tolist(), numbers.tolist())],
        index=values.index,
        dtype=object,
    )
    _raise_if_any(values, exact.isna().to_numpy(), f"{name} must hold whole numbers", labels, unit)
    wide = np.array([not _INT64.min <= v <= _INT64.max for v in exact], dtype=bool)
    _raise_if_any(
        values, wide, f"{name} must hold whole numbers from -2**63 to 2**63 - 1", labels, unit
    )
    return exact.astype(np.int64)


def _exact_whole(value, number) -> int | None:
    """``value`` as an exact int, or None when it is not a whole number.

    ``number`` is pandas' reading of it (NaN when it is not a number at all).
    """
    if pd.isna(number):
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    try:
        exact = Decimal(value.strip()) if isinstance(value, str) else Decimal(float(number))
    except (InvalidOperation, ValueError):
        return None
    if not exact.is_finite() or exact != exact.to_integral_value():
        return None
    return int(exact)


def finite_numbers(values: pd.Series, name: str, labels=None, unit: str = "row") -> pd.Series:
    """``values`` as float64, or a ValueError naming the entries that are not finite.

    Parameters are those of :func:`whole_numbers`.

    Returns
    -------
    pandas.Series of float64, with ``values``' index.

    Raises
    ------
    ValueError
        ``"{name} must hold finite numbers; got [...] at row(s) ..."``.
    """
    numbers = pd.to_numeric(values, errors="coerce")
    bad = ~np.isfinite(numbers.to_numpy(dtype=np.float64))
    _raise_if_any(values, bad, f"{name} must hold finite numbers", labels, unit)
    return numbers.astype(np.float64)


def _raise_if_any(values: pd.Series, bad: np.ndarray, what: str, labels, unit: str) -> None:
    if bad.any():
        examples = values[bad].head(MAX_LISTED).tolist()
        where = located(bad, values.index if labels is None else labels, unit)
        raise ValueError(f"{what}; got {examples} at {where}")


# -- two-column targets ----------------------------------------------------------------
def two_columns(y, name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """The condition and the severity column of a two-column target.

    Parameters
    ----------
    y : DataFrame or array-like of shape (n_samples, 2)
        A DataFrame's columns are read by name: ``condition`` and ``severity``, in
        either order, and no other (``frame[["condition", "severity"]]``). An array's
        are read by position: condition, then severity.
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
        If ``y`` is None, does not have exactly two columns, or is a DataFrame whose
        columns are not ``condition`` and ``severity``.
    """
    if y is None:
        raise ValueError(f"{name} is required: two columns, condition then severity")
    if isinstance(y, pd.DataFrame):
        if sorted(map(str, y.columns)) != sorted(HEADS) or y.shape[1] != 2:
            raise ValueError(
                f"{name} is a DataFrame with columns {list(y.columns)}: its columns are read "
                f"by name and must be {list(HEADS)} (frame[{list(HEADS)}]), in "
                "either order; or pass an (n_samples, 2) array, condition then severity"
            )
        columns = [y[c].to_numpy() for c in HEADS]
        shape = y.shape
    else:
        array = y if isinstance(y, np.ndarray) else np.asarray(y, dtype=object)
        columns = list(array.T) if array.ndim == 2 else []
        shape = array.shape
    if len(shape) != 2 or shape[1] != 2:
        one_head = (
            "; a dual-head estimator takes both heads' labels: to calibrate one head, use "
            "spinecls.calibration.calibrate_heads or CalibratedClassifierCV on a "
            "spinecls.calibration.HeadView; to score one, spinecls.metrics.head_scorer"
            if len(shape) == 1
            else ""
        )
        raise ValueError(
            f"{name} must have two columns, condition then severity (a DataFrame or an "
            f"(n_samples, 2) array); got shape {shape}{one_head}"
        )
    return tuple(
        pd.Series(c, dtype=object).infer_objects().to_numpy() if c.dtype == object else c
        for c in columns
    )


def check_sample_weight(sample_weight, n_samples: int) -> np.ndarray | None:
    """``sample_weight`` as float64, one finite, non-negative weight per sample; None stays None.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
    n_samples : int

    Raises
    ------
    ValueError
        Naming the shape expected and received, the samples whose weight is not a
        finite, non-negative number, or weights that sum to 0.
    """
    if sample_weight is None:
        return None
    try:
        weight = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sample_weight must hold numbers ({exc})") from None
    if weight.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must hold one weight per sample, shape ({n_samples},); got shape "
            f"{weight.shape}"
        )
    bad = ~np.isfinite(weight) | (weight < 0)
    if bad.any():
        raise ValueError(
            "sample_weight must hold finite, non-negative numbers; got "
            f"{weight[bad][:MAX_LISTED].tolist()} at {located(bad, np.arange(n_samples), 'sample')}"
        )
    if weight.sum() == 0:
        raise ValueError("sample_weight sums to 0: no sample would count")
    return weight


def check_images(X, fitted_shape: tuple | None) -> np.ndarray:
    """X as 4-D float images (a classifier's input), of the fitted shape when there is one."""
    array = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if array.ndim != 4:
        raise ValueError(
            "X must be a 4-D array (n_samples, channels, height, width) as "
            f"LumbarPatchTransformer returns; got shape {array.shape}"
        )
    if array.dtype.kind != "f":
        raise ValueError(
            f"X must hold floating point values (float32 patches); got dtype {array.dtype}"
        )
    if min(array.shape[2:]) < 8:
        raise ValueError(f"images must be at least 8 x 8 pixels; got {array.shape[2:]}")
    if fitted_shape is not None and tuple(array.shape[1:]) != tuple(fitted_shape):
        raise ValueError(
            f"X has images of shape (channels, height, width) = {tuple(array.shape[1:])}, "
            f"but this classifier was fitted on {tuple(fitted_shape)}"
        )
    return array
