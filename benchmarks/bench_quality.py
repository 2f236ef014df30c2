"""What each quality tool buys on held-out synthetic studies: calibration, loss, TTA, ensembles.

Run: ``python benchmarks/bench_quality.py [--studies 80] [--epochs 8] [--seeds 0 1 2]``.
For each seed, a synthetic set the size of the default demo
(``make_synthetic_rsna(n_studies=80, random_state=seed)``) is split as the demo splits it
(:func:`spinecls.model_selection.split_by_study`: 15 % of the studies for test, then
``valid_size=0.15 / 0.85`` of the rest, by study, for validation).

First the study's three models exactly as the demo trains them (``spinecls.demo.MODELS``,
the default demo's sizes and epochs), each as trained, then calibrated on its validation
studies twice, as the demo does (``spinecls.demo.CALIBRATIONS``): ``calibrated`` (the log
loss, every row alike: calibrated probabilities) and ``calibrated for the score`` (the
severity rows weighted 1 / 2 / 4 by their true class, the competition's weighted log loss;
what ``calibration="temperature"`` fits for a model trained with ``severity_weights="rsna"``).
``--no-study`` skips them.

Then the ladder. Its base is the demo's model 1: the simple CNN on 48 px crops resized to
32 px, ``augment="light"``, batch size 16, ``--epochs`` epochs with early stopping. Each
row adds one tool to the row above it:

- ``+ temperature``: ``calibration="temperature"`` (fitted on the validation split);
- ``+ severity_weights=rsna``: the competition's 1 / 2 / 4 in the severity loss;
- ``+ tta=flip``: the crop and its mirror averaged;
- ``+ 48 mm, 2.5D``: ``patch_size_mm=48`` (about 48 px at the phantom's spacing of about
  1 mm a pixel) and ``slices=3``.

Then, from the ladder row with the best mean score (without its temperature when the
uncalibrated score is better), ``per group``
(:class:`~spinecls.routing.ConditionGroupClassifier`: one such pipeline per condition group)
and, from the better of the two, ``ensemble of 2 seeds``
(:class:`~spinecls.ensemble.DualHeadEnsemble` of that recipe trained with two seeds). The last
line names the recommended recipe: the best mean score among the rows whose mean fit time
is within ``--budget`` seconds.

Calibration and TTA change no trained weight (TTA is not used on the validation loss that
early stopping reads), so those two rows reuse the weights of the row above, with the
temperatures fitted again on the validation split exactly as ``fit`` would fit them; their fit
time is the reused fit's plus that step's. Each row reports, on the test studies, the
competition score (``score``, lower is better; ``score T=1`` is the same model without its
temperatures), and the severity head's log loss, expected calibration error and balanced
accuracy, as the mean and the spread (max - min) over the seeds; and the mean time of ``fit``
(decoded slices cached beforehand) and of ``predict_proba`` on the test rows. Last, the
targets of issue 12, each with its measured figure. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

import spinecls
from spinecls import DualHeadClassifier, LumbarPatchTransformer
from spinecls.calibration import calibrate_heads
from spinecls.demo import _run as spinecls_demo
from spinecls.ensemble import DualHeadEnsemble
from spinecls.labels import CONDITIONS, SEVERITIES
from spinecls.metrics import dual_head_report, rsna_score, solution_from_frame, to_submission
from spinecls.model_selection import split_by_study
from spinecls.routing import CONDITION_GROUPS, ConditionGroupClassifier

VALID_SIZE = 0.15 / 0.85  # the demo's 70 / 15 / 15
PATCH_MM = 48.0
LADDER = [
    ("base (demo model 1)", {}),
    ("+ temperature", {"clf__calibration": "temperature"}),
    ("+ severity_weights=rsna", {"clf__severity_weights": "rsna"}),
    ("+ tta=flip", {"clf__tta": "flip"}),
    ("+ 48 mm, 2.5D", {"patches__patch_size_mm": PATCH_MM, "patches__slices": 3}),
]
REUSED = {"+ temperature": "base (demo model 1)", "+ tta=flip": "+ severity_weights=rsna"}
"""Rows that change no trained weight: the row whose weights they reuse."""

COLUMNS = ["score", "score T=1", "severity log loss", "severity ECE", "severity bal. acc."]


def pipeline(params: dict, epochs: int, seed: int, cache: str) -> Pipeline:
    """The demo's model 1 (``spinecls.demo._run._pipeline``) with ``params`` set."""
    pipe = Pipeline(
        [
            ("patches", LumbarPatchTransformer(patch_size=48, output_size=32, memory=cache)),
            (
                "clf",
                DualHeadClassifier(
                    backbone="simple",
                    lr=1e-3,
                    max_epochs=epochs,
                    batch_size=16,
                    augment="light",
                    valid_size=VALID_SIZE,
                    early_stopping=5,
                    lr_patience=2,
                    lr_factor=0.75,
                    random_state=seed,
                ),
            ),
        ]
    )
    return pipe.set_params(**params)


