"""Study-level inference: a directory of DICOM studies in, the competition's submission out.

The two stages of every top solution of the competition, joined: a fitted
:class:`~spinecls.LevelLocalizer` finds the level points on each series of a study (no
coordinates needed), and a fitted patch-and-classify pipeline grades a crop around each
point. Points of one condition and level found on several series (two axial series,
two Sagittal T1) are averaged; a condition-level that no series yields (a missing
series, a level outside an axial series' coverage, a point the localizer places outside
its image) falls back to the class prior, with a warning that names the study.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ._competition import (
    check_prior,
    parse_row_ids,
    prior_rows,
    severity_probabilities,
    submission_row_ids,
)
from ._validation import listing
from .labels import TARGETS

__all__ = ["PriorFallbackWarning", "predict_studies", "submission_row_ids"]

SAMPLE_SUBMISSION = "sample_submission.csv"


class PriorFallbackWarning(UserWarning):
    """Some condition-levels of a study were given the class prior, not a prediction."""


def _wanted_rows(root: Path, split: str) -> pd.Series:
    """The row ids to fill: ``sample_submission.csv``'s when present, else every study's."""
    from .datasets import read_series_descriptions

    sample = root / SAMPLE_SUBMISSION
    if sample.is_file():
        try:
            rows = pd.read_csv(sample, usecols=["row_id"], dtype={"row_id": str})["row_id"]
        except ValueError as exc:
            raise ValueError(f"{sample}: expected a row_id column ({exc})") from None
        lines = rows.set_axis(np.arange(len(rows)) + 2)  # file line numbers, header first
        parse_row_ids(lines.fillna(""), where=f"{sample}: row_id", unit="line")
        return rows.reset_index(drop=True)
    descriptions = read_series_descriptions(root / f"{split}_series_descriptions.csv")
    return submission_row_ids(pd.unique(descriptions["study_id"]))


def _load_model(model, root: Path, device: str | None):
    if isinstance(model, (str, os.PathLike)):
        from .persistence import load_pipeline

        return load_pipeline(model, data_dir=root, device=device)
    if not (hasattr(model, "predict_proba") and hasattr(model, "classes_")):
        raise TypeError(
            "model must be a fitted patch-and-classify pipeline (with predict_proba and "
            f"classes_) or the path of a model file; got {type(model).__name__}"
        )
    return model


def _load_localizer(localizer, model, device: str | None):
    if localizer is None:
        if not isinstance(model, (str, os.PathLike)):
            raise ValueError(
                "predict_studies needs a localizer: pass a fitted LevelLocalizer, or a model "
                "file written by `spinecls train --localizer` that carries one"
            )
        localizer = model
    if isinstance(localizer, (str, os.PathLike)):
        from .persistence import load_localizer

        return load_localizer(localizer, device=device)
    if not hasattr(localizer, "predict"):
        raise TypeError(
            f"localizer must be a fitted LevelLocalizer; got {type(localizer).__name__}"
        )
    return localizer


def _model_weight(model_weight, points: pd.DataFrame) -> np.ndarray:
    """Each point's weight of the model against the prior, as a column."""
    if isinstance(model_weight, str) and model_weight == "confidence":
        if "confidence" not in points.columns:
            raise ValueError("model_weight='confidence' needs the localizer's confidence column")
        weight = points["confidence"].to_numpy(dtype=float)
    elif isinstance(model_weight, (int, float)) and not isinstance(model_weight, bool):
        weight = np.full(len(points), float(model_weight))
    else:
        raise ValueError(f"model_weight must be 'confidence' or a number; got {model_weight!r}")
    if not (np.isfinite(weight).all() and ((weight >= 0) & (weight <= 1)).all()):
        raise ValueError("model_weight (or the points' confidence) must lie in [0, 1]")
    return weight[:, None]


