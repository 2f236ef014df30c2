"""LumbarPatchTransformer: rows of labelled coordinates -> model-ready image patches.

The study's preprocessing as a scikit-learn transformer: the metadata merge, DICOM
decoding, a crop around the labelled coordinate (or the whole slice with a marker
channel), an optional Gaussian denoising blur and a resize.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import defaultdict
from pathlib import Path

import cv2
import joblib
import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .datasets.rsna import DESCRIPTIONS_CSV, read_series_descriptions
from .dicom import NORMALIZE, DicomSlice, read_slice, slice_position

__all__ = ["LumbarPatchTransformer", "PatchExtractionWarning"]

REQUIRED_COLUMNS = ("study_id", "series_id", "instance_number", "x", "y")
MODES = ("crop", "marker")
ON_ERROR = ("raise", "warn")
_SPLITS = ("train", "test")
_MAX_LISTED = 20


class PatchExtractionWarning(UserWarning):
    """Rows whose DICOM files could not be read were given all-zero patches."""


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
        or min(value) <= 0
    ):
        raise ValueError(f"{name} must be a positive int or a pair (h, w) of them, got {value!r}")
    return int(value[0]), int(value[1])


def _ids(frame: pd.DataFrame) -> pd.DataFrame:
    """study_id, series_id and instance_number as int64 (validated by ``_check_frame``)."""
    return frame[["study_id", "series_id", "instance_number"]].apply(
        lambda c: pd.to_numeric(c).astype(np.int64)
    )


def _stamp(path: str) -> tuple[str, int, int]:
    """A file's identity for the cache: its path, modification time and size."""
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, st.st_mtime_ns, st.st_size)


def _decode_all(stamps: tuple) -> dict[str, DicomSlice]:
    """Decode every file (the unit stored in the cache); raise on the first bad one."""
    return {path: read_slice(path) for path, _, _ in stamps}


def _series_order(stamps: tuple) -> list[str]:
    """Paths of a series' slices sorted by their position along the slice normal."""
    keyed = []
    for path, _, _ in stamps:
        stem = Path(path).stem
        keyed.append((slice_position(path), int(stem) if stem.isdigit() else 0, path))
    return [path for *_, path in sorted(keyed)]


def _memory(memory) -> joblib.Memory | None:
    if memory is None:
        return None
    if isinstance(memory, joblib.Memory):
        if memory.location is None:
            return None
        memory = memory.location
    if isinstance(memory, (str, os.PathLike)):
        return joblib.Memory(os.fspath(memory), mmap_mode="r", verbose=0)
    raise ValueError(f"memory must be None, a path or a joblib.Memory, got {type(memory).__name__}")


