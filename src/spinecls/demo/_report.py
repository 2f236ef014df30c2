"""The demo's table and figures: one row per model or baseline, its Markdown, its plots.

:mod:`spinecls.demo` trains and scores; this module turns its scores into the rows of
``results.md`` / ``results.json`` and draws each model's figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from ..labels import CONDITIONS, SEVERITIES
from ..metrics import dual_head_report, rsna_score, to_submission

METRICS = ["accuracy", "precision", "recall", "f1"]
SEVERITY_EXTRAS = {
    "balanced_accuracy": "severity balanced accuracy",
    "log_loss": "severity log loss",
    "ece": "severity ECE",
}
"""Severity-head metrics of :func:`spinecls.metrics.dual_head_report` the table adds."""


def model_row(name: str, report, score: float) -> dict:
    """A table row: per-head metrics of ``report`` and the competition score."""
    row = {"model": name}
    for head in ("condition", "severity"):
        for metric in METRICS:
            row[f"{head} {metric}"] = float(report.summary.loc[head, metric])
    for metric, column in SEVERITY_EXTRAS.items():
        value = report.summary.loc["severity"].get(metric, float("nan"))
        row[column] = float(value)
    row["competition score"] = score
    return row


def score_row(name: str, columns, score: float) -> dict:
    """A row with the competition score alone (the other ``columns`` empty)."""
    return {column: float("nan") for column in columns} | {
        "model": name,
        "competition score": score,
    }


PRIOR_FILLED = "prior-filled rows"
"""The table's column that says how many of the rows a score counts hold the class prior."""


def class_prior(develop: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
    """The severity shares of each condition among the development rows.

    One pseudo-count per severity (Laplace's rule), so that no severity the development
    rows happen to lack gets probability 0. The demo's one prior: its "class prior"
    baseline, and what the end-to-end stage falls back to and shrinks towards
    (``predict_studies(prior=...)``).
    """
    counts = (
        develop.groupby("condition")["severity"]
        .value_counts()
        .unstack(fill_value=0)
        .reindex(index=list(CONDITIONS), columns=list(SEVERITIES), fill_value=0)
    )
    shares = (counts + 1).div(counts.sum(axis=1) + len(SEVERITIES), axis=0)
    return {c: tuple(float(v) for v in shares.loc[c]) for c in CONDITIONS}


def baseline_rows(test: pd.DataFrame, solution: pd.DataFrame, develop: pd.DataFrame) -> list[dict]:
    """The majority class and the class prior (:func:`class_prior`) of the development
    rows, on the test rows."""
    majority = [develop["condition"].mode()[0], develop["severity"].mode()[0]]
    y_test = test[["condition", "severity"]].to_numpy()
    predicted = np.tile(np.array(majority, dtype=object), (len(test), 1))
    report = dual_head_report(y_test, predicted)
    prior = class_prior(develop)
    proba = np.array([prior[c] for c in test["condition"]])
    prior_score = rsna_score(solution, to_submission(test, proba, complete=False))
    majority_row = model_row("baseline: majority class", report, float("nan"))
    return [majority_row, score_row("baseline: class prior", majority_row, prior_score)]


def prior_filled(table: pd.DataFrame, located: str | None, filled: int, rows: int) -> list[str]:
    """The :data:`PRIOR_FILLED` column: ``"k of n"`` for each row with a score: none for
    the models on the true coordinates, ``filled`` for the ``located`` row, all for the
    class prior; empty for a row without a score."""
    out = []
    for name, score in zip(table["model"], table["competition score"]):
        if pd.isna(score):
            out.append("")
        elif name == "baseline: class prior":
            out.append(f"{rows} of {rows}")
        else:
            out.append(f"{filled if name == located else 0} of {rows}")
    return out


def markdown(table: pd.DataFrame) -> str:
    """``table`` as a Markdown table, numbers to four decimals, missing ones empty."""
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        cells = [
            row[c] if isinstance(row[c], str) else ("" if pd.isna(row[c]) else f"{row[c]:.4f}")
            for c in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def located_summary(facts: dict) -> str:
    """The end-to-end stage's figures (:func:`spinecls.demo._end_to_end.end_to_end`)."""
    return (
        f"\nLocated levels on the test studies (LevelLocalizer trained in "
        f"{facts['localizer_train_seconds']} s; {facts['end_to_end_seconds_per_study']} s "
        f"per study end to end): sagittal points within 5 px {facts['sagittal_within_5px']:.1%}"
        f", on the true slice {facts['sagittal_slice_exact']:.1%}; axial slice exact "
        f"{facts['axial_slice_exact']:.1%}, subarticular points within 5 px "
        f"{facts['axial_within_5px']:.1%}. {facts['prior_filled_rows']} of the "
        f"{facts['scored_rows']} scored rows were filled with the class prior (no level "
        "located for them); every located grade is shrunk towards it by the localizer's "
        "confidence.\n"
    )


def model_plots(out: Path, name: str, pipe: Pipeline, X_test, y_test, report) -> None:
    """A fitted model's training curves, confusion matrices, filters and patches as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from ..plotting import (
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
