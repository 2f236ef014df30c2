"""The study's three-model comparison, end to end (what ``spinecls demo`` runs).

:func:`run_demo` follows the study's protocol on synthetic studies or on a directory
in the competition layout: a 70 / 15 / 15 train / validation / test split grouped by
study, then three pipelines,

- model 1: crop + augmentation + the simple CNN,
- model 2: crop, no augmentation, the Inception CNN (batch size 32),
- model 3: whole slice with a marker channel + the study's augmentation list + VGG-16,

scored on the test studies by accuracy, precision, recall and F1 per head and by the
competition score, beside a majority-class and a class-prior baseline; each model again
with its probabilities calibrated (a temperature per head fitted on its validation studies,
:func:`spinecls.calibration.calibrate_heads`), twice (:data:`CALIBRATIONS`): on the log
loss (calibrated probabilities) and on the competition's weighted log loss (the score);
and a "recommended" row, the library's best
recipe on a CPU budget (:data:`RECOMMENDED`: weighted loss, calibration, flip TTA). Then
the end-to-end
stage: a :class:`~spinecls.LevelLocalizer` trained on the training studies finds the levels
of the test studies without their coordinates, and the best model grades them from its
points (a table row beside the same model on the true coordinates).

This module trains and scores; ``_report`` builds the table and figures,
``_end_to_end`` runs the localizer stage.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.pipeline import Pipeline

from .._utils.atomic import atomic_directory, stop_on_signals
from ..classifier import DualHeadClassifier
from ..datasets import load_rsna, make_synthetic_rsna
from ..evaluation import evaluate
from ..metrics import solution_from_frame
from ..model_selection import split_by_study
from ..persistence import save_pipeline
from ..preprocessing import LumbarPatchTransformer
from ._end_to_end import end_to_end
from ._report import METRICS as METRICS  # re-exported: the table's columns
from ._report import (
    PRIOR_FILLED,
    baseline_rows,
    class_prior,
    located_summary,
    markdown,
    model_plots,
    model_row,
    prior_filled,
    score_row,
)
from ._report import SEVERITY_EXTRAS as SEVERITY_EXTRAS

__all__ = ["CALIBRATIONS", "DemoConfig", "MODELS", "run_demo", "split_by_study"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of a demo run.

    Attributes
    ----------
    studies : int
        Synthetic studies generated (``run_demo(studies=)`` overrides it).
    crop : int
        Side of the crops around each coordinate, in pixels.
    size : int
        Side the crops are resized to (models 1 and 2 and the recommended row).
    marker_size : int
        Side the whole slices of model 3 are resized to.
    epochs : tuple of int
        Maximum epochs of models 1, 2 and 3; the recommended row trains model 1's.
    localizer_epochs : int
        Epochs of each network of the :class:`~spinecls.LevelLocalizer`.
    """

    studies: int
    crop: int
    size: int
    marker_size: int
    epochs: tuple[int, int, int]
    localizer_epochs: int


# 80 studies: 12 test studies (about 300 rows) and 68 for training and validation, 2.7
# times the former 30-study demo's 25. Its epochs are that much longer, so fewer of them
# take at least as many optimiser steps as its 15 / 15 / 6 and the localizer's 10 did
# (models 1 and 2: 8 epochs, 1.45 times; VGG-16: 3, 1.36 times). The localizer, whose
# chain is named from its level maps alone (issue 18: no sacral count), trains 10
# (with 4, 91.7 % of the test studies' sagittal points lay within 5 px and the located row
# scored 0.42 against 0.09 on the true points). VGG-16 takes most of the time: 0.10
# CPU-seconds per slice and epoch at 48 px, 0.06 at 32 px. Measured with one torch thread:
# 832 CPU-seconds in all, 14 minutes on 2 cores at a load of 1 to 2 (README.md).
FULL = DemoConfig(
    studies=80, crop=48, size=32, marker_size=32, epochs=(8, 8, 3), localizer_epochs=10
)
# 16 studies and 5 localizer epochs: the fewest that let the quick demo's localizer find the
# test studies' levels (at 12 studies and 3 epochs, half its sagittal points were more than
# 5 px off and the located row scored worse than the class prior).
QUICK = DemoConfig(
    studies=16, crop=48, size=32, marker_size=32, epochs=(3, 3, 2), localizer_epochs=5
)

