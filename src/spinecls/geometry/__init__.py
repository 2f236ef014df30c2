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
the nearest slice (:class:`SliceProjection`); :func:`series_order` gives the files of a
series in that order without keeping their geometry.
"""

from ._series import GeometryWarning, SeriesGeometry, series_order
from ._slice import ORTHONORMAL_TOLERANCE, SliceGeometry
from ._stack import ANGLE_TOLERANCE, SliceProjection, SliceStack

__all__ = [
    "ANGLE_TOLERANCE",
    "ORTHONORMAL_TOLERANCE",
    "GeometryWarning",
    "SeriesGeometry",
    "SliceGeometry",
    "SliceProjection",
    "SliceStack",
    "series_order",
]
