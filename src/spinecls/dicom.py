"""One DICOM slice to a float image: modality LUT, MONOCHROME1, codecs.

:func:`read_slice` decodes a file once into its stored pixels plus the few numbers
needed to turn any region of it into real or normalised values
(:meth:`DicomSlice.window`). Percentiles come exactly from a histogram of the integer
pixels, which costs a fraction of a sort. A file that cannot be decoded raises
:class:`MissingCodecError` when no installed decoder handles its transfer syntax and
:class:`PixelDataError` when one does but fails on the file. The order of a series'
slices is :mod:`spinecls.geometry`'s.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

__all__ = [
    "NORMALIZE",
    "DicomSlice",
    "MissingCodecError",
    "PixelDataError",
    "UnreadableFileWarning",
    "UnreadableSeriesError",
    "exact_percentiles",
    "fail_on_unreadable",
    "read_slice",
]

NORMALIZE = ("percentile", "minmax", None)
"""Accepted ``normalize`` values."""

PERCENTILES = (1.0, 99.0)
# Histogram percentiles need one bin per value: beyond this range use a partition.
_MAX_HISTOGRAM_BINS = 1 << 20


class MissingCodecError(RuntimeError):
    """The pixel data is compressed with a transfer syntax no installed plugin decodes."""


class PixelDataError(ValueError):
    """A decoder for the file's transfer syntax is installed but failed on its pixel data
    (corrupt or truncated compressed data)."""


class UnreadableFileWarning(UserWarning):
    """A DICOM file (or a whole series) could not be read or used, and was skipped.

    Issued once per file by the readers that grade what they can rather than fail (the
    level localizer's :func:`spinecls.inference.predict_studies`); the message names the
    file and the cause.

    Attributes
    ----------
    path : str
        The file (or series folder) skipped.
    error : Exception
        Why: the error reading it raised. :func:`fail_on_unreadable` raises it.
    """

    def __init__(self, message: str, path: str | os.PathLike = "", error: Exception | None = None):
        super().__init__(message)
        self.path = os.fspath(path)
        self.error = ValueError(message) if error is None else error

    def __reduce__(self):
        return type(self), (self.args[0], self.path, self.error)

    @classmethod
    def skipping(cls, path: str | os.PathLike, error: Exception, what: str = "the slice"):
        """The warning for ``path`` skipped because of ``error``, its message naming both."""
        path = os.fspath(path)
        text = _one_line(error) or type(error).__name__
        if text.startswith(f"{path}: "):
            text = text[len(path) + 2 :]
        return cls(f"{path}: {text}; {what} is skipped", path, error)


class UnreadableSeriesError(ValueError):
    """No file of a series could be read (each was skipped with an
    :class:`UnreadableFileWarning`).

    Attributes
    ----------
    series_dir : str
        The series folder.
    """

    def __init__(self, message: str, series_dir: str | os.PathLike = ""):
        super().__init__(message)
        self.series_dir = os.fspath(series_dir)

    def __reduce__(self):
        return type(self), (self.args[0], self.series_dir)


@contextlib.contextmanager
def fail_on_unreadable(strict: bool = True):
    """Within the block, a file that would be skipped raises the error that made it unreadable.

    Readers that skip unreadable files warn with :class:`UnreadableFileWarning`; this
    turns the first such warning into its error (e.g. the ValueError naming the file),
    the way ``warnings.simplefilter("error", UnreadableFileWarning)`` would, but raising
    the original error rather than the warning.

    Parameters
    ----------
    strict : bool, default=True
        False: the block runs as it is (files are skipped with a warning).
    """
    if not strict:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreadableFileWarning)
        try:
            yield
        except UnreadableFileWarning as exc:
            raise exc.error from None


def exact_percentiles(pixels: np.ndarray, q) -> np.ndarray:
    """Percentiles of an image, equal to ``np.percentile(pixels, q)`` (linear method).

    Integer images are counted in a histogram (one pass, no sort); other images fall
    back to :func:`numpy.percentile`.

    Parameters
    ----------
    pixels : ndarray
        Any shape.
    q : float or sequence of float
        Percentiles in [0, 100].

    Returns
    -------
    ndarray of float64, one value per percentile.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 2], [3, 10]], dtype=np.uint16)
    >>> exact_percentiles(a, [0, 50, 100]).tolist()
    [1.0, 2.5, 10.0]
    """
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    flat = np.asarray(pixels).ravel()
    if flat.size == 0:
        raise ValueError("cannot take percentiles of an empty image")
    if flat.dtype.kind not in "ui":
        return np.percentile(flat, q)
    low, high = int(flat.min()), int(flat.max())
    if high - low >= _MAX_HISTOGRAM_BINS:
        return np.percentile(flat, q)
    # Non-negative values are counted as they are (the empty bins below the minimum
    # cost less than a shifted copy); negative ones are shifted first.
    offset = min(low, 0)
    counts = np.bincount(flat if offset == 0 else flat.astype(np.int64) - offset)
    cumulative = np.cumsum(counts)
    rank = q / 100.0 * (flat.size - 1)
    below = np.floor(rank)
    # the value at 0-based rank r is the first v with cumulative[v] > r
    v_below = np.searchsorted(cumulative, below, side="right")
    v_above = np.searchsorted(cumulative, np.minimum(below + 1, flat.size - 1), side="right")
    return offset + v_below + (rank - below) * (v_above - v_below)


@dataclass
class DicomSlice:
    """A decoded slice: stored pixels and what turns them into image values.

    Attributes
    ----------
    pixels : ndarray of shape (rows, columns)
        Stored values, as decoded (may be a read-only memory map).
    slope, intercept : float
        Modality LUT (RescaleSlope, RescaleIntercept).
    monochrome1 : bool
        True when low values display bright; images are inverted to MONOCHROME2.
    low, high : float
        Stored minimum and maximum.
    p_low, p_high : float
        Stored 1st and 99th percentiles.
    """

    pixels: np.ndarray
    slope: float
    intercept: float
    monochrome1: bool
    low: float
    high: float
    p_low: float
    p_high: float

    def _affine(self, normalize):
        """(a, b, clip) such that the image is ``a * stored + b``."""
        if normalize is None:
            a, b = self.slope, self.intercept
            if self.monochrome1:
                # real values mirrored onto their own range: r' = (r_min + r_max) - r
                a, b = -a, (self.slope * (self.low + self.high) + 2 * self.intercept) - b
            return a, b, False
        if normalize == "percentile":
            lo, hi = self.p_low, self.p_high
        elif normalize == "minmax":
            lo, hi = self.low, self.high
        else:
            raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
        # Normalisation to [0, 1] only depends on the direction of the modality LUT
        # and of the photometric interpretation: percentiles commute with affine maps.
        if (self.slope < 0) != self.monochrome1:
            lo, hi = hi, lo
        if hi == lo:
            return 0.0, 0.0, True
        a = 1.0 / (hi - lo)
        return a, -lo * a, True

    def window(self, top: int, left: int, height: int, width: int, normalize="percentile"):
        """Image values of a window, zero where the window leaves the slice.

        Parameters
        ----------
        top, left : int
            Window origin in pixels (may be negative).
        height, width : int
            Window size.
        normalize : {"percentile", "minmax", None}
            ``"percentile"``: the slice's 1st-99th percentiles to [0, 1], clipped;
            ``"minmax"``: its range to [0, 1]; None: modality-LUT values. MONOCHROME1
            is inverted in every case.

        Returns
        -------
        ndarray of shape (height, width), float32.
        """
        a, b, clip = self._affine(normalize)
        out = np.zeros((height, width), np.float32)
        rows, cols = self.pixels.shape
        r0, r1 = max(top, 0), min(top + height, rows)
        c0, c1 = max(left, 0), min(left + width, cols)
        if r0 < r1 and c0 < c1:
            values = np.asarray(self.pixels[r0:r1, c0:c1], dtype=np.float32) * np.float32(a)
            values += np.float32(b)
            if clip:
                np.clip(values, 0.0, 1.0, out=values)
            out[r0 - top : r1 - top, c0 - left : c1 - left] = values
        return out

    def image(self, normalize="percentile") -> np.ndarray:
        """The whole slice as float32 (see :meth:`window`)."""
        return self.window(0, 0, *self.pixels.shape, normalize=normalize)

    def is_constant(self, normalize="percentile") -> bool:
        """Whether every pixel of the slice has the same value under ``normalize``.

        Parameters
        ----------
        normalize : {"percentile", "minmax", None}
            As :meth:`window`.

        Returns
        -------
        bool
            True for a constant (or 1 x 1) image, and under ``"percentile"`` also when
            the 1st and 99th percentiles are equal: the normalisation then has no range
            and maps the whole slice to 0.
        """
        a, _, _ = self._affine(normalize)
        return a == 0 or self.low == self.high


def _transfer_syntax(path) -> UID | None:
    """The file's transfer syntax, or None when its file meta cannot be read."""
    try:
        return read_file_meta_info(path).TransferSyntaxUID
    except Exception:  # noqa: BLE001 - the caller reports the decoding error instead
        return None


