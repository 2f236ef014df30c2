"""LevelLocalizer: find the five lumbar levels on a study's series, without coordinates.

Stage one of the competition's winning pipelines as a scikit-learn estimator: heatmap
networks trained with skorch locate the spinal canal points on Sagittal T2/STIR, the
foramina on Sagittal T1, and, reached through the DICOM geometry from those, the
subarticular points on Axial T2. See docs/localization.md for the method.
"""

from __future__ import annotations

import contextlib
import warnings
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import LRScheduler
from skorch.history import History

from ._accelerate import _DTYPES, PrecisionNet, build_net, check_params, training_device
from ._localize import (
    AXIAL,
    CHANNELS,
    Settings,
    level_points,
    predict_axial,
    predict_sagittal,
    training_samples,
)
from ._net import seed_from, torch_seed
from ._validation import finite_numbers, listing, whole_numbers
from ._volumes import StackDataset, collate_stacks, read_volume
from .labels import CONDITION_SERIES, CONDITIONS, LEVELS, SERIES_DESCRIPTIONS
from .models.heatmap import HeatmapLoss, SliceHeatmapNet
from .persistence import PersistenceMixin, check_state_dict

__all__ = ["LevelLocalizer"]

SERIES_COLUMNS = ("study_id", "series_id", "series_description", "series_dir")
POINT_COLUMNS = ("study_id", "series_id", "instance_number", "condition", "level", "x", "y")
OUTPUT_COLUMNS = (
    *POINT_COLUMNS,
    "confidence",
    "series_description",
    "image_path",
    "qc_outside_coverage",
    "qc_outside_image",
    "qc_order",
)


