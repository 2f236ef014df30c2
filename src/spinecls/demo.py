"""The study's three-model comparison, end to end (what ``spinecls demo`` runs).

:func:`run_demo` follows the study's protocol on synthetic studies or on a directory
in the competition layout: a 70 / 15 / 15 train / validation / test split grouped by
study, then three pipelines,

- model 1: crop + augmentation + the simple CNN,
- model 2: crop, no augmentation, the Inception CNN (batch size 32),
- model 3: whole slice with a marker channel + the study's augmentation list + VGG-16,

scored on the test studies by accuracy, precision, recall and F1 per head and by the
competition score, beside a majority-class and a class-prior baseline.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from ._atomic import atomic_directory, stop_on_signals
from .classifier import DualHeadClassifier
from .datasets import load_rsna, make_synthetic_rsna
from .evaluation import evaluate
from .labels import CONDITIONS, SEVERITIES
from .metrics import dual_head_report, rsna_score, solution_from_frame, to_submission
from .model_selection import split_by_study
from .persistence import save_pipeline
from .preprocessing import LumbarPatchTransformer

__all__ = ["DemoConfig", "MODELS", "run_demo", "split_by_study"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of a demo run."""

    studies: int
    crop: int
    size: int
    marker_size: int
    epochs: tuple[int, int, int]


FULL = DemoConfig(studies=30, crop=48, size=32, marker_size=48, epochs=(15, 15, 6))
QUICK = DemoConfig(studies=12, crop=48, size=32, marker_size=32, epochs=(3, 3, 2))

MODELS = {
    "model 1: simple CNN": dict(mode="crop", backbone="simple", augment="light", batch_size=16),
    "model 2: Inception CNN": dict(mode="crop", backbone="inception", augment=None, batch_size=32),
    "model 3: VGG-16": dict(mode="marker", backbone="vgg16", augment="study", batch_size=16),
}
"""The study's three pipelines."""

METRICS = ["accuracy", "precision", "recall", "f1"]


def _say(message: str) -> None:
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


def _row(name: str, report, score: float) -> dict:
    row = {"model": name}
    for head in ("condition", "severity"):
        for metric in METRICS:
            row[f"{head} {metric}"] = float(report.summary.loc[head, metric])
    row["competition score"] = score
    return row


def _baselines(develop: pd.DataFrame, test: pd.DataFrame, solution: pd.DataFrame) -> list[dict]:
    majority = [develop["condition"].mode()[0], develop["severity"].mode()[0]]
    y_test = test[["condition", "severity"]].to_numpy()
    predicted = np.tile(np.array(majority, dtype=object), (len(test), 1))
    report = dual_head_report(y_test, predicted)
    prior = (
        develop.groupby("condition")["severity"]
        .value_counts(normalize=True)
        .unstack(fill_value=0.0)
        .reindex(index=list(CONDITIONS), columns=list(SEVERITIES), fill_value=0.0)
    )
    proba = prior.loc[test["condition"]].to_numpy()
    prior_score = rsna_score(solution, to_submission(test, proba, complete=False))
    majority_row = _row("baseline: majority class", report, float("nan"))
    prior_row = {k: float("nan") for k in majority_row} | {
        "model": "baseline: class prior",
        "competition score": prior_score,
    }
    return [majority_row, prior_row]


