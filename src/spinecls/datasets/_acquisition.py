"""How a synthetic study is acquired and read: series, slice planes and labelled points.

Geometry and bookkeeping only, no pixels: :func:`design` draws one study's labels,
anatomy, pose, series and labelled points from its random generator, so the metadata
of many studies can be drawn, and checked against the real data's rates, without
rendering a slice. Which series a study has comes from :mod:`._layout`, what the
scanner sets for each (matrix, planes, instance numbers) from :mod:`._scanner`.

A reader labels each structure on the slice that passes through it: the spinal canal
on the Sagittal T2/STIR slice nearest the canal's centre at that level (where the canal
is deepest), a foramen on the Sagittal T1 slice nearest its centre, a subarticular
recess on the axial slice through the disc's centre. No slice is a near-tie: the
labelled one lies within ``CLEAR`` (sagittal) or ``AXIAL_CLEAR`` of a slice gap of the
structure's centre and every other one at least 1 minus that away, so the image alone
decides, and a level point found on a sagittal series carries to the right axial slice
with room for error. Per-level variations of the anatomy (a lateral shift of the
centreline or of a foramen under about 1 mm, a disc's height under about 2 mm) are
drawn to meet that, and a pose that still fails is drawn again.

A ``"clinical"`` study (:mod:`._variation`) first draws its quirks, then shapes its
spine with them and takes its sagittal fields of view, their placement and the
sagittal contrasts from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..labels import CONDITIONS, LEVELS, SEVERITIES, SEVERITY_PRIORS
from ._anatomy import Pose, Spine, cross, rotation
from ._layout import RATES, Layout, draw_layout
from ._scanner import Series, centred_planes, draw_instance_numbers, draw_matrix
from ._variation import CLINICAL, VARIATIONS, Quirks, draw_quirks, vary

CLEAR = 0.25
"""A labelled sagittal slice lies within this fraction of a slice gap of the structure."""
AXIAL_CLEAR = 0.15
"""A labelled axial slice lies within this fraction of a slice gap of the disc's centre."""
# Per-level variations aim inside the CLEARs, with room for their coupling.
_SNAP, _AXIAL_SNAP = 0.22, 0.12
_MARGIN = 0.06  # labelled points lie this fraction of the image inside its edges
_MAX_TRIES = 200
_SIDES = ("Left", "Right")
_CLICK_MM = 0.8  # a reader's click jitter (standard deviation, mm)
# Narrowing of the structure (0 = none, 1 = obliterated) drawn for each severity grade.
_NARROWING = {"normal_mild": (0.0, 0.3), "moderate": (0.38, 0.62), "severe": (0.7, 0.95)}


@dataclass
class Point:
    """One labelled coordinate: a slice of a series (indices) and (column, row) on it."""

    series: int
    slice: int
    condition: str
    level: int
    col: float
    row: float


@dataclass
class Design:
    """Everything about one study but its pixels."""

    severity: dict[str, np.ndarray]
    spine: Spine
    pose: Pose
    series: list[Series]
    points: list[Point] = field(default_factory=list)
    quirks: Quirks | None = None


def _offset(residual: float, gap: float, rng, snap: float = _SNAP) -> float:
    """Shift (mm) that brings a structure ``residual`` mm from its nearest slice within
    ``snap`` of a gap of it: none when it already is, else the smallest, plus a little."""
    limit = snap * gap
    if abs(residual) <= limit or abs(residual) > gap / 2:  # fine, or beyond the series
        return 0.0
    target = np.sign(residual) * (limit - rng.uniform(0.0, 0.05) * gap)
    return float(target - residual)


def _within(rng, centre: float, lo: float, hi: float, spread: float = 25.0) -> float:
    """A field-of-view centre near ``centre`` (within ``spread`` mm), kept in [lo, hi]."""
    a, b = max(lo, centre - spread), min(hi, centre + spread)
    return float(rng.uniform(a, b)) if a <= b else float((lo + hi) / 2)


def _residual(position: float, lattice: np.ndarray) -> float:
    return float(position - lattice[np.argmin(np.abs(lattice - position))])


