"""write_volumes and levels_from_mask: image volumes with level points -> the layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydicom
import pytest

import spinecls
from spinecls.datasets import SpineVolume, levels_from_mask, load_coordinates, write_volumes
from spinecls.datasets.volumes import SAGITTAL_DIRECTION
from spinecls.geometry import SeriesGeometry

CANAL = "Spinal Canal Stenosis"


def _rotation(degrees: float) -> np.ndarray:
    """SAGITTAL_DIRECTION turned about the patient's left-right axis (a tilted sagittal)."""
    a = np.radians(degrees)
    turn = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    return turn @ SAGITTAL_DIRECTION


def _spine_mask(shape=(120, 40, 24), tilt=0.0, bodies=("L1", "L2", "L3", "L4", "L5")):
    """Bodies 16 voxels tall, 8 apart, down axis 0; each leaning by ``tilt`` voxels of
    axis 1 per voxel of axis 0. Label values count up from the top, from 3."""
    mask = np.zeros(shape, dtype=np.int16)
    rows, cols, depth = np.indices(shape)
    labels = {}
    for n, name in enumerate(bodies):
        top = 6 + 24 * n
        centre = 20 + tilt * (rows - top - 8)
        inside = (rows >= top) & (rows < top + 16) & (np.abs(cols - centre) < 12)
        inside &= np.abs(depth - 12) < 10
        mask[inside] = n + 3
        labels[n + 3] = name
    return mask, labels


def test_levels_from_bodies_lie_midway_between_the_endplates():
    mask, labels = _spine_mask()
    points = levels_from_mask(mask, labels)
    assert points["level"].tolist() == list(spinecls.LEVELS)
    assert points["source"].tolist() == ["endplates"] * 4 + ["extrapolated"]
    # bodies span rows 6-21, 30-45, ...: the discs' middles at 25.5, 49.5, 73.5, 97.5
    assert points["i"].tolist()[:4] == pytest.approx([25.5, 49.5, 73.5, 97.5])
    assert points["i"].iloc[4] == pytest.approx(121.5)  # below L5 by half a disc
    assert points[["j", "k"]].to_numpy() == pytest.approx(np.tile([19.5, 12.0], (5, 1)), abs=0.6)
    # spacing scales the mm measurements, not the voxel answer; anisotropy is honoured
    coarse = levels_from_mask(mask[::2], labels, spacing=(2.0, 1.0, 1.0))
    assert coarse["i"].iloc[:4].to_numpy() * 2 == pytest.approx([25, 49, 73, 97], abs=1.01)


def test_levels_from_tilted_bodies_follow_the_column():
    """Bodies leaning forward: the points stay between the bodies, on the line joining
    their centroids, not straight below the upper one."""
    mask, labels = _spine_mask(tilt=0.4)
    points = levels_from_mask(mask, labels)
    centroids = {name: np.argwhere(mask == v).mean(0) for v, name in labels.items()}
    for row in points.iloc[:4].itertuples():
        upper, lower = row.level.split("/")
        a, b = centroids[upper], centroids[lower]
        p = np.array([row.i, row.j, row.k])
        off_line = np.linalg.norm(np.cross(p - a, b - a)) / np.linalg.norm(b - a)
        assert off_line < 0.5 and np.linalg.norm(p - a) < np.linalg.norm(b - a)


