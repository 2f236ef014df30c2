"""An anatomy-like digital phantom of the lumbar spine, rendered slice by slice.

Geometry lives in patient coordinates (DICOM LPS, millimetres): ``x`` towards the
patient's left, ``y`` posterior, ``z`` superior. A :class:`Spine` holds one study's
anatomy and the degree of narrowing (0 = none, 1 = obliterated) of every condition
at every level; :func:`render_sagittal` and :func:`render_axial` draw a slice of it
as tissue intensities in [0, 1] for a given MR contrast. Narrowing visibly shrinks the
structure that each condition names: the canal behind a bulging disc (spinal canal
stenosis), the fat around the nerve root in the foramen (foraminal narrowing) and the
lateral recess beside the thecal sac (subarticular stenosis).
"""

from __future__ import annotations

from dataclasses import dataclass

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

# Lateral offset (mm) of the foramina and of the subarticular recesses.
FORAMEN_X = 16.0
RECESS_X = 9.0
BODY_HALF_WIDTH = 23.0


@dataclass
class Spine:
    """One study's lumbar anatomy in patient millimetres.

    Attributes
    ----------
    disc_z : ndarray of shape (5,)
        Height (z) of the centre of each disc, L1/L2 to L5/S1.
    disc_height, body_height, body_depth, canal_depth : float
        Sizes in mm.
    lordosis : float
        Anterior shift (mm) of the spine's mid-lumbar segment.
    y0 : float
        AP position of the posterior vertebral wall at the lordosis' ends.
    narrowing : dict
        ``{condition: ndarray of shape (5,)}`` with values in [0, 1].
    """

    disc_z: np.ndarray
    disc_height: float
    body_height: float
    body_depth: float
    canal_depth: float
    lordosis: float
    y0: float
    narrowing: dict[str, np.ndarray]

    @classmethod
    def random(cls, rng: np.random.Generator, narrowing: dict[str, np.ndarray]) -> Spine:
        disc_height = rng.uniform(8.0, 11.0)
        body_height = rng.uniform(24.0, 29.0)
        step = disc_height + body_height
        top = rng.uniform(-8.0, 8.0) + 2 * step
        disc_z = top - step * np.arange(len(LEVELS))
        return cls(
            disc_z=disc_z,
            disc_height=disc_height,
            body_height=body_height,
            body_depth=rng.uniform(31.0, 38.0),
            canal_depth=rng.uniform(13.0, 17.0),
            lordosis=rng.uniform(3.0, 12.0),
            y0=rng.uniform(-4.0, 4.0),
            narrowing=narrowing,
        )

    def posterior_wall(self, z):
        """AP position of the posterior vertebral wall at height ``z`` (lordotic curve)."""
        mid = self.disc_z.mean()
        half = (self.disc_z[0] - self.disc_z[-1]) / 2 + 20.0
        return self.y0 - self.lordosis * (1.0 - np.clip((z - mid) / half, -1.5, 1.5) ** 2)

    def vertebra_z(self) -> np.ndarray:
        """Centres of L1 to S1 bodies."""
        step = self.disc_height + self.body_height
        return np.concatenate([[self.disc_z[0] + step / 2], self.disc_z - step / 2])


def _ellipse(a, b, cy, cz, ry, rz):
    return ((a - cy) / ry) ** 2 + ((b - cz) / rz) ** 2 <= 1.0


def _disc_bump(z, disc_z, disc_height):
    """Smooth profile, 1 at a disc's centre and 0 half a disc height above or below."""
    d = np.min(np.abs(np.asarray(z)[..., None] - disc_z), axis=-1)
    return np.clip(1.0 - (d / (0.9 * disc_height)) ** 2, 0.0, 1.0)


def _finish(image: np.ndarray, pixel_spacing: float) -> np.ndarray:
    # Partial-volume blur of about 0.7 mm, whatever the pixel size.
    sigma = max(0.7 / pixel_spacing, 0.3)
    return cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)


