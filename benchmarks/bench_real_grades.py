"""The study's three models on real graded lumbar discs (SPIDER), against the class prior.

Run: ``python benchmarks/bench_real_grades.py --source DIR [--folds 5] [--seed 0]
[--only models|recipe|vgg16] [--vgg16] [--vgg16-size 224] [--vgg16-folds N] [--margin 0.25]
[--jobs 2] [--threads 1] [--figure confusion.png] [--results results.json]``

``--source`` is a snapshot of github:ejd230001/medvisor, which mirrors part of SPIDER (van der
Graaf et al., 2024; CC BY 4.0): a git directory without work tree or a checked-out folder.
``_spider.build_crops`` cuts one T2 crop around each graded disc into a temporary folder (PNG
files, removed at the end); this script reads them as a user with PNG crops would
(:func:`spinecls.read_images`, :class:`spinecls.IntensityNormalizer`), labels each crop with
its level (the condition head) and its Pfirrmann grade as a severity (1-2 normal_mild, 3
moderate, 4-5 severe), and cross-validates by patient: ``--folds`` folds
(``StratifiedGroupKFold`` on the severity, shuffled with ``--seed``), every crop predicted
once by a model that never saw its patient.

Rows, in the demo's format (``spinecls demo``):

- ``model 1: simple CNN``, ``model 2: Inception CNN``: ``DualHeadClassifier(backbone=...)``
  trained as :data:`TRAINING` says (the ``"light"`` augmentation, up to 30 epochs) on 64 px
  crops (``--margin``, default :data:`MARGIN`), each z-scored;
- ``model 3: VGG-16`` with ``--vgg16`` (``lr=1e-4`` as the study, no pretrained weights
  unless ``--weights FILE``), at ``--vgg16-size`` (default 224 px, the study's input):
  slow on a CPU, so ``--vgg16-epochs`` (default 3), ``--vgg16-folds`` (the first N folds
  only) and its time are printed; ``--only vgg16`` runs it alone;
- each again ``calibrated``: a temperature per head fitted on the model's own validation
  patients (``valid_index_``), with :func:`spinecls.calibration.calibrate_heads`;
- ``recommended``: :data:`RECIPE` (docs/real_data.md), three seeds of model 1 averaged by a
  :class:`spinecls.ensemble.DualHeadEnsemble` with ``decision="balanced"``;
- ``baseline: majority class`` and ``baseline: class prior`` (each fold's training
  frequencies): the log loss to beat.

Folds are fitted ``--jobs`` at a time (joblib processes, default 2) with ``--threads`` torch
threads each (default 1): on 2 cores that is the fastest way through.

Columns: both heads' accuracy, precision, recall and F1; the severity head's balanced
accuracy, log loss and expected calibration error; and the agreement with the five Pfirrmann
grades: each crop's expected grade (its severity probabilities times the mean Pfirrmann grade
of each severity among the fold's training crops), rounded, against the radiologist's grade,
exactly and within one grade. Then the recommended recipe and the prior trained on SPIDER's
own training patients and scored on its validation patients (``overview.csv``; never used to
choose the recipe), the targets of issue 22 with their figures, and a confusion-matrix figure
of the recommended recipe's severity (``--figure``). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _spider  # noqa: E402  (the benchmark's data preparation, beside this file)

from spinecls import DualHeadClassifier, IntensityNormalizer, read_images  # noqa: E402
from spinecls._utils.dual_head import labels_from_proba, over_prior  # noqa: E402
from spinecls.calibration import calibrate_heads  # noqa: E402
from spinecls.demo import METRICS, SEVERITY_EXTRAS  # noqa: E402
from spinecls.ensemble import DualHeadEnsemble  # noqa: E402
from spinecls.labels import SEVERITIES  # noqa: E402
from spinecls.metrics import dual_head_report  # noqa: E402

SIZE = 64
"""Side of the crops given to the simple and Inception CNNs and the recipe."""

MARGIN = 0.25
"""Each crop's side is ``1 + MARGIN`` times its box's longer side: the disc, its endplates and
the canal behind it (with 0.5, the first tables' crops, and 1.0 the log loss was worse:
docs/real_data.md)."""

TRAINING = dict(augment="light", max_epochs=30, early_stopping=8)
"""How every CNN of the table trains (docs/real_data.md): the ``"light"`` augmentation (a
flip and a small affine), for up to 30 epochs, stopping early after 8 without a better
validation loss; the rest as the library's defaults."""

