"""The synthetic generator's speed, and the quirks of ``variation="clinical"`` (docs/synthetic.md).

Run: ``python benchmarks/bench_synthetic.py [--studies 8] [--draws 2000] [--figure PATH]``.
Prints the CPU seconds per study that ``make_synthetic_rsna`` takes with each variation at
the default image size, and the shares of the clinical quirks over ``--draws`` studies;
``--figure`` writes the picture of docs/synthetic.md (noise-free renders of the Sagittal
T2/STIR or T1 slice through L5/S1). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import spinecls
from spinecls.datasets import _acquisition, _phantom, synthetic_quirks
from spinecls.datasets._scanner import centred_planes
from spinecls.labels import CONDITIONS

SPINAL = CONDITIONS[0]


def speed(n_studies: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for variation in ("plain", "clinical"):
            start = time.process_time()
            spinecls.make_synthetic_rsna(
                Path(tmp) / variation, n_studies=n_studies, random_state=1, variation=variation
            )
            seconds = (time.process_time() - start) / n_studies
            print(f"{variation:>8}: {seconds:.2f} s CPU per study (default image_size)")


def rates(draws: int) -> None:
    q = synthetic_quirks(draws, random_state=0)
    remnants = q["sacral_discs"] - (q["transitional"] == "lumbarised S1")
    print(f"\nclinical quirks over {draws} drawn studies:")
    shares = {
        "faint L5/S1": q["faint_l5s1"].mean(),
        "oblique L5/S1": q["oblique_l5s1"].mean(),
        "faint or oblique L5/S1": (q["faint_l5s1"] | q["oblique_l5s1"]).mean(),
        "sacralised L5": (q["transitional"] == "sacralised L5").mean(),
        "lumbarised S1": (q["transitional"] == "lumbarised S1").mean(),
        "a sacral remnant": (remnants > 0).mean(),
        "two sacral remnants": (remnants > 1).mean(),
        "field ending just below L5/S1": q["low_coverage"].mean(),
    }
    for name, share in shares.items():
        print(f"  {name:<32} {100 * share:5.1f} %")
    fov = q["fov_mm"]
    name = "sagittal field of view"
    print(f"  {name:<32} {fov.min():.0f}-{fov.max():.0f} mm, median {fov.median():.0f}")
    for column in ("t1_contrast", "t2_contrast"):
        counts = q[column].value_counts(normalize=True)
        print(f"  {column:<32} " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in counts.items()))


def _tile(design, description: str, contrast: str, title: str) -> np.ndarray:
    """L3 to the sacrum on the slice of a series nearest the L5/S1 canal point, rendered at
    0.7 mm a pixel and cut where the series' field of view ends; the five canal points
    marked."""
    series = next(s for s in design.series if s.description == description)
    l5s1 = design.pose.to_patient(design.spine.canal_point(4))
    plane = min(series.planes, key=lambda p: abs(p.distance(l5s1)))
    up, back = -plane.col_dir, plane.row_dir
    centre = l5s1 + 40.0 * up - 20.0 * back
    centre = centre - plane.distance(centre) * plane.normal
    shape, spacing = (240, 180), 0.7
    (window,) = centred_planes([centre], plane.row_dir, plane.col_dir, shape, (spacing, spacing))
    image = _phantom.render(design.spine, design.pose, window, contrast)
    rows, cols = np.mgrid[: shape[0], : shape[1]] * spacing
    offset = window.origin - plane.origin
    inside_rows = (offset @ plane.col_dir + rows) / plane.spacing[0]
    inside_cols = (offset @ plane.row_dir + cols) / plane.spacing[1]
    inside = (inside_rows >= 0) & (inside_rows < plane.shape[0])
    inside &= (inside_cols >= 0) & (inside_cols < plane.shape[1])
    lo, hi = np.percentile(image[inside], [0.5, 99.5])
    image = np.where(inside, np.clip((image - lo) / (hi - lo), 0, 1), 0.0)
    image = (np.round(image * 31) * (255 / 31)).astype(np.uint8)  # 32 grey levels: a small PNG
    for k in range(5):
        x, y = window.to_pixel(design.pose.to_patient(design.spine.canal_point(k)))
        cv2.circle(image, (round(x), round(y)), 3, 255, -1)
        cv2.circle(image, (round(x), round(y)), 1, 0, -1)
    tile = np.zeros((shape[0] + 16, shape[1]), np.uint8)
    tile[: shape[0]] = image
    fov = plane.shape[0] * plane.spacing[0]
    cv2.putText(
        tile, f"{title}, {fov:.0f} mm", (3, shape[0] + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.36, 255, 1
    )
    return tile


def figure(path: Path) -> None:
    """Plain and clinical studies side by side: one tile per quirk or contrast."""
    q = synthetic_quirks(400, random_state=0)
    wanted = [  # (title, which studies, series, contrast or None for the study's own)
        ("plain", None, "Sagittal T2/STIR", "T2"),
        ("faint L5/S1", q["faint_l5s1"] & (q["transitional"] == "none"), "Sagittal T2/STIR", "T2"),
        ("oblique L5/S1", q["oblique_l5s1"] & ~q["faint_l5s1"], "Sagittal T2/STIR", "T2"),
        ("sacralised L5", q["transitional"] == "sacralised L5", "Sagittal T2/STIR", "T2"),
        ("lumbarised S1", q["transitional"] == "lumbarised S1", "Sagittal T2/STIR", "T2"),
        ("cut below L5/S1", q["low_coverage"], "Sagittal T2/STIR", "T2"),
        ("T1", q["t1_contrast"] == "T1", "Sagittal T1", None),
        ("STIR", q["t2_contrast"] == "STIR", "Sagittal T2/STIR", None),
        ("Dixon water", q["t2_contrast"] == "T2 water", "Sagittal T2/STIR", None),
        ("Dixon fat", q["t2_contrast"] == "T2 fat", "Sagittal T2/STIR", None),
    ]
    seeds = np.random.SeedSequence(0).spawn(401)[1:]
    tiles, used = [], set()
    for title, chosen, description, contrast in wanted:
        if chosen is None:
            design = _acquisition.design(np.random.default_rng(seeds[0]), (256, 256))
        else:
            i = next(i for i in np.flatnonzero(chosen) if i not in used)
            used.add(i)
            design = _acquisition.design(np.random.default_rng(seeds[i]), (256, 256), "clinical")
            if contrast is None:
                series = next(s for s in design.series if s.description == description)
                contrast = series.contrast
        tiles.append(_tile(design, description, contrast, title))
    half = len(tiles) // 2
    cv2.imwrite(str(path), np.vstack([np.hstack(tiles[:half]), np.hstack(tiles[half:])]))
    print(f"\nwrote {path} ({path.stat().st_size / 1000:.0f} kB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=8, help="studies written per variation")
    parser.add_argument("--draws", type=int, default=2000, help="studies whose quirks are drawn")
    parser.add_argument("--figure", type=Path, help="write the docs' picture here")
    args = parser.parse_args()
    speed(args.studies)
    rates(args.draws)
    if args.figure is not None:
        figure(args.figure)


if __name__ == "__main__":
    main()
