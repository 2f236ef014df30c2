"""Time and size of ``spinecls.report.write_report`` over many studies.

Run: ``python benchmarks/bench_report.py [--studies 100] [--data DIR] [--n-jobs 1 2]``.
Prints figures and the targets they are read against; asserts nothing.

The studies are synthetic, in the test layout, at the generator's default image sizes
(160-256 pixels); ``--data DIR`` reuses a directory written by an earlier run (or by
``spinecls synth DIR --split test``, its truth beside it). The points are the truth's
labelled coordinates with the columns ``spinecls localize`` writes (a confidence per
point, drawn at random, and the review flags, a few raised); ``--points CSV`` takes a real
``spinecls localize`` output instead (a localizer also places points on every axial
series that covers a level, so its reports are somewhat larger). The submission's
probabilities are drawn at random; the crops are cut by the demo's transformer (48-pixel
crops at 32 pixels).

Targets: 100 studies in under 60 s on 2 cores; under 300 kB per study.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import spinecls
from spinecls.inference import submission_row_ids
from spinecls.labels import TARGETS
from spinecls.report import write_report

KEYS = ["study_id", "series_id", "instance_number", "condition", "level", "x", "y"]
FLAGS = ["qc_outside_coverage", "qc_outside_image", "qc_order", "qc_level_shift"]


def located(truth: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The truth's points in the columns ``spinecls localize`` writes."""
    rng = np.random.default_rng(seed)
    points = truth[KEYS].copy()
    points["confidence"] = rng.beta(6, 1.5, len(points)).round(4)
    points["level_confidence"] = rng.beta(8, 1, len(points)).round(4)
    for flag in FLAGS:
        points[flag] = rng.random(len(points)) < 0.01
    return points


def graded(studies, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = submission_row_ids(studies)
    submission = pd.DataFrame(rng.dirichlet([6, 2, 1], len(rows)), columns=TARGETS)
    submission.insert(0, "row_id", rows)
    return submission


def sizes(report: Path) -> tuple[np.ndarray, float]:
    """Bytes per study (its page and its images) and the index's bytes."""
    per_study = []
    for page in sorted((report / "studies").glob("*.html")):
        folder = page.with_suffix("")
        files = [page, *folder.iterdir()] if folder.is_dir() else [page]
        per_study.append(sum(f.stat().st_size for f in files))
    return np.array(per_study), (report / "index.html").stat().st_size


def parts(report: Path) -> str:
    """What a study's bytes are made of: its HTML, its slices (with their grey steps), its
    crops."""
    from PIL import Image

    from spinecls.report._images import CONFIDENCE_BINS

    pages = sorted((report / "studies").glob("*.html"))
    slices = sorted(f for f in (report / "studies").glob("*/*.png") if f.name.startswith("s"))
    crops = sorted((report / "studies").glob("*/crop_*.png"))
    kb = np.array([f.stat().st_size for f in slices]) / 1e3
    levels = []
    for f in slices:
        with Image.open(f) as png:
            levels.append(len(png.getpalette()) // 3 - 2 - len(CONFIDENCE_BINS))
    n = len(pages)
    return (
        f"per study: HTML {sum(f.stat().st_size for f in pages) / n / 1e3:.0f} kB; "
        f"{len(slices) / n:.1f} slices, {kb.sum() / n:.0f} kB ({kb.min():.0f} to {kb.max():.0f}"
        f" kB each, mean {kb.mean():.1f}), in {min(levels)} to {max(levels)} grey steps "
        f"(median {np.median(levels):.0f}); {len(crops) / n:.1f} crops, "
        f"{sum(f.stat().st_size for f in crops) / n / 1e3:.0f} kB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--data", type=Path, help="a test-layout directory (default: generated)")
    parser.add_argument("--points", type=Path, help="a spinecls localize CSV for --data")
    parser.add_argument("--n-jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_report_"))
    try:
        data = args.data
        if data is None:
            data = work / "data"
            started = time.perf_counter()
            spinecls.make_synthetic_rsna(
                data, n_studies=args.studies, random_state=args.seed, split="test", n_jobs=2
            )
            print(f"generated {args.studies} studies in {time.perf_counter() - started:.0f} s")
        if args.points is not None:
            points = pd.read_csv(args.points)
        else:
            points = located(spinecls.load_rsna(data.with_name(f"{data.name}_truth")), args.seed)
        studies = sorted(points["study_id"].unique())
        submission = graded(studies, args.seed)
        model = spinecls.LumbarPatchTransformer(patch_size=48, output_size=32)
        print(
            f"{len(studies)} studies, {len(points)} points, "
            f"{points.groupby(['study_id', 'series_id', 'instance_number']).ngroups} slices "
            f"with points; {os.cpu_count()} CPUs, load average "
            f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}"
        )
        for n_jobs in args.n_jobs:
            out = work / f"report_{n_jobs}"
            started = time.perf_counter()
            cpu = time.process_time()
            write_report(data, points, submission, out, model=model, n_jobs=n_jobs)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            per_study, index = sizes(out)
            described = parts(out)
            print(
                f"n_jobs={n_jobs}: {wall:.1f} s for {len(studies)} studies "
                f"({wall / len(studies):.2f} s per study; {cpu:.1f} s of CPU in this process; "
                f"target: 100 studies in < 60 s on 2 cores)"
            )
        print(
            f"size per study: mean {per_study.mean() / 1e3:.0f} kB, median "
            f"{np.median(per_study) / 1e3:.0f} kB, max {per_study.max() / 1e3:.0f} kB, "
            f"{(per_study > 300e3).sum()} of {len(per_study)} studies over 300 kB (target: "
            f"< 300 kB); index {index / 1e3:.0f} kB; all {(per_study.sum() + index) / 1e6:.1f} MB"
        )
        print(described)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
