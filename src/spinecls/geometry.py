"""Pixel <-> patient millimetres, slice order, and projection onto another series.

The DICOM image plane module (PS3.3 C.7.6.2) places every slice in the patient:

- Patient coordinates are millimetres in LPS: +x towards the patient's left, +y
  posterior, +z head.
- A pixel is addressed as ``(x, y)``: ``x`` the column index, ``y`` the row index,
  as floats. Integer values are pixel centres; ImagePositionPatient is the centre of
  the first pixel (``x = y = 0``).
- ImageOrientationPatient holds the row cosine (the direction of increasing ``x``,
  along a row) then the column cosine (increasing ``y``, down a column).
- PixelSpacing is ``(row spacing, column spacing)``: ``PixelSpacing[0]`` is the
  distance between adjacent rows (the size of a step in ``y``), ``PixelSpacing[1]``
  the distance between adjacent columns (a step in ``x``).
- The slice normal is row cosine x column cosine; a slice's location is its
  ImagePositionPatient projected on the normal.

:class:`SliceGeometry` holds one slice and maps points both ways;
:class:`SeriesGeometry` orders the slices of a series (grouped into
:class:`SliceStack` objects, one per orientation) and projects patient points onto
the nearest slice (:class:`SliceProjection`).
"""

from __future__ import annotations

import math
import numbers
import os
import struct
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

__all__ = [
    "ANGLE_TOLERANCE",
    "ORTHONORMAL_TOLERANCE",
    "GeometryWarning",
    "SeriesGeometry",
    "SliceGeometry",
    "SliceProjection",
    "SliceStack",
]

ORTHONORMAL_TOLERANCE = 1e-2
"""Largest accepted deviation of the direction cosines from unit length and of their
dot product from 0 (headers store rounded decimals, so exact equality is too strict)."""

ANGLE_TOLERANCE = 1.0
"""Default largest angle, in degrees, between the normals of slices of one stack."""

_GEOMETRY_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
_HEADER_TAGS = [
    *_GEOMETRY_TAGS,
    "Rows",
    "Columns",
    "InstanceNumber",
    "SliceThickness",
    "NumberOfFrames",
]
_MAX_LISTED = 3


class GeometryWarning(UserWarning):
    """A series is read without its patient geometry (ordered by InstanceNumber)."""


