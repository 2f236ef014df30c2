"""A series' slice planes as arrays: pixels to patient millimetres and points onto slices.

:class:`~spinecls.geometry.SeriesGeometry` keeps its slices, their order and the lookup
by instance number; the first time it maps a point it builds one :class:`SeriesPlanes`
from its stacks, which does the arithmetic for all slices at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._slice import as_points, inside_image
from ._stack import SliceProjection, SliceStack


class SeriesPlanes:
    """The planes of a series' slices, in series order (stack after stack).

    Parameters
    ----------
    stacks : sequence of SliceStack
        The series' stacks, in series order.

    Attributes
    ----------
    affines : ndarray of shape (n_slices, 4, 4)
        Each slice's pixel-to-patient affine.
    inverses : ndarray of shape (n_slices, 3, 3)
        The inverse of each affine's 3 x 3 part.
    sizes : ndarray of shape (n_slices, 2)
        Each slice's (rows, columns).
    stack_of : ndarray of shape (n_slices,)
        The index of each slice's stack.
    normals : ndarray of shape (n_stacks, 3)
        Each stack's normal.
    low, high : ndarray of shape (n_stacks,)
        Each stack's coverage along its normal.
    """

    def __init__(self, stacks: Sequence[SliceStack]):
        slices = [s for stack in stacks for s in stack.slices]
        self.affines = np.stack([s.affine for s in slices])
        self.inverses = np.stack([s._inverse for s in slices])
        self.sizes = np.array([(s.rows, s.columns) for s in slices])
        self.stack_of = np.repeat(np.arange(len(stacks)), [len(s) for s in stacks])
        self.normals = np.array([s.normal for s in stacks])
        self.low, self.high = np.array([s.coverage for s in stacks]).T

    def to_patient(self, index: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Patient points (..., 3) of pixels ``(x, y)`` on slices ``index``, all of one shape."""
        affines = self.affines[index]
        return (
            affines[..., :3, 3]
            + x[..., None] * affines[..., :3, 0]
            + y[..., None] * (affines[..., :3, 1])
        )

    def project(self, points, instance_numbers: np.ndarray) -> SliceProjection:
        """``points`` (..., 3) on their nearest slice, as
        :meth:`SeriesGeometry.project <spinecls.geometry.SeriesGeometry.project>` describes.

        ``instance_numbers`` holds each slice's instance number, in series order.
        """
        p = as_points(points)
        flat = p.reshape(-1, 3)
        origins, normals = self.affines[:, :3, 3], self.affines[:, :3, 2]
        distances = flat @ normals.T - np.einsum("sk,sk->s", origins, normals)
        along = flat @ self.normals.T
        covered = (along >= self.low) & (along <= self.high)
        candidate = covered[:, self.stack_of]
        score = np.where(candidate, np.abs(distances), np.inf)
        best = np.where(
            candidate.any(axis=1), np.argmin(score, axis=1), np.argmin(np.abs(distances), axis=1)
        )
        local = np.einsum("pij,pj->pi", self.inverses[best], flat - origins[best])
        x, y = local[:, 0], local[:, 1]
        points_index = np.arange(len(flat))
        shape = p.shape[:-1]
        return SliceProjection(
            index=best.reshape(shape),
            instance_number=instance_numbers[best].reshape(shape),
            stack=self.stack_of[best].reshape(shape),
            distance=distances[points_index, best].reshape(shape),
            x=x.reshape(shape),
            y=y.reshape(shape),
            in_image=inside_image(x, y, *self.sizes[best].T).reshape(shape),
            in_coverage=covered[points_index, self.stack_of[best]].reshape(shape),
        )
