"""Time ``load_rsna`` on competition-sized metadata (about 49,000 coordinate rows).

Run: ``python benchmarks/bench_load.py [--studies 2000]``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import spinecls
from spinecls.labels import CONDITIONS, LEVELS, WIDE_COLUMNS


def write_metadata(root: Path, n_studies: int, seed: int = 0) -> int:
    """Competition-shaped CSVs: 25 labels and about 24.5 coordinates per study."""
    rng = np.random.default_rng(seed)
    studies = np.unique(rng.integers(10**6, 4 * 10**9, size=2 * n_studies))[:n_studies]
    rng.shuffle(studies)
    raw = np.array(["Normal/Mild", "Moderate", "Severe", ""], dtype=object)
    cells = raw[rng.choice(4, size=(n_studies, 25), p=[0.77, 0.16, 0.062, 0.008])]
    labels = pd.DataFrame(cells, columns=list(WIDE_COLUMNS))
    labels.insert(0, "study_id", studies)
    labels.to_csv(root / "train.csv", index=False)

    series = rng.integers(10**6, 4 * 10**9, size=(n_studies, 3))
    descriptions = pd.DataFrame(
        {
            "study_id": np.repeat(studies, 3),
            "series_id": series.ravel(),
            "series_description": np.tile(
                ["Sagittal T1", "Sagittal T2/STIR", "Axial T2"], n_studies
            ),
        }
    )
    descriptions.to_csv(root / "train_series_descriptions.csv", index=False)

    which = {c: (0, 1, 1, 2, 2)[i] for i, c in enumerate(CONDITIONS)}
    rows = []
    for s, study in enumerate(studies):
        for c in CONDITIONS:
            for level in LEVELS:
                if rng.random() < 0.975:
                    rows.append(
                        (study, series[s, (1, 0, 2)[which[c]]], int(rng.integers(1, 2000)), c,
                         level, rng.uniform(0, 512), rng.uniform(0, 512))
                    )  # fmt: skip
    coords = pd.DataFrame(
        rows, columns=["study_id", "series_id", "instance_number", "condition", "level", "x", "y"]
    )
    coords.to_csv(root / "train_label_coordinates.csv", index=False)
    return len(coords)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n_rows = write_metadata(root, args.studies)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            frame = spinecls.load_rsna(root)
            times.append(time.perf_counter() - start)
    print(f"load_rsna: {args.studies} studies, {n_rows} coordinate rows -> {len(frame)} rows")
    print(f"  best {min(times):.3f} s, median {np.median(times):.3f} s over {args.repeat} runs")


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore", spinecls.RSNADataWarning)
    main()