MODELS = {
    "model 1: simple CNN": dict(backbone="simple", **TRAINING),
    "model 2: Inception CNN": dict(backbone="inception", **TRAINING),
}
"""The study's first two models, trained as :data:`TRAINING` says."""

RECIPE = dict(normalize="zscore", classifier=MODELS["model 1: simple CNN"], members=3)
"""The recipe that wins on real crops (docs/real_data.md): each crop z-scored
(``IntensityNormalizer("zscore")``), then a :class:`spinecls.ensemble.DualHeadEnsemble` of
``members`` copies of model 1 that differ only in their seed (``random_state`` = the
benchmark's seed, +1, +2: each its own validation patients, weights and augmentations), their
probabilities averaged (no temperature), labels from ``decision="balanced"``. Its first
member is model 1's fit itself (the ensemble takes the fitted members as
``FrozenEstimator``s): the row costs two more fits per fold."""

MIN_CALIBRATION_ROWS = 40
"""A fold's validation patients hold about 60 crops, fewer than the library's guard (100):
the calibrated copies lower it to this (one number per head is fitted)."""


def _say(message: str) -> None:
    print(f"[bench_real_grades] {message}", flush=True)


def _pipeline(normalize: str, seed: int, epochs=None, **classifier) -> Pipeline:
    if epochs is not None:
        classifier["max_epochs"] = epochs
    return Pipeline(
        [
            ("normalize", IntensityNormalizer(method=normalize)),
            ("clf", DualHeadClassifier(random_state=seed, **classifier)),
        ]
    )


def _ensemble(normalize: str, members: list) -> Pipeline:
    """The recipe on one fold: the normaliser, then the fitted members' classifiers averaged
    (``FrozenEstimator``: fitting the ensemble fits none of them again)."""
    return Pipeline(
        [
            ("normalize", IntensityNormalizer(method=normalize)),
            (
                "clf",
                DualHeadEnsemble(
                    [(f"member{k}", FrozenEstimator(m[-1])) for k, m in enumerate(members)],
                    decision="balanced",
                ),
            ),
        ]
    )


class Predictions:
    """Out-of-fold probabilities and labels of one row of the table, filled fold by fold.

    ``labels[decision]`` holds the severity labels ``predict`` gives with
    ``decision="argmax"`` and with ``decision="balanced"`` (the same probabilities).
    """

    def __init__(self, n: int):
        self.proba = [None, None]
        self.classes = None
        self.labels = {d: np.empty((n, 2), dtype=object) for d in DECISIONS}
        self.grades = np.full(n, np.nan)
        self.seconds = 0.0
        self.cpu = 0.0  # CPU seconds of the folds' fits and predictions, all threads
        self.n = n

    def add(self, index, proba, classes, centroids, labels=None) -> None:
        if self.classes is None:
            self.classes = [np.asarray(c) for c in classes]
            self.proba = [np.zeros((self.n, len(c))) for c in classes]
        for k in range(2):
            columns = [list(classes[k]).index(c) for c in self.classes[k]]
            self.proba[k][index] = np.asarray(proba[k])[:, columns]
        for decision in DECISIONS:
            if labels is None:  # the most probable class (the baselines)
                chosen = [np.asarray(c)[np.argmax(p, axis=1)] for c, p in zip(classes, proba)]
                self.labels[decision][index] = np.column_stack(chosen)
            else:
                self.labels[decision][index] = labels[decision]
        # the expected Pfirrmann grade: each severity's probability times its mean grade
        self.grades[index] = np.asarray(proba[1]) @ centroids


DECISIONS = ("argmax", "balanced")


def _centroids(frame: pd.DataFrame, classes) -> np.ndarray:
    """Mean Pfirrmann grade of each severity class among ``frame``'s crops."""
    means = frame.groupby("severity")["pfirrmann"].mean()
    return np.array([means.get(c, np.nan) for c in classes])


