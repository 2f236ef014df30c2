"""LumbarPatchTransformer: geometry, normalisation, 2.5D, marker, caching, errors, and
scikit-learn's estimator checks rewritten for a transformer of DataFrame rows."""

from __future__ import annotations

import os
import pickle
import warnings

import cv2
import joblib
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

import spinecls
import spinecls.dicom
from spinecls.dicom import read_slice
from spinecls.geometry import GeometryWarning
from spinecls.preprocessing import LumbarPatchTransformer, PatchExtractionWarning

from .helpers import write_dicom

STUDY, SERIES = 4003253, 702807833


def _ramp(rows=40, cols=50, scale=1):
    """Pixels that encode their own position: value = 100 * row + col (+ offset)."""
    r, c = np.mgrid[:rows, :cols]
    return (100 * r + c) * scale


@pytest.fixture
def series(tmp_path):
    """Five axial slices with instance numbers running against position, from 1001."""
    root = tmp_path / "rsna"
    folder = root / "train_images" / str(STUDY) / str(SERIES)
    positions = [40.0, 30.0, 20.0, 10.0, 0.0]  # instance 1001 is the top slice
    for k, z in enumerate(positions):
        write_dicom(
            folder / f"{1001 + k}.dcm",
            _ramp() + 10000 * (4 - k),  # lower slices have smaller values
            InstanceNumber=1001 + k,
            ImagePositionPatient=[0, 0, z],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        )
    pd.DataFrame(
        [(STUDY, SERIES, "Axial T2")], columns=["study_id", "series_id", "series_description"]
    ).to_csv(root / "train_series_descriptions.csv", index=False)
    return root


def _rows(*coords, instance=1003):
    return pd.DataFrame(
        [(STUDY, SERIES, instance, x, y) for x, y in coords],
        columns=["study_id", "series_id", "instance_number", "x", "y"],
    )


def _raw(root, instance=1003):
    path = root / "train_images" / str(STUDY) / str(SERIES) / f"{instance}.dcm"
    return read_slice(path).image(None)


def test_integer_coordinates_crop_exact_pixels_x_is_column(series):
    t = LumbarPatchTransformer(data_dir=series, patch_size=(6, 8), normalize=None).fit(_rows())
    patch = t.transform(_rows((20, 10)))[0, 0]
    raw = _raw(series)
    assert patch.shape == (6, 8)
    np.testing.assert_array_equal(patch, raw[10 - 3 : 10 + 3, 20 - 4 : 20 + 4])
    assert patch[3, 4] == raw[10, 20] == 10000 * 2 + 100 * 10 + 20


def test_subpixel_centres_interpolate(series):
    t = LumbarPatchTransformer(data_dir=series, patch_size=4, normalize=None).fit(_rows())
    a, b = t.transform(_rows((20.5, 10), (20, 10.25)))[:, 0]
    raw = _raw(series)
    np.testing.assert_allclose(a, (raw[8:12, 18:22] + raw[8:12, 19:23]) / 2, rtol=1e-6)
    np.testing.assert_allclose(b, raw[8:12, 18:22] * 0.75 + raw[9:13, 18:22] * 0.25, rtol=1e-6)


def test_borders_are_zero_padded_never_shifted(series):
    t = LumbarPatchTransformer(data_dir=series, patch_size=10, normalize=None).fit(_rows())
    corner, far = t.transform(_rows((0, 0), (49, 39)))[:, 0]
    raw = _raw(series)
    np.testing.assert_array_equal(corner[:5], 0)
    np.testing.assert_array_equal(corner[:, :5], 0)
    np.testing.assert_array_equal(corner[5:, 5:], raw[:5, :5])
    np.testing.assert_array_equal(far[5:6, 5:6], raw[39:40, 49:50])
    np.testing.assert_array_equal(far[6:], 0)


def test_output_size_resizes_images_of_any_resolution(series, tmp_path):
    t = LumbarPatchTransformer(data_dir=series, patch_size=20, output_size=(8, 12)).fit(_rows())
    out = t.transform(_rows((25, 20), (3, 3)))
    assert out.shape == (2, 1, 8, 12) and out.dtype == np.float32
    big = LumbarPatchTransformer(data_dir=series, patch_size=10, output_size=5, normalize=None)
    # area averaging when shrinking by 2: each output pixel is the mean of 2x2 input pixels
    patch = big.fit_transform(_rows((20, 10)))[0, 0]
    raw = _raw(series)[5:15, 15:25]
    np.testing.assert_allclose(patch, raw.reshape(5, 2, 5, 2).mean(axis=(1, 3)), rtol=1e-6)


