"""LevelLocalizer and load_series: layout, coverage, determinism, persistence, errors."""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import check_scoring

import spinecls
from spinecls.datasets import RSNADataWarning, load_series
from spinecls.geometry import SeriesGeometry
from spinecls.localization import OUTPUT_COLUMNS, LevelLocalizer
from spinecls.localization._levels import (
    cell_distances,
    decode_chain,
    level_steps,
    shift_confidence,
    summarise_steps,
)
from spinecls.localization._localize import (
    _order_flags,
    agreement,
    chain_offset,
    choose_axial_series,
    disc_fit,
    predict_axial,
    predict_sagittal,
)
from spinecls.localization._volumes import StackDataset, read_volume, to_original, to_working

CANAL = "Spinal Canal Stenosis"
SMALL = dict(size=32, crop=32, widths=(8, 16, 32, 32), batch_size=2)
# the stand-in networks below give stride-4 maps: the working square of earlier models
LETTERBOX = dict(SMALL, pixel_mm=None)


@pytest.fixture(scope="session")
def loc_root(tmp_path_factory):
    return spinecls.make_synthetic_rsna(
        tmp_path_factory.mktemp("loc") / "rsna", n_studies=3, random_state=5, image_size=(48, 64)
    )


@pytest.fixture(scope="session")
def loc_data(loc_root):
    return load_series(loc_root), spinecls.load_rsna(loc_root)


@pytest.fixture(scope="session")
def fit_call(loc_data):
    """A LevelLocalizer, what its fit returned, and its parameters and attributes before fit."""
    localizer = LevelLocalizer(max_epochs=2, lr=5e-3, random_state=0, **SMALL)
    before = joblib.hash(localizer.get_params()), set(vars(localizer))
    return localizer, localizer.fit(*loc_data), before


@pytest.fixture(scope="session")
def fitted(fit_call):
    return fit_call[0]


@pytest.fixture(scope="session")
def predicted(fitted, loc_data):
    return fitted.predict(loc_data[0])


def _truth(coords, predicted):
    keys = ["study_id", "series_id", "condition", "level"]
    merged = coords.merge(predicted, on=keys, suffixes=("", "_pred"))
    return merged, np.hypot(merged["x"] - merged["x_pred"], merged["y"] - merged["y_pred"])


# -- load_series ---------------------------------------------------------------------------
def test_load_series_lists_every_series(loc_root, loc_data):
    series, _ = loc_data
    described = pd.read_csv(loc_root / "train_series_descriptions.csv")
    assert list(series.columns) == ["study_id", "series_id", "series_description", "series_dir"]
    assert series["study_id"].dtype == np.int64 and series["series_id"].dtype == np.int64
    assert len(series) == len(described)
    for row in series.itertuples():
        assert row.series_dir == str(
            loc_root / "train_images" / str(row.study_id) / str(row.series_id)
        )


def test_load_series_warns_about_unmatched_folders(tmp_path):
    (tmp_path / "test_images" / "1" / "10").mkdir(parents=True)
    (tmp_path / "test_images" / "1" / "10" / "3.dcm").write_bytes(b"")
    (tmp_path / "test_images" / "1" / "11").mkdir()
    (tmp_path / "test_images" / "1" / "11" / "1.dcm").write_bytes(b"")
    pd.DataFrame(
        {"study_id": [1, 1], "series_id": [10, 12], "series_description": ["Axial T2"] * 2}
    ).to_csv(tmp_path / "test_series_descriptions.csv", index=False)
    with pytest.warns(RSNADataWarning) as caught:
        series = load_series(tmp_path, split="test")
    messages = " ".join(str(w.message) for w in caught)
    assert "[1, 12]" in messages and "[1, 11]" in messages
    assert series["series_id"].tolist() == [10]
    with pytest.raises(ValueError, match="split must be"):
        load_series(tmp_path, split="valid")


# -- predictions ---------------------------------------------------------------------------
def test_predict_layout(predicted, loc_data):
    series, coords = loc_data
    assert tuple(predicted.columns) == OUTPUT_COLUMNS
    assert predicted[["study_id", "series_id", "instance_number"]].dtypes.eq(np.int64).all()
    assert predicted[["x", "y", "confidence"]].dtypes.eq(np.float64).all()
    assert predicted.filter(like="qc_").dtypes.eq(bool).all()
    assert predicted["confidence"].between(0, 1).all()
    per_series = predicted.groupby("series_id").size()
    for row in series.itertuples():
        mine = predicted[predicted["series_id"] == row.series_id]
        if row.series_description == "Sagittal T2/STIR":
            assert len(mine) == 5 and set(mine["condition"]) == {"Spinal Canal Stenosis"}
            assert mine["level"].tolist() == list(spinecls.LEVELS)
        elif row.series_description == "Sagittal T1":
            assert per_series[row.series_id] == 10
            assert mine.groupby("condition")["level"].apply(list).map(len).tolist() == [5, 5]
        else:
            assert set(mine["condition"]) <= {
                "Left Subarticular Stenosis",
                "Right Subarticular Stenosis",
            }
            assert (mine.groupby("level").size() == 2).all()
    # every predicted slice is a file of its series, and image_path names it
    for row in predicted.itertuples():
        assert row.image_path.endswith(f"/{row.series_id}/{row.instance_number}.dcm")