def _one_line(exc: BaseException) -> str:
    """pydicom's multi-line message (one line per failed plugin) on one line."""
    text = ""
    for line in filter(None, (line.strip() for line in str(exc).splitlines())):
        text += line if not text else (" " if text.endswith(":") else "; ") + line
    return text


def _decoding_error(path: Path, exc: Exception) -> Exception:
    """What went wrong when pydicom raised ``exc`` decoding the pixel data of ``path``.

    pydicom raises RuntimeError both when no plugin for the transfer syntax is
    installed and when every installed one failed: its decoder's ``is_available``
    tells which.
    """
    syntax = _transfer_syntax(path)
    if syntax is None:
        return ValueError(f"{path}: not a readable DICOM file ({_one_line(exc)})")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        return MissingCodecError(
            f"{path}: cannot decode pixel data compressed as {syntax.name} ({syntax}): "
            "pydicom has no decoder for this transfer syntax, with or without the codecs "
            "extra; convert the file to an uncompressed transfer syntax"
        )
    if not decoder.is_available:
        return MissingCodecError(
            f"{path}: cannot decode pixel data compressed as {syntax.name} ({syntax}): no "
            f"installed plugin handles it ({'; '.join(decoder.missing_dependencies)}). "
            "Install the codecs extra: pip install 'spinecls[codecs]'"
        )
    return PixelDataError(
        f"{path}: corrupt or truncated pixel data: the {syntax.name} decoder failed "
        f"({_one_line(exc)})"
    )