def _row(
    name: str, frame: pd.DataFrame, predictions: Predictions, rows=None, decision="argmax"
) -> dict:
    """A table row from the predictions of ``rows`` (default: every crop)."""
    rows = np.arange(len(frame)) if rows is None else rows
    part = frame.iloc[rows]
    y = part[["level", "severity"]].to_numpy()
    classes = predictions.classes
    proba = [p[rows] for p in predictions.proba]
    predicted = predictions.labels[decision][rows]
    report = dual_head_report(y, predicted, proba=proba, classes=classes, labels=_labels(frame))
    row = {"model": name}
    for head in ("condition", "severity"):
        for metric in METRICS:
            row[f"{head} {metric}"] = float(report.summary.loc[head, metric])
    for metric, column in SEVERITY_EXTRAS.items():
        row[column] = float(report.summary.loc["severity"][metric])
    grade = np.clip(np.rint(predictions.grades[rows]), 1, 5)
    truth = part["pfirrmann"].to_numpy()
    row["Pfirrmann exact"] = float(np.mean(grade == truth))
    row["Pfirrmann within one"] = float(np.mean(np.abs(grade - truth) <= 1))
    row["fit s"] = predictions.seconds
    row["_report"] = report
    return row


def _labels(frame: pd.DataFrame):
    levels = [lv for lv in _spider.LEVEL_NAMES if lv in set(frame["level"])]
    levels += sorted(set(frame["level"]) - set(levels))
    return levels, list(SEVERITIES)


def _baselines(frame: pd.DataFrame, folds) -> list[dict]:
    """The majority class and the class prior of each fold's training crops, on its test crops."""
    classes = [np.sort(frame["level"].unique()), np.sort(np.array(SEVERITIES))]  # as classes_
    prior, majority = Predictions(len(frame)), Predictions(len(frame))
    for train, test in folds:
        fitted = frame.iloc[train]
        centroids = _centroids(fitted, classes[1])
        shares = [
            fitted[column].value_counts(normalize=True).reindex(c, fill_value=0).to_numpy()
            for column, c in zip(("level", "severity"), classes)
        ]
        prior.add(test, [np.tile(s, (len(test), 1)) for s in shares], classes, centroids)
        certain = [np.tile(np.eye(len(s))[s.argmax()], (len(test), 1)) for s in shares]
        majority.add(test, certain, classes, centroids)
    tested = np.concatenate([test for _, test in folds])
    rows = [
        _row("baseline: majority class", frame, majority, tested),
        _row("baseline: class prior", frame, prior, tested),
    ]
    for column in ("severity log loss", "severity ECE"):
        rows[0][column] = float("nan")  # a certain prediction: no probabilities to judge
    return rows


def _labels_from(classifier, proba) -> dict:
    """The labels ``classifier.predict`` gives with each ``decision``, from its probabilities
    already computed (the library's own steps: the most probable class, or the largest
    probability over ``class_prior_``): one forward pass instead of three, which VGG-16 at
    224 px on a CPU feels."""
    return {
        "argmax": labels_from_proba(classifier.classes_, proba).astype(object),
        "balanced": labels_from_proba(
            classifier.classes_, over_prior(proba, classifier.class_prior_)
        ).astype(object),
    }


def _calibrated(pipe: Pipeline, X, y, train) -> Pipeline:
    """A copy whose classifier has a temperature per head, fitted on its own validation
    rows (``valid_index_``, positions in ``train``)."""
    copy_ = copy.deepcopy(pipe)
    valid = train[copy_[-1].valid_index_]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        calibrate_heads(copy_, X[valid], y[valid], min_rows=MIN_CALIBRATION_ROWS)
    return copy_


def _fit_fold(make, X, y, groups, frame, train, test, threads: int) -> dict:
    """One fold: the pipeline ``make()`` fitted on ``train``, plain and calibrated
    predictions of ``test`` (run in a joblib worker, with ``threads`` torch threads)."""
    import torch

    torch.set_num_threads(threads)
    pipe = make()
    started, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # uncalibrated-head notes per fold
        pipe.fit(X[train], y[train], clf__groups=groups[train])
    seconds = time.perf_counter() - started
    classes = pipe[-1].classes_
    out = {"seconds": seconds, "classes": classes}
    out["centroids"] = _centroids(frame.iloc[train], classes[1])
    for tag, model in (("plain", pipe), ("calibrated", _calibrated(pipe, X, y, train))):
        proba = model.predict_proba(X[test])
        out[tag] = (proba, _labels_from(model[-1], proba))
    out["cpu"] = time.process_time() - cpu  # this process's threads (a joblib worker's)
    out["pipeline"] = pipe
    return out