def test_percentile_normalisation_and_blur(series):
    rows = _rows((20, 20))
    raw = _raw(series)
    lo, hi = np.percentile(raw, [1, 99])
    plain = LumbarPatchTransformer(data_dir=series, patch_size=12).fit_transform(rows)[0, 0]
    np.testing.assert_allclose(
        plain, np.clip((raw[14:26, 14:26] - lo) / (hi - lo), 0, 1), atol=1e-6
    )
    blurred = LumbarPatchTransformer(data_dir=series, patch_size=12, blur=1.5).fit_transform(rows)
    full = cv2.GaussianBlur(np.clip((raw - lo) / (hi - lo), 0, 1).astype(np.float32), (0, 0), 1.5)
    np.testing.assert_allclose(blurred[0, 0], full[14:26, 14:26], atol=1e-5)
    corner = LumbarPatchTransformer(data_dir=series, patch_size=12, blur=1.5).fit_transform(
        _rows((0, 0))
    )
    np.testing.assert_allclose(corner[0, 0, 6:, 6:], full[:6, :6], atol=1e-5)


def test_2_5d_channels_follow_slice_position_with_edge_replication(series):
    t = LumbarPatchTransformer(data_dir=series, patch_size=2, slices=3, normalize=None)
    # instance 1001 is the top slice (z=40), 1005 the bottom (z=0): positions, not numbers
    middle, top, bottom = t.fit_transform(
        pd.concat([_rows((5, 5)), _rows((5, 5), instance=1001), _rows((5, 5), instance=1005)])
    )
    centre = [plane[1, 1] for plane in middle]
    assert centre == [10000 * 1 + 505, 10000 * 2 + 505, 10000 * 3 + 505]
    assert [plane[1, 1] for plane in top] == [10000 * 3 + 505, 10000 * 4 + 505, 10000 * 4 + 505]
    assert [plane[1, 1] for plane in bottom] == [505, 505, 10000 + 505]


def test_marker_mode_adds_a_spot_at_the_coordinate(series):
    t = LumbarPatchTransformer(data_dir=series, mode="marker", output_size=(20, 25), normalize=None)
    image, marker = t.fit_transform(_rows((30, 12)))[0]
    raw = _raw(series)
    np.testing.assert_allclose(image, raw.reshape(20, 2, 25, 2).mean(axis=(1, 3)), rtol=1e-6)
    assert np.unravel_index(marker.argmax(), marker.shape) == (6, 15)
    assert marker.max() == pytest.approx(np.exp(-0.5 * (0.25**2 + 0.25**2) / 1.0), rel=1e-5)
    t3 = LumbarPatchTransformer(data_dir=series, mode="marker", output_size=16, slices=3)
    assert t3.fit_transform(_rows((30, 12))).shape == (1, 4, 16, 16)


def test_metadata_merge_resolves_paths_and_descriptions(series):
    rows = _rows((1, 2))
    t = LumbarPatchTransformer(data_dir=series)
    merged = t.fit(rows).merge_metadata(rows)
    assert merged.loc[0, "image_path"] == str(
        (series / "train_images" / str(STUDY) / str(SERIES) / "1003.dcm").resolve()
    )
    assert merged.loc[0, "series_description"] == "Axial T2"
    assert "image_path" not in rows.columns  # X itself is left alone
    # studies under test_images/ resolve there
    (series / "train_images").rename(series / "test_images")
    merged = t.merge_metadata(rows)
    assert "/test_images/" in merged.loc[0, "image_path"]
    assert t.transform(rows).shape == (1, 1, 64, 64)
    # a row's own image_path and description are kept
    own = rows.assign(image_path="/elsewhere/1.dcm", series_description="Sagittal T1")
    np.testing.assert_array_equal(t.merge_metadata(own).to_numpy(), own.to_numpy())


def test_transform_resolves_paths_without_reading_series_descriptions(series):
    # transform needs only the DICOM paths: a broken descriptions CSV is no concern
    # of its, while merge_metadata, which merges the descriptions, reports it
    (series / "train_series_descriptions.csv").write_text("study_id,series_id\nabc,1\n")
    t = LumbarPatchTransformer(data_dir=series, patch_size=4, normalize=None)
    patch = t.transform(_rows((20, 10)))[0, 0]
    np.testing.assert_array_equal(patch, _raw(series)[8:12, 18:22])
    with pytest.raises(ValueError, match="series_descriptions.csv"):
        t.merge_metadata(_rows((20, 10)))


def test_n_jobs_and_memory_give_identical_patches_and_skip_decoding(
    rsna_frame, tmp_path, monkeypatch
):
    reference = LumbarPatchTransformer(patch_size=24, slices=3).fit_transform(rsna_frame)
    monkeypatch.setattr(
        spinecls.preprocessing._extract, "PARALLEL_MIN_FILES", 0
    )  # to loky, small as it is
    parallel = LumbarPatchTransformer(patch_size=24, slices=3, n_jobs=2)
    np.testing.assert_array_equal(parallel.fit_transform(rsna_frame), reference)

    calls = {"n": 0}
    original = spinecls.dicom.read_slice

    def counting(path):
        calls["n"] += 1
        return original(path)

    monkeypatch.setattr(spinecls.dicom, "read_slice", counting)
    cached = LumbarPatchTransformer(patch_size=24, slices=3, memory=tmp_path / "cache")
    first = cached.fit_transform(rsna_frame)
    decoded = calls["n"]
    assert decoded > 0
    second = clone(cached).fit_transform(rsna_frame)
    assert calls["n"] == decoded  # nothing decoded again
    np.testing.assert_array_equal(first, reference)
    np.testing.assert_array_equal(second, reference)
    # a fold of whole studies (as GroupKFold makes) reuses the decoded slices
    fold = rsna_frame[rsna_frame.study_id.isin(rsna_frame.study_id.unique()[:2])]
    np.testing.assert_array_equal(cached.transform(fold), reference[fold.index.to_numpy()])
    assert calls["n"] == decoded
    # a changed file is decoded again
    path = fold["image_path"].iloc[0]
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    cached.transform(fold)
    assert calls["n"] > decoded


