"""Image volumes with level points -> the competition layout.

Public spine data sets (SPIDER, MyoSegmenTUM, the collection of fastcleverseg) come as
3-D volumes with label masks of the vertebral bodies or the discs, not as DICOM series
in the competition's layout. :func:`levels_from_mask` turns such a mask into the five
level points, and :func:`write_volumes` writes volumes and their points as DICOM series
with full geometry plus the competition's CSV files, so that every part of spinecls (the
level finder first) trains and tests on them.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.uid import generate_uid

from .._utils.atomic import atomic_directory
from .._utils.validation import listing
from ..labels import (
    CONDITIONS,
    LEVELS,
    RAW_SEVERITIES,
    SERIES_DESCRIPTIONS,
    SEVERITIES,
    WIDE_COLUMNS,
    slug,
)
from ._csv import DESCRIPTION_COLUMNS, DESCRIPTIONS_CSV, SPLITS, RSNADataWarning
from ._destinations import layout_destinations
from ._dicom_files import mr_dataset, save_slice
from .rsna import COORDINATE_COLUMNS, COORDINATES_CSV, LABELS_CSV

__all__ = ["SAGITTAL_DIRECTION", "SpineVolume", "levels_from_mask", "write_volumes"]

SAGITTAL_DIRECTION = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
"""The default ``direction`` of a :class:`SpineVolume`: a stack of sagittal images as a
radiologist views them. Column ``a`` is the patient-space direction (DICOM's LPS: +x to
the patient's left, +y to the back, +z to the head) of array axis ``a``: axis 0 runs
down the rows from head to foot, axis 1 along the columns from front to back, axis 2
across the slices from the patient's right to left."""

POINT_COLUMNS = ("condition", "level", "i", "j", "k")
"""The columns of a :class:`SpineVolume`'s points: the condition and level (as in
``train_label_coordinates.csv``) and the voxel indices along array axes 0, 1, 2."""

_RAW = {severity: raw for raw, severity in RAW_SEVERITIES.items()}
_STORED_MAX = 4095  # float volumes are stored as 12-bit integers
_SUBMISSION_CSV = "sample_submission.csv"
# levels_from_mask: a body's endplate is where the body ends along the line through the
# two centroids, among its voxels within this distance (mm) of that line
_AXIS_RADIUS_MM = 5.0
_DISC_MM = 8.0  # a disc's height where none is measured
_VERTEBRA = re.compile(r"^(C|T|L|S)(\d{1,2})$")
_ORDER = {"C": 0, "T": 7, "L": 19, "S": 24}  # C1 = 1, T1 = 8, L1 = 20, S1 = 25


@dataclass
class SpineVolume:
    """One image volume with its labelled level points, as :func:`write_volumes` takes it.

    Parameters
    ----------
    image : ndarray of shape (n0, n1, n2)
        Intensities, any real dtype, no NaN.
    spacing : sequence of 3 floats
        Millimetres between voxel centres along array axes 0, 1 and 2.
    study_id, series_id : int
        The ids the series is written under (``{split}_images/{study_id}/{series_id}/``).
    points : DataFrame, optional
        The labelled points: :data:`POINT_COLUMNS` (``condition, level, i, j, k``: voxel
        indices, fractional allowed), e.g. from :func:`levels_from_mask` with a
        ``condition`` column added. Default: none.
    series_description : str, default="Sagittal T2/STIR"
        One of :data:`spinecls.SERIES_DESCRIPTIONS`.
    direction : array of shape (3, 3), default=SAGITTAL_DIRECTION
        Column ``a``: the patient-space (LPS) unit vector of array axis ``a``
        (SimpleITK's ``GetDirection()`` reshaped to 3 x 3; NIfTI's RAS affine with its
        first two rows negated, divided by the spacing).
    origin : sequence of 3 floats, default=(0, 0, 0)
        Patient mm (LPS) of voxel (0, 0, 0).
    severity : mapping, optional
        ``{(condition, level): severity}`` (one of :data:`spinecls.SEVERITIES`) for
        ``train.csv``; condition-levels left out are blank cells there.
    """

    image: np.ndarray
    spacing: tuple[float, float, float]
    study_id: int
    series_id: int
    points: pd.DataFrame | None = None
    series_description: str = "Sagittal T2/STIR"
    direction: np.ndarray = field(default_factory=lambda: SAGITTAL_DIRECTION.copy())
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    severity: Mapping | None = None


def _as_volume(item, n: int) -> SpineVolume:
    if isinstance(item, Mapping):
        try:
            item = SpineVolume(**item)
        except TypeError as exc:
            raise ValueError(f"volumes[{n}]: {exc}") from None
    if not isinstance(item, SpineVolume):
        raise TypeError(f"volumes[{n}] must be a SpineVolume or a dict of its fields")
    return item


def _check_volume(v: SpineVolume, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checked image, spacing and direction of ``volumes[n]``."""
    name = f"volumes[{n}] (study {v.study_id}, series {v.series_id})"
    image = np.asarray(v.image)
    if image.ndim != 3 or min(image.shape) < 1:
        raise ValueError(f"{name}: image must be a 3-D array, got shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"{name}: image must hold real numbers, got dtype {image.dtype}")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise ValueError(f"{name}: image holds NaN or infinite values")
    spacing = np.asarray(v.spacing, dtype=float)
    if spacing.shape != (3,) or not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise ValueError(f"{name}: spacing must be 3 positive mm values, got {v.spacing!r}")
    direction = np.asarray(v.direction, dtype=float)
    if direction.shape != (3, 3) or not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise ValueError(
            f"{name}: direction must be a 3 x 3 matrix of orthonormal columns, got {v.direction!r}"
        )
    origin = np.asarray(v.origin, dtype=float)
    if origin.shape != (3,) or not np.isfinite(origin).all():
        raise ValueError(f"{name}: origin must be 3 finite mm values, got {v.origin!r}")
    if v.series_description not in SERIES_DESCRIPTIONS:
        raise ValueError(
            f"{name}: series_description must be one of {list(SERIES_DESCRIPTIONS)}, got "
            f"{v.series_description!r}"
        )
    for key in ("study_id", "series_id"):
        value = getattr(v, key)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}: {key} must be a non-negative int, got {value!r}")
    return image, spacing, direction


def _slice_axis(direction: np.ndarray, description: str) -> int:
    """The array axis that runs across a series' slices: the one nearest the patient's
    left-right axis for a sagittal series, head-foot for an axial one."""
    patient = 2 if description.startswith("Axial") else 0
    return int(np.argmax(np.abs(direction[patient])))


def _slabs(count: int, step: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres (fractional voxel index) of slices ``spacing`` mm apart, centred in the
    volume, and each voxel's weight in each slice (a slab as thick as the spacing)."""
    if spacing is None:
        return np.arange(count, dtype=float), np.eye(count)
    ratio = spacing / step
    n = int(np.floor((count - 1) / ratio)) + 1
    centres = (count - 1 - (n - 1) * ratio) / 2 + ratio * np.arange(n)
    voxels = np.arange(count, dtype=float)
    # each voxel covers [v - 0.5, v + 0.5]; its overlap with the slab [c - r/2, c + r/2]
    low = np.maximum(voxels[None] - 0.5, centres[:, None] - ratio / 2)
    high = np.minimum(voxels[None] + 0.5, centres[:, None] + ratio / 2)
    weights = np.clip(high - low, 0, None)
    return centres, weights / weights.sum(1, keepdims=True)


def _fits(image: np.ndarray) -> bool:
    """Whether a volume is stored as it is: integers within 0..65535."""
    return bool(
        np.issubdtype(image.dtype, np.integer) and image.min() >= 0 and image.max() <= 65535
    )


def _stored(image: np.ndarray, fits: bool) -> np.ndarray:
    """The volume (or its slabs' means) as unsigned 16-bit values: those of an integer
    volume that fits are kept (rounded), others are scaled linearly onto 0..4095."""
    if fits:
        return np.rint(image).astype(np.uint16)
    low, high = float(image.min()), float(image.max())
    scaled = (image.astype(np.float64) - low) / (high - low or 1.0) * _STORED_MAX
    return np.rint(scaled).astype(np.uint16)


def _series(v: SpineVolume, n: int, folder: Path, slice_spacing, uid_root) -> list[tuple]:
    """Write one volume's slices; return its coordinate rows."""
    image, spacing, direction = _check_volume(v, n)
    origin = np.asarray(v.origin, dtype=float)
    axis = _slice_axis(direction, v.series_description)
    rows_axis, cols_axis = (a for a in range(3) if a != axis)
    centres, weights = _slabs(image.shape[axis], spacing[axis], slice_spacing)
    step = spacing[axis] if slice_spacing is None else float(slice_spacing)
    # slices always run along +normal (row x column), as the readers order them
    normal = np.cross(direction[:, cols_axis], direction[:, rows_axis])
    order = np.arange(len(centres))
    if normal @ direction[:, axis] < 0:
        order = order[::-1]
    stored = np.moveaxis(image, (rows_axis, cols_axis, axis), (0, 1, 2))
    if slice_spacing is not None:
        stored = np.tensordot(stored.astype(np.float64), weights, axes=([2], [1]))
    pixels = _stored(stored, _fits(image))
    folder.mkdir(parents=True)
    series_uid = generate_uid(entropy_srcs=[*uid_root, str(v.series_id)])
    ds = mr_dataset(
        dict(
            PatientID=str(v.study_id),
            PatientName=f"Volume^{v.study_id}",
            StudyInstanceUID=generate_uid(entropy_srcs=uid_root),
            SeriesInstanceUID=series_uid,
            StudyID=str(v.study_id)[-16:],
            SeriesNumber=1,
            SeriesDescription=v.series_description,
            SliceThickness=round(step, 4),
            SpacingBetweenSlices=round(step, 4),
            PixelSpacing=[round(float(spacing[rows_axis]), 6), round(float(spacing[cols_axis]), 6)],
            ImageOrientationPatient=[
                round(float(x), 6) for x in (*direction[:, cols_axis], *direction[:, rows_axis])
            ],
        ),
        manufacturer="spinecls.datasets.write_volumes",
    )
    instance_of = {}
    for instance, s in enumerate(order, start=1):
        index = np.zeros(3)
        index[axis] = centres[s]
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(instance)])
        ds.InstanceNumber = instance
        ds.ImagePositionPatient = [
            round(float(x), 4) for x in origin + direction @ (spacing * index)
        ]
        save_slice(ds, folder / f"{instance}.dcm", pixels[:, :, s])
        instance_of[s] = instance
    return _coordinates(v, n, axis, rows_axis, cols_axis, centres, instance_of, image.shape)