def test_training_lowers_both_losses(fitted):
    for history in (fitted.history_, fitted.refine_history_):
        losses = history[:, "train_loss"]
        assert len(losses) == 2 and losses[1] < losses[0]


def test_training_counts_the_labelled_series(fitted, loc_data):
    _, coords = loc_data
    labelled = coords.groupby("series_description")["series_id"].nunique()
    assert fitted.n_series_ == labelled.to_dict()


def test_predict_on_the_test_layout(fitted, loc_root, predicted, tmp_path):
    """A directory in the test layout (no coordinates at all) predicts as the train one."""
    shutil.copytree(loc_root / "train_images", tmp_path / "test_images")
    shutil.copy(
        loc_root / "train_series_descriptions.csv", tmp_path / "test_series_descriptions.csv"
    )
    series = load_series(tmp_path, split="test")
    out = fitted.predict(series)
    moved = predicted.assign(
        image_path=predicted["image_path"].str.replace(
            str(loc_root / "train_images"), str(tmp_path / "test_images"), regex=False
        )
    )
    pd.testing.assert_frame_equal(out, moved)


class _Fixed(torch.nn.Module):
    """A stand-in network: logits 0 everywhere, or 20 at one slice and a block of cells;
    ``ladder``: the block moves one row down per level of each sagittal condition (L1/L2
    at ``rows``), as discs lie down the column."""

    def __init__(self, n_points, stride, slice_=None, rows=(), cols=(), ladder=False):
        super().__init__()
        self.n_points, self.stride, self.ladder = n_points, stride, ladder
        self.slice_, self.rows, self.cols = slice_, list(rows), list(cols)

    def forward(self, images, slice_mask):
        b, d, _, h, w = images.shape
        out = torch.zeros(b, d, self.n_points, h // self.stride, w // self.stride)
        if self.slice_ is not None:
            out -= 20.0
            for k in range(self.n_points):
                down = k % 5 if self.ladder and k < 15 else 0
                out[
                    :,
                    self.slice_,
                    k,
                    self.rows[0] + down : self.rows[-1] + down + 1,
                    self.cols[0] : self.cols[-1] + 1,
                ] = 20.0
        return out


def test_confidence_and_position_follow_the_heatmaps(loc_data):
    """Sharp heatmaps give confidence near 1 at their peak; flat ones a low confidence."""
    series, _ = loc_data
    folder = series.loc[series["series_description"] == "Sagittal T1", "series_dir"].iloc[0]
    volume = read_volume(folder, largest_stack_only=True)
    settings = LevelLocalizer(**LETTERBOX)._settings()
    # the refining crop's centre (15.5) lies between its cells 7 and 8 (stride 2)
    refine = _Fixed(5, 2, 0, [7, 8], [7, 8])
    peaked = (_Fixed(17, 4, 2, [1], [5], ladder=True), refine)
    rows = predict_sagittal(peaked, volume, "Sagittal T1", settings, "cpu")
    _, transforms = to_working(volume.images, settings.size)
    assert len(rows) == 10
    for r in rows:
        down = spinecls.LEVELS.index(r["level"])
        x, y = to_original(transforms[2], 5 * 4 + 1.5, (1 + down) * 4 + 1.5)
        assert r["instance_number"] == volume.instance_numbers[2]
        assert r["x"] == pytest.approx(x) and r["y"] == pytest.approx(y)
        assert r["confidence"] > 0.99
    assert not any(r["qc_order"] or r["qc_outside_coverage"] for r in rows)
    assert not any(r["qc_outside_image"] for r in rows)
    edge = (_Fixed(17, 4, 0, [1], [5], ladder=True), refine)  # the first slice: maybe beyond
    rows = predict_sagittal(edge, volume, "Sagittal T1", settings, "cpu")
    assert all(r["qc_outside_coverage"] for r in rows)
    # five levels on one cell: the chain keeps them apart, in order
    stacked = (_Fixed(17, 4, 2, [3], [5]), refine)
    rows = predict_sagittal(stacked, volume, "Sagittal T1", settings, "cpu")
    for condition in ("Left Neural Foraminal Narrowing", "Right Neural Foraminal Narrowing"):
        mine = [r for r in rows if r["condition"] == condition]
        height = [volume.to_patient(r["_slice"], r["x"], r["y"])[2] for r in mine]
        assert all(np.diff(height) < 0) and not any(r["qc_order"] for r in mine)
    flat = (_Fixed(17, 4), _Fixed(5, 2))
    rows = predict_sagittal(flat, volume, "Sagittal T1", settings, "cpu")
    assert max(r["confidence"] for r in rows) < 1 / len(volume)


def test_canal_points_place_the_foramina(loc_data):
    """Given the study's five canal points, each foramen starts at its level's canal point
    projected onto the chain's slice, and the two series' namings combine: alike, their
    odds multiply; a disc apart, the surer naming is kept and the points are flagged."""
    series, _ = loc_data
    folder = series.loc[series["series_description"] == "Sagittal T1", "series_dir"].iloc[0]
    volume = read_volume(folder, largest_stack_only=True)
    settings = LevelLocalizer(**LETTERBOX)._settings()
    nets = (_Fixed(17, 4, 2, [1], [5], ladder=True), _Fixed(5, 2, 0, [7, 8], [7, 8]))
    own = predict_sagittal(nets, volume, "Sagittal T1", settings, "cpu")[:5]  # left foramina
    assert min(r["level_confidence"] for r in own) > 0.99 and not own[0]["qc_level_shift"]
    at = [(r["x"] + 1.0, r["y"] + 0.5) for r in own]  # the canal a little off each foramen
    points = {lv: volume.to_patient(0, x, y) for lv, (x, y) in zip(spinecls.LEVELS, at)}
    canal = {"points": points, "confidence": 0.7}
    rows = predict_sagittal(nets, volume, "Sagittal T1", settings, "cpu", canal=canal)
    assert len(rows) == 10
    for r in rows:  # the slices are parallel: a pixel of slice 0 projects onto the same one
        assert (r["x"], r["y"]) == pytest.approx(at[spinecls.LEVELS.index(r["level"])])
        assert r["instance_number"] == volume.instance_numbers[2]  # the chain's slice
        assert r["level_confidence"] > 0.99 and not r["qc_level_shift"]
    # the canal named one disc up (its L1/L2 on the foramina's L2/L3 and so on)
    down = at[1:] + [(2 * at[4][0] - at[3][0], 2 * at[4][1] - at[3][1])]
    shifted = {lv: volume.to_patient(0, x, y) for lv, (x, y) in zip(spinecls.LEVELS, down)}
    mine = [(r["x"], r["y"]) for r in own]
    for sure, expected in ((0.7, mine), (1.0, down)):  # a tie keeps the canal
        canal = {"points": shifted, "confidence": sure}
        rows = predict_sagittal(nets, volume, "Sagittal T1", settings, "cpu", canal=canal)
        for r in rows:  # the surer naming stands, flagged
            assert (r["x"], r["y"]) == pytest.approx(expected[spinecls.LEVELS.index(r["level"])])
            assert r["qc_level_shift"] and r["level_confidence"] >= 0.5


def test_chain_offset_and_agreement():
    column = np.stack([np.zeros(5), np.zeros(5), -30.0 * np.arange(5)], axis=1)
    assert chain_offset(column, column) == 0
    assert chain_offset(column + [15.0, 2.0, 0.0], column) == 0  # beside it: a foramen
    assert chain_offset(column - [0.0, 0.0, 30.0], column) == 1  # each on the next disc
    assert chain_offset(column + [0.0, 0.0, 30.0], column) == -1
    joint, disagree = agreement(0.8, 0.8, 0)
    assert joint == pytest.approx(16 / 17) and not disagree
    kept, disagree = agreement(0.9, 0.6, 1)
    assert kept == pytest.approx(6 / 7) and disagree
    assert agreement(0.6, 0.6, -1) == (pytest.approx(0.5), True)


class _Bright(torch.nn.Module):
    """A stand-in refining network whose peak (at cells ``[7, 8]``) is as high as the
    crop's middle slice is bright: the brighter the slice, the sharper its heatmap.
    Counts its calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, images, slice_mask):
        self.calls += 1
        b, d, c, h, w = images.shape
        out = torch.zeros(b, d, 5, h // 2, w // 2)
        out[..., 7:9, 7:9] = 10.0 * images[:, :, c // 2].mean((-1, -2))[..., None, None, None]
        return out


@pytest.mark.parametrize("bright, expected", [(3, 3), (1, 1), (0, None)])
def test_foramen_slice_is_where_the_refined_heatmap_is_sharpest(loc_data, bright, expected):
    """A foramen moves from the chain's slice (2) to a neighbour where the refined heatmap
    is sharper, not two slices; the canal stays on the chain's slice."""
    series, _ = loc_data
    folder = series.loc[series["series_description"] == "Sagittal T1", "series_dir"].iloc[0]
    volume = read_volume(folder, largest_stack_only=True)
    volume.images[bright] = np.ones_like(volume.images[bright])
    settings = LevelLocalizer(**LETTERBOX)._settings()
    stack = _Fixed(17, 4, 2, [1], [5], ladder=True)
    rows = predict_sagittal((stack, _Bright()), volume, "Sagittal T1", settings, "cpu")
    slices = {r["_slice"] for r in rows}
    assert slices == {expected} if expected is not None else slices <= {1, 2, 3}
    if expected not in (None, 2):  # the stack network put no mass on the slice moved to
        assert max(r["confidence"] for r in rows) < 1e-6
    canal = predict_sagittal((stack, _Bright()), volume, "Sagittal T2/STIR", settings, "cpu")
    assert {r["_slice"] for r in canal} == {2}


def _levels(depth, h, w, rows, col=1):
    """Logits (depth, 5, h, w) of the five levels: ``rows[level]`` lists (row, logit) on
    slice 0, everything else -30."""
    logits = torch.full((depth, 5, h, w), -30.0)
    for level, peaks in enumerate(rows):
        for row, value in peaks:
            logits[0, level, row, col] = value
    return logits


def _column_positions(h, w, mm=10.0):
    """Patient mm of a grid of cells: rows run down the patient (z falls), columns back."""
    i, j = np.divmod(np.arange(h * w), w)
    return np.stack([np.zeros(h * w), j * mm, -i * mm], axis=1)


def test_chain_separates_two_levels_on_one_disc():
    """L4/L5's own map prefers L5/S1's disc: the chain sends it to the disc above."""
    rows = [[(1, 10.0)], [(4, 10.0)], [(7, 10.0)], [(13, 10.0), (10, 7.0)], [(13, 10.0)]]
    steps = [[30.0, 2.0]] * 4
    logits = _levels(1, 15, 3, rows)
    out = decode_chain(logits, _column_positions(15, 3), steps, 10.0)
    assert [round(r) for _, r, _, _ in out] == [1, 4, 7, 10, 13]
    assert [round(c) for _, _, c, _ in out] == [1] * 5
    assert out[3][3] == pytest.approx([1.0])  # the slice is sure, wherever the point went
    # the distances shared between a series' chains decode alike
    distance = cell_distances(_column_positions(15, 3))
    assert distance.dtype == np.float32 and distance[0, 3] == pytest.approx(10.0)
    shared = decode_chain(logits, _column_positions(15, 3), steps, 10.0, distance)
    assert [(d, r, c) for d, r, c, _ in shared] == [(d, r, c) for d, r, c, _ in out]
    # without geometry the order alone (image rows) still keeps the two apart
    out = decode_chain(logits, None, None, 0.0)
    assert [round(r) for _, r, _, _ in out] == [1, 4, 7, 10, 13]


@pytest.mark.parametrize("low", [17, 21])
def test_chain_counts_up_from_l5s1(low):
    """L5/S1's map is sure; the other levels' maps are weak and drawn to the rows a
    template would give (rows 0 to 3). Wherever the column sits (L5/S1
    at ``low``), the chain counts the levels up from L5/S1, one learned step each."""
    rows = [[(level, 1.0), (low - 3 * (4 - level), 0.5)] for level in range(4)]
    rows.append([(low, 12.0)])
    logits = _levels(2, 24, 3, rows)
    out = decode_chain(logits, _column_positions(24, 3), [[30.0, 2.0]] * 4, 10.0)
    assert [round(r) for _, r, _, _ in out] == [low - 12, low - 9, low - 6, low - 3, low]
    assert all(d == 0 for d, _, _, _ in out)  # the slice the maps put the levels on
    # each on its own, the unsure levels stay where the template put them
    alone = logits.float().transpose(0, 1).reshape(5, -1).argmax(-1) % (24 * 3) // 3
    assert alone.tolist() == [0, 1, 2, 3, low]


def test_shift_confidence_weighs_the_chain_against_its_neighbours():
    """The chain's naming against the same cells named one disc up or down: sure when
    each level's map peaks on its own cell, not when the maps peak a disc lower, even
    when that is where the chain sits, and half sure when each is torn between two."""
    cells = [(3 + 3 * level, 1) for level in range(5)]
    own = _levels(1, 24, 3, [[(3 + 3 * level, 10.0)] for level in range(5)])
    assert shift_confidence(own, cells) > 0.999
    lower = _levels(1, 24, 3, [[(6 + 3 * level, 10.0)] for level in range(5)])
    assert shift_confidence(lower, cells) < 1e-3
    torn = _levels(1, 24, 3, [[(3 + 3 * level, 10.0), (6 + 3 * level, 10.0)] for level in range(5)])
    assert shift_confidence(torn, cells) == pytest.approx(0.5, abs=1e-3)
    # a chain at the grid's edge: the level beyond it scores the map's lowest
    edge = [(4 * level, 1) for level in range(5)]
    assert shift_confidence(_levels(1, 17, 3, [[(4 * lv, 10.0)] for lv in range(5)]), edge) > 0.99


def test_chain_keeps_a_faint_l5s1_above_a_sacral_segment():
    """Real L5/S1 discs are often the faintest (thin, dark, cut obliquely) and a sacral
    segment one step below can look like a disc: the chain keeps the faint L5/S1 one
    learned step below L4/L5, never the segment two steps below it, and never shifts
    the other levels up to make the lowest bright disc L5/S1."""
    steps = [[30.0, 2.0]] * 4
    rows = [[(3 + 3 * level, 10.0)] for level in range(4)]
    rows.append([(15, 1.0), (18, 3.0)])  # L5/S1 faint; its map prefers the segment below
    logits = _levels(1, 24, 3, rows)
    out = decode_chain(logits, _column_positions(24, 3), steps, 10.0)
    assert [round(r) for _, r, _, _ in out] == [3, 6, 9, 12, 15]
    assert shift_confidence(logits, [(r, c) for _, r, c, _ in out]) > 0.99


def test_level_steps_are_learned_from_the_labels():
    at = {"L1/L2": 0.0, "L2/L3": -30.0, "L3/L4": -62.0, "L5/S1": -130.0}
    points = pd.DataFrame(
        {"condition": CANAL, "level": list(at), "x": 0.0, "y": list(at.values()), "slice": 0}
    )
    steps = level_steps(points, lambda d, x, y: np.array([x, 0.0, y]))
    assert np.allclose(steps[CANAL][:2], [[30.0], [32.0]]) and np.isnan(steps[CANAL][2:]).all()
    other = level_steps(points.assign(y=points["y"] * 1.1), lambda d, x, y: np.array([x, 0, y]))
    summary = summarise_steps([steps, other])[CANAL]
    assert summary[0] == pytest.approx([31.5, 2.0])  # spread: at least 2 mm
    assert summary[1][0] == pytest.approx(33.6) and np.isnan(summary[2][0])


def _canal_sources(series, coords, study_id, shift=(0.0, 0.0, 0.0)):
    """The study's true canal points in patient mm (moved by ``shift``), as predict_axial
    takes them from a sagittal series; L3/L4 flagged out of order, L5/S1 named unsure."""
    canal = coords[(coords["study_id"] == study_id) & (coords["condition"] == CANAL)]
    t2 = SeriesGeometry.from_directory(
        series.loc[series["series_id"] == canal["series_id"].iloc[0], "series_dir"].iloc[0]
    )
    return {
        r.level: (
            t2.pixel_to_patient(r.instance_number, r.x, r.y) + shift,
            r.level == "L3/L4",
            0.5 if r.level == "L5/S1" else 1.0,
        )
        for r in canal.itertuples()
    }


def _axial(fitted, folder, sources):
    nets = (fitted.net_.module_, fitted.refine_net_.module_)
    return predict_axial(nets, read_volume(folder), sources, fitted._settings(), "cpu")


def test_axial_levels_outside_coverage_are_absent(fitted, loc_data, tmp_path):
    """Truncate an axial series to its lowest levels: the others get no rows."""
    series, coords = loc_data
    axial = coords[coords["series_description"] == "Axial T2"]
    study = axial.groupby("series_id")["level"].nunique().idxmax()
    row = series[series["series_id"] == study].iloc[0]
    geometry = SeriesGeometry.from_directory(row.series_dir)
    labelled = axial[axial["series_id"] == study].drop_duplicates("level").set_index("level")
    height = {
        lv: geometry.pixel_to_patient(r.instance_number, r.x, r.y)[2]
        for lv, r in labelled.iterrows()
    }
    keep_levels = sorted(height, key=height.get)[:2]  # the two lowest labelled levels
    cut = (
        max(height[lv] for lv in keep_levels)
        + min(h for lv, h in height.items() if lv not in keep_levels)
    ) / 2
    folder = tmp_path / "cut"
    folder.mkdir()
    for s in geometry.slices:
        if s.pixel_to_patient((s.columns - 1) / 2, (s.rows - 1) / 2)[2] < cut:
            shutil.copy(s.source, folder)
    rows = _axial(fitted, folder, _canal_sources(series, coords, row.study_id))
    assert sorted(r["level"] for r in rows) == sorted(keep_levels * 2)
    truth = labelled.loc[keep_levels, "instance_number"].to_dict()
    assert all(r["instance_number"] == truth[r["level"]] for r in rows)
    assert not any(r["qc_outside_image"] for r in rows)
    # the whole series: every labelled level, L3/L4 carrying its sagittal order flag
    rows = _axial(fitted, row.series_dir, _canal_sources(series, coords, row.study_id))
    assert {r["level"] for r in rows} == set(labelled.index)
    assert all(r["qc_order"] == (r["level"] == "L3/L4") for r in rows)


def test_axial_projection_outside_the_image_is_flagged(fitted, loc_data):
    """Level points 1 m to the patient's left still find their slices, flagged."""
    series, coords = loc_data
    row = series[series["series_description"] == "Axial T2"].iloc[0]
    sources = _canal_sources(series, coords, row.study_id, shift=(1000.0, 0.0, 0.0))
    rows = _axial(fitted, row.series_dir, sources)
    assert rows and all(r["qc_outside_image"] for r in rows)


def _tilt(degrees: float) -> np.ndarray:
    """A rotation about the patient's left-right axis (x)."""
    a = np.radians(degrees)
    return np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])


