"""Synthetic RSNA studies: real DICOM files and CSVs in the competition's exact layout.

The real data cannot be redistributed; :func:`make_synthetic_rsna` writes a complete
stand-in that every part of spinecls reads exactly as it reads the Kaggle download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from .._atomic import atomic_directory
from ..labels import (
    CONDITIONS,
    LEVELS,
    RAW_SEVERITIES,
    SEVERITIES,
    SEVERITY_PRIORS,
    WIDE_COLUMNS,
)
from ._phantom import FORAMEN_X, RECESS_X, Spine, render_axial, render_sagittal
from .rsna import COORDINATE_COLUMNS, COORDINATES_CSV, LABELS_CSV

__all__ = ["make_synthetic_rsna", "SEVERITY_PRIORS"]

# Narrowing of the structure (0 = none, 1 = obliterated) drawn for each severity grade.
_NARROWING = {"normal_mild": (0.0, 0.3), "moderate": (0.38, 0.62), "severe": (0.7, 0.95)}
_RAW = {severity: raw for raw, severity in RAW_SEVERITIES.items()}
_SAGITTAL_IOP = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
_AXIAL_IOP = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


@dataclass
class _Series:
    series_id: int
    description: str
    contrast: str
    shape: tuple[int, int]
    spacing: float
    thickness: float
    origins: list[tuple[float, float, float]]
    instances: list[int]
    slices: list[dict]


def _instance_numbers(rng: np.random.Generator, n: int) -> list[int]:
    # InstanceNumber is an identifier, not a position: it starts anywhere (often far
    # above 1), and may run against the slice order.
    start = int(rng.integers(1001, 3000)) if rng.random() < 0.2 else int(rng.integers(2, 60))
    numbers = start + np.arange(n)
    return (numbers[::-1] if rng.random() < 0.4 else numbers).tolist()


def _to_pixels(rng, image, scale, noise, offset):
    """Intensities to stored uint16: bias field, Rician noise, then the modality offset."""
    rows, cols = image.shape
    gy = np.linspace(-1, 1, rows, dtype=np.float32)[:, None]
    gx = np.linspace(-1, 1, cols, dtype=np.float32)[None, :]
    a, b = rng.uniform(-0.15, 0.15, size=2)
    bias = 1.0 + a * gx + b * gy
    real = image * bias * scale + rng.normal(0, noise, image.shape).astype(np.float32)
    imag = rng.normal(0, noise, image.shape).astype(np.float32)
    magnitude = np.sqrt(real**2 + imag**2)
    return np.clip(np.rint(magnitude) + offset, 0, 65535).astype(np.uint16)


def _write_dicom(path: Path, pixels: np.ndarray, meta: dict) -> None:
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = MRImageStorage
    file_meta.MediaStorageSOPInstanceUID = meta["SOPInstanceUID"]
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = file_meta
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.Manufacturer = "spinecls synthetic phantom"
    ds.BodyPartExamined = "LSPINE"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    for key, value in meta.items():
        setattr(ds, key, value)
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def _study(out: Path, seed: np.random.SeedSequence, study_id: int, size_range) -> dict:
    """Generate and write one study; return its label, coordinate and series records."""
    rng = np.random.default_rng(seed)
    severity = {
        c: rng.choice(len(SEVERITIES), size=len(LEVELS), p=SEVERITY_PRIORS[c]) for c in CONDITIONS
    }
    narrowing = {
        c: np.array([rng.uniform(*_NARROWING[SEVERITIES[s]]) for s in severity[c]])
        for c in CONDITIONS
    }
    spine = Spine.random(rng, narrowing)
    scale = rng.uniform(400.0, 3000.0)
    noise = scale * rng.uniform(0.01, 0.05)
    offset = int(rng.integers(50, 500)) if rng.random() < 0.25 else 0
    uid_root = [str(seed.entropy), str(study_id)]
    study_uid = generate_uid(entropy_srcs=uid_root)

    series: list[_Series] = []
    used_ids: set[int] = set()

    def new_series_id() -> int:
        while True:
            sid = int(rng.integers(10**6, 2**32))
            if sid not in used_ids:
                used_ids.add(sid)
                return sid

    # Sagittal T1 and T2/STIR: parallel slices across the spine, left (+x) to right.
    n_sag = int(rng.integers(13, 18))
    gap = rng.uniform(3.3, 4.3)
    centre = rng.uniform(-2.0, 2.0)
    laterals = centre + (np.arange(n_sag) - (n_sag - 1) / 2) * gap
    n_px = int(rng.integers(size_range[0], size_range[1] + 1))
    spacing = rng.uniform(200.0, 250.0) / n_px
    origin_y = spine.y0 - spine.body_depth / 2 + 15 - n_px / 2 * spacing + rng.uniform(-8, 8)
    origin_z = spine.disc_z.mean() + n_px / 2 * spacing + rng.uniform(-10, 10)
    for description, contrast in (
        ("Sagittal T1", "T1"),
        ("Sagittal T2/STIR", "STIR" if rng.random() < 0.3 else "T2"),
    ):
        series.append(
            _Series(
                series_id=new_series_id(),
                description=description,
                contrast=contrast,
                shape=(n_px, n_px),
                spacing=spacing,
                thickness=gap * 0.9,
                origins=[(float(lat), origin_y, origin_z) for lat in laterals],
                instances=_instance_numbers(rng, n_sag),
                slices=[{"lateral": float(lat)} for lat in laterals],
            )
        )

    # Axial T2: a few slices through each disc; sometimes split into two series.
    per_level = int(rng.integers(3, 5))
    ax_gap = rng.uniform(2.5, 4.0)
    ax_px = int(rng.integers(size_range[0], size_range[1] + 1))
    ax_spacing = rng.uniform(150.0, 200.0) / ax_px
    groups = [range(3), range(3, 5)] if rng.random() < 0.15 else [range(5)]
    for group in groups:
        slices, origins = [], []
        for k in group:
            for j in range(per_level):
                z = spine.disc_z[k] + (j - (per_level - 1) / 2) * ax_gap
                ox = -ax_px / 2 * ax_spacing + rng.uniform(-6, 6)
                oy = float(spine.posterior_wall(z)) - ax_px / 2 * ax_spacing + rng.uniform(-6, 6)
                slices.append({"level": k, "z": float(z), "middle": j == (per_level - 1) // 2})
                origins.append((ox, oy, float(z)))
        series.append(
            _Series(
                series_id=new_series_id(),
                description="Axial T2",
                contrast="T2",
                shape=(ax_px, ax_px),
                spacing=ax_spacing,
                thickness=ax_gap * 0.9,
                origins=origins,
                instances=_instance_numbers(rng, len(slices)),
                slices=slices,
            )
        )

    coords = []

    def click(series_: _Series, index: int, col: float, row: float, condition: str, k: int):
        jitter = rng.normal(0, 0.8 / series_.spacing, size=2)
        coords.append(
            (
                study_id,
                series_.series_id,
                series_.instances[index],
                condition,
                LEVELS[k],
                float(col + jitter[0]),
                float(row + jitter[1]),
            )
        )

    t1, t2 = series[0], series[1]
    mid = int(np.argmin(np.abs(laterals)))
    for k, zc in enumerate(spine.disc_z):
        wall = float(spine.posterior_wall(zc))
        row = (origin_z - zc) / spacing
        click(t2, mid, (wall + spine.canal_depth / 2 - origin_y) / spacing, row, CONDITIONS[0], k)
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        index = int(np.argmin(np.abs(laterals - sign * FORAMEN_X)))
        for k, zc in enumerate(spine.disc_z):
            wall = float(spine.posterior_wall(zc))
            col = (wall + 6.0 - origin_y) / spacing
            click(
                t1,
                index,
                col,
                (origin_z - zc - 3.0) / spacing,
                f"{side} Neural Foraminal Narrowing",
                k,
            )
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        for axial in series[2:]:
            for index, info in enumerate(axial.slices):
                if not info["middle"]:
                    continue
                ox, oy, z = axial.origins[index]
                wall = float(spine.posterior_wall(z))
                col = (sign * RECESS_X - ox) / axial.spacing
                row = (wall + 3.0 - oy) / axial.spacing
                click(axial, index, col, row, f"{side} Subarticular Stenosis", info["level"])

    # Render and write every slice.
    for number, s in enumerate(series, start=1):
        folder = out / "train_images" / str(study_id) / str(s.series_id)
        folder.mkdir(parents=True)
        series_uid = generate_uid(entropy_srcs=[*uid_root, str(s.series_id)])
        iop = _SAGITTAL_IOP if s.description.startswith("Sagittal") else _AXIAL_IOP
        for info, origin, instance in zip(s.slices, s.origins, s.instances):
            if "lateral" in info:
                image = render_sagittal(
                    spine, info["lateral"], s.contrast, s.shape, s.spacing, origin[1], origin[2]
                )
            else:
                image = render_axial(
                    spine, info["level"], info["z"], s.contrast, s.shape, s.spacing, *origin[:2]
                )
            pixels = _to_pixels(rng, image, scale, noise, offset)
            meta = dict(
                PatientID=str(study_id),
                PatientName=f"Synthetic^{study_id}",
                StudyInstanceUID=study_uid,
                SeriesInstanceUID=series_uid,
                SOPInstanceUID=generate_uid(entropy_srcs=[series_uid, str(instance)]),
                StudyID=str(study_id)[-16:],
                SeriesNumber=number,
                SeriesDescription=s.description,
                InstanceNumber=instance,
                ImagePositionPatient=[round(v, 4) for v in origin],
                ImageOrientationPatient=iop,
                PixelSpacing=[round(s.spacing, 6), round(s.spacing, 6)],
                SliceThickness=round(s.thickness, 4),
                WindowCenter=int(scale / 2 + offset),
                WindowWidth=int(scale),
            )
            if offset:
                meta.update(RescaleIntercept=-offset, RescaleSlope=1, RescaleType="US")
            _write_dicom(folder / f"{instance}.dcm", pixels, meta)

    label_row = {"study_id": study_id}
    for column, (condition, level) in WIDE_COLUMNS.items():
        label_row[column] = _RAW[SEVERITIES[severity[condition][LEVELS.index(level)]]]
    descriptions = [(study_id, s.series_id, s.description) for s in series]
    return {"labels": label_row, "coords": coords, "descriptions": descriptions}


def make_synthetic_rsna(
    root: str | os.PathLike,
    n_studies: int = 20,
    random_state: int | None = 0,
    *,
    image_size: tuple[int, int] = (160, 256),
    n_jobs: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic dataset in the RSNA 2024 lumbar spine competition layout.

    Each study has a Sagittal T1, a Sagittal T2/STIR and one or two Axial T2 series of
    real DICOM files (MR Image Storage, 16-bit MONOCHROME2, consistent patient
    geometry, InstanceNumbers that do not start at 1 and may run against the slice
    order), labels for all 25 condition-levels drawn with the real class balance
    (:data:`SEVERITY_PRIORS`), and coordinates where each condition is read: spinal
    canal on the mid-sagittal T2 slice, foramina on left and right parasagittal T1
    slices, subarticular recesses left and right of the canal on axial slices. The
    images come from a digital phantom whose narrowing at the labelled coordinate
    grows with the severity; contrast, noise, intensity scale, field of view and
    resolution vary between studies.

    Parameters
    ----------
    root : str or path-like
        Output directory, new or empty (missing parents are created); not the working
        directory or a parent of it.
    n_studies : int, default=20
        Number of studies.
    random_state : int or None, default=0
        Seed: the same seed writes the same pixels, ids and CSVs.
    image_size : (int, int), default=(160, 256)
        Range of the square image sizes in pixels, drawn per study and plane.
    n_jobs : int or None, default=None
        Studies written in parallel by joblib (``-1``: all cores).
    overwrite : bool, default=False
        Replace a non-empty ``root`` that spinecls wrote (it holds a
        ``.spinecls-output.json`` listing its files); any other directory is refused.

    Returns
    -------
    pathlib.Path
        ``root``, holding ``train.csv``, ``train_label_coordinates.csv``,
        ``train_series_descriptions.csv`` and ``train_images/``.

    Notes
    -----
    The dataset is written to a temporary sibling directory and moved into place at
    the end, so an interrupted or failed run leaves no half-written ``root`` and no
    temporary files.

    Examples
    --------
    >>> import spinecls, tempfile
    >>> root = spinecls.make_synthetic_rsna(tempfile.mkdtemp() + "/rsna", n_studies=2)
    >>> sorted(p.name for p in root.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['.spinecls-output.json', 'train.csv', 'train_images', 'train_label_coordinates.csv',
     'train_series_descriptions.csv']
    """
    if int(n_studies) != n_studies or n_studies < 1:
        raise ValueError(f"n_studies must be a positive integer, got {n_studies!r}")
    lo, hi = image_size
    if not (32 <= lo <= hi):
        raise ValueError(f"image_size must be (min, max) with 32 <= min <= max, got {image_size}")
    root = Path(root)

    seeds = np.random.SeedSequence(random_state).spawn(int(n_studies) + 1)
    id_rng = np.random.default_rng(seeds[0])
    study_ids: list[int] = []
    while len(study_ids) < n_studies:
        candidate = int(id_rng.integers(10**6, 4_300_000_000))
        if candidate not in study_ids:
            study_ids.append(candidate)

    with atomic_directory(
        root, written_by="spinecls.make_synthetic_rsna", overwrite=overwrite
    ) as tmp:
        records = Parallel(n_jobs=n_jobs)(
            delayed(_study)(tmp, seed, sid, (lo, hi)) for seed, sid in zip(seeds[1:], study_ids)
        )
        pd.DataFrame([r["labels"] for r in records]).to_csv(tmp / LABELS_CSV, index=False)
        pd.DataFrame(
            [row for r in records for row in r["coords"]], columns=list(COORDINATE_COLUMNS)
        ).to_csv(tmp / COORDINATES_CSV, index=False)
        pd.DataFrame(
            [row for r in records for row in r["descriptions"]],
            columns=["study_id", "series_id", "series_description"],
        ).to_csv(tmp / "train_series_descriptions.csv", index=False)
    return root