def _coordinates(v, n, axis, rows_axis, cols_axis, centres, instance_of, shape) -> list[tuple]:
    if v.points is None or len(v.points) == 0:
        return []
    name = f"volumes[{n}] (study {v.study_id}, series {v.series_id})"
    points = v.points
    missing = [c for c in POINT_COLUMNS if c not in points.columns]
    if missing:
        raise ValueError(f"{name}: points lack column(s) {missing}; expected {list(POINT_COLUMNS)}")
    for column, vocabulary in (("condition", CONDITIONS), ("level", LEVELS)):
        bad = ~points[column].isin(vocabulary)
        if bad.any():
            raise ValueError(
                f"{name}: points' {column} {listing(pd.unique(points.loc[bad, column]))} not "
                f"one of {list(vocabulary)}"
            )
    voxels = points[["i", "j", "k"]].to_numpy(dtype=float)
    if not np.isfinite(voxels).all():
        raise ValueError(f"{name}: points hold NaN or infinite voxel indices")
    rows, outside = [], []
    for p, (cond, level) in zip(voxels, points[["condition", "level"]].itertuples(index=False)):
        s = int(np.argmin(np.abs(centres - p[axis])))
        gap = abs(centres[s] - p[axis])
        half = (centres[1] - centres[0]) / 2 if len(centres) > 1 else 0.5
        if gap > half + 1e-6:
            raise ValueError(
                f"{name}: the {cond} {level} point lies at slice index {p[axis]:g}, outside "
                f"the written slices ({centres[0]:g} to {centres[-1]:g})"
            )
        # A point beyond the image's rows or columns (say an L5/S1 extrapolated below
        # the field of view) cannot be read on any instance: dropped with a warning.
        if not all(-0.5 <= p[a] <= shape[a] - 0.5 for a in (rows_axis, cols_axis)):
            outside.append(f"{cond} {level}")
            continue
        rows.append(
            (
                v.study_id,
                v.series_id,
                instance_of[s],
                cond,
                level,
                float(p[cols_axis]),
                float(p[rows_axis]),
            )
        )
    if outside:
        warnings.warn(
            f"{name}: {len(outside)} point(s) lie outside the image's rows and columns "
            f"({shape[rows_axis]} x {shape[cols_axis]}) and are not written: {listing(outside)}",
            RSNADataWarning,
            stacklevel=4,
        )
    return rows