def test_each_axial_level_is_read_on_the_series_through_its_disc(tmp_path):
    """Two axial series cover a study's levels, one straight and one tilted 15 degrees
    (slices 4 mm apart): the levels go to the series whose slices lie parallel to the
    discs (square to the column the level points trace), a level outside the tilted
    series' short coverage to the straight one, a level neither covers to none."""
    axial = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # rows back, slices up
    shape, spacing = np.array([8, 8, 40]), np.array([4.0, 4.0, 4.0])
    volumes = []
    for series_id, (tilt, depth) in enumerate([(0.0, 40), (15.0, 12)], start=1):
        direction = _tilt(tilt) @ axial
        size = np.array([*shape[:2], depth])
        origin = -direction @ (spacing * (size - 1) / 2)
        volumes.append(
            spinecls.datasets.SpineVolume(
                np.zeros(size, np.uint16), tuple(spacing), 7, series_id,
                series_description="Axial T2", direction=direction, origin=tuple(origin),
            )
        )  # fmt: skip
    root = spinecls.datasets.write_volumes(tmp_path / "axial", volumes)
    read = {k: read_volume(root / "train_images" / "7" / str(k)) for k in (1, 2)}
    heights = np.array([60.0, 30.0, 1.0, -30.0, -100.0])  # L5/S1 below both series
    for lean, middle in ((0.0, 1), (15.0, 2)):
        along = _tilt(lean) @ np.array([0.0, 0.0, 1.0])
        sources = {lv: (h * along, False, 1.0) for lv, h in zip(spinecls.LEVELS, heights)}
        chosen = choose_axial_series(read, sources)
        assert chosen[1].keys() | chosen[2].keys() == set(spinecls.LEVELS[:4])
        assert {lv for lv in chosen[2]} == ({"L3/L4"} if middle == 2 else set())
        assert chosen[1]["L1/L2"] is sources["L1/L2"]
    # the fit: the disc's centre 1 mm from the straight series' nearest slice, square to it
    assert disc_fit(read[1], np.array([0.0, 0.0, 1.0]), np.array([0, 0, 1.0])) == pytest.approx(
        1.0, abs=1e-3
    )
    # tilted 15 degrees: sqrt(d ** 2 + (20 sin 15 / 2) ** 2) with d < 2
    fit = disc_fit(read[2], np.array([0.0, 0.0, 1.0]), np.array([0, 0, 1.0]))
    assert 20 * np.sin(np.radians(15)) / 2 <= fit <= np.hypot(2, 20 * np.sin(np.radians(15)) / 2)
    assert disc_fit(read[2], np.array([0.0, 0.0, 60.0]), None) == np.inf