def _lut_value(path: Path, ds: Dataset, tag: str, default: float) -> float:
    """A modality LUT value of the header (``default`` when absent, and for a zero slope),
    or a ValueError naming the file when it is not a finite number."""
    value = "unreadable"
    try:
        value = ds.get(tag)
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{path}: {tag} must be a finite number, got {value!r}")
    return number if number or tag != "RescaleSlope" else default


def read_slice(path: str | os.PathLike) -> DicomSlice:
    """Decode one single-frame greyscale DICOM file.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    DicomSlice

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a readable DICOM image (not DICOM, truncated, no pixel data,
        multi-frame or colour, a RescaleSlope or RescaleIntercept that is not a finite
        number), naming the path.
    PixelDataError
        A ValueError: the decoder of its transfer syntax is installed but failed on
        the file (corrupt or truncated compressed data); the message names the file
        and gives the decoder's.
    MissingCodecError
        If no installed decoder handles its transfer syntax; the message names the
        transfer syntax and the ``codecs`` extra.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> s = read_slice(get_testdata_file("MR_small.dcm"))
    >>> s.pixels.shape, s.image().dtype, float(s.image().max())
    ((64, 64), dtype('float32'), 1.0)
    """
    path = Path(path)
    # pydicom.pixels.pixel_array reads only the pixel-related elements (group 0x0028
    # into ``ds``): about a third faster than dcmread(...).pixel_array.
    ds = Dataset()
    try:
        try:
            pixels = pixel_array(os.fspath(path), ds_out=ds)
        except AttributeError:
            # pixel_array reads the stored bytes as they are; a deflated data set must
            # be inflated first, which dcmread does (checked only on this failure, as
            # reading the file meta of every file would cost a fifth of a decode).
            if _transfer_syntax(path) != DeflatedExplicitVRLittleEndian:
                raise
            ds = pydicom.dcmread(path)
            pixels = pixel_array(ds)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"DICOM file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ValueError(f"{path}: not a readable DICOM file (a directory)") from exc
    except (RuntimeError, NotImplementedError) as exc:
        raise _decoding_error(path, exc) from exc
    except (
        InvalidDicomError,
        OSError,
        EOFError,
        ValueError,
        AttributeError,
        KeyError,
        TypeError,
        struct.error,
        zlib.error,
    ) as exc:
        raise ValueError(f"{path}: not a readable DICOM file ({exc})") from exc
    if pixels.ndim != 2:
        raise ValueError(
            f"{path}: expected a single-frame greyscale image, got pixel data of shape "
            f"{pixels.shape}"
        )
    if pixels.dtype.byteorder == ">":
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    slope, intercept = (
        _lut_value(path, ds, tag, default)
        for tag, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0))
    )
    low, p_low, p_high, high = (
        float(v) for v in exact_percentiles(pixels, [0.0, *PERCENTILES, 100.0])
    )
    return DicomSlice(
        pixels=pixels,
        slope=slope,
        intercept=intercept,
        monochrome1=ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1",
        low=low,
        high=high,
        p_low=p_low,
        p_high=p_high,
    )
