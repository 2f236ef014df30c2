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
_SIDE = {"Left": "L", "Right": "R"}
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


def _side(point, space: str = "") -> str:
    """``"L"`` or ``"R"`` for a left or right condition's point, else nothing."""
    side = _SIDE.get(point.condition.split(" ", 1)[0], "")
    return space + side if side else ""


def _confidence(point) -> float:
    return getattr(point, "confidence", math.nan)


def _where(point) -> str:
    return f"{point.series_description} series {point.series_id}, instance {point.instance_number}"


def _confidence_words(point) -> str:
    confidence = _confidence(point)
    if not math.isfinite(confidence):
        return "no confidence given"
    return f"confidence {confidence:.2f} ({confidence_class(confidence)[0]})"


def _slices(folder: Path, study_id: int, points: list, run: Run, missing: list):
    """One figure per slice that carries points (``points``: one series' records); and why
    any slice could not be drawn."""
    figures, problems = [], []
    axial = points[0].series_description == AXIAL
    slices: dict[int, list] = {}
    for point in points:
        slices.setdefault(point.instance_number, []).append(point)
    for instance, on_slice in slices.items():
        first = on_slice[0]
        where = f"{first.series_description} series {first.series_id}"
        levels = list(dict.fromkeys(p.level for p in on_slice))
        # An axial slice shows one level (two when the flag qc_order says so): its name
        # goes in the corner, each point says its side.
        marks = [
            (p.x, p.y, _side(p) if axial else p.level + _side(p, " "), _confidence(p))
            for p in on_slice
        ]
        name = f"s{first.series_id}_{instance}.png"
        try:
            width, height, scale = slice_png(
                first.image_path,
                marks,
                folder / name,
                normalize_of(run.transformers, first.condition),
                AXIAL_MAX_SIDE if axial else MAX_SIDE,
                " and ".join(levels) if axial else "",
            )
        except READ_ERRORS as exc:
            problem = f"instance {instance} could not be read: {_one_line(exc, run.data_dir)}"
            problems.append(problem)
            missing.append(f"{where}, {problem}")
            continue
        conditions = list(dict.fromkeys(CONDITION_SHORT_NAMES[p.condition] for p in on_slice))
        caption = (
            f"{' and '.join(levels)}: instance {instance}"
            if axial
            else f"Instance {instance}: {' and '.join(conditions)} {', '.join(levels)}"
        )
        shrunk = "" if scale == 1 else f", shrunk to {width} x {height}"
        alt = f"{where}, instance {instance}{shrunk}, with its located points: " + "; ".join(
            f"{row_name(p.condition, p.level)} ({_confidence_words(p)})" for p in on_slice
        )
        figures.append(Figure(f"{study_id}/{name}", alt, caption, width, height))
    return figures, problems


def _blocks(folder: Path, study_id: int, points: list, listed: pd.DataFrame | None, run: Run):
    """The study's series in reading order, and what is missing from it."""
    missing: list[str] = []
    series = {p.series_id: p.series_description for p in points}
    problems: dict[int, str | None] = {}
    if listed is not None:
        if listed.empty:
            missing.append(f"the study is not listed in {run.split}_series_descriptions.csv")
        for row in listed.itertuples(index=False):
            problem = row.problem if isinstance(row.problem, str) else None
            problems[row.series_id] = problem
            series.setdefault(row.series_id, row.series_description)
            if problem:
                missing.append(f"{row.series_description} series {row.series_id}: {problem}")
    for description in SERIES_ORDER:
        if description not in series.values():
            missing.append(
                f"no {description} series" + ("" if listed is not None else " with located points")
            )
    order = {d: k for k, d in enumerate(SERIES_ORDER)}
    blocks = []
    for series_id, description in sorted(
        series.items(), key=lambda item: (order.get(item[1], len(order)), item[0])
    ):
        mine = [p for p in points if p.series_id == series_id]
        block = SeriesBlock(str(description), int(series_id), points=mine)
        block.problem = problems.get(series_id)
        if block.problem is None and not mine:
            block.problem = "no located points on this series"
        elif mine:
            block.figures, slice_problems = _slices(folder, study_id, mine, run, missing)
            if slice_problems:
                block.problem = "; ".join(filter(None, [block.problem, *slice_problems]))
        blocks.append(block)
    return blocks, missing


def _grades(folder: Path, summary: StudySummary, points: pd.DataFrame, run: Run) -> list[GradeRow]:
    records = list(points.itertuples(index=False))
    # What predict_studies grades: every point but those outside their image.
    graded = [not getattr(p, "qc_outside_image", False) for p in records]
    crops = iter(cut(run.transformers, points.loc[graded]))
    by_row: dict[tuple, list] = {}
    for point, is_graded in zip(records, graded):
        crop = next(crops) if is_graded else None
        by_row.setdefault((point.condition, point.level), []).append((point, crop))
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
        for point, crop in by_row.get((row.condition, row.level), []):
            grade.points.append(f"{_where(point)}: {_confidence_words(point)}")
            grade.flags += [
                f"{flag_words(c)[1]} ({_where(point)})" for c in run.flags if getattr(point, c)
            ]
            if isinstance(crop, str):
                grade.crops.append(f"no crop ({_where(point)}): {_one_line(crop, run.data_dir)}")
            elif crop is not None:
                name = f"crop_{slug(row.condition)}_{slug(row.level)}_{len(grade.crops)}.png"
                normalize = normalize_of(run.transformers, row.condition)
                width, height = crop_png(crop, folder / name, normalize)
                alt = (
                    f"The crop graded for {row_name(row.condition, row.level)}: "
                    f"{_where(point)}, {width} x {height} pixels as the model saw it"
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
    records = list(points.itertuples(index=False))
    blocks, summary.missing = _blocks(folder, study_id, records, listed, run)
    grades = _grades(folder, summary, points, run)
    sagittal = [b for b in blocks if b.description != AXIAL]
    axial = [b for b in blocks if b.description == AXIAL]
    page = study_page(summary, sagittal, axial, grades, run.flags, cropped=bool(run.transformers))
    (root / "studies" / f"{study_id}.html").write_text(page, encoding="utf-8")
    return summary
