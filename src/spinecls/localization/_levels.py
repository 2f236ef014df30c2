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

The chain's errors on real spines are not imprecision but a whole chain one disc off
(L5/S1 named on L4/L5). :func:`shift_confidence` says how sure the naming is: the same
five positions named one level up or down score under the levels' own maps, and the
chain's share of the three is its level-naming confidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..labels import LEVELS

__all__ = [
    "cell_distances",
    "decode_chain",
    "level_steps",
    "shift_confidence",
    "summarise_steps",
]

# The chain is decoded over each level's this many likeliest cells (all five levels'
# together), not every cell of the grid: 80 x 80 cells would pair up 41 million ways.
CANDIDATES = 64
# A learned step's spread never goes below this (mm): a few training series must not
# make the prior sharper than the anatomy of an unseen spine.
MIN_STEP_STD = 2.0


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
        :func:`cell_distances` of ``positions``, when the caller has it; otherwise the
        distances between the candidate cells are computed here.

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
    # the chain runs through cells some level's map favours: each level's likeliest
    # CANDIDATES cells (the grid's cells at 5 mm are too many to pair up)
    order = np.argsort(-emission, axis=1, kind="stable")[:, :CANDIDATES]
    cand = np.unique(order.ravel())
    emission_c = emission[:, cand]
    if positions is None:
        height, distance = -(cand // w).astype(np.float64), None
    else:
        height = positions[cand, 2]
        distance = (
            cell_distances(positions[cand])
            if distance is None
            else np.asarray(distance)[np.ix_(cand, cand)]
        )
    below = height[None, :] < height[:, None]  # [a, b]: b lies caudal to a
    score, back = emission_c[0], []
    for level in range(1, k):
        move = np.where(below, 0.0, -np.inf)
        if distance is not None and steps is not None and np.isfinite(steps[level - 1][0]):
            mean, std = steps[level - 1]
            spread = np.hypot(std, 0.5 * cell_mm)
            move = move - 0.5 * ((distance - mean) / spread) ** 2
        total = score[:, None] + move
        back.append(total.argmax(0))
        score = total.max(0) + emission_c[level]
    if not np.isfinite(score.max()):  # no ordered chain fits: each level on its own
        cells = emission.argmax(1)
    else:
        picked = [int(score.argmax())]
        for pointer in reversed(back):
            picked.append(int(pointer[picked[-1]]))
        cells = cand[picked[::-1]]
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


def shift_confidence(logits: torch.Tensor, cells: list[tuple[float, float]]) -> float:
    """How sure a chain's naming is against the same chain named one disc up or down.

    The chain's five cells (L1/L2 first) hold, named one level down, L1/L2 to L4/L5 on
    the cells of L2/L3 to L5/S1 and L5/S1 one step below the lowest (the last step
    repeated), and likewise one level up. Each naming scores as :func:`decode_chain`
    scores a cell: the sum over the levels of each level's log-probability, summed over
    slices, at its cell (a cell off the grid scores the map's lowest). The result is the
    chain's share of the three namings' probabilities (a softmax of the scores): the
    networks' own odds that the chain is not shifted by a disc.

    Parameters
    ----------
    logits : Tensor of shape (D, 5, h, w)
        The five levels' logits over a series' slices.
    cells : list of 5 (row, column)
        The chain's cells (fractional), L1/L2 first (:func:`decode_chain`'s).

    Returns
    -------
    float in (0, 1]
    """
    depth, k, h, w = logits.shape
    emission = _log_p(logits).logsumexp(1).double().numpy()  # (5, h, w)
    at = np.asarray(cells, dtype=np.float64)
    chain = np.vstack([2 * at[0] - at[1], at, 2 * at[-1] - at[-2]])  # one step beyond each end
    rows, cols = np.rint(chain[:, 0]).astype(int), np.rint(chain[:, 1]).astype(int)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    scores = []
    for shift in (-1, 0, 1):
        total = 0.0
        for level in range(k):
            j = level + 1 + shift
            floor = emission[level].min()
            total += emission[level, rows[j], cols[j]] if inside[j] else floor
        scores.append(total)
    scores = np.array(scores)
    return float(np.exp(scores[1] - np.logaddexp.reduce(scores)))