def render_sagittal(
    spine: Spine,
    lateral: float,
    contrast: str,
    shape: tuple[int, int],
    spacing: float,
    origin_y: float,
    origin_z: float,
) -> np.ndarray:
    """Render the sagittal slice at ``x = lateral`` mm.

    Columns run posterior (``y = origin_y + col * spacing``), rows inferior
    (``z = origin_z - row * spacing``), as with ImageOrientationPatient
    ``[0, 1, 0, 0, 0, -1]``.

    Returns
    -------
    ndarray of shape ``shape``, float32 intensities in [0, 1].
    """
    t = CONTRASTS[contrast]
    rows, cols = shape
    z = origin_z - np.arange(rows, dtype=np.float32)[:, None] * spacing
    y = origin_y + np.arange(cols, dtype=np.float32)[None, :] * spacing
    z_col = z[:, 0]
    wall = spine.posterior_wall(z)
    ax = abs(lateral)
    img = np.zeros(shape, np.float32)

    # Body outline: soft tissue, then the paraspinal muscles behind the spine.
    img[_ellipse(y, z, spine.y0 + 5, spine.disc_z.mean(), 120.0, 400.0)] = t["soft"]
    img[(y > wall + spine.canal_depth + 4) & (y < wall + 75)] = t["muscle"]
    img[(y > wall + 75) & (y < wall + 88)] = t["fat"]

    # Great vessels in front of the spine: the aorta left of midline, the IVC right.
    front = wall - spine.body_depth
    for cx, radius, key in ((12.0, 10.0, "aorta"), (-17.0, 11.0, "ivc")):
        half_chord = np.sqrt(max(radius**2 - (lateral - cx) ** 2, 0.0))
        if half_chord > 0:
            centre = front - radius - 3
            img[np.abs(y - centre) <= half_chord * (0.55 if key == "ivc" else 1.0)] = t[key]

    # Vertebral bodies and discs, narrower in AP towards the sides.
    if ax < BODY_HALF_WIDTH:
        depth = spine.body_depth * np.sqrt(1 - (ax / (BODY_HALF_WIDTH + 2)) ** 2)
        in_column = (y >= wall - depth) & (y <= wall)
        bump = _disc_bump(z, spine.disc_z, spine.disc_height)
        is_disc = in_column & (bump > 0)
        is_body = in_column & ~is_disc & (z_col[:, None] < spine.disc_z[0] + 40)
        img[is_body] = t["bone"]
        edge = in_column & ((np.abs(y - wall) < 1.2) | (np.abs(y - wall + depth) < 1.2))
        img[edge & is_body] = t["cortex"]
        img[is_disc] = t["disc"]

    # The canal: CSF posterior to the wall, narrowed at a level by the disc bulge.
    if ax < 11.0:
        spinal = spine.narrowing["Spinal Canal Stenosis"]
        level = np.argmin(np.abs(z_col[:, None] - spine.disc_z), axis=1)
        bump = _disc_bump(z_col, spine.disc_z, spine.disc_height)
        bulge = (0.9 * spinal[level] * bump)[:, None] * spine.canal_depth
        width = spine.canal_depth * np.sqrt(1 - (ax / 12.0) ** 2)
        canal = (y > wall + bulge) & (y < wall + width - 0.25 * bulge)
        # A degenerated, bulging disc is dark on every contrast.
        img[(y > wall) & (y <= wall + bulge) & (bump[:, None] > 0)] = t["ligament"] * 2
        img[canal] = t["csf"]
        if ax < 3.0:  # cauda equina roots inside the sac
            img[canal & (np.abs(y - wall - width / 2) < 1.0)] = t["nerve"]
        img[(y >= wall + width) & (y < wall + width + 2.5)] = t["ligament"]
        if ax < 6.0:  # spinous processes behind the canal
            spinous = (y > wall + width + 4) & (y < wall + width + 40)
            img[spinous & (bump[:, None] < 0.2)] = t["bone"]

    # Parasagittal: pedicles at the vertebrae, foramina (fat around the root) at the discs.
    weight = np.exp(-(((ax - FORAMEN_X) / 4.5) ** 2))
    if weight > 0.15:
        side = "Left" if lateral > 0 else "Right"
        foraminal = spine.narrowing[f"{side} Neural Foraminal Narrowing"]
        wall_d = spine.posterior_wall(spine.disc_z)
        img[(y > wall) & (y < wall + 13)] = t["bone"]
        for k, zc in enumerate(spine.disc_z):
            cy, cz = wall_d[k] + 6.0, zc + 3.0
            r = foraminal[k]
            ry, rz = 5.0 * (1 - 0.75 * r) * weight, 8.0 * (1 - 0.6 * r) * weight
            img[_ellipse(y, z, cy, cz, 6.5, 10.0)] = t["ligament"]
            img[_ellipse(y, z, cy, cz, max(ry, 0.5), max(rz, 0.5))] = t["fat"]
            img[_ellipse(y, z, cy - 0.5, cz + 3.0 * (1 - r), 2.2, 2.2)] = t["nerve"]
        img[(y > wall + 13) & (y < wall + 28)] = np.maximum(
            img[(y > wall + 13) & (y < wall + 28)], t["bone"] * 0.8
        )
    return _finish(img, spacing)