def classifiers(model):
    """Every DualHeadClassifier inside a fitted pipeline or meta-estimator."""
    if isinstance(model, DualHeadClassifier):
        yield model
    elif isinstance(model, FrozenEstimator):
        yield from classifiers(model.estimator)
    elif isinstance(model, Pipeline):
        yield from classifiers(model[-1])
    else:
        for member in model.estimators_:
            yield from classifiers(member)


def without_temperature(model):
    """A copy of a fitted model with its classifiers' temperatures removed."""
    model = copy.deepcopy(model)
    for member in classifiers(model):
        member.set_params(calibration=None).temperatures_ = None
    return model


def prior_proba(develop: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Each test row's severity frequencies among the training rows of its condition."""
    prior = (
        develop.groupby("condition")["severity"]
        .value_counts(normalize=True)
        .unstack(fill_value=0.0)
        .reindex(index=list(CONDITIONS), columns=list(SEVERITIES), fill_value=0.0)
    )
    return prior.loc[test["condition"]].to_numpy()


def measure(model, test: pd.DataFrame) -> dict:
    """Score, severity log loss, ECE and balanced accuracy on the test rows; predict time."""
    solution = solution_from_frame(test)
    started = time.perf_counter()
    proba = model.predict_proba(test)
    predict_s = time.perf_counter() - started
    classes = model.classes_
    predicted = np.column_stack([c[p.argmax(axis=1)] for c, p in zip(classes, proba)])
    report = dual_head_report(
        test[["condition", "severity"]], predicted, proba=proba, classes=classes
    )
    score = rsna_score(solution, to_submission(test, proba[1], classes=classes[1]))
    members = list(classifiers(model))
    saved = [m.temperatures_ for m in members]
    for member in members:
        member.temperatures_ = None
    uncalibrated = model.predict_proba(test)[1]
    for member, temperatures in zip(members, saved):
        member.temperatures_ = temperatures
    severity = report.summary.loc["severity"]
    temperatures = [t[1] for t in saved if t is not None]
    return {
        "calibrated": bool(temperatures),
        "T severity": ", ".join(f"{t:.2f}" for t in temperatures) or "-",
        "score": score,
        "score T=1": rsna_score(solution, to_submission(test, uncalibrated, classes=classes[1])),
        "severity log loss": severity["log_loss"],
        "severity ECE": severity["ece"],
        "severity bal. acc.": severity["balanced_accuracy"],
        "predict s": predict_s,
    }


def fit(model, develop: pd.DataFrame) -> tuple[object, float]:
    started = time.perf_counter()
    model.fit(
        develop, develop[["condition", "severity"]], clf__groups=develop["study_id"].to_numpy()
    )
    return model, time.perf_counter() - started


def recalibrate(
    fitted: Pipeline, params: dict, develop: pd.DataFrame, severity_weights="own"
) -> tuple[Pipeline, float]:
    """``fitted`` with ``params`` set and its temperatures fitted on its validation rows.

    ``severity_weights="own"``: as ``fit`` fits them (the classifier's own weights).
    """
    started = time.perf_counter()
    model = copy.deepcopy(fitted).set_params(**params)
    if severity_weights == "own":
        severity_weights = model[-1].severity_weights
    valid = develop.iloc[model[-1].valid_index_]
    calibrate_heads(
        model, valid, valid[["condition", "severity"]], severity_weights=severity_weights
    )
    return model, time.perf_counter() - started


def study_model(name: str, seed: int, cache: str) -> Pipeline:
    """The demo's pipeline of one of the study's models, quiet."""
    config = spinecls_demo.FULL
    k = list(spinecls_demo.MODELS).index(name)
    pipe = spinecls_demo._pipeline(
        spinecls_demo.MODELS[name], config, config.epochs[k], seed, cache, None
    )
    return pipe.set_params(patches__verbose=0, clf__verbose=0)


def summarize(results: list[dict], names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(results)
    grouped = frame.groupby("recipe", sort=False)
    mean, spread = grouped[COLUMNS].mean(), grouped[COLUMNS].max() - grouped[COLUMNS].min()
    table = pd.DataFrame(index=names)
    for column in COLUMNS:
        table[column] = [f"{mean.loc[n, column]:.3f} ± {spread.loc[n, column]:.3f}" for n in names]
    times = grouped[["fit s", "predict s"]].mean()
    table["fit s"] = times["fit s"].reindex(names).round(0)
    table["predict s"] = times["predict s"].reindex(names).round(1)
    table["_score"] = mean["score"].reindex(names)
    table["_score T=1"] = mean["score T=1"].reindex(names)
    table["_fit"] = times["fit s"].reindex(names)
    return table


def markdown(table: pd.DataFrame) -> str:
    columns = [c for c in table.columns if not c.startswith("_")]
    lines = ["| recipe | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in table.iterrows():
        cells = ["-" if pd.isna(row[c]) else str(row[c]) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=spinecls_demo.FULL.studies)
    parser.add_argument("--epochs", type=int, default=spinecls_demo.FULL.epochs[0])
    parser.add_argument("--no-study", action="store_true", help="skip the study's three models")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--budget", type=float, default=120.0, help="fit seconds the recommended row may take"
    )
    parser.add_argument(
        "--results", help="CSV of every measured row so far, rewritten after each (a new file)"
    )
    args = parser.parse_args()
    if args.results and os.path.exists(args.results):
        parser.error(f"--results {args.results} exists: name a new file")
    load = os.getloadavg()[0]
    print(
        f"# bench_quality: {args.studies} synthetic studies, {args.epochs} epochs, seeds "
        f"{args.seeds}, {os.cpu_count()} CPUs, load average {load:.1f} at the start"
        + (
            ""
            if args.epochs == spinecls_demo.FULL.epochs[0]
            else f" (the demo trains {spinecls_demo.FULL.epochs[0]})"
        )
        + "\n",
        flush=True,
    )
    results, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        data = {}
        for seed in args.seeds:
            root = spinecls.make_synthetic_rsna(
                f"{tmp}/rsna{seed}", n_studies=args.studies, random_state=seed, n_jobs=-1
            )
            frame = spinecls.load_rsna(root)
            develop_idx, test_idx = split_by_study(frame, random_state=seed)
            develop, test = frame.iloc[develop_idx], frame.iloc[test_idx]
            cache = f"{tmp}/cache{seed}"
            started = time.perf_counter()
            for params in ({}, LADDER[-1][1]):  # decode every slice once, before any timing
                pipeline(params, 1, seed, cache)[0].transform(frame)
            notes.append(
                f"seed {seed}: {len(develop)} development rows "
                f"({develop['study_id'].nunique()} studies), {len(test)} test rows "
                f"({test['study_id'].nunique()} studies); slices decoded in "
                f"{time.perf_counter() - started:.0f} s"
            )
            solution = solution_from_frame(test)
            prior = to_submission(test, prior_proba(develop, test))
            results.append(
                {"recipe": "class prior", "seed": seed, "score": rsna_score(solution, prior)}
            )
            data[seed] = develop, test, cache
            print(notes[-1], flush=True)

        def record(name, seed, model, seconds, extra=float("nan")):
            row = {"recipe": name, "seed": seed, "fit s": seconds, "calibrate s": extra}
            row |= measure(model, data[seed][1])
            results.append(row)
            if args.results:  # a long run's rows survive a crash or an interrupt
                pd.DataFrame(results).to_csv(f"{args.results}.part", index=False)
                os.replace(f"{args.results}.part", args.results)
            print(
                f"{name:>28} seed {seed}: score {row['score']:.4f} (T=1 {row['score T=1']:.4f},"
                f" severity T {row['T severity']}, ECE {row['severity ECE']:.3f}, balanced "
                f"accuracy {row['severity bal. acc.']:.3f})  fit {seconds:6.1f} s",
                flush=True,
            )

        fitted, study_names = {}, []
        with warnings.catch_warnings():
            # The calibration guard's and the groups' warnings are reported in the table
            warnings.simplefilter("ignore", UserWarning)
            for name in [] if args.no_study else spinecls_demo.MODELS:
                study_names.append(name)
                study_names += [f"{name}, {how}" for how in spinecls_demo.CALIBRATIONS]
                for seed in args.seeds:
                    develop, _, cache = data[seed]
                    model, seconds = fit(study_model(name, seed, cache), develop)
                    record(name, seed, model, seconds)
                    for how, weights in spinecls_demo.CALIBRATIONS.items():
                        calibrated, extra = recalibrate(model, {}, develop, weights)
                        record(f"{name}, {how}", seed, calibrated, seconds + extra, extra)
            for seed in args.seeds:
                develop, _, cache = data[seed]
                params, seconds, extras = {}, {}, {}
                for name, step in LADDER:
                    params = params | step
                    if name in REUSED:
                        model, extra = recalibrate(fitted[REUSED[name], seed], params, develop)
                        seconds[name] = seconds[REUSED[name]] + extra
                        extras[name] = extra
                    else:
                        model, seconds[name] = fit(
                            pipeline(params, args.epochs, seed, cache), develop
                        )
                    fitted[name, seed] = model
                    record(name, seed, model, seconds[name], extras.get(name, float("nan")))
            ladder = summarize(results, [name for name, _ in LADDER])
            best = ladder["_score"].idxmin()
            best_params = {}
            for name, step in LADDER:
                best_params |= step
                if name == best:
                    break
            if ladder.loc[best, "_score T=1"] < ladder.loc[best, "_score"]:
                # The temperature cost more than it paid for: the recipe without it
                best_params.pop("clf__calibration", None)
                best = f"{best}, no temperature"
            group_name = f"per group ({best})"
            for seed in args.seeds:
                develop, _, cache = data[seed]
                model = ConditionGroupClassifier(
                    [(g, pipeline(best_params, args.epochs, seed, cache)) for g in CONDITION_GROUPS]
                )
                model, seconds = fit(model, develop)
                fitted[group_name, seed] = model
                record(group_name, seed, model, seconds)
            so_far = summarize(results, [name for name, _ in LADDER] + [group_name])
            base_name = so_far["_score"].idxmin()
            drop_temperature = base_name != group_name and "clf__calibration" not in best_params
            label = best if drop_temperature else base_name
            ensemble_name = f"ensemble of 2 seeds ({label})"
            for seed in args.seeds:
                develop, _, cache = data[seed]
                first = fitted[base_name, seed]
                if drop_temperature:
                    first = without_temperature(first)
                second = clone(first)
                second.set_params(
                    **{k: seed + 100 for k in second.get_params() if k.endswith("random_state")}
                )
                second, seconds = fit(second, develop)
                first_seconds = next(
                    r["fit s"] for r in results if r["recipe"] == base_name and r["seed"] == seed
                )
                model = DualHeadEnsemble(
                    [("a", FrozenEstimator(first)), ("b", FrozenEstimator(second))]
                ).fit(develop, develop[["condition", "severity"]])
                record(ensemble_name, seed, model, first_seconds + seconds)

    names = study_names + [name for name, _ in LADDER] + [group_name, ensemble_name]
    table = summarize(results, names)
    prior = pd.DataFrame(results).query("recipe == 'class prior'")["score"]
    recipes = table.drop(index=study_names)  # the study's models are not candidates
    within = recipes[recipes["_fit"] <= args.budget]
    print()
    for note in notes:
        print(f"- {note}")
    print(
        f"- class prior: score {prior.mean():.3f} ± {prior.max() - prior.min():.3f}\n"
        f"- mean ± spread (max - min) over {len(args.seeds)} seeds; fit and predict: mean "
        f"seconds; load average {os.getloadavg()[0]:.1f} at the end\n"
    )
    print(markdown(table))
    print()
    if within.empty:
        print(f"recommended: no row fits in {args.budget:.0f} s of training")
        return
    recommended = within["_score"].idxmin()
    print(f"recommended (best mean score within {args.budget:.0f} s of fit): {recommended}\n")
    print(targets(pd.DataFrame(results), recommended))


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def targets(results: pd.DataFrame, recommended: str) -> str:
    """Issue 12's targets, each with the figures it is judged by (means over the seeds)."""
    results = results.assign(calibrated=results["calibrated"].astype(float))  # NaN: the prior
    by = results.groupby("recipe", sort=False)
    mean = by.mean(numeric_only=True)
    spread = by.max(numeric_only=True) - by.min(numeric_only=True)
    prior = mean.loc["class prior", "score"]
    # every row with a temperature: calibrated after training or in fit
    calibrated = [n for n in mean.index if mean.loc[n, "calibrated"] > 0]
    lines = ["targets (issue 12):"]
    lines.append(f"- every model's score after calibration below the class prior's ({prior:.3f}):")
    for name in calibrated:
        score = mean.loc[name, "score"]
        lines.append(f"    {name}: {score:.3f} ({'below' if score < prior else 'NOT below'})")
    lines.append("- calibration worsens a score by at most the spread between seeds (T=1's):")
    for name in calibrated:
        worse = mean.loc[name, "score"] - mean.loc[name, "score T=1"]
        limit = spread.loc[name, "score T=1"]
        lines.append(f"    {name}: {worse:+.3f} against {limit:.3f} ({met(worse <= limit)})")
    score, accuracy = mean.loc[recommended, "score"], mean.loc[recommended, "severity bal. acc."]
    lines.append(
        f"- recommended ({recommended}) score at most a quarter of the prior's: {score:.3f} "
        f"against {prior / 4:.3f} ({met(score <= prior / 4)}); severity "
        f"balanced accuracy at least 0.85: {accuracy:.3f} ({met(accuracy >= 0.85)})"
    )
    lines.append("- severity ECE of the calibrated heads at most 0.05:")
    for name in calibrated:
        ece = mean.loc[name, "severity ECE"]
        lines.append(f"    {name}: {ece:.3f} ({met(ece <= 0.05)})")
    ladder_cal = [n for n in calibrated if pd.notna(mean.loc[n, "calibrate s"])]  # timed
    cost = [
        mean.loc[n, "calibrate s"] / (mean.loc[n, "fit s"] - mean.loc[n, "calibrate s"])
        for n in ladder_cal
    ]
    if cost:
        lines.append(
            f"- calibration at most 10 % of fit: {100 * min(cost):.1f} to {100 * max(cost):.1f} %"
        )
    if {"+ tta=flip", "+ severity_weights=rsna"} <= set(mean.index):
        ratio = (
            mean.loc["+ tta=flip", "predict s"] / mean.loc["+ severity_weights=rsna", "predict s"]
        )
        lines.append(f"- flip TTA at most 2.5x of predict time: {ratio:.2f}x (same weights)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