def _check_columns(frame, columns, name: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has {list(frame.columns)}")
    frame = frame.reset_index(drop=True)
    for column in ("study_id", "series_id", "instance_number"):
        if column in columns:
            frame[column] = whole_numbers(frame[column], f"{name}[{column!r}]")
    return frame


def _series_samples(row: dict, points: pd.DataFrame, settings: Settings):
    volume = read_volume(row["series_dir"], largest_stack_only=row["series_description"] != AXIAL)
    known = set(volume.instance_numbers.tolist())
    absent = sorted(set(points["instance_number"]) - known)
    if absent:
        raise ValueError(
            f"y: series {row['series_id']} of study {row['study_id']} has no slice with "
            f"instance_number {listing(absent)} in {row['series_dir']}"
        )
    return training_samples(volume, row["series_description"], points, settings)


class LevelLocalizer(PersistenceMixin, BaseEstimator):
    """Locate the five lumbar levels on every series of a study: a heatmap network.

    One small encoder-decoder, shared over the slices of a series (each slice with its
    neighbours as channels, at ``size`` pixels), gives every point a logit map per
    slice; a softmax over slices x rows x columns yields the slice and a first position
    (heatmap regression, as DSNT, Nibali et al. 2018). A second network of the same
    kind refines each point on a crop ``zoom`` times finer. Axial slices are found by
    projecting the study's sagittal level points through the DICOM geometry.

    Parameters
    ----------
    size : int, default=64
        Working size: every slice is shrunk into a ``size`` x ``size`` square.
    neighbours : int, default=1
        Slices on each side of a slice given with it as channels.
    zoom : float, default=4.0
        Scale of the refining crops relative to the working size.
    crop : int, default=48
        Side of the refining crops in pixels.
    widths : tuple of int, default=(12, 24, 48, 64)
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

    _persisted_fields = ("history", "refine_history", "n_series")
    _unsaved_params = ("accelerator",)

    def __init__(
        self,
        size=64,
        neighbours=1,
        zoom=4.0,
        crop=48,
        widths=(12, 24, 48, 64),
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

    # -- validation --------------------------------------------------------------------
    def _settings(self) -> Settings:
        for name, low in (
            ("size", 16),
            ("neighbours", 0),
            ("crop", 16),
            ("axial_window", 0),
            ("max_epochs", 1),
            ("batch_size", 1),
        ):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        for name in ("zoom", "sigma", "lr"):
            value = getattr(self, name)
            if not isinstance(value, Real) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        widths = self.widths
        if (
            not isinstance(widths, (tuple, list))
            or len(widths) < 2
            or not all(isinstance(w, Integral) and w > 0 for w in widths)
        ):
            raise ValueError(f"widths must be a sequence of >= 2 positive ints, got {widths!r}")
        if not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last must be a bool, got {self.channels_last!r}")
        check_params(self.get_params(deep=False))
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
        )

    def _check_series(self, X) -> pd.DataFrame:
        X = _check_columns(X, SERIES_COLUMNS, "X")
        unknown = sorted(set(X["series_description"].astype(str)) - set(SERIES_DESCRIPTIONS))
        if unknown:
            raise ValueError(
                f"X['series_description'] has unknown value(s) {listing(unknown)}; expected "
                f"one of {list(SERIES_DESCRIPTIONS)}"
            )
        duplicated = X.duplicated(["study_id", "series_id"])
        if duplicated.any():
            raise ValueError(
                f"X lists series more than once: {listing(X.loc[duplicated, 'series_id'])}"
            )
        empty = [
            f"{r.study_id}/{r.series_id} ({r.series_dir})"
            for r in X.itertuples()
            if not (Path(r.series_dir).is_dir() and any(Path(r.series_dir).glob("*.dcm")))
        ]
        if empty:
            raise ValueError(f"X: series without .dcm files in series_dir: {listing(empty)}")
        return X

    def _check_points(self, X: pd.DataFrame, y) -> dict:
        """The labelled points of each series in X, on the series type each is read on."""
        y = _check_columns(y, POINT_COLUMNS, "y")
        for column, vocabulary in (("condition", CONDITIONS), ("level", LEVELS)):
            bad = ~y[column].isin(vocabulary)
            if bad.any():
                raise ValueError(
                    f"y[{column!r}] has unknown value(s) {listing(sorted(set(y.loc[bad, column])))}"
                    f"; expected one of {list(vocabulary)}"
                )
        for column in ("x", "y"):
            y[column] = finite_numbers(y[column], f"y[{column!r}]")
        merged = y.merge(X[["study_id", "series_id", "series_description"]], how="left")
        unknown = merged["series_description"].isna()
        wrong = ~unknown & (
            merged["condition"].map(CONDITION_SERIES) != merged["series_description"]
        )
        for mask, why in ((unknown, "on series absent from X"), (wrong, "on another series type")):
            if mask.any():
                warnings.warn(
                    f"LevelLocalizer.fit: ignored {int(mask.sum())} row(s) of y {why} "
                    f"(rows {listing(np.flatnonzero(mask))})",
                    UserWarning,
                    stacklevel=3,
                )
        merged = merged.loc[~(unknown | wrong)]
        for description in SERIES_DESCRIPTIONS:
            if not (merged["series_description"] == description).any():
                wanted = [c for c, s in CONDITION_SERIES.items() if s == description]
                raise ValueError(
                    f"y has no coordinates on a {description} series of X ({', '.join(wanted)}): "
                    "the localizer needs labelled points on every series type"
                )
        return {key: group for key, group in merged.groupby(["study_id", "series_id"])}

    # -- training ----------------------------------------------------------------------
    def _module_params(self, stack: bool) -> dict:
        return {
            "in_channels": 2 * int(self.neighbours) + 1,
            "n_points": len(CHANNELS) if stack else len(CONDITIONS),
            "widths": tuple(self.widths),
            "stride": Settings.stride if stack else Settings.refine_stride,
            "slice_context": stack,
        }

    def _make_net(self, stack: bool) -> NeuralNet:
        module_params = self._module_params(stack)
        return build_net(
            PrecisionNet,
            self.get_params(),
            module=SliceHeatmapNet,
            **{f"module__{k}": v for k, v in module_params.items()},
            criterion=HeatmapLoss,
            criterion__stride=module_params["stride"],
            criterion__sigma=float(self.sigma) * module_params["stride"],
            optimizer=torch.optim.AdamW,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size if stack else 8 * self.batch_size,
            iterator_train__shuffle=True,
            iterator_train__collate_fn=collate_stacks,
            iterator_valid__collate_fn=collate_stacks,
            train_split=None,
            callbacks=[
                (
                    "lr_scheduler",
                    LRScheduler(
                        policy=torch.optim.lr_scheduler.CosineAnnealingLR, T_max=self.max_epochs
                    ),
                )
            ],
            verbose=self.verbose,
        )

    def _nets(self) -> tuple[NeuralNet, NeuralNet]:
        """The stack network and the refining network, not initialised."""
        return self._make_net(stack=True), self._make_net(stack=False)

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
        X = self._check_series(X)
        points = self._check_points(X, y)
        rows = [r for r in X.to_dict("records") if (r["study_id"], r["series_id"]) in points]
        parts = Parallel(n_jobs=self.n_jobs)(
            delayed(_series_samples)(r, points[(r["study_id"], r["series_id"])], settings)
            for r in rows
        )
        self.n_series_ = {
            d: sum(r["series_description"] == d for r in rows) for d in SERIES_DESCRIPTIONS
        }
        seed = seed_from(self.random_state)
        stack_net, refine_net = self._nets()
        with torch_seed(seed, training_device(self.get_params())):
            for net, k, window in ((stack_net, 0, None), (refine_net, 1, settings.crop)):
                samples = [s for part in parts for s in part[k]]
                net.fit(StackDataset(samples, self.augment, seed, window), y=None)
        self.net_, self.refine_net_ = stack_net, refine_net
        self.history_, self.refine_history_ = stack_net.history, refine_net.history
        return self

    # -- inference ---------------------------------------------------------------------
    def _study(self, series: pd.DataFrame, settings: Settings) -> list[dict]:
        nets = (self.net_.module_, self.refine_net_.module_)
        device = training_device(self.get_params())
        rows, sources = [], {}
        for r in series.itertuples():
            if r.series_description == AXIAL:
                continue
            volume = read_volume(r.series_dir, largest_stack_only=True)
            found = predict_sagittal(nets, volume, r.series_description, settings, device)
            rows += [{"series_id": r.series_id, **p} for p in found]
            score = np.mean([p["confidence"] for p in found])
            rank = (r.series_description == "Sagittal T2/STIR", score)
            if not sources or rank > sources["rank"]:
                sources = {"rank": rank, "points": level_points(volume, found)}
        for r in series.itertuples():
            if r.series_description != AXIAL:
                continue
            volume = read_volume(r.series_dir)
            found = predict_axial(nets, volume, sources.get("points", {}), settings, device)
            rows += [{"series_id": r.series_id, **p} for p in found]
        return rows

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
            ``qc_outside_coverage``, ``qc_outside_image`` and ``qc_order``
            (docs/localization.md). Sagittal T2/STIR: the 5 spinal canal points;
            Sagittal T1: the 10 foraminal points; Axial T2: the left and right
            subarticular points of each level the series covers (none for a level
            outside it). Ordered by study, series (as in X), condition and level.
        """
        check_is_fitted(self, "net_")
        settings = self._settings()
        X = self._check_series(X)
        rows = []
        device = training_device(self.get_params())
        autocast = (
            torch.autocast(device.type, dtype=_DTYPES[self.precision])
            if self.precision in _DTYPES
            else contextlib.nullcontext()
        )
        with autocast:
            for study_id, series in X.groupby("study_id", sort=False):
                found = self._study(series, settings)
                if not any(r["series_description"] != AXIAL for r in series.to_dict("records")):
                    warnings.warn(
                        f"LevelLocalizer.predict: study {study_id} has no sagittal series: its "
                        "axial levels cannot be placed",
                        UserWarning,
                        stacklevel=2,
                    )
                rows += [{"study_id": study_id, **r} for r in found]
        frame = pd.DataFrame(rows, columns=[*OUTPUT_COLUMNS, "_slice"]).drop(columns="_slice")
        frame = frame.drop(columns="series_description").merge(
            X[["study_id", "series_id", "series_description"]], how="left"
        )
        order = {key: k for k, key in enumerate(zip(X["study_id"], X["series_id"]))}
        frame["_key"] = [order[k] for k in zip(frame["study_id"], frame["series_id"])]
        frame["_condition"] = frame["condition"].map(CONDITIONS.index)
        frame["_level"] = frame["level"].map(LEVELS.index)
        frame = frame.sort_values(["_key", "_condition", "_level"], kind="stable")
        frame = frame[list(OUTPUT_COLUMNS)].reset_index(drop=True)
        return frame.astype(
            {
                "study_id": np.int64,
                "series_id": np.int64,
                "instance_number": np.int64,
                "x": np.float64,
                "y": np.float64,
                "confidence": np.float64,
                "qc_outside_coverage": bool,
                "qc_outside_image": bool,
                "qc_order": bool,
            }
        )

    # -- persistence (PersistenceMixin: save, load) -----------------------------------
    def _get_persisted(self) -> tuple[dict, dict]:
        check_is_fitted(self, "net_")
        fitted = {
            "history": self.history_.to_list(),
            "refine_history": self.refine_history_.to_list(),
            "n_series": self.n_series_,
        }
        state = {f"stack.{k}": v for k, v in self.net_.module_.state_dict().items()}
        state |= {f"refine.{k}": v for k, v in self.refine_net_.module_.state_dict().items()}
        return fitted, state

    def _set_persisted(self, fitted: dict, state_dict: dict) -> None:
        self._settings()
        if not isinstance(fitted["refine_history"], list) or not isinstance(
            fitted["n_series"], dict
        ):
            raise ValueError("'refine_history' must be a list and 'n_series' a dict")
        parts: dict[str, dict] = {"stack": {}, "refine": {}}
        for key, tensor in state_dict.items():
            part, _, name = key.partition(".")
            if part not in parts:
                raise ValueError(f"the weights hold {key!r}, of neither network")
            parts[part][name] = tensor
        nets = []
        for part, history in (("stack", "history"), ("refine", "refine_history")):
            with torch.device("meta"):
                expected = SliceHeatmapNet(**self._module_params(part == "stack"))
            check_state_dict(expected, parts[part])
            net = self._make_net(part == "stack")
            with torch.random.fork_rng(devices=[]):  # the initial weights are replaced at once
                net.initialize()
            net.module_.load_state_dict(parts[part])
            net.history = History(fitted[history])
            nets.append(net)
        self.net_, self.refine_net_ = nets
        self.history_, self.refine_history_ = self.net_.history, self.refine_net_.history
        self.n_series_ = fitted["n_series"]
