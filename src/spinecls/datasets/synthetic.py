"""Synthetic RSNA studies: real DICOM files and CSVs in the competition's exact layout.

The real data cannot be redistributed; :func:`make_synthetic_rsna` writes a complete
stand-in that every part of spinecls reads exactly as it reads the Kaggle download.
:func:`synthetic_quirks` tells which of its ``variation="clinical"`` studies have
which quirks of real anatomy and acquisition, without drawing an image.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from pydicom.uid import generate_uid

from .._utils.atomic import atomic_directory
from ..labels import LEVELS, RAW_SEVERITIES, SEVERITIES, SEVERITY_PRIORS, WIDE_COLUMNS
from ._acquisition import design
from ._csv import DESCRIPTION_COLUMNS, DESCRIPTIONS_CSV
from ._destinations import layout_destinations
from ._dicom_files import mr_dataset, save_slice
from ._phantom import render
from ._variation import SEQUENCES, VARIATIONS, Quirks, draw_quirks
from .rsna import COORDINATE_COLUMNS, COORDINATES_CSV, LABELS_CSV

__all__ = ["make_synthetic_rsna", "synthetic_quirks", "SEVERITY_PRIORS"]

_RAW = {severity: raw for raw, severity in RAW_SEVERITIES.items()}
SPLITS = ("train", "test")
SUBMISSION_CSV = "sample_submission.csv"
QUIRKS_CSV = "synthetic_quirks.csv"
"""The clinical studies' quirks, written beside the labels (:func:`synthetic_quirks`)."""


def _to_pixels(rng, image, scale, noise, offset):
    """Intensities to stored uint16: bias field, Rician noise, then the modality offset."""
    rows, cols = image.shape
    gy = np.linspace(-1, 1, rows, dtype=np.float32)[:, None]
    gx = np.linspace(-1, 1, cols, dtype=np.float32)[None, :]
    a, b = rng.uniform(-0.15, 0.15, size=2)
    bias = 1.0 + a * gx + b * gy
    real = image * bias * scale + noise * rng.standard_normal(image.shape, dtype=np.float32)
    imag = noise * rng.standard_normal(image.shape, dtype=np.float32)
    magnitude = np.sqrt(real**2 + imag**2)
    return np.clip(np.rint(magnitude) + offset, 0, 65535).astype(np.uint16)


def _study(
    images: Path, seed: np.random.SeedSequence, study_id: int, size_range, variation: str
) -> dict:
    """Generate and write one study; return its label, coordinate and series records."""
    rng = np.random.default_rng(seed)
    study = design(rng, size_range, variation)
    scale = rng.uniform(400.0, 3000.0)
    noise = scale * rng.uniform(0.01, 0.05)
    offset = int(rng.integers(50, 500)) if rng.random() < 0.25 else 0
    uid_root = [str(seed.entropy), str(study_id)]
    study_uid = generate_uid(entropy_srcs=uid_root)
    for number, s in enumerate(study.series, start=1):
        folder = images / str(study_id) / str(s.series_id)
        folder.mkdir(parents=True)
        series_uid = generate_uid(entropy_srcs=[*uid_root, str(s.series_id)])
        # One header per series; each slice changes only its own attributes.
        ds = mr_dataset(
            dict(
                PatientID=str(study_id),
                PatientName=f"Synthetic^{study_id}",
                StudyInstanceUID=study_uid,
                SeriesInstanceUID=series_uid,
                StudyID=str(study_id)[-16:],
                SeriesNumber=number,
                SeriesDescription=s.description,
                SliceThickness=round(s.thickness, 4),
                SpacingBetweenSlices=round(s.gap, 4),
                WindowCenter=int(scale / 2 + offset),
                WindowWidth=int(scale),
            )
        )
        if offset:
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -offset, 1, "US"
        if study.quirks is not None:
            for key, value in SEQUENCES[s.contrast].items():
                setattr(ds, key, value)
        for plane, instance in zip(s.planes, s.instances):
            image = render(study.spine, study.pose, plane, s.contrast)
            ds.SOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(instance)])
            ds.InstanceNumber = instance
            ds.ImagePositionPatient = [round(float(v), 4) for v in plane.origin]
            ds.ImageOrientationPatient = [
                round(float(v), 6) for v in (*plane.row_dir, *plane.col_dir)
            ]
            ds.PixelSpacing = [round(float(v), 6) for v in plane.spacing]
            save_slice(ds, folder / f"{instance}.dcm", _to_pixels(rng, image, scale, noise, offset))

    coords = [
        (
            study_id,
            study.series[p.series].series_id,
            study.series[p.series].instances[p.slice],
            p.condition,
            LEVELS[p.level],
            p.col,
            p.row,
        )
        for p in study.points
    ]
    label_row = {"study_id": study_id}
    for column, (condition, level) in WIDE_COLUMNS.items():
        label_row[column] = _RAW[SEVERITIES[study.severity[condition][LEVELS.index(level)]]]
    descriptions = [(study_id, s.series_id, s.description) for s in study.series]
    quirks = None if study.quirks is None else {"study_id": study_id, **study.quirks.as_dict()}
    return {"labels": label_row, "coords": coords, "descriptions": descriptions, "quirks": quirks}


