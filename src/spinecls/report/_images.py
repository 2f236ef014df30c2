"""The report's PNG files: slices with their located points, and the graded crops.

Drawn with Pillow (a dependency of torchvision) as indexed-colour PNGs: the slice's grey
levels plus a few marker colours, one byte a pixel, which keeps a 256-pixel slice at
about ten kB. Pixels are the DICOM's as the model saw them
(:func:`spinecls.dicom.read_slice`, the transformer's ``normalize``) in
:data:`GREY_LEVELS` steps, shrunk to at most :data:`MAX_SIDE` pixels, never enlarged.
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

GREY_LEVELS = 64
"""Grey steps of a slice's PNG (6 bits; the palette's other entries are the marks').
Side by side with 256 steps the eye tells no difference on MR images: the rounding
(1.1/255 RMS) is about the size of their own noise or under it, mean SSIM 0.99. A slice
takes half the room it takes in 128 steps on the synthetic studies, a fifth less on real
ones (docs/report.md)."""

COMPRESS_LEVEL = 6
"""zlib's level for the slices' PNGs: 9 saves about 2 % more, in three times the time."""

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

# Palette entries 0..GREY_LEVELS - 1: grey levels; then black and the marker colours.
_BLACK, _WHITE = GREY_LEVELS, GREY_LEVELS - 1
_COLOUR = {name: GREY_LEVELS + 1 + k for k, (name, *_) in enumerate((*CONFIDENCE_BINS, UNKNOWN))}
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


def _palette() -> bytes:
    """The slices' palette: the grey levels, then black and the marker colours."""
    greys = [round(k * 255 / (GREY_LEVELS - 1)) for k in range(GREY_LEVELS)]
    colours = [(0, 0, 0)] + [
        tuple(int(c[k : k + 2], 16) for k in (1, 3, 5))
        for _, _, c, _ in (*CONFIDENCE_BINS, UNKNOWN)
    ]
    return bytes([v for g in greys for v in (g, g, g)] + [v for c in colours for v in c])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _save_indexed(image, out: Path) -> None:
    """Write an 8-bit image of palette entries as an indexed-colour PNG of :func:`_palette`.

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
        data[:8] + _chunk(b"IHDR", bytes(header)) + _chunk(b"PLTE", _palette()) + data[33:]
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


def _marker(draw, shape: str, x: float, y: float, colour: int) -> None:
    r = _RADIUS
    box = (x - r, y - r, x + r, y + r)
    for fill, width in ((_BLACK, 4), (colour, 2)):
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


def _text(draw, xy, text: str, colour: int, font) -> None:
    """``text`` in ``colour`` outlined in black. Pillow's own outline (``stroke_width``)
    blends palette entries as numbers, whatever ``fontmode``: drawn here instead."""
    x, y = xy
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if dx or dy:
                draw.text((x + dx, y + dy), text, fill=_BLACK, font=font)
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
    image = Image.fromarray(np.rint(grey * (GREY_LEVELS - 1)).astype(np.uint8))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    draw = ImageDraw.Draw(image)  # on palette entries: no anti-aliasing, no blending
    draw.fontmode = "1"
    font = _font(ImageFont)
    scaled = [((x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5) for x, y, *_ in marks]
    for k, (_, _, label, confidence) in enumerate(marks):
        name, _, _, shape = confidence_class(confidence)
        px, py = scaled[k]
        _marker(draw, shape, px, py, _COLOUR[name])
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        room = px - _RADIUS - 3 - right >= 0
        tx = px + _RADIUS + 3
        if (_label_left(scaled, k, bottom) and room) or (tx + right > image.width and room):
            tx = px - _RADIUS - 3 - right
        ty = min(max(py - (top + bottom) / 2, 0), image.height - bottom)
        _text(draw, (tx, ty), label, _COLOUR[name], font)
    if title:
        _text(draw, (3, 2), title, _WHITE, font)
    _save_indexed(image, out)
    return image.width, image.height, scale


def crop_png(crop: np.ndarray, out: Path, normalize) -> tuple[int, int]:
    """Write one channel of a transformer's output, at its own size; return (width, height)."""
    Image, _, _ = _pil()
    grey = _grey_levels(crop, normalize)
    Image.fromarray(np.rint(grey * 255).astype(np.uint8)).save(out, format="PNG", optimize=True)
    return grey.shape[1], grey.shape[0]