def test_memory_takes_a_joblib_memory_as_it_is_and_location_none_caches_nothing(
    series, tmp_path, monkeypatch
):
    rows = _rows((20, 10), (5, 5))
    reference = LumbarPatchTransformer(data_dir=series, patch_size=6).transform(rows)
    seen = []
    original = spinecls.dicom.read_slice
    monkeypatch.setattr(spinecls.dicom, "read_slice", lambda p: seen.append(p) or original(p))
    for memory in (joblib.Memory(tmp_path / "cache", verbose=0), joblib.Memory(None)):
        t = LumbarPatchTransformer(data_dir=series, patch_size=6, memory=memory)
        for _ in range(2):
            np.testing.assert_array_equal(t.transform(rows), reference)
    # one decode by the cached call, two by the calls that cache nothing
    assert len(seen) == 3
    assert any((tmp_path / "cache").rglob("output.pkl"))


def test_each_file_is_decoded_once_per_call(rsna_frame, monkeypatch):
    seen = []
    original = spinecls.dicom.read_slice
    monkeypatch.setattr(spinecls.dicom, "read_slice", lambda p: seen.append(p) or original(p))
    LumbarPatchTransformer(patch_size=16).fit_transform(rsna_frame)
    assert len(seen) == len(set(seen)) == rsna_frame["image_path"].nunique()


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
    ],
)
def test_bundled_real_mr_files_give_the_same_patches(name):
    rows = pd.DataFrame(
        {
            "study_id": [1, 1],
            "series_id": [2, 2],
            "instance_number": [3, 3],
            "x": [32.0, 3.5],
            "y": [20.0, 60.0],
            "image_path": [get_testdata_file(name)] * 2,
        }
    )
    reference = rows.assign(image_path=get_testdata_file("MR_small.dcm"))
    t = LumbarPatchTransformer(patch_size=16, blur=0.8)
    out = t.fit_transform(rows)
    np.testing.assert_array_equal(out, t.transform(reference))
    assert 0 < out[0].mean() < 1 and out[1, 0, :, :4].max() == 0  # x = 3.5: zero padded


