"""The report's PNG files: slices with their located points, and the graded crops.

Drawn with Pillow (a dependency of torchvision) as indexed-colour PNGs: the slice's grey
levels plus a few marker colours, one byte a pixel. Pixels are the DICOM's as the model
saw them (:func:`spinecls.dicom.read_slice`, the transformer's ``normalize``), shrunk to
at most :data:`MAX_SIDE` pixels, never enlarged, in as many grey steps as the eye can
tell apart on them (:func:`grey_levels`): a slice's noise, not its size, makes most of
its file.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..dicom import read_slice

MAX_SIDE = 256
"""The longest side of a sagittal slice in the report, in pixels (a larger one is shrunk)."""

AXIAL_MAX_SIDE = 160
"""The longest side of an axial slice (five of them per series: one per level)."""

MAX_GREY_LEVELS = 64
"""The most grey steps of a slice's PNG (6 bits), those of a slice without visible noise.
Side by side with 256 steps the eye tells no difference on MR images (the rounding adds
1.1/255 RMS; mean SSIM 0.99 on real slices), and a slice takes a fifth less room than
in 128 steps."""

MIN_GREY_LEVELS = 16
"""The fewest grey steps of a slice's PNG, however noisy the slice."""

COMPRESS_LEVEL = 6
"""zlib's level for the slices' PNGs: 9 (Pillow's ``optimize``) saves 0 to 2 % more on
MR slices, in more time."""

CONFIDENCE_BINS: tuple[tuple[str, float, str, str], ...] = (
    ("high", 0.8, "#56B4E9", "circle"),
    ("medium", 0.5, "#F0E442", "square"),
    ("low", 0.0, "#D55E00", "cross"),
)
"""(name, lower bound, colour, marker) of the confidence classes, highest first. The
colours are Okabe and Ito's palette, told apart with any colour vision and on grey; the
marker shapes tell them apart without colour."""

UNKNOWN = ("not given", math.nan, "#CC79A7", "diamond")
"""Points without a confidence (labelled coordinates)."""

_MARKS = (*CONFIDENCE_BINS, UNKNOWN)
_RADIUS = 5
_FONT_SIZE = 11


def _pil():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as exc:  # pragma: no cover - torchvision installs Pillow
        raise ImportError(
            "spinecls.report draws its images with Pillow: pip install pillow"
        ) from exc
    return Image, ImageDraw, ImageFont


def confidence_class(confidence: float) -> tuple[str, float, str, str]:
    """The :data:`CONFIDENCE_BINS` entry of a confidence (:data:`UNKNOWN` for NaN)."""
    if not math.isfinite(confidence):
        return UNKNOWN
    return next(b for b in CONFIDENCE_BINS if confidence >= b[1])


def _palette(levels: int) -> bytes:
    """A slice's palette: ``levels`` grey levels, then black and the marker colours."""
    greys = [round(k * 255 / (levels - 1)) for k in range(levels)]
    colours = [(0, 0, 0)] + [tuple(int(c[k : k + 2], 16) for k in (1, 3, 5)) for *_, c, _ in _MARKS]
    return bytes([v for g in greys for v in (g, g, g)] + [v for c in colours for v in c])


class _Inks:
    """The palette entries a slice in ``levels`` grey steps is drawn with: the greys
    ``0 .. levels - 1`` (white the last), then black and one colour per confidence class."""

    def __init__(self, levels: int):
        self.levels, self.white, self.black = levels, levels - 1, levels
        self.colour = {name: levels + 1 + k for k, (name, *_) in enumerate(_MARKS)}