class _Extractor:
    """Patch extraction for one series at a time (runs in joblib workers)."""

    def __init__(self, params: dict):
        self.__dict__.update(params)
        memory = _memory(params["memory"])
        self.order_cached = memory.cache(_series_order) if memory else None
        self.decode_cached = memory.cache(_decode_all) if memory else None

    def _order(self, folder: str) -> list[str]:
        entries = sorted(
            e.path for e in os.scandir(folder) if e.is_file() and e.name.endswith(".dcm")
        )
        if self.order_cached is None:  # no cache: the stamps would key nothing
            return _series_order(tuple((p, 0, 0) for p in entries))
        return self.order_cached(tuple(_stamp(p) for p in entries))

    def _decode(self, paths: list[str]) -> dict[str, DicomSlice | Exception]:
        if self.decode_cached is not None:
            try:
                # one cache entry per series: a hit costs one lookup for all its slices
                return self.decode_cached(tuple(_stamp(p) for p in sorted(paths)))
            except Exception:  # noqa: BLE001 - redone file by file below to keep each error
                pass
        decoded: dict[str, DicomSlice | Exception] = {}
        for path in paths:
            try:
                decoded[path] = read_slice(path)
            except Exception as exc:  # noqa: BLE001 - reported per row by the caller
                decoded[path] = exc
        return decoded

    def _region(self, s: DicomSlice, top: int, left: int, h: int, w: int) -> np.ndarray:
        """Normalised (and blurred) values of a window, zero outside the slice."""
        if not self.blur:
            return s.window(top, left, h, w, self.normalize)
        margin = math.ceil(4 * self.blur) + 1
        rows, cols = s.pixels.shape
        r0, r1 = max(top - margin, 0), min(top + h + margin, rows)
        c0, c1 = max(left - margin, 0), min(left + w + margin, cols)
        out = np.zeros((h, w), np.float32)
        if r0 >= r1 or c0 >= c1:
            return out
        # The margin holds the kernel's reach; at the slice's own border the blur
        # reflects, as a blur of the whole slice would.
        blurred = cv2.GaussianBlur(
            s.window(r0, c0, r1 - r0, c1 - c0, self.normalize),
            (0, 0),
            self.blur,
            borderType=cv2.BORDER_REFLECT_101,
        )
        a0, a1 = max(top, r0), min(top + h, r1)
        b0, b1 = max(left, c0), min(left + w, c1)
        if a0 < a1 and b0 < b1:
            out[a0 - top : a1 - top, b0 - left : b1 - left] = blurred[
                a0 - r0 : a1 - r0, b0 - c0 : b1 - c0
            ]
        return out

    @staticmethod
    def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if image.shape == size:
            return image
        shrink = size[0] < image.shape[0] or size[1] < image.shape[1]
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        return cv2.resize(image, (size[1], size[0]), interpolation=interpolation)

    def _crop(self, s: DicomSlice, x: float, y: float) -> np.ndarray:
        """Patch centred on (x, y): patch[h // 2, w // 2] is the pixel at (row y, column x)."""
        h, w = self.patch_size
        fx, fy = math.floor(x), math.floor(y)
        dx, dy = np.float32(x - fx), np.float32(y - fy)
        win = self._region(s, fy - h // 2, fx - w // 2, h + 1, w + 1)
        if dx == 0 and dy == 0:
            patch = win[:h, :w]
        else:  # bilinear resampling at the sub-pixel centre
            top = win[:h, :w] * (1 - dx) + win[:h, 1:] * dx
            bottom = win[1:, :w] * (1 - dx) + win[1:, 1:] * dx
            patch = top * (1 - dy) + bottom * dy
        return self._resize(np.ascontiguousarray(patch), self.output_size)

    def _whole(self, s: DicomSlice) -> np.ndarray:
        rows, cols = s.pixels.shape
        return self._resize(self._region(s, 0, 0, rows, cols), self.output_size)

    def _spot(self, shape: tuple[int, int], x: float, y: float) -> np.ndarray:
        """Gaussian marker at (x, y) of a slice of ``shape``, on the output grid."""
        rows, cols = shape
        oh, ow = self.output_size
        # Pixel centres map as (j + 0.5) * cols / ow - 0.5 -> column j of the output.
        cx = (x + 0.5) * ow / cols - 0.5
        cy = (y + 0.5) * oh / rows - 0.5
        sigma = max(1.0, min(oh, ow) / 32)
        gy = np.exp(-0.5 * ((np.arange(oh, dtype=np.float32) - cy) / sigma) ** 2)
        gx = np.exp(-0.5 * ((np.arange(ow, dtype=np.float32) - cx) / sigma) ** 2)
        return np.outer(gy, gx).astype(np.float32)

    def __call__(self, folder: str, rows: list[tuple]) -> tuple[list, list]:
        """Patches for the rows of one series: ``rows`` = (position, path, x, y, ids)."""
        results, errors = [], []
        half = self.slices // 2
        channels: dict[int, list[str]] = {}
        try:
            order = self._order(folder) if half else None
        except Exception as exc:  # noqa: BLE001
            order, order_error = None, exc
        else:
            order_error = None
        for position, path, _, _, ids in rows:
            if not half:
                channels[position] = [path]
            elif order_error is not None:
                errors.append((position, order_error))
            elif path not in order:
                errors.append((position, self._missing(path, ids)))
            else:
                i = order.index(path)
                picked = [min(max(i + k, 0), len(order) - 1) for k in range(-half, half + 1)]
                channels[position] = [order[k] for k in picked]
        decoded = self._decode(sorted({p for paths in channels.values() for p in paths}))
        whole: dict[str, np.ndarray] = {}  # marker mode: each slice resized once
        for position, path, x, y, ids in rows:
            if position not in channels:
                continue
            bad = next(
                (decoded[p] for p in channels[position] if isinstance(decoded[p], Exception)),
                None,
            )
            if bad is not None:
                if isinstance(bad, FileNotFoundError):
                    bad = self._missing(path, ids)
                errors.append((position, bad))
                continue
            if self.mode == "crop":
                planes = [self._crop(decoded[p], x, y) for p in channels[position]]
            else:
                for p in channels[position]:
                    if p not in whole:
                        whole[p] = self._whole(decoded[p])
                planes = [whole[p] for p in channels[position]]
                planes.append(self._spot(decoded[path].pixels.shape, x, y))
            results.append((position, np.stack(planes)))
        return results, errors

    def many(self, series: list[tuple[str, list]]) -> tuple[list, list]:
        """:meth:`__call__` over several series, results concatenated."""
        patches, errors = [], []
        for folder, rows in series:
            p, e = self(folder, rows)
            patches.extend(p)
            errors.extend(e)
        return patches, errors

    @staticmethod
    def _missing(path: str, ids: tuple) -> FileNotFoundError:
        study, series, instance = ids
        return FileNotFoundError(
            f"DICOM file not found: {path} (study {study}, series {series}, instance {instance})"
        )


class _PartialResult(Exception):  # noqa: N818 - a carrier, not an error
    """Raised by :func:`_extract_all` when some rows failed, so the call is not cached."""

    def __init__(self, out, failures):
        super().__init__(f"{len(failures)} row(s) failed")
        self.out, self.failures = out, failures


def _folder_stamps(folders) -> tuple[str, np.ndarray]:
    """Names, modification times and sizes of the DICOM files in the given folders.

    Returned as one string and one int64 array, which the cache hashes quickly.
    """
    names, numbers = [], []
    for folder in sorted(folders):
        try:
            entries = [e for e in os.scandir(folder) if e.name.endswith(".dcm")]
        except OSError:
            entries = []
        for entry in sorted(entries, key=lambda e: e.name):
            st = entry.stat()
            names.append(entry.path)
            numbers.append((st.st_mtime_ns, st.st_size))
    return "\n".join(names), np.asarray(numbers, dtype=np.int64).reshape(-1, 2)


def _group_by_series(paths, xs, ys, ids) -> dict[str, list]:
    jobs: dict[str, list] = defaultdict(list)
    for position, (path, x, y, i) in enumerate(zip(paths, xs, ys, ids)):
        jobs[os.path.dirname(path)].append(
            (position, str(path), float(x), float(y), tuple(int(v) for v in i))
        )
    return jobs


def _extract_all(params, paths, xs, ys, ids, shape, on_error, n_jobs, progress):
    """Patches for every row; the unit that ``memory`` caches for a whole transform.

    Arguments are arrays (paths as a unicode array) so that the cache key hashes fast.
    """
    extractor = _Extractor({k: v for k, v in params.items() if k != "stamps"})
    series = list(_group_by_series(paths, xs, ys, ids).items())
    # A few large tasks per worker: one task per series spends more time shipping
    # work between processes than decoding it.
    workers = effective_n_jobs(n_jobs)
    n_tasks = len(series) if workers == 1 else min(len(series), 16 * workers)
    chunks = [series[i::n_tasks] for i in range(n_tasks)]
    out = np.zeros(shape, np.float32)
    results = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(extractor.many)(chunk) for chunk in chunks
    )
    failures = []
    with tqdm(total=len(series), disable=not progress, desc="patches", unit="series") as bar:
        for chunk, (patches, errors) in zip(chunks, results):
            if errors and on_error == "raise":
                raise min(errors, key=lambda e: e[0])[1]
            failures.extend(errors)
            for position, patch in patches:
                out[position] = patch
            bar.update(len(chunk))
    if failures:
        raise _PartialResult(out, failures)
    return out, failures