@pytest.mark.parametrize("augment", [False, True])
def test_points_moved_out_of_the_sample_lose_their_weight(augment):
    images = np.ones((2, 1, 40, 40), np.float32)
    targets = np.array([[0, 1.0, 1.0, 1.0], [1, 20.0, 20.0, 1.0]], np.float32)
    data = StackDataset([(images, targets)], augment=augment, seed=0, window=16)
    kept = []
    for _ in range(30):
        sample, out = data[0]
        assert sample.shape == (2, 1, 16, 16)
        inside = ((out[:, 1:3] >= 0) & (out[:, 1:3] <= 15)).all(1)
        assert torch.equal(out[:, 3], inside.float())
        kept.append(out[:, 3].tolist())
    assert {0.0, 1.0} <= {w for pair in kept for w in pair}


def test_order_flags():
    rows = [
        {
            "condition": "Spinal Canal Stenosis",
            "level": lv,
            "x": 10.0,
            "y": y,
            "_slice": 0,
            "qc_order": False,
        }
        for lv, y in zip(spinecls.LEVELS, [10.0, 20.0, 40.0, 30.0, 50.0])
    ]
    volume = type("V", (), {"slices": None})()
    _order_flags(volume, rows)
    assert [r["qc_order"] for r in rows] == [False, False, True, True, False]


