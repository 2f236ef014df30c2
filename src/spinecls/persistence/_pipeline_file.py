"""A fitted patch-and-classify pipeline, and optionally a localizer, in one model file.

The estimator is stored in :mod:`spinecls.persistence`'s format; the transformer by the
parameters that shape its patches; a localizer as a second archive under
:data:`LOCALIZER_ENTRY`. :mod:`spinecls.persistence` re-exports :func:`save_pipeline`,
:func:`load_pipeline` and :func:`load_localizer`; the estimator classes are imported
when a function runs, so that this module loads neither the classifier nor the localizer.
"""

from __future__ import annotations

import os

import torch

from .._utils.atomic import check_destination, replacing
from ._base import PersistenceMixin, check_device, load
from ._model_file import archive, build, check_archive, format_name, torch_load

__all__ = ["LOCALIZER_ENTRY", "load_localizer", "load_pipeline", "save_pipeline"]

LOCALIZER_ENTRY = "localizer"
"""The entry of a pipeline's model file that holds a :class:`~spinecls.LevelLocalizer`."""


def save_pipeline(
    pipeline, path: str | os.PathLike, *, metadata: dict | None = None, localizer=None
) -> None:
    """Write a fitted patch-and-classify pipeline to one model file.

    The final step is saved with :func:`save`; the first step, a
    :class:`~spinecls.LumbarPatchTransformer`, is recorded by the parameters that
    decide what its patches look like (everything but where the data lies and how it
    is read: :data:`spinecls.preprocessing.RUNTIME_PARAMS`), so that
    :func:`load_pipeline` cuts the same patches from any directory.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        ``[LumbarPatchTransformer, fitted estimator with weights]``.
    path : str or path-like
        The model file (written through a temporary sibling and a rename).
    metadata : dict, optional
        More JSON-serialisable values to keep; the transformer's are stored under
        ``"transformer"``.
    localizer : LevelLocalizer, optional
        A fitted localizer to carry in the same file, under the entry ``"localizer"``
        (read it with :func:`load_localizer`), so that one file grades studies that
        come without coordinates (:func:`spinecls.inference.predict_studies`).

    Raises
    ------
    ValueError
        If the pipeline is not a transformer followed by a savable estimator, or
        ``localizer`` is not a fitted estimator with weights.
    """
    from ..preprocessing import LumbarPatchTransformer, recipe_params

    steps = getattr(pipeline, "steps", None)
    if (
        not steps
        or len(steps) != 2
        or not isinstance(steps[0][1], LumbarPatchTransformer)
        or not isinstance(steps[1][1], PersistenceMixin)
    ):
        raise ValueError(
            "save_pipeline needs a Pipeline of a LumbarPatchTransformer and a fitted "
            f"spinecls estimator with weights; got {pipeline!r}"
        )
    if localizer is not None and not isinstance(localizer, PersistenceMixin):
        raise ValueError(f"localizer must be a fitted LevelLocalizer; got {localizer!r}")
    metadata = dict(metadata or {}) | {"transformer": recipe_params(steps[0][1])}
    check_destination(path, directory=False, overwrite=True)
    state = archive(steps[1][1], metadata)
    if localizer is not None:
        state[LOCALIZER_ENTRY] = archive(localizer, {})
    with replacing(path) as tmp:
        torch.save(state, tmp)


def load_localizer(path: str | os.PathLike, *, device: str | torch.device | None = None):
    """Read the :class:`~spinecls.LevelLocalizer` a model file carries.

    Parameters
    ----------
    path : str or path-like
        A file written by ``LevelLocalizer.save`` or by :func:`save_pipeline` with a
        ``localizer`` (``spinecls train --localizer``).
    device : str or torch.device, optional
        Where the localizer runs, instead of its saved ``device`` (see :func:`load`).

    Returns
    -------
    LevelLocalizer
        Fitted.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        If there is no file at ``path``, or a directory.
    ValueError
        One line naming the file: it carries no localizer, or the localizer's entry is
        damaged (as :func:`load` checks it).
    """
    from ..localization import LevelLocalizer

    path = os.fspath(path)
    if device is not None:
        check_device(device)
    state = torch_load(path, LevelLocalizer)
    if isinstance(state, dict) and state.get("format") == format_name(LevelLocalizer):
        return build(LevelLocalizer, check_archive(state, path, LevelLocalizer), path, device)
    carried = state.get(LOCALIZER_ENTRY) if isinstance(state, dict) else None
    if carried is None:
        raise ValueError(
            f"{path} carries no localizer: train one with `spinecls train --localizer` (or "
            "save a fitted LevelLocalizer) to grade studies without coordinates"
        )
    return build(LevelLocalizer, check_archive(carried, path, LevelLocalizer), path, device)


