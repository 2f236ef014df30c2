"""Slices of one orientation (:class:`SliceStack`) and points projected onto a series
(:class:`SliceProjection`)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ._slice import SliceGeometry, readonly

ANGLE_TOLERANCE = 1.0
"""Default largest angle, in degrees, between the normals of slices of one stack."""


def cosine_tolerance(angle_tolerance) -> float:
    """The cosine that ``angle_tolerance`` (degrees) allows between two directions, checked."""
    if not (
        isinstance(angle_tolerance, numbers.Real)
        and not isinstance(angle_tolerance, bool)
        and 0 <= angle_tolerance <= 180
    ):
        raise ValueError(
            f"angle_tolerance must be a number of degrees in [0, 180], got {angle_tolerance!r}"
        )
    return math.cos(math.radians(angle_tolerance))


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
        cos_tolerance = cosine_tolerance(angle_tolerance)
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
        self.normal = readonly(normal / np.linalg.norm(normal))
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
        self.locations = readonly(np.array([s.position for s in self.slices]) @ self.normal)
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
