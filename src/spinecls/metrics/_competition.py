"""The RSNA 2024 competition's own format: row ids, solutions and submissions.

Public through :mod:`spinecls.metrics` (``from spinecls.metrics import to_submission``),
with the score, which lives in ``spinecls.metrics._score`` and is re-exported here. Every frame
is checked before it is used: study ids, conditions, levels and severities of
spinecls's vocabulary; finite, non-negative probabilities. A message names the
offending rows (:func:`spinecls._utils.validation.listing`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .._utils.validation import listing, located, require_columns, whole_numbers
from ..labels import (
    CONDITIONS,
    LEVELS,
    ROW_ID_PATTERN,
    SEVERITIES,
    SEVERITY_PRIORS,
    SEVERITY_WEIGHTS,
    TARGETS,
    slug,
)
from ._score import rsna_score

__all__ = [
    "check_prior",
    "parse_row_ids",
    "prior_probabilities",
    "row_ids",
    "rsna_score",
    "severity_probabilities",
    "solution_from_frame",
    "submission_row_ids",
    "to_submission",
]

_ROW_COLUMNS = ("study_id", "condition", "level")


# -- rows and row ids ------------------------------------------------------------------
def _check_vocabulary(frame: pd.DataFrame, column: str, vocabulary) -> None:
    bad = ~frame[column].isin(list(vocabulary)).to_numpy()
    if bad.any():
        values = sorted(set(frame.loc[bad, column].tolist()), key=str)
        raise ValueError(
            f"unknown {column} value(s) {listing(values)} at {located(bad, frame.index)}; "
            f"expected one of {list(vocabulary)}"
        )


def _study_ids(frame: pd.DataFrame) -> pd.Series:
    """The study ids as int64, or a ValueError naming the rows that are not study ids."""
    ids = whole_numbers(frame["study_id"], "column 'study_id'")
    bad = (ids < 0).to_numpy()
    if bad.any():
        raise ValueError(
            f"column 'study_id' must hold non-negative ids; got {ids[bad].head().tolist()} "
            f"at {located(bad, frame.index)}"
        )
    return ids


def _check_rows(frame: pd.DataFrame, columns=_ROW_COLUMNS) -> pd.Series:
    """Check ``columns`` of ``frame``; return its study ids as int64."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"expected a DataFrame with columns {list(columns)}; got {type(frame)}")
    require_columns(frame, columns, "frame")
    _check_vocabulary(frame, "condition", CONDITIONS)
    _check_vocabulary(frame, "level", LEVELS)
    if "severity" in columns:
        _check_vocabulary(frame, "severity", SEVERITIES)
    return _study_ids(frame)


def row_ids(frame: pd.DataFrame) -> pd.Series:
    """Competition row ids ``{study_id}_{condition}_{level}`` in snake case.

    For example ``44036939_left_neural_foraminal_narrowing_l1_l2``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with ``study_id`` (non-negative whole numbers), ``condition`` and ``level``
        (spinecls's vocabulary: :data:`spinecls.CONDITIONS`, :data:`spinecls.LEVELS`).

    Returns
    -------
    pandas.Series of str, with ``frame``'s index.

    Raises
    ------
    ValueError
        A missing column, or a study id, condition or level that is not one; the message
        names the rows.
    """
    studies = _check_rows(frame)
    condition = frame["condition"].map({c: slug(c) for c in CONDITIONS})
    level = frame["level"].map({lv: slug(lv) for lv in LEVELS})
    return studies.astype(str) + "_" + condition + "_" + level


def submission_row_ids(study_ids: Iterable) -> pd.Series:
    """The 25 ``row_id`` of each study, in the competition's order.

    Parameters
    ----------
    study_ids : iterable of int
        In the order wanted.

    Returns
    -------
    pandas.Series
        ``{study_id}_{condition}_{level}`` in snake case: per study, the conditions in
        ``train.csv``'s column order, each with its five levels from L1/L2 down.

    Examples
    --------
    >>> submission_row_ids([7]).iloc[[0, 24]].tolist()
    ['7_spinal_canal_stenosis_l1_l2', '7_right_subarticular_stenosis_l5_s1']
    """
    return pd.Series(
        [f"{int(s)}_{slug(c)}_{slug(lv)}" for s in study_ids for c in CONDITIONS for lv in LEVELS],
        name="row_id",
        dtype=object,
    )