def test_monochrome1_and_rescale_through_the_transformer(tmp_path):
    pixels = _ramp(20, 20)
    paths = [
        write_dicom(tmp_path / "a.dcm", pixels),
        write_dicom(tmp_path / "b.dcm", pixels, PhotometricInterpretation="MONOCHROME1"),
        write_dicom(tmp_path / "c.dcm", pixels // 2, RescaleSlope=2, RescaleIntercept=-7),
    ]
    rows = pd.DataFrame(
        {"study_id": 1, "series_id": 1, "instance_number": [1, 2, 3], "x": 10.0, "y": 10.0}
    ).assign(image_path=[str(p) for p in paths])
    a, b, c = LumbarPatchTransformer(patch_size=8).fit_transform(rows)[:, 0]
    np.testing.assert_allclose(b, 1 - a, atol=1e-6)
    raw = LumbarPatchTransformer(patch_size=8, normalize=None).fit_transform(rows)[:, 0]
    np.testing.assert_array_equal(raw[2], (pixels // 2 * 2 - 7)[6:14, 6:14])


def test_missing_file_names_path_study_series_and_instance(series):
    t = LumbarPatchTransformer(data_dir=series, patch_size=4).fit(_rows())
    with pytest.raises(FileNotFoundError) as info:
        t.transform(_rows((1, 1), instance=9999))
    message = str(info.value)
    assert "9999.dcm" in message and f"study {STUDY}" in message
    assert f"series {SERIES}" in message and "instance 9999" in message
    t3 = LumbarPatchTransformer(data_dir=series, patch_size=4, slices=3).fit(_rows())
    with pytest.raises(FileNotFoundError, match="instance 9999"):
        t3.transform(_rows((1, 1), instance=9999))


def test_unreadable_file_raises_naming_the_path(series):
    bad = series / "train_images" / str(STUDY) / str(SERIES) / "1002.dcm"
    bad.write_bytes(bad.read_bytes()[:400])
    t = LumbarPatchTransformer(data_dir=series, patch_size=4).fit(_rows())
    with pytest.raises(ValueError, match="1002.dcm"):
        t.transform(_rows((1, 1), instance=1002))


def test_on_error_warn_keeps_every_good_row(series):
    bad = series / "train_images" / str(STUDY) / str(SERIES) / "1002.dcm"
    bad.write_bytes(b"garbage")
    rows = pd.concat(
        [_rows((5, 5)), _rows((5, 5), instance=1002), _rows((6, 6), instance=4242), _rows((7, 7))]
    ).reset_index(drop=True)
    t = LumbarPatchTransformer(data_dir=series, patch_size=4, on_error="warn")
    with pytest.warns(PatchExtractionWarning) as record:
        out = t.fit_transform(rows)
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith("2 of 4 row(s) could not be read")
    assert "row 1: ValueError" in message and "1002.dcm" in message
    assert "row 2: FileNotFoundError" in message and "4242.dcm" in message
    np.testing.assert_array_equal(out[[1, 2]], 0)
    good = LumbarPatchTransformer(data_dir=series, patch_size=4).fit_transform(rows.iloc[[0, 3]])
    np.testing.assert_array_equal(out[[0, 3]], good)


def test_failure_warning_names_twenty_rows_and_counts_the_rest(series):
    rows = _rows(*[(1, 1)] * 23, instance=4242)
    with pytest.warns(PatchExtractionWarning) as record:
        out = LumbarPatchTransformer(data_dir=series, patch_size=4, on_error="warn").transform(rows)
    message = str(record[0].message)
    assert message.startswith("23 of 23 row(s) could not be read")
    assert "; row 19: FileNotFoundError" in message and "row 20:" not in message
    assert message.endswith("instance 4242) and 3 more")
    np.testing.assert_array_equal(out, 0)


def test_coordinates_outside_their_image_raise_or_warn_listing_the_rows(series):
    # the image is 50 columns x 40 rows: x = 49.9 and y = 0 still lie on it
    rows = _rows((49.9, 0), (500, -500), (-3, 20), (20, 40)).set_axis(["a", "b", "c", "d"])
    t = LumbarPatchTransformer(data_dir=series, patch_size=10, normalize=None)
    with pytest.raises(ValueError, match=r"^3 of 4 row\(s\) have a coordinate outside") as info:
        t.transform(rows)
    message = str(info.value)
    assert "row 'b' (x=500, y=-500 on 50 x 40 " in message and "1003.dcm)" in message
    assert "row 'c' (x=-3, y=20" in message and "row 'd' (x=20, y=40" in message
    assert "row 'a'" not in message
    with pytest.warns(PatchExtractionWarning, match="3 of 4 row") as record:
        out = t.set_params(on_error="warn").transform(rows)
    assert len(record) == 1 and "row 'a'" not in str(record[0].message)
    assert record[0].filename == __file__  # points at the caller of transform
    np.testing.assert_array_equal(out[1], 0)  # wholly off the image
    np.testing.assert_array_equal(out[2, 0, :, 8:], _raw(series)[15:25, :2])  # cut, not shifted
    np.testing.assert_array_equal(out[2, 0, :, :8], 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t.transform(rows.iloc[:1])


def test_constant_images_warn_naming_the_file_whatever_on_error(tmp_path):
    flat = write_dicom(tmp_path / "s" / "1.dcm", np.full((16, 16), 500), InstanceNumber=1)
    dot = write_dicom(tmp_path / "t" / "1.dcm", [[9]], InstanceNumber=1)
    ramp = write_dicom(tmp_path / "u" / "1.dcm", _ramp(16, 16), InstanceNumber=1)
    rows = pd.DataFrame(
        {"study_id": 1, "series_id": [1, 2, 3, 1], "instance_number": 1, "x": 0.0, "y": 0.0}
    ).assign(image_path=[str(flat), str(dot), str(ramp), str(flat)])
    with pytest.warns(PatchExtractionWarning) as record:
        out = LumbarPatchTransformer(patch_size=4).transform(rows)
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith("2 DICOM file(s) hold a constant image")
    assert str(flat) in message and str(dot) in message and str(ramp) not in message
    np.testing.assert_array_equal(out[[0, 1, 3]], 0)
    with pytest.warns(PatchExtractionWarning, match="1 DICOM file"):
        marker = LumbarPatchTransformer(mode="marker", output_size=8, normalize=None)
        assert marker.transform(rows.iloc[:1])[0, 0].tolist() == np.full((8, 8), 500.0).tolist()


def test_2_5d_never_mixes_positions_and_instance_numbers(series):
    folder = series / "train_images" / str(STUDY) / str(SERIES)
    # 1004 loses its position: ordered by position the others would run 1005, 1003,
    # 1002, 1001 (z = 0 to 40) with 1004 placed by its InstanceNumber in millimetres
    ds = pydicom.dcmread(folder / "1004.dcm")
    del ds.ImagePositionPatient
    ds.save_as(folder / "1004.dcm")
    rows = pd.concat([_rows((5, 5), instance=1002), _rows((5, 5), instance=1005)])
    t = LumbarPatchTransformer(data_dir=series, patch_size=2, slices=3, normalize=None)
    for memory in (None, series / "cache", series / "cache"):  # the cache keeps the warning
        with pytest.warns(GeometryWarning) as record:
            out = t.set_params(memory=memory).transform(rows)
        assert len(record) == 1
        message = str(record[0].message)
        assert message.startswith(f"series {folder}: no ImagePositionPatient in 1 of 5 files")
        assert "(1004.dcm)" in message and "ordered by InstanceNumber" in message
        # InstanceNumber order 1001..1005 for the whole series; slice k holds 10000 * (4 - k)
        assert [plane[1, 1] for plane in out[0]] == [40505.0, 30505.0, 20505.0]
        assert [plane[1, 1] for plane in out[1]] == [10505.0, 505.0, 505.0]


def test_memory_notices_files_swapped_within_a_series_with_their_mtimes_restored(tmp_path):
    folder = tmp_path / "s"
    first = write_dicom(folder / "1.dcm", _ramp(8, 8), InstanceNumber=1)
    second = folder / "2.dcm"
    data = first.read_bytes()
    pixels = (_ramp(8, 8) + 1000).astype("<u2").tobytes()
    second.write_bytes(data[: -len(pixels)] + pixels)  # same header and size, other pixels
    rows = pd.DataFrame(
        {"study_id": 1, "series_id": 1, "instance_number": [1, 2], "x": 4.0, "y": 4.0}
    ).assign(image_path=[str(first), str(second)])
    t = LumbarPatchTransformer(patch_size=2, normalize=None, memory=tmp_path / "cache")
    before = t.transform(rows)
    assert before[:, 0, 1, 1].tolist() == [404.0, 1404.0]
    times = {p: (p.stat().st_atime_ns, p.stat().st_mtime_ns) for p in (first, second)}
    os.rename(first, folder / "swap")
    os.rename(second, first)
    os.rename(folder / "swap", second)
    for path, (atime, mtime) in times.items():
        os.utime(path, ns=(atime, mtime))
    assert first.stat().st_size == second.stat().st_size
    # both the whole call and the series' decoded slices are cached: each must miss
    assert t.transform(rows)[:, 0, 1, 1].tolist() == [1404.0, 404.0]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"slices": 2}, "slices must be a positive odd int"),
        ({"slices": 0}, "slices"),
        (
            {"patch_size": 0},
            r"'patch_size' parameter .* must be an int in the range \[1, inf\)",
        ),
        ({"patch_size": (8, -1)}, "patch_size"),
        ({"output_size": 0}, "output_size"),
        (
            {"mode": "whole"},
            r"'mode' parameter .* must be a str among \{.*'marker'.*\}. Got 'whole'",
        ),
        (
            {"normalize": "zscore"},
            r"'normalize' parameter .* must be a str among .*'percentile'.* or None",
        ),
        ({"blur": -1.0}, "blur"),
        ({"on_error": "ignore"}, "on_error"),
        (
            {"memory": 3},
            r"'memory' parameter .* must be .*an object implementing 'cache' or None. Got 3",
        ),
        ({"verbose": -1}, r"'verbose' parameter .* must be an int in the range \[0, inf\)"),
        (
            {"patch_size_mm": 0, "output_size": 8},
            r"'patch_size_mm' parameter .* must be a float in the range \(0.0, inf\)",
        ),
        ({"patch_size_mm": (10, -1), "output_size": 8}, "patch_size_mm"),
        ({"patch_size_mm": "40", "output_size": 8}, "patch_size_mm"),
        ({"patch_size_mm": 40}, "patch_size_mm needs output_size"),
        ({"patch_size_mm": 40, "output_size": 8, "mode": "marker"}, "patch_size_mm sizes crops"),
    ],
)
def test_bad_parameters_name_the_parameter_in_fit_and_transform(series, params, message):
    t = LumbarPatchTransformer(data_dir=series, **params)
    with pytest.raises(ValueError, match=message):
        t.fit(_rows((1, 1)))
    with pytest.raises(ValueError, match=message):
        t.transform(_rows((1, 1)))


