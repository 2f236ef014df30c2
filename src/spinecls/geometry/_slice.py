"""One slice's geometry: :class:`SliceGeometry`."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from ._header import GEOMETRY_TAGS, as_floats, as_whole, is_absent, read_header

ORTHONORMAL_TOLERANCE = 1e-2
"""Largest accepted deviation of the direction cosines from unit length and of their
dot product from 0 (headers store rounded decimals, so exact equality is too strict)."""


def readonly(array: np.ndarray) -> np.ndarray:
    """``array``, made read-only (the geometry's arrays are shared, never changed)."""
    array.setflags(write=False)
    return array


def as_points(points) -> np.ndarray:
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


def inside_image(x, y, rows, columns) -> np.ndarray:
    """Pixel positions within an image: ``0 <= x <= columns - 1``, ``0 <= y <= rows - 1``."""
    return (x >= 0) & (x <= columns - 1) & (y >= 0) & (y <= rows - 1)


def pixel_indices(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions ``x``, ``y`` as arrays of the same shape, checked finite."""
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
            "position": as_floats(self.position, 3, "ImagePositionPatient", source),
            "row_cosine": as_floats(
                self.row_cosine, 3, "ImageOrientationPatient (row cosine)", source
            ),
            "column_cosine": as_floats(
                self.column_cosine, 3, "ImageOrientationPatient (column cosine)", source
            ),
            "pixel_spacing": as_floats(self.pixel_spacing, 2, "PixelSpacing", source),
            "rows": as_whole(self.rows, "Rows", source),
            "columns": as_whole(self.columns, "Columns", source),
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
            fields["instance_number"] = as_whole(self.instance_number, "InstanceNumber", source)
        if self.slice_thickness is not None:
            thickness = as_floats(self.slice_thickness, 1, "SliceThickness", source)[0]
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
        if not is_absent(frames) and as_whole(frames, "NumberOfFrames", source) > 1:
            raise ValueError(
                f"{source}: a multi-frame image ({frames} frames) has per-frame geometry; "
                "SliceGeometry reads single-frame slices"
            )
        missing = [t for t in (*GEOMETRY_TAGS, "Rows", "Columns") if is_absent(ds.get(t))]
        if missing:
            raise ValueError(
                f"{source}: no {', '.join(missing)} in the header: the slice has no "
                "patient geometry"
            )
        orientation = as_floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", source)
        instance = ds.get("InstanceNumber")
        thickness = ds.get("SliceThickness")
        try:
            thickness = None if is_absent(thickness) else float(thickness)
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
            instance_number=None if is_absent(instance) else instance,
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
        return cls.from_dataset(read_header(Path(path)), source=path)

    @cached_property
    def normal(self) -> np.ndarray:
        """Unit slice normal, row cosine x column cosine (read-only array of 3)."""
        n = np.cross(self.row_cosine, self.column_cosine)
        return readonly(n / np.linalg.norm(n))

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
        return readonly(m)

    @cached_property
    def _inverse(self) -> np.ndarray:
        # The cosines may be orthonormal only to the header's rounding: an exact
        # inverse keeps round trips exact. The normal is orthogonal to both cosines,
        # so the third coordinate is the plain signed distance from the plane.
        return readonly(np.linalg.inv(self.affine[:3, :3]))

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
        x, y = pixel_indices(x, y)
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
        p = as_points(points)
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
        return inside_image(*pixel_indices(x, y), self.rows, self.columns)
