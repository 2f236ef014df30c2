"""The RSNA 2024 competition's own format: row ids, solutions, submissions and the score.

Public through :mod:`spinecls.metrics` (``from spinecls.metrics import rsna_score``).
Every frame is checked before it is used, the solution as strictly as the submission:
row ids of the form ``{study_id}_{condition}_{level}``, each once; one-hot labels;
finite, non-negative weights; finite, non-negative probabilities. A message names the
offending rows (:func:`spinecls._validation.listing`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._validation import listing, located, whole_numbers
from .labels import (
    CONDITIONS,
    LEVELS,
    ROW_ID_GROUP,
    SCORE_EPSILON,
    SCORE_GROUPS,
    SEVERITIES,
    SEVERITY_PRIORS,
    SEVERITY_WEIGHTS,
    TARGETS,
    slug,
)

__all__ = ["row_ids", "rsna_score", "solution_from_frame", "to_submission"]

_ROW_COLUMNS = ("study_id", "condition", "level")
_ROW_ID = re.compile(
    rf"\d+_({'|'.join(slug(c) for c in CONDITIONS)})_({'|'.join(slug(lv) for lv in LEVELS)})"
)


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
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing}; it has {list(frame.columns)}")
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


def _probabilities(severity_proba, classes, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities in :data:`TARGETS` order, each row divided by its sum."""
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


def _check_prior(prior) -> dict[str, np.ndarray]:
    """``prior`` checked and normalised: one row of three probabilities per condition."""
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
    proba = _probabilities(severity_proba, classes, frame)
    if complete:
        prior = _check_prior(prior)
    table = pd.DataFrame(proba, columns=TARGETS).assign(row_id=ids).groupby("row_id").mean()
    if complete:
        studies = pd.unique(_study_ids(frame))
        wanted = [
            (f"{s}_{slug(c)}_{slug(lv)}", c) for s in studies for c in CONDITIONS for lv in LEVELS
        ]
        missing = [(rid, c) for rid, c in wanted if rid not in table.index]
        if missing:
            filler = pd.DataFrame(
                [prior[c] for _, c in missing],
                columns=TARGETS,
                index=pd.Index([rid for rid, _ in missing], name="row_id"),
            )
            table = pd.concat([table, filler])
    table = table.reset_index()
    table["_study"] = table["row_id"].str.split("_").str[0].astype(np.int64)
    table = table.sort_values(["_study", "row_id"]).drop(columns="_study")
    return table[["row_id", *TARGETS]].reset_index(drop=True)