def predict_studies(
    data_dir: str | os.PathLike,
    model,
    localizer=None,
    split: str = "test",
    *,
    prior: dict | None = None,
    model_weight="confidence",
    device: str | None = None,
    studies=None,
    return_points: bool = False,
):
    """Grade every study of a competition directory from its images alone.

    Parameters
    ----------
    data_dir : str or path-like
        A directory in the competition layout: ``{split}_series_descriptions.csv`` and
        ``{split}_images/{study_id}/{series_id}/*.dcm``; a ``sample_submission.csv`` there
        fixes the rows and their order. No coordinates or labels are read.
    model : Pipeline or str or path-like
        A fitted pipeline of :class:`~spinecls.LumbarPatchTransformer` and a dual-head
        estimator, or a model file written by :func:`spinecls.persistence.save_pipeline`
        (``spinecls train``).
    localizer : LevelLocalizer or str or path-like, optional
        A fitted :class:`~spinecls.LevelLocalizer`, or a file holding one. Default: the
        localizer carried by the model file ``model`` (``spinecls train --localizer``).
    split : {"test", "train"}, default="test"
        Which descriptions file and image folder.
    prior : dict, optional
        ``{condition: (normal_mild, moderate, severe)}`` for the condition-levels no
        series yields, one entry per condition, checked as
        :func:`spinecls.metrics.to_submission` checks its own; default
        :data:`spinecls.labels.SEVERITY_PRIORS`.
    model_weight : "confidence" or float in [0, 1], default="confidence"
        How far each point's grade is trusted: its probabilities become ``w *
        model + (1 - w) * prior``, with ``w`` the localizer's ``confidence`` for that
        point, or the number given (1: the model alone). A point placed on the wrong
        level gets a confident grade of another level, which the competition's log loss
        punishes hard; shrinking towards the prior caps that. Measured on the default
        demo's 5 held-out studies (docs/end_to_end.md): 1.75 with the model alone,
        0.49 with ``"confidence"``, 1.26 with the prior alone.
    device : str, optional
        Torch device for models read from files (e.g. ``"cuda"``).
    studies : sequence of int, optional
        Grade only these studies (e.g. the held-out ones of a directory in the training
        layout); default every study.
    return_points : bool, default=False
        Also return the localizer's points that were graded.

    Returns
    -------
    submission : pandas.DataFrame
        ``row_id, normal_mild, moderate, severe``: 25 rows per study, rows summing to 1,
        in ``sample_submission.csv``'s order when the directory has one, else per study
        in the descriptions file's order, conditions and levels in ``train.csv``'s
        column order.
    points : pandas.DataFrame
        Only with ``return_points``: :meth:`LevelLocalizer.predict`'s frame.

    Warns
    -----
    PriorFallbackWarning
        Once, naming each study that has condition-levels filled with the prior and how
        many.

    Raises
    ------
    FileNotFoundError, ValueError
        For a directory not in the competition layout or a bad model file, naming the
        file.

    Examples
    --------
    >>> from spinecls.inference import submission_row_ids
    >>> submission_row_ids([7]).iloc[[0, 24]].tolist()
    ['7_spinal_canal_stenosis_l1_l2', '7_right_subarticular_stenosis_l5_s1']
    """
    from .datasets import load_series
    from .metrics import to_submission

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    prior = check_prior(prior)
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory not found: {root}")
    wanted = _wanted_rows(root, split)
    pipeline = _load_model(model, root, device)
    locator = _load_localizer(localizer, model, device)

    series = load_series(root, split=split)
    if studies is not None:
        chosen = {int(s) for s in studies}
        wanted_studies = parse_row_ids(wanted)["study_id"]
        unknown = sorted(chosen - set(wanted_studies))
        if unknown:
            raise ValueError(f"studies {listing(unknown)} are not in {root}'s {split} split")
        wanted = wanted[wanted_studies.isin(chosen).to_numpy()]
        wanted = wanted.reset_index(drop=True)
        series = series[series["study_id"].isin(chosen)].reset_index(drop=True)
    points = locator.predict(series) if len(series) else pd.DataFrame()
    graded = points
    if len(points) and "qc_outside_image" in points.columns:
        graded = points.loc[~points["qc_outside_image"].to_numpy(bool)]
    if len(graded):
        graded = graded.reset_index(drop=True)
        proba = pipeline.predict_proba(graded)[1]
        proba = severity_probabilities(proba, pipeline.classes_[1], graded)  # TARGETS order
        weight = _model_weight(model_weight, graded)
        proba = weight * proba + (1 - weight) * prior_rows(prior, graded["condition"])
        table = to_submission(graded, proba, complete=False).set_index("row_id")
    else:
        table = pd.DataFrame(columns=TARGETS, index=pd.Index([], name="row_id"), dtype=float)

    table = table.reindex(wanted.to_numpy())
    missing = table[TARGETS[0]].isna().to_numpy()
    if missing.any():
        parts = parse_row_ids(wanted[missing])
        table.loc[missing, TARGETS] = prior_rows(prior, parts["condition"])
        counts = parts["study_id"].value_counts(sort=False)
        warnings.warn(
            f"predict_studies: {int(missing.sum())} of {len(wanted)} rows were filled with the "
            f"class prior (no series or located level): study (rows) "
            f"{listing([f'{s} ({n})' for s, n in counts.items()])}",
            PriorFallbackWarning,
            stacklevel=2,
        )
    submission = table.rename_axis("row_id").reset_index()[["row_id", *TARGETS]]
    values = submission[TARGETS].to_numpy(float)
    submission[TARGETS] = values / values.sum(axis=1, keepdims=True)
    return (submission, points) if return_points else submission
