"""spinecls.dicom: decoding, modality LUT, MONOCHROME1, codecs, percentiles, ordering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder

from spinecls.dicom import (
    MissingCodecError,
    exact_percentiles,
    read_slice,
    slice_position,
    sort_slices,
)

from .helpers import write_dicom

VARIANTS = [
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_expb.dcm",
]


@pytest.mark.parametrize("name", VARIANTS)
def test_bundled_mr_variants_decode_to_the_same_pixels(name):
    reference = read_slice(get_testdata_file("MR_small.dcm"))
    variant = read_slice(get_testdata_file(name))
    np.testing.assert_array_equal(variant.pixels, reference.pixels)
    assert variant.pixels.dtype.isnative
    for normalize in ("percentile", "minmax", None):
        np.testing.assert_array_equal(variant.image(normalize), reference.image(normalize))


def test_real_mr_file_normalisation_matches_numpy():
    s = read_slice(get_testdata_file("MR_small.dcm"))
    raw = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array.astype(np.float64)
    lo, hi = np.percentile(raw, [1, 99])
    np.testing.assert_allclose(s.image(), np.clip((raw - lo) / (hi - lo), 0, 1), atol=1e-6)
    np.testing.assert_allclose(
        s.image("minmax"), (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6
    )
    np.testing.assert_array_equal(s.image(None), raw.astype(np.float32))


_RANGES = {
    np.uint8: (0, 255),
    np.uint16: (0, 65535),
    np.int16: (-3000, 3000),
    np.int32: (-9, 70000),
}


@st.composite
def integer_images(draw):
    dtype = draw(st.sampled_from(list(_RANGES)))
    low, high = _RANGES[dtype]
    shape = draw(st.tuples(st.integers(1, 30), st.integers(1, 30)))
    return draw(arrays(dtype, shape, elements=st.integers(low, high)))


@settings(max_examples=60, deadline=None)
@given(integer_images(), st.lists(st.floats(0, 100), min_size=1, max_size=4))
def test_histogram_percentiles_equal_numpy(image, q):
    np.testing.assert_allclose(exact_percentiles(image, q), np.percentile(image, q), rtol=1e-12)


def test_percentiles_of_floats_and_wide_ranges_fall_back_to_numpy():
    rng = np.random.default_rng(0)
    floats = rng.normal(size=(20, 20))
    wide = rng.integers(-(2**30), 2**30, size=(20, 20))
    for image in (floats, wide):
        np.testing.assert_allclose(exact_percentiles(image, [1, 99]), np.percentile(image, [1, 99]))
    with pytest.raises(ValueError, match="empty"):
        exact_percentiles(np.zeros((0, 3), np.uint16), 50)


def test_rescale_slope_and_intercept_apply(tmp_path):
    pixels = np.arange(100, dtype=np.uint16).reshape(10, 10) * 10
    path = write_dicom(tmp_path / "r.dcm", pixels, RescaleSlope=2, RescaleIntercept=-100)
    s = read_slice(path)
    np.testing.assert_array_equal(s.image(None), pixels * 2.0 - 100)
    plain = read_slice(write_dicom(tmp_path / "p.dcm", pixels))
    np.testing.assert_allclose(s.image("percentile"), plain.image("percentile"), atol=1e-6)


def test_monochrome1_is_inverted(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 4000, size=(16, 16)).astype(np.uint16)
    m2 = read_slice(write_dicom(tmp_path / "m2.dcm", pixels))
    m1 = read_slice(
        write_dicom(tmp_path / "m1.dcm", pixels, PhotometricInterpretation="MONOCHROME1")
    )
    ds = pydicom.dcmread(tmp_path / "m1.dcm")
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    np.testing.assert_allclose(m1.image("percentile"), 1 - m2.image("percentile"), atol=1e-6)
    np.testing.assert_allclose(m1.image("minmax"), 1 - m2.image("minmax"), atol=1e-6)
    expected = pixels.min() + pixels.max() - pixels.astype(np.float32)
    np.testing.assert_array_equal(m1.image(None), expected)


def test_window_pads_with_zeros_outside_the_slice():
    s = read_slice(get_testdata_file("MR_small.dcm"))
    full = s.image()
    win = s.window(-3, 60, 8, 8)
    assert win.shape == (8, 8)
    np.testing.assert_array_equal(win[:3], 0)
    np.testing.assert_array_equal(win[:, 4:], 0)
    np.testing.assert_array_equal(win[3:, :4], full[:5, 60:])


def test_missing_truncated_and_non_dicom_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.dcm"):
        read_slice(tmp_path / "nothere.dcm")
    truncated = get_testdata_file("MR_truncated.dcm")
    with pytest.raises(ValueError, match="MR_truncated.dcm"):
        read_slice(truncated)
    text = tmp_path / "notes.dcm"
    text.write_text("not a dicom file")
    with pytest.raises(ValueError, match=r"notes\.dcm: not a readable DICOM file"):
        read_slice(text)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(Path(get_testdata_file("MR_small.dcm")).read_bytes()[:3000])
    with pytest.raises(ValueError, match=r"cut\.dcm"):
        read_slice(cut)


def test_missing_codec_names_the_transfer_syntax_and_the_extra():
    decoder = get_decoder(pydicom.uid.JPEGLSLossless)
    available = dict(decoder._available)
    decoder._available.clear()
    decoder._unavailable.update({name: ("pylibjpeg",) for name in available})
    try:
        with pytest.raises(MissingCodecError) as info:
            read_slice(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))
    finally:
        decoder._available.update(available)
        for name in available:
            decoder._unavailable.pop(name, None)
    message = str(info.value)
    assert "JPEG-LS Lossless Image Compression" in message
    assert "spinecls[codecs]" in message
    assert read_slice(get_testdata_file("MR_small_jpeg_ls_lossless.dcm")).pixels.shape == (64, 64)


def test_slice_position_projects_on_the_normal(tmp_path):
    px = np.zeros((4, 4))
    sag = write_dicom(
        tmp_path / "s.dcm",
        px,
        ImagePositionPatient=[12.5, -30, 40],
        ImageOrientationPatient=[0, 1, 0, 0, 0, -1],
    )
    ax = write_dicom(
        tmp_path / "a.dcm",
        px,
        ImagePositionPatient=[-80, -60, 33.0],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
    )
    assert slice_position(sag) == pytest.approx(-12.5)  # normal (0,1,0) x (0,0,-1) = (-1,0,0)
    assert slice_position(ax) == pytest.approx(33.0)
    assert slice_position(write_dicom(tmp_path / "l.dcm", px, SliceLocation=7.5)) == 7.5
    assert slice_position(write_dicom(tmp_path / "i.dcm", px, InstanceNumber=1234)) == 1234
    with pytest.raises(ValueError, match="cannot order"):
        slice_position(write_dicom(tmp_path / "n.dcm", px))
    with pytest.raises(FileNotFoundError):
        slice_position(tmp_path / "none.dcm")


def test_sort_slices_orders_by_position_then_file_number(tmp_path):
    px = np.zeros((4, 4))
    axial = {"ImageOrientationPatient": [1, 0, 0, 0, 1, 0]}
    # instance numbers run against position; 10.dcm and 9.dcm share a position
    for name, z in [("1", 30.0), ("2", 20.0), ("10", 10.0), ("9", 10.0), ("3", -5.0)]:
        write_dicom(tmp_path / f"{name}.dcm", px, ImagePositionPatient=[0, 0, z], **axial)
    listed = sorted(str(p) for p in tmp_path.glob("*.dcm"))
    order = [Path(p).stem for p in sort_slices(listed)]
    assert order == ["3", "9", "10", "2", "1"]
    assert sort_slices(reversed(listed)) == sort_slices(listed)
    assert sort_slices(Path(p) for p in listed) == sort_slices(listed)
    write_dicom(tmp_path / "bad.dcm", px)
    with pytest.raises(ValueError, match=r"bad\.dcm: cannot order"):
        sort_slices([*listed, str(tmp_path / "bad.dcm")])
