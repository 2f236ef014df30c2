"""The transformer's engine: rows grouped by series, decoded once, cut into patches.

:func:`extract` runs series in joblib workers (:class:`SeriesExtractor`), keeps each
row's error for the caller, and caches decoded series and whole calls in ``memory``;
:func:`report` then raises or warns, in the caller's process, about what went wrong.
The patch geometry itself is :mod:`spinecls.patches`.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pydicom
from joblib import Parallel, delayed, effective_n_jobs
from tqdm.auto import tqdm

from .. import dicom, patches
from .._utils.validation import listing
from ..geometry import GeometryWarning, series_order
from ._cache import check_cache, decoded_series, folder_stamps, sorted_series, stamp

PARALLEL_MIN_FILES = 1000
"""Calls over fewer DICOM files run in this process whatever ``n_jobs`` says.

Below it, handing work to other processes and shipping the patches back costs more than
the second process saves (measured with ``benchmarks/bench_transform.py``).
"""
# A parallel call's tasks: enough per worker to even out series of different lengths,
# each with enough files that its decoding outweighs shipping it.
_TASKS_PER_WORKER = 4
_TASK_MIN_FILES = 50
# Each listed failure is a whole error message: the warning names more rows than
# other messages do, so that most broken files are named in one run.
_FAILURES_LISTED = 20


class PatchExtractionWarning(UserWarning):
    """Patches that hold no image: rows whose DICOM files could not be read (all-zero
    patches), coordinates outside their image, or constant images."""


@dataclass(frozen=True)
class _Normalised:
    """A decoded slice as :mod:`spinecls.patches` reads it: normalised window by window."""

    source: dicom.DicomSlice
    normalize: str | None

    @property
    def shape(self) -> tuple[int, int]:
        return self.source.pixels.shape

    @property
    def constant(self) -> bool:
        return self.source.is_constant(self.normalize)

    def window(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        return self.source.window(top, left, height, width, self.normalize)


@dataclass
class Notes:
    """What the caller warns about, gathered in the workers (where warnings would be lost).

    Attributes
    ----------
    unordered : dict
        Series folder -> the GeometryWarning's message of a series ordered by
        InstanceNumber (2.5D only).
    outside : dict
        Row position -> its coordinate, image size and file, for coordinates off the
        image (``0 <= x < Columns``, ``0 <= y < Rows`` fails).
    constant : set
        Files whose image is constant under the normalisation: their patches are too.
    """

    unordered: dict = field(default_factory=dict)
    outside: dict = field(default_factory=dict)
    constant: set = field(default_factory=set)

    def update(self, other: Notes) -> None:
        self.unordered.update(other.unordered)
        self.outside.update(other.outside)
        self.constant |= other.constant

    def __bool__(self) -> bool:
        return bool(self.unordered or self.outside or self.constant)


class SeriesExtractor:
    """Patch extraction for one series at a time (runs in joblib workers).

    ``params``: ``patch_size``, ``patch_size_mm``, ``output_size``, ``mode``, ``slices``,
    ``normalize``, ``blur`` and ``memory``, validated by the transformer.
    """

    def __init__(self, params: dict):
        self.__dict__.update(params)
        memory = check_cache(params["memory"])
        self.order_cached = None if memory is None else memory.cache(sorted_series)
        self.decode_cached = None if memory is None else memory.cache(decoded_series)

    def _order(self, folder: str) -> tuple[tuple[str, ...], str | None]:
        """The series' files in order, and the GeometryWarning's message if any."""
        entries = sorted(
            e.path for e in os.scandir(folder) if e.is_file() and e.name.endswith(".dcm")
        )
        if self.order_cached is None:  # no cache: the stamps would key nothing
            return series_order(entries)
        return self.order_cached(tuple(stamp(p) for p in entries))

    def _decode(self, paths: list[str]) -> dict[str, dicom.DicomSlice | Exception]:
        if self.decode_cached is not None:
            try:
                # one cache entry per series: a hit costs one lookup for all its slices
                return self.decode_cached(tuple(stamp(p) for p in sorted(paths)))
            except Exception:  # noqa: BLE001 - redone file by file below to keep each error
                pass
        decoded: dict[str, dicom.DicomSlice | Exception] = {}
        for path in paths:
            try:
                decoded[path] = dicom.read_slice(path)
            except Exception as exc:  # noqa: BLE001 - reported per row by the caller
                decoded[path] = exc
        return decoded

    def _channels(self, folder: str, rows: list[tuple], notes: Notes) -> tuple[dict, list]:
        """Each row's slices (2.5D neighbours in slice order), or its error."""
        half = self.slices // 2
        if not half:
            return {position: [path] for position, path, *_ in rows}, []
        try:
            order, unordered = self._order(folder)
        except Exception as exc:  # noqa: BLE001 - every row of the series gets it
            return {}, [(position, exc) for position, *_ in rows]
        if unordered is not None:
            notes.unordered[folder] = unordered
        channels, errors = {}, []
        for position, path, _, _, ids in rows:
            if path not in order:
                errors.append((position, missing(path, ids)))
                continue
            i = order.index(path)
            picked = [min(max(i + k, 0), len(order) - 1) for k in range(-half, half + 1)]
            channels[position] = [order[k] for k in picked]
        return channels, errors

    def __call__(self, folder: str, rows: list[tuple]) -> tuple[list, list, Notes]:
        """Patches for the rows of one series: ``rows`` = (position, path, x, y, ids)."""
        notes = Notes()
        channels, errors = self._channels(folder, rows, notes)
        decoded = self._decode(sorted({p for paths in channels.values() for p in paths}))
        images = {
            p: _Normalised(s, self.normalize)
            for p, s in decoded.items()
            if not isinstance(s, Exception)
        }
        whole: dict[str, np.ndarray] = {}  # marker mode: each slice resized once
        spacings: dict[str, tuple[float, float]] = {}  # patch_size_mm: one header read a file
        results = []
        for position, path, x, y, ids in rows:
            if position not in channels:
                continue
            bad = next((decoded[p] for p in channels[position] if p not in images), None)
            if bad is not None:
                if isinstance(bad, FileNotFoundError):
                    bad = missing(path, ids)
                errors.append((position, bad))
                continue
            n_rows, n_columns = images[path].shape
            if not (0 <= x < n_columns and 0 <= y < n_rows):
                notes.outside[position] = (x, y, n_columns, n_rows, path)
            notes.constant.update(p for p in channels[position] if images[p].constant)
            if self.mode == "crop" and self.patch_size_mm is not None:
                try:
                    if path not in spacings:
                        spacings[path] = pixel_spacing(path)
                    # The 2.5D neighbours share the labelled slice's pixel grid, in which
                    # (x, y) is given: all channels take its spacing.
                    planes = [
                        patches.crop_mm(
                            images[p],
                            x,
                            y,
                            self.patch_size_mm,
                            spacings[path],
                            self.output_size,
                            self.blur,
                        )
                        for p in channels[position]
                    ]
                except Exception as exc:  # noqa: BLE001 - reported per row by the caller
                    errors.append((position, exc))
                    continue
            elif self.mode == "crop":
                planes = [
                    patches.crop(images[p], x, y, self.patch_size, self.output_size, self.blur)
                    for p in channels[position]
                ]
            else:
                for p in channels[position]:
                    if p not in whole:
                        whole[p] = patches.whole(images[p], self.output_size, self.blur)
                planes = [whole[p] for p in channels[position]]
                planes.append(patches.marker(images[path].shape, x, y, self.output_size))
            results.append((position, np.stack(planes)))
        return results, errors, notes

    def many(self, series: list[tuple[str, list]]) -> tuple[list, list, Notes]:
        """:meth:`__call__` over several series, results concatenated."""
        found, errors, notes = [], [], Notes()
        for folder, rows in series:
            p, e, n = self(folder, rows)
            found.extend(p)
            errors.extend(e)
            notes.update(n)
        return found, errors, notes


