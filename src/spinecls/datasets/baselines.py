"""Localisation baselines that read no pixels: what a level localizer must beat.

Both learn from the labelled coordinates of training studies and predict, for every
series of held-out studies, the points read on it, in the coordinates CSV's layout. They
use the image size and the DICOM geometry only, never the pixels, so on data where
finding the levels is a real task (the real scans, and :func:`make_synthetic_rsna`'s
studies) they fail the localisation targets by a wide margin; if they did not, the
data would be too easy. ``benchmarks/bench_localize.py`` prints them beside
:class:`spinecls.LevelLocalizer`.

- :func:`template_baseline`: the training mean of each point in normalised image
  coordinates (x / columns, y / rows), on the middle slice of the series.
- :func:`geometry_baseline`: the training mean of each point in patient millimetres,
  projected onto the nearest slice of the series through its DICOM geometry; a level
  whose mean point falls outside an axial series' coverage is left out, as a
  localizer should.

The geometries are :class:`spinecls.geometry.SeriesGeometry` objects, one per series
(``SeriesGeometry.from_directory(series_folder)`` reads one from its headers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from .._utils.validation import require_columns
from ..geometry import SeriesGeometry
from ..labels import AXIAL_T2, CONDITION_SERIES, LEVELS
from ._csv import DESCRIPTION_COLUMNS
from .rsna import COORDINATE_COLUMNS

__all__ = ["baselines", "geometry_baseline", "template_baseline"]

_POINT = ["condition", "level"]


def _geometry(geometries: Mapping[int, SeriesGeometry], series_id) -> SeriesGeometry:
    try:
        return geometries[int(series_id)]
    except KeyError:
        raise KeyError(f"no SeriesGeometry given for series {series_id}") from None


def _labelled_slices(coordinates: pd.DataFrame, geometries: Mapping[int, SeriesGeometry]):
    """Each coordinate row's slice (a SliceGeometry) in its series."""
    slices = []
    for row in coordinates.itertuples():
        geometry = _geometry(geometries, row.series_id)
        slices.append(geometry.slices[int(geometry.index_of(row.instance_number))])
    return slices


def _points_to_predict(series: pd.DataFrame):
    """(study_id, series_id, condition, level) for every point read on each series."""
    require_columns(series, DESCRIPTION_COLUMNS, "series")
    for row in series.itertuples():
        for condition, description in CONDITION_SERIES.items():
            if description == row.series_description:
                for level in LEVELS:
                    yield int(row.study_id), int(row.series_id), condition, level


def _predict(
    template: pd.DataFrame,
    series: pd.DataFrame,
    geometries: Mapping[int, SeriesGeometry],
    place: Callable[[SeriesGeometry, str, np.ndarray], tuple | None],
) -> pd.DataFrame:
    """Every point read on ``series``, where ``place`` puts its ``template`` mean.

    ``place(geometry, condition, mean)`` gives the point's ``(instance_number, x, y)``
    on that series, or None to leave it out.
    """
    rows = []
    for study_id, series_id, condition, level in _points_to_predict(series):
        if (condition, level) not in template.index:
            raise ValueError(f"coordinates has no {condition} {level} point to average")
        mean = template.loc[(condition, level)].to_numpy()
        placed = place(_geometry(geometries, series_id), condition, mean)
        if placed is not None:
            instance, x, y = placed
            rows.append((study_id, series_id, int(instance), condition, level, float(x), float(y)))
    frame = pd.DataFrame(rows, columns=list(COORDINATE_COLUMNS))
    return frame.astype({"study_id": "int64", "series_id": "int64", "instance_number": "int64"})


