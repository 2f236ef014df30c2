"""Name the five levels of a sagittal series jointly: a chain along the spinal column.

The stack network gives each level its own heatmap, and decoding each on its own lets
two levels land on one disc (L4/L5 on L5/S1's) or a level slide to the next disc. The
discs, however, come as a sequence: L1/L2 to L5/S1 in cranio-caudal order, one
intervertebral step apart. :func:`decode_chain` picks the five positions together, by
dynamic programming (Viterbi) over the heatmaps' cells:

- each level scores a cell by its own heatmap (its probability summed over slices);
- consecutive levels must descend along the patient's head-foot axis, and their
  distance scores under a Gaussian of the step between those two levels learned from
  the training labels (millimetres; :func:`level_steps`).

So a level whose own map is unsure, or pulled onto a neighbour's disc, is placed one
step from the levels the network is sure of, most often L5/S1 just above the sacrum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .labels import LEVELS

__all__ = [
    "cell_distances",
    "count_up",
    "decode_chain",
    "level_fit",
    "level_steps",
    "summarise_steps",
]

# A learned step's spread never goes below this (mm): a few training series must not
# make the prior sharper than the anatomy of an unseen spine.
MIN_STEP_STD = 2.0
# A counted step may differ from its learned mean by this share: a disc missed between
# two found ones doubles the step, a spurious one halves it.
STEP_TOLERANCE = 0.3
# Consecutive steps of the counted column turn by at most this (degrees): the labelled
# steps of the phantom turn by 12 at most, and the margin leaves room for a real spine's
# lordosis; a peak off the column turns more.
MAX_TURN = 30.0
# The lowest peak of a counted column is a sacral segment, not L5/S1, when its logit
# below the median of the four discs above it, plus STACK_WEIGHT times the gain in the
# level maps' log-probability from naming the levels from it, falls below -SACRAL_DROP
# (see count_up; chosen on the benchmark, docs/localization.md).
SACRAL_DROP = 2.5
STACK_WEIGHT = 0.2


def level_steps(points: pd.DataFrame, to_patient) -> dict[str, list[list[float]]]:
    """Distances (mm) between consecutive levels' labelled points on one series.

    Parameters
    ----------
    points : DataFrame
        The series' labelled points (``condition, level, x, y`` and ``slice``, the
        point's slice index in the volume).
    to_patient : callable
        ``(slice, x, y) -> patient mm`` (:meth:`Volume.to_patient`).

    Returns
    -------
    dict
        ``{condition: [[distance or nan] * 4]}``: L1/L2 to L2/L3, ..., L4/L5 to L5/S1.
    """
    out = {}
    for condition, group in points.groupby("condition"):
        at = {r.level: to_patient(r.slice, r.x, r.y) for r in group.itertuples()}
        out[condition] = [
            [float(np.linalg.norm(at[a] - at[b])) if a in at and b in at else np.nan]
            for a, b in zip(LEVELS[:-1], LEVELS[1:])
        ]
    return out


def summarise_steps(parts: list[dict]) -> dict[str, list[list[float]]]:
    """Mean and spread of each step over training series: ``{condition: [[mean, std]] * 4}``.

    A step never measured is left out of the prior (NaN mean).
    """
    out = {}
    for condition in sorted({c for part in parts for c in part}):
        steps = np.array([part[condition] for part in parts if condition in part])[..., 0]
        rows = []
        for column in steps.T:
            seen = column[np.isfinite(column)]
            mean = float(seen.mean()) if seen.size else float("nan")
            rows.append([mean, max(float(seen.std()) if seen.size else 0.0, MIN_STEP_STD)])
        out[condition] = rows
    return out


def cell_distances(positions: np.ndarray) -> np.ndarray:
    """Distances (mm, float32) between every two cells of ``positions`` (``(n, 3)``, patient
    mm): computed once per series and shared by its chains (:func:`decode_chain`)."""
    positions = np.asarray(positions, dtype=np.float32)
    return np.linalg.norm(positions[:, None] - positions[None], axis=-1)


def _log_p(logits: torch.Tensor) -> torch.Tensor:
    """Each level's log-probability of every slice and cell: ``(5, D, h, w)``."""
    depth, k, h, w = logits.shape
    return logits.float().transpose(0, 1).reshape(k, -1).log_softmax(-1).view(k, depth, h, w)