# -- estimator contract ----------------------------------------------------------------------
def test_deterministic_and_leaves_global_rng(loc_data):
    series, coords = loc_data
    one = series[series["study_id"] == series["study_id"].iloc[0]]
    state = torch.random.get_rng_state()
    a = LevelLocalizer(max_epochs=1, random_state=3, **SMALL).fit(series, coords).predict(one)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = LevelLocalizer(max_epochs=1, random_state=3, **SMALL).fit(series, coords).predict(one)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None, reason="accelerate is not installed"
)
def test_one_process_accelerator_predicts_as_without(fitted, predicted, loc_data):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from skorch.hf import AccelerateMixin

    series, coords = loc_data
    try:
        loc = clone(fitted).set_params(accelerator=Accelerator(cpu=True)).fit(series, coords)
        out = loc.predict(series)
    finally:  # accelerate keeps its state per process
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    assert isinstance(loc.net_, AccelerateMixin) and loc.net_.device is None
    np.testing.assert_allclose(
        loc.history_[:, "train_loss"], fitted.history_[:, "train_loss"], atol=1e-6
    )
    pd.testing.assert_frame_equal(
        out.drop(columns=["x", "y", "confidence"]),
        predicted.drop(columns=["x", "y", "confidence"]),
    )
    np.testing.assert_allclose(out[["x", "y"]], predicted[["x", "y"]], atol=1e-3)


