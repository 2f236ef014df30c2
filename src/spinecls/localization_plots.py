"""Figures of located levels: true and predicted points on slices, and their errors.

Like :mod:`spinecls.plotting`, every function returns a :class:`matplotlib.figure.Figure`
built without pyplot's global state and writes a PNG when given ``path`` (the ``plot``
extra).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .dicom import read_slice
from .labels import AXIAL_T2, CONDITIONS, LEVELS, SAGITTAL_T2
from .localization._point_frames import localization_errors
from .plotting import new_figure, save_figure

__all__ = ["localization_errors", "plot_localization", "plot_localization_errors"]


def _panel(axes, truth_row, predicted: pd.DataFrame, title: str) -> None:
    image = read_slice(truth_row["image_path"])
    axes.imshow(image.pixels, cmap="gray")
    axes.scatter(truth_row["x"], truth_row["y"], s=60, facecolors="none", edgecolors="lime")
    if len(predicted):
        axes.scatter(predicted["x"], predicted["y"], s=25, marker="x", color="red")
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()


def plot_localization(truth: pd.DataFrame, predicted: pd.DataFrame, study_id=None, path=None):
    """True (green circles) and predicted (red crosses) points on a sagittal and an axial slice.

    Parameters
    ----------
    truth : pandas.DataFrame
        Labelled coordinates with ``image_path`` (e.g. :func:`spinecls.load_rsna`).
    predicted : pandas.DataFrame
        :meth:`spinecls.LevelLocalizer.predict`'s frame.
    study_id : int, optional
        The study to show; default the first of ``truth`` that has both planes.
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: the Sagittal T2/STIR slice of the spinal canal's L4/L5 point (all
        predicted points of that series on that slice), and the Axial T2 slice of the
        left subarticular L4/L5 point.
    """
    wanted = {SAGITTAL_T2: (CONDITIONS[0], LEVELS[3]), AXIAL_T2: (CONDITIONS[3], LEVELS[3])}
    studies = truth["study_id"].unique() if study_id is None else [study_id]
    for study in studies:
        rows = {}
        for description, (condition, level) in wanted.items():
            match = truth[
                (truth["study_id"] == study)
                & (truth["condition"] == condition)
                & (truth["level"] == level)
            ]
            if len(match):
                rows[description] = match.iloc[0]
        if len(rows) == len(wanted):
            break
    else:
        raise ValueError(
            "no study of truth has both a spinal canal and a left subarticular L4/L5 point"
        )
    figure = new_figure(figsize=(8, 4.2))
    for k, (description, row) in enumerate(rows.items()):
        axes = figure.add_subplot(1, 2, k + 1)
        same = predicted[
            (predicted["series_id"] == row["series_id"])
            & (predicted["instance_number"] == row["instance_number"])
        ]
        _panel(axes, row, same, f"study {study}: {description}, slice {row['instance_number']}")
    figure.suptitle("located levels: truth (green circles), predicted (red crosses)", fontsize=10)
    return save_figure(figure, path)


def plot_localization_errors(errors: pd.DataFrame, path=None):
    """Histograms of the in-plane error and the slice offset of located points.

    Parameters
    ----------
    errors : pandas.DataFrame
        :func:`localization_errors`'s frame.
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not len(errors):
        raise ValueError("errors is empty: no located point matched a true one")
    figure = new_figure(figsize=(9, 3.4))
    distance, offset = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    clipped = np.minimum(errors["distance"].to_numpy(float), 30.0)
    distance.hist(clipped, bins=np.arange(0, 31, 1.0), color="tab:blue")
    distance.axvline(5, color="red", linestyle="--", linewidth=1)
    distance.set_xlabel("in-plane error (pixels; 30 = 30 or more)")
    distance.set_ylabel("points")
    within = float((errors["distance"] <= 5).mean())
    distance.set_title(f"{within:.1%} within 5 px", fontsize=9)
    offsets = np.clip(errors["slice_offset"].to_numpy(int), -3, 3)
    values, counts = np.unique(offsets, return_counts=True)
    offset.bar(values, counts, color="tab:orange")
    offset.set_xticks(range(-3, 4))
    offset.set_xlabel("slice offset (instance numbers; clipped at 3)")
    exact = float((errors["slice_offset"] == 0).mean())
    offset.set_title(f"{exact:.1%} on the true slice", fontsize=9)
    return save_figure(figure, path)
