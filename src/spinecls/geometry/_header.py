"""DICOM header values as the geometry reads them, and the headers of a series' files."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from .._utils.validation import listing

GEOMETRY_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
_HEADER_TAGS = [
    *GEOMETRY_TAGS,
    "Rows",
    "Columns",
    "InstanceNumber",
    "SliceThickness",
    "NumberOfFrames",
]


def is_absent(value) -> bool:
    """True for a header value that is missing or empty."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return len(value) == 0
    except TypeError:
        return False


def as_floats(value, n: int, what: str, source: str) -> tuple[float, ...]:
    """``n`` finite floats from a header ``value``; ValueError naming ``what`` and ``source``."""
    try:
        values = np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {what} must hold {n} numbers, got {value!r}") from exc
    if values.size != n or not np.isfinite(values).all():
        raise ValueError(f"{source}: {what} must hold {n} finite numbers, got {values.tolist()}")
    return tuple(float(v) for v in values)


def as_whole(value, what: str, source: str) -> int:
    """A whole number read from a header ``value``; ValueError naming ``what`` and ``source``."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {what} must be a whole number, got {value!r}") from exc
    if not number.is_integer():
        raise ValueError(f"{source}: {what} must be a whole number, got {value!r}")
    return int(number)


def read_header(path: Path) -> Dataset:
    """The DICOM header of ``path``, without its pixel data."""
    if not path.is_file():
        raise FileNotFoundError(f"DICOM file not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: not a readable DICOM file (the file is empty)")
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except (
        InvalidDicomError,
        OSError,
        EOFError,
        ValueError,
        KeyError,
        TypeError,
        zlib.error,  # a deflated file whose stream is cut or damaged
    ) as exc:
        raise ValueError(f"{path}: not a readable DICOM file ({exc})") from exc
    except struct.error as exc:
        raise ValueError(f"{path}: not a readable DICOM file (truncated: {exc})") from exc


def read_series_headers(
    paths, name: str | None, skipped: list | None = None
) -> tuple[str, list[tuple[Path, Dataset]], str]:
    """The name of a series, its files' headers, and why it lacks geometry ("" if it has it).

    The series lacks geometry when any file lacks ImagePositionPatient,
    ImageOrientationPatient or PixelSpacing; the reason counts and names those files.
    Given a list ``skipped``, a file whose header cannot be read is appended to it as
    ``(path, error)`` instead of raising; a ValueError still says when none can be read.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError(f"series {name}: no files")
    name = str(paths[0].parent) if name is None else str(name)
    headers = []
    for path in paths:
        try:
            headers.append((path, read_header(path)))
        except (OSError, ValueError) as exc:
            if skipped is None:
                raise
            skipped.append((os.fspath(path), exc))
    if not headers:
        raise ValueError(f"series {name}: none of its {len(paths)} files is readable DICOM")
    missing: dict[str, list[str]] = {}
    for path, ds in headers:
        for tag in GEOMETRY_TAGS:
            if is_absent(ds.get(tag)):
                missing.setdefault(tag, []).append(path.name)
    reason = "; ".join(
        f"no {tag} in {len(files)} of {len(headers)} files ({listing(files)})"
        for tag, files in missing.items()
    )
    return name, headers, reason


def instance_order(
    headers: list[tuple[Path, Dataset]], name: str, skipped: list | None = None
) -> list[tuple[int, str]]:
    """``(InstanceNumber, path)`` of each file, sorted: a series without geometry's order.

    Given a list ``skipped``, a file without a usable InstanceNumber is appended to it as
    ``(path, error)`` instead of raising.
    """
    numbered = []
    for path, ds in headers:
        try:
            if is_absent(ds.get("InstanceNumber")):
                raise ValueError(
                    f"{path}: no InstanceNumber, and series {name} lacks patient geometry "
                    "to order it by position"
                )
            numbered.append((as_whole(ds.InstanceNumber, "InstanceNumber", path), os.fspath(path)))
        except ValueError as exc:
            if skipped is None:
                raise
            skipped.append((os.fspath(path), exc))
    if not numbered:
        raise ValueError(f"series {name}: no file has a usable InstanceNumber")
    return sorted(numbered)