def test_levels_from_discs_and_from_s1():
    mask, labels = _spine_mask(bodies=("L3", "L4", "L5", "S1"))
    points = levels_from_mask(mask, labels)
    assert points["level"].tolist() == ["L3/L4", "L4/L5", "L5/S1"]  # no L1, L2: left out
    assert points["source"].tolist() == ["endplates"] * 3
    discs = np.zeros((30, 10, 10), int)
    discs[5:8, 2:8, 2:8] = 1
    discs[20:23, 2:8, 2:8] = 2
    points = levels_from_mask(discs, {1: "L4/L5", 2: "L5/S1", 9: "L1/L2"})  # 9: absent
    assert points["source"].tolist() == ["disc", "disc"]
    assert points["i"].tolist() == [6.0, 21.0]
    # a disc's point is a voxel index whatever the voxel size (not the index over the spacing)
    thick = levels_from_mask(discs, {1: "L4/L5", 2: "L5/S1"}, spacing=(2.0, 0.5, 4.0))
    assert thick[["i", "j", "k"]].values.tolist() == [[6.0, 4.5, 4.5], [21.0, 4.5, 4.5]]
    with pytest.raises(ValueError, match="'L6/S2' \\(value 4\\) is neither a vertebra"):
        levels_from_mask(discs, {4: "L6/S2"})
    with pytest.raises(ValueError, match="3-D label array"):
        levels_from_mask(discs[0], {1: "L1"})


@pytest.mark.parametrize("tilt_deg, spacing", [(0.0, None), (20.0, 4.0)])
def test_written_points_and_pixels_come_back_in_patient_mm(tmp_path, tilt_deg, spacing):
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1000, size=(60, 50, 24)).astype(np.float32)
    voxels = np.array([[10.0, 12.0, 11.5], [40.0, 30.0, 12.0]])
    points = pd.DataFrame(
        {"condition": CANAL, "level": ["L1/L2", "L5/S1"], **dict(zip("ijk", voxels.T))}
    )
    direction = _rotation(tilt_deg)
    origin, step = np.array([-30.0, 10.0, 80.0]), np.array([0.8, 0.7, 1.0])
    volume = SpineVolume(image, tuple(step), 42, 420, points, direction=direction, origin=origin)
    root = write_volumes(tmp_path / "out", [volume], slice_spacing=spacing)
    coords = load_coordinates(root, split="train")
    geometry = SeriesGeometry.from_directory(root / "train_images" / "42" / "420")
    assert len(geometry) == (24 if spacing is None else 6)
    expected = origin + (voxels * step) @ direction.T
    found = np.array(
        [geometry.pixel_to_patient(r.instance_number, r.x, r.y) for r in coords.itertuples()]
    )
    normal = direction[:, 2]  # across the slices
    assert (found - expected) @ normal == pytest.approx([0, 0], abs=(spacing or 1.0) / 2 + 1e-6)
    in_plane = (found - expected) - np.outer((found - expected) @ normal, normal)
    assert np.abs(in_plane).max() < 1e-3
    # a written slice holds its slab's mean (float volumes are scaled onto 0..4095)
    first = coords.iloc[0]
    pixels = pydicom.dcmread(root / "train_images" / "42" / "420" / f"{first.instance_number}.dcm")
    assert pixels.SeriesDescription == "Sagittal T2/STIR" and pixels.Rows == 60
    assert pixels.pixel_array.shape == (60, 50) and pixels.pixel_array.max() <= 4095
    series = spinecls.load_series(root)
    assert series[["study_id", "series_id"]].values.tolist() == [[42, 420]]


def test_integer_volumes_keep_their_values_and_thick_slices_average(tmp_path):
    image = np.zeros((8, 6, 8), dtype=np.uint16)
    image[..., 4:] = 100  # the right half of the slices bright
    volume = SpineVolume(image, (1.0, 1.0, 1.0), 1, 10)
    root = write_volumes(tmp_path / "v", [volume], slice_spacing=2.0)
    folder = root / "train_images" / "1" / "10"
    values = sorted(float(pydicom.dcmread(p).pixel_array.mean()) for p in folder.glob("*.dcm"))
    assert values == [0.0, 0.0, 100.0, 100.0]
    assert pd.read_csv(root / "train_label_coordinates.csv").empty