def noise_sigma(grey: np.ndarray, block: int = 16) -> float:
    """The standard deviation of an image's noise, in the units of its values.

    Robust to the image's edges and its flat (clipped) parts. The 5-point Laplacian (4
    times a pixel less its four neighbours) is near 0 on smooth anatomy and, on white
    noise, of ``sqrt(20)`` times the noise's standard deviation, which its median absolute
    value over 0.6745 estimates. That estimate is made in each ``block`` x ``block``
    square, over the pixels whose neighbourhood is not clipped at 0 or 1 (squares with
    fewer than half such pixels are left out), and the lower quartile of the squares is
    returned: it leaves out the squares an edge crosses. 0 when no square is left.
    """
    grey = np.asarray(grey, dtype=np.float64)
    if min(grey.shape) < block + 2:
        block = min(grey.shape) - 2
    if block < 4:
        return 0.0
    centre = grey[1:-1, 1:-1]
    around = (grey[:-2, 1:-1], grey[2:, 1:-1], grey[1:-1, :-2], grey[1:-1, 2:])
    laplacian = np.abs(4 * centre - sum(around))
    inside = (centre > 0) & (centre < 1)
    for a in around:
        inside &= (a > 0) & (a < 1)
    rows, cols = (n // block * block for n in laplacian.shape)

    def squares(a):
        a = a[:rows, :cols].reshape(rows // block, block, cols // block, block)
        return a.transpose(0, 2, 1, 3).reshape(-1, block * block)

    # Each square's median over its pixels inside: those outside sort last.
    values = np.sort(np.where(squares(inside), squares(laplacian), np.inf), axis=1)
    counts = squares(inside).sum(axis=1)
    values, counts = values[counts * 2 >= block * block], counts[counts * 2 >= block * block]
    if not len(counts):
        return 0.0
    at = np.arange(len(counts))
    medians = (values[at, (counts - 1) // 2] + values[at, counts // 2]) / 2
    return float(np.percentile(medians, 25) / 0.6745 / math.sqrt(20))


def grey_levels(grey: np.ndarray) -> int:
    """How many grey steps a slice (values in 0..1, as shown) is drawn in.

    The fewest steps whose step is no larger than the slice's own noise
    (:func:`noise_sigma`), between :data:`MIN_GREY_LEVELS` and :data:`MAX_GREY_LEVELS`.
    The noise then dithers the steps: no band or contour shows where the anatomy's grey
    changes slowly, and the rounding (a step over ``sqrt(12)`` RMS) adds about 4 % to
    the noise the reader sees. The fewer the steps, the smaller the file: the noise makes
    most of it, and each halving of the steps saves about a bit a pixel.
    """
    sigma = noise_sigma(grey)
    if not sigma > 1 / (MAX_GREY_LEVELS - 1):
        return MAX_GREY_LEVELS
    return max(MIN_GREY_LEVELS, 1 + math.ceil(1 / sigma))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _save_indexed(image, out: Path, levels: int) -> None:
    """Write an 8-bit image of palette entries as an indexed-colour PNG of
    :func:`_palette` (``levels`` greys).

    Pillow filters the rows of a greyscale PNG before compressing them, but not those of
    a palette PNG (the PNG specification allows both): on MR noise the filtered file is a
    fifth smaller. Both hold the same one byte a pixel, so the entries are encoded as a
    greyscale PNG whose header is then switched to indexed colour, the palette after it.
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=COMPRESS_LEVEL)
    data = buffer.getvalue()
    # Signature (8 bytes), then IHDR: length, type, 13 bytes of data, CRC; the data's
    # bytes 8 and 9 are the bit depth and the colour type (0: greyscale, 3: indexed).
    header = bytearray(data[16:29])
    if data[12:16] != b"IHDR" or header[8:10] != b"\x08\x00":
        raise RuntimeError("Pillow did not write an 8-bit greyscale PNG")  # pragma: no cover
    header[9] = 3
    out.write_bytes(
        data[:8] + _chunk(b"IHDR", bytes(header)) + _chunk(b"PLTE", _palette(levels)) + data[33:]
    )


def _grey_levels(image: np.ndarray, normalize) -> np.ndarray:
    """Image values to 0..1 for display: as they are when normalised, else their range."""
    image = np.asarray(image, dtype=np.float32)
    if normalize is None:
        low, high = float(image.min()), float(image.max())
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return np.clip(image, 0.0, 1.0)


def _font(ImageFont):
    try:
        return ImageFont.load_default(size=_FONT_SIZE)
    except (TypeError, OSError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _marker(draw, shape: str, x: float, y: float, colour: int, black: int) -> None:
    r = _RADIUS
    box = (x - r, y - r, x + r, y + r)
    for fill, width in ((black, 4), (colour, 2)):
        if shape == "circle":
            draw.ellipse(box, outline=fill, width=width)
        elif shape == "square":
            draw.rectangle(box, outline=fill, width=width)
        elif shape == "diamond":
            draw.polygon(
                [(x, y - r), (x + r, y), (x, y + r), (x - r, y)], outline=fill, width=width
            )
        else:
            draw.line([(x - r, y - r), (x + r, y + r)], fill=fill, width=width)
            draw.line([(x - r, y + r), (x + r, y - r)], fill=fill, width=width)


def _text(draw, xy, text: str, colour: int, black: int, font) -> None:
    """``text`` in ``colour`` outlined in black. Pillow's own outline (``stroke_width``)
    blends palette entries as numbers, whatever ``fontmode``: drawn here instead."""
    x, y = xy
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if dx or dy:
                draw.text((x + dx, y + dy), text, fill=black, font=font)
    draw.text((x, y), text, fill=colour, font=font)


def _label_left(marks, k: int, height: float) -> bool:
    """Whether mark k's label goes to its left: other marks beside it lie to its right."""
    x, y = marks[k][:2]
    beside = [m[0] for j, m in enumerate(marks) if j != k and abs(m[1] - y) < height]
    return bool(beside) and float(np.mean(beside)) > x


def slice_png(path, marks, out: Path, normalize, max_side: int = MAX_SIDE, title: str = ""):
    """Write the slice at ``path`` with its marks to ``out``; return (width, height, scale).

    Parameters
    ----------
    path : path-like
        The DICOM file.
    marks : list of (x, y, label, confidence)
        Points in the slice's original pixels.
    out : pathlib.Path
        The PNG to write.
    normalize : {"percentile", "minmax", None}
        The transformer's normalisation.
    max_side : int, default=MAX_SIDE
        A slice larger than this is shrunk to fit (area averaging); a smaller one is
        kept at its size.
    title : str, default=""
        Written in the top left corner (an axial slice's level).

    Raises
    ------
    FileNotFoundError, ValueError, spinecls.dicom.MissingCodecError
        As :func:`spinecls.dicom.read_slice`.
    """
    Image, ImageDraw, ImageFont = _pil()
    grey = _grey_levels(read_slice(path).image(normalize), normalize)
    height, width = grey.shape
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        shown = Image.fromarray(grey.astype(np.float32))  # mode "F"
        grey = np.clip(np.asarray(shown.resize(size, Image.Resampling.BOX)), 0.0, 1.0)
    inks = _Inks(grey_levels(grey))
    image = Image.fromarray(np.rint(grey * (inks.levels - 1)).astype(np.uint8))
    draw = ImageDraw.Draw(image)  # on palette entries: no anti-aliasing, no blending
    draw.fontmode = "1"
    font = _font(ImageFont)
    scaled = [((x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5) for x, y, *_ in marks]
    for k, (_, _, label, confidence) in enumerate(marks):
        name, _, _, shape = confidence_class(confidence)
        px, py = scaled[k]
        _marker(draw, shape, px, py, inks.colour[name], inks.black)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        room = px - _RADIUS - 3 - right >= 0
        tx = px + _RADIUS + 3
        if (_label_left(scaled, k, bottom) and room) or (tx + right > image.width and room):
            tx = px - _RADIUS - 3 - right
        ty = min(max(py - (top + bottom) / 2, 0), image.height - bottom)
        _text(draw, (tx, ty), label, inks.colour[name], inks.black, font)
    if title:
        _text(draw, (3, 2), title, inks.white, inks.black, font)
    _save_indexed(image, out, inks.levels)
    return image.width, image.height, scale


def crop_png(crop: np.ndarray, out: Path, normalize) -> tuple[int, int]:
    """Write one channel of a transformer's output, at its own size; return (width, height)."""
    Image, _, _ = _pil()
    grey = _grey_levels(crop, normalize)
    Image.fromarray(np.rint(grey * 255).astype(np.uint8)).save(out, format="PNG", optimize=True)
    return grey.shape[1], grey.shape[0]
