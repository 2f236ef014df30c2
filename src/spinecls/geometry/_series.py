"""The slices of a series: :class:`SeriesGeometry` and the one rule that orders them."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

import numpy as np

from .._validation import listing
from ._header import instance_order, read_series_headers
from ._slice import SliceGeometry, _as_points, _inside, _pixels, _readonly
from ._stack import ANGLE_TOLERANCE, SliceProjection, SliceStack, _cos_tolerance


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
        series = cls._read(paths, name, angle_tolerance)
        if not series.has_geometry:
            warnings.warn(series._fallback, GeometryWarning, stacklevel=2)
        return series

    @classmethod
    def _read(cls, paths, name, angle_tolerance) -> SeriesGeometry:
        """:meth:`from_files` without its warning (see :attr:`_fallback`)."""
        name, headers, missing = read_series_headers(paths, name)
        if not missing:
            return cls(
                (SliceGeometry.from_dataset(ds, source=path) for path, ds in headers),
                name=name,
                angle_tolerance=angle_tolerance,
            )
        numbered = instance_order(headers, name)
        series = cls.__new__(cls)
        series.name = name
        series.stacks = ()
        series.slices = ()
        series.instance_numbers = _readonly(np.array([n for n, _ in numbered]))
        series.sources = tuple(source for _, source in numbered)
        series.has_geometry = False
        series._missing = missing
        return series

    @property
    def _fallback(self) -> str:
        """The GeometryWarning's message for a series without geometry."""
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
        series = cls._read(paths, str(folder), angle_tolerance)
        if not series.has_geometry:
            warnings.warn(series._fallback, GeometryWarning, stacklevel=2)
        return series

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
                f"{listing(unknown.tolist())}; it has {len(self)} slices numbered "
                f"{int(ordered[0])} to {int(ordered[-1])}"
            )
        repeated = np.unique(wanted[last - first > 1])
        if repeated.size:
            raise ValueError(
                f"series {self.name}: InstanceNumber {listing(repeated.tolist())} is on "
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
    return series.sources, None if series.has_geometry else series._fallback
