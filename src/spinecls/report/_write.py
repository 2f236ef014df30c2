"""``write_report``: the outputs of a run in, a folder of static pages out."""

from __future__ import annotations

import os
from pathlib import Path

from joblib import Parallel, delayed

from .._utils.atomic import atomic_directory, check_destination
from ..metrics._competition import check_prior
from ._crops import transformers_by_condition
from ._inputs import flag_columns, read_points, read_submission, series_listing
from ._pages import CSS, CSS_NAME, index_page
from ._study import Run, write_study
from ._summary import StudySummary, prior_rows


def write_report(
    data_dir: str | os.PathLike,
    points,
    submission,
    out: str | os.PathLike,
    *,
    model=None,
    split: str = "test",
    prior: dict | None = None,
    device: str | None = None,
    n_jobs: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an HTML report of located points and grades, one page per study.

    The report is a folder of static files (HTML, one CSS file, PNG images) that opens
    from the file system in any browser, with no script and no network:

    - ``index.html``: one row per study, with its worst grade, its lowest point
      confidence, the review flags raised and how many of its 25 rows fell back to
      the class prior; the studies with the most reasons to check them first, each
      linked to its page;
    - ``studies/{study_id}.html``: each series' slices with the located points and
      their level names drawn on them, coloured (and shaped) by confidence; the axial
      slice chosen for each level; for each of the 25 rows, the crop the model graded
      (with ``model``), the three probabilities as bars beside the class prior, and
      the flags in words. A study whose series could not be read gets its page too,
      saying what was missing.

    Slices are drawn from the DICOM files as the model sees them (the transformer's
    ``normalize``, :func:`spinecls.dicom.read_slice`), shrunk to at most 256 pixels and
    never enlarged; crops at the model's input size.

    Parameters
    ----------
    data_dir : str or path-like
        The competition directory the points were located on: its
        ``{split}_series_descriptions.csv`` says which series each study should have,
        and ``{split}_images/`` holds the slices.
    points : pandas.DataFrame or str or path-like
        The located points: :meth:`spinecls.LevelLocalizer.predict`'s frame, the CSV
        ``spinecls localize`` writes, or labelled coordinates. Needs ``study_id,
        series_id, instance_number, condition, level, x, y``; ``confidence``,
        ``level_confidence`` and every ``qc_*`` flag column are shown when present.
    submission : pandas.DataFrame or str or path-like
        The graded rows: ``row_id, normal_mild, moderate, severe``
        (:func:`spinecls.predict_studies`, ``spinecls predict``).
    out : str or path-like
        The report's folder: new or empty, or with ``overwrite`` one that spinecls
        wrote. Written to a temporary sibling and moved into place at the end: an
        interrupted or failed run leaves nothing behind.
    model : Pipeline or str or path-like, optional
        The model that graded the points (a model file, a Pipeline that starts with a
        :class:`~spinecls.LumbarPatchTransformer`, a fitted
        :class:`~spinecls.ConditionGroupClassifier` of such pipelines, or the transformer
        alone): its transformer cuts the crops shown and sets the slices' windowing.
        Without it, no crops, and slices in the transformer's default windowing
        (``"percentile"``).
    split : {"test", "train"}, default="test"
        Which descriptions file and image folder of ``data_dir``.
    prior : dict, optional
        ``{condition: (normal_mild, moderate, severe)}`` shown beside each row's
        probabilities, one entry per condition, checked and divided by their sums as
        :func:`spinecls.predict_studies` checks its own; default
        :data:`spinecls.labels.SEVERITY_PRIORS`, the prior it falls back to.
    device : str, optional
        Torch device for a model read from a file.
    n_jobs : int, optional
        Studies written in parallel by joblib (``-1``: all cores).
    overwrite : bool, default=False
        Replace an existing ``out`` that spinecls wrote.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    FileExistsError, ValueError, OSError
        Before any work, when ``out`` may not be written; for inputs that are not what
        is described above (naming the file or frame, the column and the rows).
    TypeError
        For a ``model`` that has no LumbarPatchTransformer to cut crops with.

    Notes
    -----
    The rows that fell back to the class prior are derived from the points as
    :func:`spinecls.predict_studies` decides them: a row with no point of its condition
    and level, or only points flagged ``qc_outside_image``.

    Examples
    --------
    >>> import tempfile, spinecls
    >>> from spinecls.report import write_report
    >>> root = spinecls.make_synthetic_rsna(
    ...     tempfile.mkdtemp() + "/rsna", n_studies=1, image_size=(64, 64))
    >>> points = spinecls.load_rsna(root)
    >>> submission = spinecls.metrics.to_submission(points, [[0.7, 0.2, 0.1]] * len(points))
    >>> out = write_report(root, points, submission, root.parent / "report", split="train")
    >>> sorted(p.name for p in out.iterdir())
    ['.spinecls-output.json', 'index.html', 'report.css', 'studies']
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise NotADirectoryError(f"data directory not found: {data_dir}")
    inputs = [data_dir] + [
        p for p in (points, submission, model) if isinstance(p, (str, os.PathLike))
    ]
    check_destination(out, directory=True, overwrite=overwrite, inputs=inputs, create_parents=True)
    prior = check_prior(prior)
    points = read_points(points, data_dir, split)
    submission = read_submission(submission)
    studies = sorted({*submission["study_id"].tolist(), *points["study_id"].tolist()})
    if not studies:
        raise ValueError("nothing to report: the submission and the points have no rows")
    run = Run(
        data_dir=data_dir,
        split=split,
        transformers=transformers_by_condition(model, data_dir, device),
        flags=flag_columns(points),
        prior=prior,
    )
    listed = series_listing(data_dir, split)
    on_prior = prior_rows(points, studies)
    by_study = {
        "submission": dict(tuple(submission.groupby("study_id"))),
        "points": dict(tuple(points.groupby("study_id"))),
        "listed": {} if listed is None else dict(tuple(listed.groupby("study_id"))),
    }

    def _rows(kind: str, study: int, like):
        return by_study[kind].get(study, like.iloc[:0])

    with atomic_directory(
        out, written_by="spinecls.report.write_report", overwrite=overwrite, inputs=inputs
    ) as tmp:
        (tmp / CSS_NAME).write_text(CSS, encoding="utf-8")
        (tmp / "studies").mkdir()
        summaries: list[StudySummary] = Parallel(n_jobs=n_jobs)(
            delayed(write_study)(
                tmp,
                run,
                study,
                _rows("submission", study, submission),
                _rows("points", study, points),
                None if listed is None else _rows("listed", study, listed),
                {r for r in on_prior if r[0] == study},
            )
            for study in studies
        )
        summaries.sort(key=StudySummary.sort_key)
        source = f"{data_dir.name} ({split} split)"
        (tmp / "index.html").write_text(index_page(summaries, source), encoding="utf-8")
    return Path(out)