def _middle_slice(geometry: SeriesGeometry, condition: str, mean: np.ndarray) -> tuple:
    """The template baseline's place: normalised ``mean`` on the largest stack's middle slice."""
    stack = max(geometry.stacks, key=len)
    middle = stack.slices[len(stack) // 2]
    return middle.instance_number, mean[0] * middle.columns, mean[1] * middle.rows


def _nearest_slice(geometry: SeriesGeometry, condition: str, mean: np.ndarray) -> tuple | None:
    """The geometry baseline's place: the patient point ``mean`` projected onto the
    nearest slice; None for an axial point outside the series' coverage."""
    hit = geometry.project(mean)
    if CONDITION_SERIES[condition] == AXIAL_T2 and not hit.in_coverage:
        return None
    return hit.instance_number, hit.x, hit.y


def template_baseline(
    coordinates: pd.DataFrame,
    geometries: Mapping[int, SeriesGeometry],
    series: pd.DataFrame,
    series_geometries: Mapping[int, SeriesGeometry],
) -> pd.DataFrame:
    """Every point at its training mean in normalised image coordinates, middle slice.

    Parameters
    ----------
    coordinates : pandas.DataFrame
        Training coordinates: ``series_id, instance_number, condition, level, x, y``
        (:func:`spinecls.load_rsna`'s frame or ``train_label_coordinates.csv``).
    geometries : mapping of int to SeriesGeometry
        The geometry of every series ``coordinates`` names, by series id.
    series : pandas.DataFrame
        The series to predict: ``study_id, series_id, series_description``.
    series_geometries : mapping of int to SeriesGeometry
        Their geometries, by series id.

    Returns
    -------
    pandas.DataFrame
        Columns ``study_id, series_id, instance_number, condition, level, x, y``: for
        each series the 5 levels of each condition read on its description (Sagittal
        T2/STIR: spinal canal; Sagittal T1: left and right foramina; Axial T2: left
        and right subarticular recesses), on the middle slice of its largest stack.

    Raises
    ------
    ValueError
        If a frame lacks a column, or a point of ``series`` was never labelled in
        ``coordinates``.
    KeyError
        If a series has no geometry.
    """
    require_columns(coordinates, ["series_id", "instance_number", *_POINT, "x", "y"], "coordinates")
    size = np.array([(s.columns, s.rows) for s in _labelled_slices(coordinates, geometries)])
    normalised = coordinates[_POINT].assign(
        u=coordinates["x"].to_numpy() / size[:, 0], v=coordinates["y"].to_numpy() / size[:, 1]
    )
    template = normalised.groupby(_POINT)[["u", "v"]].mean()
    return _predict(template, series, series_geometries, _middle_slice)


def geometry_baseline(
    coordinates: pd.DataFrame,
    geometries: Mapping[int, SeriesGeometry],
    series: pd.DataFrame,
    series_geometries: Mapping[int, SeriesGeometry],
) -> pd.DataFrame:
    """Every point at its training mean in patient millimetres, on the nearest slice.

    The mean patient position of each (condition, level) point over the training
    studies is projected onto each series (:meth:`SeriesGeometry.project`): the nearest
    slice and the pixel there. The sagittal slice is thus the one whose position is
    nearest the mean patient x of the point (about 0 for the spinal canal), the axial
    slice the one nearest its mean height. A point outside an axial series' coverage is
    left out; on a sagittal series the nearest slice is always kept.

    Parameters
    ----------
    coordinates, geometries, series, series_geometries
        As :func:`template_baseline`.

    Returns
    -------
    pandas.DataFrame
        As :func:`template_baseline`, without the axial points left out.

    Raises
    ------
    ValueError, KeyError
        As :func:`template_baseline`.
    """
    require_columns(coordinates, ["series_id", "instance_number", *_POINT, "x", "y"], "coordinates")
    patient = np.array(
        [
            _geometry(geometries, row.series_id).pixel_to_patient(row.instance_number, row.x, row.y)
            for row in coordinates.itertuples()
        ]
    ).reshape(-1, 3)
    template = (
        coordinates[_POINT]
        .assign(px=patient[:, 0], py=patient[:, 1], pz=patient[:, 2])
        .groupby(_POINT)[["px", "py", "pz"]]
        .mean()
    )
    return _predict(template, series, series_geometries, _nearest_slice)


def baselines(
    coordinates: pd.DataFrame,
    geometries: Mapping[int, SeriesGeometry],
    series: pd.DataFrame,
    series_geometries: Mapping[int, SeriesGeometry],
) -> dict[str, pd.DataFrame]:
    """Both baselines' predictions, by name: ``{"template": ..., "geometry": ...}``.

    Parameters
    ----------
    coordinates, geometries, series, series_geometries
        As :func:`template_baseline`.

    Returns
    -------
    dict of str to pandas.DataFrame
        :func:`template_baseline` and :func:`geometry_baseline`'s frames.

    Examples
    --------
    >>> import spinecls, tempfile
    >>> from spinecls.datasets.baselines import baselines
    >>> from spinecls.geometry import SeriesGeometry
    >>> root = spinecls.make_synthetic_rsna(
    ...     tempfile.mkdtemp() + "/rsna", n_studies=3, image_size=(64, 64)
    ... )
    >>> frame = spinecls.load_rsna(root)
    >>> series = spinecls.datasets.read_series_descriptions(root / "train_series_descriptions.csv")
    >>> geometries = {
    ...     s: SeriesGeometry.from_directory(root / "train_images" / str(t) / str(s))
    ...     for t, s in zip(series["study_id"], series["series_id"])
    ... }
    >>> predicted = baselines(frame, geometries, series, geometries)
    >>> list(predicted["template"].columns)
    ['study_id', 'series_id', 'instance_number', 'condition', 'level', 'x', 'y']
    """
    return {
        "template": template_baseline(coordinates, geometries, series, series_geometries),
        "geometry": geometry_baseline(coordinates, geometries, series, series_geometries),
    }
