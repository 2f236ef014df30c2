"""Images without DICOM: PNG or JPEG crops as the classifier's arrays, and their intensities.

:class:`~spinecls.DualHeadClassifier` takes any float array of shape ``(n_samples,
channels, height, width)``: crops cut by :class:`~spinecls.LumbarPatchTransformer` from
DICOM studies, or images that come without DICOM, such as PNG crops exported from a
viewer or a published data set. :func:`read_images` reads such files into that array
(grey levels, one size), and :class:`IntensityNormalizer` puts every image on one
intensity scale: MRI intensities have no unit, so two scanners (or two exports) give the
same tissue different values, and a network trained on one scale misreads another.

Pure numpy and OpenCV, as :mod:`spinecls.patches`: no torch, no DICOM.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from numbers import Real

import cv2
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import StrOptions

from ._utils.validation import check_images

__all__ = ["NORMALIZATIONS", "IntensityNormalizer", "read_images"]

NORMALIZATIONS = ("percentile", "minmax", "zscore")
"""The methods of :class:`IntensityNormalizer`."""


def read_images(paths: Iterable[str | os.PathLike], size: int | tuple[int, int] = 64) -> np.ndarray:
    """Read image files (PNG, JPEG, TIFF...) as one float32 array of grey crops.

    Colour images become grey (OpenCV's luminance), an alpha channel is dropped, 8- and
    16-bit values are kept as they are (normalise them with :class:`IntensityNormalizer`),
    and every image is resized to ``size`` (area interpolation when shrinking).

    Parameters
    ----------
    paths : iterable of str or path-like
        The image files, in the order of the rows of ``y``.
    size : int or (int, int), default=64
        Output side, or ``(height, width)``.

    Returns
    -------
    ndarray of shape (n_images, 1, height, width), float32
        What :meth:`DualHeadClassifier.fit` takes.

    Raises
    ------
    FileNotFoundError
        For a path that is not a file (the message names it).
    ValueError
        For a file OpenCV cannot decode, an empty ``paths`` or a bad ``size``.

    Examples
    --------
    >>> import cv2, numpy as np, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = cv2.imwrite(str(folder / "disc.png"), np.full((40, 60), 200, np.uint8))
    >>> X = read_images([folder / "disc.png"], size=32)
    >>> X.shape, X.dtype, round(float(X.max()), 3)
    ((1, 1, 32, 32), dtype('float32'), 200.0)
    """
    height, width = _size(size)
    images = []
    for path in paths:
        name = os.fspath(path)
        if not os.path.isfile(name):
            raise FileNotFoundError(f"image file not found: {name}")
        # imdecode rather than imread: it reads paths with non-ASCII characters too
        array = cv2.imdecode(np.fromfile(name, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise ValueError(f"{name} is not an image OpenCV can read (PNG, JPEG, TIFF, BMP...)")
        images.append(_resize(_grey(array, name), height, width))
    if not images:
        raise ValueError("paths is empty: give at least one image file")
    return np.stack(images)[:, None]


def _size(size) -> tuple[int, int]:
    sides = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(sides) != 2 or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in sides
    ):
        raise ValueError(f"size must be a positive int or (height, width); got {size!r}")
    return int(sides[0]), int(sides[1])


def _grey(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2GRAY)
    elif array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        raise ValueError(f"{name} has shape {array.shape}: expected a grey or colour image")
    return array.astype(np.float32)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape == (height, width):
        return image
    shrink = image.shape[0] >= height and image.shape[1] >= width
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


class IntensityNormalizer(TransformerMixin, BaseEstimator):
    """Put every image on one intensity scale, image by image and channel by channel.

    Stateless, like scikit-learn's ``Normalizer``: each image is normalised with its own
    statistics, so ``fit`` learns nothing and a crop from another scanner is treated as
    the training crops were. Use it in a Pipeline before
    :class:`~spinecls.DualHeadClassifier` on images that come without DICOM
    (:func:`read_images`); :class:`~spinecls.LumbarPatchTransformer` normalises DICOM
    slices itself (its ``normalize``).

    Parameters
    ----------
    method : {"percentile", "minmax", "zscore"}, default="percentile"
        ``"percentile"``: the image's ``percentiles`` map to 0 and 1, values beyond are
        clipped (robust to a few very bright pixels, such as fat or a flow artefact);
        ``"minmax"``: its minimum and maximum map to 0 and 1; ``"zscore"``: mean 0 and
        standard deviation 1. The first two give values in [0, 1], the range
        albumentations' intensity augmentations expect (``augment="mri"`` or
        ``"study"``); z-scores suit a classifier trained without them.
    percentiles : (float, float), default=(1.0, 99.0)
        The low and high percentiles of ``"percentile"`` (those
        :class:`~spinecls.LumbarPatchTransformer` uses on a DICOM slice).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(128.0, dtype=np.float32).reshape(2, 1, 8, 8)
    >>> Z = IntensityNormalizer(method="minmax").fit_transform(X)
    >>> float(Z[0].min()), float(Z[0].max()), float(Z[1].min()), float(Z[1].max())
    (0.0, 1.0, 0.0, 1.0)
    """

    _parameter_constraints: dict = {
        "method": [StrOptions(set(NORMALIZATIONS))],
        "percentiles": ["array-like"],
    }

    def __init__(self, method: str = "percentile", percentiles=(1.0, 99.0)):
        self.method = method
        self.percentiles = percentiles

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags

    def fit(self, X, y=None):
        """Check the parameters; nothing is learnt.

        Parameters
        ----------
        X : ndarray of shape (n_samples, channels, height, width)
            Ignored.
        y : None
            Ignored.

        Returns
        -------
        self
        """
        self._check()
        return self

    def _check(self) -> tuple[float, float]:
        self._validate_params()
        values = np.asarray(self.percentiles, dtype=object).ravel().tolist()
        numbers = [q for q in values if isinstance(q, Real) and not isinstance(q, bool)]
        if len(values) != 2 or len(numbers) != 2 or not 0 <= numbers[0] < numbers[1] <= 100:
            raise ValueError(
                f"percentiles must be two numbers 0 <= low < high <= 100; got {self.percentiles!r}"
            )
        return float(numbers[0]), float(numbers[1])

    def transform(self, X) -> np.ndarray:
        """Normalised copies of the images.

        Parameters
        ----------
        X : array-like of shape (n_samples, channels, height, width)

        Returns
        -------
        ndarray of the same shape, float32
            A constant image becomes zeros.
        """
        low, high = self._check()
        X = np.asarray(X)
        if X.dtype.kind in "uib":  # 8- or 16-bit grey levels as read from image files
            X = X.astype(np.float32)
        X = check_images(X, None).astype(np.float32, copy=True)
        if not np.isfinite(X).all():
            raise ValueError("X has NaN or infinite values")
        axes = (2, 3)
        if self.method == "zscore":
            centre = X.mean(axis=axes, keepdims=True)
            scale = X.std(axis=axes, keepdims=True)
        else:
            if self.method == "percentile":
                lo, hi = np.percentile(X, [low, high], axis=axes, keepdims=True)
            else:
                lo, hi = X.min(axis=axes, keepdims=True), X.max(axis=axes, keepdims=True)
            centre, scale = lo, hi - lo
        flat = scale <= 0
        out = (X - centre) / np.where(flat, 1.0, scale)
        out[np.broadcast_to(flat, out.shape)] = 0.0
        if self.method == "percentile":
            np.clip(out, 0.0, 1.0, out=out)
        return out.astype(np.float32, copy=False)