class LumbarPatchTransformer(TransformerMixin, BaseEstimator):
    """Cut model-ready image patches around labelled coordinates of DICOM studies.

    The study's preprocessing as a transformer: it completes each row's metadata
    (the "metadata merge"), decodes the DICOM slice once per file (modality LUT,
    MONOCHROME1 inversion, any installed codec), normalises it, optionally blurs it
    with OpenCV's ``GaussianBlur``, and crops a patch centred on the coordinate (or
    keeps the whole slice plus a marker channel), resized to ``output_size``.

    Parameters
    ----------
    data_dir : str or path-like, default=None
        The competition directory. Rows without ``image_path`` resolve to
        ``{data_dir}/train_images/{study_id}/{series_id}/{instance_number}.dcm`` (or
        ``test_images/`` for studies found there); a missing ``series_description``
        is merged from ``{train,test}_series_descriptions.csv``.
    patch_size : int or (int, int), default=64
        Crop height and width in pixels around (x, y).
    output_size : int or (int, int), default=None
        Size of the returned images; default ``patch_size``. Patches (crop mode) or
        whole slices (marker mode) are resized to it: shrinking with area averaging,
        enlarging bilinearly.
    mode : {"crop", "marker"}, default="crop"
        ``"crop"``: the study's models 1 and 2. ``"marker"``: its model 3, the whole
        slice plus a last channel with a Gaussian spot (sigma ``max(1, min(output_size)
        / 32)`` pixels) at the coordinate.
    slices : int, default=1
        Odd number of adjacent slices stacked as channels (2.5D), in order of slice
        position (ImagePositionPatient projected on the slice normal), the labelled
        slice in the middle, the first and last slice of the series repeated at the
        ends.
    normalize : {"percentile", "minmax", None}, default="percentile"
        Per slice: 1st-99th percentile to [0, 1] (clipped), range to [0, 1], or the
        modality-LUT values unchanged.
    blur : float, default=None
        Sigma (pixels of the slice) of a Gaussian denoising blur before cropping.
    n_jobs : int, default=None
        Series processed in parallel by joblib (``-1``: all cores).
    memory : str, path-like or joblib.Memory, default=None
        Cache of decoded slices (one entry per series and set of slices used): a
        second transform of the same rows, e.g. inside GridSearchCV with folds
        grouped by study, skips decoding. Entries are keyed by path, modification
        time and size, so changed files are decoded again.
    on_error : {"raise", "warn"}, default="raise"
        ``"raise"`` stops at the first unreadable row; ``"warn"`` returns all-zero
        patches for bad rows and emits one :class:`PatchExtractionWarning` listing
        every bad row.
    progress : bool, default=False
        Show a tqdm progress bar over series.

    Attributes
    ----------
    patch_size_ : (int, int)
        Validated crop size.
    output_size_ : (int, int)
        Validated output size.
    n_channels_ : int
        Channels of each output image: ``slices`` (+1 in marker mode).

    See Also
    --------
    spinecls.load_rsna : The frame this transformer takes.

    Examples
    --------
    >>> import tempfile, spinecls
    >>> from spinecls.preprocessing import LumbarPatchTransformer
    >>> root = spinecls.make_synthetic_rsna(tempfile.mkdtemp() + "/d", n_studies=1)
    >>> frame = spinecls.load_rsna(root)
    >>> patches = LumbarPatchTransformer(patch_size=48, output_size=32).fit_transform(frame)
    >>> patches.shape, patches.dtype
    ((25, 1, 32, 32), dtype('float32'))
    """

    def __init__(
        self,
        data_dir=None,
        patch_size=64,
        output_size=None,
        mode="crop",
        slices=1,
        normalize="percentile",
        blur=None,
        n_jobs=None,
        memory=None,
        on_error="raise",
        progress=False,
    ):
        self.data_dir = data_dir
        self.patch_size = patch_size
        self.output_size = output_size
        self.mode = mode
        self.slices = slices
        self.normalize = normalize
        self.blur = blur
        self.n_jobs = n_jobs
        self.memory = memory
        self.on_error = on_error
        self.progress = progress

    def _validate_params(self) -> None:
        self.patch_size_ = _pair(self.patch_size, "patch_size")
        self.output_size_ = (
            self.patch_size_ if self.output_size is None else _pair(self.output_size, "output_size")
        )
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if (
            not isinstance(self.slices, (int, np.integer))
            or isinstance(self.slices, bool)
            or self.slices < 1
            or self.slices % 2 == 0
        ):
            raise ValueError(f"slices must be a positive odd int, got {self.slices!r}")
        if self.normalize not in NORMALIZE:
            raise ValueError(f"normalize must be one of {NORMALIZE}, got {self.normalize!r}")
        if self.blur is not None and not (
            isinstance(self.blur, (int, float, np.number)) and self.blur > 0
        ):
            raise ValueError(f"blur must be None or a positive sigma, got {self.blur!r}")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {self.on_error!r}")
        _memory(self.memory)
        self.n_channels_ = int(self.slices) + (self.mode == "marker")

    def fit(self, X, y=None):
        """Validate the parameters and the columns of ``X``.

        Parameters
        ----------
        X : pandas.DataFrame
            Rows with ``study_id, series_id, instance_number, x, y`` (and optionally
            ``image_path``, ``series_description``), e.g. from :func:`spinecls.load_rsna`.
        y : ignored

        Returns
        -------
        self
        """
        self._validate_params()
        self._check_frame(X)
        return self

    def _check_frame(self, X) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise ValueError(
                "X must be a pandas DataFrame with columns "
                f"{list(REQUIRED_COLUMNS)}, got {type(X).__name__}"
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in X.columns]
        if missing:
            raise ValueError(f"X is missing column(s) {missing}; it has {list(X.columns)}")
        if "image_path" not in X.columns and self.data_dir is None:
            raise ValueError("X has no image_path column: set data_dir to resolve the DICOM paths")
        for column in ("x", "y"):
            values = pd.to_numeric(X[column], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(values)
            if bad.any():
                rows = X.index[bad][:_MAX_LISTED].tolist()
                raise ValueError(
                    f"X column {column!r} must hold finite numbers; got "
                    f"{X[column][bad].head(_MAX_LISTED).tolist()} at row(s) {rows}"
                    + (
                        f" and {int(bad.sum()) - _MAX_LISTED} more"
                        if bad.sum() > _MAX_LISTED
                        else ""
                    )
                )
        for column in ("study_id", "series_id", "instance_number"):
            values = pd.to_numeric(X[column], errors="coerce")
            bad = (values.isna() | (values % 1 != 0)).to_numpy()
            if bad.any():
                raise ValueError(
                    f"X column {column!r} must hold whole numbers; got "
                    f"{X[column][bad].head(_MAX_LISTED).tolist()} at row(s) "
                    f"{X.index[bad][:_MAX_LISTED].tolist()}"
                )
        return X

    def merge_metadata(self, X: pd.DataFrame) -> pd.DataFrame:
        """Complete ``image_path`` and ``series_description`` from ``data_dir``.

        Parameters
        ----------
        X : pandas.DataFrame
            Rows as for :meth:`fit`.

        Returns
        -------
        pandas.DataFrame
            A copy of ``X`` (same index and order) in which missing ``image_path``
            values are resolved under ``data_dir`` and, when a descriptions CSV is
            there, missing ``series_description`` values are merged in.
        """
        self._check_frame(X)
        frame = X.copy()
        if self.data_dir is None:
            return frame
        ids = _ids(frame)
        root = Path(self.data_dir).resolve()
        if "image_path" not in frame.columns:
            frame["image_path"] = pd.Series(pd.NA, index=frame.index, dtype=object)
        need = frame["image_path"].isna()
        if need.any():
            split = {}
            for study in ids.loc[need, "study_id"].unique():
                found = [s for s in _SPLITS if (root / f"{s}_images" / str(study)).is_dir()]
                split[study] = found[0] if found else _SPLITS[0]
            sub = ids[need]
            frame.loc[need, "image_path"] = [
                str(root / f"{split[s]}_images" / str(s) / str(se) / f"{i}.dcm")
                for s, se, i in zip(sub["study_id"], sub["series_id"], sub["instance_number"])
            ]
        if "series_description" not in frame.columns or frame["series_description"].isna().any():
            tables = [
                read_series_descriptions(root / DESCRIPTIONS_CSV.format(split=s))
                for s in _SPLITS
                if (root / DESCRIPTIONS_CSV.format(split=s)).is_file()
            ]
            if tables:
                lookup = pd.concat(tables).drop_duplicates(["study_id", "series_id"])
                merged = (
                    ids[["study_id", "series_id"]]
                    .merge(lookup, on=["study_id", "series_id"], how="left")["series_description"]
                    .to_numpy()
                )
                if "series_description" in frame.columns:
                    frame["series_description"] = frame["series_description"].where(
                        frame["series_description"].notna(), merged
                    )
                else:
                    frame["series_description"] = merged
        return frame

    def transform(self, X) -> np.ndarray:
        """One image per row of ``X``, in ``X``'s order.

        Parameters
        ----------
        X : pandas.DataFrame
            Rows as for :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, n_channels_, *output_size_), float32

        Raises
        ------
        FileNotFoundError
            A DICOM file is missing (names the path, study, series and instance).
        ValueError
            A file is unreadable or truncated (names the path), or ``X`` is malformed.
        spinecls.dicom.MissingCodecError
            Compressed pixel data without the decoder installed.

        Warns
        -----
        PatchExtractionWarning
            With ``on_error="warn"``, once, listing every row that got a zero patch.
        """
        check_is_fitted(self, "n_channels_")
        frame = self.merge_metadata(X)
        if frame["image_path"].isna().any():
            rows = frame.index[frame["image_path"].isna()][:_MAX_LISTED].tolist()
            raise ValueError(f"X has no image_path at row(s) {rows}: set data_dir")
        out = np.zeros((len(frame), self.n_channels_, *self.output_size_), np.float32)
        if not len(frame):
            return out

        ids = _ids(frame)
        paths = np.array([os.path.abspath(p) for p in frame["image_path"].astype(str)])
        xs = pd.to_numeric(frame["x"]).to_numpy(np.float64)
        ys = pd.to_numeric(frame["y"]).to_numpy(np.float64)
        params = {
            "patch_size": self.patch_size_,
            "output_size": self.output_size_,
            "mode": self.mode,
            "slices": int(self.slices),
            "normalize": self.normalize,
            "blur": None if self.blur is None else float(self.blur),
            "memory": self.memory,
        }
        memory = _memory(self.memory)
        extract = _extract_all
        if memory is not None:
            # The whole call is cached too, keyed by the rows, the parameters and the
            # files' stamps: GridSearchCV transforms the same fold for every candidate.
            extract = memory.cache(_extract_all, ignore=["on_error", "n_jobs", "progress"])
            params["stamps"] = _folder_stamps({os.path.dirname(p) for p in paths})
        try:
            result, failures = extract(
                params,
                paths,
                xs,
                ys,
                ids.to_numpy(),
                out.shape,
                self.on_error,
                self.n_jobs,
                self.progress,
            )
            # a cached result comes back as a read-only memory map: copy it
            out = result if result.flags.writeable else np.array(result)
        except _PartialResult as partial:
            out, failures = partial.out, partial.failures
        if failures:
            failures.sort(key=lambda e: e[0])
            listed = "; ".join(
                f"row {frame.index[p]!r}: {type(e).__name__}: {e}"
                for p, e in failures[:_MAX_LISTED]
            )
            more = (
                f"; and {len(failures) - _MAX_LISTED} more" if len(failures) > _MAX_LISTED else ""
            )
            warnings.warn(
                f"{len(failures)} of {len(frame)} row(s) could not be read and got all-zero "
                f"patches: {listed}{more}",
                PatchExtractionWarning,
                stacklevel=2,
            )
        return out
