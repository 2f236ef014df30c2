"""Study-level inference: a directory of DICOM studies in, the competition's submission out.

The two stages of every top solution of the competition, joined: a fitted
:class:`~spinecls.LevelLocalizer` finds the level points on each series of a study (no
coordinates needed), and a fitted patch-and-classify pipeline grades a crop around each
point. Points of one condition and level found on several series (two axial series,
two Sagittal T1) are averaged; a condition-level that no series yields (a missing
series, a level outside an axial series' coverage, a point the localizer places outside
its image, a series or slice that cannot be read, a condition the model was not
trained on) falls back to the class prior, with a warning that names the study.

On test day a submission with every row beats an error: a file that cannot be read
costs its slice (else its series), with one :class:`~spinecls.dicom.UnreadableFileWarning`
naming it and the cause, never the submission. ``strict=True`` fails on the first instead.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ._utils.validation import listing, whole_numbers
from .dicom import MissingCodecError, UnreadableFileWarning, UnreadableSeriesError
from .labels import CONDITION_SERIES, CONDITIONS, ROW_ID_PATTERN, TARGETS, slug
from .metrics._competition import (
    check_prior,
    parse_row_ids,
    prior_probabilities,
    severity_probabilities,
    submission_row_ids,
)

__all__ = [
    "FALLBACK_REASONS",
    "PriorFallbackWarning",
    "UnreadableFileWarning",
    "locate_studies",
    "predict_studies",
    "submission_row_ids",
]

SAMPLE_SUBMISSION = "sample_submission.csv"

FALLBACK_REASONS: dict[str, str] = {
    "no series": "the study has no (readable) series of the type the condition is read on",
    "unreadable": "the series, or the slices its points lie on, could not be read or cut "
    "into patches (an UnreadableFileWarning names them)",
    "not located": "the localizer placed no point of this condition and level inside an "
    "image (a level outside an axial series' coverage, a point outside its image)",
    "condition not trained": "the model was not trained on the condition",
}
"""Why a submission row holds the class prior: the ``reason`` of ``predict_studies``'s
sources frame (``return_sources=True``), in the order they are looked for."""

# What reading or cutting a patch raises for a bad file (the transformer's errors).
_READ_ERRORS = (OSError, ValueError, MissingCodecError)


class PriorFallbackWarning(UserWarning):
    """Some condition-levels of a study were given the class prior, not a prediction."""


def _wanted_rows(root: Path, split: str) -> pd.Series:
    """The row ids to fill: ``sample_submission.csv``'s when present, else every study's.

    Each id of the file is checked before any work: ``{study_id}_{condition}_{level}``
    with ASCII digits (no leading zero), one of the five conditions and five levels,
    each once.
    """
    from .datasets import read_series_descriptions

    sample = root / SAMPLE_SUBMISSION
    if not sample.is_file():
        descriptions = read_series_descriptions(root / f"{split}_series_descriptions.csv")
        return submission_row_ids(pd.unique(descriptions["study_id"]))
    try:
        rows = pd.read_csv(sample, usecols=["row_id"], dtype={"row_id": str})["row_id"]
    except pd.errors.EmptyDataError:
        raise ValueError(f"{sample}: the file is empty; expected a row_id column") from None
    except ValueError as exc:
        raise ValueError(f"{sample}: expected a row_id column ({exc})") from None
    if rows.empty:
        raise ValueError(f"{sample}: the file has a header line but no rows; expected at least one")
    bad = ~rows.str.fullmatch(ROW_ID_PATTERN, na=False).to_numpy()
    if bad.any():
        shown = listing(f"line {k + 2} {v!r}" for k, v in zip(np.flatnonzero(bad), rows[bad]))
        raise ValueError(
            f"{sample}: row_id must read {{study_id}}_{{condition}}_{{level}} (a study id in "
            f"ASCII digits without leading zeros, a condition of {list(map(slug, CONDITIONS))}, a "
            f"level l1_l2 to l5_s1); see {shown}"
        )
    studies = rows.str.split("_").str[0]
    whole_numbers(studies, f"{sample}: the study ids", np.arange(len(rows)) + 2, "line")
    twice = rows.duplicated(keep=False).to_numpy()
    if twice.any():
        shown = listing(f"line {k + 2} {v!r}" for k, v in zip(np.flatnonzero(twice), rows[twice]))
        raise ValueError(f"{sample}: row_id values must be unique; see {shown}")
    return rows.reset_index(drop=True)


def _chosen(studies, wanted: pd.Series, root: Path, split: str) -> pd.Series:
    """``wanted`` restricted to ``studies``, after checking they are whole numbers there."""
    if isinstance(studies, (str, bytes)) or not hasattr(studies, "__iter__"):
        raise TypeError(f"studies must be a sequence of study ids, got {studies!r}")
    chosen = set(whole_numbers(pd.Series(list(studies), dtype=object), "studies", unit="entry"))
    present = parse_row_ids(wanted)["study_id"]
    unknown = sorted(chosen - set(present))
    if unknown:
        raise ValueError(f"studies {listing(unknown)} are not in {root}'s {split} split")
    return wanted[present.isin(chosen).to_numpy()].reset_index(drop=True)


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
    if not hasattr(localizer, "predict") or hasattr(localizer, "predict_proba"):
        hint = (
            " (a model that grades patches: pass it as model)"
            if hasattr(localizer, "predict_proba")
            else ""
        )
        raise TypeError(
            f"localizer must be a fitted LevelLocalizer; got {type(localizer).__name__}{hint}"
        )
    return localizer


def _model_weight(model_weight, points: pd.DataFrame) -> np.ndarray:
    """Each point's weight of the model against the prior, as a column."""
    if isinstance(model_weight, str) and model_weight == "confidence":
        if "confidence" not in points.columns:
            raise ValueError("model_weight='confidence' needs the localizer's confidence column")
        weight = points["confidence"].to_numpy(dtype=float)
        if "level_confidence" in points.columns:
            # a point on the right disc of a chain named one disc off grades another level
            weight = weight * points["level_confidence"].to_numpy(dtype=float)
    elif isinstance(model_weight, (int, float)) and not isinstance(model_weight, bool):
        weight = np.full(len(points), float(model_weight))
    else:
        raise ValueError(f"model_weight must be 'confidence' or a number; got {model_weight!r}")
    if not (np.isfinite(weight).all() and ((weight >= 0) & (weight <= 1)).all()):
        raise ValueError(
            "model_weight (or the points' confidence times level_confidence) must lie in [0, 1]"
        )
    return weight[:, None]