def _listing(items: Sequence) -> str:
    """``a, b, c`` or ``a, b, c and N more``."""
    shown = ", ".join(str(i) for i in items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _absent(value) -> bool:
    """True for a header value that is missing or empty."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return len(value) == 0
    except TypeError:
        return False


def _floats(value, n: int, what: str, source: str) -> tuple[float, ...]:
    try:
        values = np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {what} must hold {n} numbers, got {value!r}") from exc
    if values.size != n or not np.isfinite(values).all():
        raise ValueError(f"{source}: {what} must hold {n} finite numbers, got {values.tolist()}")
    return tuple(float(v) for v in values)


def _whole(value, what: str, source: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {what} must be a whole number, got {value!r}") from exc
    if not number.is_integer():
        raise ValueError(f"{source}: {what} must be a whole number, got {value!r}")
    return int(number)


def _cos_tolerance(angle_tolerance) -> float:
    if not (
        isinstance(angle_tolerance, numbers.Real)
        and not isinstance(angle_tolerance, bool)
        and 0 <= angle_tolerance <= 180
    ):
        raise ValueError(
            f"angle_tolerance must be a number of degrees in [0, 180], got {angle_tolerance!r}"
        )
    return math.cos(math.radians(angle_tolerance))


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _as_points(points) -> np.ndarray:
    """Points as a float array of shape (..., 3), checked."""
    try:
        p = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"points must be numbers of shape (..., 3), got {points!r}") from exc
    if p.ndim == 0 or p.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., 3) (x, y, z in mm), got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("points must be finite; got NaN or infinity")
    return p


def _inside(x, y, rows, columns) -> np.ndarray:
    """Pixel positions within an image: ``0 <= x <= columns - 1``, ``0 <= y <= rows - 1``."""
    return (x >= 0) & (x <= columns - 1) & (y >= 0) & (y <= rows - 1)


def _pixels(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("pixel coordinates x and y must be finite; got NaN or infinity")
    return x, y


@dataclass(frozen=True)
class SliceGeometry:
    """Where one slice lies in the patient: the DICOM image plane of a single frame.

    Parameters
    ----------
    position : sequence of 3 float
        ImagePositionPatient: the centre of the first pixel (``x = y = 0``), mm, LPS.
    row_cosine : sequence of 3 float
        Direction of increasing column index ``x`` (ImageOrientationPatient[:3]).
    column_cosine : sequence of 3 float
        Direction of increasing row index ``y`` (ImageOrientationPatient[3:]).
    pixel_spacing : sequence of 2 float
        PixelSpacing in DICOM order: ``(row spacing, column spacing)``, i.e. the
        distance between rows (the size of a step in ``y``) then between columns
        (a step in ``x``), in mm.
    rows, columns : int
        Image size (Rows, Columns).
    instance_number : int or None, default=None
        InstanceNumber.
    slice_thickness : float or None, default=None
        SliceThickness in mm, used for the coverage of a one-slice stack.
    source : str, default="<slice>"
        Where the slice came from (a file path); named in error messages and not
        compared.

    Raises
    ------
    ValueError
        If a value has the wrong count or is not finite, the cosines are not
        orthonormal within :data:`ORTHONORMAL_TOLERANCE`, a spacing is not positive
        or the size is not a positive whole number; the message names ``source``
        and the tag.

    See Also
    --------
    SeriesGeometry : the ordered slices of a series and projection onto them.

    Examples
    --------
    A sagittal slice: rows run posterior (+y), columns down (-z); rows are 0.5 mm
    apart and columns 0.8 mm.

    >>> s = SliceGeometry(position=(10.0, -100.0, 50.0), row_cosine=(0, 1, 0),
    ...                   column_cosine=(0, 0, -1), pixel_spacing=(0.5, 0.8),
    ...                   rows=256, columns=256)
    >>> s.normal.tolist(), s.location
    ([-1.0, 0.0, 0.0], -10.0)
    >>> s.pixel_to_patient(10, 4).tolist()
    [10.0, -92.0, 48.0]
    >>> x, y, distance = s.patient_to_pixel([13.0, -92.0, 48.0])
    >>> float(x), float(y), float(distance)
    (10.0, 4.0, -3.0)
    """

    position: tuple[float, float, float]
    row_cosine: tuple[float, float, float]
    column_cosine: tuple[float, float, float]
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    instance_number: int | None = None
    slice_thickness: float | None = None
    source: str = field(default="<slice>", compare=False)

    def __post_init__(self):
        source = str(self.source)
        fields = {
            "source": source,
            "position": _floats(self.position, 3, "ImagePositionPatient", source),
            "row_cosine": _floats(
                self.row_cosine, 3, "ImageOrientationPatient (row cosine)", source
            ),
            "column_cosine": _floats(
                self.column_cosine, 3, "ImageOrientationPatient (column cosine)", source
            ),
            "pixel_spacing": _floats(self.pixel_spacing, 2, "PixelSpacing", source),
            "rows": _whole(self.rows, "Rows", source),
            "columns": _whole(self.columns, "Columns", source),
        }
        if min(fields["pixel_spacing"]) <= 0:
            raise ValueError(
                f"{source}: PixelSpacing (row spacing, column spacing) must be positive, "
                f"got {list(fields['pixel_spacing'])}"
            )
        if fields["rows"] < 1 or fields["columns"] < 1:
            raise ValueError(
                f"{source}: Rows and Columns must be positive, got "
                f"{fields['rows']} x {fields['columns']}"
            )
        row, column = np.array(fields["row_cosine"]), np.array(fields["column_cosine"])
        row_length, column_length = np.linalg.norm(row), np.linalg.norm(column)
        dot = float(row @ column)
        if (
            abs(row_length - 1) > ORTHONORMAL_TOLERANCE
            or abs(column_length - 1) > ORTHONORMAL_TOLERANCE
            or abs(dot) > ORTHONORMAL_TOLERANCE
        ):
            raise ValueError(
                f"{source}: ImageOrientationPatient "
                f"{list(fields['row_cosine'] + fields['column_cosine'])} is not two "
                f"orthonormal direction cosines (row length {row_length:.4g}, column "
                f"length {column_length:.4g}, dot product {dot:.4g}; tolerance "
                f"{ORTHONORMAL_TOLERANCE})"
            )
        if self.instance_number is not None:
            fields["instance_number"] = _whole(self.instance_number, "InstanceNumber", source)
        if self.slice_thickness is not None:
            thickness = _floats(self.slice_thickness, 1, "SliceThickness", source)[0]
            if thickness <= 0:
                raise ValueError(f"{source}: SliceThickness must be positive, got {thickness}")
            fields["slice_thickness"] = thickness
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_dataset(cls, ds: Dataset, source: str | os.PathLike | None = None) -> SliceGeometry:
        """Read the geometry of a single-frame slice from a pydicom Dataset.

        Parameters
        ----------
        ds : pydicom.dataset.Dataset
            The slice's header (pixel data not needed).
        source : str or path-like, optional
            Named in error messages; defaults to the dataset's file name.

        Returns
        -------
        SliceGeometry
            A SliceThickness that is absent or not positive is stored as None: it
            only sets the coverage of a one-slice stack.

        Raises
        ------
        ValueError
            If ImagePositionPatient, ImageOrientationPatient, PixelSpacing, Rows or
            Columns is missing, if a value is degenerate (see
            :class:`SliceGeometry`), or if the image is multi-frame (its geometry is
            per frame); the message names ``source`` and the tag.

        Examples
        --------
        >>> import pydicom
        >>> from pydicom.data import get_testdata_file
        >>> ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
        >>> s = SliceGeometry.from_dataset(ds)
        >>> s.position, s.pixel_spacing, (s.rows, s.columns), s.location
        ((-83.9063, -91.2, 6.6406), (0.3125, 0.3125), (64, 64), 6.6406)
        """
        if source is None:
            source = getattr(ds, "filename", None) or "<dataset>"
        source = os.fspath(source) if isinstance(source, os.PathLike) else str(source)
        frames = ds.get("NumberOfFrames")
        if not _absent(frames) and _whole(frames, "NumberOfFrames", source) > 1:
            raise ValueError(
                f"{source}: a multi-frame image ({frames} frames) has per-frame geometry; "
                "SliceGeometry reads single-frame slices"
            )
        missing = [t for t in (*_GEOMETRY_TAGS, "Rows", "Columns") if _absent(ds.get(t))]
        if missing:
            raise ValueError(
                f"{source}: no {', '.join(missing)} in the header: the slice has no "
                "patient geometry"
            )
        orientation = _floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", source)
        instance = ds.get("InstanceNumber")
        thickness = ds.get("SliceThickness")
        try:
            thickness = None if _absent(thickness) else float(thickness)
        except (TypeError, ValueError):
            thickness = None
        if thickness is not None and not (math.isfinite(thickness) and thickness > 0):
            thickness = None
        return cls(
            position=ds.ImagePositionPatient,
            row_cosine=orientation[:3],
            column_cosine=orientation[3:],
            pixel_spacing=ds.PixelSpacing,
            rows=ds.Rows,
            columns=ds.Columns,
            instance_number=None if _absent(instance) else instance,
            slice_thickness=thickness,
            source=source,
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> SliceGeometry:
        """Read a slice's geometry from a DICOM file's header (no pixel data is read).

        Parameters
        ----------
        path : str or path-like
            The DICOM file.

        Returns
        -------
        SliceGeometry

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            If it is not a readable DICOM file, or as :meth:`from_dataset`.

        Examples
        --------
        >>> from pydicom.data import get_testdata_file
        >>> s = SliceGeometry.from_file(get_testdata_file("MR_small.dcm"))
        >>> s.row_cosine, s.column_cosine, s.instance_number
        ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), 1)
        """
        return cls.from_dataset(_read_header(Path(path)), source=path)

    @cached_property
    def normal(self) -> np.ndarray:
        """Unit slice normal, row cosine x column cosine (read-only array of 3)."""
        n = np.cross(self.row_cosine, self.column_cosine)
        return _readonly(n / np.linalg.norm(n))

    @property
    def location(self) -> float:
        """ImagePositionPatient projected on :attr:`normal`, in mm."""
        return float(np.dot(self.position, self.normal))

    @cached_property
    def affine(self) -> np.ndarray:
        """The 4 x 4 matrix mapping ``(x, y, d, 1)`` to patient ``(X, Y, Z, 1)``.

        Its columns are the row cosine times the column spacing, the column cosine
        times the row spacing, the unit normal and ImagePositionPatient: the DICOM
        equation (PS3.3 C.7.6.2.1.1) extended by ``d`` mm along the normal.
        """
        row_spacing, column_spacing = self.pixel_spacing
        m = np.eye(4)
        m[:3, 0] = np.multiply(self.row_cosine, column_spacing)
        m[:3, 1] = np.multiply(self.column_cosine, row_spacing)
        m[:3, 2] = self.normal
        m[:3, 3] = self.position
        return _readonly(m)

    @cached_property
    def _inverse(self) -> np.ndarray:
        # The cosines may be orthonormal only to the header's rounding: an exact
        # inverse keeps round trips exact. The normal is orthogonal to both cosines,
        # so the third coordinate is the plain signed distance from the plane.
        return _readonly(np.linalg.inv(self.affine[:3, :3]))

    def pixel_to_patient(self, x, y) -> np.ndarray:
        """Patient coordinates of pixel positions on this slice.

        Parameters
        ----------
        x, y : float or array-like
            Column and row indices (broadcast together); integers are pixel centres.

        Returns
        -------
        ndarray of shape (..., 3)
            Millimetres, LPS.
        """
        x, y = _pixels(x, y)
        m = self.affine
        return m[:3, 3] + x[..., None] * m[:3, 0] + y[..., None] * m[:3, 1]

    def patient_to_pixel(self, points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Project patient points onto this slice's plane.

        Parameters
        ----------
        points : array-like of shape (..., 3)
            Millimetres, LPS.

        Returns
        -------
        x, y : ndarray of shape (...)
            Column and row indices of the projection (may lie outside the image).
        distance : ndarray of shape (...)
            Signed distance of the point from the plane along :attr:`normal`, mm.
        """
        p = _as_points(points)
        local = (p - self.affine[:3, 3]) @ self._inverse.T
        return local[..., 0], local[..., 1], local[..., 2]

    def in_image(self, x, y) -> np.ndarray:
        """Whether pixel positions lie within the image: ``0 <= x <= columns - 1`` and
        ``0 <= y <= rows - 1``.

        Parameters
        ----------
        x, y : float or array-like

        Returns
        -------
        ndarray of bool
        """
        return _inside(*_pixels(x, y), self.rows, self.columns)