def _cross_validate(
    tasks: dict, frame, jobs: int = 1, threads: int = 1
) -> dict[tuple, tuple[Predictions, Predictions, list]]:
    """Out-of-fold predictions of every task's pipelines, plain and calibrated, and the
    fitted pipelines, by task key.

    ``tasks`` maps a key to ``(name, X, folds, make)``. Every fold of every task goes into
    one joblib pool, ``jobs`` at a time with ``threads`` torch threads each, so that no
    core waits for the last fold of a model while the next model's could run.
    """
    y = frame[["level", "severity"]].to_numpy()
    groups = frame["patient"].to_numpy()
    work = [(key, k) for key, (_, _, folds, _) in tasks.items() for k in range(len(folds))]
    out = {key: (Predictions(len(frame)), Predictions(len(frame)), []) for key in tasks}
    done = Parallel(n_jobs=jobs, return_as="generator")(
        delayed(_fit_fold)(
            tasks[key][3], tasks[key][1], y, groups, frame, *tasks[key][2][k], threads
        )
        for key, k in work
    )
    for (key, k), fold in zip(work, done):
        name, _, folds, _ = tasks[key]
        plain, calibrated, fitted = out[key]
        test = folds[k][1]
        for predictions, tag in ((plain, "plain"), (calibrated, "calibrated")):
            proba, labels = fold[tag]
            predictions.add(test, proba, fold["classes"], fold["centroids"], labels)
            predictions.seconds += fold["seconds"]
        plain.cpu += fold["cpu"]
        fitted.append(fold["pipeline"])
        _say(f"{name}: fold {k + 1}/{len(folds)} done ({plain.seconds:.0f} s of fitting so far)")
    return out


def _recipe(frame, X, folds, members: list) -> Predictions:
    """Out-of-fold predictions of :data:`RECIPE`, from its members' fitted folds."""
    out = Predictions(len(frame))
    y = frame[["level", "severity"]].to_numpy()
    for k, (train, test) in enumerate(folds):
        pipe = _ensemble(RECIPE["normalize"], [fits[k] for _, _, fits in members])
        pipe.fit(X[train], y[train])
        classes = pipe[-1].classes_
        centroids = _centroids(frame.iloc[train], classes[1])
        proba = pipe.predict_proba(X[test])
        out.add(test, proba, classes, centroids, _labels_from(pipe[-1], proba))
    out.seconds = sum(plain.seconds for plain, _, _ in members)
    return out


