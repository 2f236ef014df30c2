"""The competition score from located points against the score from the true ones.

Run: ``python benchmarks/bench_located_score.py --data DIR [--train 30] [--test 48]
[--seed 11] [--variation plain] [--grader PATH] [--localizer PATH]``.

As a user with a test set would: ``--train`` synthetic studies (data seed ``--seed``)
train a grading model and a level localizer through the command line's defaults
(``spinecls train --localizer``, written to ``--grader`` or reused from there), and
``--test`` studies of the next seed, written in the competition's test layout with their
truth beside it, are graded twice by :func:`spinecls.predict_studies`: from the points the
localizer finds (each grade shrunk towards the class prior by the point's confidence, as
``spinecls predict`` does) and from the true coordinates (the model alone, as ``spinecls
predict`` does on a directory with coordinates). The gap is what locating costs; the
target is at most 0.03.

To find where the gap comes from, the located points are also graded with a part of the
truth put back (only where the truth labels the point's series, condition and level):

- ``located, model alone``: no shrinkage (weight 1);
- ``located, true slices``: the located (x, y) on the true instance;
- ``true (x, y), located slices``: the true (x, y) on the located instance;
- ``true points, located confidence``: the true points, shrunk by the located
  confidence (what the shrinkage costs where the points are right).

Each prints the score and the log loss of each condition group, and the rows whose loss
rose by more than 0.5 from the true points'. ``--localizer`` grades with another saved
localizer (e.g. one ``bench_localize.py --model`` wrote) instead of the one the model file
carries. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import spinecls
from spinecls.inference import PriorFallbackWarning, predict_studies
from spinecls.labels import CONDITIONS, SCORE_EPSILON, SCORE_GROUPS, TARGETS
from spinecls.metrics import rsna_score
from spinecls.persistence import load_localizer, load_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _saved import check_record, model_record, synthetic_pair, write_record  # noqa: E402

KEYS = ["study_id", "series_id", "condition", "level"]
GAP_TARGET = 0.03


class FixedPoints:
    """A stand-in localizer whose ``predict`` returns given points (the series of X's)."""

    def __init__(self, points: pd.DataFrame):
        self.points = points

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        keep = self.points["series_id"].isin(X["series_id"])
        return self.points[keep].reset_index(drop=True)


def train_cli(train: Path, out: Path, threads: int) -> float:
    """``spinecls train --data train --out out --localizer`` (defaults): CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "spinecls", "train", "--data", str(train), "--out", str(out)]
    subprocess.run([*command, "--localizer"], check=True, env=env, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def true_points(truth: pd.DataFrame, test: Path) -> pd.DataFrame:
    """The truth as a localizer's frame: image paths in the test layout, confidence 1."""
    paths = [
        str(test / "test_images" / str(r.study_id) / str(r.series_id) / f"{r.instance_number}.dcm")
        for r in truth.itertuples()
    ]
    return truth.drop(columns=["severity"]).assign(
        image_path=paths, confidence=1.0, qc_outside_image=False
    )


def swapped(located: pd.DataFrame, truth: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``located`` with ``columns`` taken from the truth where it labels the same point."""
    merged = located.merge(truth[[*KEYS, *columns]], on=KEYS, how="left", suffixes=("", "_true"))
    out = located.copy()
    for column in columns:
        true = merged[f"{column}_true"]
        out[column] = true.where(true.notna(), merged[column]).astype(located[column].dtype)
    if "instance_number" in columns:
        out["image_path"] = [
            str(Path(p).with_name(f"{n}.dcm"))
            for p, n in zip(out["image_path"], out["instance_number"])
        ]
    return out


def group_losses(solution: pd.DataFrame, submission: pd.DataFrame) -> tuple[dict, pd.Series]:
    """Each group's weighted log loss, and every row's loss (indexed by row id)."""
    merged = solution.merge(submission, on="row_id", suffixes=("", "_pred"))
    p = merged[[f"{t}_pred" for t in TARGETS]].to_numpy(float)
    p = np.clip(p / p.sum(1, keepdims=True), SCORE_EPSILON, 1 - SCORE_EPSILON)
    loss = -(merged[TARGETS].to_numpy(float) * np.log(p)).sum(1)
    group = merged["row_id"].str.extract(r"_(spinal|foraminal|subarticular)_", expand=False)
    weight = merged["sample_weight"].to_numpy(float)
    out = {}
    for name in SCORE_GROUPS:
        rows = (group == name).to_numpy()
        out[name] = float(np.average(loss[rows], weights=weight[rows]))
    return out, pd.Series(loss, index=merged["row_id"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="folder to write or reuse the datasets in")
    parser.add_argument("--train", type=int, default=30, help="training studies")
    parser.add_argument("--test", type=int, default=48, help="held-out studies")
    parser.add_argument(
        "--seed", type=int, default=11, help="data seed of the training studies (test: seed + 1)"
    )
    parser.add_argument("--variation", choices=["plain", "clinical"], default="plain")
    parser.add_argument(
        "--grader",
        type=Path,
        help="model file: reused if it exists, else trained there through `spinecls train "
        "--localizer` with its defaults",
    )
    parser.add_argument(
        "--localizer", type=Path, help="a saved localizer to use instead of the model file's"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        train, test, truth_dir = synthetic_pair(
            folder, args.train, args.test, args.seed, args.variation
        )
        grader = args.grader or folder / "grader.pt"
        # the model's record: the training studies it was trained on
        made = {"train": args.train, "data seed": args.seed, "variation": args.variation}
        check_record(model_record(grader), made, "model", grader)
        if grader.exists():
            print(f"model: {grader} (loaded)")
        else:
            start = time.perf_counter()
            cpu = train_cli(train, grader, args.threads)
            write_record(model_record(grader), made)
            print(
                f"model: `spinecls train --localizer` on {args.train} studies: "
                f"{time.perf_counter() - start:.0f} s, {cpu:.0f} CPU-seconds"
            )
        pipeline = load_pipeline(grader, data_dir=test)
        localizer = load_localizer(args.localizer or grader)
        truth = spinecls.load_rsna(truth_dir)
        solution = spinecls.metrics.solution_from_frame(truth)

        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PriorFallbackWarning)
            located_sub, located = predict_studies(test, pipeline, localizer, return_points=True)
            per_study = (time.perf_counter() - start) / truth["study_id"].nunique()
            true = true_points(truth, test)
            variants = {
                "true points (model alone)": (true, 1.0),
                "located (confidence)": (located, "confidence"),
                "located, model alone": (located, 1.0),
                "located, true slices": (swapped(located, truth, ["instance_number"]), 1.0),
                "true (x, y), located slices": (swapped(located, truth, ["x", "y"]), 1.0),
                "true points, located confidence": (
                    swapped(true, located, ["confidence"]),
                    "confidence",
                ),
            }
            results = {}
            for name, (points, weight) in variants.items():
                if name == "located (confidence)":
                    submission = located_sub
                else:
                    submission = predict_studies(
                        test, pipeline, FixedPoints(points), model_weight=weight
                    )
                results[name] = (
                    rsna_score(solution, submission),
                    *group_losses(solution, submission),
                )

    base_losses = results["true points (model alone)"][2]
    print(
        f"{args.test} held-out studies of seed {args.seed + 1} ({args.variation}), model trained "
        f"on {args.train} of seed {args.seed}; {len(solution)} scored rows; located in "
        f"{per_study:.2f} s per study (graded too; load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"{'':34s} {'score':>7s} {'gap':>7s} "
        + " ".join(f"{g:>12s}" for g in SCORE_GROUPS)
        + f" {'rows +0.5':>9s}"
    )
    base = results["true points (model alone)"][0]
    for name, (score, groups, losses) in results.items():
        worse = int((losses - base_losses.reindex(losses.index) > 0.5).sum())
        print(
            f"{name:34s} {score:7.3f} {score - base:+7.3f} "
            + " ".join(f"{groups[g]:12.3f}" for g in SCORE_GROUPS)
            + f" {worse:9d}"
        )
    gap = results["located (confidence)"][0] - base
    print(f"gap {gap:+.3f} (target <= {GAP_TARGET}): {'met' if gap <= GAP_TARGET else 'NOT met'}")
    found = located.merge(truth, on=KEYS, suffixes=("", "_true"))
    sagittal = found["condition"].isin(CONDITIONS[:3])
    off = found["instance_number"] != found["instance_number_true"]
    print(
        f"located points on the labelled series: {len(found)} of {len(truth)}; on another "
        f"slice: sagittal {off[sagittal].mean():.1%}, axial {off[~sagittal].mean():.1%}"
    )


if __name__ == "__main__":
    main()
