"""What the scanner sets for each synthetic series: its matrix, its planes, its numbering.

Drawn per series by :mod:`._acquisition` once it has planned where the slices go: the
image size and PixelSpacing for a field of view, the slice planes centred on the
planned points, and InstanceNumbers that identify the slices without ordering them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._anatomy import Plane
from ._layout import RATES


@dataclass
class Series:
    """One series: its description, contrast, slice planes and instance numbers."""

    series_id: int
    description: str
    contrast: str
    planes: list[Plane]
    instances: list[int]
    thickness: float
    gap: float


def draw_instance_numbers(rng: np.random.Generator, n: int) -> list[int]:
    """The InstanceNumbers of ``n`` slices, in slice order."""
    # InstanceNumber is an identifier, not a position: it starts anywhere (often far
    # above 1), and may run against the slice order.
    start = int(rng.integers(1001, 3000)) if rng.random() < 0.2 else int(rng.integers(2, 60))
    numbers = start + np.arange(n)
    return (numbers[::-1] if rng.random() < 0.4 else numbers).tolist()


def draw_matrix(rng, size_range, fov: float) -> tuple[tuple[int, int], tuple[float, float]]:
    """Image shape and PixelSpacing (row, column) for a field of view ``fov`` mm high."""
    lo, hi = size_range
    rows = int(rng.integers(lo, hi + 1))
    cols = rows
    if rng.random() < RATES["rectangular"]:
        cols = int(np.clip(round(rows * rng.uniform(0.8, 1.25)), lo, hi))
    row_spacing = fov / rows
    col_spacing = row_spacing
    if rng.random() < RATES["anisotropic"]:
        col_spacing = row_spacing * rng.uniform(0.88, 1.12)
    return (rows, cols), (row_spacing, col_spacing)


def centred_planes(centres, row_dir, col_dir, shape, spacing) -> list[Plane]:
    """Planes whose images are centred on ``centres``."""
    rows, cols = shape
    half = (cols - 1) / 2 * spacing[1] * row_dir + (rows - 1) / 2 * spacing[0] * col_dir
    return [Plane(np.asarray(c) - half, row_dir, col_dir, shape, spacing) for c in centres]