def test_test_layout_puts_the_truth_beside(tmp_path):
    mask, labels = _spine_mask()
    points = levels_from_mask(mask, labels).assign(condition=CANAL)
    severity = {(CANAL, "L4/L5"): "severe"}
    volume = SpineVolume(mask.astype(np.float32), (1, 1, 1), 5, 50, points, severity=severity)
    # L5/S1, extrapolated below the last body, lies below the image's 120 rows
    with pytest.warns(spinecls.RSNADataWarning, match="outside the image's rows.*L5/S1"):
        root = write_volumes(tmp_path / "t", [volume], split="test", slice_spacing=4)
    assert sorted(p.name for p in root.iterdir()) == [
        ".spinecls-output.json",
        "sample_submission.csv",
        "test_images",
        "test_series_descriptions.csv",
    ]
    with pytest.warns(spinecls.RSNADataWarning, match="dropped 3 coordinate row"):
        truth = spinecls.load_rsna(tmp_path / "t_truth")  # blank severities
    assert truth[["level", "severity"]].values.tolist() == [["L4/L5", "severe"]]
    assert len(load_coordinates(tmp_path / "t_truth", split="train")) == 4
    # the truth in (or around) the layout is refused before anything is written
    for truth_dir in (tmp_path / "u", tmp_path / "u" / "truth", tmp_path):
        with pytest.raises(ValueError, match="overlap"):
            write_volumes(tmp_path / "u", [volume], split="test", truth_dir=truth_dir)
        assert not (tmp_path / "u").exists()


def test_bad_volumes_are_named_and_leave_nothing(tmp_path):
    good = SpineVolume(np.zeros((4, 4, 4)), (1, 1, 1), 1, 10)
    bad = [
        (dict(image=np.zeros((4, 4))), "3-D array"),
        (dict(image=np.full((4, 4, 4), np.nan)), "NaN"),
        (dict(spacing=(1, 0, 1)), "spacing"),
        (dict(direction=np.ones((3, 3))), "orthonormal"),
        (dict(series_description="Coronal"), "series_description"),
        (dict(study_id=-1), "study_id"),
    ]
    for change, message in bad:
        fields = {**good.__dict__, "study_id": 2, **change}
        with pytest.raises(ValueError, match=rf"volumes\[1\].*{message}"):
            write_volumes(tmp_path / "out", [good, fields])
        assert not (tmp_path / "out").exists()
    far = pd.DataFrame({"condition": [CANAL], "level": ["L1/L2"], "i": [1], "j": [1], "k": [9.0]})
    with pytest.raises(ValueError, match="L1/L2 point lies at slice index 9"):
        write_volumes(tmp_path / "out", [SpineVolume(np.zeros((4, 4, 4)), (1, 1, 1), 1, 10, far)])
    with pytest.raises(ValueError, match=r"\(1, 10\) given more than once"):
        write_volumes(tmp_path / "out", [good, good])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        write_volumes(tmp_path / "mine", [good])
    assert (tmp_path / "mine" / "keep.txt").read_text() == "x"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_points_beyond_the_rows_and_columns_are_dropped_with_a_warning(tmp_path):
    # an L5/S1 extrapolated below the field of view: no instance shows it
    points = pd.DataFrame(
        {
            "condition": [CANAL, CANAL, CANAL],
            "level": ["L3/L4", "L4/L5", "L5/S1"],
            "i": [2.0, 7.6, 7.0],
            "j": [3.0, 3.0, -0.6],
            "k": [1.0, 1.0, 1.0],
        }
    )
    volume = SpineVolume(np.zeros((8, 6, 4)), (1, 1, 1), 3, 30, points)
    with pytest.warns(
        spinecls.RSNADataWarning, match=r"volumes\[0\].*2 point.*8 x 6.*L4/L5.*L5/S1"
    ):
        root = write_volumes(tmp_path / "v", [volume])
    written = load_coordinates(root, split="train")
    assert written["level"].tolist() == ["L3/L4"]
    assert written[["x", "y"]].values.tolist() == [[3.0, 2.0]]
