"""Graded disc crops from a snapshot of github:ejd230001/medvisor (part of SPIDER), as PNG files.

SPIDER (van der Graaf et al., 2024, "Lumbar spine segmentation in MR images: a dataset and a
public benchmark", Scientific Data 11:264; CC BY 4.0) grades every intervertebral disc of 218
patients: ``radiological_gradings.csv`` (Pfirrmann grade 1-5 among others, per patient and
disc). Its discs are numbered from the bottom: IVD label 1 is L5/S1.

The repository holds mid-sagittal slices as PNG files: ``scan_pngs/`` (upside down),
``reoriented_images/`` and ``riley_images/`` (upright or mirrored), and ``good/``: 161 upright
slices with a red box drawn around each disc. :func:`build_crops` keeps the T2 slices of
``good/`` whose number of boxes equals the patient's number of graded discs (one slice per
patient, the TSE series before the SPACE one), finds for each the same slice without boxes
(the copy whose every pixel outside the red lines equals it, flipped if need be), gives the
lowest box the lowest IVD label, and cuts a square around each box. The repository's own
``split_discs/`` crops were numbered from the top, against SPIDER's numbering: not used.

Nothing here is part of spinecls: the benchmark's data preparation. The images belong to
their authors: they are written into a temporary folder, never into the repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

__all__ = ["LEVEL_NAMES", "PFIRRMANN_SEVERITY", "build_crops", "materialise"]

LEVEL_NAMES = ("L5/S1", "L4/L5", "L3/L4", "L2/L3", "L1/L2", "thoracic")
"""The levels, the disc above the sacrum first as SPIDER numbers them (IVD label 1, 2, ...);
the discs above L1/L2 (one to four per slice) share one name: few slices show the higher ones."""

PFIRRMANN_SEVERITY = {1: "normal_mild", 2: "normal_mild", 3: "moderate", 4: "severe", 5: "severe"}
"""Pfirrmann grades 1-5 as the library's three severities."""

_NEEDED = ("good/", "scan_pngs/", "reoriented_images/", "riley_images/")
_TABLES = ("radiological_gradings.csv", "overview.csv")
_CLEAN_SOURCES = ("scan_pngs", "reoriented_images", "riley_images")


def materialise(source: str | Path, folder: Path) -> Path:
    """The snapshot's slices and tables as files: ``source`` itself or a copy in ``folder``.

    Parameters
    ----------
    source : path
        A checked-out folder (with ``good/`` and ``radiological_gradings.csv``), or a git
        directory without work tree (its ``HEAD`` is read with ``git cat-file``).
    folder : Path
        An empty temporary folder for the copy.
    """
    source = Path(source)
    if (source / "good").is_dir() and (source / _TABLES[0]).is_file():
        return source
    git = ["git", f"--git-dir={source}"]
    try:
        listing = subprocess.run(
            [*git, "ls-tree", "-r", "HEAD"], capture_output=True, text=True, check=True
        ).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        raise SystemExit(
            f"--source {source}: neither a checked-out folder with good/ and {_TABLES[0]} nor "
            f"a git directory ({exc})"
        ) from None
    wanted = []
    for line in listing.splitlines():
        meta, path = line.split("\t", 1)
        if path.startswith(_NEEDED) and path.endswith(".png") or path in _TABLES:
            wanted.append((meta.split()[2], path))
    batch = subprocess.run(
        [*git, "cat-file", "--batch"],
        input="".join(f"{sha}\n" for sha, _ in wanted).encode(),
        capture_output=True,
        check=True,
    ).stdout
    position = 0
    for _, path in wanted:
        header_end = batch.index(b"\n", position)
        size = int(batch[position:header_end].split()[2])
        data = batch[header_end + 1 : header_end + 1 + size]
        position = header_end + 1 + size + 1
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    missing = [t for t in _TABLES if not (folder / t).is_file()]
    if missing or not (folder / "good").is_dir():
        raise SystemExit(f"--source {source}: the snapshot has no {missing or 'good/'}")
    return folder


