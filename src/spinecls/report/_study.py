"""One study's page and images: its series with their points, its 25 graded rows."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..labels import CONDITION_SHORT_NAMES, slug
from ._crops import cut, normalize_of
from ._images import AXIAL_MAX_SIDE, MAX_SIDE, confidence_class, crop_png, slice_png
from ._inputs import SERIES_ORDER
from ._pages import Figure, GradeRow, SeriesBlock, prior_tuple, study_page
from ._summary import StudySummary, flag_words, row_name, summarise

AXIAL = SERIES_ORDER[-1]
_SIDE = {"Left": " L", "Right": " R"}
# What reading a slice or cutting a crop raises for a missing, unreadable or undecodable
# file (spinecls.dicom.MissingCodecError is a RuntimeError): said on the page, in words.
READ_ERRORS = (OSError, ValueError, RuntimeError)


@dataclass(frozen=True)
class Run:
    """What every study of a report shares: where the data is, the model's transformers
    (``{condition: LumbarPatchTransformer}``, empty without a model), the flag columns and
    the prior."""

    data_dir: Path
    split: str
    transformers: dict
    flags: list
    prior: dict


_ABSOLUTE = re.compile(r"(?<![\w.])/(?:[^\s/:'\"]+/)+([^\s/:'\"]+)")


def _relative(text: str, data_dir: Path) -> str:
    """``text`` with the paths in it relative to ``data_dir`` (others cut to their name):
    a report moves to another machine, and shows no one's folders."""
    for prefix in {str(data_dir.resolve()), str(data_dir.absolute())}:
        text = text.replace(prefix + os.sep, "")
    return _ABSOLUTE.sub(r".../\1", text)


def _one_line(exc: BaseException | str, data_dir: Path) -> str:
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    return _relative(text, data_dir)


def _label(point) -> str:
    return point.level + _SIDE.get(point.condition.split(" ", 1)[0], "")


def _where(point) -> str:
    return f"{point.series_description} series {point.series_id}, instance {point.instance_number}"


def _confidence_words(point) -> str:
    confidence = getattr(point, "confidence", math.nan)
    if not math.isfinite(confidence):
        return "no confidence given"
    return f"confidence {confidence:.2f} ({confidence_class(confidence)[0]})"


def _slices(
    folder: Path, study_id: int, points: pd.DataFrame, run: Run, missing: list
) -> tuple[list[Figure], list[str]]:
    """One figure per slice that carries points; and why any slice could not be drawn."""
    figures, problems = [], []
    axial = points["series_description"].iloc[0] == AXIAL
    for instance, on_slice in points.groupby("instance_number", sort=False):
        first = on_slice.iloc[0]
        levels = list(dict.fromkeys(on_slice["level"]))
        # An axial slice shows one level (two when the flag qc_order says so): its name
        # goes in the corner, each point says its side.
        marks = [
            (
                p.x,
                p.y,
                _SIDE.get(p.condition.split(" ", 1)[0], "").strip() if axial else _label(p),
                getattr(p, "confidence", math.nan),
            )
            for p in on_slice.itertuples(index=False)
        ]
        name = f"s{first['series_id']}_{instance}.png"
        try:
            width, height, scale = slice_png(
                first["image_path"],
                marks,
                folder / name,
                normalize_of(run.transformers, first["condition"]),
                AXIAL_MAX_SIDE if axial else MAX_SIDE,
                " and ".join(levels) if axial else "",
            )
        except READ_ERRORS as exc:
            problem = f"instance {instance} could not be read: {_one_line(exc, run.data_dir)}"
            problems.append(problem)
            missing.append(f"{first['series_description']} series {first['series_id']}, {problem}")
            continue
        conditions = list(dict.fromkeys(CONDITION_SHORT_NAMES[c] for c in on_slice["condition"]))
        caption = (
            f"{' and '.join(levels)}: instance {instance}"
            if axial
            else f"Instance {instance}: {' and '.join(conditions)} {', '.join(levels)}"
        )
        shrunk = "" if scale == 1 else f", shrunk to {width} x {height}"
        alt = (
            f"{first['series_description']} series {first['series_id']}, instance {instance}"
            f"{shrunk}, with its located points: "
            + "; ".join(
                f"{row_name(p.condition, p.level)} ({_confidence_words(p)})"
                for p in on_slice.itertuples(index=False)
            )
        )
        figures.append(Figure(f"{study_id}/{name}", alt, caption, width, height))
    return figures, problems


