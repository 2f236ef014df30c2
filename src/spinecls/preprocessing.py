"""LumbarPatchTransformer: rows of labelled coordinates -> model-ready image patches.

The estimator only: the patch geometry is :mod:`spinecls.patches`, decoding
:mod:`spinecls.dicom`, slice order :mod:`spinecls.geometry`, image paths and series
descriptions :mod:`spinecls.datasets`; the extraction engine and its cache are private
modules.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from ._cache import check_cache
from ._extract import Notes, extract
from ._validation import finite_numbers, listing, located, whole_numbers
from .datasets.rsna import SPLITS, _describe_series, _description_table, image_paths
from .dicom import NORMALIZE
from .geometry import GeometryWarning

__all__ = ["RUNTIME_PARAMS", "LumbarPatchTransformer", "PatchExtractionWarning", "recipe_params"]

ID_COLUMNS = ("study_id", "series_id", "instance_number")
REQUIRED_COLUMNS = (*ID_COLUMNS, "x", "y")
MODES = ("crop", "marker")
ON_ERROR = ("raise", "warn")
RUNTIME_PARAMS = frozenset({"data_dir", "n_jobs", "memory", "on_error", "verbose", "progress"})
"""Parameters that say where the data lies and how it is read, not what a patch looks like."""
# Each listed failure is a whole error message: the warning names more rows than
# other messages do, so that most broken files are named in one run.
_FAILURES_LISTED = 20


class PatchExtractionWarning(UserWarning):
    """Patches that hold no image: rows whose DICOM files could not be read (all-zero
    patches), coordinates outside their image, or constant images."""


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


def _mm_pair(value) -> tuple[float, float]:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            for v in value
        )
        or not all(np.isfinite(v) and v > 0 for v in value)
    ):
        raise ValueError(
            "patch_size_mm must be None, a positive number of millimetres or a pair (h, w) "
            f"of them, got {value!r}"
        )
    return float(value[0]), float(value[1])


def _check_frame(X, data_dir) -> pd.DataFrame:
    """The five required columns of ``X`` as int64 ids and float64 coordinates."""
    if not isinstance(X, pd.DataFrame):
        raise ValueError(
            f"X must be a pandas DataFrame with columns {list(REQUIRED_COLUMNS)}, "
            f"got {type(X).__name__}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in X.columns]
    if missing:
        raise ValueError(f"X is missing column(s) {missing}; it has {list(X.columns)}")
    if "image_path" not in X.columns and data_dir is None:
        raise ValueError("X has no image_path column: set data_dir to resolve the DICOM paths")
    checked = {c: finite_numbers(X[c], f"X column {c!r}") for c in ("x", "y")}
    checked |= {c: whole_numbers(X[c], f"X column {c!r}") for c in ID_COLUMNS}
    return pd.DataFrame(
        {c: checked[c].to_numpy() for c in REQUIRED_COLUMNS}, index=X.index, copy=False
    )


class LumbarPatchTransformer(TransformerMixin, BaseEstimator):
    """Cut model-ready image patches around labelled coordinates of DICOM studies.

    The study's preprocessing as a transformer: it resolves each row's DICOM file,
    decodes the slice once per file (modality LUT, MONOCHROME1 inversion, any
    installed codec), normalises it, optionally blurs it with OpenCV's
    ``GaussianBlur``, and crops a patch centred on the coordinate (or keeps the whole
    slice plus a marker channel), resized to ``output_size``.

    Parameters
    ----------
    data_dir : str or path-like, default=None
        The competition directory. Rows without ``image_path`` resolve to
        ``{data_dir}/train_images/{study_id}/{series_id}/{instance_number}.dcm`` (or
        ``test_images/`` for studies found there). :meth:`merge_metadata` also fills
        a missing ``series_description`` from ``{train,test}_series_descriptions.csv``.
    patch_size : int or (int, int), default=64
        Crop height and width in pixels around (x, y). Not used when
        ``patch_size_mm`` is set.
    output_size : int or (int, int), default=None
        Size of the returned images; default ``patch_size``. Patches (crop mode) or
        whole slices (marker mode) are resized to it: shrinking with area averaging,
        enlarging bilinearly. Required with ``patch_size_mm``.
    patch_size_mm : float or (float, float), default=None
        Crop height and width in millimetres, so that a patch covers the same anatomy
        at any resolution. Each row's window is ``round(mm / spacing)`` pixels per axis,
        from the PixelSpacing (row spacing, column spacing) of the row's own slice,
        centred on (x, y) (see :func:`spinecls.patches.crop_mm`), then resized to
        ``output_size``. A slice without a usable PixelSpacing is a bad row: it raises,
        or with ``on_error="warn"`` gets a zero patch. Crop mode only. None: crop
        ``patch_size`` pixels.
    mode : {"crop", "marker"}, default="crop"
        ``"crop"``: the study's models 1 and 2. ``"marker"``: its model 3, the whole
        slice plus a last channel with a Gaussian spot (sigma ``max(1, min(output_size)
        / 32)`` pixels) at the coordinate.
    slices : int, default=1
        Odd number of adjacent slices stacked as channels (2.5D), in the series order
        of :class:`spinecls.geometry.SeriesGeometry` (ImagePositionPatient projected
        on the slice normal; by InstanceNumber for a whole series, with a
        ``GeometryWarning``, when one of its files lacks its geometry), the labelled
        slice in the middle, the first and last slice of the series repeated at the
        ends.
    normalize : {"percentile", "minmax", None}, default="percentile"
        Per slice: 1st-99th percentile to [0, 1] (clipped), range to [0, 1], or the
        modality-LUT values unchanged.
    blur : float, default=None
        Sigma (pixels of the slice) of a Gaussian denoising blur before cropping.
    n_jobs : int, default=None
        Series processed in parallel by joblib's active backend (``-1``: all cores;
        under ``joblib.parallel_backend("dask")``, the cluster's workers). A call over
        fewer than ``PARALLEL_MIN_FILES`` (1,000) DICOM files runs in this process
        whatever ``n_jobs`` says: below that, starting and feeding workers costs more
        than it saves.
    memory : str, path-like or joblib.Memory, default=None
        Cache of decoded slices (one entry per series and set of slices used) and of
        whole calls: a second transform of the same rows, e.g. inside GridSearchCV
        with folds grouped by study, skips decoding. Entries are keyed by path,
        modification time, size, inode and change time, so changed or replaced files
        are decoded again, even with their modification time restored. A path
        caches there with memory-mapped reads; a ``joblib.Memory`` is used as it is.
    on_error : {"raise", "warn"}, default="raise"
        ``"raise"`` stops at the first unreadable row, and raises for coordinates
        outside their image (``0 <= x < Columns``, ``0 <= y < Rows`` fails); ``"warn"``
        returns all-zero patches for unreadable rows, keeps the (zero-padded) patches
        of coordinates outside their image, and emits one
        :class:`PatchExtractionWarning` listing the rows of each kind.
    verbose : int, default=0
        1: a tqdm progress bar over series (the word the other estimators use).
    progress : bool, default="deprecated"
        Former name of ``verbose``; setting it overrides ``verbose``.

        .. deprecated:: 0.1
           ``progress`` will be removed in 0.3: use ``verbose=1``.

    See Also
    --------
    spinecls.load_rsna : The frame this transformer takes.
    spinecls.patches : The patch operations on plain arrays.

    Notes
    -----
    The transformer learns nothing, like :class:`sklearn.preprocessing.Normalizer`:
    :meth:`transform` needs no :meth:`fit` and reads its parameters when it is
    called, and :meth:`fit` only validates. It reads its five columns by name and
    ignores the others, so it sets no ``n_features_in_`` nor ``feature_names_in_``: a
    frame with other extra columns (``load_coordinates`` has no ``severity``) is
    transformed alike.

    Examples
    --------
    >>> import tempfile, spinecls
    >>> from spinecls.preprocessing import LumbarPatchTransformer
    >>> root = spinecls.make_synthetic_rsna(tempfile.mkdtemp() + "/d", n_studies=1)
    >>> frame = spinecls.load_rsna(root)
    >>> patches = LumbarPatchTransformer(patch_size=48, output_size=32).transform(frame)
    >>> patches.shape, patches.dtype
    ((25, 1, 32, 32), dtype('float32'))
    """

    def __init__(
        self,
        data_dir=None,
        patch_size=64,
        output_size=None,
        patch_size_mm=None,
        mode="crop",
        slices=1,
        normalize="percentile",
        blur=None,
        n_jobs=None,
        memory=None,
        on_error="raise",
        verbose=0,
        progress="deprecated",
    ):
        self.data_dir = data_dir
        self.patch_size = patch_size
        self.output_size = output_size
        self.patch_size_mm = patch_size_mm
        self.mode = mode
        self.slices = slices
        self.normalize = normalize
        self.blur = blur
        self.n_jobs = n_jobs
        self.memory = memory
        self.on_error = on_error
        self.verbose = verbose
        self.progress = progress

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = []  # always float32 images
        return tags

    def _check_params(self) -> dict:
        """The parameters as the extraction uses them; nothing is stored."""
        patch_size = _pair(self.patch_size, "patch_size")
        output_size = (
            patch_size if self.output_size is None else _pair(self.output_size, "output_size")
        )
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        patch_size_mm = None if self.patch_size_mm is None else _mm_pair(self.patch_size_mm)
        if patch_size_mm is not None and self.output_size is None:
            raise ValueError(
                "patch_size_mm needs output_size: windows in mm are a different number of "
                "pixels at each PixelSpacing, and are resized to output_size"
            )
        if patch_size_mm is not None and self.mode != "crop":
            raise ValueError(
                f"patch_size_mm sizes crops; mode={self.mode!r} keeps whole slices: set "
                "patch_size_mm=None"
            )
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
        if not isinstance(self.verbose, (int, np.integer)) or self.verbose < 0:
            raise ValueError(f"verbose must be a non-negative int, got {self.verbose!r}")
        check_cache(self.memory)
        return {
            "patch_size": patch_size,
            "patch_size_mm": patch_size_mm,
            "output_size": output_size,
            "mode": self.mode,
            "slices": int(self.slices),
            "normalize": self.normalize,
            "blur": None if self.blur is None else float(self.blur),
            "memory": self.memory,
        }

    def _show_progress(self) -> bool:
        if isinstance(self.progress, str) and self.progress == "deprecated":
            return bool(self.verbose)
        warnings.warn(
            "LumbarPatchTransformer(progress=...) is deprecated since 0.1 and will be "
            "removed in 0.3: use verbose=1 for a progress bar, verbose=0 for none",
            FutureWarning,
            stacklevel=4,  # the caller of transform, past scikit-learn's set_output wrapper
        )
        return bool(self.progress)

    def fit(self, X, y=None):
        """Validate the parameters and the columns of ``X``; nothing is learned.

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
        self._check_params()
        _check_frame(X, self.data_dir)
        return self

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
        checked = _check_frame(X, self.data_dir)
        frame = X.copy()
        if self.data_dir is None:
            return frame
        frame["image_path"] = self._image_paths(X, checked)
        descriptions = frame.get("series_description")
        if descriptions is None or descriptions.isna().any():
            table = _description_table(self.data_dir, SPLITS)
            if table is not None:
                merged = _describe_series(checked, table).to_numpy()
                frame["series_description"] = (
                    merged
                    if descriptions is None
                    else descriptions.where(descriptions.notna(), merged)
                )
        return frame

    def _image_paths(self, X: pd.DataFrame, checked: pd.DataFrame) -> pd.Series:
        """``X``'s image_path, the missing ones resolved under ``data_dir`` when set."""
        if "image_path" in X.columns:
            paths = X["image_path"]
        else:
            paths = pd.Series(pd.NA, index=X.index, dtype=object)
        need = paths.isna().to_numpy()
        if need.any() and self.data_dir is not None:
            resolved = np.full(len(paths), None, dtype=object)
            resolved[need] = image_paths(self.data_dir, checked[need], split=None).to_numpy()
            # where, unlike setting values, turns a column of NaN floats into strings
            paths = paths.where(~need, resolved)
        return paths

    def transform(self, X) -> np.ndarray:
        """One image per row of ``X``, in ``X``'s order.

        Parameters
        ----------
        X : pandas.DataFrame
            Rows as for :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, slices (+1 in marker mode), height, width), float32
            ``(height, width)`` is ``output_size``.

        Raises
        ------
        FileNotFoundError
            A DICOM file is missing (names the path, study, series and instance).
        ValueError
            A file is unreadable or truncated (names the path;
            :class:`spinecls.dicom.PixelDataError` when a decoder failed on it), a
            coordinate lies outside its image (listing the rows), or ``X`` or a
            parameter is malformed.
        spinecls.dicom.MissingCodecError
            Compressed pixel data without the decoder installed.

        Warns
        -----
        PatchExtractionWarning
            With ``on_error="warn"``, once listing the rows that got a zero patch and
            once listing the coordinates outside their image; whatever ``on_error``,
            once listing the files whose image is constant (constant patches).
        spinecls.geometry.GeometryWarning
            With ``slices > 1``, once per series whose files do not all carry their
            patient geometry: that series is ordered by InstanceNumber.
        """
        params = self._check_params()
        show_progress = self._show_progress()
        checked = _check_frame(X, self.data_dir)
        paths = self._image_paths(X, checked)
        if paths.isna().any():
            raise ValueError(
                f"X has no image_path at {located(paths.isna(), X.index)}: set data_dir"
            )
        n_channels = params["slices"] + (params["mode"] == "marker")
        shape = (len(X), n_channels, *params["output_size"])
        if not len(X):
            return np.zeros(shape, np.float32)
        out, failures, notes = extract(
            params,
            np.array([os.path.abspath(p) for p in paths.astype(str)]),
            checked["x"].to_numpy(),
            checked["y"].to_numpy(),
            checked[list(ID_COLUMNS)].to_numpy(),
            shape,
            self.on_error,
            self.n_jobs,
            show_progress,
        )
        _report(X.index, notes, failures, self.on_error)
        return out


def _report(index: pd.Index, notes: Notes, failures: list, on_error: str) -> None:
    """Issue what :func:`spinecls._extract.extract` noted about the rows of ``index``.

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


def recipe_params(transformer: LumbarPatchTransformer) -> dict:
    """The parameters that decide what ``transformer``'s patches look like.

    Everything but :data:`RUNTIME_PARAMS`: what a model file records so that the same
    patches can be cut from another directory, on another machine.

    Parameters
    ----------
    transformer : LumbarPatchTransformer

    Returns
    -------
    dict

    Examples
    --------
    >>> recipe = recipe_params(LumbarPatchTransformer(patch_size=48, output_size=32, n_jobs=2))
    >>> recipe["patch_size"], recipe["output_size"], "n_jobs" in recipe
    (48, 32, False)
    """
    params = transformer.get_params(deep=False)
    return {k: params[k] for k in sorted(params) if k not in RUNTIME_PARAMS}