def _markdown(table: pd.DataFrame) -> str:
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        cells = [
            row[c] if isinstance(row[c], str) else ("" if pd.isna(row[c]) else f"{row[c]:.4f}")
            for c in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plots(out: Path, name: str, pipe: Pipeline, X_test, y_test, report) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from .plotting import (
        conv_layers,
        plot_confusion_matrices,
        plot_feature_maps,
        plot_filters,
        plot_patches,
        plot_training_curves,
    )

    clf = pipe[-1]
    stem = name.split(":")[0].replace(" ", "")
    plot_training_curves(clf, path=out / f"{stem}_training_curves.png")
    plot_confusion_matrices(report, path=out / f"{stem}_confusion_matrices.png")
    first = conv_layers(clf)[0]
    patches = pipe[0].transform(X_test.head(16))
    plot_feature_maps(clf, patches[0], first, path=out / f"{stem}_feature_maps.png")
    plot_filters(clf, first, path=out / f"{stem}_filters.png")
    plot_patches(patches, y_test[:16], path=out / f"{stem}_sample_patches.png")


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
        model's competition submission for the test studies), and PNG plots.
        Everything is written to a temporary sibling and moved into place at the end:
        an interrupted or failed run leaves neither output nor temporary files.
    studies : int, optional
        Synthetic studies to generate (default 30, or 12 with ``quick``).
    quick : bool, default=False
        Small images and few epochs: under two minutes on two CPU cores.
    random_state : int, default=0
        Seeds the data, the split and the models: the same seed gives the same table.
    weights : str, optional
        Pretrained VGG-16 weights (a file or ``"IMAGENET1K_V1"`` from torchvision's cache).
    plots : bool, default=True
        Write the PNG plots (needs matplotlib).
    overwrite : bool, default=False
        Replace an existing ``out`` that a previous demo (or another spinecls
        command) wrote; a directory spinecls did not write is never replaced.

    Returns
    -------
    pandas.DataFrame
        One row per model and baseline: per-head accuracy, precision, recall, F1 and
        the competition score on the test studies.

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
        _say("matplotlib is not installed: no plots (pip install 'spinecls[plot]')")
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
        if data is None:
            n = config.studies if studies is None else studies
            _say(f"generating {n} synthetic studies")
            root = make_synthetic_rsna(
                tmp / "data", n_studies=n, random_state=random_state, n_jobs=-1
            )
        else:
            root = Path(data)
        frame = load_rsna(root)
        develop_idx, test_idx = split_by_study(frame, random_state=random_state)
        develop, test = frame.iloc[develop_idx], frame.iloc[test_idx]
        _say(
            f"{len(frame)} labelled coordinates in {frame['study_id'].nunique()} studies: "
            f"{develop['study_id'].nunique()} studies for training and validation (70/15), "
            f"{test['study_id'].nunique()} for testing (15)"
        )
        y_develop = develop[["condition", "severity"]]
        y_test = test[["condition", "severity"]].to_numpy()
        solution = solution_from_frame(test)
        rows, fitted = [], {}
        with tempfile.TemporaryDirectory() as cache:
            for k, (name, spec) in enumerate(MODELS.items()):
                _say(f"training {name} ({spec['mode']}, augment={spec['augment']})")
                pipe = _pipeline(spec, config, config.epochs[k], random_state, cache, weights)
                pipe.fit(develop, y_develop, clf__groups=develop["study_id"].to_numpy())
                _say(f"evaluating {name} on the test studies")
                evaluation = evaluate(pipe, test, complete=True)
                rows.append(_row(name, evaluation.report, evaluation.score))
                fitted[name] = (pipe, evaluation.submission)
                save_pipeline(pipe, tmp / f"model{k + 1}.pt")
                if plots:
                    _plots(tmp, name, pipe, test, y_test, evaluation.report)
        rows += _baselines(develop, test, solution)
        table = pd.DataFrame(rows)
        best = min(fitted, key=lambda n: table.set_index("model").loc[n, "competition score"])
        fitted[best][1].to_csv(tmp / "submission.csv", index=False)
        elapsed = time.perf_counter() - started
        meta = {
            "data": str(root) if data is not None else "synthetic",
            "studies": int(frame["study_id"].nunique()),
            "rows": len(frame),
            "quick": quick,
            "random_state": random_state,
            "best_model": best,
            "seconds": round(elapsed, 1),
        }
        (tmp / "results.md").write_text(
            f"# spinecls demo: the study's three models on the test studies\n\n"
            f"{_markdown(table)}\n"
            f"Competition score: lower is better. Best model: {best}. "
            f"{meta['studies']} studies, {meta['rows']} rows, {meta['seconds']} s.\n"
        )
        (tmp / "results.json").write_text(
            json.dumps({"meta": meta, "table": table.to_dict(orient="records")}, indent=2)
        )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.set_index("model").round(4).to_string())
    _say(f"done in {elapsed:.0f} s; results in {out}")
    return table