def _blocks(
    folder: Path, study_id: int, points: pd.DataFrame, listed: pd.DataFrame | None, run: Run
) -> tuple[list[SeriesBlock], list[str]]:
    """The study's series in reading order, and what is missing from it."""
    missing: list[str] = []
    series = points[["series_id", "series_description"]].drop_duplicates("series_id")
    problems: dict[int, str | None] = {}
    if listed is not None:
        if listed.empty:
            missing.append(f"the study is not listed in {run.split}_series_descriptions.csv")
        for row in listed.itertuples(index=False):
            problem = row.problem if isinstance(row.problem, str) else None
            problems[row.series_id] = problem
            if problem:
                missing.append(f"{row.series_description} series {row.series_id}: {problem}")
        series = pd.concat([series, listed[["series_id", "series_description"]]]).drop_duplicates(
            "series_id"
        )
    for description in SERIES_ORDER:
        if not (series["series_description"] == description).any():
            missing.append(
                f"no {description} series" + ("" if listed is not None else " with located points")
            )
    order = {d: k for k, d in enumerate(SERIES_ORDER)}
    series = series.assign(_order=series["series_description"].map(order).fillna(len(order)))
    blocks = []
    for row in series.sort_values(["_order", "series_id"], kind="stable").itertuples(index=False):
        mine = points[points["series_id"] == row.series_id]
        block = SeriesBlock(str(row.series_description), int(row.series_id), points=mine)
        block.problem = problems.get(row.series_id)
        if block.problem is None and mine.empty:
            block.problem = "no located points on this series"
        elif not mine.empty:
            block.figures, slice_problems = _slices(folder, study_id, mine, run, missing)
            if slice_problems:
                block.problem = "; ".join(filter(None, [block.problem, *slice_problems]))
        blocks.append(block)
    return blocks, missing


def _grades(folder: Path, summary: StudySummary, points: pd.DataFrame, run: Run) -> list[GradeRow]:
    graded = points
    if "qc_outside_image" in points.columns:
        graded = points.loc[~points["qc_outside_image"].to_numpy(bool)]
    graded = graded.reset_index(drop=True)
    crops = cut(run.transformers, graded)
    rows = []
    for row in summary.rows.itertuples(index=False):
        proba = None if math.isnan(row.normal_mild) else (row.normal_mild, row.moderate, row.severe)
        grade = GradeRow(
            row.condition,
            row.level,
            proba,
            prior_tuple(run.prior, row.condition),
            bool(row.on_prior),
        )
        mine = (points["condition"] == row.condition) & (points["level"] == row.level)
        for point in points.loc[mine].itertuples(index=False):
            grade.points.append(f"{_where(point)}: {_confidence_words(point)}")
            for column in run.flags:
                if getattr(point, column):
                    grade.flags.append(f"{flag_words(column)[1]} ({_where(point)})")
        on_graded = (graded["condition"] == row.condition) & (graded["level"] == row.level)
        for k in on_graded[on_graded].index:
            crop, point = crops[k], graded.loc[k]
            if crop is None:
                continue
            if isinstance(crop, str):
                grade.crops.append(f"no crop ({_where(point)}): {_one_line(crop, run.data_dir)}")
                continue
            name = f"crop_{slug(row.condition)}_{slug(row.level)}_{len(grade.crops)}.png"
            normalize = normalize_of(run.transformers, row.condition)
            width, height = crop_png(crop, folder / name, normalize)
            alt = (
                f"The crop graded for {row_name(row.condition, row.level)}: {_where(point)}, "
                f"{width} x {height} pixels as the model saw it"
            )
            grade.crops.append(Figure(f"{summary.study_id}/{name}", alt, "", width, height))
        rows.append(grade)
    return rows


def write_study(
    root: Path,
    run: Run,
    study_id: int,
    submission: pd.DataFrame,
    points: pd.DataFrame,
    listed: pd.DataFrame | None,
    on_prior: set,
) -> StudySummary:
    """Write ``studies/{study_id}.html`` and its images under ``root``; return its summary.

    ``submission``, ``points`` and ``listed`` (the series the descriptions file lists,
    None without one) are the study's rows; ``on_prior`` its rows on the class prior.
    """
    folder = root / "studies" / str(study_id)
    folder.mkdir(parents=True)
    points = points.reset_index(drop=True)
    summary = summarise(study_id, submission, points, run.flags, on_prior)
    blocks, summary.missing = _blocks(folder, study_id, points, listed, run)
    grades = _grades(folder, summary, points, run)
    sagittal = [b for b in blocks if b.description != AXIAL]
    axial = [b for b in blocks if b.description == AXIAL]
    page = study_page(summary, sagittal, axial, grades, run.flags, cropped=bool(run.transformers))
    (root / "studies" / f"{study_id}.html").write_text(page, encoding="utf-8")
    return summary