def pixel_spacing(path: str) -> tuple[float, float]:
    """PixelSpacing (row spacing, column spacing) in mm, read from the header only.

    Raises
    ------
    ValueError
        Naming the file, when PixelSpacing is absent, not two numbers or not positive:
        ``patch_size_mm`` cannot size the window without it.
    """
    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PixelSpacing"])
    value = ds.get("PixelSpacing")
    try:
        spacing = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        spacing = ()
    if len(spacing) != 2 or not all(math.isfinite(v) and v > 0 for v in spacing):
        raise ValueError(
            f"{path}: PixelSpacing is {'absent' if value is None else repr(value)}; "
            "patch_size_mm needs two positive numbers (row spacing, column spacing) in mm: "
            "crop in pixels (patch_size) instead"
        )
    return spacing


def missing(path: str, ids: tuple) -> FileNotFoundError:
    """The error of a row whose DICOM file does not exist, naming the row's ids."""
    study, series, instance = ids
    return FileNotFoundError(
        f"DICOM file not found: {path} (study {study}, series {series}, instance {instance})"
    )


class PartialResult(Exception):  # noqa: N818 - a carrier, not an error
    """Raised by :func:`_extract_all` when some rows failed, so the call is not cached."""

    def __init__(self, out: np.ndarray, failures: list, notes: Notes):
        super().__init__(f"{len(failures)} row(s) failed")
        self.out, self.failures, self.notes = out, failures, notes


def _group_by_series(paths, xs, ys, ids) -> dict[str, list]:
    jobs: dict[str, list] = defaultdict(list)
    for position, (path, x, y, i) in enumerate(zip(paths, xs, ys, ids)):
        jobs[os.path.dirname(path)].append(
            (position, str(path), float(x), float(y), tuple(int(v) for v in i))
        )
    return jobs