class _Study:
    """One attempt at a study's geometry; ``None`` from :meth:`build` means draw again."""

    def __init__(self, rng, layout: Layout, narrowing, size_range, quirks: Quirks | None):
        self.rng, self.layout, self.size_range, self.quirks = rng, layout, size_range, quirks
        self.spine = Spine.random(rng, narrowing)
        if quirks is not None:
            vary(self.spine, quirks, rng)
        self.pose = Pose(
            rotation(rng.uniform(-5, 5), rng.uniform(-8, 8), rng.uniform(-0.5, 0.5)),
            np.array([rng.uniform(-40, 40), rng.uniform(0, 60), rng.uniform(-60, 60)]),
        )

    def patient(self, a) -> np.ndarray:
        return self.pose.to_patient(a)

    def axial_ref(self, k: int) -> np.ndarray:
        """Where an axial slice through level ``k``'s disc should pass: the canal's centre
        on the disc's mid-plane, the point a localizer finds on the sagittal series."""
        return self.patient(self.spine.canal_point(k))

    # -- sagittal ------------------------------------------------------------------
    def sagittal_points(self) -> np.ndarray:
        """The points a sagittal series must show: canal and foramina at every level."""
        s = self.spine
        points = [s.canal_point(k) for k in range(len(LEVELS))]
        points += [s.foramen_point(k, side) for k in range(len(LEVELS)) for side in _SIDES]
        return self.patient(np.array(points))

    def sagittal_lattice(self) -> tuple[np.ndarray, float] | None:
        """Slice positions (patient x) and gap of a sagittal series."""
        rng = self.rng
        n = int(rng.integers(15, 21))
        gap = rng.uniform(3.3, 4.5)
        xs = self.sagittal_points()[:, 0]
        # Planned on the spine with an error of a slice or so, covering both foramina.
        half = (n - 1) / 2 * gap - gap / 2
        lo, hi = xs.max() - half, xs.min() + half
        if lo > hi:
            return None
        centre = np.clip(xs[: len(LEVELS)].mean() + rng.normal(0.0, 4.0), lo, hi)
        return centre + (np.arange(n) - (n - 1) / 2) * gap, gap

    def sagittal(self, description, contrast, xs, gap) -> Series:
        """A sagittal series; the spine lies anywhere in its field of view that shows the
        labelled points, the sacrum below L5/S1 and some room above L1/L2 (a clinical
        study's field may instead end just below L5/S1)."""
        rng, quirks = self.rng, self.quirks
        fov = rng.uniform(200.0, 250.0) if quirks is None else quirks.sagittal_fov(rng)
        spread = 25.0 if quirks is None else CLINICAL["off_centre_mm"]
        shape, spacing = draw_matrix(rng, self.size_range, fov)
        height, width = shape[0] * spacing[0], shape[1] * spacing[1]
        points = self.sagittal_points()
        y_lo, y_hi = points[:, 1].min(), points[:, 1].max()
        z_lo, z_hi = points[:, 2].min() - 25.0, points[:, 2].max() + 15.0
        y = _within(
            rng,
            (y_lo + y_hi) / 2,
            y_hi - width * (0.5 - _MARGIN) + 4.0,
            y_lo + width * (0.5 - _MARGIN) - 4.0,
            spread,
        )
        if quirks is not None and quirks.low_coverage:
            # The lowest labelled point just inside the margin above the lower edge.
            bottom = points[:, 2].min() - _MARGIN * height - rng.uniform(1.0, 8.0)
            z = max(bottom + height / 2, z_hi - height / 2)
        else:
            z = _within(rng, (z_lo + z_hi) / 2, z_hi - height / 2, z_lo + height / 2, spread)
        row_dir, col_dir = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])
        centred = centred_planes([(x, y, z) for x in xs], row_dir, col_dir, shape, spacing)
        return self.series(description, contrast, centred, gap)

    def series(self, description, contrast, planes, gap) -> Series:
        return Series(
            series_id=0,
            description=description,
            contrast=contrast,
            planes=planes,
            instances=draw_instance_numbers(self.rng, len(planes)),
            thickness=gap * self.rng.uniform(0.8, 1.0),
            gap=gap,
        )

    # -- axial ---------------------------------------------------------------------
    def axial_frame(self, normal) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normal, row and column directions of an axial plane: rows run to the patient's
        left as closely as the normal allows, columns posterior."""
        n = normal / np.linalg.norm(normal)
        row_dir = np.array([1.0, 0.0, 0.0]) - n[0] * n
        row_dir /= np.linalg.norm(row_dir)
        return n, row_dir, cross(n, row_dir)

    def in_plane_centre(self, levels, row_dir, col_dir) -> np.ndarray:
        rng = self.rng
        centre = np.mean([self.axial_ref(k) for k in levels], axis=0)
        return centre + rng.uniform(-15, 15) * row_dir + rng.uniform(-15, 15) * col_dir

    def blocks(self, levels) -> tuple[Series, dict[int, int]]:
        """Per-level blocks of 3-5 slices along each disc: one orientation per block."""
        rng = self.rng
        gap = rng.uniform(3.0, 4.5)
        shape, spacing = draw_matrix(rng, self.size_range, rng.uniform(160.0, 220.0))
        planes, labelled = [], {}
        for k in levels:
            disc = self.pose.rotation @ self.spine.disc_normal(self.spine.index(k))
            tilt = rotation(rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-3, 3))
            n, row_dir, col_dir = self.axial_frame(tilt @ disc)
            m = int(rng.integers(3, 6))
            through = (m - 1) // 2 if m % 2 else int(rng.choice([m // 2 - 1, m // 2]))
            ref = self.axial_ref(k)
            centre = self.in_plane_centre([k], row_dir, col_dir)
            # Superior to inferior; the labelled slice within _AXIAL_SNAP of a gap of the disc.
            heights = (
                np.dot(ref, n)
                + rng.uniform(-_AXIAL_SNAP, _AXIAL_SNAP) * gap
                - (np.arange(m) - through) * gap
            )
            centres = [centre + (hgt - np.dot(centre, n)) * n for hgt in heights]
            labelled[k] = len(planes) + through
            planes += centred_planes(centres, row_dir, col_dir, shape, spacing)
        return self.series("Axial T2", "T2", planes, gap), labelled

    def stack_lattice(self) -> tuple[np.ndarray, float, float]:
        """Normal, gap and a reference height of the contiguous axial stacks' slices."""
        rng = self.rng
        tilt = rotation(0.0, rng.uniform(-12, 12), rng.uniform(-2, 2))
        normal = tilt @ np.array([0.0, 0.0, 1.0])
        return normal, rng.uniform(4.0, 5.5), rng.uniform(-50.0, 50.0)

    def stack(self, levels, lattice) -> Series:
        """One contiguous stack through ``levels``, its slices on the shared lattice."""
        rng = self.rng
        normal, gap, base = lattice
        n, row_dir, col_dir = self.axial_frame(normal)
        shape, spacing = draw_matrix(rng, self.size_range, rng.uniform(160.0, 220.0))
        heights = [np.dot(self.axial_ref(k), n) for k in levels]
        top = (max(heights) + rng.uniform(6, 14) - base) // gap
        bottom = -((base - min(heights) + rng.uniform(6, 14)) // gap)
        steps = np.arange(top, bottom - 1, -1)
        centre = self.in_plane_centre(levels, row_dir, col_dir)
        centres = [centre + (base + j * gap - np.dot(centre, n)) * n for j in steps]
        return self.series(
            "Axial T2", "T2", centred_planes(centres, row_dir, col_dir, shape, spacing), gap
        )

    # -- per-level variations ------------------------------------------------------
    def snap_discs(self, lattice, levels) -> None:
        normal, gap, base = lattice
        along = np.dot(self.pose.rotation[:, 2], normal)
        for k in levels:
            residual = (np.dot(self.axial_ref(k), normal) - base) % gap
            residual = residual - gap if residual > gap / 2 else residual
            shift = _offset(residual, gap, self.rng, _AXIAL_SNAP)
            self.spine.adjust(k, height=shift / along)

    def snap_canal(self, xs, gap) -> None:
        across = self.pose.rotation[0, 0]
        for k in range(len(LEVELS)):
            x = self.patient(self.spine.canal_point(k))[0]
            self.spine.adjust(k, lateral=_offset(_residual(x, xs), gap, self.rng) / across)

    def snap_foramina(self, xs, gap) -> None:
        across = self.pose.rotation[0, 0]
        for side in _SIDES:
            for k in range(len(LEVELS)):
                x = self.patient(self.spine.foramen_point(k, side))[0]
                shift = _offset(_residual(x, xs), gap, self.rng) / across
                self.spine.adjust(k, foramina=(shift, 0.0) if side == "Left" else (0.0, -shift))

    # -- labels --------------------------------------------------------------------
    def label(self, design, index, slice_index, condition, k, centre, point) -> bool:
        """Label ``point`` on the chosen slice; False when it is not clearly the one."""
        series = design.series[index]
        clear = AXIAL_CLEAR if series.description == "Axial T2" else CLEAR
        origins = np.array([p.origin for p in series.planes])
        normals = np.array([p.normal for p in series.planes])
        distances = np.abs(np.einsum("ij,ij->i", centre - origins, normals))
        nearest = int(np.argmin(distances))
        if slice_index is None:
            slice_index = nearest
        others = np.delete(distances, slice_index)
        plane = series.planes[slice_index]
        if (
            slice_index != nearest
            or distances[slice_index] > clear * series.gap
            or (others.size and others.min() < (1 - clear) * series.gap)
            or not plane.contains(point, _MARGIN)
        ):
            return False
        col, row = plane.to_pixel(point)
        jitter = self.rng.normal(0.0, _CLICK_MM, size=2) / np.array(plane.spacing[::-1])
        design.points.append(
            Point(index, slice_index, condition, k, col + jitter[0], row + jitter[1])
        )
        return True

    def build(self, severity) -> Design | None:
        rng, layout, spine = self.rng, self.layout, self.spine
        # Slice positions first, then the per-level variations that keep labels clear of ties.
        t2_lattice = self.sagittal_lattice()
        shared = rng.random() < RATES["same_sagittal_plan"]
        t1_lattice = t2_lattice if shared else self.sagittal_lattice()
        if t1_lattice is None or t2_lattice is None:
            return None
        stacks = [levels for kind, levels in layout.axial if kind == "stack"]
        lattice = self.stack_lattice() if stacks else None
        if lattice is not None:
            self.snap_discs(lattice, sorted({k for s in stacks for k in s}))
        self.snap_canal(*t2_lattice)
        self.snap_foramina(*t1_lattice)

        quirks = self.quirks
        design = Design(severity, spine, self.pose, [], quirks=quirks)
        t1 = "T1" if quirks is None else quirks.t1_contrast
        if layout.t1:
            design.series.append(self.sagittal("Sagittal T1", t1, *t1_lattice))
        if layout.t1 == 2:  # a repeat, planned anew; the labels stay on the first
            repeat = self.sagittal_lattice()
            if repeat is None:
                return None
            design.series.append(self.sagittal("Sagittal T1", t1, *repeat))
        if quirks is None:
            contrast = "STIR" if rng.random() < 0.3 else "T2"
        else:
            contrast = quirks.t2_contrast
        if layout.t2:
            design.series.append(self.sagittal("Sagittal T2/STIR", contrast, *t2_lattice))
        first_axial = len(design.series)
        labelled_slices = []
        for kind, levels in layout.axial:
            if kind == "stack":
                series, labelled = self.stack(levels, lattice), dict.fromkeys(levels)
            else:
                series, labelled = self.blocks(levels)
            design.series.append(series)
            labelled_slices.append(labelled)

        ok = True
        if layout.t2:
            for k in range(len(LEVELS)):
                p = self.patient(spine.canal_point(k))
                ok &= self.label(design, first_axial - 1, None, CONDITIONS[0], k, p, p)
        for side in _SIDES if layout.t1 else ():
            for k in range(len(LEVELS)):
                p = self.patient(spine.foramen_point(k, side))
                ok &= self.label(design, 0, None, f"{side} Neural Foraminal Narrowing", k, p, p)
        for i, side in enumerate(_SIDES):
            for k, holders in sorted(layout.sides.items()):
                where = holders[i]
                point = self.patient(spine.recess_point(k, side))
                ok &= self.label(
                    design,
                    first_axial + where,
                    labelled_slices[where][k],
                    f"{side} Subarticular Stenosis",
                    k,
                    self.axial_ref(k),
                    point,
                )
        if not ok:
            return None
        used: set[int] = set()
        for series in design.series:
            while series.series_id in used or series.series_id == 0:
                series.series_id = int(rng.integers(10**6, 2**32))
            used.add(series.series_id)
        return design


def design(
    rng: np.random.Generator, size_range: tuple[int, int], variation: str = "plain"
) -> Design:
    """Draw one study: labels with the real class balance, then a geometry that fits.

    Parameters
    ----------
    rng : numpy.random.Generator
        The study's generator; rendering continues from where this leaves it.
    size_range : (int, int)
        Range of image rows and columns.
    variation : {"plain", "clinical"}, default="plain"
        ``"clinical"``: draw the study's quirks first (:func:`._variation.draw_quirks`).

    Returns
    -------
    Design
        Labels, anatomy, pose, series (ids still 0), labelled points and quirks.
    """
    if variation not in VARIATIONS:
        raise ValueError(f"variation must be one of {list(VARIATIONS)}, got {variation!r}")
    quirks = draw_quirks(rng) if variation == "clinical" else None
    severity = {
        c: rng.choice(len(SEVERITIES), size=len(LEVELS), p=SEVERITY_PRIORS[c]) for c in CONDITIONS
    }
    narrowing = {
        c: np.array([rng.uniform(*_NARROWING[SEVERITIES[s]]) for s in severity[c]])
        for c in CONDITIONS
    }
    layout = draw_layout(rng)
    for _ in range(_MAX_TRIES):
        built = _Study(rng, layout, narrowing, size_range, quirks).build(severity)
        if built is not None:
            return built
    raise RuntimeError(f"no study geometry met the labelling rules in {_MAX_TRIES} draws")
