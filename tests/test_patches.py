"""spinecls.patches on plain numpy arrays: crop, region, whole slice, marker, resize."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from spinecls import patches


def _image(rows=30, cols=40):
    """Values that encode their own position: 100 * row + column."""
    r, c = np.mgrid[:rows, :cols]
    return (100 * r + c).astype(np.float32)


def test_window_pads_with_zeros_and_reads_windowed_images():
    image = _image()
    win = patches.window(image, -2, 35, 5, 8)
    assert win.shape == (5, 8) and win.dtype == np.float32
    np.testing.assert_array_equal(win[:2], 0)
    np.testing.assert_array_equal(win[:, 5:], 0)
    np.testing.assert_array_equal(win[2:, :5], image[:3, 35:])
    np.testing.assert_array_equal(
        patches.window(image.astype(np.uint16), 0, 0, 2, 2), image[:2, :2]
    )
    np.testing.assert_array_equal(patches.window(image, 40, 50, 3, 3), 0)


def test_integer_centre_gives_the_exact_pixels_with_x_as_column():
    image = _image()
    patch = patches.crop(image, 20, 10, (6, 8))
    np.testing.assert_array_equal(patch, image[7:13, 16:24])
    assert patch[3, 4] == image[10, 20] == 1020
    odd = patches.crop(image, 20, 10, (5, 3))
    assert odd[2, 1] == 1020 and odd[0, 0] == image[8, 19]


def test_subpixel_centres_interpolate_bilinearly():
    image = np.random.default_rng(0).random((30, 40), dtype=np.float32)
    half = patches.crop(image, 20.5, 10, (4, 4))
    np.testing.assert_allclose(half, (image[8:12, 18:22] + image[8:12, 19:23]) / 2, rtol=1e-6)
    quarter = patches.crop(image, 20, 10.25, (4, 4))
    np.testing.assert_allclose(
        quarter, image[8:12, 18:22] * 0.75 + image[9:13, 18:22] * 0.25, rtol=1e-6
    )
    both = patches.crop(image, 20.5, 10.5, (2, 2))
    expected = image[9:11, 19:21] + image[9:11, 20:22] + image[10:12, 19:21] + image[10:12, 20:22]
    np.testing.assert_allclose(both, expected / 4, rtol=1e-6)


def test_borders_are_zero_padded_never_shifted():
    image = _image()
    corner = patches.crop(image, 0, 0, (10, 10))
    np.testing.assert_array_equal(corner[:5], 0)
    np.testing.assert_array_equal(corner[:, :5], 0)
    np.testing.assert_array_equal(corner[5:, 5:], image[:5, :5])
    far = patches.crop(image, 39, 29, (10, 10))
    np.testing.assert_array_equal(far[:6, :6], image[24:, 34:])
    np.testing.assert_array_equal(far[6:], 0)
    np.testing.assert_array_equal(patches.crop(image, 500, -500, (10, 10)), 0)


def test_blurred_region_equals_a_window_of_the_blurred_image():
    image = np.random.default_rng(1).random((30, 40), dtype=np.float32)
    full = cv2.GaussianBlur(image, (0, 0), 1.5, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(patches.region(image, 8, 12, 10, 6, blur=1.5), full[8:18, 12:18])
    # at the border the blur reflects as the whole image's would; outside it is zero
    corner = patches.crop(image, 0, 0, (12, 12), blur=1.5)
    np.testing.assert_allclose(corner[6:, 6:], full[:6, :6], atol=1e-6)
    np.testing.assert_array_equal(corner[:6], 0)
    np.testing.assert_array_equal(patches.region(image, 100, 100, 4, 4, blur=1.5), 0)
    assert np.array_equal(patches.region(image, 3, 4, 5, 6), patches.window(image, 3, 4, 5, 6))


def test_resize_averages_areas_when_shrinking_and_interpolates_when_enlarging():
    image = np.random.default_rng(2).random((10, 12), dtype=np.float32)
    np.testing.assert_allclose(
        patches.resize(image, (5, 6)), image.reshape(5, 2, 6, 2).mean(axis=(1, 3)), rtol=1e-6
    )
    enlarged = patches.resize(image, (20, 24))
    np.testing.assert_array_equal(enlarged, cv2.resize(image, (24, 20)))
    assert enlarged.shape == (20, 24)
    assert patches.resize(image, (10, 12)) is image
    shrunk = patches.crop(_image(), 20, 10, (10, 10), output_size=(5, 5))
    np.testing.assert_allclose(shrunk, _image()[5:15, 15:25].reshape(5, 2, 5, 2).mean(axis=(1, 3)))


def test_whole_slice_and_marker_mark_the_same_place():
    image = np.zeros((64, 96), np.float32)
    image[20:22, 45:48] = 1.0  # the 2 x 3 pixels that output pixel (10, 15) averages
    whole = patches.whole(image, (32, 32))
    spot = patches.marker(image.shape, 46.0, 20.5, (32, 32))
    assert whole.shape == spot.shape == (32, 32) and spot.dtype == np.float32
    peak = np.unravel_index(whole.argmax(), whole.shape)
    assert peak == np.unravel_index(spot.argmax(), spot.shape) == (10, 15)
    assert spot.max() == pytest.approx(1.0)
    # sigma is max(1, min(output_size) / 32) output pixels: exp(-1/2) one sigma away
    wide = patches.marker((64, 64), 30.25, 30, (64, 128))  # centre (30, 61), sigma 2
    assert wide[30, 61] == pytest.approx(1.0)
    assert wide[30, 63] == pytest.approx(np.exp(-0.5), rel=1e-5)
    assert wide[32, 61] == pytest.approx(np.exp(-0.5), rel=1e-5)
    blurred = patches.whole(image, (64, 96), blur=1.0)
    np.testing.assert_allclose(
        blurred, cv2.GaussianBlur(image, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT_101)
    )


class _Counting:
    """A windowed image that records the area it was asked for."""

    def __init__(self, image):
        self.image, self.shape, self.read = image, image.shape, 0

    def window(self, top, left, height, width):
        self.read += height * width
        return patches.window(self.image, top, left, height, width)


def test_windowed_images_are_read_only_where_the_patch_needs():
    image = np.random.default_rng(3).random((200, 300), dtype=np.float32)
    lazy = _Counting(image)
    np.testing.assert_array_equal(
        patches.crop(lazy, 120.25, 80.5, (8, 8), blur=1.0),
        patches.crop(image, 120.25, 80.5, (8, 8), blur=1.0),
    )
    # the 9 x 9 window plus the kernel's reach (ceil(4 * sigma) + 1 = 5) on each side
    assert lazy.read == 19 * 19
    np.testing.assert_array_equal(patches.whole(lazy, (20, 30)), patches.whole(image, (20, 30)))