def load_pipeline(
    path: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    estimator_class: type | None = None,
    **transformer_params,
):
    """Read a model file written by :func:`save_pipeline` as a ready pipeline.

    Parameters
    ----------
    path : str or path-like
    data_dir : str or path-like, optional
        The competition directory the transformer resolves image paths under.
    device : str or torch.device, optional
        Where the estimator runs, instead of its saved ``device`` (see :func:`load`).
    estimator_class : type, default=DualHeadClassifier
        The class of the saved estimator.
    **transformer_params
        Run-time parameters of the transformer (``n_jobs``, ``memory``, ``verbose``,
        ``on_error``); parameters that shape the patches come from the file.

    Returns
    -------
    sklearn.pipeline.Pipeline
        ``[("patches", LumbarPatchTransformer), ("clf", estimator)]``.

    Raises
    ------
    ValueError
        If the file is not a model file (see :func:`load`), or does not record its
        transformer (it was written by ``save`` rather than :func:`save_pipeline`) or
        records one with unknown, run-time or bad parameters, or patches of another
        shape than its weights take (each naming the file), or a parameter that shapes
        the patches is given.
    """
    from sklearn.pipeline import Pipeline

    from ..classifier import DualHeadClassifier
    from ..preprocessing import RUNTIME_PARAMS, LumbarPatchTransformer
    from ..preprocessing._params import extraction_params

    shaping = sorted(set(transformer_params) - RUNTIME_PARAMS)
    if shaping:
        raise ValueError(
            f"load_pipeline takes only run-time transformer parameters {sorted(RUNTIME_PARAMS)}"
            f"; {shaping} come from the model file"
        )
    estimator = load(estimator_class or DualHeadClassifier, path, device=device)
    recorded = estimator.metadata_.get("transformer")
    if not isinstance(recorded, dict):
        raise ValueError(
            f"{os.fspath(path)}: the model file does not record how its patches were made "
            "(write it with spinecls.persistence.save_pipeline or spinecls train)"
        )
    runtime = sorted(set(recorded) & RUNTIME_PARAMS)
    if runtime:  # where data lies and is cached is the caller's choice, never the file's
        raise ValueError(
            f"{os.fspath(path)}: the recorded transformer holds run-time parameters {runtime}"
        )
    try:
        transformer = LumbarPatchTransformer(data_dir=data_dir, **recorded, **transformer_params)
        patches = extraction_params(transformer)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{os.fspath(path)}: bad transformer parameters: {exc}") from None
    _check_patch_shape(patches, estimator, os.fspath(path))
    return Pipeline([("patches", transformer), ("clf", estimator)])


def _check_patch_shape(patches: dict, estimator, path: str) -> None:
    """Raise ValueError unless the recorded patches have the shape the weights take."""
    expected = getattr(estimator, "input_shape_", None)
    if expected is None:
        return
    channels = patches["slices"] + (patches["mode"] == "marker")
    shape = (channels, *patches["output_size"])
    if tuple(expected) != shape:
        raise ValueError(
            f"{path}: the recorded transformer makes patches of {channels} channel(s) of "
            f"{shape[1]} x {shape[2]} pixels (mode={patches['mode']!r}, "
            f"slices={patches['slices']}, output_size={list(patches['output_size'])}), but "
            f"the model's weights take {expected[0]} channel(s) of {expected[1]} x "
            f"{expected[2]}: the file was edited or assembled from two models"
        )