def level_fit(logits: torch.Tensor, positions: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Each point's log-probability under each level's map, summed over slices, at the
    cell nearest it: ``(n, 5)``, the ``fit`` of :func:`count_up`.

    ``logits`` and ``positions`` as for :func:`decode_chain` (the cells' patient mm on
    the middle slice; the sagittal slices are parallel, so the nearest cell in 3-D is
    the nearest in the plane); ``points`` (n, 3) patient mm.
    """
    emission = _log_p(logits).logsumexp(1).reshape(logits.shape[1], -1).numpy()
    cells = np.linalg.norm(positions[None] - points[:, None], axis=-1).argmin(1)
    return emission[:, cells].T.astype(np.float64)


def decode_chain(
    logits: torch.Tensor,
    positions: np.ndarray | None,
    steps,
    cell_mm: float,
    distance: np.ndarray | None = None,
) -> list[tuple[int, float, float, np.ndarray]]:
    """The slice, working position and confidence of each level of one chain.

    Parameters
    ----------
    logits : Tensor of shape (D, 5, h, w)
        The five levels' logits (L1/L2 first) over a series' slices.
    positions : ndarray of shape (h * w, 3) or None
        Patient mm of every output cell's centre (on a middle slice); None without
        geometry: the order then follows image rows and no distance is scored.
    steps : list of [mean, std] or None
        The learned step between each pair of consecutive levels (mm).
    cell_mm : float
        Side of an output cell in mm: its quantisation widens the step's spread.
    distance : ndarray of shape (h * w, h * w), optional
        :func:`cell_distances` of ``positions``, when the caller decodes several chains
        on the same cells; computed here otherwise.

    Returns
    -------
    list of (slice, row, column, p_slices), one per level
        ``row`` and ``column`` in output cells (fractional); ``p_slices`` the level's
        marginal probability of every slice (an ndarray of shape (D,)), so a caller that
        moves the point to another slice reads that one's.
    """
    depth, k, h, w = logits.shape
    log_p = _log_p(logits)
    emission = log_p.logsumexp(1).reshape(k, -1).numpy().astype(np.float64)
    marginal = log_p.exp().sum((2, 3)).clamp(0, 1).double().numpy()
    if positions is None:
        height, distance = -np.repeat(np.arange(h), w).astype(np.float64), None
    else:
        height = positions[:, 2]
        distance = cell_distances(positions) if distance is None else distance
    below = height[None, :] < height[:, None]  # [a, b]: b lies caudal to a
    score, back = emission[0], []
    for level in range(1, k):
        move = np.where(below, 0.0, -np.inf)
        if distance is not None and steps is not None and np.isfinite(steps[level - 1][0]):
            mean, std = steps[level - 1]
            spread = np.hypot(std, 0.5 * cell_mm)
            move = move - 0.5 * ((distance - mean) / spread) ** 2
        total = score[:, None] + move
        back.append(total.argmax(0))
        score = total.max(0) + emission[level]
    if not np.isfinite(score.max()):  # no ordered chain fits: each level on its own
        cells = emission.argmax(1)
    else:
        cells = [int(score.argmax())]
        for pointer in reversed(back):
            cells.append(int(pointer[cells[-1]]))
        cells = cells[::-1]
    out = []
    for level, cell in enumerate(cells):
        i, j = divmod(int(cell), w)
        top, left = max(i - 1, 0), max(j - 1, 0)
        # the slice, then the point: the level's map in the 3 x 3 cells around the cell
        window = log_p[level, :, top : i + 2, left : j + 2].double()
        window = (window - window.max()).exp()
        d = int(window.sum((1, 2)).argmax())
        window = window[d] / window[d].sum()
        row = float((window.sum(1) * torch.arange(top, top + window.shape[0])).sum())
        col = float((window.sum(0) * torch.arange(left, left + window.shape[1])).sum())
        out.append((d, row, col, marginal[level]))
    return out


def count_up(
    points: np.ndarray, scores: np.ndarray, steps, fit: np.ndarray | None = None
) -> list[int] | None:
    """Name the discs found along a column by counting up from the lowest, L5/S1.

    Nothing below L5/S1 is a disc (the sacrum is fused bone), so the lowest disc is
    L5/S1 and the four above it are L4/L5 to L1/L2, as a radiologist numbers them. The
    found peaks hold more than the five discs: T12/L1 and the discs above, weak peaks off
    the column, and weak peaks on the sacrum's segments below L5/S1, one step down like
    a disc. So the discs are counted along the column, not among all peaks:

    1. the column is the chain of peaks, top to bottom, each one learned step below the
       previous (within ``STEP_TOLERANCE`` of the steps' mean) and turning by at most
       ``MAX_TURN`` degrees from the step above, whose scores sum highest;
    2. at its lower end, a sacral segment is told from L5/S1 by two signs: it is weaker
       than the discs (its score below the median of the four peaks above it), and, given
       ``fit``, the levels' own maps fit the five peaks from the one above it better than
       the five from it. When the first, plus ``STACK_WEIGHT`` times the second, falls
       more than ``SACRAL_DROP`` below zero, the lowest peak is dropped (repeatedly);
    3. the lowest peak left is L5/S1, the four above it L4/L5 to L1/L2.

    Parameters
    ----------
    points : ndarray of shape (n, 3)
        Patient mm of every peak found (any order).
    scores : ndarray of shape (n,)
        Each peak's evidence, positive (its logit above the detection threshold).
    steps : list of [mean, std]
        The learned step between each pair of consecutive levels (mm).
    fit : ndarray of shape (n, 5), optional
        Each peak's log-probability under each level's map (L1/L2 first), summed over
        slices (the stack network's, as :func:`decode_chain` scores a cell).

    Returns
    -------
    list of int or None
        Indices into ``points`` of L1/L2 to L5/S1; None when the column holds fewer than
        five discs, when a peak as strong as its discs lies two steps below its lowest
        along it (a disc missed there: the column's lowest is not L5/S1), or when a step
        was never measured in training (its mean is NaN): the caller then keeps the chain
        decoder's positions.
    """
    means = np.array([mean for mean, _ in steps], dtype=np.float64)
    if len(points) < len(LEVELS) or not np.isfinite(means).all():
        return None
    mean = means.mean()
    order = np.argsort(-points[:, 2], kind="stable")  # top first
    p, s = np.asarray(points, np.float64)[order], np.asarray(scores, np.float64)[order]
    vec = p[None] - p[:, None]  # [i, j]: from peak i to peak j
    dist = np.linalg.norm(vec, axis=-1)
    link = (p[None, :, 2] < p[:, None, 2]) & (np.abs(dist - mean) <= STEP_TOLERANCE * mean)
    straight = np.cos(np.radians(MAX_TURN))
    n = len(p)
    # best[i, j]: the highest column ending with the step i -> j; above[i, j] the peak
    # before i in it (-1: i starts it). Peaks run top first, so i < j and the column i
    # ends is known when j's turn comes.
    best, above = np.full((n, n), -np.inf), np.full((n, n), -1)
    for j in range(n):
        into = np.flatnonzero(link[:, j])
        if not into.size:
            continue
        # [h, i]: the step h -> i turns by at most MAX_TURN into i -> j
        turn = np.einsum("hic,ic->hi", vec[:, into], vec[into, j])
        fits = turn >= straight * dist[:, into] * dist[into, j]
        extend = np.where(fits, best[:, into], -np.inf)
        h = extend.argmax(0)
        longer = extend[h, np.arange(into.size)] > s[into]
        best[into, j] = np.where(longer, extend[h, np.arange(into.size)], s[into]) + s[j]
        above[into, j] = np.where(longer, h, -1)
    if not np.isfinite(best).any():
        return None
    i, j = np.unravel_index(int(best.argmax()), best.shape)
    column = [int(j), int(i)]
    while above[i, j] >= 0:
        i, j = above[i, j], i
        column.append(int(i))
    column = column[::-1]
    k, levels = len(LEVELS), np.arange(len(LEVELS))
    f = None if fit is None else np.asarray(fit, np.float64)[order]
    while len(column) >= k:
        low = column[-k:]
        sign = s[low[-1]] - np.median(s[low[:-1]])
        if f is not None and len(column) > k:
            sign += STACK_WEIGHT * (f[low, levels].sum() - f[column[-k - 1 : -1], levels].sum())
        if sign >= -SACRAL_DROP:
            break
        column.pop()
    if len(column) < k or _disc_below(p, s, column, mean, straight):
        return None
    return [int(order[i]) for i in column[-k:]]


def _disc_below(p: np.ndarray, s: np.ndarray, column: list[int], mean: float, straight: float):
    """Whether a peak as strong as the column's discs lies two steps below its lowest, along
    it: the column then stops at a missed disc (a collapsed L4/L5, say), and naming its
    lowest L5/S1 would shift every level; the caller keeps the chain's positions instead."""
    bottom, direction = p[column[-1]], p[column[-1]] - p[column[-2]]
    strong = np.median(s[column[-len(LEVELS) :]])
    for q in np.flatnonzero((p[:, 2] < bottom[2]) & (s >= strong)):
        gap = p[q] - bottom
        distance = float(np.linalg.norm(gap))
        along = gap @ direction >= straight * distance * float(np.linalg.norm(direction))
        if along and (2 - STEP_TOLERANCE) * mean <= distance <= (2 + STEP_TOLERANCE) * mean:
            return True
    return False
