"""An anatomy-like digital phantom of the lumbar spine, rendered on any slice plane.

The anatomy lives in its own frame (millimetres): ``x`` towards the patient's left,
``y`` posterior, ``z`` superior, with the posterior wall of the mid-lumbar spine near
the origin. A :class:`Pose` (a rotation and a translation) places it in the scanner's
patient frame (DICOM LPS), so the patient lies off-centre and slightly rotated. A
:class:`Plane` is a DICOM slice (ImagePositionPatient, ImageOrientationPatient,
PixelSpacing); :func:`render` maps each of its pixels through the pose into the anatomy
and returns tissue intensities in [0, 1] for an MR contrast.

The spine is a column of vertebral bodies and discs along a curved centreline
(lordosis in the sagittal plane, a slight scoliosis in the coronal one); each disc is
a slab perpendicular to the centreline. Narrowing (0 = none, 1 = obliterated) visibly
shrinks the structure each condition names: the canal behind a bulging disc (spinal
canal stenosis), the fat around the nerve root in the foramen (foraminal narrowing)
and the lateral recess beside the thecal sac (subarticular stenosis).

Some structures are thin across the spine on purpose, so that the slice a reader
would pick is clear from the image: the cauda equina roots run within 1.8 mm of the
midline, the tips of the spinous processes are 2-6 mm thick, the canal's
cross-section is a diamond (deepest on the midline) and the foraminal fat is an
ellipsoid 6.4 mm wide with the exiting root within 1.8 mm of its centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..labels import LEVELS

# Tissue intensities per contrast, before scaling, bias field and noise. Fluid is
# bright on T2 and dark on T1; fat is bright on T1 and T2 and suppressed on STIR.
_TISSUES = (
    "soft", "muscle", "fat", "bone", "cortex", "disc", "csf", "nerve", "aorta", "ivc", "ligament"
)  # fmt: skip
CONTRASTS: dict[str, dict[str, float]] = {
    name: dict(zip(_TISSUES, values))
    for name, values in {
        "T1": (0.35, 0.30, 0.95, 0.70, 0.10, 0.40, 0.12, 0.30, 0.04, 0.25, 0.08),
        "T2": (0.30, 0.22, 0.75, 0.45, 0.08, 0.80, 1.00, 0.30, 0.04, 0.55, 0.06),
        "STIR": (0.25, 0.20, 0.10, 0.25, 0.06, 0.85, 1.00, 0.35, 0.04, 0.60, 0.05),
    }.items()
}

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
_FORAMEN_HALF_WIDTH = 3.2
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
    disc_z : ndarray of shape (7,)
        Height of each disc's centre, cranial to caudal: T11/T12, T12/L1, then L1/L2 to
        L5/S1 (index ``EXTRA_DISCS + level``).
    lateral : ndarray of shape (7,)
        Left-right position of the centreline at each disc (scoliosis).
    disc_height, body_depth, body_half_width, canal_depth, canal_half_width : float
        Sizes in mm.
    lordosis : float
        Anterior shift (mm) of the mid-lumbar posterior wall against the lordosis' ends.
    foramen_x : ndarray of shape (2, 7)
        Lateral distance (mm) of the left and right foramina from the centreline at
        each disc.
    narrowing : dict
        ``{condition: ndarray of shape (5,)}`` with values in [0, 1].
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
    def _lordosis_frame(self) -> tuple[float, float]:
        labelled = self.disc_z[EXTRA_DISCS:]
        return float(labelled.sum()) / len(labelled), (labelled[0] - labelled[-1]) / 2 + 20.0

    def wall(self, z):
        """AP position of the posterior vertebral wall at height ``z`` (lordotic curve)."""
        mid, half = self._lordosis_frame()
        s = np.minimum(np.maximum((z - mid) / half, -1.5), 1.5)
        return -self.lordosis * (1.0 - s**2)

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

    def adjust(self, level: int, *, lateral=0.0, height=0.0, foramina=(0.0, 0.0)) -> None:
        """Vary one level: shift its disc across or along the spine, move its foramina
        outwards (mm). The labelling draws these to keep labels clear of slice ties."""
        index = EXTRA_DISCS + level
        self.lateral[index] += lateral
        self.disc_z[index] += height
        self.foramen_x[:, index] += foramina
        self._frames.clear()

    # -- the labelled points (anatomy coordinates) --------------------------------------
    def canal_point(self, level: int) -> np.ndarray:
        """Centre of the spinal canal at a level's disc."""
        return self._at_disc(EXTRA_DISCS + level, 0.0, self.canal_depth / 2, 0.0)

    def foramen_point(self, level: int, side: str) -> np.ndarray:
        """Centre of the left (+x) or right foramen at a level."""
        sign = 1.0 if side == "Left" else -1.0
        lateral = sign * self.foramen_x[_SIDES[side], EXTRA_DISCS + level]
        return self._at_disc(EXTRA_DISCS + level, lateral, FORAMEN_DEPTH, FORAMEN_RISE)

    def recess_point(self, level: int, side: str) -> np.ndarray:
        """Centre of the left (+x) or right subarticular recess at a level's disc."""
        sign = 1.0 if side == "Left" else -1.0
        return self._at_disc(EXTRA_DISCS + level, sign * RECESS_X, 3.0, 0.0)

    def per_disc(self, condition: str) -> np.ndarray:
        """Narrowing of ``condition`` at every disc (none above L1/L2)."""
        return np.concatenate([np.zeros(EXTRA_DISCS), self.narrowing[condition]])