# -- the score -------------------------------------------------------------------------
def _checked(frame, name: str, columns: list[str]) -> pd.DataFrame:
    """``columns`` of ``frame`` with checked row ids, the others as float64 (NaN: no number)."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame with columns {columns}; got {type(frame)}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}")
    ids = frame["row_id"].reset_index(drop=True)
    bad = ~ids.map(lambda v: isinstance(v, str) and _ROW_ID.fullmatch(v) is not None).to_numpy()
    if bad.any():
        raise ValueError(
            f"{name} has row_id(s) not of the form {{study_id}}_{{condition}}_{{level}} "
            f"(e.g. 44036939_spinal_canal_stenosis_l1_l2): {listing(ids[bad].tolist())}"
        )
    duplicated = ids.duplicated(keep=False).to_numpy()
    if duplicated.any():
        raise ValueError(
            f"{name} has duplicated row_id(s), each (study, condition, level) must appear "
            f"once: {listing(sorted(set(ids[duplicated])))}"
        )
    numbers = {
        c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64) for c in columns[1:]
    }
    return pd.DataFrame({"row_id": ids, **numbers})


def _check_solution(solution) -> pd.DataFrame:
    solution = _checked(solution, "solution", ["row_id", *TARGETS, "sample_weight"])
    if solution.empty:
        raise ValueError("the solution has no rows")
    labels = solution[TARGETS].to_numpy()
    bad = ~(np.isin(labels, (0, 1)).all(axis=1) & (labels.sum(axis=1) == 1))
    if bad.any():
        raise ValueError(
            f"solution labels ({', '.join(TARGETS)}) must be one-hot, one 1 and two 0s per "
            f"row; see row_id(s) {listing(solution.loc[bad, 'row_id'].tolist())}"
        )
    weight = solution["sample_weight"].to_numpy()
    bad = ~np.isfinite(weight) | (weight < 0)
    if bad.any():
        raise ValueError(
            "solution sample_weight must be finite and non-negative numbers; see row_id(s) "
            f"{listing(solution.loc[bad, 'row_id'].tolist())}"
        )
    return solution


def _group(row_id: pd.Series) -> pd.Series:
    return row_id.str.extract(ROW_ID_GROUP, expand=False)


def _weighted_log_loss(y_true: np.ndarray, proba: np.ndarray, weight: np.ndarray) -> float:
    # sklearn.metrics.log_loss on rows that sum to one; computed here so that the
    # clipping is exactly the competition's [1e-15, 1 - 1e-15].
    losses = -(y_true * np.log(proba)).sum(axis=1)
    return float(np.average(losses, weights=weight))


def rsna_score(solution: pd.DataFrame, submission: pd.DataFrame) -> float:
    """The RSNA 2024 Lumbar Spine Degenerative Classification metric (lower is better).

    Per row, probabilities are divided by their sum, then clipped to
    ``[1e-15, 1 - 1e-15]``. Rows are grouped into spinal (5 levels), foraminal (left
    and right pooled) and subarticular (pooled); each group scores a log loss over the
    three severities weighted by ``sample_weight`` (1 / 2 / 4). A fourth, binary term
    per study, any_severe_spinal, takes as label whether any spinal level is severe,
    as prediction the largest normalised severe probability of its spinal rows and
    as weight the largest spinal sample weight. The score is the mean of the four.

    Parameters
    ----------
    solution : pandas.DataFrame
        ``row_id, normal_mild, moderate, severe`` (one-hot: one 1 and two 0s per row)
        and ``sample_weight`` (finite, non-negative; each group's weights must not all
        be zero). Each ``row_id`` (``{study_id}_{condition}_{level}``, as
        :func:`row_ids` writes it) appears once.
    submission : pandas.DataFrame
        ``row_id, normal_mild, moderate, severe`` probabilities, each ``row_id`` once.
        Rows are matched by ``row_id`` in any order; rows absent from the solution are
        ignored.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Missing columns; row ids that are malformed or duplicated in either frame;
        solution labels that are not one-hot; sample weights that are NaN, negative or
        all zero in a group; submission rows missing for solution rows; probabilities
        that are not finite and non-negative, or sum to zero. Messages name the row ids.

    Examples
    --------
    >>> import pandas as pd
    >>> ids = ["1_spinal_canal_stenosis_l1_l2", "1_left_neural_foraminal_narrowing_l1_l2",
    ...        "1_right_subarticular_stenosis_l1_l2"]
    >>> solution = pd.DataFrame({"row_id": ids, "normal_mild": 1, "moderate": 0, "severe": 0,
    ...                          "sample_weight": 1.0})
    >>> uniform = solution[["row_id"]].assign(normal_mild=1, moderate=1, severe=1)
    >>> round(rsna_score(solution, uniform), 4)  # (3 log 3 + log 3/2) / 4
    0.9253
    """
    solution = _check_solution(solution)
    submission = _checked(submission, "submission", ["row_id", *TARGETS])
    merged = solution.merge(
        submission, on="row_id", how="left", suffixes=("", "_pred"), indicator=True
    )
    absent = (merged.pop("_merge") == "left_only").to_numpy()
    if absent.any():
        ids = merged.loc[absent, "row_id"].tolist()
        raise ValueError(f"submission lacks {len(ids)} row(s) of the solution: {listing(ids)}")
    predicted = merged[[f"{t}_pred" for t in TARGETS]].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(predicted).all(axis=1) | (predicted < 0).any(axis=1)
    if bad.any():
        raise ValueError(
            "submission probabilities must be finite, non-negative numbers; see row_id(s) "
            f"{listing(merged.loc[bad, 'row_id'].tolist())}"
        )
    totals = predicted.sum(axis=1, keepdims=True)
    bad = totals[:, 0] == 0
    if bad.any():
        raise ValueError(
            "submission rows whose probabilities sum to zero cannot be normalised: "
            f"{listing(merged.loc[bad, 'row_id'].tolist())}"
        )
    predicted = np.clip(predicted / totals, SCORE_EPSILON, 1 - SCORE_EPSILON)
    truth = merged[TARGETS].to_numpy(dtype=np.float64)
    weight = merged["sample_weight"].to_numpy(dtype=np.float64)
    group = _group(merged["row_id"])
    losses = []
    for name in SCORE_GROUPS:
        rows = (group == name).to_numpy()
        if not rows.any():
            raise ValueError(f"the solution has no {name} rows; the score needs all three groups")
        if weight[rows].sum() == 0:
            raise ValueError(
                f"every {name} row of the solution has sample_weight 0: its log loss is undefined"
            )
        losses.append(_weighted_log_loss(truth[rows], predicted[rows], weight[rows]))

    spinal = (group == "spinal").to_numpy()
    study = merged.loc[spinal, "row_id"].str.split("_").str[0].to_numpy()
    per_study = pd.DataFrame(
        {
            "study": study,
            "label": truth[spinal, 2],
            "severe": predicted[spinal, 2],
            "weight": weight[spinal],
        }
    ).groupby("study")
    label = per_study["label"].max().to_numpy()
    severe = per_study["severe"].max().to_numpy()
    binary_truth = np.column_stack([1 - label, label])
    binary_pred = np.column_stack([1 - severe, severe])
    losses.append(
        _weighted_log_loss(binary_truth, binary_pred, per_study["weight"].max().to_numpy())
    )
    return float(np.mean(losses))
