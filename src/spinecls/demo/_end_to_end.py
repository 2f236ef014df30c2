"""The demo's end-to-end stage: locate the test studies' levels, then grade them.

A :class:`~spinecls.LevelLocalizer` trained on the development studies finds the levels
of the test studies without their coordinates, and the demo's best model grades the crops
around its points (:func:`spinecls.predict_studies`).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..datasets import load_series
from ..inference import predict_studies
from ..labels import AXIAL_T2
from ..localization import LevelLocalizer
from ..metrics import rsna_score
from ..report import write_report


def end_to_end(
    root: Path,
    develop: pd.DataFrame,
    test: pd.DataFrame,
    pipe,
    solution: pd.DataFrame,
    *,
    epochs: int,
    seed: int,
    out: Path,
    plots: bool,
    prior: dict,
) -> tuple[float, dict]:
    """Train the localizer, grade the test studies from its points, write the results.

    ``prior`` (the demo's class prior) fills the rows no located point grades and is what
    each grade is shrunk towards.

    Writes ``localizer.pt``, ``submission_located.csv``, ``located_points.csv``, the
    HTML report of the test studies (``report/``, :func:`spinecls.report.write_report`)
    and, with ``plots``, ``localization.png`` and ``localization_errors.png`` to ``out``.

    Returns
    -------
    score : float
        The competition score of the located submission.
    facts : dict
        Training and grading seconds, the localisation accuracy, and how many of the
        scored rows were filled with the prior (``prior_filled_rows`` of
        ``scored_rows``), for ``results.json``.
    """
    from ..localization_plots import localization_errors

    series = load_series(root)
    localizer = LevelLocalizer(max_epochs=epochs, random_state=seed, verbose=1)
    started = time.perf_counter()
    localizer.fit(series[series["study_id"].isin(develop["study_id"])], develop)
    trained = time.perf_counter() - started
    studies = pd.unique(test["study_id"])
    started = time.perf_counter()
    submission, points, sources = predict_studies(
        root,
        pipe,
        localizer,
        split="train",
        studies=studies,
        prior=prior,
        return_points=True,
        return_sources=True,
    )
    scored = sources["row_id"].isin(solution["row_id"])
    per_study = (time.perf_counter() - started) / len(studies)
    errors = localization_errors(test, points)
    sagittal = errors["series_description"] != AXIAL_T2
    facts = {
        "localizer_train_seconds": round(trained, 1),
        "end_to_end_seconds_per_study": round(per_study, 2),
        "sagittal_within_5px": float((errors.loc[sagittal, "distance"] <= 5).mean()),
        "sagittal_slice_exact": float((errors.loc[sagittal, "slice_offset"] == 0).mean()),
        "axial_slice_exact": float((errors.loc[~sagittal, "slice_offset"] == 0).mean()),
        "axial_within_5px": float((errors.loc[~sagittal, "distance"] <= 5).mean()),
        "points_matched": int(len(errors)),
        "points_labelled": int(len(test)),
        "prior_filled_rows": int((scored & (sources["source"] == "prior")).sum()),
        "scored_rows": int(scored.sum()),
    }
    localizer.save(out / "localizer.pt")
    submission.to_csv(out / "submission_located.csv", index=False)
    points.to_csv(out / "located_points.csv", index=False)
    write_report(root, points, submission, out / "report", model=pipe, split="train")
    if plots:
        from ..localization_plots import plot_localization, plot_localization_errors

        plot_localization(test, points, path=out / "localization.png")
        plot_localization_errors(errors, path=out / "localization_errors.png")
    return rsna_score(solution, submission), facts