def markdown(table: pd.DataFrame) -> str:
    """The table in Markdown, numbers to three decimals (fit seconds whole)."""
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, str):
                cells.append(value)
            elif pd.isna(value):
                cells.append("")
            else:
                cells.append(f"{value:.0f}" if column == "fit s" else f"{value:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="medvisor snapshot: git dir or folder")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--jobs", type=int, default=2, help="folds fitted at a time (joblib processes)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per fold")
    parser.add_argument("--epochs", type=int, help="max_epochs of every model (a quick try)")
    parser.add_argument("--vgg16", action="store_true", help="add VGG-16 (slow on a CPU)")
    parser.add_argument("--vgg16-size", type=int, default=224)
    parser.add_argument("--vgg16-epochs", type=int, default=3)
    parser.add_argument(
        "--vgg16-folds", type=int, help="train VGG-16 on the first N folds only (its own table)"
    )
    parser.add_argument("--weights", help="pretrained VGG-16 state dict file for --vgg16")
    parser.add_argument(
        "--only",
        choices=["models", "recipe", "vgg16"],
        help="skip the other rows (vgg16: VGG-16's alone, implies --vgg16)",
    )
    parser.add_argument("--no-spider-split", action="store_true")
    parser.add_argument(
        "--margin", type=float, default=MARGIN, help="crop side = (1 + margin) x box side"
    )
    parser.add_argument("--figure", help="PNG of the recipe's severity confusion matrix")
    parser.add_argument("--results", help="write the table and the facts as JSON")
    args = parser.parse_args(argv)
    if args.only == "vgg16":
        args.vgg16 = True
    if args.vgg16_folds is not None and not 1 <= args.vgg16_folds <= args.folds:
        parser.error(f"--vgg16-folds must be between 1 and --folds ({args.folds})")
    # VGG-16's folds: the first --vgg16-folds, or all (None)
    vgg_folds = None if args.vgg16_folds in (None, args.folds) else args.vgg16_folds

    import torch

    torch.set_num_threads(args.threads)
    started, cpu_started = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="spider-crops-") as tmp:
        root = _spider.materialise(args.source, Path(tmp) / "snapshot")
        frame, facts = _spider.build_crops(root, Path(tmp) / "crops", margin=args.margin)
        _say(
            f"{len(frame)} disc crops from {frame['patient'].nunique()} patients "
            f"({facts['kept']} of {facts['t2 slices']} T2 slices kept; boxes not matching the "
            f"graded discs: {len(facts['box count differs'])}); severities "
            f"{frame['severity'].value_counts().to_dict()}; Pfirrmann grades "
            f"{frame['pfirrmann'].value_counts().sort_index().to_dict()}"
        )
        images = read_images(frame["path"], size=SIZE)
        vgg_images = read_images(frame["path"], size=args.vgg16_size) if args.vgg16 else None
    prepared = time.perf_counter() - started
    splitter = StratifiedGroupKFold(args.folds, shuffle=True, random_state=args.seed)
    folds = list(splitter.split(images, frame["severity"], frame["patient"]))
    rows, vgg_rows = [], None
    seed = args.seed

    tasks: dict = {}

    def plan(name, normalize, params, data, split=None, n_folds=None, seed_=None) -> tuple:
        """The key of one pipeline's cross-validation, registered to be fitted once."""
        seed_ = seed if seed_ is None else seed_
        key = (
            normalize,
            json.dumps(params, sort_keys=True, default=str),
            data.shape,
            split,
            n_folds,
            seed_,
        )
        if key not in tasks:
            chosen = spider_split if split else folds[:n_folds]
            make = partial(_pipeline, normalize, seed_, args.epochs, **params)
            tasks[key] = (name, data, chosen, make)
        return key

    def predictions(*task, **options):
        """Plain and calibrated predictions of one planned pipeline, and its fits."""
        return fits[plan(*task, **options)]

    def members(split=None) -> list[tuple]:
        return [
            plan(
                f"recipe member {k + 1} (seed {seed + k})"
                + (" on SPIDER's split" if split else ""),
                RECIPE["normalize"],
                RECIPE["classifier"],
                images,
                split,
                seed_=seed + k,
            )
            for k in range(RECIPE["members"])
        ]

    def recipe(split=None) -> Predictions:
        fitted = [fits[key] for key in members(split)]
        return _recipe(frame, images, spider_split if split else folds, fitted)

    subset = frame["subset"].to_numpy()
    spider_split = [(np.flatnonzero(subset == "training"), np.flatnonzero(subset == "validation"))]
    specs = {} if args.only in ("vgg16", "recipe") else dict(MODELS)
    if args.vgg16 and args.only != "recipe":
        specs["model 3: VGG-16"] = dict(
            backbone="vgg16", lr=1e-4, max_epochs=args.vgg16_epochs, weights=args.weights
        )
    # every fit first, in one pool (_cross_validate); the rows below read them
    for name, params in specs.items():
        vgg = params["backbone"] == "vgg16"
        plan(
            name,
            "zscore",
            params,
            vgg_images if vgg else images,
            None,
            vgg_folds if vgg else None,
        )
    with_recipe = args.only not in ("models", "vgg16")
    if with_recipe:
        members()
        if not args.no_spider_split:
            members(split=True)
    fits = _cross_validate(tasks, frame, jobs=args.jobs, threads=args.threads)
    for name, params in specs.items():
        vgg = params["backbone"] == "vgg16"
        if vgg and vgg_folds:  # a part of the crops: its own table and prior
            part = folds[:vgg_folds]
            plain, calibrated, _ = predictions(name, "zscore", params, vgg_images, None, vgg_folds)
            tested = np.concatenate([test for _, test in part])
            vgg_rows = [
                _row(name, frame, plain, tested),
                _row(f"{name}, calibrated", frame, calibrated, tested),
                *_baselines(frame, part),
            ]
        else:
            plain, calibrated, _ = predictions(
                name, "zscore", params, vgg_images if vgg else images
            )
            rows.append(_row(name, frame, plain))
            rows.append(_row(f"{name}, calibrated", frame, calibrated))
        if vgg:
            folds_run = folds[: args.vgg16_folds] if args.vgg16_folds else folds
            passes = sum(len(t) for t, _ in folds_run) * args.vgg16_epochs
            facts["vgg16"] = {
                "size": args.vgg16_size,
                "epochs": args.vgg16_epochs,
                "fit seconds": round(plain.seconds, 1),
                "training samples per second": round(passes / plain.seconds, 2),
            }
    recipe_row = None
    if with_recipe:
        recipe_row = _row("recommended", frame, recipe(), decision="balanced")
        rows.append(recipe_row)
    rows += _baselines(frame, folds)
    table = pd.DataFrame(rows)
    reports = dict(zip(table["model"], table.pop("_report")))
    spider = None
    if with_recipe and not args.no_spider_split:
        training, validation = spider_split[0]
        _say(f"SPIDER's split: {len(training)} training crops, {len(validation)} validation")
        spider_rows = [
            _row("recommended", frame, recipe(split=True), validation, decision="balanced"),
            *_baselines(frame, spider_split),
        ]
        spider = pd.DataFrame(spider_rows).drop(columns="_report")
    elapsed = time.perf_counter() - started
    # this process's CPU time and that of every fold (in joblib workers when --jobs > 1)
    cpu = time.process_time() - cpu_started
    if effective_n_jobs(args.jobs) > 1:
        cpu += sum(plain.cpu for plain, _, _ in fits.values())

    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.set_index("model").round(3).to_string())
    print()
    print(markdown(table))
    if vgg_rows is not None:
        print(f"\nVGG-16 on the first {args.vgg16_folds} fold(s)' test crops only:")
        print(markdown(pd.DataFrame(vgg_rows).drop(columns="_report")))
    if spider is not None:
        print("\nSPIDER's own split (trained on its training patients, scored on its validation")
        print("patients):")
        print(markdown(spider))
    prior_ll_cv = float(table.set_index("model").loc["baseline: class prior", "severity log loss"])
    print(f"\nTargets (issue 22), {args.folds}-fold grouped CV, seed {args.seed}:")
    by_name = table.set_index("model")
    for name in by_name.index:
        if name.startswith("baseline"):
            continue
        ratio = by_name.loc[name, "severity log loss"] / prior_ll_cv
        bound = 1 if name.startswith("model 3") else 0.75
        print(
            f"- {name}: severity log loss {by_name.loc[name, 'severity log loss']:.3f} = "
            f"{ratio:.3f} of the prior's {prior_ll_cv:.3f} (target < {bound}): "
            f"{'met' if ratio < bound else 'NOT met'}"
        )
    if recipe_row is not None:
        ba, ece = recipe_row["severity balanced accuracy"], recipe_row["severity ECE"]
        print(
            f"- recommended: severity balanced accuracy {ba:.3f} (target >= 0.70: "
            f"{'met' if ba >= 0.70 else 'NOT met'}), ECE {ece:.3f} (target <= 0.05: "
            f"{'met' if ece <= 0.05 else 'NOT met'}); Pfirrmann exact "
            f"{recipe_row['Pfirrmann exact']:.3f}, within one "
            f"{recipe_row['Pfirrmann within one']:.3f} (SpineNet, 2017: about 0.70 exact)"
        )
    if vgg_rows is not None:
        part_prior = vgg_rows[-1]["severity log loss"]
        for row in vgg_rows[:2]:
            ratio = row["severity log loss"] / part_prior
            print(
                f"- {row['model']} (folds 1-{args.vgg16_folds}): severity log loss "
                f"{row['severity log loss']:.3f} = {ratio:.3f} of the prior's {part_prior:.3f} "
                f"(target < 1): {'met' if ratio < 1 else 'NOT met'}"
            )
    vgg = facts.get("vgg16")
    if vgg:
        print(
            f"- VGG-16 at {vgg['size']} px, {vgg['epochs']} epochs: {vgg['fit seconds']} s of "
            f"fitting, {vgg['training samples per second']} training samples per second"
        )
    print(
        f"\n{elapsed:.0f} s in all ({prepared:.0f} s to build and read the crops), "
        f"{cpu:.0f} s of CPU time (all processes and threads), {args.jobs} fold(s) at a time "
        f"with {args.threads} torch thread(s) each, on {os.cpu_count()} CPU cores"
    )
    if args.figure and recipe_row is not None:
        import matplotlib

        matplotlib.use("Agg")
        from spinecls.plotting import plot_confusion_matrices

        plot_confusion_matrices(reports["recommended"], path=args.figure)
        _say(f"confusion matrices of the recommended recipe: {args.figure}")
    if args.results:
        payload = {
            "args": vars(args),
            "seconds": round(elapsed, 1),
            "cpu_seconds": round(cpu, 1),
            "facts": facts,
            "table": table.to_dict(orient="records"),
            "spider_split": None if spider is None else spider.to_dict(orient="records"),
            "vgg16_part": None
            if vgg_rows is None
            else pd.DataFrame(vgg_rows).drop(columns="_report").to_dict(orient="records"),
        }
        Path(args.results).write_text(json.dumps(payload, indent=2, default=str))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