def render_axial(
    spine: Spine,
    level: int,
    z: float,
    contrast: str,
    shape: tuple[int, int],
    spacing: float,
    origin_x: float,
    origin_y: float,
) -> np.ndarray:
    """Render the axial slice at height ``z`` through disc ``level`` (0 = L1/L2).

    Columns run to the patient's left (``x = origin_x + col * spacing``), rows
    posterior (``y = origin_y + row * spacing``), as with ImageOrientationPatient
    ``[1, 0, 0, 0, 1, 0]``: the patient's left is on the image's right.

    Returns
    -------
    ndarray of shape ``shape``, float32 intensities in [0, 1].
    """
    t = CONTRASTS[contrast]
    rows, cols = shape
    y = origin_y + np.arange(rows, dtype=np.float32)[:, None] * spacing
    x = origin_x + np.arange(cols, dtype=np.float32)[None, :] * spacing
    wall = float(spine.posterior_wall(z))
    depth = spine.body_depth
    img = np.zeros(shape, np.float32)
    disc_part = float(_disc_bump(z, spine.disc_z[level : level + 1], spine.disc_height))

    img[_ellipse(x, y, 0.0, wall + 10, 150.0, 105.0)] = t["soft"]
    img[_ellipse(x, y, 0.0, wall + 10, 140.0, 95.0) & ~_ellipse(x, y, 0, wall + 10, 128, 84)] = t[
        "fat"
    ]
    for sx in (-1, 1):
        img[_ellipse(x, y, sx * 24.0, wall + 42, 19.0, 24.0)] = t["muscle"]  # paraspinal
        img[_ellipse(x, y, sx * 36.0, wall - depth / 2, 13.0, 17.0)] = t["muscle"]  # psoas
    img[_ellipse(x, y, 12.0, wall - depth - 13, 10.0, 10.0)] = t["aorta"]
    img[_ellipse(x, y, -17.0, wall - depth - 10, 12.0, 6.0)] = t["ivc"]

    body = _ellipse(x, y, 0.0, wall - depth / 2, BODY_HALF_WIDTH, depth / 2)
    img[body] = t["bone"] * (1 - disc_part) + t["disc"] * disc_part
    img[body & ~_ellipse(x, y, 0.0, wall - depth / 2, BODY_HALF_WIDTH - 2, depth / 2 - 2)] = t[
        "cortex"
    ]

    # Posterior arch: facets and lamina around the canal.
    for sx in (-1, 1):
        img[_ellipse(x, y, sx * 15.0, wall + 13, 6.0, 7.0)] = t["bone"]
    img[(np.abs(x) < 14) & (y > wall + spine.canal_depth) & (y < wall + spine.canal_depth + 5)] = t[
        "ligament"
    ]
    img[(np.abs(x) < 3) & (y > wall + spine.canal_depth + 5) & (y < wall + 50)] = t["bone"]

    # Thecal sac, narrowed in AP by the disc bulge of spinal stenosis.
    spinal = spine.narrowing["Spinal Canal Stenosis"][level] * disc_part
    bulge = 0.9 * spinal * spine.canal_depth
    sac_depth = spine.canal_depth - bulge
    img[_ellipse(x, y, 0.0, wall + bulge + sac_depth / 2, 10.0, max(sac_depth / 2, 0.5))] = t["csf"]
    img[_ellipse(x, y, 0.0, wall, 9.0, max(bulge, 0.3)) & (y > wall)] = t["ligament"] * 2

    # Lateral recesses (patient left = +x), squeezed by a hypertrophic facet.
    for side, sx in (("Left", 1), ("Right", -1)):
        r = spine.narrowing[f"{side} Subarticular Stenosis"][level]
        cx, cy = sx * RECESS_X, wall + 3.0
        img[_ellipse(x, y, cx, cy, 4.5 * (1 - 0.8 * r) + 0.3, 3.5 * (1 - 0.7 * r) + 0.3)] = t["csf"]
        img[_ellipse(x, y, cx, cy - 0.5, 1.5, 1.5)] = t["nerve"]
        facet = 3.0 + 5.0 * r
        img[_ellipse(x, y, sx * (RECESS_X + 7.5 - 2.5 * r), cy + 6.0 - 3.0 * r, facet, facet)] = t[
            "ligament"
        ]
    return _finish(img, spacing)
