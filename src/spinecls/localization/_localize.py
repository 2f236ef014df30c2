"""The per-series steps of :class:`spinecls.LevelLocalizer`.

Training: one labelled series -> samples for the stack network (a sagittal series
whole; an axial series as a window of slices around each labelled level), for the
refining network (a crop around each labelled point) and the distances between its
consecutive levels. Inference: a study's series -> points, through the two networks (a
sagittal condition's five levels decoded as one chain, :mod:`spinecls.localization._levels`); an
axial series is reached by projecting the study's sagittal level points through the
DICOM geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .._utils.validation import listing
from ..labels import AXIAL_T2, CONDITION_SERIES, CONDITIONS, LEVELS, SAGITTAL_T1, SAGITTAL_T2
from ..models.heatmap import decode_heatmaps
from ._levels import decode_chain, level_steps, shift_confidence
from ._point_frames import check_in_image
from ._volumes import (
    Volume,
    collate_stacks,
    crop,
    read_volume,
    to_original,
    to_working,
    to_working_xy,
)

__all__ = [
    "AXIAL",
    "CHANNELS",
    "SERIES_CHANNELS",
    "Settings",
    "predict_study",
    "series_samples",
]

AXIAL = AXIAL_T2
CHANNELS: tuple[tuple[str, str | None], ...] = (
    *((c, level) for c in CONDITIONS if CONDITION_SERIES[c] != AXIAL for level in LEVELS),
    *((c, None) for c in CONDITIONS if CONDITION_SERIES[c] == AXIAL),
)
"""The stack network's points: the 15 sagittal (condition, level) points, then the left
and right subarticular points of whichever level an axial slice shows."""

SERIES_CHANNELS: dict[str, tuple[int, ...]] = {
    description: tuple(k for k, (c, _) in enumerate(CHANNELS) if CONDITION_SERIES[c] == description)
    for description in (SAGITTAL_T2, SAGITTAL_T1, AXIAL)
}
"""The channels located on each series type."""

# confidence counts the in-plane probability within this many original pixels
CONFIDENCE_RADIUS = 5.0
# weight of the projection's Gaussian prior against the network's axial slice score
PRIOR = 1.0
# a chain whose naming is less likely than this against the same chain one disc up or
# down (:func:`spinecls.localization._levels.shift_confidence`) is flagged ``qc_level_shift``
LEVEL_SHIFT_BELOW = 0.95
# a foramen's slice: the chain's, or one this near it where the refined heatmap is sharper
# (on the benchmark the chain put 10 % of the foramina one slice off, never two)
SLICE_REACH = 1
# A level covered by several axial series is read on the one whose nearest slice passes
# most nearly through its disc, taken as a circle of this radius (mm) about the level's
# point, square to the column (:func:`disc_fit`): a lumbar disc is 35-50 mm across.
DISC_RADIUS = 20.0


@dataclass(frozen=True)
class Settings:
    """The sizes shared by training and inference (from the estimator's parameters).

    ``pixel_mm``: the working pixel's size in mm, or None to shrink every slice into the
    working square whatever its field of view (a model of an earlier version). The stack
    network's output cell is ``stride`` working pixels.
    """

    size: int
    neighbours: int
    zoom: float
    crop: int
    margin: int
    axial_window: int
    pixel_mm: float | None = None
    refine_stride: int = 2

    @property
    def stride(self) -> int:
        return stack_stride(self.pixel_mm)

    def ratio(self, image: np.ndarray, spacing: float = float("nan")) -> float:
        """Working pixels per original pixel of an image whose pixels are ``spacing`` mm:
        ``spacing / pixel_mm``, or less for an image too large for the working square (or
        without a spacing: then shrunk to fit)."""
        fit = self.size / max(image.shape)
        if self.pixel_mm is None or not np.isfinite(spacing):
            return fit
        return min(fit, spacing / self.pixel_mm)

    def scales(self, volume: Volume) -> list[float]:
        """:meth:`ratio` of every slice of a volume."""
        return [self.ratio(im, sp) for im, sp in zip(volume.images, volume.spacing)]


def stack_stride(pixel_mm: float | None) -> int:
    """The stack network's output stride: 2 at a working resolution in mm (cells of two
    working pixels), 4 for a model that shrinks every slice to fit."""
    return 4 if pixel_mm is None else 2


def channel(condition: str, level: str) -> int:
    """Index in :data:`CHANNELS` of a labelled point."""
    return CHANNELS.index((condition, None if CONDITION_SERIES[condition] == AXIAL else level))


def _crop_sample(volume: Volume, nbr: np.ndarray, x: float, y: float, settings: Settings, size):
    d = nbr[len(nbr) // 2]
    scale = settings.zoom * settings.ratio(volume.images[d], volume.spacing[d])
    return crop([volume.images[i] for i in nbr], x, y, scale, size), scale


def training_samples(volume: Volume, description: str, points: pd.DataFrame, settings: Settings):
    """Samples of one labelled series.

    Parameters
    ----------
    volume : Volume
    description : str
    points : DataFrame
        The series' labelled points (``instance_number, condition, level, x, y``), each
        on a slice of ``volume``.

    Returns
    -------
    stacks, crops : lists of (images float16 (D, C, S, S), targets float32 (K, 4))
    """
    base, transforms = to_working(volume.images, settings.size, settings.scales(volume))
    nbr = volume.neighbours(settings.neighbours)
    index = {int(n): i for i, n in enumerate(volume.instance_numbers)}
    stacks, crops = [], []
    size = settings.crop + 2 * settings.margin
    centre = (size - 1) / 2
    targets = {}
    for p in points.itertuples(index=False):
        d = index[int(p.instance_number)]
        u, v = to_working_xy(transforms[d], p.x, p.y)
        group = p.level if description == AXIAL else None
        targets.setdefault(group, []).append((channel(p.condition, p.level), d, u, v))
        images, _ = _crop_sample(volume, nbr[d], p.x, p.y, settings, size)
        target = np.zeros((len(CONDITIONS), 4), np.float32)
        target[CONDITIONS.index(p.condition)] = (0, centre, centre, 1)
        crops.append((images[None].astype(np.float16), target))
    for group in targets.values():
        slices = [d for _, d, _, _ in group]
        if description == AXIAL:
            members = np.flatnonzero(volume.stack == volume.stack[slices[0]])
            low = max(min(slices) - settings.axial_window, members[0])
            high = min(max(slices) + settings.axial_window, members[-1])
            window = np.arange(low, high + 1)
        else:
            window = np.arange(len(volume))
        target = np.zeros((len(CHANNELS), 4), np.float32)
        for k, d, u, v in group:
            target[k] = (d - window[0], u, v, 1)
        stacks.append((base[nbr[window]].astype(np.float16), target))
    return stacks, crops


def series_samples(row: dict, points: pd.DataFrame, settings: Settings):
    """Read one labelled series (a row of ``X``): its samples (:func:`training_samples`)
    and, for a sagittal series with geometry, the distances between its consecutive
    levels (:func:`spinecls.localization._levels.level_steps`)."""
    description = row["series_description"]
    volume = read_volume(
        row["series_dir"], largest_stack_only=description != AXIAL, skip_unreadable=False
    )
    index = {int(n): i for i, n in enumerate(volume.instance_numbers)}
    absent = sorted(set(points["instance_number"]) - set(index))
    if absent:
        raise ValueError(
            f"y: series {row['series_id']} of study {row['study_id']} has no slice with "
            f"instance_number {listing(absent)} in {row['series_dir']}"
        )
    check_in_image(
        points, {int(n): im.shape for n, im in zip(volume.instance_numbers, volume.images)}, row
    )
    stacks, crops = training_samples(volume, description, points, settings)
    steps = {}
    if volume.slices is not None and description != AXIAL:
        at = points.assign(slice=points["instance_number"].map(index))
        steps = level_steps(at, volume.to_patient)
    return stacks, crops, steps


def _forward(module: torch.nn.Module, samples: list, device) -> torch.Tensor:
    """Logits ``(B, D, K, h, w)`` of stacks (padded to the deepest)."""
    batch, _ = collate_stacks(
        [(torch.from_numpy(np.asarray(s, dtype=np.float32)), torch.zeros(1)) for s in samples]
    )
    module.eval()
    with torch.inference_mode():
        return module(**{k: v.to(device) for k, v in batch.items()}).float().cpu()


def _near_slices(volume: Volume, d: int, reach: int) -> list[int]:
    """Slice ``d`` and those within ``reach`` of it in its stack on its pixel grid (where
    a point's (x, y) on ``d`` means the same place), in slice order."""
    return [
        e
        for e in range(d - reach, d + reach + 1)
        if 0 <= e < len(volume)
        and volume.stack[e] == volume.stack[d]
        and volume.images[e].shape == volume.images[d].shape
    ]


def _refine(module, volume, nbr, found, settings, device, reach=0):
    """Sharpen points ``[(slice, x, y, condition index)]``: each point's slice, x, y and
    in-plane probability.

    With ``reach``, the point is refined from the same start on every slice within
    ``reach`` of its own (in its stack) and keeps the slice where the refined heatmap is
    sharpest (the most probability within ``CONFIDENCE_RADIUS``; its own slice on a
    tie): the refining network sees a structure at its finest scale, and a foramen is
    widest, and its heatmap sharpest, on the slice through its centre.
    """
    if not found:
        return []
    tried = []  # (point, slice) pairs, a point's own slice first
    for k, (d, *_) in enumerate(found):
        tried += [(k, c) for c in (d, *(c for c in _near_slices(volume, d, reach) if c != d))]
    crops, scales = [], []
    for k, c in tried:
        images, scale = _crop_sample(
            volume, nbr[c], found[k][1], found[k][2], settings, settings.crop
        )
        crops.append(images[None])
        scales.append(scale)
    logits = _forward(module, crops, device)
    centre = (settings.crop - 1) / 2
    best: dict[int, tuple[int, float, float, float]] = {}
    for (k, c), scale, maps in zip(tried, scales, logits):
        _, x, y, cond = found[k]
        radius = CONFIDENCE_RADIUS * scale / settings.refine_stride
        hit = decode_heatmaps(maps[:, [cond]], settings.refine_stride, radius=radius)
        p_plane = float(hit["p_plane"][0])
        if k not in best or p_plane > best[k][3]:
            best[k] = (
                c,
                x + (float(hit["x"][0]) - centre) / scale,
                y + (float(hit["y"][0]) - centre) / scale,
                p_plane,
            )
    return [best[k] for k in range(len(found))]


def _row(volume, d, condition, level, x, y, confidence):
    image = volume.images[d]
    rows, cols = image.shape
    return {
        "instance_number": int(volume.instance_numbers[d]),
        "condition": condition,
        "level": level,
        "x": x,
        "y": y,
        "confidence": confidence,
        "image_path": volume.paths[d],
        "qc_outside_coverage": False,
        "qc_outside_image": not (0 <= x <= cols - 1 and 0 <= y <= rows - 1),
        "qc_order": False,
        "level_confidence": 1.0,
        "qc_level_shift": False,
        "qc_skipped_slices": bool(volume.skipped),
        "_slice": d,
    }


def _cell_positions(volume: Volume, transforms: np.ndarray, settings: Settings, h: int, w: int):
    """Patient mm of every output cell's centre on the middle slice, and a cell's side (mm);
    None, 0 without geometry."""
    if volume.slices is None:
        return None, 0.0
    middle = len(volume) // 2
    centre = (settings.stride - 1) / 2
    v, u = np.meshgrid(
        np.arange(h) * settings.stride + centre,
        np.arange(w) * settings.stride + centre,
        indexing="ij",
    )
    x, y = to_original(transforms[middle], u.ravel(), v.ravel())
    positions = volume.to_patient(middle, x, y)
    return positions, float(np.linalg.norm(positions[1] - positions[0]))


def predict_sagittal(
    nets,
    volume: Volume,
    description: str,
    settings: Settings,
    device,
    steps=None,
    canal=None,
    conditions=CONDITIONS,
):
    """The level points of a sagittal series: a list of row dicts.

    Each condition's five levels are decoded together along the column
    (:func:`spinecls.localization._levels.decode_chain`), with ``steps`` (``{condition: [[mean,
    std]] * 4}``, mm) as the learned distances between consecutive levels, and named with
    the confidence :func:`spinecls.localization._levels.shift_confidence` gives. Given ``canal``
    (``{"points": {level: patient point}, "confidence": float}``, the study's five
    spinal canal points and their naming's confidence), a foraminal chain starts at
    their projections onto its slice (a foramen lies beside its level's canal point, and
    the refinement finds it there) and takes their naming's confidence. Each point is
    then refined (:func:`_refine`): a foramen on the chain's slice or a neighbour
    (``SLICE_REACH``), whichever its refined heatmap is sharpest on, the canal on the
    chain's slice.
    """
    base, transforms = to_working(volume.images, settings.size, settings.scales(volume))
    nbr = volume.neighbours(settings.neighbours)
    logits = _forward(nets[0], [base[nbr]], device)[0]
    positions, cell_mm = _cell_positions(volume, transforms, settings, *logits.shape[-2:])
    channels = [k for k in SERIES_CHANNELS[description] if CHANNELS[k][0] in conditions]
    found, p_slice, naming = [], [], []
    for start in range(0, len(channels), len(LEVELS)):
        chain = channels[start : start + len(LEVELS)]
        condition = CHANNELS[chain[0]][0]
        prior = None if steps is None else steps.get(condition)
        decoded = decode_chain(logits[:, chain], positions, prior, cell_mm)
        d = int(np.bincount([level[0] for level in decoded]).argmax())
        own = shift_confidence(logits[:, chain], [(r, c) for _, r, c, _ in decoded])
        starts, confidence, disagree = None, own, False
        # a second Sagittal T2/STIR names its own canal
        guided = bool(canal) and condition != CONDITIONS[0] and volume.slices is not None
        if guided:
            cells = [_cell_index(r, c, logits.shape[-1]) for _, r, c, _ in decoded]
            shift = chain_offset(positions[cells], np.array([canal["points"][lv] for lv in LEVELS]))
            confidence, disagree = agreement(canal["confidence"], own, shift)
            if shift == 0 or canal["confidence"] >= own:
                points = np.array([canal["points"][lv] for lv in LEVELS])
                x, y, _ = volume.slices[d].patient_to_pixel(points)
                starts = list(zip(x.tolist(), y.tolist()))
        for k, (d, row, col, p) in enumerate(decoded):
            u, v = (np.array([col, row]) * settings.stride + (settings.stride - 1) / 2).tolist()
            x, y = to_original(transforms[d], u, v) if starts is None else starts[k]
            found.append((d, float(x), float(y), CONDITIONS.index(condition)))
            p_slice.append(p)
            naming.append((confidence, disagree, guided))
    rows = []
    # the canal's refined heatmap does not single out its slice: it keeps the chain's
    reach = 0 if description == "Sagittal T2/STIR" else SLICE_REACH
    refined = _refine(nets[1], volume, nbr, found, settings, device, reach)
    for k, p, (named, disagree, guided), (d, x, y, p_plane) in zip(
        channels, p_slice, naming, refined
    ):
        rows.append(_row(volume, d, *CHANNELS[k], x, y, float(p[d]) * p_plane))
        rows[-1]["qc_outside_coverage"] = d in (0, len(volume) - 1)
        rows[-1]["level_confidence"] = named
        rows[-1]["qc_level_shift"] = disagree or named < LEVEL_SHIFT_BELOW
        rows[-1]["_disagree"], rows[-1]["_guided"] = disagree, guided
    _order_flags(volume, rows)
    return rows


def _cell_index(row: float, col: float, w: int) -> int:
    return int(round(row)) * w + int(round(col))


def chain_offset(chain: np.ndarray, reference: np.ndarray) -> int:
    """By how many levels one series' chain is named off another's (patient mm, L1/L2
    first, both ``(5, 3)``): the median, over its points, of the level of the reference
    nearest each (a reference extended one step beyond either end) minus its own level.
    0 when the two series name the same discs alike."""
    ref = np.vstack([2 * reference[0] - reference[1], reference, 2 * reference[-1] - reference[-2]])
    # along the column: the left-right offset between a foramen and the canal is not a level
    near = [int(np.argmin(np.linalg.norm((ref - p)[:, 1:], axis=1))) - 1 for p in chain]
    return int(np.median(np.array(near) - np.arange(len(chain))))


def agreement(first: float, second: float, shift: int) -> tuple[float, bool]:
    """Two series' confidences in their own namings, combined, and whether they disagree.

    Naming alike (``shift`` 0), they are two pieces of evidence for one naming: their
    odds multiply. Naming the discs differently, each one's doubt is taken as support for
    the other's naming: the surer naming's odds times the other's odds against itself
    (at least even odds: the surer one is kept), flagged as a disagreement.
    """
    first, second = (float(np.clip(p, 1e-6, 1 - 1e-6)) for p in (first, second))
    if shift == 0:
        odds = first / (1 - first) * second / (1 - second)
        return odds / (1 + odds), False
    sure, other = max(first, second), min(first, second)
    odds = sure / (1 - sure) * (1 - other) / other
    return odds / (1 + odds), True


def _order_flags(volume: Volume, rows: list[dict]) -> None:
    """Flag levels out of cranio-caudal order (each condition's points, L1/L2 first)."""
    for condition in {r["condition"] for r in rows}:
        mine = sorted(
            (r for r in rows if r["condition"] == condition), key=lambda r: LEVELS.index(r["level"])
        )
        if volume.slices is not None:
            height = [volume.to_patient(r["_slice"], r["x"], r["y"])[2] for r in mine]
        else:  # without geometry, image rows stand in (rows run down the patient)
            height = [-r["y"] for r in mine]
        for a in range(len(mine) - 1):
            if height[a] <= height[a + 1]:
                mine[a]["qc_order"] = mine[a + 1]["qc_order"] = True


def level_points(volume: Volume, rows: list[dict]) -> dict[str, tuple[np.ndarray, bool, float]]:
    """Patient point of each level from a sagittal series' rows (left and right foramina
    averaged), whether it was out of order, and how sure its naming is (the lowest of its
    rows' ``level_confidence``)."""
    out = {}
    for level in LEVELS:
        mine = [r for r in rows if r["level"] == level]
        if mine and volume.slices is not None:
            points = [volume.to_patient(r["_slice"], r["x"], r["y"]) for r in mine]
            out[level] = (
                np.mean(points, axis=0),
                any(r["qc_order"] for r in mine),
                min(r["level_confidence"] for r in mine),
            )
    return out


def disc_normals(points: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The column's direction at each level, from patient points (``{level: point}``):
    the unit vector from the level below to the level above (from the level itself at
    the ends of the chain), which a disc is square to. Empty with fewer than two points."""
    levels = [lv for lv in LEVELS if lv in points]
    out = {}
    for k, level in enumerate(levels):
        if len(levels) < 2:
            break
        above = points[levels[max(k - 1, 0)]]
        below = points[levels[min(k + 1, len(levels) - 1)]]
        step = np.asarray(above, float) - np.asarray(below, float)
        norm = np.linalg.norm(step)
        if norm > 0:
            out[level] = step / norm
    return out


def disc_fit(volume: Volume, point: np.ndarray, normal: np.ndarray | None) -> float:
    """How far an axial series' nearest slice lies from a level's disc (mm): the
    root-mean-square distance from its plane of a disc of radius ``DISC_RADIUS`` centred
    on ``point`` and square to ``normal``, ``sqrt(d ** 2 + (R sin(angle)) ** 2 / 4)`` for a
    centre ``d`` from the plane and an ``angle`` between the plane and the disc; the
    distance alone without a ``normal``. Infinite where :func:`predict_axial` places no
    row (outside the series' coverage, or farther than one slice spacing from a slice)."""
    if volume.slices is None:
        return float("inf")
    hit = volume.geometry.project(np.asarray(point, float)[None])
    stack = volume.geometry.stacks[int(hit.stack[0])]
    spacing = stack.spacing if np.isfinite(stack.spacing) else stack.coverage[1] - stack.coverage[0]
    distance = float(hit.distance[0])
    if not hit.in_coverage[0] or abs(distance) > spacing:
        return float("inf")
    if normal is None:
        return abs(distance)
    cos = min(abs(float(np.dot(stack.normal, normal))), 1.0)
    return float(np.hypot(distance, DISC_RADIUS * np.sqrt(1.0 - cos**2) / 2))


def choose_axial_series(volumes: dict, sources: dict) -> dict:
    """Which axial series reads each level: ``{key: {level: source}}`` for ``volumes``
    (``{key: Volume}``, in the study's series order) and ``sources`` (``{level: (patient
    point, order flag, naming confidence)}``, :func:`level_points`).

    A reader reads a level on the series whose slice passes most nearly through its
    disc, centred on it and parallel to it (:func:`disc_fit`, the disc square to the
    column the sagittal points trace): an axial stack angled along each disc before a
    straight stack that cuts the lower discs obliquely. A tie goes to the earlier series;
    a level no series covers is read on none.
    """
    normals = disc_normals({level: source[0] for level, source in sources.items()})
    out: dict = {key: {} for key in volumes}
    for level, source in sources.items():
        fits = [disc_fit(v, source[0], normals.get(level)) for v in volumes.values()]
        if fits and np.isfinite(min(fits)):
            out[list(volumes)[int(np.argmin(fits))]][level] = source
    return out


def predict_axial(nets, volume: Volume, sources: dict, settings: Settings, device):
    """Subarticular points of the levels an axial series covers: a list of row dicts.

    ``sources`` maps a level to its patient point and order flag (:func:`level_points`).
    A level whose point projects outside the series' coverage, or farther from the
    nearest slice than one slice spacing, gets no rows.
    """
    if not sources or volume.slices is None:
        return []
    levels = list(sources)
    hit = volume.geometry.project(np.array([sources[lv][0] for lv in levels]))
    position = {path: i for i, path in enumerate(volume.paths)}
    base, transforms = to_working(volume.images, settings.size, settings.scales(volume))
    nbr = volume.neighbours(settings.neighbours)
    chosen = []
    for j, level in enumerate(levels):
        stack = volume.geometry.stacks[int(hit.stack[j])]
        spacing = (
            stack.spacing if np.isfinite(stack.spacing) else stack.coverage[1] - stack.coverage[0]
        )
        if not hit.in_coverage[j] or abs(hit.distance[j]) > spacing:
            continue
        d = position[volume.geometry.sources[int(hit.index[j])]]
        chosen.append((level, d, spacing, bool(hit.in_image[j])))
    if not chosen:
        return []
    windows = []
    for _, d, _, _ in chosen:
        members = np.flatnonzero(volume.stack == volume.stack[d])
        low = max(d - settings.axial_window, members[0])
        windows.append(np.arange(low, min(d + settings.axial_window, members[-1]) + 1))
    logits = _forward(nets[0], [base[nbr[w]] for w in windows], device)
    found, marks = [], []
    for (level, _, spacing, in_image), window, maps in zip(chosen, windows, logits):
        maps = maps[: len(window), 15:17]
        marginal = maps.transpose(0, 1).reshape(2, -1).softmax(-1).view(2, len(window), -1)
        marginal = marginal.sum(-1).T.numpy()
        # the network's slice, held near the projection by a Gaussian prior of one spacing
        point = sources[level][0]
        distance = np.array([volume.slices[i].patient_to_pixel(point)[2] for i in window])
        score = np.log(marginal.mean(1) + 1e-9) - PRIOR * 0.5 * (distance / spacing) ** 2
        j = int(np.argmax(score))
        hit = decode_heatmaps(maps[[j]], settings.stride)
        for side in range(2):
            x, y = to_original(transforms[window[j]], float(hit["x"][side]), float(hit["y"][side]))
            found.append((int(window[j]), float(x), float(y), 3 + side))
            marks.append((level, spacing, in_image, float(marginal[j, side])))
    refined = _refine(nets[1], volume, nbr, found, settings, device)
    used = pd.Series([d for d, _, _, cond in found if cond == 3]).value_counts()
    rows = []
    for (_, _, _, cond), (level, spacing, in_image, p_slice), (d, x, y, p_plane) in zip(
        found, marks, refined
    ):
        row = _row(volume, d, CONDITIONS[cond], level, x, y, p_slice * p_plane)
        distance = volume.slices[d].patient_to_pixel(sources[level][0])[2]
        row["qc_outside_coverage"] = bool(abs(distance) > spacing / 2)
        row["qc_outside_image"] = row["qc_outside_image"] or not in_image
        row["qc_order"] = bool(sources[level][1] or used[d] > 1)
        row["level_confidence"] = sources[level][2]
        row["qc_level_shift"] = sources[level][2] < LEVEL_SHIFT_BELOW
        rows.append(row)
    return rows


def _reads(description: str, conditions) -> bool:
    """Whether a series of this type shows a condition the localizer learned."""
    return any(CHANNELS[k][0] in conditions for k in SERIES_CHANNELS[description])


def _join_naming(canal: list[dict], guided: list[dict]) -> None:
    """The canal's rows take the naming confidence its foramina's series combined with it
    (:func:`agreement`: the study's evidence), and their flag when the two disagreed."""
    if not guided:
        return
    joint = min(r["level_confidence"] for r in guided)
    disagree = any(r["_disagree"] for r in guided)
    for r in canal:
        r["level_confidence"] = joint
        r["qc_level_shift"] = disagree or joint < LEVEL_SHIFT_BELOW


def predict_study(
    nets, series: pd.DataFrame, settings: Settings, device, steps, conditions=CONDITIONS
) -> list[dict]:
    """Row dicts of one study's series (rows of ``X``): the sagittal series first (a
    Sagittal T2/STIR's canal points guiding the Sagittal T1's foramina), then the axial
    ones through the best sagittal series' level points (a Sagittal T2/STIR before a
    Sagittal T1, then the higher mean confidence), each level on the one axial series a
    reader would read it on (:func:`choose_axial_series`). Only the ``conditions`` the
    localizer learned are located; a series that shows none of them gives no rows."""
    found_in, sources, canal = {}, {}, {}
    series = series[[_reads(d, conditions) for d in series["series_description"]]]
    sagittal = series[series["series_description"] != AXIAL]
    by_type = sagittal["series_description"] != "Sagittal T2/STIR"
    for r in sagittal.iloc[np.argsort(by_type.to_numpy(), kind="stable")].itertuples():
        volume = read_volume(r.series_dir, largest_stack_only=True)
        found = predict_sagittal(
            nets, volume, r.series_description, settings, device, steps, canal, conditions
        )
        found_in[r.Index] = found
        score = np.mean([p["confidence"] for p in found])
        rank = (r.series_description == "Sagittal T2/STIR", score)
        if not sources or rank > sources["rank"]:
            sources = {"rank": rank, "volume": volume, "rows": found}
            points = level_points(volume, found)
            if r.series_description == "Sagittal T2/STIR" and len(points) == len(LEVELS):
                canal = {
                    "points": {level: point for level, (point, _, _) in points.items()},
                    "confidence": min(named for _, _, named in points.values()),
                    "rows": found,
                }
    if canal:
        _join_naming(canal["rows"], [p for f in found_in.values() for p in f if p["_guided"]])
    if sources:
        sources["points"] = level_points(sources["volume"], sources["rows"])
    axial = series[series["series_description"] == AXIAL]
    volumes = {r.Index: read_volume(r.series_dir) for r in axial.itertuples()}
    levels = choose_axial_series(volumes, sources.get("points", {}))
    rows = []
    for r in series.itertuples():
        if r.series_description != AXIAL:
            rows += [{"series_id": r.series_id, **p} for p in found_in[r.Index]]
            continue
        found = predict_axial(nets, volumes[r.Index], levels[r.Index], settings, device)
        rows += [{"series_id": r.series_id, **p} for p in found]
    return rows