def _read_header(path: Path) -> Dataset:
    if not path.is_file():
        raise FileNotFoundError(f"DICOM file not found: {path}")
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable DICOM file ({exc})") from exc
    except struct.error as exc:
        raise ValueError(f"{path}: not a readable DICOM file (truncated: {exc})") from exc


class SliceStack:
    """Slices of one orientation, ordered by location along their common normal.

    Parameters
    ----------
    slices : iterable of SliceGeometry
        In any order. Ties in location are broken by instance number, then source.
    angle_tolerance : float, default=ANGLE_TOLERANCE
        Largest angle in degrees between a slice's normal and the first slice's.

    Attributes
    ----------
    slices : tuple of SliceGeometry
        Ordered by increasing location.
    normal : ndarray of shape (3,)
        The mean unit normal of the slices.
    locations : ndarray of shape (n_slices,)
        ImagePositionPatient of each slice projected on :attr:`normal`, increasing.
    instance_numbers : tuple of (int or None)
        In the same order.
    spacing : float
        Median distance between neighbouring slices in mm; NaN for one slice.
    coverage : tuple of 2 float
        ``(low, high)`` along :attr:`normal`: the first and last locations widened by
        half :attr:`spacing` (half the SliceThickness for one slice, 0 without it).

    Raises
    ------
    ValueError
        If ``slices`` is empty or two normals differ by more than ``angle_tolerance``.

    Examples
    --------
    >>> slices = [SliceGeometry((0, 0, z), (1, 0, 0), (0, 1, 0), (1, 1), 8, 8,
    ...                         instance_number=i) for i, z in enumerate([8, 0, 4])]
    >>> stack = SliceStack(slices)
    >>> stack.locations.tolist(), stack.instance_numbers, stack.spacing, stack.coverage
    ([0.0, 4.0, 8.0], (1, 2, 0), 4.0, (-2.0, 10.0))
    """

    def __init__(self, slices: Iterable[SliceGeometry], angle_tolerance: float = ANGLE_TOLERANCE):
        cos_tolerance = _cos_tolerance(angle_tolerance)
        slices = list(slices)
        if not slices:
            raise ValueError("a SliceStack needs at least one slice")
        reference = slices[0].normal
        for s in slices[1:]:
            if float(s.normal @ reference) < cos_tolerance:
                angle = math.degrees(math.acos(float(np.clip(s.normal @ reference, -1, 1))))
                raise ValueError(
                    f"{s.source}: its normal differs from {slices[0].source}'s by "
                    f"{angle:.2f} degrees, more than angle_tolerance={angle_tolerance}: "
                    "the slices are not one stack"
                )
        normal = np.sum([s.normal for s in slices], axis=0)
        self.normal = _readonly(normal / np.linalg.norm(normal))
        self.slices = tuple(
            sorted(
                slices,
                key=lambda s: (
                    float(np.dot(s.position, self.normal)),
                    -math.inf if s.instance_number is None else s.instance_number,
                    s.source,
                ),
            )
        )
        self.locations = _readonly(np.array([s.position for s in self.slices]) @ self.normal)
        self.instance_numbers = tuple(s.instance_number for s in self.slices)
        if len(self.slices) > 1:
            self.spacing = float(np.median(np.diff(self.locations)))
            half = self.spacing / 2
        else:
            self.spacing = math.nan
            half = (self.slices[0].slice_thickness or 0.0) / 2
        self.coverage = (float(self.locations[0] - half), float(self.locations[-1] + half))

    def __len__(self) -> int:
        return len(self.slices)

    def __repr__(self) -> str:
        normal = ", ".join(f"{v:.3f}" for v in self.normal)
        return (
            f"SliceStack({len(self)} slices, normal ({normal}), "
            f"coverage {self.coverage[0]:.1f} to {self.coverage[1]:.1f} mm)"
        )


