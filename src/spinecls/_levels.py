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

__all__ = ["cell_distances", "count_up", "decode_chain", "level_steps", "summarise_steps"]

# A learned step's spread never goes below this (mm): a few training series must not
# make the prior sharper than the anatomy of an unseen spine.
MIN_STEP_STD = 2.0
# A counted step may differ from its learned mean by this share: a disc missed between
# two found ones doubles the step, a spurious one halves it.
STEP_TOLERANCE = 0.3


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
    log_p = logits.float().transpose(0, 1).reshape(k, -1).log_softmax(-1).view(k, depth, h, w)
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


def count_up(points: np.ndarray, steps) -> list[int] | None:
    """Name the discs found along a column by counting up from the lowest, L5/S1.

    Nothing below L5/S1 is a disc (the sacrum is fused bone), so the lowest disc is
    L5/S1 and the four above it are L4/L5 to L1/L2, as a radiologist numbers them.

    Parameters
    ----------
    points : ndarray of shape (n, 3)
        Patient mm of every disc found (any order).
    steps : list of [mean, std]
        The learned step between each pair of consecutive levels (mm).

    Returns
    -------
    list of int or None
        Indices into ``points`` of L1/L2 to L5/S1; None when fewer than five discs were
        found, a step between the five lowest differs from its learned mean by more
        than ``STEP_TOLERANCE`` (a disc missed or a spurious one), or a step was never
        measured in training (its mean is NaN): the caller then keeps the chain decoder's
        positions.
    """
    if len(points) < len(LEVELS):
        return None
    chain = np.argsort(points[:, 2])[: len(LEVELS)][::-1]
    for a, b, (mean, _) in zip(chain[:-1], chain[1:], steps):
        step = np.linalg.norm(points[a] - points[b])
        if not np.isfinite(mean) or abs(step - mean) > STEP_TOLERANCE * mean:
            return None
    return [int(i) for i in chain]