def parse_row_ids(ids: pd.Series, where: str = "row_id", unit: str = "row") -> pd.DataFrame:
    """The study, condition and level of each row id: the inverse of :func:`row_ids`.

    Parameters
    ----------
    ids : pandas.Series of str
        Row ids ``{study_id}_{condition}_{level}`` (:data:`spinecls.labels.ROW_ID_PATTERN`).
    where : str, default="row_id"
        How the message names ``ids``.
    unit : str, default="row"
        What the message calls an entry of ``ids`` (named by its index label).

    Returns
    -------
    pandas.DataFrame
        ``study_id`` (int64), ``condition`` and ``level`` (spinecls's names), with ``ids``'
        index.

    Raises
    ------
    ValueError
        Naming the entries that are not row ids.

    Examples
    --------
    >>> parse_row_ids(pd.Series(["7_left_subarticular_stenosis_l4_l5"])).to_dict("records")
    [{'study_id': 7, 'condition': 'Left Subarticular Stenosis', 'level': 'L4/L5'}]
    """
    parts = ids.astype("string").str.extract(rf"^{ROW_ID_PATTERN}$")
    bad = parts[0].isna().to_numpy()
    if bad.any():
        raise ValueError(
            f"{where} must read {{study_id}}_{{condition}}_{{level}} in snake case; got "
            f"{listing(ids[bad].map(repr))} at {located(bad, ids.index, unit)}"
        )
    return pd.DataFrame(
        {
            "study_id": parts[0].astype(np.int64),
            "condition": parts[1].map({slug(c): c for c in CONDITIONS}).astype(object),
            "level": parts[2].map({slug(lv): lv for lv in LEVELS}).astype(object),
        },
        index=ids.index,
    )


def solution_from_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The competition's solution frame from labelled rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with ``study_id, condition, level, severity`` (e.g. :func:`spinecls.load_rsna`);
        several rows of one (study, condition, level) must agree on the severity.

    Returns
    -------
    pandas.DataFrame
        ``row_id, normal_mild, moderate, severe`` (one-hot) and ``sample_weight``
        (1 / 2 / 4), one row per (study, condition, level), sorted by ``row_id``.

    Raises
    ------
    ValueError
        A missing column, a bad study id, an unknown condition, level or severity (a
        missing one included), naming the rows; or rows of one (study, condition, level)
        with different severities, naming the row ids.
    """
    _check_rows(frame, (*_ROW_COLUMNS, "severity"))
    rows = pd.DataFrame({"row_id": row_ids(frame), "severity": frame["severity"].to_numpy()})
    rows = rows.drop_duplicates()
    conflict = rows["row_id"].duplicated(keep=False)
    if conflict.any():
        raise ValueError(
            "rows of one (study, condition, level) disagree on the severity: "
            f"{listing(sorted(set(rows.loc[conflict, 'row_id'])))}"
        )
    solution = pd.DataFrame({"row_id": rows["row_id"].to_numpy()})
    for target in TARGETS:
        solution[target] = (rows["severity"].to_numpy() == target).astype(np.int64)
    solution["sample_weight"] = rows["severity"].map(SEVERITY_WEIGHTS).to_numpy()
    return solution.sort_values("row_id").reset_index(drop=True)


# -- submissions -----------------------------------------------------------------------
def _numbers(values, what: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be numbers ({exc})") from None


def _normalised(proba: np.ndarray, what: str, labels, unit: str = "row") -> np.ndarray:
    """Rows of finite, non-negative ``proba`` divided by their sums."""
    bad = ~np.isfinite(proba).all(axis=1)
    if bad.any():
        raise ValueError(f"{what} hold NaN or infinite values at {located(bad, labels, unit)}")
    bad = (proba < 0).any(axis=1)
    if bad.any():
        raise ValueError(f"{what} must not be negative; see {located(bad, labels, unit)}")
    totals = proba.sum(axis=1, keepdims=True)
    bad = totals[:, 0] == 0
    if bad.any():
        raise ValueError(
            f"{what} sum to zero at {located(bad, labels, unit)}: they cannot be normalised"
        )
    return proba / totals


def _severity_columns(classes) -> list[int]:
    """For each of :data:`TARGETS`, the column that holds it, given the columns' ``classes``."""
    classes = list(classes)
    names = []
    for c in classes:
        if isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_)):
            if not 0 <= c < len(SEVERITIES):
                raise ValueError(
                    f"severity codes must be 0-{len(SEVERITIES) - 1} ({TARGETS} in order); "
                    f"classes holds {c}"
                )
            names.append(SEVERITIES[c])
        else:
            names.append(c)
    if len(names) != len(TARGETS) or sorted(map(str, names)) != sorted(TARGETS):
        raise ValueError(
            f"classes must be the three severities {TARGETS} (or codes 0-2), each once; "
            f"got {classes}"
        )
    return [names.index(t) for t in TARGETS]