@dataclass(frozen=True, eq=False)
class SliceProjection:
    """Points projected onto the nearest slice of a series (:meth:`SeriesGeometry.project`).

    Every attribute is an array with the shape of the points less their last axis.

    Attributes
    ----------
    index : ndarray of int
        The slice's position in :attr:`SeriesGeometry.slices`.
    instance_number : ndarray of int
        Its InstanceNumber.
    stack : ndarray of int
        The slice's stack in :attr:`SeriesGeometry.stacks`.
    distance : ndarray of float
        Signed distance in mm from the slice's plane along its normal (positive on
        the side the normal points to).
    x, y : ndarray of float
        Column and row of the projection on that slice.
    in_image : ndarray of bool
        ``0 <= x <= columns - 1`` and ``0 <= y <= rows - 1``.
    in_coverage : ndarray of bool
        The point lies within its stack's :attr:`SliceStack.coverage`.
    """

    index: np.ndarray
    instance_number: np.ndarray
    stack: np.ndarray
    distance: np.ndarray
    x: np.ndarray
    y: np.ndarray
    in_image: np.ndarray
    in_coverage: np.ndarray


class SeriesGeometry:
    """The slices of one series, ordered along their normal and grouped by orientation.

    Parameters
    ----------
    slices : iterable of SliceGeometry
        Every slice of the series, each with an instance number.
    name : str, optional
        Named in warnings and errors (the series folder when read from files).
    angle_tolerance : float, default=ANGLE_TOLERANCE
        Slices whose normals lie within this angle (degrees) of a stack's first
        slice join that stack; a series that holds several orientations (a
        three-plane localizer, axial blocks angled per disc) becomes several stacks.

    Attributes
    ----------
    name : str
    stacks : tuple of SliceStack
        One per orientation, in the order of their lowest instance number; empty for
        a series without geometry.
    slices : tuple of SliceGeometry
        The stacks' slices one stack after another, each stack in location order;
        empty for a series without geometry.
    instance_numbers : ndarray of int
        The instance number of each slice in series order (also without geometry).
    sources : tuple of str
        Where each slice came from, in series order.
    has_geometry : bool
        False for a series read by :meth:`from_files` whose slices do not all carry
        ImagePositionPatient, ImageOrientationPatient and PixelSpacing: it is then
        ordered by InstanceNumber and cannot project points.

    Raises
    ------
    ValueError
        If there is no slice or a slice has no instance number.

    See Also
    --------
    SeriesGeometry.from_directory : read a series folder's headers.

    Examples
    --------
    A sagittal series (slices 3 mm apart along x) and an axial series tilted 12
    degrees about the patient's x axis; two points on the third sagittal slice are
    projected onto the nearest axial slice. The second lies above the axial stack.

    >>> import numpy as np
    >>> sagittal = SeriesGeometry(
    ...     SliceGeometry((-6.0 + 3 * k, -100, 60), (0, 1, 0), (0, 0, -1), (0.8, 0.8),
    ...                   256, 256, instance_number=k + 1) for k in range(5))
    >>> t = np.radians(12)
    >>> row, column = (1, 0, 0), (0, np.cos(t), -np.sin(t))
    >>> normal = np.cross(row, column)
    >>> axial = SeriesGeometry(
    ...     SliceGeometry(np.array([-80, -80, 0]) + 4 * k * normal, row, column, (0.6, 0.6),
    ...                   256, 256, instance_number=k + 1) for k in range(10))
    >>> points = sagittal.pixel_to_patient(instance_number=3, x=100, y=[50, 10])
    >>> points.tolist()
    [[0.0, -20.0, 20.0], [0.0, -20.0, 52.0]]
    >>> hit = axial.project(points)
    >>> hit.instance_number.tolist(), hit.distance.round(2).tolist()
    ([9, 10], [0.04, 27.34])
    >>> hit.x.round(2).tolist(), hit.y.round(2).tolist()
    ([133.33, 133.33], [90.88, 79.8])
    >>> hit.in_image.tolist(), hit.in_coverage.tolist()
    ([True, True], [True, False])
    """

    def __init__(
        self,
        slices: Iterable[SliceGeometry],
        *,
        name: str | None = None,
        angle_tolerance: float = ANGLE_TOLERANCE,
    ):
        self.name = "<series>" if name is None else str(name)
        cos_tolerance = _cos_tolerance(angle_tolerance)
        slices = list(slices)
        if not slices:
            raise ValueError(f"series {self.name}: no slices")
        for s in slices:
            if not isinstance(s, SliceGeometry):
                raise TypeError(
                    f"series {self.name}: slices must be SliceGeometry, got {type(s).__name__}"
                )
            if s.instance_number is None:
                raise ValueError(f"series {self.name}: {s.source} has no InstanceNumber")
        # Stacks form in instance-number order so that their order does not depend on
        # the order the files were listed in.
        groups: list[list[SliceGeometry]] = []
        for s in sorted(slices, key=lambda s: (s.instance_number, s.source)):
            for group in groups:
                if float(s.normal @ group[0].normal) >= cos_tolerance:
                    group.append(s)
                    break
            else:
                groups.append([s])
        self.stacks = tuple(SliceStack(g, angle_tolerance) for g in groups)
        self.slices = tuple(s for stack in self.stacks for s in stack.slices)
        self.instance_numbers = _readonly(np.array([s.instance_number for s in self.slices]))
        self.sources = tuple(s.source for s in self.slices)
        self.has_geometry = True
        self._missing = ""

    @classmethod
    def from_files(
        cls,
        paths: Iterable[str | os.PathLike],
        *,
        name: str | None = None,
        angle_tolerance: float = ANGLE_TOLERANCE,
    ) -> SeriesGeometry:
        """Read the headers of a series' files (no pixel data).

        When any file lacks ImagePositionPatient, ImageOrientationPatient or
        PixelSpacing, positions are not mixed with instance numbers: the whole
        series is ordered by InstanceNumber, a single :class:`GeometryWarning` names
        the series and the missing tags, and :attr:`has_geometry` is False.

        Parameters
        ----------
        paths : iterable of str or path-like
            The series' DICOM files.
        name : str, optional
            Named in warnings and errors; defaults to the first file's folder.
        angle_tolerance : float, default=ANGLE_TOLERANCE
            See :class:`SeriesGeometry`.

        Returns
        -------
        SeriesGeometry

        Raises
        ------
        FileNotFoundError
            If a file does not exist.
        ValueError
            If there is no file, a file is not readable DICOM, its geometry is
            degenerate (naming the file and the tag), or, for a series ordered by
            InstanceNumber, a file has no InstanceNumber.

        Examples
        --------
        A three-plane localizer from pydicom's test files: one slice each of a
        coronal (InstanceNumber 1), a sagittal (2) and an axial (3) plane.

        >>> from pydicom.data import get_testdata_file
        >>> files = [get_testdata_file(f"dicomdirtests/98892003/MR2/{f}")
        ...          for f in ("4950", "4981", "5011")]
        >>> series = SeriesGeometry.from_files(files)
        >>> [stack.normal.round(3).tolist() for stack in series.stacks]
        [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
        """
        paths = [Path(p) for p in paths]
        if not paths:
            raise ValueError(f"series {name}: no files")
        name = str(paths[0].parent) if name is None else str(name)
        headers = [(path, _read_header(path)) for path in paths]
        missing: dict[str, list[str]] = {}
        for path, ds in headers:
            for tag in _GEOMETRY_TAGS:
                if _absent(ds.get(tag)):
                    missing.setdefault(tag, []).append(path.name)
        if not missing:
            return cls(
                (SliceGeometry.from_dataset(ds, source=path) for path, ds in headers),
                name=name,
                angle_tolerance=angle_tolerance,
            )
        numbered = []
        for path, ds in headers:
            if _absent(ds.get("InstanceNumber")):
                raise ValueError(
                    f"{path}: no InstanceNumber, and series {name} lacks patient geometry "
                    "to order it by position"
                )
            numbered.append((_whole(ds.InstanceNumber, "InstanceNumber", path), os.fspath(path)))
        numbered.sort()
        reason = "; ".join(
            f"no {tag} in {len(files)} of {len(paths)} files ({_listing(files)})"
            for tag, files in missing.items()
        )
        warnings.warn(
            f"series {name}: {reason}: the whole series is ordered by InstanceNumber and "
            "has no patient geometry (points cannot be projected onto it)",
            GeometryWarning,
            stacklevel=2,
        )
        series = cls.__new__(cls)
        series.name = name
        series.stacks = ()
        series.slices = ()
        series.instance_numbers = _readonly(np.array([n for n, _ in numbered]))
        series.sources = tuple(source for _, source in numbered)
        series.has_geometry = False
        series._missing = reason
        return series

    @classmethod
    def from_directory(
        cls,
        folder: str | os.PathLike,
        pattern: str = "*.dcm",
        *,
        angle_tolerance: float = ANGLE_TOLERANCE,
    ) -> SeriesGeometry:
        """Read a series folder (the competition's ``{series_id}/{instance_number}.dcm``).

        Parameters
        ----------
        folder : str or path-like
            The series folder; it names the series in warnings and errors.
        pattern : str, default="*.dcm"
            Which files to read (:meth:`pathlib.Path.glob`).
        angle_tolerance : float, default=ANGLE_TOLERANCE
            See :class:`SeriesGeometry`.

        Returns
        -------
        SeriesGeometry
            As :meth:`from_files`.

        Raises
        ------
        FileNotFoundError
            If the folder does not exist.
        ValueError
            If no file matches, or as :meth:`from_files`.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"series folder not found: {folder}")
        paths = sorted(p for p in folder.glob(pattern) if p.is_file())
        if not paths:
            raise ValueError(f"{folder}: no files matching {pattern!r}")
        return cls.from_files(paths, name=str(folder), angle_tolerance=angle_tolerance)

    def __len__(self) -> int:
        return len(self.instance_numbers)

    def __repr__(self) -> str:
        stacks = ", ".join(repr(s) for s in self.stacks) if self.has_geometry else "no geometry"
        return f"SeriesGeometry({self.name!r}, {len(self)} slices: {stacks})"

    @cached_property
    def _planes(self):
        """Per slice in series order: affine, inverse of its 3 x 3 part, (rows,
        columns), stack index."""
        return (
            np.stack([s.affine for s in self.slices]),
            np.stack([s._inverse for s in self.slices]),
            np.array([(s.rows, s.columns) for s in self.slices]),
            np.repeat(np.arange(len(self.stacks)), [len(s) for s in self.stacks]),
        )

    def _require_geometry(self):
        if not self.has_geometry:
            raise ValueError(
                f"series {self.name} has no patient geometry ({self._missing}): it is "
                "ordered by InstanceNumber and points cannot be mapped to or from it"
            )

    def index_of(self, instance_number) -> np.ndarray | int:
        """Position in :attr:`slices` (series order) of slices given by instance number.

        Parameters
        ----------
        instance_number : int or array-like of int

        Returns
        -------
        int or ndarray of int
            Same shape as ``instance_number``.

        Raises
        ------
        ValueError
            If an instance number is not in the series, or is on several slices (a
            series holding repeated acquisitions).
        """
        wanted = np.asarray(instance_number)
        order = np.argsort(self.instance_numbers, kind="stable")
        ordered = self.instance_numbers[order]
        first = np.searchsorted(ordered, wanted, side="left")
        last = np.searchsorted(ordered, wanted, side="right")
        unknown = np.unique(wanted[last == first])
        if unknown.size:
            raise ValueError(
                f"series {self.name} has no slice with InstanceNumber "
                f"{_listing(unknown.tolist())}; it has {len(self)} slices numbered "
                f"{int(ordered[0])} to {int(ordered[-1])}"
            )
        repeated = np.unique(wanted[last - first > 1])
        if repeated.size:
            raise ValueError(
                f"series {self.name}: InstanceNumber {_listing(repeated.tolist())} is on "
                "several slices; address them by index in series.slices"
            )
        index = order[first]
        return int(index) if index.ndim == 0 else index

    def pixel_to_patient(self, instance_number, x, y) -> np.ndarray:
        """Patient coordinates of pixel positions on slices given by instance number.

        Parameters
        ----------
        instance_number : int or array-like of int
        x, y : float or array-like
            Column and row indices; all three are broadcast together.

        Returns
        -------
        ndarray of shape (..., 3)
            Millimetres, LPS.

        Raises
        ------
        ValueError
            For a series without geometry, or as :meth:`index_of`.
        """
        self._require_geometry()
        index, x, y = np.broadcast_arrays(self.index_of(instance_number), *_pixels(x, y))
        affines = self._planes[0][index]
        return (
            affines[..., :3, 3]
            + x[..., None] * affines[..., :3, 0]
            + y[..., None] * (affines[..., :3, 1])
        )

    def project(self, points) -> SliceProjection:
        """Project patient points onto the nearest slice of this series.

        For each point the nearest slice plane is taken among the stacks whose
        coverage holds the point; when none does, among all slices (and
        ``in_coverage`` is False). Ties go to the earlier slice in series order.

        Parameters
        ----------
        points : array-like of shape (..., 3)
            Millimetres, LPS (e.g. from :meth:`pixel_to_patient` of another series).

        Returns
        -------
        SliceProjection

        Raises
        ------
        ValueError
            For a series without geometry, or points not of shape (..., 3).
        """
        self._require_geometry()
        p = _as_points(points)
        flat = p.reshape(-1, 3)
        affines, inverses, sizes, stack_of = self._planes
        origins, normals = affines[:, :3, 3], affines[:, :3, 2]
        distances = flat @ normals.T - np.einsum("sk,sk->s", origins, normals)
        along = flat @ np.array([s.normal for s in self.stacks]).T
        low, high = np.array([s.coverage for s in self.stacks]).T
        covered = (along >= low) & (along <= high)
        candidate = covered[:, stack_of]
        score = np.where(candidate, np.abs(distances), np.inf)
        best = np.where(
            candidate.any(axis=1), np.argmin(score, axis=1), np.argmin(np.abs(distances), axis=1)
        )
        local = np.einsum("pij,pj->pi", inverses[best], flat - origins[best])
        x, y = local[:, 0], local[:, 1]
        points_index = np.arange(len(flat))
        shape = p.shape[:-1]
        return SliceProjection(
            index=best.reshape(shape),
            instance_number=self.instance_numbers[best].reshape(shape),
            stack=stack_of[best].reshape(shape),
            distance=distances[points_index, best].reshape(shape),
            x=x.reshape(shape),
            y=y.reshape(shape),
            in_image=_inside(x, y, *sizes[best].T).reshape(shape),
            in_coverage=covered[points_index, stack_of[best]].reshape(shape),
        )