def _ellipse(a, b, ca, cb, ra, rb):
    p = (a - ca) * (1.0 / ra)
    q = (b - cb) * (1.0 / rb)
    return p * p + q * q <= 1.0


def _window(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of ``mask``'s True pixels, or None."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _grid(q0, qr, qc, rows, cols) -> np.ndarray:
    """An affine function of (row, column) on the pixel grid (``rows``, ``cols``: float32)."""
    return (rows[:, None] * np.float32(qr) + np.float32(q0)) + cols[None, :] * np.float32(qc)


def render(spine: Spine, pose: Pose, plane: Plane, contrast: str) -> np.ndarray:
    """Render ``spine`` in ``pose`` on one slice plane.

    Returns
    -------
    ndarray of shape ``plane.shape``, float32 tissue intensities in [0, 1], blurred
    by about 0.7 mm of partial volume.
    """
    t = CONTRASTS[contrast]
    rows, cols = plane.shape
    # Anatomy coordinates are affine in (row, column): a0 + row * ar + col * ac.
    a0 = pose.to_anatomy(plane.origin)
    ar = pose.rotation.T @ plane.col_dir * plane.spacing[0]
    ac = pose.rotation.T @ plane.row_dir * plane.spacing[1]
    r_idx = np.arange(rows, dtype=np.float32)
    c_idx = np.arange(cols, dtype=np.float32)
    z = _grid(a0[2], ar[2], ac[2], r_idx, c_idx)
    u = _grid(a0[0], ar[0], ac[0], r_idx, c_idx)
    u -= spine.centre_x(z).astype(np.float32)  # across, from the midline
    v = _grid(a0[1], ar[1], ac[1], r_idx, c_idx)
    v -= spine.wall(z)  # behind the posterior wall
    img = np.zeros(plane.shape, np.float32)

    # Body outline, subcutaneous fat, back muscles, psoas and the great vessels.
    depth = spine.body_depth
    uu, ww = u * u, (v + 30.0) ** 2
    img[uu * (1 / 150**2) + ww * (1 / 105**2) <= 1.0] = t["soft"]
    shell = uu * (1 / 140**2) + ww * (1 / 95**2) <= 1.0
    shell &= uu * (1 / 128**2) + ww * (1 / 84**2) > 1.0
    img[shell] = t["fat"]
    p, q = uu * (1 / 46**2), ((v - 40.0) * (1 / 30.0)) ** 2
    img[p * p + q * q <= 1.0] = t["muscle"]
    au = np.abs(u)
    img[_ellipse(au, v, 36.0, -depth / 2, 13.0, 17.0)] = t["muscle"]
    img[_ellipse(u, v, 12.0, -depth - 13.0, 10.0, 10.0)] = t["aorta"]
    img[_ellipse(u, v, -17.0, -depth - 10.0, 12.0, 6.0)] = t["ivc"]

    # Everything else lies within a box around the column: render only there.
    box = _window((au < 30.0) & (v > -depth - 2.0) & (v < spine.canal_depth + 42.0))
    if box is not None:
        rows_in, cols_in = r_idx[box[0]], c_idx[box[1]]
        _column(spine, img[box], t, u[box], v[box], a0, ar, ac, rows_in, cols_in)
    sigma_row = max(0.7 / plane.spacing[0], 0.3)
    sigma_col = max(0.7 / plane.spacing[1], 0.3)
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma_col, sigmaY=sigma_row)


def _column(spine, img, t, u, v, a0, ar, ac, r_idx, c_idx) -> None:
    """Paint the vertebral column and what lies behind it into ``img`` (a view)."""
    # Signed distance to every disc's mid-plane (affine in pixels), and the nearest disc.
    dist = []
    for k in range(len(spine.disc_z)):
        centre, n = spine.disc_centre(k), spine.disc_normal(k)
        dist.append(_grid(np.dot(a0 - centre, n), np.dot(ar, n), np.dot(ac, n), r_idx, c_idx))
    dist = np.stack(dist)
    disc = np.abs(dist).argmin(axis=0)
    dz = np.take_along_axis(dist, disc[None], axis=0)[0]
    h = spine.disc_height
    depth = spine.body_depth

    # Vertebral bodies and discs: an elliptic column, cut into discs along the spine.
    body = _ellipse(u, v, 0.0, -depth / 2, spine.body_half_width, depth / 2)
    inner = _ellipse(u, v, 0.0, -depth / 2, spine.body_half_width - 2.0, depth / 2 - 2.0)
    adz = np.abs(dz)
    img[body] = t["bone"]
    img[body & (~inner | (adz < 0.55 * h + 1.2))] = t["cortex"]
    # The nucleus is brighter than the annulus: the slice through a disc's middle shows it.
    nucleus = body & (adz < 0.55 * h)
    img[nucleus] = t["disc"] * (1.0 - 0.3 * (adz[nucleus] * (1.0 / (0.55 * h))) ** 2)

    # Behind the wall: only a band of the box, which is all the rest needs.
    canal = spine.canal_depth
    box = _window((np.abs(u) < 26.0) & (v > -1.0) & (v < canal + 41.0))
    if box is not None:
        _posterior(spine, img[box], t, u[box], v[box], dz[box], disc[box])


