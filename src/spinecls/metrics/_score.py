"""The RSNA 2024 competition metric on the competition's solution and submission frames.

Public through :mod:`spinecls.metrics` (``from spinecls.metrics import rsna_score``).
Both frames are checked before they are used, the solution as strictly as the
submission: row ids of the form ``{study_id}_{condition}_{level}``, each once; one-hot
labels; finite, non-negative weights; finite, non-negative probabilities. A message
names the offending rows (:func:`spinecls._utils.validation.listing`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .._utils.validation import listing, require_columns
from ..labels import CONDITIONS, LEVELS, ROW_ID_GROUP, SCORE_EPSILON, SCORE_GROUPS, TARGETS, slug

__all__ = ["rsna_score"]

_ROW_ID = re.compile(
    rf"\d+_({'|'.join(slug(c) for c in CONDITIONS)})_({'|'.join(slug(lv) for lv in LEVELS)})"
)


def _checked(frame, name: str, columns: list[str]) -> pd.DataFrame:
    """``columns`` of ``frame`` with checked row ids, the others as float64 (NaN: no number)."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame with columns {columns}; got {type(frame)}")
    require_columns(frame, columns, name)
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