def _trained_conditions(pipeline) -> set[str]:
    """The conditions of the model's condition head (codes 0-4 read as CONDITIONS)."""
    classes = pipeline.classes_[0]
    return {
        CONDITIONS[int(c)]
        if isinstance(c, (int, np.integer)) and 0 <= int(c) < len(CONDITIONS)
        else str(c)
        for c in classes
    }


def locate_studies(localizer, series: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The localizer's points, study by study, leaving out series that cannot be read.

    Parameters
    ----------
    localizer : LevelLocalizer
        Fitted.
    series : DataFrame
        One row per series, as :func:`spinecls.load_series` returns.

    Returns
    -------
    points : DataFrame
        :meth:`LevelLocalizer.predict`'s frame for every study.
    skipped : DataFrame
        The rows of ``series`` left out because no file of theirs could be read.

    Warns
    -----
    spinecls.dicom.UnreadableFileWarning
        Once per file that cannot be read (from the localizer), and once per series
        left out, naming its folder: its study is located from its other series.
    """
    frames, skipped, seen = [], [], set()
    for study, rows in series.groupby("study_id", sort=False):
        rows = rows.reset_index(drop=True)
        while len(rows):
            try:
                frames.append(_predict_once(localizer, rows, seen))
                break
            except UnreadableSeriesError as exc:
                bad = (rows["series_dir"].astype(str) == exc.series_dir).to_numpy()
                if not bad.any():
                    raise
                warnings.warn(
                    UnreadableFileWarning(
                        f"{exc}; study {study} is graded without it", exc.series_dir, exc
                    ),
                    stacklevel=2,
                )
                skipped.append(rows.loc[bad])
                rows = rows.loc[~bad].reset_index(drop=True)
    points = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    gone = pd.concat(skipped, ignore_index=True) if skipped else series.iloc[:0]
    return points, gone


def _predict_once(localizer, rows: pd.DataFrame, seen: set) -> pd.DataFrame:
    """``localizer.predict(rows)``, passing on only the warnings not ``seen`` before: a
    study located again without an unreadable series reads its other series again."""
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            return localizer.predict(rows)
    finally:
        for w in caught:
            key = (w.category, str(w.message))
            if key not in seen:
                seen.add(key)
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _severity(pipeline, rows: pd.DataFrame) -> np.ndarray:
    """The model's severity probabilities of ``rows``, in TARGETS order."""
    return severity_probabilities(pipeline.predict_proba(rows)[1], pipeline.classes_[1], rows)


def _grade(pipeline, graded: pd.DataFrame, strict: bool) -> tuple[np.ndarray, np.ndarray]:
    """Severity probabilities of every point that can be graded, and which could.

    One call for all points; when a file fails it, series by series, then point by
    point within a failing series, so that a bad file costs only what needs it.
    """
    proba = np.zeros((len(graded), len(TARGETS)))
    try:
        return _severity(pipeline, graded), np.ones(len(graded), dtype=bool)
    except _READ_ERRORS:
        if strict:
            raise
    ok = np.zeros(len(graded), dtype=bool)
    for (study, series), index in graded.groupby(
        ["study_id", "series_id"], sort=False
    ).indices.items():
        try:
            proba[index] = _severity(pipeline, graded.iloc[index])
            ok[index] = True
            continue
        except _READ_ERRORS as exc:
            first = exc
        for i in index:
            try:
                proba[i] = _severity(pipeline, graded.iloc[[i]])[0]
                ok[i] = True
            except _READ_ERRORS:
                pass
        failed = int((~ok[index]).sum())
        if not failed:
            continue
        warnings.warn(
            UnreadableFileWarning(
                f"series {series} of study {study}: {failed} of {len(index)} points could not "
                f"be graded ({type(first).__name__}: {first}); their rows get the class prior",
                os.path.dirname(str(graded["image_path"].iloc[index[0]]))
                if "image_path" in graded
                else "",
                first,
            ),
            stacklevel=3,
        )
    return proba, ok


def _sources(
    wanted: pd.Series,
    table: pd.DataFrame,
    counts: pd.Series,
    weights: pd.Series,
    attempted: set,
    trained: set,
    series: pd.DataFrame,
    gone: pd.DataFrame,
) -> pd.DataFrame:
    """Where each submission row came from (see ``return_sources``)."""
    parts = parse_row_ids(wanted)
    study, condition = parts["study_id"], parts["condition"]
    kind = condition.map(CONDITION_SERIES)
    read = series[~series["series_dir"].isin(set(gone["series_dir"]))]
    has = set(zip(read["study_id"], read["series_description"]))
    lost = set(zip(gone["study_id"], gone["series_description"]))
    model = table[TARGETS[0]].notna().to_numpy()
    reason = []
    for rid, s, c, t, m in zip(wanted, study, condition, kind, model):
        if m:
            reason.append("")
        elif c not in trained:
            reason.append("condition not trained")
        elif rid in attempted or ((s, t) in lost and (s, t) not in has):
            reason.append("unreadable")
        elif (s, t) in has:
            reason.append("not located")
        else:
            reason.append("no series")
    return pd.DataFrame(
        {
            "row_id": wanted.to_numpy(),
            "study_id": study.to_numpy(),
            "source": np.where(model, "model", "prior"),
            "reason": reason,
            "n_points": counts.reindex(wanted.to_numpy()).fillna(0).to_numpy(np.int64),
            "model_weight": weights.reindex(wanted.to_numpy()).fillna(0.0).to_numpy(float),
        }
    )


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
    strict: bool = False,
    verbose: int = 0,
    return_points: bool = False,
    return_sources: bool = False,
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
        point times its ``level_confidence`` (how sure the localizer is that the point's
        chain is not named one disc off; localizers saved before it existed have none),
        or the number given (1: the model alone). A point placed on the wrong
        level gets a confident grade of another level, which the competition's log loss
        punishes hard; shrinking towards the prior caps that. Measured on the default
        demo's 5 held-out studies (docs/end_to_end.md): 1.75 with the model alone,
        0.49 with ``"confidence"``, 1.26 with the prior alone.
    device : str, optional
        Torch device for models read from files (e.g. ``"cuda"``).
    studies : sequence of int, optional
        Grade only these studies (e.g. the held-out ones of a directory in the training
        layout); default every study.
    strict : bool, default=False
        Fail on the first file that cannot be read (raising its error, which names it)
        instead of skipping it.
    verbose : int, default=0
        1: say when the levels are being located (after every input was checked).
    return_points : bool, default=False
        Also return the localizer's points.
    return_sources : bool, default=False
        Also return where each row of the submission came from.

    Returns
    -------
    submission : pandas.DataFrame
        ``row_id, normal_mild, moderate, severe``: 25 rows per study, rows summing to 1,
        in ``sample_submission.csv``'s order when the directory has one, else per study
        in the descriptions file's order, conditions and levels in ``train.csv``'s
        column order.
    points : pandas.DataFrame
        Only with ``return_points``: :meth:`LevelLocalizer.predict`'s frame, every
        point of every series read (those outside their image, or of a condition the
        model does not know, were not graded).
    sources : pandas.DataFrame
        Only with ``return_sources`` (after ``points`` when both are asked for): one
        row per submission row, in its order: ``row_id``, ``study_id`` (int64),
        ``source`` (``"model"``: graded from located points, shrunk towards the prior by
        ``model_weight``; ``"prior"``: the class prior alone), ``reason`` (``""`` for a
        model row, else a key of :data:`FALLBACK_REASONS`: ``"no series"``,
        ``"unreadable"``, ``"not located"`` or ``"condition not trained"``),
        ``n_points`` (points averaged into the row; 0 for the prior) and
        ``model_weight`` (the mean weight of the model in the row; 0 for the prior).

    Warns
    -----
    PriorFallbackWarning
        Once, naming each study that has condition-levels filled with the prior, how
        many, and why; once more for conditions the model was not trained on.
    spinecls.dicom.UnreadableFileWarning
        Once per file that cannot be read (its slice is skipped; with no slice left,
        its series), and once per series some of whose points could not be cut into
        patches (e.g. no PixelSpacing for a ``patch_size_mm`` model): their rows get the
        prior. Not with ``strict``, which raises instead.
    spinecls.datasets.RSNADataWarning
        For a series whose description contradicts its geometry: it is taken for what
        its geometry shows (an "Axial T2" when its slices are axial) or skipped.

    Raises
    ------
    FileNotFoundError, ValueError
        Before any image is read: for a directory not in the competition layout, a
        ``sample_submission.csv`` without rows or with a row id that is not
        ``{study_id}_{condition}_{level}`` (naming its lines), bad ``studies``,
        ``prior`` or ``model_weight``, or a bad model file, naming the file.
    TypeError
        For a ``model`` or ``localizer`` of the wrong kind.

    Examples
    --------
    >>> from spinecls.inference import submission_row_ids
    >>> submission_row_ids([7]).iloc[[0, 24]].tolist()
    ['7_spinal_canal_stenosis_l1_l2', '7_right_subarticular_stenosis_l5_s1']
    """
    from .datasets import load_series
    from .dicom import fail_on_unreadable
    from .localization._series_planes import check_planes
    from .metrics import row_ids, to_submission

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory not found: {root}")
    prior = check_prior(prior)
    if not (isinstance(model_weight, str) and model_weight == "confidence"):
        _model_weight(model_weight, pd.DataFrame(index=range(1)))
    wanted = _wanted_rows(root, split)
    if studies is not None:
        wanted = _chosen(studies, wanted, root, split)
    pipeline = _load_model(model, root, device)
    locator = _load_localizer(localizer, model, device)
    trained = _trained_conditions(pipeline)

    with fail_on_unreadable(strict):
        series = load_series(root, split=split)
        chosen = set(parse_row_ids(wanted)["study_id"])
        series = series[series["study_id"].isin(chosen)].reset_index(drop=True)
        series = check_planes(series, "predict_studies")
        if verbose:
            print(
                f"locating the levels of {series['study_id'].nunique()} studies "
                f"({len(series)} series) in {split}_images",
                flush=True,
            )
        points, gone = locate_studies(locator, series) if len(series) else (pd.DataFrame(), series)
        graded = _gradable(points, trained)
        attempted: set = set()
        if len(graded):
            proba, ok = _grade(pipeline, graded, strict)
            attempted = set(row_ids(graded))
            graded, proba = graded.loc[ok].reset_index(drop=True), proba[ok]
    table = pd.DataFrame(columns=TARGETS, index=pd.Index([], name="row_id"), dtype=float)
    counts = weights = pd.Series(dtype=float)
    if len(graded):
        weight = _model_weight(model_weight, graded)
        proba = weight * proba + (1 - weight) * prior_probabilities(prior, graded["condition"])
        table = to_submission(graded, proba, complete=False).set_index("row_id")
        ids = row_ids(graded).to_numpy()
        counts = pd.Series(ids).value_counts()
        weights = pd.Series(weight[:, 0], index=ids).groupby(level=0).mean()

    table = table.reindex(wanted.to_numpy())
    sources = _sources(wanted, table, counts, weights, attempted, trained, series, gone)
    fallen = (sources["source"] == "prior").to_numpy()
    if fallen.any():
        rows = sources.loc[fallen]
        table.loc[fallen, TARGETS] = prior_probabilities(
            prior, parse_row_ids(rows["row_id"])["condition"]
        )
        per_study = rows.groupby("study_id", sort=False).size()
        why = rows["reason"].value_counts()
        warnings.warn(
            f"predict_studies: {int(fallen.sum())} of {len(wanted)} rows were filled with the "
            f"class prior ({', '.join(f'{k} {int(why[k])}' for k in FALLBACK_REASONS if k in why)}"
            f"): study (rows) {listing([f'{s} ({n})' for s, n in per_study.items()])}",
            PriorFallbackWarning,
            stacklevel=2,
        )
    submission = table.rename_axis("row_id").reset_index()[["row_id", *TARGETS]]
    values = submission[TARGETS].to_numpy(float)
    submission[TARGETS] = values / values.sum(axis=1, keepdims=True)
    out = (
        submission,
        *((points,) if return_points else ()),
        *((sources,) if return_sources else ()),
    )
    return out if len(out) > 1 else submission


def _gradable(points: pd.DataFrame, trained: set) -> pd.DataFrame:
    """The points to grade: inside their image, of a condition the model knows (the
    others are warned about)."""
    if not len(points):
        return points
    graded = points
    if "qc_outside_image" in points.columns:
        graded = points.loc[~points["qc_outside_image"].to_numpy(bool)]
    known = graded["condition"].isin(trained).to_numpy()
    untrained = set(graded.loc[~known, "condition"])
    if untrained:
        warnings.warn(
            f"predict_studies: the model was not trained on {listing(sorted(untrained))} (its "
            f"condition classes are {sorted(trained)}): their rows get the class prior",
            PriorFallbackWarning,
            stacklevel=3,
        )
    return graded.loc[known].reset_index(drop=True)
