"""LumbarPatchTransformer: rows of labelled coordinates -> model-ready image patches.

The estimator only: the patch geometry is :mod:`spinecls.patches`, decoding
:mod:`spinecls.dicom`, slice order :mod:`spinecls.geometry`, image paths and series
descriptions :mod:`spinecls.datasets`. Private modules check the parameters
(``_params``) and the rows (``_rows``), and run the extraction and its cache
(``_extract``, ``_cache``).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from .._utils.validation import located
from ..datasets.rsna import ID_COLUMNS
from ._extract import PatchExtractionWarning, extract, report
from ._params import PARAMETER_CONSTRAINTS, extraction_params
from ._rows import check_rows, resolve_paths, with_metadata

__all__ = ["RUNTIME_PARAMS", "LumbarPatchTransformer", "PatchExtractionWarning", "recipe_params"]

RUNTIME_PARAMS = frozenset({"data_dir", "n_jobs", "memory", "on_error", "verbose", "progress"})
"""Parameters that say where the data lies and how it is read, not what a patch looks like."""


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

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

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
        # X is a frame of rows (study_id, series_id, instance_number, x, y), not a
        # numeric array: scikit-learn's checks, which feed arrays, skip it.
        tags.input_tags.two_d_array = False
        tags.transformer_tags.preserves_dtype = []  # always float32 images
        return tags

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
        extraction_params(self)
        check_rows(X, self.data_dir)
        return self

    def merge_metadata(self, X: pd.DataFrame) -> pd.DataFrame:
        """Complete ``image_path`` and ``series_description`` from ``data_dir``.

        Parameters
        ----------
        X : pandas.DataFrame
            The rows to complete, with the columns :meth:`fit` reads.

        Returns
        -------
        pandas.DataFrame
            A copy of ``X`` (same index and order) in which missing ``image_path``
            values are resolved under ``data_dir`` and, when a descriptions CSV is
            there, missing ``series_description`` values are merged in.
        """
        return with_metadata(X, check_rows(X, self.data_dir), self.data_dir)

    def transform(self, X) -> np.ndarray:
        """One image per row of ``X``, in ``X``'s order.

        Parameters
        ----------
        X : pandas.DataFrame
            The rows to cut patches for, with the columns :meth:`fit` reads.

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
        params = extraction_params(self)
        show_progress = self._show_progress()
        checked = check_rows(X, self.data_dir)
        paths = resolve_paths(X, checked, self.data_dir)
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
        report(X.index, notes, failures, self.on_error)
        return out


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
