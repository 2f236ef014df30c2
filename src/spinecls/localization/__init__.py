"""Finding the five lumbar levels on a study's series: :class:`LevelLocalizer`.

The estimator is in ``_localizer``; its two skorch heatmap nets and their saved state in
``_nets``; training samples and a study's inference in ``_localize``, which decodes the
five levels as one chain (``_levels``) over slice stacks (``_volumes``); the frames of
points it takes and returns in ``_point_frames``; each series' plane from its geometry
against its description in ``_series_planes``.
"""

from ._localizer import (
    OUTPUT_COLUMNS,
    POINT_COLUMNS,
    SCORE_RADIUS,
    LevelLocalizer,
    localization_errors,
)

__all__ = [
    "LevelLocalizer",
    "OUTPUT_COLUMNS",
    "POINT_COLUMNS",
    "SCORE_RADIUS",
    "localization_errors",
]