def _label_row(v: SpineVolume) -> dict:
    row = {"study_id": v.study_id, **dict.fromkeys(WIDE_COLUMNS, "")}
    for key, severity in (v.severity or {}).items():
        condition, level = key
        column = f"{slug(condition)}_{slug(level)}"
        if column not in WIDE_COLUMNS or severity not in SEVERITIES:
            raise ValueError(
                f"study {v.study_id}: severity must map (condition, level) to one of "
                f"{list(SEVERITIES)}, got {key!r}: {severity!r}"
            )
        row[column] = _RAW[severity]
    return row


def write_volumes(
    root: str | os.PathLike,
    volumes: Iterable,
    *,
    slice_spacing: float | None = None,
    split: str = "train",
    truth_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Write image volumes and their level points in the competition layout.

    Each volume becomes one DICOM series (MR Image Storage, 16-bit, full geometry:
    ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness and
    SpacingBetweenSlices) of slices across the array axis nearest the patient's
    left-right axis (a sagittal series) or head-foot axis (an axial one), numbered 1,
    2, ... along the slice normal; its points become rows of
    ``train_label_coordinates.csv`` on the slice nearest each (x: column, y: row).

    Parameters
    ----------
    root : str or path-like
        Output directory, new or empty (missing parents are created).
    volumes : iterable of SpineVolume or dict
        The volumes (a dict holds :class:`SpineVolume`'s fields). A study may hold
        several series; ``(study_id, series_id)`` pairs are unique.
    slice_spacing : float, optional
        Resample across the slices to this spacing (mm): each slice averages the
        voxels of a slab as thick as the spacing, centred in the volume, as a thick
        clinical slice would (a 1 mm isotropic volume written with ``slice_spacing=4``
        looks like a 4 mm sagittal series). Default: one slice per voxel layer.
    split : {"train", "test"}, default="train"
        ``"train"``: images, ``train_series_descriptions.csv``,
        ``train_label_coordinates.csv`` and ``train.csv`` (blank cells where a volume
        gives no severity) in ``root``. ``"test"``: the competition's test layout in
        ``root`` (descriptions, images, ``sample_submission.csv``) and the three
        training CSV files in ``truth_dir``.
    truth_dir : str or path-like, optional
        With ``split="test"``; default ``root``'s sibling ``<root name>_truth``.
    overwrite : bool, default=False
        Replace an earlier output of spinecls at ``root`` (and ``truth_dir``); any other
        non-empty directory is refused.

    Returns
    -------
    pathlib.Path
        ``root``.

    Raises
    ------
    ValueError, TypeError
        For a volume that is not 3-D, holds NaN, has a bad spacing, direction, origin,
        description or id, a repeated (study, series), or a point that is not on the
        written slices or names an unknown condition or level; the message names the
        volume (its position and ids). Nothing is left at ``root`` then.

    Warns
    -----
    spinecls.datasets.RSNADataWarning
        For a point beyond the image's rows or columns (e.g. a disc extrapolated
        below the field of view): no instance shows it, so it is not written; the
        message names the volume and the points.

    See Also
    --------
    levels_from_mask : The level points of a vertebral-body or disc mask.
    spinecls.load_coordinates : Reads the points back (``split="train"``) without
        needing severities, as :class:`spinecls.LevelLocalizer` trains on them.

    Notes
    -----
    Float volumes are stored scaled linearly onto 0..4095; integer volumes within
    0..65535 as they are, thick slices' means rounded (MR intensities have no absolute
    unit).

    Examples
    --------
    >>> import numpy as np, pandas as pd, tempfile
    >>> from spinecls.datasets import SpineVolume, write_volumes, load_coordinates
    >>> points = pd.DataFrame({"condition": ["Spinal Canal Stenosis"], "level": ["L4/L5"],
    ...                        "i": [20.0], "j": [12.0], "k": [8.0]})
    >>> volume = SpineVolume(np.zeros((40, 32, 16)), (1.0, 1.0, 1.0), 7, 70, points)
    >>> root = write_volumes(tempfile.mkdtemp() + "/v", [volume], slice_spacing=4)
    >>> point = load_coordinates(root, split="train").iloc[0]
    >>> int(point["instance_number"]), float(point["x"]), float(point["y"])
    (2, 12.0, 20.0)
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if truth_dir is not None and split != "test":
        raise ValueError("truth_dir is only written with split='test'")
    if slice_spacing is not None and not (
        isinstance(slice_spacing, (int, float)) and np.isfinite(slice_spacing) and slice_spacing > 0
    ):
        raise ValueError(f"slice_spacing must be a positive number of mm, got {slice_spacing!r}")
    volumes = [_as_volume(item, n) for n, item in enumerate(volumes)]
    if not volumes:
        raise ValueError("volumes is empty: give at least one volume")
    for n, v in enumerate(volumes):
        _check_volume(v, n)
    keys = [(int(v.study_id), int(v.series_id)) for v in volumes]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"(study_id, series_id) {listing(repeated)} given more than once")
    root, truth = layout_destinations(root, truth_dir, split, overwrite)
    written_by = "spinecls.datasets.write_volumes"
    with (
        atomic_directory(root, written_by=written_by, overwrite=overwrite) as tmp,
        atomic_directory(truth, written_by=written_by, overwrite=overwrite)
        if truth is not None
        else nullcontext() as truth_tmp,
    ):
        images = tmp / f"{split}_images"
        coords = []
        for n, v in enumerate(volumes):
            folder = images / str(int(v.study_id)) / str(int(v.series_id))
            uid_root = ["spinecls.write_volumes", str(int(v.study_id))]
            coords += _series(v, n, folder, slice_spacing, uid_root)
        studies = list(dict.fromkeys(int(v.study_id) for v in volumes))
        labels = {}
        for v in volumes:
            row = _label_row(v)
            kept = labels.setdefault(int(v.study_id), row)
            kept.update({k: x for k, x in row.items() if x != ""})
        descriptions = pd.DataFrame(
            [(int(v.study_id), int(v.series_id), v.series_description) for v in volumes],
            columns=list(DESCRIPTION_COLUMNS),
        )
        truth_root = tmp if truth_tmp is None else truth_tmp
        pd.DataFrame([labels[s] for s in studies]).to_csv(truth_root / LABELS_CSV, index=False)
        pd.DataFrame(coords, columns=list(COORDINATE_COLUMNS)).to_csv(
            truth_root / COORDINATES_CSV, index=False
        )
        descriptions.to_csv(truth_root / DESCRIPTIONS_CSV.format(split="train"), index=False)
        if truth_tmp is not None:
            descriptions.to_csv(tmp / DESCRIPTIONS_CSV.format(split=split), index=False)
            rows = [f"{s}_{column}" for s in studies for column in WIDE_COLUMNS]
            pd.DataFrame({"row_id": rows, **{t: 1 / 3 for t in SEVERITIES}}).to_csv(
                tmp / _SUBMISSION_CSV, index=False
            )
    return root