def test_bad_frames_name_the_rows_or_columns(series):
    t = LumbarPatchTransformer(data_dir=series)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['x'\]"):
        t.fit(_rows((1, 1)).drop(columns="x"))
    rows = _rows((1, 1), (np.nan, 2), (3, 4))
    rows.index = [10, 11, 12]
    with pytest.raises(
        ValueError, match=r"'x' must hold finite numbers; got \[nan\] at row\(s\) 11$"
    ):
        t.transform(rows)
    rows = _rows((1, 1), (2, 2)).astype({"y": object})
    rows.loc[1, "y"] = "abc"
    with pytest.raises(ValueError, match=r"'y'.*\['abc'\] at row\(s\) 1$"):
        t.fit(rows)
    rows = _rows(*[(1, 1)] * 13).astype({"instance_number": float})
    rows["instance_number"] += 0.5
    with pytest.raises(
        ValueError,
        match=r"'instance_number' must hold whole numbers; got \[1003.5, .*\] "
        r"at row\(s\) 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 3 more$",
    ):
        t.transform(rows)
    rows = _rows((1, 1), (2, 2)).astype({"series_id": object})
    rows.loc[1, "series_id"] = 2**64 + SERIES  # would wrap around to SERIES in int64
    with pytest.raises(
        ValueError, match=r"'series_id' must hold whole numbers from -2\*\*63 to 2\*\*63 - 1"
    ):
        t.fit(rows)
    with pytest.raises(ValueError, match="pandas DataFrame"):
        t.fit(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="set data_dir"):
        LumbarPatchTransformer().transform(_rows((1, 1)))
    with pytest.raises(ValueError, match=r"X has no image_path at row\(s\) 1: set data_dir"):
        LumbarPatchTransformer().transform(_rows((1, 1), (2, 2)).assign(image_path=["a", None]))


