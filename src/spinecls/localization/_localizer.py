"""LevelLocalizer: find the five lumbar levels on a study's series, without coordinates.

Stage one of the competition's winning pipelines as a scikit-learn estimator: heatmap
networks trained with skorch locate the spinal canal points on Sagittal T2/STIR, the
foramina on Sagittal T1, and, reached through the DICOM geometry from those, the
subarticular points on Axial T2. See docs/localization.md for the method.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import pandas as pd
import torch
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._utils.accelerate import (
    PRECISIONS,
    autocast,
    check_runtime_params,
    seed_from,
    torch_seed,
    training_device,
)
from .._utils.validation import require_columns
from ..labels import CONDITIONS, SERIES_DESCRIPTIONS
from ..persistence._base import PersistenceMixin, check_device
from ._levels import summarise_steps
from ._localize import AXIAL, Settings, predict_study, series_samples
from ._nets import check_level_steps, make_localizer_net, nets_state, restore_nets
from ._point_frames import (
    OUTPUT_COLUMNS,
    POINT_COLUMNS,
    SCORE_RADIUS,
    check_points,
    check_series,
    localization_errors,
    points_frame,
    share_found,
)
from ._series_planes import check_planes
from ._volumes import StackDataset

# The stack network trains on runs of this many slices of a series holding its labelled
# points (the canal's run reaches about 14 mm either side at 4 mm slices): the slices
# beyond teach little and cost most of the training time.
TRAINING_DEPTH = 8

# The column tuples stay importable from here, where the CLI and users take them.
__all__ = [
    "LevelLocalizer",
    "OUTPUT_COLUMNS",
    "POINT_COLUMNS",
    "SCORE_RADIUS",
    "localization_errors",
]


class LevelLocalizer(PersistenceMixin, BaseEstimator):
    """Locate the five lumbar levels on every series of a study: a heatmap network.

    One small encoder-decoder, shared over the slices of a series (each slice with its
    neighbours as channels, at ``size`` pixels), gives every point a logit map per
    slice; a softmax over slices x rows x columns yields the slice and a first position
    (heatmap regression, as DSNT, Nibali et al. 2018); a sagittal condition's five
    levels are decoded together, as a chain down the column whose steps are learned
    from the labels (``level_steps_``). A second network of the same kind refines each
    point on a crop ``zoom`` times finer; run over a chain's whole slice (for the canal,
    averaged with two slices either side), it finds the discs along the column, which
    are named by counting up from the lowest, L5/S1, and the study's canal
    points so named guide its foramina, each on the slice (the chain's or a neighbour)
    where its refined heatmap is sharpest. Axial slices are found by projecting the
    study's sagittal level points through the DICOM geometry.

    Parameters
    ----------
    size : int, default=160
        Side of the working square, in working pixels.
    pixel_mm : float or None, default=2.5
        Working resolution: every slice is resampled to pixels of this many mm (and
        shrunk further if its field of view exceeds ``size * pixel_mm``), so the
        anatomy has one scale whatever the scanner's field of view and matrix; the
        stack network's cells are two working pixels (5 mm at the defaults, against
        about 35 mm between discs). None: every slice is shrunk into the square
        whatever its field of view (cells of four working pixels), as models saved
        before this parameter existed did; a slice without PixelSpacing is shrunk so.
    neighbours : int, default=1
        Slices on each side of a slice given with it as channels.
    zoom : float, default=2.0
        Scale of the refining crops relative to the working resolution (1.25 mm pixels
        at the defaults).
    crop : int, default=48
        Side of the refining crops in pixels.
    widths : tuple of int, default=(8, 16, 32, 64)
        Channels of the encoder stages of both networks.
    sigma : float, default=1.0
        Spread of the target heatmaps, in output cells (4 working pixels for the stack
        network, 2 crop pixels for the refining one).
    axial_window : int, default=2
        Slices on each side of an axial level's slice that the stack network sees.
    max_epochs : int, default=10
        Epochs of each network (on the synthetic benchmark, 30 epochs and wider
        networks were no more accurate and took five times longer).
    lr : float, default=2e-3
        AdamW learning rate, annealed to 0 on a cosine.
    batch_size : int, default=4
        Series per batch (crops per batch for the refining network: eight times this).
    augment : bool, default=True
        Random rotation, scaling, shift, gamma and contrast in training.
    n_jobs : int or None, default=None
        Series read in parallel by joblib in ``fit``.
    device : str, default="cpu"
        Torch device, e.g. ``"cuda"``. With an ``accelerator``, leave it at its default
        (or name the accelerator's device): the accelerator places the networks.
    accelerator : accelerate.Accelerator or None, default=None
        Train through Hugging Face accelerate (skorch's ``AccelerateMixin``), as
        :class:`spinecls.DualHeadClassifier` does. Not saved: a loaded model has
        ``accelerator=None``. Needs the ``accelerate`` extra.
    precision : {"32", "bf16", "fp16"}, default="32"
        Autocast precision of the forward passes, in training and in ``predict``
        (heatmaps are decoded in float32). ``"fp16"`` needs a CUDA device. With an
        ``accelerator``, leave it at ``"32"``: ``Accelerator(mixed_precision=...)``
        decides.
    channels_last : bool, default=False
        Keep the networks' weights in channels-last memory format.
    num_workers : int, default=0
        DataLoader worker processes that assemble and augment batches; 0: in the main
        process.
    random_state : int or None, default=None
        Seeds the weights, the batch order and the augmentation (the caller's torch
        random state is left as it was).
    verbose : int, default=0
        1: skorch's epoch tables.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The stack network (slice and first position).
    refine_net_ : skorch.NeuralNet
        The refining network.
    history_ : skorch.history.History
        Per-epoch losses of the stack network.
    refine_history_ : skorch.history.History
        Per-epoch losses of the refining network.
    n_series_ : dict
        Labelled series used in ``fit``, per series description.
    level_steps_ : dict
        ``{condition: [[mean, std]] * 4}``: the distance (mm) between consecutive
        levels' labelled points, L1/L2 to L2/L3 first, over the training series; the
        prior with which each sagittal series' five levels are decoded together. None
        for a model loaded from a file of an earlier version (levels decoded in order only).

    See Also
    --------
    spinecls.load_series : Builds ``X`` from a competition directory.
    spinecls.load_rsna : Builds ``y``.

    Examples
    --------
    >>> import spinecls, tempfile
    >>> root = spinecls.make_synthetic_rsna(
    ...     tempfile.mkdtemp() + "/rsna", n_studies=3, image_size=(64, 64), random_state=0)
    >>> series, coords = spinecls.load_series(root), spinecls.load_rsna(root)
    >>> loc = LevelLocalizer(size=32, crop=32, max_epochs=1, random_state=0)
    >>> points = loc.fit(series, coords).predict(series)
    >>> sorted(points.groupby("series_description").size().index)
    ['Axial T2', 'Sagittal T1', 'Sagittal T2/STIR']
    """

    _parameter_constraints: dict = {
        "size": [Interval(Integral, 16, None, closed="left")],
        "pixel_mm": [Interval(Real, 0, None, closed="neither"), None],
        "neighbours": [Interval(Integral, 0, None, closed="left")],
        "zoom": [Interval(Real, 0, None, closed="neither")],
        "crop": [Interval(Integral, 16, None, closed="left")],
        "widths": [tuple, list],
        "sigma": [Interval(Real, 0, None, closed="neither")],
        "axial_window": [Interval(Integral, 0, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "augment": ["boolean"],
        "n_jobs": [Integral, None],
        "device": [str, torch.device],
        "accelerator": "no_validation",  # checked by _accelerate.check_runtime_params
        "precision": [StrOptions(set(PRECISIONS))],
        "channels_last": ["boolean"],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }
    _persisted_fields = ("history", "refine_history", "n_series", "level_steps", "conditions")
    # files of an earlier LevelLocalizer lack them: _set_persisted warns of the steps;
    # such a localizer was trained on every condition
    _persisted_defaults = {"level_steps": None, "conditions": list(CONDITIONS)}
    _unsaved_params = ("accelerator",)
    # files written before the working resolution was set in mm shrank every slice to fit
    _missing_params = {"pixel_mm": None}

    def __init__(
        self,
        size=160,
        pixel_mm=2.5,
        neighbours=1,
        zoom=2.0,
        crop=48,
        widths=(8, 16, 32, 64),
        sigma=1.0,
        axial_window=2,
        max_epochs=10,
        lr=2e-3,
        batch_size=4,
        augment=True,
        n_jobs=None,
        device="cpu",
        accelerator=None,
        precision="32",
        channels_last=False,
        num_workers=0,
        random_state=None,
        verbose=0,
    ):
        self.size = size
        self.pixel_mm = pixel_mm
        self.neighbours = neighbours
        self.zoom = zoom
        self.crop = crop
        self.widths = widths
        self.sigma = sigma
        self.axial_window = axial_window
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.augment = augment
        self.n_jobs = n_jobs
        self.device = device
        self.accelerator = accelerator
        self.precision = precision
        self.channels_last = channels_last
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # X is a frame of series (load_series), y a frame of points (load_rsna): neither
        # is a numeric array, and scikit-learn's checks, which feed arrays, skip it.
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        tags.non_deterministic = self.random_state is None
        return tags

    # -- validation --------------------------------------------------------------------
    def _settings(self) -> Settings:
        self._validate_params()
        widths = self.widths
        if len(widths) < 2 or not all(
            isinstance(w, Integral) and not isinstance(w, bool) and w > 0 for w in widths
        ):
            raise ValueError(f"widths must be a sequence of >= 2 positive ints, got {widths!r}")
        check_runtime_params(self.get_params(deep=False))
        if self.accelerator is None:
            check_device(self.device)
        for name in ("size", "crop"):
            if getattr(self, name) % 2 ** len(widths):
                raise ValueError(
                    f"{name}={getattr(self, name)} must be a multiple of 2 ** len(widths) = "
                    f"{2 ** len(widths)}"
                )
        return Settings(
            int(self.size),
            int(self.neighbours),
            float(self.zoom),
            int(self.crop),
            int(self.crop) // 4,
            int(self.axial_window),
            None if self.pixel_mm is None else float(self.pixel_mm),
        )

    # -- training ----------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: pd.DataFrame) -> LevelLocalizer:
        """Train both networks on the labelled points of the series in X.

        Parameters
        ----------
        X : DataFrame
            One row per series: ``study_id, series_id, series_description,
            series_dir`` (as :func:`spinecls.load_series` returns).
        y : DataFrame
            Labelled points: ``study_id, series_id, instance_number, condition, level,
            x, y`` (as :func:`spinecls.load_rsna` returns). Series of X without points
            are not used; points on series absent from X, or on a series type their
            condition is not read on, are ignored with a warning.

        Returns
        -------
        self
        """
        settings = self._settings()
        X = check_series(X)
        points = check_points(X, y)
        rows = [r for r in X.to_dict("records") if (r["study_id"], r["series_id"]) in points]
        parts = Parallel(n_jobs=self.n_jobs)(
            delayed(series_samples)(r, points[(r["study_id"], r["series_id"])], settings)
            for r in rows
        )
        self.level_steps_ = summarise_steps([part[2] for part in parts])
        labelled = set().union(*(set(p["condition"]) for p in points.values()))
        self.conditions_ = [c for c in CONDITIONS if c in labelled]
        self.n_series_ = {
            d: sum(r["series_description"] == d for r in rows) for d in SERIES_DESCRIPTIONS
        }
        seed = seed_from(self.random_state)
        params = self.get_params()
        stack_net = make_localizer_net(params, stack=True)
        refine_net = make_localizer_net(params, stack=False)
        with torch_seed(seed, training_device(self.get_params())):
            for net, k, window in ((stack_net, 0, None), (refine_net, 1, settings.crop)):
                samples = [s for part in parts for s in part[k]]
                depth = TRAINING_DEPTH if k == 0 else None
                dataset = StackDataset(samples, self.augment, seed, window, depth)
                net.fit(dataset, y=None)
        self.net_, self.refine_net_ = stack_net, refine_net
        self.history_, self.refine_history_ = stack_net.history, refine_net.history
        return self

    # -- inference ---------------------------------------------------------------------
    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Locate the level points on every series of X.

        Parameters
        ----------
        X : DataFrame
            One row per series, as for :meth:`fit`.

        Returns
        -------
        DataFrame
            One row per point, in the layout of :func:`spinecls.load_rsna`'s
            coordinates: ``study_id, series_id, instance_number, condition, level, x,
            y`` (original pixels of that instance), then ``confidence`` in [0, 1],
            ``series_description``, ``image_path`` (the instance's file) and the flags
            ``qc_outside_coverage``, ``qc_outside_image``, ``qc_order`` and
            ``qc_skipped_slices`` (the point's series was read without some of its
            files, which could not be read) (docs/localization.md). Sagittal T2/STIR:
            the 5 spinal canal points;
            Sagittal T1: the 10 foraminal points; Axial T2: the left and right
            subarticular points of each level the series covers (none for a level
            outside it). Ordered by study, series (as in X), condition and level.
            A series is taken for what its slices' geometry shows: one described as
            sagittal whose slices are axial is read as an Axial T2, one that is sagittal
            or coronal but described otherwise is skipped, each with a warning.

        Warns
        -----
        spinecls.dicom.UnreadableFileWarning
            Once per file that cannot be read (not DICOM, truncated, undecodable,
            degenerate geometry...): the series is read without it, and its points are
            flagged ``qc_skipped_slices``. To fail instead, run ``predict`` inside
            :func:`spinecls.dicom.fail_on_unreadable`.
        spinecls.datasets.RSNADataWarning
            For a series whose description contradicts its geometry, and for files whose
            InstanceNumber differs from their file name (the file name wins).

        Raises
        ------
        spinecls.dicom.UnreadableSeriesError
            A ValueError: no file of a series can be read.
        """
        check_is_fitted(self, "net_")
        settings = self._settings()
        X = check_planes(check_series(X), "LevelLocalizer.predict")
        nets = (self.net_.module_, self.refine_net_.module_)
        device = training_device(self.get_params())
        rows = []
        with autocast(self.precision, device):
            for study_id, series in X.groupby("study_id", sort=False):
                found = predict_study(
                    nets, series, settings, device, self.level_steps_, self.conditions_
                )
                if (series["series_description"] == AXIAL).all():
                    warnings.warn(
                        f"LevelLocalizer.predict: study {study_id} has no sagittal series: its "
                        "axial levels cannot be placed",
                        UserWarning,
                        stacklevel=2,
                    )
                rows += [{"study_id": study_id, **r} for r in found]
        return points_frame(rows, X)

    def score(self, X: pd.DataFrame, y: pd.DataFrame, sample_weight=None) -> float:
        """The share of the labelled points of X's series that :meth:`predict` finds.

        A labelled point counts as found when the point predicted for its study,
        series, condition and level lies within :data:`SCORE_RADIUS` (5) original pixels
        of it, in the image plane, on its instance or a neighbouring one (instance
        numbers at most 1 apart): the benchmarks' "within 5 px". Greater is better, so
        that ``GridSearchCV(LevelLocalizer(), ...)`` searches it as any estimator.

        Parameters
        ----------
        X : DataFrame
            One row per series, as for :meth:`fit`.
        y : DataFrame
            Labelled points, as for :meth:`fit`; those on series absent from X are left
            out.
        sample_weight : None
            Not supported: every point counts once.

        Returns
        -------
        float in [0, 1]
        """
        if sample_weight is not None:
            raise ValueError("LevelLocalizer.score counts every point once: no sample_weight")
        X = check_series(X)
        require_columns(y, POINT_COLUMNS, "y")
        series = pd.MultiIndex.from_frame(X[["study_id", "series_id"]])
        truth = y[pd.MultiIndex.from_frame(y[["study_id", "series_id"]]).isin(series)]
        if not len(truth):
            raise ValueError("y has no labelled point on a series of X: nothing to score")
        return share_found(truth, self.predict(X))

    # -- persistence (PersistenceMixin: save, load) -----------------------------------
    def _get_persisted(self) -> tuple[dict, dict]:
        check_is_fitted(self, "net_")
        fitted = {
            "history": self.history_.to_list(),
            "refine_history": self.refine_history_.to_list(),
            "n_series": self.n_series_,
            "level_steps": self.level_steps_,
            "conditions": self.conditions_,
        }
        return fitted, nets_state(self.net_, self.refine_net_)

    def _set_persisted(self, fitted: dict, state_dict: dict) -> None:
        self._settings()
        if fitted["level_steps"] is None:
            warnings.warn(
                "LevelLocalizer.load: the model was saved by an earlier LevelLocalizer, which "
                "did not learn the steps between levels: its sagittal levels are decoded in "
                "order only; fit it again for the full decoder",
                UserWarning,
                stacklevel=4,
            )
        # None stays None, so a file saved again from this model still warns when loaded.
        checks = (("refine_history", list), ("n_series", dict), ("level_steps", (dict, type(None))))
        for name, kind in checks:
            if not isinstance(fitted[name], kind):
                raise ValueError(f"{name!r} must be a {getattr(kind, '__name__', 'dict')}")
        check_level_steps(fitted["level_steps"])
        conditions = fitted["conditions"]
        if (
            not isinstance(conditions, list)
            or not conditions
            or not set(conditions) <= set(CONDITIONS)
        ):
            raise ValueError(f"'conditions' must be a non-empty list of {list(CONDITIONS)}")
        self.net_, self.refine_net_ = restore_nets(self.get_params(), fitted, state_dict)
        self.history_, self.refine_history_ = self.net_.history, self.refine_net_.history
        self.n_series_ = fitted["n_series"]
        self.level_steps_ = fitted["level_steps"]
        self.conditions_ = [c for c in CONDITIONS if c in conditions]
