"""The tables :class:`spinecls.LevelLocalizer` reads and writes.

``X``, one row per series, and ``y``, the labelled points, are checked here (one-line
errors naming the column and the values, warnings for rows ignored); ``predict``'s
rows are assembled here into the coordinate layout of :func:`spinecls.load_rsna`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils.validation import finite_numbers, listing, require_columns, whole_numbers
from ..datasets.rsna import COORDINATE_COLUMNS as POINT_COLUMNS
from ..labels import CONDITION_SERIES, CONDITIONS, LEVELS, SERIES_DESCRIPTIONS

__all__ = [
    "OUTPUT_COLUMNS",
    "POINT_COLUMNS",
    "SCORE_RADIUS",
    "check_in_image",
    "check_points",
    "check_series",
    "localization_errors",
    "points_frame",
    "share_found",
]

SERIES_COLUMNS = ("study_id", "series_id", "series_description", "series_dir")
KEYS = ["study_id", "series_id", "condition", "level"]
SCORE_RADIUS = 5.0
"""How near (original pixels, in the image plane) a located point must lie to its label
for :meth:`spinecls.LevelLocalizer.score` to count it found, as the benchmarks count."""
OUTPUT_COLUMNS = (
    *POINT_COLUMNS,
    "confidence",
    "series_description",
    "image_path",
    "qc_outside_coverage",
    "qc_outside_image",
    "qc_order",
    "level_confidence",
    "qc_level_shift",
    "qc_skipped_slices",
)


def _check_columns(frame, columns, name: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    require_columns(frame, columns, name)
    frame = frame.reset_index(drop=True)
    for column in ("study_id", "series_id", "instance_number"):
        if column in columns:
            frame[column] = whole_numbers(frame[column], f"{name}[{column!r}]")
    return frame


def check_series(X) -> pd.DataFrame:
    """``X`` with whole-number ids, after checking its series exist and are known types."""
    X = _check_columns(X, SERIES_COLUMNS, "X")
    unknown = sorted(set(X["series_description"].astype(str)) - set(SERIES_DESCRIPTIONS))
    if unknown:
        raise ValueError(
            f"X['series_description'] has unknown value(s) {listing(unknown)}; expected "
            f"one of {list(SERIES_DESCRIPTIONS)}"
        )
    duplicated = X.duplicated(["study_id", "series_id"])
    if duplicated.any():
        twice = listing(X.loc[duplicated, "series_id"])
        raise ValueError(f"X lists series more than once: {twice}")
    empty = [
        f"{r.study_id}/{r.series_id} ({r.series_dir})"
        for r in X.itertuples()
        if not (Path(r.series_dir).is_dir() and any(Path(r.series_dir).glob("*.dcm")))
    ]
    if empty:
        raise ValueError(f"X: series without .dcm files in series_dir: {listing(empty)}")
    return X


def check_points(X: pd.DataFrame, y) -> dict:
    """The labelled points of each series in X, on the series type each is read on:
    ``{(study_id, series_id): points}``."""
    if X.empty:
        raise ValueError("X has no rows: fit needs the series (one row each) that y labels")
    y = _check_columns(y, POINT_COLUMNS, "y")
    for column, vocabulary in (("condition", CONDITIONS), ("level", LEVELS)):
        bad = ~y[column].isin(vocabulary)
        if bad.any():
            raise ValueError(
                f"y[{column!r}] has unknown value(s) {listing(sorted(set(y.loc[bad, column])))}"
                f"; expected one of {list(vocabulary)}"
            )
    for column in ("x", "y"):
        y[column] = finite_numbers(y[column], f"y[{column!r}]")
    # X says what each series is: a series_description column of y is not used
    merged = y.drop(columns="series_description", errors="ignore").merge(
        X[["study_id", "series_id", "series_description"]], on=["study_id", "series_id"], how="left"
    )
    unknown = merged["series_description"].isna()
    wrong = ~unknown & (merged["condition"].map(CONDITION_SERIES) != merged["series_description"])
    for mask, why in ((unknown, "on series absent from X"), (wrong, "on another series type")):
        if mask.any():
            warnings.warn(
                f"LevelLocalizer.fit: ignored {int(mask.sum())} row(s) of y {why} "
                f"(rows {listing(np.flatnonzero(mask))})",
                UserWarning,
                stacklevel=3,
            )
    merged = merged.loc[~(unknown | wrong)]
    if merged.empty:
        raise ValueError(
            "y has no coordinates on the series of X that their conditions are read on "
            f"({', '.join(f'{c}: {s}' for c, s in CONDITION_SERIES.items())}): nothing to "
            "train on"
        )
    return {key: group for key, group in merged.groupby(["study_id", "series_id"])}


def check_in_image(points: pd.DataFrame, shapes: dict, row: dict) -> None:
    """Raise a ValueError naming the labelled points of one series (rows of ``y``) that lie
    outside their slice's image; ``shapes`` maps an instance number to ``(rows, columns)``."""
    size = np.array([shapes[int(n)] for n in points["instance_number"]]).reshape(-1, 2)
    x, y = points["x"].to_numpy(float), points["y"].to_numpy(float)
    outside = ~((x >= 0) & (x < size[:, 1]) & (y >= 0) & (y < size[:, 0]))
    if outside.any():
        described = listing(
            f"row {index} (x={xv:g}, y={yv:g} on instance {int(n)}, {c} x {r} pixels)"
            for index, xv, yv, n, (r, c) in zip(
                points.index[outside],
                x[outside],
                y[outside],
                points["instance_number"].to_numpy()[outside],
                size[outside],
            )
        )
        raise ValueError(
            f"y: {int(outside.sum())} point(s) of series {row['series_id']} of study "
            f"{row['study_id']} lie outside their image (0 <= x < columns, 0 <= y < rows "
            f"fails): {described}"
        )


