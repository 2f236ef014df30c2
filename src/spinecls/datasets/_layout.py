"""Which series a synthetic study has, at the real data's rates.

``RATES`` holds those rates (RSNA.md) and the choices they leave open, in one place;
:func:`draw_layout` draws a study's series: missing or doubled sagittal series, one to
four axial series, the levels each covers, and on which axial series a reader labels
the left and the right recess of each level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..labels import LEVELS

RATES: dict[str, float | tuple[float, ...]] = {
    # Real counts from the 1,975 training studies (RSNA.md).
    "no_t1": 2 / 1975,  # studies without a Sagittal T1
    "two_t1": 7 / 1975,  # studies with two Sagittal T1 series
    "no_t2": 1 / 1975,  # studies without a Sagittal T2/STIR
    "axial_series": (0.83, 0.155, 0.0125, 0.0025),  # P(1, 2, 3, 4 Axial T2 series)
    "partial_coverage": 169 / 1974,  # studies whose axial series miss a level
    # Choices the real numbers leave open, set so that the real rates come out.
    "axial_split": 0.15,  # several axial series splitting the levels (else overlapping)
    "sides_apart": 0.67,  # a level in two axial series: left and right on different ones
    "axial_stack": 0.4,  # one contiguous axial stack (else per-level blocks along the discs)
    "same_sagittal_plan": 0.7,  # T1 and T2/STIR on the same slice positions
    "rectangular": 0.2,  # a series with rows != columns
    "anisotropic": 0.1,  # a series with non-square pixels
}
_PARTIAL = (  # levels covered when the axial series miss some, and how often
    ((1, 2, 3, 4), 0.55),
    ((2, 3, 4), 0.3),
    ((0, 1, 2, 3), 0.1),
    ((3, 4), 0.05),
)


@dataclass
class Layout:
    """The series a study has, drawn once (the geometry may be redrawn)."""

    t1: int
    t2: int
    axial: list[tuple[str, tuple[int, ...]]]  # (kind, levels) per axial series
    sides: dict[int, tuple[int, int]]  # level -> axial series of the left and right points


def draw_layout(rng: np.random.Generator) -> Layout:
    """Draw the series of one study (its geometry is drawn, and maybe redrawn, later)."""
    t1 = 0 if rng.random() < RATES["no_t1"] else (2 if rng.random() < RATES["two_t1"] else 1)
    t2 = 0 if rng.random() < RATES["no_t2"] else 1
    covered = tuple(range(len(LEVELS)))
    if rng.random() < RATES["partial_coverage"]:
        options, weights = zip(*_PARTIAL)
        covered = options[rng.choice(len(options), p=weights)]
    n = 1 + int(rng.choice(4, p=RATES["axial_series"]))
    if n == 1:
        spans = [covered]
    elif len(covered) >= n and rng.random() < RATES["axial_split"]:
        cuts = np.sort(rng.choice(np.arange(1, len(covered)), size=n - 1, replace=False))
        spans = [tuple(part) for part in np.split(np.array(covered), cuts)]
    else:
        spans = [covered]
        for _ in range(n - 1):
            if rng.random() < 0.7:
                spans.append(covered)
            else:
                a, b = np.sort(rng.choice(len(covered), size=2))
                spans.append(covered[a : b + 1])
    axial = [
        ("stack" if rng.random() < RATES["axial_stack"] else "blocks", tuple(int(k) for k in s))
        for s in spans
    ]
    sides = {}
    for k in covered:
        holders = [i for i, (_, s) in enumerate(axial) if k in s]
        left = int(rng.choice(holders))
        others = [i for i in holders if i != left]
        apart = others and rng.random() < RATES["sides_apart"]
        sides[k] = (left, int(rng.choice(others)) if apart else left)
    return Layout(t1=t1, t2=t2, axial=axial, sides=sides)