MODELS = {
    "model 1: simple CNN": dict(mode="crop", backbone="simple", augment="light", batch_size=16),
    "model 2: Inception CNN": dict(mode="crop", backbone="inception", augment=None, batch_size=32),
    "model 3: VGG-16": dict(mode="marker", backbone="vgg16", augment="study", batch_size=16),
}
"""The study's three pipelines."""

CALIBRATIONS = {"calibrated": None, "calibrated for the score": "rsna"}
"""The calibrated rows of each study model: the ``severity_weights`` of its temperature fit.
Plain temperature scaling fits the log loss, every row alike: probabilities that match
the frequencies (the ECE column). The competition's score weighs the severity rows 1 / 2 / 4
by their true class, so a temperature fitted for it (``"rsna"``) softens the severity
probabilities of a model that predicts the majority class more than the plain one does."""

RECOMMENDED_NAME = "recommended"
RECOMMENDED = {
    "transformer": dict(mode="crop"),
    "classifier": dict(
        backbone="simple",
        augment="light",
        batch_size=16,
        severity_weights="rsna",
        calibration="temperature",
        tta="flip",
    ),
    "per_group": False,
}
"""The recipe of the "recommended" row: model 1's crops and light augmentation, the
competition's 1/2/4 severity weights in the loss, a temperature per head (fitted with the
same weights) and flip test-time augmentation. ``benchmarks/bench_quality.py`` measured it
over three seeds on the demo's data (docs/quality.md): 0.232 ± 0.288 (0.191 without its
temperatures) against the class prior's 1.193. Crops of 48 mm in 2.5D, one model per
condition group and an ensemble of two seeds of that scored 0.170 ± 0.129, within the
seeds' spread, for twice the fit time and no single model file; the demo keeps the single
model. ``per_group``: one such pipeline per condition group
(:class:`~spinecls.ConditionGroupClassifier`)."""


def _progress(message: str) -> None:
    print(f"[spinecls demo] {message}", flush=True)


def _pipeline(spec: dict, config: DemoConfig, epochs: int, seed: int, memory, weights):
    marker = spec["mode"] == "marker"
    transformer = LumbarPatchTransformer(
        patch_size=config.crop,
        output_size=config.marker_size if marker else config.size,
        mode=spec["mode"],
        memory=memory,
        verbose=1,
    )
    classifier = DualHeadClassifier(
        backbone=spec["backbone"],
        lr=1e-4 if spec["backbone"] == "vgg16" else 1e-3,
        max_epochs=epochs,
        batch_size=spec["batch_size"],
        augment=spec["augment"],
        weights=weights if spec["backbone"] == "vgg16" else None,
        valid_size=0.15 / 0.85,  # of the 85 % left after the test split: 70 / 15 / 15
        early_stopping=5,
        lr_patience=2,
        lr_factor=0.75,
        random_state=seed,
        verbose=1,
    )
    return Pipeline([("patches", transformer), ("clf", classifier)])


def _recommended(config: DemoConfig, seed: int, memory):
    """The pipeline of the "recommended" row (:data:`RECOMMENDED`)."""
    transformer = LumbarPatchTransformer(
        patch_size=config.crop,
        output_size=config.size,
        memory=memory,
        verbose=1,
        **RECOMMENDED["transformer"],
    )
    classifier = DualHeadClassifier(
        lr=1e-3,
        max_epochs=config.epochs[0],
        valid_size=0.15 / 0.85,
        early_stopping=5,
        lr_patience=2,
        lr_factor=0.75,
        random_state=seed,
        verbose=1,
        **RECOMMENDED["classifier"],
    )
    pipe = Pipeline([("patches", transformer), ("clf", classifier)])
    if not RECOMMENDED["per_group"]:
        return pipe
    from sklearn.base import clone

    from ..routing import CONDITION_GROUPS, ConditionGroupClassifier

    return ConditionGroupClassifier([(group, clone(pipe)) for group in CONDITION_GROUPS])


