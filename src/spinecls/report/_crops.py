"""The crops a model graded, cut again by its own transformer.

A model's first step, :class:`~spinecls.LumbarPatchTransformer`, decides what the
network sees; the report asks it for the same crops rather than cutting its own.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..labels import CONDITIONS

DEFAULT_NORMALIZE = "percentile"
"""The windowing of slices when no model is given: the transformer's default."""


def _transformer(model):
    """The LumbarPatchTransformer at the head of ``model``, or None when there is none."""
    from ..preprocessing import LumbarPatchTransformer

    if isinstance(model, LumbarPatchTransformer):
        return model
    steps = getattr(model, "steps", None)
    if steps and isinstance(steps[0][1], LumbarPatchTransformer):
        return steps[0][1]
    return None


def transformers_by_condition(model, data_dir, device) -> dict:
    """``{condition: LumbarPatchTransformer}`` of ``model`` (empty for None).

    ``model`` is a model file, a Pipeline that starts with a LumbarPatchTransformer (or
    the transformer alone), or a fitted :class:`~spinecls.ConditionGroupClassifier` of
    such pipelines.
    """
    from sklearn.base import clone

    if model is None:
        return {}
    if isinstance(model, (str, os.PathLike)):
        from ..persistence import load_pipeline

        model = load_pipeline(model, data_dir=data_dir, device=device)
    head = _transformer(model)
    if head is not None:
        found = dict.fromkeys(CONDITIONS, head)
    elif hasattr(model, "named_estimators_") and hasattr(model, "condition_groups_"):
        found = {}
        for group, conditions in model.condition_groups_.items():
            member = _transformer(model.named_estimators_[group])
            if member is None:
                raise TypeError(
                    f"model's {group!r} estimator does not start with a LumbarPatchTransformer"
                )
            found.update(dict.fromkeys(conditions, member))
    else:
        raise TypeError(
            "model must be a model file, a Pipeline that starts with a LumbarPatchTransformer, "
            f"or a fitted ConditionGroupClassifier of such pipelines; got {type(model).__name__}"
        )
    quiet = {
        id(t): clone(t).set_params(verbose=0, n_jobs=None, memory=None, on_error="raise")
        for t in found.values()
    }
    return {c: quiet[id(t)] for c, t in found.items()}


def normalize_of(transformers: dict, condition: str):
    """The windowing the model applies to ``condition``'s slices."""
    transformer = transformers.get(condition)
    return DEFAULT_NORMALIZE if transformer is None else transformer.normalize


def cut(transformers: dict, points: pd.DataFrame) -> list:
    """One entry per row of ``points``: the graded channel (2-D array) or why there is none."""
    out: list = [None] * len(points)
    if not transformers:
        return out
    for transformer in {id(t): t for t in transformers.values()}.values():
        mine = np.flatnonzero([transformers.get(c) is transformer for c in points["condition"]])
        if not len(mine):
            continue
        rows = points.iloc[mine]
        channel = int(transformer.slices) // 2
        try:
            patches = transformer.transform(rows)
            for k, patch in zip(mine, patches):
                out[k] = patch[channel]
        except (OSError, ValueError, RuntimeError):
            # One unreadable file: cut the rows one by one to say which.
            for k in mine:
                try:
                    out[k] = transformer.transform(points.iloc[[k]])[0, channel]
                except (OSError, ValueError, RuntimeError) as exc:  # shown on the page
                    out[k] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return out