def _posterior(spine, img, t, u, v, dz, disc) -> None:
    """The canal, posterior arch, foramina and recesses (views of one box)."""
    h = spine.disc_height
    bump = np.clip(1.0 - (dz * (1.0 / (0.9 * h))) ** 2, 0.0, 1.0)
    au = np.abs(u)
    left = u >= 0
    canal, width = spine.canal_depth, spine.canal_half_width

    # Bone and epidural fat around the canal; the facet joints and the pedicles.
    img[(au < width + 4.0) & (v > 0.0) & (v < canal + 7.0)] = t["bone"]
    img[(au < width + 1.5) & (v > 0.0) & (v < canal + 1.0)] = t["fat"]
    img[_ellipse(au, v, 15.0, 13.0, 6.0, 7.0)] = t["bone"]
    foramen_x = np.where(left, spine.foramen_x[0][disc], spine.foramen_x[1][disc])
    img[(np.abs(au - foramen_x) < 6.0) & (au > width) & (v > 0.0) & (v < 13.0)] = t["bone"]

    # The canal: a diamond of CSF, narrowed at a level by the disc bulge from the front.
    bulge = (0.9 * canal) * spine.per_disc("Spinal Canal Stenosis")[disc] * bump
    img[(au < 0.8 * width) & (v > 0.0) & (v <= bulge) & (bump > 0)] = t["ligament"] * 2
    centre = (canal + 0.75 * bulge) * 0.5
    half = np.maximum((canal - 1.25 * bulge) * 0.5, 0.3)
    sac = au * (1.0 / width) + np.abs(v - centre) / half <= 1.0
    img[sac] = t["csf"]
    img[sac & (au < ROOT_HALF_WIDTH) & (np.abs(v - centre) < 1.0)] = t["nerve"]
    img[(au < width) & (v >= canal) & (v < canal + 2.5)] = t["ligament"]
    # Spinous processes behind the canal, thinning to their tips, between the discs.
    tip = np.clip((v - canal - 4.0) * (1.0 / 36.0), 0.0, 1.0)
    spinous = (v > canal + 4.0) & (v < canal + 40.0) & (au < 3.0 - 2.0 * tip) & (bump < 0.2)
    img[spinous] = t["bone"]

    # Foramina and recesses: a thin band just behind the wall.
    box = _window((v < 14.0) & (au > 3.0))
    if box is None:
        return
    img, u, au, v, dz, disc, left = (a[box] for a in (img, u, au, v, dz, disc, left))

    def sided(condition):  # the narrowing of a lateral condition on this pixel's side
        return np.where(
            left,
            spine.per_disc(f"Left {condition}")[disc],
            spine.per_disc(f"Right {condition}")[disc],
        ).astype(np.float32)

    # Foramina: fat around the exiting root, shrinking with narrowing.
    r = sided("Neural Foraminal Narrowing")
    across = au - np.where(left, spine.foramen_x[0][disc], spine.foramen_x[1][disc])
    rise = dz - FORAMEN_RISE
    back = v - FORAMEN_DEPTH
    aa, bb, rr = across * across, back * back, rise * rise
    img[aa * (1 / 3.6**2) + bb * (1 / 6.5**2) + rr * (1 / 10.0**2) <= 1.0] = t["ligament"]
    ry, rz = 5.0 * (1 - 0.75 * r) + 0.3, 8.0 * (1 - 0.6 * r) + 0.3
    img[aa * (1 / _FORAMEN_HALF_WIDTH**2) + bb / (ry * ry) + rr / (rz * rz) <= 1.0] = t["fat"]
    root = (back + 0.5) ** 2 + (rise - 3.0 * (1 - r)) ** 2 <= 2.2**2
    img[root & (aa < ROOT_HALF_WIDTH**2)] = t["nerve"]

    # Lateral recesses beside the sac, squeezed by a hypertrophic facet.
    s = sided("Subarticular Stenosis")
    recess = ((au - RECESS_X) / (3.5 * (1 - 0.8 * s) + 0.3)) ** 2 + (
        (v - 3.0) / (3.5 * (1 - 0.7 * s) + 0.3)
    ) ** 2 <= 1.0
    img[recess] = t["csf"]
    img[_ellipse(au, v, RECESS_X, 2.5, 1.5, 1.5)] = t["nerve"]
    facet = 3.0 + 5.0 * s
    hyper = ((au - (RECESS_X + 7.5 - 2.5 * s)) / facet) ** 2 + ((v - 9.0 + 3.0 * s) / facet) ** 2
    img[(hyper <= 1.0) & (au < RECESS_X + 4.5)] = t["ligament"]