def test_patches_match_values_recorded_before_the_modules_were_split(tmp_path):
    # Recorded with the single-module transformer (main at a17da6f): the split into
    # patches, dicom, _cache and _extract left every patch byte-identical.
    rng = np.random.default_rng(7)
    for k, z in enumerate([20.0, 0.0, 40.0, 10.0, 30.0]):
        write_dicom(
            tmp_path / "s" / f"{k + 1}.dcm",
            rng.integers(0, 4000, size=(40, 50)),
            InstanceNumber=k + 1,
            ImagePositionPatient=[0, 0, z],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        )
    rows = pd.DataFrame(
        {
            "study_id": 1,
            "series_id": 2,
            "instance_number": [1, 3, 4],
            "x": [20.3, 0.5, 49.0],
            "y": [10.7, 3.0, 39.25],
        }
    ).assign(image_path=lambda f: [str(tmp_path / "s" / f"{i}.dcm") for i in f.instance_number])
    recorded = [
        ({"patch_size": 8}, 57.461917981505394, [0.09747693687677383, 0.0, 0.2821704149246216]),
        (
            {"patch_size": (10, 6), "output_size": 5, "blur": 1.2},
            21.864505484700203,
            [0.4152025282382965, 0.36691051721572876, 0.39570459723472595],
        ),
        (
            {"patch_size": 6, "output_size": (9, 7), "slices": 3, "normalize": "minmax"},
            184.2973696733825,
            [0.44680240750312805, 0.039668112993240356, 0.5043935179710388],
        ),
        (
            {"mode": "marker", "output_size": 16, "blur": 0.8, "normalize": None},
            1538626.7874762635,
            [1840.5308837890625, 2162.75, 1674.5035400390625],
        ),
    ]
    for params, total, pixels in recorded:
        out = LumbarPatchTransformer(**params).transform(rows)
        assert out.astype(np.float64).sum() == pytest.approx(total, rel=1e-6)
        np.testing.assert_allclose(out[:, 0, 2, 2], pixels, rtol=1e-6)


# --- A stateless transformer: scikit-learn's estimator checks on DataFrame rows ---
# parametrize_with_checks feeds 2-D numeric arrays, which this transformer cannot
# take (tests/test_estimator_checks.py lists them); these are the checks that matter,
# rewritten for frames of rows pointing into DICOM files.


def test_transform_needs_no_fit_and_the_tags_say_so(series):
    t = LumbarPatchTransformer(data_dir=series, patch_size=(6, 8), normalize=None)
    assert t.__sklearn_tags__().requires_fit is False
    assert t.__sklearn_tags__().transformer_tags.preserves_dtype == []
    check_is_fitted(t)  # a stateless estimator is always ready
    patch = t.transform(_rows((20, 10)))[0, 0]
    np.testing.assert_array_equal(patch, _raw(series)[7:13, 16:24])


def test_parameters_set_after_fit_take_effect(series):
    rows = _rows((20, 10))
    t = LumbarPatchTransformer(data_dir=series, patch_size=16, normalize=None).fit(rows)
    assert t.transform(rows).shape == (1, 1, 16, 16)
    t.set_params(patch_size=8)
    np.testing.assert_array_equal(t.transform(rows)[0, 0], _raw(series)[6:14, 16:24])
    t.set_params(mode="marker", output_size=(20, 25))
    image, marker = t.transform(rows)[0]
    np.testing.assert_allclose(image, _raw(series).reshape(20, 2, 25, 2).mean(axis=(1, 3)))
    assert np.unravel_index(marker.argmax(), marker.shape) == (5, 10)
    assert t.set_params(slices=3).transform(rows).shape == (1, 4, 20, 25)


def test_fit_is_idempotent_stores_nothing_and_overwrites_no_parameter(series, rsna_frame):
    rows = _rows((20, 10), (3.5, 30.25))
    t = LumbarPatchTransformer(data_dir=series, patch_size=[6, 8], memory=None, blur=1.0)
    before = dict(vars(t))
    hashes = joblib.hash(t.get_params())
    assert t.fit(rows) is t
    assert vars(t) == before and joblib.hash(t.get_params()) == hashes
    first = t.transform(rows)
    assert vars(t) == before  # transform changes nothing either
    # fitted twice, or on other data: the same output
    np.testing.assert_array_equal(t.fit(rows).fit(rows).transform(rows), first)
    np.testing.assert_array_equal(t.fit(rsna_frame).transform(rows), first)
    assert not hasattr(t, "n_features_in_") and not hasattr(t, "feature_names_in_")