def _tasks(series: list, n_files: int, n_jobs) -> tuple[list[list], bool]:
    """``series`` cut into tasks, and whether they go to joblib's workers.

    In process, one task per series (the progress bar moves series by series); in
    parallel, a few large tasks per worker, since one task per series spends more time
    shipping work between processes than decoding it.
    """
    workers = 1 if n_files < PARALLEL_MIN_FILES else effective_n_jobs(n_jobs)
    if workers == 1:
        return [[s] for s in series], False
    by_size = min(_TASKS_PER_WORKER * workers, n_files // _TASK_MIN_FILES)
    n_tasks = min(len(series), max(workers, by_size))
    return [series[i::n_tasks] for i in range(n_tasks)], True


def _extract_all(params, paths, xs, ys, ids, shape, on_error, n_jobs, verbose):
    """Patches for every row and the :class:`Notes`; the unit ``memory`` caches for a call.

    Arguments are arrays (paths as a unicode array) so that the cache key hashes fast.
    """
    extractor = SeriesExtractor({k: v for k, v in params.items() if k != "stamps"})
    series = list(_group_by_series(paths, xs, ys, ids).items())
    chunks, parallel = _tasks(series, len(np.unique(paths)), n_jobs)
    if parallel:
        # No backend named: the active one (loky, or dask under joblib.parallel_backend)
        # runs the tasks, and each task sends back only its own patches.
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(extractor.many)(chunk) for chunk in chunks
        )
    else:
        results = map(extractor.many, chunks)
    out = np.zeros(shape, np.float32)
    failures, notes = [], Notes()
    with tqdm(total=len(series), disable=not verbose, desc="patches", unit="series") as bar:
        for chunk, (found, errors, chunk_notes) in zip(chunks, results):
            if errors and on_error == "raise":
                raise min(errors, key=lambda e: e[0])[1]
            failures.extend(errors)
            notes.update(chunk_notes)
            for position, patch in found:
                out[position] = patch
            bar.update(len(chunk))
    if failures:
        raise PartialResult(out, failures, notes)
    return out, notes


def extract(params: dict, paths, xs, ys, ids, shape, on_error, n_jobs, verbose):
    """Patches for every row, the rows that failed and the notes, as
    ``(out, [(position, error)], Notes)``.

    With ``params["memory"]`` the whole call is cached too, keyed by the rows, the
    parameters and the files' stamps: GridSearchCV transforms the same fold for every
    candidate. A call in which a row failed is never cached.
    """
    memory = check_cache(params["memory"])
    run = _extract_all
    if memory is not None:
        run = memory.cache(_extract_all, ignore=["on_error", "n_jobs", "verbose"])
        params = {**params, "stamps": folder_stamps({os.path.dirname(p) for p in paths})}
    try:
        out, notes = run(params, paths, xs, ys, ids, shape, on_error, n_jobs, verbose)
    except PartialResult as partial:
        return partial.out, partial.failures, partial.notes
    # a cached result comes back as a read-only memory map: copy it
    return (out if out.flags.writeable else np.array(out)), [], notes


def report(index, notes: Notes, failures: list, on_error: str) -> None:
    """Issue what :func:`extract` noted about the rows of ``index`` (a pandas Index).

    Raises the ValueError for coordinates outside their image when ``on_error`` is
    ``"raise"``; otherwise one warning per kind of problem, each listing its rows.
    """
    # stacklevel 4: the caller of transform (past scikit-learn's set_output wrapper)
    for message in notes.unordered.values():
        warnings.warn(message, GeometryWarning, stacklevel=4)
    if notes.outside:
        outside = listing(
            f"row {index[p]!r} (x={x:g}, y={y:g} on {columns} x {rows} {path})"
            for p, (x, y, columns, rows, path) in sorted(notes.outside.items())
        )
        message = (
            f"{len(notes.outside)} of {len(index)} row(s) have a coordinate outside their "
            f"image (0 <= x < Columns and 0 <= y < Rows): {outside}"
        )
        if on_error == "raise":
            raise ValueError(message)
        warnings.warn(
            f"{message}; their patches are mostly or entirely zero",
            PatchExtractionWarning,
            stacklevel=4,
        )
    if notes.constant:
        warnings.warn(
            f"{len(notes.constant)} DICOM file(s) hold a constant image (or one whose "
            f"normalisation range is empty), so their patches are constant: "
            f"{listing(sorted(notes.constant))}",
            PatchExtractionWarning,
            stacklevel=4,
        )
    if failures:
        failures.sort(key=lambda e: e[0])
        listed = listing(
            (f"row {index[p]!r}: {type(e).__name__}: {e}" for p, e in failures),
            limit=_FAILURES_LISTED,
            sep="; ",
        )
        warnings.warn(
            f"{len(failures)} of {len(index)} row(s) could not be read and got all-zero "
            f"patches: {listed}",
            PatchExtractionWarning,
            stacklevel=4,
        )
