"""DICOM geometry: pixel <-> patient millimetres, slice order, projection between series."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from spinecls.geometry import (
    GeometryWarning,
    SeriesGeometry,
    SliceGeometry,
    SliceStack,
    series_order,
)

DICOMDIR_TESTS = Path(get_testdata_file("MR_small.dcm")).parent / "dicomdirtests"


def _ds(values) -> list[str]:
    # DS strings hold at most 16 characters
    return [f"{float(v):.10g}" for v in values]


def write_header(path: Path, **attributes) -> Path:
    """Write a header-only MR DICOM file (geometry needs no pixel data)."""
    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = uid
    ds.Modality = "MR"
    for key, value in attributes.items():
        if key in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            value = _ds(value)
        setattr(ds, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_slice(path: Path, s: SliceGeometry, **extra) -> Path:
    return write_header(
        path,
        ImagePositionPatient=s.position,
        ImageOrientationPatient=s.row_cosine + s.column_cosine,
        PixelSpacing=s.pixel_spacing,
        Rows=s.rows,
        Columns=s.columns,
        InstanceNumber=s.instance_number,
        **extra,
    )


def rotation(axis, degrees) -> np.ndarray:
    """Rotation matrix about a unit axis (Rodrigues)."""
    k = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * K + (1 - np.cos(t)) * K @ K


def stack(centre, row, column, spacing, shape, n, gap, instances) -> list[SliceGeometry]:
    """``n`` parallel slices ``gap`` mm apart whose image centres line up on ``centre``."""
    row, column = np.asarray(row, float), np.asarray(column, float)
    normal = np.cross(row, column)
    rows, columns = shape
    half = (columns - 1) / 2 * spacing[1] * row + (rows - 1) / 2 * spacing[0] * column
    return [
        SliceGeometry(
            position=np.asarray(centre) + (k - (n - 1) / 2) * gap * normal - half,
            row_cosine=row,
            column_cosine=column,
            pixel_spacing=spacing,
            rows=rows,
            columns=columns,
            instance_number=instance,
            source=f"{instance}.dcm",
        )
        for k, instance in zip(range(n), instances)
    ]


# A sagittal series of a patient lying off-centre, rotated 3 degrees about the vertical
# axis and 5 degrees within the sagittal plane, with non-square pixels and instance numbers
# running against the position; an axial series tilted 13 degrees about the patient's x
# axis (as axials follow the disc) and rotated 4 degrees in its plane.
SAG_TURN = rotation((0, 0, 1), 3) @ rotation((1, 0, 0), 5)
SAGITTAL = stack(
    centre=(10, -30, 20),
    row=SAG_TURN @ (0, 1, 0),
    column=SAG_TURN @ (0, 0, -1),
    spacing=(0.6, 0.5),
    shape=(200, 180),
    n=15,
    gap=3.3,
    instances=range(20, 5, -1),
)
AX_TURN = rotation((1, 0, 0), 13) @ rotation((0, 0, 1), 4)
AXIAL = stack(
    centre=(12, -25, 15),
    row=AX_TURN @ (1, 0, 0),
    column=AX_TURN @ (0, 1, 0),
    spacing=(0.7, 0.65),
    shape=(160, 170),
    n=24,
    gap=4.0,
    instances=range(101, 125),
)


@pytest.fixture(scope="module")
def series_pair(tmp_path_factory):
    """The sagittal and axial series, written as headers and read back from their folders."""
    root = tmp_path_factory.mktemp("study")
    for name, slices in (("sag", SAGITTAL), ("ax", AXIAL)):
        for s in slices:
            write_slice(root / name / f"{s.instance_number}.dcm", s)
    return SeriesGeometry.from_directory(root / "sag"), SeriesGeometry.from_directory(root / "ax")


def test_series_read_from_files_are_ordered_along_the_normal(series_pair):
    sagittal, axial = series_pair
    assert len(sagittal.stacks) == len(axial.stacks) == 1
    assert sagittal.instance_numbers.tolist() == list(range(20, 5, -1))
    assert axial.instance_numbers.tolist() == list(range(101, 125))
    assert [Path(p).name for p in sagittal.sources] == [f"{i}.dcm" for i in range(20, 5, -1)]
    assert sagittal.stacks[0].spacing == pytest.approx(3.3)
    assert axial.stacks[0].spacing == pytest.approx(4.0)
    np.testing.assert_allclose(axial.stacks[0].normal, AXIAL[0].normal, atol=1e-9)
    low, high = axial.stacks[0].coverage
    assert high - low == pytest.approx(24 * 4.0)
    assert sagittal.slices[0].pixel_spacing == (0.6, 0.5)


def test_sagittal_axial_sagittal_round_trip_on_plane_intersections(series_pair):
    """Points where a sagittal and an axial plane cross map between both series exactly."""
    sagittal, axial = series_pair
    cases = [(2, 3, 40.0), (7, 11, 80.5), (12, 20, 120.25), (7, 0, 10.0)]
    points, expected = [], []
    for k, m, b in cases:
        sag, ax = SAGITTAL[k], AXIAL[m]
        u, v, origin = ax.affine[:3, 0], ax.affine[:3, 1], np.array(ax.position)
        # axial pixel (a, b) whose point also lies on the sagittal plane k
        a = ((np.array(sag.position) - origin - b * v) @ sag.normal) / (u @ sag.normal)
        points.append(origin + a * u + b * v)
        expected.append((sag.instance_number, ax.instance_number, a, b))
    instance_sag, instance_ax, a, b = (np.array(e) for e in zip(*expected))

    on_sagittal = sagittal.project(points)
    np.testing.assert_array_equal(on_sagittal.instance_number, instance_sag)
    np.testing.assert_allclose(on_sagittal.distance, 0, atol=1e-6)
    assert on_sagittal.in_image.all() and on_sagittal.in_coverage.all()

    from_sagittal = sagittal.pixel_to_patient(instance_sag, on_sagittal.x, on_sagittal.y)
    on_axial = axial.project(from_sagittal)
    np.testing.assert_array_equal(on_axial.instance_number, instance_ax)
    np.testing.assert_allclose(on_axial.distance, 0, atol=1e-6)
    np.testing.assert_allclose(on_axial.x, a, atol=1e-6)
    np.testing.assert_allclose(on_axial.y, b, atol=1e-6)

    back = sagittal.project(axial.pixel_to_patient(instance_ax, on_axial.x, on_axial.y))
    np.testing.assert_array_equal(back.instance_number, instance_sag)
    assert np.abs(back.x - on_sagittal.x).max() < 0.5
    assert np.abs(back.y - on_sagittal.y).max() < 0.5
    np.testing.assert_allclose(back.x, on_sagittal.x, atol=1e-6)
    np.testing.assert_allclose(back.y, on_sagittal.y, atol=1e-6)


def test_sagittal_points_land_on_the_nearest_axial_slice(series_pair):
    """Labelled sagittal points (anywhere on a slice) go to the nearest axial plane."""
    sagittal, axial = series_pair
    rng = np.random.default_rng(0)
    instance = rng.choice(sagittal.instance_numbers, size=40)
    x, y = rng.uniform(30, 150, 40), rng.uniform(40, 160, 40)
    points = sagittal.pixel_to_patient(instance, x, y)

    hit = axial.project(points)
    planes = np.array([(p - np.array(s.position)) @ s.normal for p in points for s in AXIAL])
    planes = planes.reshape(40, len(AXIAL))
    nearest = np.abs(planes).argmin(axis=1)
    assert (np.abs(planes[np.arange(40), nearest]) <= 2.0 + 1e-9).all()  # within half a gap
    inside = hit.in_coverage
    assert inside.sum() >= 30
    np.testing.assert_array_equal(hit.instance_number, np.arange(101, 125)[nearest])
    np.testing.assert_allclose(hit.distance, planes[np.arange(40), nearest], atol=1e-9)

    # the in-plane point plus the signed distance along the axial normal is the point
    normal = AXIAL[0].normal
    rebuilt = axial.pixel_to_patient(hit.instance_number, hit.x, hit.y)
    rebuilt += hit.distance[:, None] * normal
    np.testing.assert_allclose(rebuilt, points, atol=1e-6)
    back = sagittal.project(rebuilt)
    np.testing.assert_array_equal(back.instance_number, instance)
    np.testing.assert_allclose(back.x, x, atol=1e-6)
    np.testing.assert_allclose(back.y, y, atol=1e-6)


def test_pixel_steps_follow_the_cosines_and_dicom_spacing_order():
    """A step in x moves PixelSpacing[1] along the row cosine, a step in y PixelSpacing[0]."""
    turn = rotation((1, 2, 3), 37)  # a double-oblique plane, rotated in plane too
    s = SliceGeometry((5, -7, 11), turn @ (1, 0, 0), turn @ (0, 1, 0), (0.5, 0.8), 64, 48)
    origin = s.pixel_to_patient(0, 0)
    np.testing.assert_allclose(origin, (5, -7, 11))
    np.testing.assert_allclose(s.pixel_to_patient(1, 0) - origin, 0.8 * turn @ (1, 0, 0))
    np.testing.assert_allclose(s.pixel_to_patient(0, 1) - origin, 0.5 * turn @ (0, 1, 0))
    np.testing.assert_allclose(s.normal, turn @ (0, 0, 1), atol=1e-12)
    assert np.linalg.det(np.column_stack([s.row_cosine, s.column_cosine, s.normal])) > 0
    np.testing.assert_allclose(s.affine[:3, :3], turn @ np.diag([0.8, 0.5, 1.0]), atol=1e-12)
    grid = s.pixel_to_patient(*np.meshgrid(np.arange(3.0), np.arange(2.0)))
    assert grid.shape == (2, 3, 3)
    assert s.in_image([0, 47, 47.5, -0.1], [63, 0, 0, 0]).tolist() == [True, True, False, False]


def test_non_square_pixels_read_from_a_header_are_not_swapped(tmp_path):
    path = write_header(
        tmp_path / "1.dcm",
        ImagePositionPatient=[0, 0, 0],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        PixelSpacing=[0.5, 0.8],  # 0.5 mm between rows, 0.8 mm between columns
        Rows=40,
        Columns=30,
        InstanceNumber=1,
    )
    s = SliceGeometry.from_file(path)
    assert s.pixel_spacing == (0.5, 0.8)
    np.testing.assert_allclose(s.pixel_to_patient(10, 0), (8.0, 0, 0))
    np.testing.assert_allclose(s.pixel_to_patient(0, 10), (0, 5.0, 0))
    x, y, d = s.patient_to_pixel([[8.0, 5.0, 2.0], [0.4, 0.25, -1.0]])
    np.testing.assert_allclose(np.stack([x, y, d], axis=1), [[10, 10, 2], [0.5, 0.5, -1]])


@settings(max_examples=100, deadline=None)
@given(
    angles=st.tuples(*[st.floats(-180, 180)] * 3),
    spacing=st.tuples(st.floats(0.1, 5), st.floats(0.1, 5)),
    position=st.tuples(*[st.floats(-500, 500)] * 3),
    x=st.floats(-100, 600),
    y=st.floats(-100, 600),
    d=st.floats(-50, 50),
)
def test_pixel_patient_pixel_round_trip(angles, spacing, position, x, y, d):
    turn = rotation((0, 0, 1), angles[0]) @ rotation((0, 1, 0), angles[1])
    turn = turn @ rotation((1, 0, 0), angles[2])
    s = SliceGeometry(position, turn[:, 0], turn[:, 1], spacing, 512, 512)
    point = s.pixel_to_patient(x, y) + d * s.normal
    back = s.patient_to_pixel(point)
    np.testing.assert_allclose([float(v) for v in back], [x, y, d], atol=1e-7)


def test_mr_small_against_hand_computed_values():
    s = SliceGeometry.from_file(get_testdata_file("MR_small.dcm"))
    assert s.position == (-83.9063, -91.2, 6.6406)
    assert (s.row_cosine, s.column_cosine) == ((1, 0, 0), (0, 1, 0))
    assert s.pixel_spacing == (0.3125, 0.3125)
    assert (s.rows, s.columns, s.instance_number, s.slice_thickness) == (64, 64, 1, 0.8)
    assert s.normal.tolist() == [0, 0, 1]
    assert s.location == pytest.approx(6.6406)
    # (-83.9063 + 10 * 0.3125, -91.2 + 20 * 0.3125, 6.6406)
    np.testing.assert_allclose(s.pixel_to_patient(10, 20), (-80.7813, -84.95, 6.6406))
    series = SeriesGeometry([s])
    assert series.stacks[0].coverage == pytest.approx((6.2406, 7.0406))  # +- half thickness


def test_tilted_ct_against_hand_computed_values():
    # gantry tilt: column cosine (0, 0.9272, -0.3746), 0.431 mm pixels
    s = SliceGeometry.from_file(get_testdata_file("J2K_pixelrep_mismatch.dcm"))
    np.testing.assert_allclose(s.normal, (0, 0.3746, 0.9272), atol=1e-4)
    # -98.1898 * 0.3746 + 72.1446 * 0.9272
    assert s.location == pytest.approx(30.1107, abs=1e-3)
    # (-110.2153 + 100 * 0.431, -98.1898 + 200 * 0.431 * 0.9272, 72.1446 - 200 * 0.431 * 0.3746)
    np.testing.assert_allclose(
        s.pixel_to_patient(100, 200), (-67.1153, -18.26516, 39.85408), atol=1e-3
    )


def test_real_non_square_pixels_follow_dicom_order():
    # a sagittal CT reformat with 0.545455 mm between rows and 0.596847 mm between columns
    s = SliceGeometry.from_file(DICOMDIR_TESTS / "98892001/CT2N/6293")
    assert s.pixel_spacing == (0.545455, 0.596847)
    # rows run along -y, columns along -z: (0, 265 - 10 * 0.596847, 50 - 4 * 0.545455)
    np.testing.assert_allclose(s.pixel_to_patient(10, 4), (0, 259.03153, 47.81818), atol=1e-5)


def test_real_axial_series_is_ordered_against_its_instance_numbers():
    series = SeriesGeometry.from_directory(DICOMDIR_TESTS / "98892001/CT5N", pattern="*")
    # z falls from 8.7625 to -1.2375 as InstanceNumber rises from 6 to 10
    assert series.instance_numbers.tolist() == [10, 9, 8, 7, 6]
    only = series.stacks[0]
    np.testing.assert_allclose(only.locations, [-1.2375, 1.2625, 3.7625, 6.2625, 8.7625])
    assert only.spacing == pytest.approx(2.5)
    assert only.coverage == pytest.approx((-2.4875, 10.0125))


def test_coverage_spans_a_gap_and_the_distance_shows_it():
    # 4 CT slices at z = -99.48, then 103.02, 104.27, 105.52 (median spacing 1.25 mm)
    series = SeriesGeometry.from_directory(DICOMDIR_TESTS / "77654033/CT2", pattern="*")
    assert series.instance_numbers.tolist() == [18, 180, 181, 182]
    assert series.stacks[0].spacing == pytest.approx(1.25)
    hit = series.project([[-125, -128.1, 0.0], [-125, -128.1, 106.0], [-125, -128.1, 106.2]])
    assert hit.in_coverage.tolist() == [True, True, False]
    assert hit.instance_number.tolist() == [18, 182, 182]
    np.testing.assert_allclose(hit.distance, [99.48, 0.48, 0.68], atol=1e-4)
    np.testing.assert_allclose(hit.x, 0, atol=1e-9)
    np.testing.assert_allclose(hit.y, 0, atol=1e-4)  # -128.1 vs -128.100006


def test_three_plane_localizers_are_grouped_by_orientation():
    folder = DICOMDIR_TESTS / "98892003/MR2"
    files = [folder / f for f in ("6935", "6605", "6273", "5011", "4981", "4950")]
    series = SeriesGeometry.from_files(files)
    assert len(series.stacks) == 3
    normals = [s.normal.round(6).tolist() for s in series.stacks]
    assert normals == [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]  # coronal, sagittal, axial
    names = [[Path(p.source).name for p in s.slices] for s in series.stacks]
    # coronal y = 2.08926 then 5.21426; sagittal tie at x = -0.696426 broken by file;
    # axial z = 11.875 then 18.75
    assert names == [["4950", "6935"], ["5011", "6605"], ["6273", "4981"]]
    assert series.instance_numbers.tolist() == [1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="InstanceNumber 1 is on several slices"):
        series.index_of(1)
    with pytest.raises(ValueError, match="no slice with InstanceNumber 7"):
        series.index_of([1, 7])


def test_radial_series_of_real_oblique_slices_reads_as_one_stack_per_angle():
    series = SeriesGeometry.from_directory(DICOMDIR_TESTS / "98892003/MR700", pattern="*")
    assert len(series) == 7 and len(series.stacks) == 7
    for s in series.slices:
        np.testing.assert_allclose(s.normal @ s.row_cosine, 0, atol=1e-12)
        np.testing.assert_allclose(s.normal @ s.column_cosine, 0, atol=1e-12)
    assert series.instance_numbers.tolist() == [1, 2, 3, 4, 5, 6, 7]


def test_two_orientations_in_one_series_form_two_ordered_stacks():
    """A flat block 2 mm apart and a block tilted 20 degrees 10 mm apart, given shuffled."""
    flat = stack((0, 0, 4), (1, 0, 0), (0, 1, 0), (1, 1), (64, 64), 5, 2.0, range(1, 6))
    tilt = rotation((1, 0, 0), 20)
    n_tilted = tilt @ (0, 0, 1)
    point = np.array([0.0, 0.0, 9.5])  # 1.5 mm past the flat block's last slice (z = 8)
    centre = point - 0.5 * n_tilted  # slices at -15, -5, +5, +15 mm from the centre
    tilted = stack(centre, tilt[:, 0], tilt[:, 1], (1, 1), (64, 64), 4, 10.0, range(6, 10))
    rng = np.random.default_rng(1)
    series = SeriesGeometry(rng.permutation(np.array(flat + tilted, dtype=object)))
    assert [len(s) for s in series.stacks] == [5, 4]
    assert series.instance_numbers.tolist() == list(range(1, 10))
    assert [s.spacing for s in series.stacks] == pytest.approx([2.0, 10.0])
    assert series.stacks[0].coverage == pytest.approx((-1.0, 9.0))

    hit = series.project([point, [0, 0, 4.1], point + 30 * n_tilted])
    # the flat block's nearest plane is 1.5 mm away but it does not cover the point;
    # the tilted block covers it, 4.5 mm from its slice at +5 mm
    assert hit.stack.tolist() == [1, 0, 1]
    assert hit.instance_number.tolist() == [8, 3, 9]
    assert hit.index.tolist() == [7, 2, 8]
    np.testing.assert_allclose(hit.distance, [-4.5, 0.1, 15.5], atol=1e-9)
    assert hit.in_coverage.tolist() == [True, True, False]
    assert series.slices[7].instance_number == 8


def test_points_off_the_image_are_flagged_but_still_projected():
    slices = stack((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1), (11, 21), 3, 5, [1, 2, 3])
    series = SeriesGeometry(slices)
    hit = series.project(np.array([[[0, 0, 0], [15, 0, 5], [0, -5.5, -7]]]))
    assert hit.x.shape == (1, 3)
    np.testing.assert_allclose(hit.x, [[10, 25, 10]])
    np.testing.assert_allclose(hit.y, [[5, 5, -0.5]])
    assert hit.in_image.tolist() == [[True, False, False]]
    assert hit.in_coverage.tolist() == [[True, True, True]]
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        series.project([1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        series.project([1.0, np.nan, 2.0])


def _fallback_folder(folder: Path, drop: dict[int, tuple[str, ...]]) -> Path:
    slices = stack((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1), (8, 8), 4, 3, [3, 1, 4, 2])
    for s in slices:
        path = write_slice(folder / f"{s.instance_number}.dcm", s)
        if s.instance_number in drop:
            ds = pydicom.dcmread(path)
            for tag in drop[s.instance_number]:
                delattr(ds, tag)
            ds.save_as(path)
    return folder


def test_missing_positions_fall_back_to_instance_numbers_with_one_warning(tmp_path):
    folder = _fallback_folder(tmp_path / "series", {1: ("ImagePositionPatient",), 4: ()})
    with pytest.warns(GeometryWarning) as record:
        series = SeriesGeometry.from_directory(folder)
    assert len(record) == 1
    message = str(record[0].message)
    assert str(folder) in message
    assert "no ImagePositionPatient in 1 of 4 files (1.dcm)" in message
    assert "ordered by InstanceNumber" in message
    assert not series.has_geometry and series.stacks == () and series.slices == ()
    assert series.instance_numbers.tolist() == [1, 2, 3, 4]  # not the position order 3, 1, 4, 2
    assert [Path(p).name for p in series.sources] == ["1.dcm", "2.dcm", "3.dcm", "4.dcm"]
    # series_order gives the same order and returns the warning's message instead
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sources, message = series_order(sorted(folder.glob("*.dcm"), reverse=True))
    assert sources == series.sources and message == str(record[0].message)
    assert series.geometry_warning == message  # for callers that read a series elsewhere
    with pytest.raises(ValueError, match="has no patient geometry"):
        series.project([0, 0, 0])
    with pytest.raises(ValueError, match="has no patient geometry"):
        series.pixel_to_patient(1, 0, 0)


def test_complete_series_reads_without_warning_and_in_position_order(tmp_path):
    folder = _fallback_folder(tmp_path / "series", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        series = SeriesGeometry.from_directory(folder)
    assert series.has_geometry
    assert series.instance_numbers.tolist() == [3, 1, 4, 2]
    assert series_order(folder.glob("*.dcm")) == (series.sources, None)
    assert series.geometry_warning is None
    assert series.index_of([2, 3]).tolist() == [3, 0]
    assert series.index_of(4) == 2


def test_fallback_names_every_missing_tag_and_needs_instance_numbers(tmp_path):
    folder = _fallback_folder(
        tmp_path / "a", {2: ("ImageOrientationPatient", "PixelSpacing"), 3: ("PixelSpacing",)}
    )
    with pytest.warns(GeometryWarning, match="no PixelSpacing in 2 of 4 files"):
        SeriesGeometry.from_directory(folder)
    folder = _fallback_folder(tmp_path / "b", {2: ("ImagePositionPatient", "InstanceNumber")})
    with pytest.raises(ValueError, match=r"2\.dcm: no InstanceNumber"):
        SeriesGeometry.from_directory(folder)


GOOD = {
    "ImagePositionPatient": [1, 2, 3],
    "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
    "PixelSpacing": [0.5, 0.5],
    "Rows": 8,
    "Columns": 8,
    "InstanceNumber": 1,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ImageOrientationPatient": [1, 0, 0, 1, 0, 0]}, "ImageOrientationPatient .* is not two"),
        ({"ImageOrientationPatient": [0, 0, 0, 0, 0, 0]}, "ImageOrientation.*row length 0,"),
        ({"ImageOrientationPatient": [1, 0, 0, 0, 1]}, "ImageOrientationPatient must hold 6"),
        ({"PixelSpacing": [0, 0.5]}, r"PixelSpacing \(row spacing, column spacing\) must be pos"),
        ({"PixelSpacing": [0.5]}, "PixelSpacing must hold 2"),
        ({"ImagePositionPatient": [1, 2]}, "ImagePositionPatient must hold 3"),
        ({"PixelSpacing": None}, "no PixelSpacing in the header"),
        ({"Rows": None, "ImagePositionPatient": None}, "no ImagePositionPatient, Rows in the"),
        ({"NumberOfFrames": 3}, r"a multi-frame image \(3 frames\)"),
    ],
)
def test_bad_headers_raise_naming_the_file_and_the_tag(tmp_path, change, message):
    attributes = {k: v for k, v in (GOOD | change).items() if v is not None}
    path = write_header(tmp_path / "bad.dcm", **attributes)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + message):
        SliceGeometry.from_file(path)


def test_a_bad_slice_in_a_series_names_its_file(tmp_path):
    write_header(tmp_path / "1.dcm", **GOOD)
    write_header(tmp_path / "2.dcm", **GOOD | {"PixelSpacing": [0.5, 0.0], "InstanceNumber": 2})
    with pytest.raises(ValueError, match=r"2\.dcm: PixelSpacing"):
        SeriesGeometry.from_directory(tmp_path)


def test_unreadable_inputs_raise_clear_errors(tmp_path):
    (tmp_path / "notes.dcm").write_text("not dicom")
    with pytest.raises(ValueError, match=r"notes\.dcm: not a readable DICOM file"):
        SliceGeometry.from_file(tmp_path / "notes.dcm")
    with pytest.raises(FileNotFoundError, match="missing.dcm"):
        SliceGeometry.from_file(tmp_path / "missing.dcm")
    deflated = Path(get_testdata_file("image_dfl.dcm")).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(deflated[: len(deflated) // 2])
    with pytest.raises(ValueError, match=r"cut\.dcm: not a readable DICOM file \(Error -5"):
        SliceGeometry.from_file(tmp_path / "cut.dcm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no files matching '\*\.dcm'"):
        SeriesGeometry.from_directory(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="series folder not found"):
        SeriesGeometry.from_directory(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no slices"):
        SeriesGeometry([])
    with pytest.raises(ValueError, match="has no InstanceNumber"):
        SeriesGeometry([SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1), 4, 4)])


def test_slices_of_two_orientations_are_not_one_stack():
    axial = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1), 4, 4, source="a.dcm")
    sagittal = SliceGeometry((0, 0, 0), (0, 1, 0), (0, 0, -1), (1, 1), 4, 4, source="s.dcm")
    with pytest.raises(ValueError, match=r"s\.dcm: its normal differs from a\.dcm's by 90\.00"):
        SliceStack([axial, sagittal])
    assert len(SliceStack([axial, sagittal], angle_tolerance=91)) == 2
    with pytest.raises(ValueError, match=r"angle_tolerance must be .* got -1"):
        SeriesGeometry([axial], angle_tolerance=-1)


def test_slice_geometry_is_frozen_and_compares_by_value():
    a = SliceGeometry([0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 2], 4, 4, source="a")
    b = SliceGeometry((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 2.0), 4, 4)
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.rows = 5
    with pytest.raises(ValueError, match="read-only"):
        a.normal[0] = 1.0


def test_skip_unreadable_leaves_out_bad_files_and_says_why(tmp_path):
    folder = _fallback_folder(tmp_path / "series", {})
    (folder / "9.dcm").write_text("not dicom")
    ds = pydicom.dcmread(folder / "2.dcm")
    ds.PixelSpacing = [0, 0]
    ds.save_as(folder / "2.dcm")
    with pytest.raises(ValueError, match=r"9\.dcm: not a readable DICOM file"):
        SeriesGeometry.from_directory(folder)
    series = SeriesGeometry.from_directory(folder, skip_unreadable=True)
    assert series.has_geometry and series.instance_numbers.tolist() == [3, 1, 4]
    assert [(Path(p).name, type(e)) for p, e in series.skipped] == [
        ("2.dcm", ValueError),
        ("9.dcm", ValueError),
    ]
    assert "PixelSpacing" in str(series.skipped[0][1])
    assert "not a readable DICOM file" in str(series.skipped[1][1])
    # a series ordered by InstanceNumber skips a file without one
    folder = _fallback_folder(tmp_path / "b", {2: ("ImagePositionPatient", "InstanceNumber")})
    with pytest.warns(GeometryWarning):
        series = SeriesGeometry.from_directory(folder, skip_unreadable=True)
    assert series.instance_numbers.tolist() == [1, 3, 4]
    assert [Path(p).name for p, _ in series.skipped] == ["2.dcm"]
    assert SeriesGeometry.from_directory(_fallback_folder(tmp_path / "c", {})).skipped == ()
    for path in folder.glob("*.dcm"):
        path.write_bytes(b"")
    with pytest.raises(ValueError, match="none of its 4 files is readable DICOM"):
        SeriesGeometry.from_directory(folder, skip_unreadable=True)