def test_bf16_trains_and_predicts(loc_data):
    series, coords = loc_data
    one = series[series["study_id"] == series["study_id"].iloc[0]]
    loc = LevelLocalizer(max_epochs=1, precision="bf16", random_state=0, **SMALL)
    out = loc.fit(series, coords).predict(one)
    assert np.isfinite(loc.history_[:, "train_loss"]).all()
    assert len(out) >= 15 and np.isfinite(out[["x", "y", "confidence"]]).all().all()
    with pytest.raises(ValueError, match="precision='fp16' needs a CUDA device"):
        LevelLocalizer(precision="fp16").fit(series, coords)
    with pytest.raises(ValueError, match=r"'precision' parameter of LevelLocalizer must be a str"):
        LevelLocalizer(precision="16").fit(series, coords)


def test_save_load_round_trip(fitted, predicted, loc_data, tmp_path):
    path = tmp_path / "loc.pt"
    fitted.save(path)
    loaded = LevelLocalizer.load(path)
    assert loaded.get_params() == fitted.get_params()
    pd.testing.assert_frame_equal(loaded.predict(loc_data[0]), predicted)
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a model file written by LevelLocalizer.save"):
        LevelLocalizer.load(tmp_path / "bad.pt")
    # a file of the previous LevelLocalizer (no level steps): levels decoded in order only
    state = torch.load(path, weights_only=True)
    del state["level_steps"]
    torch.save(state, tmp_path / "old.pt")
    with pytest.warns(UserWarning, match="earlier LevelLocalizer.*in order only"):
        old = LevelLocalizer.load(tmp_path / "old.pt")
    assert old.level_steps_ is None
    old.save(tmp_path / "resaved.pt")  # saved again, it still tells the next user
    with pytest.warns(UserWarning, match="earlier LevelLocalizer.*in order only"):
        LevelLocalizer.load(tmp_path / "resaved.pt")
    # a file written before pixel_mm and conditions_ (its networks shrank every slice to
    # fit and learned every condition) loads as such, not with the new defaults
    LevelLocalizer(max_epochs=1, **LETTERBOX).fit(*loc_data).save(tmp_path / "letterbox.pt")
    state = torch.load(tmp_path / "letterbox.pt", weights_only=True)
    params = json.loads(state["params"])
    del params["pixel_mm"], state["conditions"]
    state["params"] = json.dumps(params)
    torch.save(state, tmp_path / "older.pt")
    older = LevelLocalizer.load(tmp_path / "older.pt")
    assert older.pixel_mm is None and older.conditions_ == list(spinecls.CONDITIONS)
    # a pickle (joblib) of the same release: the same values, so that it clones and predicts
    unpickled = pickle.loads(pickle.dumps(older))
    del unpickled.__dict__["pixel_mm"], unpickled.__dict__["conditions_"]
    unpickled = pickle.loads(pickle.dumps(unpickled))
    assert unpickled.pixel_mm is None and unpickled.conditions_ == list(spinecls.CONDITIONS)
    assert clone(unpickled).get_params() == older.get_params()
    pd.testing.assert_frame_equal(unpickled.predict(loc_data[0]), older.predict(loc_data[0]))
    out = old.predict(loc_data[0])
    keys = ["series_id", "condition", "level"]
    sagittal = [
        frame.loc[frame["condition"].isin(spinecls.CONDITIONS[:3]), keys].reset_index(drop=True)
        for frame in (out, predicted)
    ]
    pd.testing.assert_frame_equal(*sagittal)