def points_frame(rows: list[dict], X: pd.DataFrame) -> pd.DataFrame:
    """``predict``'s frame from its row dicts: ordered by series (as in X), condition and
    level, with the dtypes of the documented layout."""
    frame = pd.DataFrame(rows, columns=[*OUTPUT_COLUMNS, "_slice"]).drop(columns="_slice")
    frame = frame.drop(columns="series_description").merge(
        X[["study_id", "series_id", "series_description"]], how="left"
    )
    order = {key: k for k, key in enumerate(zip(X["study_id"], X["series_id"]))}
    frame["_key"] = [order[k] for k in zip(frame["study_id"], frame["series_id"])]
    frame["_condition"] = frame["condition"].map(CONDITIONS.index)
    frame["_level"] = frame["level"].map(LEVELS.index)
    frame = frame.sort_values(["_key", "_condition", "_level"], kind="stable")
    frame = frame[list(OUTPUT_COLUMNS)].reset_index(drop=True)
    return frame.astype(
        {
            "study_id": np.int64,
            "series_id": np.int64,
            "instance_number": np.int64,
            "x": np.float64,
            "y": np.float64,
            "confidence": np.float64,
            "qc_outside_coverage": bool,
            "qc_outside_image": bool,
            "qc_order": bool,
            "level_confidence": np.float64,
            "qc_level_shift": bool,
            "qc_skipped_slices": bool,
        }
    )


def localization_errors(truth: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """Pair true and predicted points and measure how far apart they are.

    Parameters
    ----------
    truth : pandas.DataFrame
        Labelled coordinates (``load_rsna``'s columns ``study_id, series_id,
        instance_number, condition, level, x, y``).
    predicted : pandas.DataFrame
        :meth:`spinecls.LevelLocalizer.predict`'s frame.

    Returns
    -------
    pandas.DataFrame
        One row per point found in both, on the same series: the keys,
        ``series_description`` (when ``predicted`` has it), ``distance`` (pixels, on
        the image plane, whatever the slices) and ``slice_offset`` (predicted minus
        true instance number).

    Examples
    --------
    >>> import pandas as pd
    >>> point = {"study_id": 1, "series_id": 2, "condition": "Spinal Canal Stenosis",
    ...          "level": "L1/L2", "instance_number": 8}
    >>> truth = pd.DataFrame([{**point, "x": 10.0, "y": 20.0}])
    >>> found = pd.DataFrame([{**point, "instance_number": 9, "x": 13.0, "y": 24.0}])
    >>> localization_errors(truth, found)[["distance", "slice_offset"]].to_numpy().tolist()
    [[5.0, 1.0]]
    """
    columns = [*KEYS, "instance_number", "x", "y"]
    for name, frame in (("truth", truth), ("predicted", predicted)):
        require_columns(frame, columns, name)
    extra = ["series_description"] if "series_description" in predicted.columns else []
    merged = truth[columns].merge(
        predicted[[*columns, *extra]], on=KEYS, suffixes=("", "_pred"), validate="many_to_one"
    )
    merged["distance"] = np.hypot(merged["x"] - merged["x_pred"], merged["y"] - merged["y_pred"])
    merged["slice_offset"] = merged["instance_number_pred"] - merged["instance_number"]
    return merged[[*KEYS, *extra, "distance", "slice_offset"]]


def share_found(
    truth: pd.DataFrame, predicted: pd.DataFrame, radius: float = SCORE_RADIUS
) -> float:
    """The share of labelled points that ``predicted`` places within ``radius`` of them.

    A labelled point counts as found when the predicted point of its study, series,
    condition and level lies on its instance or a neighbouring one (instance numbers at
    most 1 apart) and within ``radius`` original pixels of it in the image plane; a point
    not predicted, or predicted on another series, counts as missed.

    Parameters
    ----------
    truth : pandas.DataFrame
        Labelled coordinates (``study_id, series_id, instance_number, condition, level,
        x, y``), at least one.
    predicted : pandas.DataFrame
        :meth:`spinecls.LevelLocalizer.predict`'s frame.
    radius : float, default=SCORE_RADIUS

    Returns
    -------
    float in [0, 1]
    """
    if not len(truth):
        raise ValueError("there are no labelled points to score")
    errors = localization_errors(truth, predicted)
    found = (errors["distance"] <= radius) & (errors["slice_offset"].abs() <= 1)
    return float(found.sum() / len(truth))