def red_boxes(image: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The mask of pure red pixels and each red box's ``(x, y, width, height)``."""
    blue, green, red = (image[..., k].astype(int) for k in range(3))
    mask = ((red > 200) & (green < 60) & (blue < 60)).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return mask, [cv2.boundingRect(c) for c in contours]


def clean_slice(root: Path, name: str, boxed: np.ndarray, mask: np.ndarray):
    """The slice without boxes: a copy equal to ``boxed`` on every pixel outside the boxes."""
    keep = mask == 0
    for folder in _CLEAN_SOURCES:
        path = root / folder / f"{name}.png"
        if not path.is_file():
            continue
        image = cv2.imread(str(path))
        for candidate in (image[::-1], image):  # scan_pngs/ is upside down
            if candidate.shape != boxed.shape:
                continue
            difference = np.abs(candidate.astype(int) - boxed.astype(int)).max(axis=2)
            if difference[keep].max() <= 2:
                return folder, cv2.cvtColor(candidate, cv2.COLOR_BGR2GRAY)
    return None, None


def _square(image: np.ndarray, box, margin: float) -> np.ndarray:
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + margin)))
    left, top = int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2))
    padded = np.pad(image, side, mode="edge")
    return padded[top + side : top + 2 * side, left + side : left + 2 * side]


def build_crops(root: Path, out: Path, margin: float = 0.5) -> tuple[pd.DataFrame, dict]:
    """Write one PNG per graded disc under ``out`` and return their table.

    Parameters
    ----------
    root : Path
        The materialised snapshot (:func:`materialise`).
    out : Path
        Folder for the crops (temporary).
    margin : float, default=0.5
        The square's side is ``(1 + margin)`` times the box's longer side.

    Returns
    -------
    crops : DataFrame
        One row per crop: ``path, patient, series, level, ivd_label, pfirrmann, severity,
        subset`` (SPIDER's training or validation split, from ``overview.csv``).
    facts : dict
        Slices seen, kept and why others were not.
    """
    gradings = pd.read_csv(root / "radiological_gradings.csv")
    overview = pd.read_csv(root / "overview.csv").set_index("new_file_name")["subset"]
    out.mkdir(parents=True, exist_ok=True)
    rows, facts = [], {"t2 slices": 0, "box count differs": [], "no clean copy": [], "kept": 0}
    seen: set[int] = set()
    files = sorted((root / "good").glob("*.png"), key=lambda p: ("SPACE" in p.name, p.name))
    for path in files:
        match = re.fullmatch(r"original_with_boxes_(\d+)_(t2(?:_SPACE)?)\.png", path.name)
        if match is None:
            continue  # T1 slices: Pfirrmann grades are read on T2
        facts["t2 slices"] += 1
        patient, series = int(match.group(1)), match.group(2)
        name = f"{patient}_{series}"
        if patient in seen:
            continue  # a SPACE slice of a patient whose TSE slice was kept
        boxed = cv2.imread(str(path))
        mask, boxes = red_boxes(boxed)
        graded = gradings[gradings["Patient"] == patient].sort_values("IVD label")
        if len(boxes) != len(graded):
            facts["box count differs"].append(name)
            continue
        source, clean = clean_slice(root, name, boxed, mask)
        if clean is None:
            facts["no clean copy"].append(name)
            continue
        seen.add(patient)
        facts["kept"] += 1
        # the lowest box (largest centre row) is the lowest graded disc
        boxes.sort(key=lambda b: -(b[1] + b[3] / 2))
        for rank, (box, (_, grade)) in enumerate(zip(boxes, graded.iterrows())):
            crop_path = out / f"{name}_disc{rank + 1}.png"
            cv2.imwrite(str(crop_path), _square(clean, box, margin))
            pfirrmann = int(grade["Pfirrman grade"])
            rows.append(
                {
                    "path": str(crop_path),
                    "patient": patient,
                    "series": series,
                    "source": source,
                    "level": LEVEL_NAMES[min(rank, len(LEVEL_NAMES) - 1)],
                    "ivd_label": int(grade["IVD label"]),
                    "pfirrmann": pfirrmann,
                    "severity": PFIRRMANN_SEVERITY[pfirrmann],
                    "subset": overview.get(name, overview.get(f"{patient}_t2", "unknown")),
                }
            )
    return pd.DataFrame(rows), facts
