"""Each series' plane, read from its geometry, against its description.

``{split}_series_descriptions.csv`` says which series is which; the slices' normals say
it too. :func:`check_planes` trusts the geometry: a series described as sagittal whose
slices are axial is read as the Axial T2 it is, and one whose plane its description
cannot hold (a sagittal series described as axial: T1 or T2?) is left out, each with a
warning naming it.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd

from ..datasets import RSNADataWarning
from ..geometry import GeometryWarning, SeriesGeometry

__all__ = ["PLANES", "check_planes", "series_plane"]

PLANES = ("sagittal", "coronal", "axial")
"""The plane of a slice whose normal is closest to the patient's x, y or z axis (LPS)."""

_DESCRIBED = {"Sagittal T1": "sagittal", "Sagittal T2/STIR": "sagittal", "Axial T2": "axial"}
_AXIAL = "Axial T2"


def series_plane(series_dir: str | os.PathLike) -> tuple[str, np.ndarray] | None:
    """The plane of a series' largest stack and its normal; None without geometry.

    Headers only; unreadable files are left out (their readers report them), and a
    series none of whose files has a geometry has no plane.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeometryWarning)  # the series' reader warns
        try:
            geometry = SeriesGeometry.from_directory(series_dir, skip_unreadable=True)
        except (OSError, ValueError):
            return None
    if not geometry.has_geometry:
        return None
    normal = max(geometry.stacks, key=len).normal
    return PLANES[int(np.argmax(np.abs(normal)))], normal


def check_planes(X: pd.DataFrame, caller: str) -> pd.DataFrame:
    """``X`` (one row per series) with each series taken for what its geometry shows.

    Parameters
    ----------
    X : DataFrame
        ``study_id, series_id, series_description, series_dir``.
    caller : str
        Named in the warnings.

    Returns
    -------
    DataFrame
        A copy of ``X``, index ``0..n-1``: a series described as sagittal whose slices
        are axial becomes an ``Axial T2``; a series whose slices are in a plane its
        description does not name, and that cannot be told apart otherwise (sagittal
        slices described as axial, coronal slices), is dropped.

    Warns
    -----
    RSNADataWarning
        Once per series changed or dropped, naming it, its description and its plane.
    """
    keep = np.ones(len(X), dtype=bool)
    descriptions = X["series_description"].to_numpy(dtype=object).copy()
    for k, row in enumerate(X.itertuples(index=False)):
        described = _DESCRIBED.get(row.series_description)
        found = series_plane(row.series_dir)
        if described is None or found is None or found[0] == described:
            continue
        plane, normal = found
        what = (
            f"{caller}: series {row.series_id} of study {row.study_id} is described as "
            f"{row.series_description!r} but its slices are {plane} (normal "
            f"{np.round(normal, 2).tolist()})"
        )
        if plane == "axial":
            descriptions[k] = _AXIAL
            message = f"{what}: it is read as an {_AXIAL} series"
        else:
            keep[k] = False
            message = f"{what}: it is skipped (its description cannot be trusted)"
        warnings.warn(message, RSNADataWarning, stacklevel=3)
    return X.assign(series_description=descriptions).loc[keep].reset_index(drop=True)