def _fit(pipe, develop: pd.DataFrame):
    """Fit a pipeline on the development rows, its validation split grouped by study."""
    return pipe.fit(
        develop, develop[["condition", "severity"]], clf__groups=develop["study_id"].to_numpy()
    )


def _calibrated(pipe: Pipeline, develop: pd.DataFrame, severity_weights) -> Pipeline:
    """A copy of a fitted pipeline with temperatures fitted on its own validation rows,
    the severity rows weighted by ``severity_weights`` (:data:`CALIBRATIONS`)."""
    from ..calibration import calibrate_heads

    valid = develop.iloc[pipe[-1].valid_index_]
    y_valid = valid[["condition", "severity"]]
    return calibrate_heads(copy.deepcopy(pipe), valid, y_valid, severity_weights=severity_weights)


def _describe(recipe: dict) -> str:
    parts = {**recipe["transformer"], **recipe["classifier"]}
    text = ", ".join(f"{k}={v}" for k, v in parts.items())
    return text + (", one model per condition group" if recipe["per_group"] else "")


def run_demo(
    data: str | os.PathLike | None = None,
    out: str | os.PathLike = "spinecls-demo",
    *,
    studies: int | None = None,
    quick: bool = False,
    random_state: int = 0,
    weights: str | None = None,
    plots: bool = True,
    overwrite: bool = False,
    localize: bool = True,
    recommended: bool = True,
) -> pd.DataFrame:
    """Reproduce the study's three-model comparison and write its results.

    Parameters
    ----------
    data : str or path-like, optional
        A directory in the competition layout. Default: synthetic studies, generated
        under ``out/data``.
    out : str or path-like, default="spinecls-demo"
        Output directory: new or empty (see ``overwrite``), not ``data``, not inside
        it, not the working directory or a parent of either. It receives
        ``results.md`` and ``results.json`` (the table), ``model1.pt`` ... (fitted
        classifiers, see :meth:`DualHeadClassifier.save`), ``submission.csv`` (the best
        model's competition submission for the test studies from their labelled
        coordinates), ``localizer.pt`` (the :class:`~spinecls.LevelLocalizer` trained
        on the training studies), ``located_points.csv`` and ``submission_located.csv``
        (the test studies graded end to end from located points), ``report/`` (their
        HTML report: :func:`spinecls.report.write_report`), and PNG plots
        (``localization.png``, ``localization_errors.png`` among them).
        Everything is written to a temporary sibling and moved into place at the end:
        an interrupted or failed run leaves neither output nor temporary files.
    studies : int, optional
        Synthetic studies to generate (default 80, or 16 with ``quick``).
    quick : bool, default=False
        16 studies and few epochs: every stage, localizer included, in about 110
        CPU-seconds with one torch thread (docs/performance.md).
    random_state : int, default=0
        Seeds the data, the split and the models: the same seed gives the same table.
    weights : str, optional
        Pretrained VGG-16 weights (a file or ``"IMAGENET1K_V1"`` from torchvision's cache).
    plots : bool, default=True
        Write the PNG plots (needs matplotlib).
    recommended : bool, default=True
        Also train and score the library's recommended recipe (:data:`RECOMMENDED`),
        the table's "recommended" row.
    localize : bool, default=True
        Run the end-to-end stage (train the localizer, grade the test studies from
        located points); False: the study's comparison only.
    overwrite : bool, default=False
        Replace an existing ``out`` that a previous demo (or another spinecls
        command) wrote; a directory spinecls did not write is never replaced.

    Returns
    -------
    pandas.DataFrame
        One row per model and baseline: per-head accuracy, precision, recall, F1 and
        the competition score on the test studies, and how many of the rows that score
        counts were filled with the class prior (``"prior-filled rows"``, ``"k of n"``:
        some for the row "on predicted coordinates", all for the class prior). The class
        prior is the development rows' severity shares per condition, one pseudo-count
        each (``_demo_report.class_prior``); the end-to-end stage falls back to it too.

    Raises
    ------
    FileExistsError, ValueError, OSError
        Before any work, when ``out`` may not be written (see above).
    KeyboardInterrupt
        On Ctrl-C, even during training (which skorch would otherwise end quietly),
        after removing everything written so far.
    """
    config = QUICK if quick else FULL
    if plots and importlib.util.find_spec("matplotlib") is None:
        _progress("matplotlib is not installed: no plots (pip install 'spinecls[plot]')")
        plots = False
    out = Path(out)
    if data is not None and not Path(data).is_dir():
        raise NotADirectoryError(f"{data} is not a directory")
    started = time.perf_counter()
    with (
        stop_on_signals(),
        atomic_directory(
            out, written_by="spinecls.demo.run_demo", overwrite=overwrite, inputs=[data]
        ) as tmp,
    ):
        n_studies = config.studies if studies is None else studies
        root = Path(data) if data is not None else _synthetic(tmp, n_studies, random_state)
        split = _split(root, random_state)
        with tempfile.TemporaryDirectory() as cache:
            rows, fitted = _study_models(split, config, random_state, weights, cache, tmp, plots)
            if recommended:
                _recommended_model(split, config, random_state, cache, tmp, rows, fitted)
        # step 5: the baselines, and the best model's submission
        table = pd.DataFrame(rows + baseline_rows(split.test, split.solution, split.develop))
        best = min(fitted, key=lambda n: table.set_index("model").loc[n, "competition score"])
        fitted[best][1].to_csv(tmp / "submission.csv", index=False)
        facts = None
        if localize:
            table, facts = _end_to_end(
                root, split, table, fitted, best, config, random_state, tmp, plots
            )
        table[PRIOR_FILLED] = prior_filled(
            table,
            _located_name(best) if facts else None,
            facts["prior_filled_rows"] if facts else 0,
            len(split.solution),
        )
        elapsed = time.perf_counter() - started
        meta = {
            "data": str(root) if data is not None else "synthetic",
            "studies": int(split.frame["study_id"].nunique()),
            "rows": len(split.frame),
            "quick": quick,
            "random_state": random_state,
            "best_model": best,
            "seconds": round(elapsed, 1),
            "localization": facts,
        }
        _write_results(tmp, table, meta)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.set_index("model").round(4).to_string())
    _progress(f"done in {elapsed:.0f} s; results in {out}")
    return table


