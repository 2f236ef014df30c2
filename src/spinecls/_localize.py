"""The per-series steps of :class:`spinecls.LevelLocalizer`.

Training: one labelled series -> samples for the stack network (a sagittal series
whole; an axial series as a window of slices around each labelled level), for the
refining network (a crop around each labelled point) and the distances between its
consecutive levels. Inference: a study's series -> points, through the two networks (a
sagittal condition's five levels decoded as one chain, :mod:`spinecls._levels`); an
axial series is reached by projecting the study's sagittal level points through the
DICOM geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ._levels import cell_distances, count_up, decode_chain, level_fit, level_steps
from ._point_frames import check_in_image
from ._validation import listing
from ._volumes import (
    Volume,
    collate_stacks,
    crop,
    read_volume,
    to_original,
    to_working,
    to_working_xy,
)
from .labels import AXIAL_T2, CONDITION_SERIES, CONDITIONS, LEVELS, SAGITTAL_T1, SAGITTAL_T2
from .models.heatmap import decode_heatmaps

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
# a disc is a peak of the refining map over a whole slice: the highest within this many
# cells (a fifth of the step between discs at the default zoom), and within this many
# logits of the slice's highest (the count then keeps the column's peaks)
DISC_RADIUS = 4
DISC_DROP = 5.0
# the canal's discs are counted on the refining map averaged over the chain's slice and
# this many on either side (about 8 mm either way at the phantom's slice spacing)
COUNT_REACH = 2
# the count considers the strongest this many peaks: a flat map peaks at every cell (the
# benchmark's averaged maps hold 5 to 65 within DISC_DROP)
MAX_PEAKS = 64
# a foramen's slice: the chain's, or one this near it where the refined heatmap is sharper
# (on the benchmark the chain put 10 % of the foramina one slice off, never two)
SLICE_REACH = 1


@dataclass(frozen=True)
class Settings:
    """The sizes shared by training and inference (from the estimator's parameters)."""

    size: int
    neighbours: int
    zoom: float
    crop: int
    margin: int
    axial_window: int
    stride: int = 4
    refine_stride: int = 2

    def ratio(self, image: np.ndarray) -> float:
        """Working pixels per original pixel of an image (the letterbox scale)."""
        return self.size / max(image.shape)


def channel(condition: str, level: str) -> int:
    """Index in :data:`CHANNELS` of a labelled point."""
    return CHANNELS.index((condition, None if CONDITION_SERIES[condition] == AXIAL else level))


def _crop_sample(volume: Volume, nbr: np.ndarray, x: float, y: float, settings: Settings, size):
    scale = settings.zoom * settings.ratio(volume.images[nbr[len(nbr) // 2]])
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
    base, transforms = to_working(volume.images, settings.size)
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
    levels (:func:`spinecls._levels.level_steps`)."""
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


def _count_discs(
    module,
    volume: Volume,
    nbr,
    d: int,
    condition: str,
    settings,
    device,
    steps,
    seen: dict,
    reach: int = 0,
    levels: tuple | None = None,
):
    """Original (x, y) of L1/L2 to L5/S1 counted up from the lowest disc on slice ``d``
    (:func:`spinecls._levels.count_up`), or None.

    The refining network, trained to find a condition's point anywhere in a crop, runs
    over the whole slice at its crops' scale: every disc of the column peaks in it,
    sharper than in the stack network's level maps. With ``reach``, its logits are
    averaged over the slices within ``reach`` of ``d`` (in its stack, of its size): a
    disc crosses the canal's width and peaks on each of them, a sacral segment or a
    stray peak on fewer. Its maps are kept in ``seen`` by slice, for another chain on
    the same slices. ``levels``, the chain's stack-network logits ``(D, 5, h, w)`` and
    their cells' patient mm, tell the count's last disc from a sacral segment below it.
    """
    if steps is None or volume.slices is None:
        return None
    image = volume.images[d]
    scale = settings.zoom * settings.ratio(image)
    stride = settings.refine_stride
    size = int(np.ceil(max(image.shape) * scale / stride)) * stride
    cx, cy = (image.shape[1] - 1) / 2, (image.shape[0] - 1) / 2
    near = _near_slices(volume, d, reach)
    missing = [e for e in near if e not in seen]
    if missing:
        crops = [crop([volume.images[i] for i in nbr[e]], cx, cy, scale, size) for e in missing]
        for e, maps in zip(missing, _forward(module, [c[None] for c in crops], device)):
            seen[e] = maps[0]
    maps = torch.stack([seen[e][CONDITIONS.index(condition)] for e in near]).mean(0)
    top = torch.nn.functional.max_pool2d(maps[None, None], 2 * DISC_RADIUS + 1, 1, DISC_RADIUS)
    floor = maps.max() - DISC_DROP
    rows, cols = torch.nonzero((maps == top[0, 0]) & (maps > floor), as_tuple=True)
    shift = (stride - 1) / 2 - (size - 1) / 2
    x = cx + (cols.numpy() * stride + shift) / scale
    y = cy + (rows.numpy() * stride + shift) / scale
    scores = (maps[rows, cols] - floor).numpy()
    # a flat or noisy map peaks everywhere: the strongest peaks hold the discs
    keep = np.argsort(-scores, kind="stable")[:MAX_PEAKS]
    x, y, scores = x[keep], y[keep], scores[keep]
    points = volume.to_patient(d, x, y)
    fit = None if levels is None else level_fit(*levels, points)
    chain = count_up(points, scores, steps, fit)
    return None if chain is None else [(float(x[i]), float(y[i])) for i in chain]


def predict_sagittal(
    nets, volume: Volume, description: str, settings: Settings, device, steps=None, canal=None
):
    """The level points of a sagittal series: a list of row dicts.

    Each condition's five levels are decoded together along the column
    (:func:`spinecls._levels.decode_chain`), with ``steps`` (``{condition: [[mean,
    std]] * 4}``, mm) as the learned distances between consecutive levels. Given
    ``canal`` (``{level: patient point}``, the study's five spinal canal points), a
    foraminal chain starts at their projections onto its slice: a foramen lies beside its
    level's canal point, and the refinement finds it there. Otherwise, where the discs of
    the chain's slice can be counted up from the sacrum (:func:`_count_discs`), their
    count names the levels; else the chain's positions stand. Each point is then refined
    (:func:`_refine`); a foramen on the chain's slice or a neighbour (``SLICE_REACH``),
    whichever its refined heatmap is sharpest on, the canal on the chain's slice.
    """
    base, transforms = to_working(volume.images, settings.size)
    nbr = volume.neighbours(settings.neighbours)
    logits = _forward(nets[0], [base[nbr]], device)[0]
    positions, cell_mm = _cell_positions(volume, transforms, settings, *logits.shape[-2:])
    distance = None if positions is None else cell_distances(positions)
    channels = list(SERIES_CHANNELS[description])
    found, p_slice, seen = [], [], {}
    for start in range(0, len(channels), len(LEVELS)):
        chain = channels[start : start + len(LEVELS)]
        condition = CHANNELS[chain[0]][0]
        prior = None if steps is None else steps.get(condition)
        decoded = decode_chain(logits[:, chain], positions, prior, cell_mm, distance)
        d = int(np.bincount([level[0] for level in decoded]).argmax())
        # a second Sagittal T2/STIR counts its own canal
        guided = canal and condition != CONDITIONS[0] and len(canal) == len(LEVELS)
        if guided and volume.slices is not None:
            x, y, _ = volume.slices[d].patient_to_pixel(np.array([canal[lv] for lv in LEVELS]))
            counted = list(zip(x.tolist(), y.tolist()))
        else:
            # the canal spans several slices; a foramen (counted without a canal) one
            reach = COUNT_REACH if condition == CONDITIONS[0] else 0
            counted = _count_discs(
                nets[1],
                volume,
                nbr,
                d,
                condition,
                settings,
                device,
                prior,
                seen,
                reach,
                (logits[:, chain], positions),
            )
        for k, (d, row, col, p) in enumerate(decoded):
            u, v = (np.array([col, row]) * settings.stride + (settings.stride - 1) / 2).tolist()
            x, y = to_original(transforms[d], u, v) if counted is None else counted[k]
            found.append((d, float(x), float(y), CONDITIONS.index(condition)))
            p_slice.append(p)
    rows = []
    # the canal's refined heatmap does not single out its slice: it keeps the chain's
    reach = 0 if description == "Sagittal T2/STIR" else SLICE_REACH
    refined = _refine(nets[1], volume, nbr, found, settings, device, reach)
    for k, p, (d, x, y, p_plane) in zip(channels, p_slice, refined):
        rows.append(_row(volume, d, *CHANNELS[k], x, y, float(p[d]) * p_plane))
        rows[-1]["qc_outside_coverage"] = d in (0, len(volume) - 1)
    _order_flags(volume, rows)
    return rows


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


def level_points(volume: Volume, rows: list[dict]) -> dict[str, tuple[np.ndarray, bool]]:
    """Patient point of each level from a sagittal series' rows (left and right foramina
    averaged), and whether it was out of order."""
    out = {}
    for level in LEVELS:
        mine = [r for r in rows if r["level"] == level]
        if mine and volume.slices is not None:
            points = [volume.to_patient(r["_slice"], r["x"], r["y"]) for r in mine]
            out[level] = (np.mean(points, axis=0), any(r["qc_order"] for r in mine))
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
    base, transforms = to_working(volume.images, settings.size)
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
        rows.append(row)
    return rows


def predict_study(nets, series: pd.DataFrame, settings: Settings, device, steps) -> list[dict]:
    """Row dicts of one study's series (rows of ``X``): the sagittal series first (a
    Sagittal T2/STIR's canal points guiding the Sagittal T1's foramina), then the axial
    ones through the best sagittal series' level points (a Sagittal T2/STIR before a
    Sagittal T1, then the higher mean confidence)."""
    found_in, sources, canal = {}, {}, {}
    sagittal = series[series["series_description"] != AXIAL]
    by_type = sagittal["series_description"] != "Sagittal T2/STIR"
    for r in sagittal.iloc[np.argsort(by_type.to_numpy(), kind="stable")].itertuples():
        volume = read_volume(r.series_dir, largest_stack_only=True)
        found = predict_sagittal(nets, volume, r.series_description, settings, device, steps, canal)
        found_in[r.Index] = found
        score = np.mean([p["confidence"] for p in found])
        rank = (r.series_description == "Sagittal T2/STIR", score)
        if not sources or rank > sources["rank"]:
            sources = {"rank": rank, "points": level_points(volume, found)}
            if r.series_description == "Sagittal T2/STIR":
                canal = {level: point for level, (point, _) in sources["points"].items()}
    rows = []
    for r in series.itertuples():
        if r.series_description != AXIAL:
            rows += [{"series_id": r.series_id, **p} for p in found_in[r.Index]]
            continue
        volume = read_volume(r.series_dir)
        found = predict_axial(nets, volume, sources.get("points", {}), settings, device)
        rows += [{"series_id": r.series_id, **p} for p in found]
    return rows