def _write_truth(folder: Path, records: list[dict]) -> None:
    """The labels, coordinates and series in the training files' format (and the
    clinical studies' quirks)."""
    pd.DataFrame([r["labels"] for r in records]).to_csv(folder / LABELS_CSV, index=False)
    pd.DataFrame(
        [row for r in records for row in r["coords"]], columns=list(COORDINATE_COLUMNS)
    ).to_csv(folder / COORDINATES_CSV, index=False)
    _write_descriptions(folder / DESCRIPTIONS_CSV.format(split="train"), records)
    if records[0]["quirks"] is not None:
        pd.DataFrame([r["quirks"] for r in records]).to_csv(folder / QUIRKS_CSV, index=False)


def _write_descriptions(path: Path, records: list[dict]) -> None:
    pd.DataFrame(
        [row for r in records for row in r["descriptions"]], columns=list(DESCRIPTION_COLUMNS)
    ).to_csv(path, index=False)


def make_synthetic_rsna(
    root: str | os.PathLike,
    n_studies: int = 20,
    random_state: int | None = 0,
    *,
    image_size: tuple[int, int] = (160, 256),
    n_jobs: int | None = None,
    overwrite: bool = False,
    split: str = "train",
    truth_dir: str | os.PathLike | None = None,
    variation: str = "plain",
) -> Path:
    """Write a synthetic dataset in the RSNA 2024 lumbar spine competition layout.

    Each study has real DICOM series (MR Image Storage, 16-bit MONOCHROME2, full
    patient geometry: ImagePositionPatient, ImageOrientationPatient, PixelSpacing,
    SliceThickness, SpacingBetweenSlices; InstanceNumbers that do not start at 1 and
    may run against the slice order): a Sagittal T1 and a Sagittal T2/STIR of 15-20
    slices, and one to four Axial T2 series, each a contiguous stack or per-level
    blocks of slices angled along the discs. Labels for all 25 condition-levels are
    drawn with the real class balance (:data:`SEVERITY_PRIORS`), and coordinates where
    a reader would click: the spinal canal on the Sagittal T2/STIR slice through its
    centre at each level, the foramina on the Sagittal T1 slices through them, the
    subarticular recesses on the axial slice through each disc. The patient lies
    off-centre and slightly rotated; spine sizes and curvature, field of view,
    resolution, slice counts and spacings, contrast, noise and intensity scale vary
    between studies, and the series present (a missing sagittal series, axial series
    that miss a level) follow the real data's rates. The images come from a digital
    phantom whose narrowing at the labelled coordinate grows with the severity. See
    the "Synthetic studies" page of the documentation for the details and rates.

    Parameters
    ----------
    root : str or path-like
        Output directory, new or empty (missing parents are created); not the working
        directory or a parent of it.
    n_studies : int, default=20
        Number of studies.
    random_state : int or None, default=0
        Seed: the same seed writes the same pixels, ids and CSVs, in either split.
    image_size : (int, int), default=(160, 256)
        Range of the image rows and columns in pixels, drawn per series.
    n_jobs : int or None, default=None
        Studies written in parallel by joblib (``-1``: all cores).
    overwrite : bool, default=False
        Replace a non-empty ``root`` (and ``truth_dir``) that spinecls wrote (it holds a
        ``.spinecls-output.json`` listing its files); any other directory is refused.
    split : {"train", "test"}, default="train"
        ``"train"``: labels, coordinates and images in ``root``, as the competition's
        training data. ``"test"``: the competition's test layout in ``root``
        (series descriptions, images and ``sample_submission.csv``, no labels or
        coordinates) and the truth in ``truth_dir``.
    truth_dir : str or path-like, optional
        With ``split="test"``: where the labels, coordinates and series descriptions go,
        in the training files' format (``train.csv``, ``train_label_coordinates.csv``,
        ``train_series_descriptions.csv``) so that :func:`spinecls.load_rsna` reads
        them. Default: ``root``'s sibling ``<root name>_truth``. The same rules as for
        ``root`` apply to it.
    variation : {"plain", "clinical"}, default="plain"
        ``"plain"``: the phantom as described above, every disc alike. ``"clinical"``:
        per study, the quirks of real lumbar MRI that make levels hard to name, at the
        rates listed in the documentation's "Synthetic studies" page: a faint (thin, dark)
        and/or obliquely cut L5/S1 in about a third of the studies, rudimentary sacral
        discs below L5/S1, a lumbosacral transitional vertebra (sacralised L5 or
        lumbarised S1) in about 5 %, thoracic discs above, a sacrum that bends and
        tapers, sagittal fields of view of 200-400 mm with the spine off-centre or the
        field ending just below L5/S1, and T1, T2, STIR and Dixon water or fat
        contrasts (the series descriptions stay the competition's three). The labels
        stay on the anatomical L1/L2 to L5/S1. The quirks are written to
        ``synthetic_quirks.csv`` beside ``train.csv`` and returned by
        :func:`synthetic_quirks`. The same ``random_state`` draws other studies in
        each variation.

    Returns
    -------
    pathlib.Path
        ``root``, holding ``train.csv``, ``train_label_coordinates.csv``,
        ``train_series_descriptions.csv`` and ``train_images/`` (``split="train"``), or
        ``test_series_descriptions.csv``, ``test_images/`` and
        ``sample_submission.csv`` (``split="test"``).

    Notes
    -----
    Both destinations are checked before any study is drawn. Each directory is written
    to a temporary sibling and moved into place at the end, the truth before ``root``,
    so an interrupted or failed run leaves no half-written directory, no temporary
    files and no ``root`` without its truth.

    Examples
    --------
    >>> import spinecls, tempfile
    >>> root = spinecls.make_synthetic_rsna(tempfile.mkdtemp() + "/rsna", n_studies=2)
    >>> sorted(p.name for p in root.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['.spinecls-output.json', 'train.csv', 'train_images', 'train_label_coordinates.csv',
     'train_series_descriptions.csv']
    >>> test = spinecls.make_synthetic_rsna(
    ...     tempfile.mkdtemp() + "/rsna", n_studies=2, split="test", image_size=(64, 64)
    ... )
    >>> sorted(p.name for p in test.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['.spinecls-output.json', 'sample_submission.csv', 'test_images',
     'test_series_descriptions.csv']
    >>> len(spinecls.load_rsna(test.with_name("rsna_truth"))) > 0
    True
    """
    if int(n_studies) != n_studies or n_studies < 1:
        raise ValueError(f"n_studies must be a positive integer, got {n_studies!r}")
    lo, hi = image_size
    if not (32 <= lo <= hi):
        raise ValueError(f"image_size must be (min, max) with 32 <= min <= max, got {image_size}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if truth_dir is not None and split != "test":
        raise ValueError("truth_dir is only written with split='test'")
    if variation not in VARIATIONS:
        raise ValueError(f"variation must be one of {list(VARIATIONS)}, got {variation!r}")
    root, truth = layout_destinations(root, truth_dir, split, overwrite)

    study_ids, seeds = _study_seeds(random_state, int(n_studies))
    written_by = "spinecls.make_synthetic_rsna"
    # The truth is moved into place first: a root that looks complete has its truth.
    with (
        atomic_directory(root, written_by=written_by, overwrite=overwrite) as tmp,
        atomic_directory(truth, written_by=written_by, overwrite=overwrite)
        if truth is not None
        else nullcontext() as truth_tmp,
    ):
        images = tmp / f"{split}_images"
        records = Parallel(n_jobs=n_jobs)(
            delayed(_study)(images, seed, sid, (lo, hi), variation)
            for seed, sid in zip(seeds, study_ids)
        )
        if truth_tmp is None:
            _write_truth(tmp, records)
        else:
            _write_truth(truth_tmp, records)
            _write_descriptions(tmp / DESCRIPTIONS_CSV.format(split=split), records)
            rows = [f"{sid}_{column}" for sid in study_ids for column in WIDE_COLUMNS]
            pd.DataFrame({"row_id": rows, **{target: 1 / 3 for target in SEVERITIES}}).to_csv(
                tmp / SUBMISSION_CSV, index=False
            )
    return root


def _study_seeds(random_state, n_studies: int) -> tuple[list[int], list[np.random.SeedSequence]]:
    """The study ids and each study's seed, as :func:`make_synthetic_rsna` draws them."""
    seeds = np.random.SeedSequence(random_state).spawn(n_studies + 1)
    id_rng = np.random.default_rng(seeds[0])
    study_ids: list[int] = []
    while len(study_ids) < n_studies:
        candidate = int(id_rng.integers(10**6, 4_300_000_000))
        if candidate not in study_ids:
            study_ids.append(candidate)
    return study_ids, seeds[1:]


def synthetic_quirks(n_studies: int = 20, random_state: int | None = 0) -> pd.DataFrame:
    """Which quirks each study of ``make_synthetic_rsna(..., variation="clinical")`` has.

    The quirks are the first draws of each study, so they are read back here without
    drawing any geometry or image: the same table as the ``synthetic_quirks.csv`` that
    :func:`make_synthetic_rsna` writes beside ``train.csv`` (in ``truth_dir`` for the
    test layout), for the same ``n_studies`` and ``random_state`` in either split and
    at any ``image_size``. A study of ``n`` is study ``i`` of any ``n_studies > i``
    (a longer run adds studies).

    Parameters
    ----------
    n_studies : int, default=20
        Number of studies.
    random_state : int or None, default=0
        The seed given to :func:`make_synthetic_rsna`; None draws fresh studies.

    Returns
    -------
    pandas.DataFrame
        One row per study, in ``train.csv``'s order: ``study_id``;
        ``transitional`` (``"none"``, ``"sacralised L5"`` or ``"lumbarised S1"``);
        ``faint_l5s1`` and ``oblique_l5s1`` (bool); ``l5s1_signal`` and ``l5s1_height``
        (L5/S1's contrast against bone and height, as fractions of a healthy disc's);
        ``l5s1_tilt`` and ``l5s1_side_tilt`` (its extra tilt, degrees, forwards and
        sideways); ``sacral_discs`` (discs drawn below L5/S1: a lumbarised S1's mobile
        S1/S2, then the rudimentary remnants); ``remnant_signal`` and
        ``remnant_height``; ``fov_mm`` (the sagittal fields of view, within 5 %);
        ``low_coverage`` (the sagittal field ends just below L5/S1); ``t1_contrast``
        (``"T1"`` or ``"T1 water"``) and ``t2_contrast`` (``"T2"``, ``"STIR"``,
        ``"T2 water"`` or ``"T2 fat"``): the contrasts of the Sagittal T1 and the
        Sagittal T2/STIR series.

    Examples
    --------
    >>> from spinecls.datasets import synthetic_quirks
    >>> quirks = synthetic_quirks(200, random_state=0)
    >>> sorted(quirks["transitional"].unique())
    ['lumbarised S1', 'none', 'sacralised L5']
    >>> bool(quirks["fov_mm"].between(200, 400).all())
    True
    """
    if int(n_studies) != n_studies or n_studies < 1:
        raise ValueError(f"n_studies must be a positive integer, got {n_studies!r}")
    study_ids, seeds = _study_seeds(random_state, int(n_studies))
    rows = [
        {"study_id": sid, **draw_quirks(np.random.default_rng(seed)).as_dict()}
        for sid, seed in zip(study_ids, seeds)
    ]
    return pd.DataFrame(rows, columns=["study_id", *Quirks.__dataclass_fields__])