@dataclass(frozen=True)
class _Split:
    """The demo's studies: all rows, the training and validation rows, the test rows and
    the test rows' competition solution."""

    frame: pd.DataFrame
    develop: pd.DataFrame
    test: pd.DataFrame
    solution: pd.DataFrame


def _synthetic(tmp: Path, n_studies: int, random_state: int) -> Path:
    """Step 1 without ``data``: synthetic studies, written under the output."""
    _progress(f"generating {n_studies} synthetic studies")
    return make_synthetic_rsna(
        tmp / "data", n_studies=n_studies, random_state=random_state, n_jobs=-1
    )


def _split(root: Path, random_state: int) -> _Split:
    """Step 2: the labelled rows, split by study into 85 % development and 15 % test."""
    frame = load_rsna(root)
    develop_idx, test_idx = split_by_study(frame, random_state=random_state)
    develop, test = frame.iloc[develop_idx], frame.iloc[test_idx]
    _progress(
        f"{len(frame)} labelled coordinates in {frame['study_id'].nunique()} studies: "
        f"{develop['study_id'].nunique()} studies for training and validation (70/15), "
        f"{test['study_id'].nunique()} for testing (15)"
    )
    return _Split(frame, develop, test, solution_from_frame(test))


def _study_models(
    split: _Split, config: DemoConfig, seed: int, weights, cache, tmp: Path, plots: bool
) -> tuple[list[dict], dict]:
    """Step 3: the study's three models, each scored as trained and calibrated twice.

    Returns the table's rows and, by row name, each fitted pipeline and its submission;
    writes ``model1.pt`` ... and, with ``plots``, each model's figures.
    """
    develop, test = split.develop, split.test
    y_test = test[["condition", "severity"]].to_numpy()
    rows, fitted = [], {}
    for k, (name, spec) in enumerate(MODELS.items()):
        _progress(f"training {name} ({spec['mode']}, augment={spec['augment']})")
        pipe = _pipeline(spec, config, config.epochs[k], seed, cache, weights)
        _fit(pipe, develop)
        _progress(f"evaluating {name} on the test studies")
        evaluation = evaluate(pipe, test, complete=True)
        rows.append(model_row(name, evaluation.report, evaluation.score))
        fitted[name] = (pipe, evaluation.submission)
        save_pipeline(pipe, tmp / f"model{k + 1}.pt")
        if plots:
            model_plots(tmp, name, pipe, test, y_test, evaluation.report)
        for how, severity_weights in CALIBRATIONS.items():
            calibrated = _calibrated(pipe, develop, severity_weights)
            evaluation = evaluate(calibrated, test, complete=True)
            rows.append(model_row(f"{name}, {how}", evaluation.report, evaluation.score))
            fitted[f"{name}, {how}"] = (calibrated, evaluation.submission)
    return rows, fitted


