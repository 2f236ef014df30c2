"""Patch operations on one 2-D image: crop, whole slice, marker, resize.

Pure numpy (and OpenCV for the blur and the resize): no DICOM, no pandas. Every
function takes ``image``, either a 2-D array or any object with a ``shape`` and a
``window(top, left, height, width)`` method returning that window as float32, zero
outside the image. The transformer passes a decoded DICOM slice that normalises only
the windows it is asked for, so a patch never costs a pass over the whole slice.

Coordinates follow the competition: ``x`` is the column, ``y`` the row, in pixels.
"""

from __future__ import annotations

import math
from typing import Protocol

import cv2
import numpy as np

__all__ = [
    "Image",
    "Windowed",
    "crop",
    "crop_mm",
    "marker",
    "mm_to_pixels",
    "region",
    "resize",
    "whole",
    "window",
]


class Windowed(Protocol):
    """An image read window by window (e.g. a DICOM slice normalised on demand)."""

    shape: tuple[int, int]

    def window(self, top: int, left: int, height: int, width: int) -> np.ndarray: ...


Image = np.ndarray | Windowed
"""What every function here takes: a 2-D array or a :class:`Windowed` image."""


def window(image: Image, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Values of a window as float32, zero where the window leaves the image.

    Parameters
    ----------
    image : 2-D array or Windowed
        The image.
    top, left : int
        Window origin in pixels (may be negative).
    height, width : int
        Window size.

    Returns
    -------
    ndarray of shape (height, width), float32

    Examples
    --------
    >>> import numpy as np
    >>> window(np.arange(4).reshape(2, 2), -1, 0, 3, 3).tolist()
    [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [2.0, 3.0, 0.0]]
    """
    if not isinstance(image, np.ndarray):
        return image.window(top, left, height, width)
    out = np.zeros((height, width), np.float32)
    rows, cols = image.shape
    r0, r1 = max(top, 0), min(top + height, rows)
    c0, c1 = max(left, 0), min(left + width, cols)
    if r0 < r1 and c0 < c1:
        out[r0 - top : r1 - top, c0 - left : c1 - left] = image[r0:r1, c0:c1]
    return out


def region(
    image: Image, top: int, left: int, height: int, width: int, blur: float | None = None
) -> np.ndarray:
    """A window of the image after an optional Gaussian blur of the whole image.

    Only the window and the kernel's reach around it are read and blurred; the result
    equals that window of the blurred image (OpenCV's ``GaussianBlur``, reflecting at
    the image's border), zero outside the image.

    Parameters
    ----------
    image : 2-D array or Windowed
        The image.
    top, left, height, width : int
        The window, as in :func:`window`.
    blur : float, default=None
        Sigma in pixels; None or 0: no blur.

    Returns
    -------
    ndarray of shape (height, width), float32
    """
    if not blur:
        return window(image, top, left, height, width)
    margin = math.ceil(4 * blur) + 1
    rows, cols = image.shape
    r0, r1 = max(top - margin, 0), min(top + height + margin, rows)
    c0, c1 = max(left - margin, 0), min(left + width + margin, cols)
    out = np.zeros((height, width), np.float32)
    if r0 >= r1 or c0 >= c1:
        return out
    # The margin holds the kernel's reach; at the image's own border the blur
    # reflects, as a blur of the whole image would.
    blurred = cv2.GaussianBlur(
        window(image, r0, c0, r1 - r0, c1 - c0),
        (0, 0),
        blur,
        borderType=cv2.BORDER_REFLECT_101,
    )
    a0, a1 = max(top, r0), min(top + height, r1)
    b0, b1 = max(left, c0), min(left + width, c1)
    if a0 < a1 and b0 < b1:
        out[a0 - top : a1 - top, b0 - left : b1 - left] = blurred[
            a0 - r0 : a1 - r0, b0 - c0 : b1 - c0
        ]
    return out


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` = (height, width): area averaging when shrinking, else bilinear.

    Parameters
    ----------
    image : ndarray of shape (rows, columns), float32
        The image (returned as is when it already has ``size``).
    size : (int, int)
        Output height and width.

    Returns
    -------
    ndarray of shape ``size``, float32
    """
    if image.shape == size:
        return image
    shrink = size[0] < image.shape[0] or size[1] < image.shape[1]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (size[1], size[0]), interpolation=interpolation)


def crop(
    image: Image,
    x: float,
    y: float,
    patch_size: tuple[int, int],
    output_size: tuple[int, int] | None = None,
    blur: float | None = None,
) -> np.ndarray:
    """Patch centred on ``(x, y)``: ``patch[h // 2, w // 2]`` is the pixel at row y, column x.

    A sub-pixel centre is resampled bilinearly; regions past the border are zero,
    never shifted.

    Parameters
    ----------
    image : 2-D array or Windowed
        The image.
    x, y : float
        Centre: column and row in pixels.
    patch_size : (int, int)
        Crop height and width.
    output_size : (int, int), default=None
        Resize the crop to it (see :func:`resize`); None: ``patch_size``.
    blur : float, default=None
        Gaussian sigma applied first (see :func:`region`).

    Returns
    -------
    ndarray of shape ``output_size``, float32

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(25, dtype=np.float32).reshape(5, 5)
    >>> crop(image, 2, 1, (2, 2)).tolist()
    [[1.0, 2.0], [6.0, 7.0]]
    >>> crop(image, 2.5, 1, (2, 2)).tolist()
    [[1.5, 2.5], [6.5, 7.5]]
    """
    h, w = patch_size
    fx, fy = math.floor(x), math.floor(y)
    dx, dy = np.float32(x - fx), np.float32(y - fy)
    win = region(image, fy - h // 2, fx - w // 2, h + 1, w + 1, blur)
    if dx == 0 and dy == 0:
        patch = win[:h, :w]
    else:  # bilinear resampling at the sub-pixel centre
        top = win[:h, :w] * (1 - dx) + win[:h, 1:] * dx
        bottom = win[1:, :w] * (1 - dx) + win[1:, 1:] * dx
        patch = top * (1 - dy) + bottom * dy
    return resize(np.ascontiguousarray(patch), patch_size if output_size is None else output_size)


def mm_to_pixels(size_mm: tuple[float, float], spacing: tuple[float, float]) -> tuple[int, int]:
    """The pixel size of a window of ``size_mm``: ``round(mm / spacing)`` per axis, at least 1.

    Parameters
    ----------
    size_mm : (float, float)
        Window height and width in millimetres.
    spacing : (float, float)
        PixelSpacing in DICOM order: row spacing (the size of a step in ``y``), then
        column spacing (a step in ``x``), in mm.

    Returns
    -------
    (int, int)
        Height and width in pixels, halves rounded up.

    Examples
    --------
    >>> mm_to_pixels((40.0, 40.0), (0.5, 0.8))
    (80, 50)
    """
    return tuple(max(1, math.floor(mm / s + 0.5)) for mm, s in zip(size_mm, spacing))


def crop_mm(
    image: Image,
    x: float,
    y: float,
    size_mm: tuple[float, float],
    spacing: tuple[float, float],
    output_size: tuple[int, int],
    blur: float | None = None,
) -> np.ndarray:
    """Patch of ``size_mm`` millimetres centred on ``(x, y)``, resized to ``output_size``.

    The window is :func:`mm_to_pixels` pixels, centred on the point: unlike
    :func:`crop`, which puts the labelled pixel at ``[h // 2, w // 2]``, half a pixel
    past the centre of an even window. That half pixel would be a different distance
    in mm at each resolution, so here the centre is exact and a window of the same
    anatomy gives the same patch at any PixelSpacing, up to resampling.

    Parameters
    ----------
    image, x, y
        The image and the centre, as for :func:`crop`.
    size_mm : (float, float)
        Window height and width in mm.
    spacing : (float, float)
        PixelSpacing (row spacing, column spacing) in mm.
    output_size : (int, int)
        Height and width of the result (see :func:`resize`).
    blur : float, default=None
        Gaussian sigma in pixels of the image, applied first (see :func:`region`).

    Returns
    -------
    ndarray of shape ``output_size``, float32

    Raises
    ------
    ValueError
        If the window would be more than twice the image's size along an axis: a
        PixelSpacing too small for the image (a damaged header) would otherwise
        allocate a huge window.

    Examples
    --------
    The same 4 x 4 mm square at 1 mm and at 0.5 mm per pixel:

    >>> import numpy as np
    >>> coarse = np.zeros((8, 8), np.float32); coarse[2:6, 2:6] = 1
    >>> fine = np.zeros((16, 16), np.float32); fine[4:12, 4:12] = 1
    >>> a = crop_mm(coarse, 3.5, 3.5, (6.0, 6.0), (1.0, 1.0), (6, 6))
    >>> b = crop_mm(fine, 7.5, 7.5, (6.0, 6.0), (0.5, 0.5), (6, 6))
    >>> bool(np.allclose(a, b)), a[:, 0].tolist()
    (True, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    """
    h, w = mm_to_pixels(size_mm, spacing)
    rows, cols = image.shape
    if h > 2 * rows or w > 2 * cols:
        raise ValueError(
            f"a window of {tuple(size_mm)} mm at PixelSpacing {tuple(spacing)} is {h} x {w} "
            f"pixels, more than twice the {rows} x {cols} image: check PixelSpacing"
        )
    # crop() centres an even side half a pixel before the labelled one: move it back.
    return crop(image, x + (w % 2 == 0) / 2, y + (h % 2 == 0) / 2, (h, w), output_size, blur)


def whole(image: Image, output_size: tuple[int, int], blur: float | None = None) -> np.ndarray:
    """The whole image (optionally blurred) resized to ``output_size``.

    Parameters
    ----------
    image : 2-D array or Windowed
        The image.
    output_size : (int, int)
        Output height and width.
    blur : float, default=None
        Gaussian sigma applied first.

    Returns
    -------
    ndarray of shape ``output_size``, float32
    """
    rows, cols = image.shape
    return resize(region(image, 0, 0, rows, cols, blur), output_size)


def marker(shape: tuple[int, int], x: float, y: float, output_size: tuple[int, int]) -> np.ndarray:
    """A Gaussian spot at ``(x, y)`` of an image of ``shape``, drawn on the output grid.

    Its sigma is ``max(1, min(output_size) / 32)`` output pixels, and its centre is where
    :func:`whole` puts the pixel ``(x, y)``, so it marks the coordinate on the resized
    image.

    Parameters
    ----------
    shape : (int, int)
        Rows and columns of the image the coordinate belongs to.
    x, y : float
        Column and row in that image.
    output_size : (int, int)
        Height and width of the marker.

    Returns
    -------
    ndarray of shape ``output_size``, float32, peak 1 at a whole-pixel centre

    Examples
    --------
    >>> spot = marker((64, 64), 30.5, 14.5, (32, 32))
    >>> divmod(int(spot.argmax()), 32), float(spot.max())
    ((7, 15), 1.0)
    """
    rows, cols = shape
    oh, ow = output_size
    # Pixel centres map as (j + 0.5) * cols / ow - 0.5 -> column j of the output.
    cx = (x + 0.5) * ow / cols - 0.5
    cy = (y + 0.5) * oh / rows - 0.5
    sigma = max(1.0, min(oh, ow) / 32)
    gy = np.exp(-0.5 * ((np.arange(oh, dtype=np.float32) - cy) / sigma) ** 2)
    gx = np.exp(-0.5 * ((np.arange(ow, dtype=np.float32) - cx) / sigma) ** 2)
    return np.outer(gy, gx).astype(np.float32)