def test_clone_get_set_params(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "net_")
    copy.set_params(size=40, widths=(8, 16, 32, 32))
    assert copy.size == 40 and copy.widths == (8, 16, 32, 32)
    with pytest.raises(
        ValueError, match=r"size=40 must be a multiple of 2 \*\* len\(widths\) = 16"
    ):
        copy._settings()


def test_fit_on_the_canal_alone(loc_data, tmp_path):
    """A data set labelled on one series type (a canal-only set made from volumes with
    masks) trains; predict locates what was learned, and the model file keeps it."""
    series, coords = loc_data
    canal = coords[coords["condition"] == CANAL]
    loc = LevelLocalizer(max_epochs=1, random_state=0, **SMALL).fit(series, canal)
    assert loc.conditions_ == [CANAL]
    assert loc.n_series_ == {"Sagittal T1": 0, "Sagittal T2/STIR": 3, "Axial T2": 0}
    points = loc.predict(series)
    assert set(points["condition"]) == {CANAL}
    assert set(points["series_description"]) == {"Sagittal T2/STIR"}
    assert len(points) == 3 * len(spinecls.LEVELS)
    assert points["level_confidence"].between(0, 1).all()
    assert (points["qc_level_shift"] == (points["level_confidence"] < 0.95)).all()
    loc.save(tmp_path / "canal.pt")
    assert LevelLocalizer.load(tmp_path / "canal.pt").conditions_ == [CANAL]


def test_working_resolution_in_mm(loc_data):
    """Slices are resampled to pixel_mm (shrunk further only when the field of view
    exceeds the working square); without PixelSpacing, or pixel_mm=None, shrunk to fit."""
    settings = LevelLocalizer(size=160, pixel_mm=2.5)._settings()
    image = np.zeros((300, 400), np.float32)
    assert settings.stride == 2
    assert settings.ratio(image, 0.5) == pytest.approx(0.2)  # 200 mm: 80 of 160 pixels
    assert settings.ratio(image, 1.5) == pytest.approx(0.4)  # 600 mm: shrunk to fit
    assert settings.ratio(image) == pytest.approx(0.4)  # no spacing
    old = LevelLocalizer(size=64, pixel_mm=None)._settings()
    assert old.stride == 4 and old.ratio(image, 0.5) == pytest.approx(0.16)
    series, _ = loc_data
    volume = read_volume(series["series_dir"].iloc[0], largest_stack_only=True)
    stack, transforms = to_working(volume.images, 160, settings.scales(volume))
    mm = volume.spacing[0] / transforms[0, 0]  # a working pixel, in mm
    assert mm == pytest.approx(2.5, rel=0.05) and stack.shape[1:] == (160, 160)
    with pytest.raises(ValueError, match="pixel_mm"):
        LevelLocalizer(pixel_mm=0)._settings()


def test_bad_inputs(loc_data, tmp_path):
    series, coords = loc_data
    loc = LevelLocalizer(max_epochs=1, **SMALL)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['series_dir'\]"):
        loc.fit(series.drop(columns="series_dir"), coords)
    with pytest.raises(TypeError, match="X must be a pandas DataFrame"):
        loc.fit(series.to_numpy(), coords)
    empty = series.copy()
    empty.loc[0, "series_dir"] = str(tmp_path)
    with pytest.raises(ValueError, match="series without .dcm files"):
        loc.fit(empty, coords)
    odd = series.copy()
    odd.loc[0, "series_description"] = "Coronal T2"
    with pytest.raises(ValueError, match="unknown value"):
        loc.fit(odd, coords)
    with pytest.raises(ValueError, match=r"'max_epochs' .* must be an int in the range \[1, inf\)"):
        LevelLocalizer(max_epochs=0).fit(series, coords)
    with pytest.raises(NotFittedError):
        loc.predict(series)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bad = coords.copy()
        bad.loc[0, "instance_number"] = 999999
        with pytest.raises(ValueError, match="no slice with instance_number"):
            loc.fit(series, bad)