def severity_probabilities(severity_proba, classes, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities in :data:`TARGETS` order, each row divided by its sum.

    Parameters
    ----------
    severity_proba : array of shape (n_rows, 3) or DataFrame
        As :func:`to_submission` takes them.
    classes : sequence or None
        The severity of each column (names or codes 0-2); None: :data:`TARGETS`, or the
        DataFrame's column names.
    frame : pandas.DataFrame
        The rows they are for (their index names rows in messages).
    """
    if isinstance(severity_proba, pd.DataFrame):
        if classes is None:
            classes = list(severity_proba.columns)
        severity_proba = severity_proba.to_numpy()
    proba = _numbers(severity_proba, "severity probabilities")
    if proba.ndim != 2 or proba.shape[1] != 3:
        raise ValueError(
            f"severity probabilities must have 3 columns ({TARGETS}); got shape {proba.shape}"
        )
    if len(proba) != len(frame):
        raise ValueError(f"{len(proba)} probability rows for {len(frame)} frame rows")
    proba = _normalised(proba, "severity probabilities", frame.index)
    if classes is not None:
        proba = proba[:, _severity_columns(classes)]
    return proba


def check_prior(prior) -> dict[str, np.ndarray]:
    """``prior`` checked and normalised: one row of three probabilities per condition.

    Parameters
    ----------
    prior : dict or None
        ``{condition: (normal_mild, moderate, severe)}``, one entry per condition;
        None: :data:`spinecls.labels.SEVERITY_PRIORS`.

    Returns
    -------
    dict of str to ndarray of shape (3,)
        Each condition's probabilities, divided by their sum.

    Raises
    ------
    ValueError
        A prior that is not a dict, lacks a condition or names an unknown one, or whose
        values are not three finite, non-negative numbers of positive sum.
    """
    if prior is None:
        prior = SEVERITY_PRIORS
    if not isinstance(prior, Mapping):
        raise ValueError(
            f"prior must be a dict {{condition: (normal_mild, moderate, severe)}}; got {prior!r}"
        )
    missing = [c for c in CONDITIONS if c not in prior]
    unknown = [k for k in prior if k not in CONDITIONS]
    if missing or unknown:
        raise ValueError(
            "prior needs exactly one entry per condition"
            + (f"; missing {listing(missing)}" if missing else "")
            + (f"; unknown {listing(map(repr, unknown))}" if unknown else "")
        )
    rows = []
    for condition in CONDITIONS:
        values = _numbers(prior[condition], f"prior[{condition!r}]")
        if values.shape != (len(TARGETS),):
            raise ValueError(
                f"prior[{condition!r}] must be 3 values ({', '.join(TARGETS)}); "
                f"got {prior[condition]!r}"
            )
        rows.append(values)
    table = _normalised(np.stack(rows), "prior probabilities", list(CONDITIONS), "condition")
    return dict(zip(CONDITIONS, table))


def prior_probabilities(prior: dict[str, np.ndarray], conditions: Iterable[str]) -> np.ndarray:
    """The prior's probabilities of each condition: an ``(n, 3)`` array.

    Parameters
    ----------
    prior : dict
        As :func:`check_prior` returns it.
    conditions : iterable of str
    """
    return np.array([prior[c] for c in conditions], dtype=np.float64).reshape(-1, len(TARGETS))


def to_submission(
    frame: pd.DataFrame,
    severity_proba,
    *,
    classes=None,
    prior: dict | None = None,
    complete: bool = True,
) -> pd.DataFrame:
    """The competition's submission frame from rows and severity probabilities.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with ``study_id, condition, level`` (e.g. from :func:`spinecls.load_rsna`).
    severity_proba : array of shape (n_rows, 3) or DataFrame
        Probabilities of each row: finite and non-negative; each row is divided by its
        sum (a row of zeros is an error). Columns are ``normal_mild, moderate, severe``
        unless ``classes`` (e.g. a classifier's ``classes_[1]``) or the DataFrame's
        column names say otherwise.
    classes : sequence, optional
        The severity of each column: the three names, or the codes 0-2, each once.
    prior : dict, optional
        ``{condition: (normal_mild, moderate, severe)}`` for the condition-levels of a
        study that have no row, one entry for each of the five conditions (finite,
        non-negative, divided by their sum); default
        :data:`spinecls.labels.SEVERITY_PRIORS`, the real training labels' balance per
        condition.
    complete : bool, default=True
        Give all 25 rows of every study (filling with ``prior``); False: only the rows
        that ``frame`` has.

    Returns
    -------
    pandas.DataFrame
        ``row_id, normal_mild, moderate, severe``, sorted by study and ``row_id``; every
        row sums to one. Several rows of one (study, condition, level) are averaged.
        Write it with ``to_csv(path, index=False)``.

    Raises
    ------
    ValueError
        A missing column; a study id that is not a non-negative whole number, or an
        unknown condition or level (naming the rows); probabilities of the wrong shape,
        NaN, infinite, negative or all zero (naming the rows); ``classes`` that are not
        the three severities; a ``prior`` without exactly the five conditions, or with
        values that are not three finite, non-negative numbers of positive sum.
    """
    ids = row_ids(frame).to_numpy()
    proba = severity_probabilities(severity_proba, classes, frame)
    if complete:
        prior = check_prior(prior)
    table = pd.DataFrame(proba, columns=TARGETS).assign(row_id=ids).groupby("row_id").mean()
    if complete:
        wanted = submission_row_ids(pd.unique(_study_ids(frame)))
        missing = wanted[~wanted.isin(table.index)]
        if len(missing):
            conditions = parse_row_ids(missing)["condition"]
            filler = pd.DataFrame(
                prior_probabilities(prior, conditions),
                columns=TARGETS,
                index=pd.Index(missing.to_numpy(), name="row_id"),
            )
            table = pd.concat([table, filler])
    table = table.reset_index()
    table["_study"] = parse_row_ids(table["row_id"])["study_id"]
    table = table.sort_values(["_study", "row_id"]).drop(columns="_study")
    return table[["row_id", *TARGETS]].reset_index(drop=True)