def test_subset_and_sample_order_invariance(rsna_frame):
    rows = rsna_frame.head(50)  # two studies, six series
    t = LumbarPatchTransformer(patch_size=12, slices=3)
    full = t.transform(rows)
    # batches of rows, each cutting through series, give the rows' own patches
    for batch in np.array_split(np.arange(len(rows)), 3):
        np.testing.assert_array_equal(t.transform(rows.iloc[batch]), full[batch])
    order = np.random.default_rng(0).permutation(len(rows))
    np.testing.assert_array_equal(t.transform(rows.iloc[order]), full[order])
    np.testing.assert_array_equal(t.transform(rows.iloc[[7]]), full[[7]])
    assert t.transform(rows.iloc[:0]).shape == (0, 3, 12, 12)


def test_pickle_round_trip_gives_identical_patches(rsna_frame, tmp_path):
    rows = rsna_frame.head(40)
    t = LumbarPatchTransformer(patch_size=10, blur=0.5, memory=tmp_path / "cache")
    expected = t.transform(rows)
    twin = pickle.loads(pickle.dumps(t))
    assert twin.get_params() == t.get_params()
    out = twin.transform(rows)
    assert out.dtype == expected.dtype and out.tobytes() == expected.tobytes()
    unused = pickle.loads(pickle.dumps(LumbarPatchTransformer(patch_size=10, blur=0.5)))
    assert unused.transform(rows).tobytes() == expected.tobytes()


def test_read_only_input_frame_gives_the_same_patches(series, tmp_path):
    rows = _rows((20, 10), (5.5, 7.25), (49, 39))
    columns = {}
    for column in rows.columns:
        np.save(tmp_path / f"{column}.npy", rows[column].to_numpy())
        columns[column] = np.load(tmp_path / f"{column}.npy", mmap_mode="r")
    frozen = pd.DataFrame(columns, copy=False)
    assert np.shares_memory(frozen["x"].to_numpy(), columns["x"])
    t = LumbarPatchTransformer(data_dir=series, patch_size=6)
    np.testing.assert_array_equal(t.transform(frozen), t.transform(rows))
    np.testing.assert_array_equal(t.merge_metadata(frozen)["x"], rows["x"])
    for column in rows.columns:  # the input is left as it was
        np.testing.assert_array_equal(columns[column], rows[column])


def test_columns_are_read_by_name_and_extra_ones_ignored(rsna_frame):
    # what n_features_in_ would mean for a frame transformer: nothing. It reads the
    # five columns it needs by name, so a frame from load_coordinates (no severity)
    # or with columns in another order transforms alike after fit on load_rsna's.
    t = LumbarPatchTransformer(patch_size=8).fit(rsna_frame)
    expected = t.transform(rsna_frame)
    other = rsna_frame.drop(columns=["severity", "condition"])[::-1].iloc[::-1]
    other = other[other.columns[::-1]].assign(extra="anything")
    np.testing.assert_array_equal(t.transform(other), expected)


def test_clone_keeps_every_parameter(series, tmp_path):
    t = LumbarPatchTransformer(
        data_dir=series,
        patch_size=(8, 6),
        output_size=4,
        patch_size_mm=(30.0, 40.5),
        mode="marker",
        slices=3,
        normalize="minmax",
        blur=0.5,
        n_jobs=2,
        memory=tmp_path,
        on_error="warn",
        verbose=1,
    )
    twin = clone(t)
    assert twin.get_params() == t.get_params()
    assert twin.get_params()["patch_size"] == (8, 6) and twin.get_params()["memory"] == tmp_path
    assert twin.get_params()["patch_size_mm"] == (30.0, 40.5)


# --- Progress output: ``verbose``, the shared word, and ``progress``, deprecated ---


