"""spinecls.dicom: decoding, modality LUT, MONOCHROME1, codecs, percentiles."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder
from pydicom.uid import MPEG2MPML, DeflatedExplicitVRLittleEndian

from spinecls.dicom import (
    MissingCodecError,
    PixelDataError,
    UnreadableFileWarning,
    exact_percentiles,
    fail_on_unreadable,
    read_slice,
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


def _damaged(tmp_path, name: str, how: str) -> Path:
    """A copy of a bundled file whose pixel data is cut in half or has 64 bytes flipped."""
    data = Path(get_testdata_file(name)).read_bytes()
    pixel_data = pydicom.dcmread(get_testdata_file(name)).PixelData
    start = data.index(pixel_data[:200])
    if how == "truncated":
        data = data[: start + len(pixel_data) // 2]
    else:
        flip = start + len(pixel_data) // 4
        data = data[:flip] + bytes(b ^ 0xFF for b in data[flip : flip + 64]) + data[flip + 64 :]
    path = tmp_path / f"{how}-{name}"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "how", "decoder"),
    [
        ("MR_small_RLE.dcm", "truncated", "RLE Lossless"),
        ("MR_small_RLE.dcm", "flipped", "RLE Lossless"),
        ("MR_small_jp2klossless.dcm", "truncated", "JPEG 2000 Image Compression"),
        ("JPEG2000.dcm", "flipped", "JPEG 2000 Image Compression"),
        ("JPEG-lossy.dcm", "truncated", "JPEG Extended"),
    ],
)
def test_corrupt_compressed_data_names_the_file_and_the_decoder_not_the_extra(
    tmp_path, name, how, decoder
):
    path = _damaged(tmp_path, name, how)
    with pytest.raises(PixelDataError) as info:
        read_slice(path)
    message = str(info.value)
    assert message.startswith(f"{path}: corrupt or truncated pixel data: the {decoder}")
    assert "plugins:" in message and "\n" not in message  # pydicom's reasons, on one line
    assert "codecs" not in message
    assert isinstance(info.value, ValueError) and not isinstance(info.value, MissingCodecError)


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
    assert "MR_small_jpeg_ls_lossless.dcm" in message
    assert "JPEG-LS Lossless Image Compression" in message
    assert "requires pylibjpeg" in message
    assert "spinecls[codecs]" in message
    assert read_slice(get_testdata_file("MR_small_jpeg_ls_lossless.dcm")).pixels.shape == (64, 64)


def test_a_transfer_syntax_without_any_decoder_says_so(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.save_as(tmp_path / "video.dcm")
    with pytest.raises(MissingCodecError, match="MPEG2 Main Profile / Main Level") as info:
        read_slice(tmp_path / "video.dcm")
    assert "no decoder for this transfer syntax" in str(info.value)


@pytest.mark.filterwarnings("ignore:Expected explicit VR:UserWarning")  # pydicom's first try
def test_deflated_files_decode_like_pydicom(tmp_path):
    bundled = get_testdata_file("image_dfl.dcm")
    np.testing.assert_array_equal(read_slice(bundled).pixels, pydicom.dcmread(bundled).pixel_array)
    pixels = np.arange(120, dtype=np.uint16).reshape(10, 12) * 7
    path = write_dicom(tmp_path / "plain.dcm", pixels, RescaleSlope=2, RescaleIntercept=-5)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    assert pydicom.dcmread(tmp_path / "deflated.dcm").file_meta.TransferSyntaxUID.is_deflated
    deflated = read_slice(tmp_path / "deflated.dcm")
    np.testing.assert_array_equal(deflated.pixels, pixels)
    np.testing.assert_array_equal(deflated.image(None), pixels * 2.0 - 5)


def test_constant_images_are_told_apart(tmp_path):
    flat = read_slice(write_dicom(tmp_path / "flat.dcm", np.full((4, 5), 300)))
    single = read_slice(write_dicom(tmp_path / "one.dcm", [[7]]))
    spike = np.zeros((20, 20))
    spike[0, 0] = 900  # one pixel in 400: the 1st and 99th percentiles are both 0
    spiked = read_slice(write_dicom(tmp_path / "spike.dcm", spike))
    ramp = read_slice(write_dicom(tmp_path / "ramp.dcm", np.arange(20).reshape(4, 5)))
    for normalize in ("percentile", "minmax", None):
        assert flat.is_constant(normalize) and single.is_constant(normalize)
        assert not ramp.is_constant(normalize)
    assert spiked.is_constant("percentile")
    assert not spiked.is_constant("minmax") and not spiked.is_constant(None)
    np.testing.assert_array_equal(spiked.image("percentile"), 0)


@pytest.mark.parametrize("tag", ["RescaleSlope", "RescaleIntercept"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_modality_lut_that_is_not_finite_names_the_file(tmp_path, tag, value):
    pixels = np.arange(100, dtype=np.uint16).reshape(10, 10)
    path = write_dicom(tmp_path / "lut.dcm", pixels)
    ds = pydicom.dcmread(path)
    ds[tag] = pydicom.DataElement(0x00281053 if tag == "RescaleSlope" else 0x00281052, "DS", value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom: "Invalid value for VR DS"
        ds.save_as(path)
    with pytest.raises(ValueError, match=rf"lut\.dcm: {tag} must be a finite number"):
        read_slice(path)


def test_fail_on_unreadable_raises_the_error_a_skipped_file_carries(tmp_path):
    error = ValueError(f"{tmp_path}/9.dcm: not a readable DICOM file (empty)")
    warning = UnreadableFileWarning.skipping(tmp_path / "9.dcm", error)
    assert (
        str(warning) == f"{tmp_path}/9.dcm: not a readable DICOM file (empty); the slice is skipped"
    )
    with pytest.warns(UnreadableFileWarning, match="9.dcm"), fail_on_unreadable(strict=False):
        warnings.warn(warning, stacklevel=1)
    with pytest.raises(ValueError) as info, fail_on_unreadable():
        warnings.warn(warning, stacklevel=1)
    assert info.value is error
