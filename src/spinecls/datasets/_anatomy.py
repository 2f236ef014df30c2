"""The synthetic spine in its own frame, and how it sits in the scanner.

The anatomy lives in its own frame (millimetres): ``x`` towards the patient's left,
``y`` posterior, ``z`` superior, with the posterior wall of the mid-lumbar spine near
the origin. A :class:`Pose` (a rotation and a translation) places it in the scanner's
patient frame (DICOM LPS), so the patient lies off-centre and slightly rotated. A
:class:`Plane` is a DICOM slice (ImagePositionPatient, ImageOrientationPatient,
PixelSpacing). The :class:`Spine` is a column of vertebral bodies and discs along a
curved centreline (lordosis in the sagittal plane, a scoliosis in the coronal one);
each disc is a slab perpendicular to the centreline. A spine may also carry per-disc
sizes, signal and tilts, more discs above and below the lumbar ones, a sacrum that
bends backwards and tapers, and a spinal cord: :mod:`._variation` draws those for the
``"clinical"`` studies; without them the spine is the plain phantom's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..labels import LEVELS

EXTRA_DISCS = 2
"""Discs drawn above L1/L2 (T11/T12, T12/L1): unlabelled, so that levels are counted
from the sacrum as on real images, not read off the top of the column."""
RECESS_X = 9.0
"""Lateral offset (mm) of the subarticular recesses from the midline."""
FORAMEN_DEPTH = 6.0
"""Posterior offset (mm) of a foramen's centre from the posterior vertebral wall."""
FORAMEN_RISE = 3.0
"""Height (mm) of a foramen's centre above its disc's mid-plane."""
ROOT_HALF_WIDTH = 1.8
"""Half-width (mm) across the spine of the cauda equina and of an exiting root."""
_SIDES = {"Left": 0, "Right": 1}