def test_verbose_shows_a_progress_bar(rsna_frame, capsys):
    rows = rsna_frame.head(30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = LumbarPatchTransformer(patch_size=8).transform(rows)
        assert "patches" not in capsys.readouterr().err
        np.testing.assert_array_equal(
            LumbarPatchTransformer(patch_size=8, verbose=1).transform(rows), out
        )
    assert "patches" in capsys.readouterr().err


def test_progress_still_works_with_a_future_warning(rsna_frame, capsys):
    rows = rsna_frame.head(30)
    with pytest.warns(FutureWarning, match=r"progress=.*removed in 0\.3: use verbose=1"):
        out = LumbarPatchTransformer(patch_size=8, progress=True).fit_transform(rows)
    assert out.shape == (30, 1, 8, 8)
    assert "patches" in capsys.readouterr().err
    with pytest.warns(FutureWarning) as record:
        LumbarPatchTransformer(patch_size=8, verbose=1, progress=False).transform(rows)
    assert record[0].filename == __file__  # it points at the caller's line
    assert "patches" not in capsys.readouterr().err  # progress, when set, decides


def test_frame_from_load_rsna_without_paths_resolves_under_data_dir(rsna_root, rsna_frame):
    bare = rsna_frame.drop(columns=["image_path", "series_description"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = LumbarPatchTransformer(data_dir=rsna_root, patch_size=16).transform(bare)
    b = LumbarPatchTransformer(patch_size=16).transform(rsna_frame)
    np.testing.assert_array_equal(a, b)
    # a column of missing paths read as NaN floats is resolved too
    nan_paths = rsna_frame.assign(image_path=np.nan)
    t = LumbarPatchTransformer(data_dir=rsna_root, patch_size=16)
    np.testing.assert_array_equal(t.transform(nan_paths), b)
    assert spinecls.LumbarPatchTransformer is LumbarPatchTransformer


# --- Crops sized in millimetres: patch_size_mm and PixelSpacing ---


def _phantom(spacing, size_mm=(80.0, 96.0)):
    """A disc of radius 10 mm at (row 37, column 45) mm and one of 4 mm below-left of it,
    drawn with soft edges at ``spacing`` = PixelSpacing (row, column) in mm per pixel."""
    row_mm = np.arange(round(size_mm[0] / spacing[0]))[:, None] * spacing[0]
    col_mm = np.arange(round(size_mm[1] / spacing[1]))[None, :] * spacing[1]

    def disc(row, col, radius):
        return 1 / (1 + np.exp((np.hypot(row_mm - row, col_mm - col) - radius) / 0.7))

    return 1000 * disc(37.0, 45.0, 10.0) + 600 * disc(47.0, 31.0, 4.0)


def _phantom_rows(tmp_path, spacings):
    rows = []
    for k, spacing in enumerate(spacings):
        path = write_dicom(
            tmp_path / str(k) / "1.dcm",
            _phantom(spacing),
            PixelSpacing=list(spacing),
            InstanceNumber=1,
        )
        x, y = 45.0 / spacing[1], 37.0 / spacing[0]  # the big disc's centre, in pixels
        rows.append((1, k, 1, x, y, str(path)))
    return pd.DataFrame(
        rows, columns=["study_id", "series_id", "instance_number", "x", "y", "image_path"]
    )


def test_patch_size_mm_gives_the_same_patch_at_any_pixel_spacing(tmp_path):
    # square, twice as fine, non-square pixels (rows twice as fine), a ratio of 1.25
    # and non-square pixels finer across than down
    spacings = [(1.0, 1.0), (0.5, 0.5), (0.5, 1.0), (0.8, 0.8), (0.7, 0.45)]
    rows = _phantom_rows(tmp_path, spacings)
    mm = LumbarPatchTransformer(patch_size_mm=40, output_size=32, normalize=None)
    out = mm.fit_transform(rows)[:, 0] / 1000
    assert out.shape == (5, 32, 32) and out[0, 16, 16] > 0.99 and out[0, 0, 0] < 0.01
    for patch in out[1:]:
        assert np.abs(patch - out[0]).max() < 0.06
        assert np.abs(patch - out[0]).mean() < 0.006
    pixels = LumbarPatchTransformer(patch_size=40, output_size=32, normalize=None)
    fixed = pixels.fit_transform(rows)[:, 0] / 1000
    assert all(np.abs(patch - fixed[0]).mean() > 0.1 for patch in fixed[1:])
    # a (h, w) pair in mm, and 2.5D: the neighbours take the labelled slice's spacing
    pair = mm.set_params(patch_size_mm=(40, 20), output_size=(32, 16), slices=3)
    tall = pair.fit_transform(rows)
    assert tall.shape == (5, 3, 32, 16)
    np.testing.assert_allclose(tall[0, 1] / 1000, out[0, :, 8:24], atol=0.06)


def test_patch_size_mm_at_one_mm_per_pixel_is_a_pixel_crop(series):
    # odd sides: a centred window is exactly the pixel crop around an integer centre
    rows = _rows((20, 10), (3.5, 30.25))
    by_mm = LumbarPatchTransformer(
        data_dir=series, patch_size_mm=(5, 7), output_size=(5, 7), normalize=None, slices=3
    )
    by_pixels = LumbarPatchTransformer(data_dir=series, patch_size=(5, 7), slices=3, normalize=None)
    np.testing.assert_array_equal(by_mm.transform(rows), by_pixels.transform(rows))


def test_a_slice_without_pixel_spacing_is_a_bad_row(tmp_path):
    rows = _phantom_rows(tmp_path, [(1.0, 1.0), (0.5, 0.5)])
    path = rows.loc[1, "image_path"]
    ds = pydicom.dcmread(path)
    del ds.PixelSpacing
    ds.save_as(path)
    t = LumbarPatchTransformer(patch_size_mm=40, output_size=16)
    with pytest.raises(ValueError, match=r"1/1.dcm: PixelSpacing is absent; patch_size_mm needs"):
        t.transform(rows)
    with pytest.warns(PatchExtractionWarning, match=r"1 of 2 row\(s\).*row 1: ValueError"):
        out = t.set_params(on_error="warn").transform(rows)
    assert out[0].any() and not out[1].any()
    assert LumbarPatchTransformer(patch_size=40, output_size=16).transform(rows)[1].any()
    ds.PixelSpacing = [0.0001, 0.0001]  # a damaged header would ask for a huge window
    ds.save_as(path)
    with pytest.raises(ValueError, match="400000 x 400000 pixels, more than twice"):
        t.set_params(on_error="raise").transform(rows)
