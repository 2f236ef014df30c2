"""An anatomy-like digital phantom of the lumbar spine, rendered on any slice plane.

:func:`render` maps each pixel of a :class:`~._anatomy.Plane` through the patient's
:class:`~._anatomy.Pose` into the :class:`~._anatomy.Spine`'s frame and returns tissue
intensities in [0, 1] for an MR contrast. Narrowing (0 = none, 1 = obliterated)
visibly shrinks the structure each condition names: the canal behind a bulging disc
(spinal canal stenosis), the fat around the nerve root in the foramen (foraminal
narrowing) and the lateral recess beside the thecal sac (subarticular stenosis).

A spine with per-disc sizes and signal (:mod:`._variation`'s clinical studies) also
shows faint, thin or fused discs, a sacrum that bends backwards and tapers to the
coccyx, a thecal sac that ends in the sacrum and a spinal cord down to its conus.

Some structures are thin across the spine on purpose, so that the slice a reader
would pick is clear from the image: the cauda equina roots run within 1.8 mm of the
midline, the tips of the spinous processes are 2-6 mm thick, the canal's
cross-section is a diamond (deepest on the midline) and the foraminal fat is an
ellipsoid 6.4 mm wide with the exiting root within 1.8 mm of its centre.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._anatomy import (
    FORAMEN_DEPTH,
    FORAMEN_RISE,
    RECESS_X,
    ROOT_HALF_WIDTH,
    Plane,
    Pose,
    Spine,
)

# Tissue intensities per contrast, before scaling, bias field and noise. Fluid is
# bright on T2 and dark on T1; fat is bright on T1 and T2 and suppressed on STIR and on
# the water image of a Dixon (water-fat) sequence, whose fat image shows fat and fatty
# marrow bright and everything watery (discs, fluid, muscle) dark.
_TISSUES = (
    "soft", "muscle", "fat", "bone", "cortex", "disc", "csf", "nerve", "aorta", "ivc", "ligament"
)  # fmt: skip
CONTRASTS: dict[str, dict[str, float]] = {
    name: dict(zip(_TISSUES, values))
    for name, values in {
        "T1": (0.35, 0.30, 0.95, 0.70, 0.10, 0.40, 0.12, 0.30, 0.04, 0.25, 0.08),
        "T2": (0.30, 0.22, 0.75, 0.45, 0.08, 0.80, 1.00, 0.30, 0.04, 0.55, 0.06),
        "STIR": (0.25, 0.20, 0.10, 0.25, 0.06, 0.85, 1.00, 0.35, 0.04, 0.60, 0.05),
        "T1 water": (0.35, 0.35, 0.08, 0.28, 0.06, 0.42, 0.15, 0.30, 0.04, 0.30, 0.08),
        "T2 water": (0.28, 0.22, 0.08, 0.22, 0.06, 0.80, 1.00, 0.30, 0.04, 0.55, 0.06),
        "T2 fat": (0.12, 0.07, 0.95, 0.65, 0.03, 0.06, 0.03, 0.05, 0.02, 0.04, 0.04),
    }.items()
}

_FORAMEN_HALF_WIDTH = 3.2


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
        v_in, z_in = v[box], z[box]
        if spine.sacrum is not None:  # nothing of the column below the coccyx
            v_in = np.where(spine.sacral_depth(z_in) > spine.coccyx, np.float32(1e4), v_in)
        _column(spine, img[box], t, u[box], v_in, z_in, a0, ar, ac, rows_in, cols_in)
    sigma_row = max(0.7 / plane.spacing[0], 0.3)
    sigma_col = max(0.7 / plane.spacing[1], 0.3)
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma_col, sigmaY=sigma_row)


def _column(spine, img, t, u, v, z, a0, ar, ac, r_idx, c_idx) -> None:
    """Paint the vertebral column and what lies behind it into ``img`` (a view)."""
    # Signed distance to every disc's mid-plane (affine in pixels), and the nearest disc.
    discs = np.arange(len(spine.disc_z))
    if spine.disc_scale is not None:
        # A long column: a disc more than a step beyond the box is never the nearest.
        near = (spine.disc_z > float(z.min()) - 60.0) & (spine.disc_z < float(z.max()) + 60.0)
        discs = discs[near] if near.any() else discs
    dist = []
    for k in discs:
        centre, n = spine.disc_centre(k), spine.disc_normal(k)
        dist.append(_grid(np.dot(a0 - centre, n), np.dot(ar, n), np.dot(ac, n), r_idx, c_idx))
    dist = np.stack(dist)
    nearest = np.abs(dist).argmin(axis=0)
    dz = np.take_along_axis(dist, nearest[None], axis=0)[0]
    disc = discs[nearest]
    h = spine.disc_height
    depth = spine.body_depth

    # Vertebral bodies and discs: an elliptic column, cut into discs along the spine.
    if spine.sacrum is None:
        body = _ellipse(u, v, 0.0, -depth / 2, spine.body_half_width, depth / 2)
        inner = _ellipse(u, v, 0.0, -depth / 2, spine.body_half_width - 2.0, depth / 2 - 2.0)
    else:  # full size down to S1, then narrowing to the coccyx
        below = np.maximum(spine.sacral_depth(z) - 30.0, 0.0)
        taper = np.clip(1.0 - below * (1.0 / (spine.coccyx - 30.0)), 0.05, 1.0)
        depth, width = depth * taper, spine.body_half_width * taper
        body = _ellipse(u, v, 0.0, -depth / 2, width, depth / 2)
        inner = _ellipse(
            u, v, 0.0, -depth / 2, np.maximum(width - 2.0, 0.3), np.maximum(depth / 2 - 2.0, 0.3)
        )
    adz = np.abs(dz)
    img[body] = t["bone"]
    if spine.disc_scale is None:
        img[body & (~inner | (adz < 0.55 * h + 1.2))] = t["cortex"]
        # The nucleus is brighter than the annulus: the slice through a disc's middle shows it.
        nucleus = body & (adz < 0.55 * h)
        img[nucleus] = t["disc"] * (1.0 - 0.3 * (adz[nucleus] * (1.0 / (0.55 * h))) ** 2)
    else:  # each disc its own height, endplates and contrast against the bone
        half = (0.55 * h * spine.disc_scale).astype(np.float32)[disc]
        img[body & (~inner | (adz < half + spine.endplate.astype(np.float32)[disc]))] = t["cortex"]
        nucleus = body & (adz < half)
        profile = t["disc"] * (1.0 - 0.3 * (adz[nucleus] / half[nucleus]) ** 2)
        signal = spine.disc_signal.astype(np.float32)[disc[nucleus]]
        img[nucleus] = t["bone"] + signal * (profile - t["bone"])

    # Behind the wall: only a band of the box, which is all the rest needs.
    canal = spine.canal_depth
    box = _window((np.abs(u) < 26.0) & (v > -1.0) & (v < canal + 41.0))
    if box is not None:
        _posterior(spine, img[box], t, u[box], v[box], z[box], dz[box], disc[box])


def _posterior(spine, img, t, u, v, z, dz, disc) -> None:
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
    if spine.sacrum is not None:  # the sac ends at S2: epidural fat fills the canal below
        sac &= spine.sacral_depth(z) < spine.sac_end
    img[sac] = t["csf"]
    img[sac & (au < ROOT_HALF_WIDTH) & (np.abs(v - centre) < 1.0)] = t["nerve"]
    if spine.conus is not None:  # the spinal cord, narrowing to its conus
        cone = np.clip((z - spine.conus) * (1.0 / 15.0), 0.0, 1.0)
        img[sac & (au < 4.5 * cone) & (np.abs(v - centre) < 3.5 * cone)] = t["nerve"]
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