def _vertebra_rank(name: str) -> int | None:
    """Position of a vertebra name down the column (C1 = 1, ..., L1 = 20, S1 = 25)."""
    match = _VERTEBRA.match(name)
    return None if match is None else _ORDER[match[1]] + int(match[2])


def _end(points: np.ndarray, centre: np.ndarray, axis: np.ndarray, sign: float) -> float:
    """How far along ``axis`` from ``centre`` (mm) a body ends, towards ``sign``, among its
    voxels near the line through ``centre`` along ``axis``."""
    rel = points - centre
    along = rel @ axis
    near = np.linalg.norm(rel - along[:, None] * axis, axis=1) <= _AXIS_RADIUS_MM
    along = along[near] if near.any() else along
    return float(along.max() if sign > 0 else -along.min())


def levels_from_mask(
    mask: np.ndarray,
    labels: Mapping[int, str],
    spacing=(1.0, 1.0, 1.0),
) -> pd.DataFrame:
    """The five level points (L1/L2 to L5/S1) of a vertebral-body or disc label mask.

    Parameters
    ----------
    mask : ndarray of int, shape (n0, n1, n2)
        A label volume (0: background).
    labels : mapping
        ``{mask value: name}``: vertebrae as ``"T12"``, ``"L1"``, ..., ``"L5"``,
        ``"S1"``, discs as ``"L1/L2"``, ..., ``"L5/S1"``. Values absent from the mask
        are ignored.
    spacing : sequence of 3 floats, default=(1, 1, 1)
        Millimetres between voxel centres along the array axes.

    Returns
    -------
    DataFrame
        One row per level found, L1/L2 first: ``level``, ``i``, ``j``, ``k`` (fractional
        voxel indices) and ``source``:

        - ``"disc"``: the centroid of the disc's label;
        - ``"endplates"``: between two adjacent labelled bodies, midway between the
          lower endplate of the upper and the upper endplate of the lower, on the line
          through their centroids (each endplate where its body ends along that line);
        - ``"extrapolated"``: L5/S1 from an L5 body without an S1 label: below L5's lower
          endplate (along the body's shortest principal axis, which is normal to its
          endplates) by half the mean height of the discs measured between the other
          bodies (8 mm without any); it needs a labelled body above L5 to know which
          way is down.

        A level whose disc is not labelled and whose bodies are not both labelled (nor
        L5 for L5/S1) is left out.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((50, 10, 10), int)
    >>> for n, top in enumerate(range(2, 40, 10)):  # four bodies, 6 voxels tall, 4 apart
    ...     mask[top:top + 6] = n + 1
    >>> points = levels_from_mask(mask, {1: "L2", 2: "L3", 3: "L4", 4: "L5"})
    >>> points[["level", "i", "source"]].values.tolist()  # doctest: +NORMALIZE_WHITESPACE
    [['L2/L3', 9.5, 'endplates'], ['L3/L4', 19.5, 'endplates'],
     ['L4/L5', 29.5, 'endplates'], ['L5/S1', 39.5, 'extrapolated']]
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"mask must be a 3-D label array, got shape {mask.shape}")
    spacing = np.asarray(spacing, dtype=float)
    if spacing.shape != (3,) or not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise ValueError(f"spacing must be 3 positive mm values, got {spacing!r}")
    bodies, discs = {}, {}
    for value, name in labels.items():
        if name in LEVELS:
            discs[name] = value
        elif _vertebra_rank(str(name)) is not None:
            bodies[_vertebra_rank(str(name))] = value
        else:
            raise ValueError(
                f"labels: {name!r} (value {value}) is neither a vertebra such as 'L1', 'S1' "
                f"nor a level {list(LEVELS)}"
            )
    present = set(np.unique(mask).tolist())
    voxels = {
        rank: np.argwhere(mask == value) * spacing
        for rank, value in bodies.items()
        if value in present
    }
    rows, gaps = {}, []
    for n, level in enumerate(LEVELS):
        value = discs.get(level)
        if value is not None and value in present:
            # in mm, as the bodies' points: the frame divides every point by the spacing
            rows[level] = (np.argwhere(mask == value).mean(0) * spacing, "disc")
            continue
        upper, lower = voxels.get(20 + n), voxels.get(21 + n)
        if upper is None or lower is None:
            continue
        a, b = upper.mean(0), lower.mean(0)
        axis = (b - a) / np.linalg.norm(b - a)
        top_end = _end(upper, a, axis, 1.0)
        bottom_start = np.linalg.norm(b - a) - _end(lower, b, axis, -1.0)
        gaps.append(bottom_start - top_end)
        rows[level] = (a + axis * (top_end + bottom_start) / 2, "endplates")
    l5 = voxels.get(24)
    above = [rank for rank in voxels if rank < 24]
    if "L5/S1" not in rows and l5 is not None and len(l5) >= 4 and above:
        centre = l5.mean(0)
        _, _, vt = np.linalg.svd(l5 - centre, full_matrices=False)
        axis = vt[-1]  # the shortest extent: head-foot, through the endplates
        if axis @ (centre - voxels[max(above)].mean(0)) < 0:
            axis = -axis  # pointing down the column
        gap = float(np.mean(gaps)) if gaps else _DISC_MM
        rows["L5/S1"] = (centre + axis * (_end(l5, centre, axis, 1.0) + gap / 2), "extrapolated")
    frame = pd.DataFrame(
        [(level, *(p / spacing), source) for level, (p, source) in rows.items()],
        columns=["level", "i", "j", "k", "source"],
    )
    frame["order"] = frame["level"].map(LEVELS.index)
    return frame.sort_values("order").drop(columns="order").reset_index(drop=True)