def cross(a, b) -> np.ndarray:
    """Cross product of two 3-vectors (``np.cross`` costs far more on one pair)."""
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.sqrt(v @ v)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation matrix from angles in degrees about z (yaw), x (pitch) and y (roll)."""
    a, b, c = np.radians([yaw, pitch, roll])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    ry = np.array([[np.cos(c), 0, np.sin(c)], [0, 1, 0], [-np.sin(c), 0, np.cos(c)]])
    return rz @ rx @ ry


@dataclass
class Pose:
    """Rigid transform from anatomy to patient coordinates: ``p = rotation @ a + shift``."""

    rotation: np.ndarray
    shift: np.ndarray

    def to_patient(self, a) -> np.ndarray:
        return np.asarray(a, dtype=np.float64) @ self.rotation.T + self.shift

    def to_anatomy(self, p) -> np.ndarray:
        return (np.asarray(p, dtype=np.float64) - self.shift) @ self.rotation


@dataclass
class Plane:
    """One DICOM slice: where its first pixel is, where rows and columns run, pixel size.

    ``row_dir`` and ``col_dir`` are ImageOrientationPatient's two triplets: the
    direction of increasing column index along a row, then of increasing row index
    down a column. ``spacing`` is PixelSpacing: (between rows, between columns).
    """

    origin: np.ndarray
    row_dir: np.ndarray
    col_dir: np.ndarray
    shape: tuple[int, int]
    spacing: tuple[float, float]

    def __post_init__(self):
        self.normal = cross(self.row_dir, self.col_dir)

    def distance(self, p) -> float:
        """Signed distance (mm) of a patient point from the plane, along its normal."""
        return float(np.dot(np.asarray(p) - self.origin, self.normal))

    def to_pixel(self, p) -> tuple[float, float]:
        """(column, row) of a patient point projected onto the plane."""
        d = np.asarray(p) - self.origin
        return (
            float(np.dot(d, self.row_dir) / self.spacing[1]),
            float(np.dot(d, self.col_dir) / self.spacing[0]),
        )

    def contains(self, p, margin: float) -> bool:
        """Whether a point projects inside the image, ``margin`` (a fraction) from its edges."""
        col, row = self.to_pixel(p)
        rows, cols = self.shape
        return (
            margin * cols <= col <= (1 - margin) * cols
            and margin * rows <= row <= (1 - margin) * rows
        )


@dataclass
class Spine:
    """One study's lumbar anatomy in its own frame (millimetres).

    Attributes
    ----------
    disc_z : ndarray of shape (n_discs,)
        Height of each disc's centre, cranial to caudal: ``top`` discs above L1/L2
        (T11/T12 and T12/L1 in the plain phantom), L1/L2 to L5/S1 (index
        ``top + level``), then any sacral discs.
    lateral : ndarray of shape (n_discs,)
        Left-right position of the centreline at each disc (scoliosis).
    disc_height, body_depth, body_half_width, canal_depth, canal_half_width : float
        Sizes in mm.
    lordosis : float
        Anterior shift (mm) of the mid-lumbar posterior wall against the lordosis' ends.
    foramen_x : ndarray of shape (2, n_discs)
        Lateral distance (mm) of the left and right foramina from the centreline at
        each disc.
    narrowing : dict
        ``{condition: ndarray of shape (5,)}`` with values in [0, 1].
    top : int
        Number of discs above L1/L2.
    disc_scale, disc_signal, endplate : ndarray of shape (n_discs,) or None
        Per disc: height as a fraction of ``disc_height``, contrast against bone as a
        fraction of a healthy disc's, and the thickness (mm) of the dark endplates
        (0: fused bodies). None: every disc as the plain phantom draws it.
    tilt : ndarray of shape (n_discs, 2) or None
        Per disc, an extra tilt of its plane (radians): forwards (the anterior edge
        lower) and sideways (the left edge lower).
    sacrum : int or None
        Index of the disc at the top of the sacrum: below its centre the column bends
        backwards (``sacral_bend * depth**2`` mm) and tapers to the coccyx
        (``coccyx`` mm below), and the thecal sac ends ``sac_end`` mm below it.
    conus : float or None
        Height of the tip of the spinal cord (None: no cord drawn).
    """

    disc_z: np.ndarray
    lateral: np.ndarray
    disc_height: float
    body_depth: float
    body_half_width: float
    canal_depth: float
    canal_half_width: float
    lordosis: float
    foramen_x: np.ndarray
    narrowing: dict[str, np.ndarray]
    top: int = EXTRA_DISCS
    disc_scale: np.ndarray | None = None
    disc_signal: np.ndarray | None = None
    endplate: np.ndarray | None = None
    tilt: np.ndarray | None = None
    sacrum: int | None = None
    sacral_bend: float = 0.0
    coccyx: float = 140.0
    sac_end: float = 45.0
    conus: float | None = None
    _frames: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def random(cls, rng: np.random.Generator, narrowing: dict[str, np.ndarray]) -> Spine:
        """Draw the sizes, curvature and level heights of one spine."""
        disc_height = rng.uniform(8.0, 11.0)
        bodies = rng.uniform(24.0, 29.0) + rng.normal(0.0, 1.0, size=len(LEVELS) + EXTRA_DISCS - 1)
        steps = disc_height + bodies
        disc_z = np.concatenate([[0.0], -np.cumsum(steps)])
        disc_z += rng.uniform(-8.0, 8.0) - disc_z[EXTRA_DISCS:].mean()
        # Scoliosis: about half the spines lean or bow across by a few mm, so that the
        # labelled points of one series lie on 1-5 slices at about the real rates.
        t = np.linspace(-1.0, 1.0, len(disc_z))
        curved = rng.random() < 0.55
        lean, bow = rng.normal(0.0, (0.3, 3.2)[curved]), rng.normal(0.0, (0.3, 2.5)[curved])
        lateral = lean * t + bow * (1.0 - t**2) + rng.normal(0.0, 0.15, size=len(disc_z))
        # Interpedicular distance grows caudally, and so does the foramina's.
        base = rng.uniform(15.5, 17.5) + rng.uniform(0.0, 0.3) * np.arange(len(disc_z))
        foramen_x = base + rng.uniform(-0.3, 0.3, size=(2, len(disc_z)))
        return cls(
            disc_z=disc_z,
            lateral=lateral - lateral[EXTRA_DISCS:].mean(),
            disc_height=disc_height,
            body_depth=rng.uniform(31.0, 38.0),
            body_half_width=rng.uniform(21.0, 25.0),
            canal_depth=rng.uniform(13.0, 17.0),
            canal_half_width=rng.uniform(10.0, 12.0),
            lordosis=rng.uniform(3.0, 12.0),
            foramen_x=foramen_x,
            narrowing=narrowing,
        )

    # -- the centreline ----------------------------------------------------------------
    def index(self, level: int) -> int:
        """Index of a labelled level's disc (0 = L1/L2) in the per-disc arrays."""
        return self.top + level

    def _lordosis_frame(self) -> tuple[float, float]:
        labelled = self.disc_z[self.top : self.top + len(LEVELS)]
        return float(labelled.sum()) / len(labelled), (labelled[0] - labelled[-1]) / 2 + 20.0

    def sacral_depth(self, z):
        """How far (mm) below the top of the sacrum height ``z`` lies (0 above it)."""
        return np.maximum(float(self.disc_z[self.sacrum]) - z, 0.0)

    def wall(self, z):
        """AP position of the posterior vertebral wall at height ``z`` (lordotic curve)."""
        mid, half = self._lordosis_frame()
        s = np.minimum(np.maximum((z - mid) / half, -1.5), 1.5)
        if self.sacrum is None:
            return -self.lordosis * (1.0 - s**2)
        below = self.sacral_depth(z)
        return -self.lordosis * (1.0 - s**2) + self.sacral_bend * below * below

    def centre_x(self, z):
        """Left-right position of the centreline at height ``z``."""
        return np.interp(z, self.disc_z[::-1], self.lateral[::-1])

    def disc_centre(self, index: int) -> np.ndarray:
        """Point on the posterior wall, on the midline, at the centre of disc ``index``."""
        return self._frame(index)[0]

    def disc_normal(self, index: int) -> np.ndarray:
        """Unit normal of disc ``index``: the centreline's direction there."""
        return self._frame(index)[1][2]

    def _frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """A disc's centre, and rows across (to the left), back and along (the normal)."""
        if index in self._frames:
            return self._frames[index]
        z = float(self.disc_z[index])
        below, above = self.centre_x(np.array([z - 1.0, z + 1.0]))
        mid, half = self._lordosis_frame()
        s = (z - mid) / half
        nx, ny = (above - below) / 2.0, (2.0 * self.lordosis * s / half if abs(s) < 1.5 else 0.0)
        if self.sacrum is not None:  # the slope of the sacral bend
            ny -= 2.0 * self.sacral_bend * float(self.sacral_depth(z))
        if self.tilt is not None:
            ny -= math.tan(self.tilt[index, 0])
            nx += math.tan(self.tilt[index, 1])
        norm = math.sqrt(nx * nx + ny * ny + 1.0)
        nx, ny, nz = nx / norm, ny / norm, 1.0 / norm
        flat = math.sqrt(nz * nz + nx * nx)
        ax, az = nz / flat, -nx / flat  # across: perpendicular to the normal and to y
        back = (ny * az, nz * ax - nx * az, -ny * ax)
        centre = np.array([self.lateral[index], float(self.wall(z)), z])
        self._frames[index] = centre, np.array([[ax, 0.0, az], back, [nx, ny, nz]])
        return self._frames[index]

    def _at_disc(self, index: int, lateral: float, depth: float, rise: float) -> np.ndarray:
        """A point given in the disc's frame: across, behind the wall, along the spine."""
        centre, axes = self._frame(index)
        return centre + np.array([lateral, depth, rise]) @ axes

    def update(self, **fields) -> None:
        """Replace some of the fields (discs added above or below, the per-disc arrays,
        the sacrum) in place."""
        for name, value in fields.items():
            setattr(self, name, value)
        self._frames.clear()

    def adjust(self, level: int, *, lateral=0.0, height=0.0, foramina=(0.0, 0.0)) -> None:
        """Vary one level: shift its disc across or along the spine, move its foramina
        outwards (mm). The labelling draws these to keep labels clear of slice ties."""
        index = self.index(level)
        self.lateral[index] += lateral
        self.disc_z[index] += height
        self.foramen_x[:, index] += foramina
        self._frames.clear()

    # -- the labelled points (anatomy coordinates) --------------------------------------
    def canal_point(self, level: int) -> np.ndarray:
        """Centre of the spinal canal at a level's disc."""
        return self._at_disc(self.index(level), 0.0, self.canal_depth / 2, 0.0)

    def foramen_point(self, level: int, side: str) -> np.ndarray:
        """Centre of the left (+x) or right foramen at a level."""
        sign = 1.0 if side == "Left" else -1.0
        lateral = sign * self.foramen_x[_SIDES[side], self.index(level)]
        return self._at_disc(self.index(level), lateral, FORAMEN_DEPTH, FORAMEN_RISE)

    def recess_point(self, level: int, side: str) -> np.ndarray:
        """Centre of the left (+x) or right subarticular recess at a level's disc."""
        sign = 1.0 if side == "Left" else -1.0
        return self._at_disc(self.index(level), sign * RECESS_X, 3.0, 0.0)

    def per_disc(self, condition: str) -> np.ndarray:
        """Narrowing of ``condition`` at every disc (none above L1/L2 or below L5/S1)."""
        below = len(self.disc_z) - self.top - len(LEVELS)
        return np.concatenate([np.zeros(self.top), self.narrowing[condition], np.zeros(below)])