def test_score_is_the_share_of_labelled_points_found_and_searchable(fitted, predicted, loc_data):
    series, coords = loc_data
    study = series["study_id"].iloc[0]
    one = series[series["study_id"] == study]
    merged, distance = _truth(coords[coords["study_id"] == study], predicted)
    offset = (merged["instance_number"] - merged["instance_number_pred"]).abs()
    expected = ((distance <= 5) & (offset <= 1)).sum() / (coords["study_id"] == study).sum()
    # points on series outside X are left out; the scorer GridSearchCV uses is this score
    assert check_scoring(fitted)(fitted, one, coords) == pytest.approx(expected)
    with pytest.raises(ValueError, match="no labelled point on a series of X"):
        fitted.score(one, coords[coords["study_id"] != study])


class _Placed(LevelLocalizer):
    """A localizer whose predictions are given: the labels, moved."""

    def predict(self, X):
        return self.placed_


def test_score_counts_points_within_5_pixels_on_their_slice_or_a_neighbour(loc_data):
    series, coords = loc_data
    placed = coords.copy()
    n = len(placed)
    placed["x"] += np.where(np.arange(n) % 4 == 0, 6.0, 3.0)  # a quarter 6 px off
    placed["y"] += 3.9 * (np.arange(n) % 4 == 1)  # hypot(3, 3.9) < 5: found
    placed["instance_number"] += np.where(np.arange(n) % 4 == 2, 1, 0)  # one slice: found
    placed["instance_number"] += np.where(np.arange(n) % 4 == 3, 2, 0)  # two slices: missed
    localizer = _Placed()
    localizer.placed_ = placed.iloc[: n - 2]  # two points not found at all
    found = (np.arange(n) % 4 != 0) & (np.arange(n) % 4 != 3) & (np.arange(n) < n - 2)
    assert localizer.score(series, coords) == pytest.approx(found.sum() / n)


def test_fit_returns_self_overwrites_no_parameter_and_adds_only_fitted_attributes(fit_call):
    """check_estimators_fit_returns_self, check_estimators_overwrite_params,
    check_dont_overwrite_parameters and check_n_features_in_after_fitting, on frames."""
    localizer, returned, (params, attributes) = fit_call
    assert returned is localizer
    assert joblib.hash(localizer.get_params()) == params
    added = set(vars(localizer)) - attributes
    assert added and all(k.endswith("_") and not k.startswith("_") for k in added), added
    # it reads its columns by name: no n_features_in_ to set
    assert not hasattr(localizer, "n_features_in_")


def test_fit_refuses_points_outside_their_image_and_data_that_trains_nothing(loc_data):
    series, coords = loc_data
    loc = LevelLocalizer(max_epochs=1, **SMALL)
    outside = coords.copy()
    rows = np.flatnonzero(coords["series_id"] == coords["series_id"].iloc[0])[[1, 3]]
    outside.loc[rows, "x"] += 1000
    with pytest.raises(
        ValueError, match=rf"2 point\(s\) .* outside their image .*: row {rows[0]} "
    ):
        loc.fit(series, outside)
    with pytest.raises(ValueError, match="X has no rows"):
        loc.fit(series.iloc[:0], coords)
    elsewhere = coords.assign(series_id=coords["series_id"] + 1)
    with (
        pytest.warns(UserWarning, match="ignored .* on series absent from X"),
        pytest.raises(ValueError, match="y has no coordinates on the series .* nothing to train"),
    ):
        loc.fit(series, elsewhere)
    with pytest.raises(ValueError, match="device cuda:99 cannot be used"):
        LevelLocalizer(device="cuda:99", **SMALL).fit(series, coords)


def _edited_steps(fitted, tmp_path, step):
    fitted.save(tmp_path / "loc.pt")
    state = torch.load(tmp_path / "loc.pt", weights_only=True)
    steps = json.loads(state["level_steps"])
    steps[CANAL][1] = step
    state["level_steps"] = json.dumps(steps)
    torch.save(state, tmp_path / "edited.pt")
    return tmp_path / "edited.pt"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ([-20.0, 3.0], "must be 4 pairs"),
        ([float("inf"), 3.0], "means positive"),
        ([20.0, float("nan")], "stds finite"),
        ([20.0], "must be 4 pairs"),
    ],
)
def test_edited_level_steps_are_refused_on_load(fitted, tmp_path, step, message):
    with pytest.raises(ValueError, match=f"edited.pt: 'level_steps'.*{message}"):
        LevelLocalizer.load(_edited_steps(fitted, tmp_path, step))


def test_a_step_never_measured_loads_with_a_warning(fitted, tmp_path):
    path = _edited_steps(fitted, tmp_path, [float("nan"), 2.0])  # as fit writes it
    with pytest.warns(UserWarning, match=r"no mean for step\(s\) \[1\]"):
        LevelLocalizer.load(path)