def _recommended_model(
    split: _Split, config: DemoConfig, seed: int, cache, tmp: Path, rows: list, fitted: dict
) -> None:
    """Step 4: the recommended recipe's row, added to ``rows`` and ``fitted``; writes
    ``recommended.pt``."""
    _progress(f"training the {RECOMMENDED_NAME} recipe ({_describe(RECOMMENDED)})")
    develop = split.develop
    pipe = _recommended(config, seed, cache)
    _fit(pipe, develop)
    evaluation = evaluate(pipe, split.test, complete=True)
    rows.append(model_row(RECOMMENDED_NAME, evaluation.report, evaluation.score))
    fitted[RECOMMENDED_NAME] = (pipe, evaluation.submission)
    if not RECOMMENDED["per_group"]:
        save_pipeline(pipe, tmp / "recommended.pt")


def _end_to_end(
    root: Path,
    split: _Split,
    table: pd.DataFrame,
    fitted: dict,
    best: str,
    config: DemoConfig,
    seed: int,
    tmp: Path,
    plots: bool,
) -> tuple[pd.DataFrame, dict]:
    """Step 6: the localizer stage; the table gains the best model's row on predicted
    coordinates, after the models' rows and before the baselines'."""
    _progress(f"end to end: training the level localizer, then grading with {best}")
    located_score, facts = end_to_end(
        root,
        split.develop,
        split.test,
        fitted[best][0],
        split.solution,
        epochs=config.localizer_epochs,
        seed=seed,
        out=tmp,
        plots=plots,
        prior=class_prior(split.develop),
    )
    located = score_row(_located_name(best), table.columns, located_score)
    n = len(fitted)
    table = pd.concat([table.iloc[:n], pd.DataFrame([located]), table.iloc[n:]], ignore_index=True)
    return table, facts


def _located_name(best: str) -> str:
    """The table's name of the best model's row on predicted coordinates."""
    return f"{best}, on predicted coordinates"


def _write_results(tmp: Path, table: pd.DataFrame, meta: dict) -> None:
    """Step 7: ``results.md`` and ``results.json``."""
    facts = meta["localization"]
    (tmp / "results.md").write_text(
        f"# spinecls demo: the study's three models on the test studies\n\n"
        f"{markdown(table)}\n"
        f"Competition score: lower is better. Best model: {meta['best_model']}. "
        f"{meta['studies']} studies, {meta['rows']} rows, {meta['seconds']} s.\n"
        + ("" if facts is None else located_summary(facts))
    )
    (tmp / "results.json").write_text(
        json.dumps({"meta": meta, "table": table.to_dict(orient="records")}, indent=2)
    )
