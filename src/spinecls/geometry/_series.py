"""The slices of a series: :class:`SeriesGeometry` and the one rule that orders them."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

import numpy as np

from ._header import instance_order, read_series_headers
from ._order import orientation_groups, slice_index
from ._projection import SeriesPlanes
from ._slice import SliceGeometry, pixel_indices, readonly
from ._stack import ANGLE_TOLERANCE, SliceProjection, SliceStack, cosine_tolerance


class GeometryWarning(UserWarning):
    """A series is read without its patient geometry (ordered by InstanceNumber)."""


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
    skipped : tuple of (str, Exception)
        The files left out, each with the error that reading it raised: only with
        ``skip_unreadable=True`` in :meth:`from_files` or :meth:`from_directory`.

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
        cos_tolerance = cosine_tolerance(angle_tolerance)
        groups = orientation_groups(slices, cos_tolerance, self.name)
        self.stacks = tuple(SliceStack(g, angle_tolerance) for g in groups)
        self.slices = tuple(s for stack in self.stacks for s in stack.slices)
        self.instance_numbers = readonly(np.array([s.instance_number for s in self.slices]))
        self.sources = tuple(s.source for s in self.slices)
        self.has_geometry = True
        self.skipped: tuple[tuple[str, Exception], ...] = ()
        self._missing = ""

    @classmethod
    def from_files(
        cls,
        paths: Iterable[str | os.PathLike],
        *,
        name: str | None = None,
        angle_tolerance: float = ANGLE_TOLERANCE,
        skip_unreadable: bool = False,
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
        skip_unreadable : bool, default=False
            Leave out, rather than raise for, a file that is missing or not readable
            DICOM, whose geometry is degenerate or multi-frame, or (in a series ordered
            by InstanceNumber) that has no InstanceNumber; each is listed with its error
            in :attr:`skipped`. It still raises when no file is left.

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
        series = cls._read(paths, name, angle_tolerance, skip_unreadable)
        if not series.has_geometry:
            warnings.warn(series.geometry_warning, GeometryWarning, stacklevel=2)
        return series

    @classmethod
    def _read(cls, paths, name, angle_tolerance, skip_unreadable=False) -> SeriesGeometry:
        """:meth:`from_files` without its warning (see :attr:`geometry_warning`)."""
        skipped: list | None = [] if skip_unreadable else None
        name, headers, missing = read_series_headers(paths, name, skipped)
        if not missing:
            slices = []
            for path, ds in headers:
                try:
                    slices.append(SliceGeometry.from_dataset(ds, source=path))
                except ValueError as exc:
                    if skipped is None:
                        raise
                    skipped.append((os.fspath(path), exc))
            if not slices:
                raise ValueError(f"series {name}: no file has a usable geometry")
            series = cls(slices, name=name, angle_tolerance=angle_tolerance)
        else:
            numbered = instance_order(headers, name, skipped)
            series = cls.__new__(cls)
            series.name = name
            series.stacks = ()
            series.slices = ()
            series.instance_numbers = readonly(np.array([n for n, _ in numbered]))
            series.sources = tuple(source for _, source in numbered)
            series.has_geometry = False
            series._missing = missing
        series.skipped = tuple(sorted(skipped or (), key=lambda item: item[0]))
        return series

    @property
    def geometry_warning(self) -> str | None:
        """The GeometryWarning's message for a series without geometry; None with it.

        :meth:`from_files` and :meth:`from_directory` issue it; a caller that reads a
        series elsewhere (a worker process, a cache) can issue it where the user sees it.
        """
        if self.has_geometry:
            return None
        return (
            f"series {self.name}: {self._missing}: the whole series is ordered by "
            "InstanceNumber and has no patient geometry (points cannot be projected onto it)"
        )

    @classmethod
    def from_directory(
        cls,
        folder: str | os.PathLike,
        pattern: str = "*.dcm",
        *,
        angle_tolerance: float = ANGLE_TOLERANCE,
        skip_unreadable: bool = False,
    ) -> SeriesGeometry:
        """Read a series folder (the competition's ``{series_id}/{instance_number}.dcm``).

        Parameters
        ----------
        folder : str or path-like
            The series folder; it names the series in warnings and errors.
        pattern : str, default ``"*.dcm"``
            Which files to read (:meth:`pathlib.Path.glob`).
        angle_tolerance : float, default=ANGLE_TOLERANCE
            See :class:`SeriesGeometry`.
        skip_unreadable : bool, default=False
            See :meth:`from_files`.

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
        series = cls._read(paths, str(folder), angle_tolerance, skip_unreadable)
        if not series.has_geometry:
            warnings.warn(series.geometry_warning, GeometryWarning, stacklevel=2)
        return series

    def __len__(self) -> int:
        return len(self.instance_numbers)

    def __repr__(self) -> str:
        stacks = ", ".join(repr(s) for s in self.stacks) if self.has_geometry else "no geometry"
        return f"SeriesGeometry({self.name!r}, {len(self)} slices: {stacks})"

    @cached_property
    def _planes(self) -> SeriesPlanes:
        """The slices' planes as arrays, for mapping points (series with geometry only)."""
        if not self.has_geometry:
            raise ValueError(
                f"series {self.name} has no patient geometry ({self._missing}): it is "
                "ordered by InstanceNumber and points cannot be mapped to or from it"
            )
        return SeriesPlanes(self.stacks)

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
        return slice_index(self.instance_numbers, instance_number, self.name)

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
        planes = self._planes
        index, x, y = np.broadcast_arrays(self.index_of(instance_number), *pixel_indices(x, y))
        return planes.to_patient(index, x, y)

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
        return self._planes.project(points, self.instance_numbers)


def series_order(paths: Iterable[str | os.PathLike]) -> tuple[tuple[str, ...], str | None]:
    """The files of one series in series order, and the GeometryWarning's message, if any.

    The order of :meth:`SeriesGeometry.from_files` (its ``sources``): along the normal
    when every file has its geometry, otherwise by InstanceNumber for the whole
    series. The message is returned rather than issued, so that a caller running in
    a worker process, or reading the result from a cache, issues it where the user
    sees it.

    Parameters
    ----------
    paths : iterable of str or path-like
        The series' DICOM files.

    Returns
    -------
    sources : tuple of str
        The files in series order.
    warning : str or None
        The message of the GeometryWarning that :meth:`SeriesGeometry.from_files`
        would issue; None for a series with its geometry.

    Raises
    ------
    FileNotFoundError, ValueError
        As :meth:`SeriesGeometry.from_files`.
    """
    series = SeriesGeometry._read(paths, None, ANGLE_TOLERANCE)
    return series.sources, series.geometry_warning
