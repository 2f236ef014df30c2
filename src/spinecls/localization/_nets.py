"""The two skorch networks of :class:`spinecls.LevelLocalizer`, and their saved state.

The stack network finds each point's slice and a first position over a whole series;
the refining network sharpens each point on a finer crop. Both are a
:class:`~spinecls.models.heatmap.SliceHeatmapNet` trained with
:class:`~spinecls.models.heatmap.HeatmapLoss`, built here from the estimator's
parameters; their weights and histories go to and come back from one model file.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import LRScheduler
from skorch.history import History

from .._utils.accelerate import PrecisionNet, build_net
from ..labels import CONDITIONS, LEVELS
from ..models.heatmap import HeatmapLoss, SliceHeatmapNet
from ..persistence._base import check_state_dict
from ._localize import CHANNELS, Settings, stack_stride
from ._volumes import collate_stacks

__all__ = ["check_level_steps", "make_localizer_net", "nets_state", "restore_nets"]

_PARTS = (("stack", "history"), ("refine", "refine_history"))


def heatmap_net_params(params: dict, stack: bool) -> dict:
    """``SliceHeatmapNet``'s arguments for the stack (or refining) network."""
    return {
        "in_channels": 2 * int(params["neighbours"]) + 1,
        "n_points": len(CHANNELS) if stack else len(CONDITIONS),
        "widths": tuple(params["widths"]),
        "stride": stack_stride(params.get("pixel_mm")) if stack else Settings.refine_stride,
        "slice_context": stack,
    }


def make_localizer_net(params: dict, stack: bool) -> NeuralNet:
    """The stack (or refining) network, not initialised, from the estimator's parameters."""
    module = heatmap_net_params(params, stack)
    epochs = params["max_epochs"]
    return build_net(
        PrecisionNet,
        params,
        module=SliceHeatmapNet,
        **{f"module__{k}": v for k, v in module.items()},
        criterion=HeatmapLoss,
        criterion__stride=module["stride"],
        criterion__sigma=float(params["sigma"]) * module["stride"],
        optimizer=torch.optim.AdamW,
        lr=params["lr"],
        max_epochs=epochs,
        batch_size=params["batch_size"] if stack else 8 * params["batch_size"],
        iterator_train__shuffle=True,
        iterator_train__collate_fn=collate_stacks,
        iterator_valid__collate_fn=collate_stacks,
        train_split=None,
        callbacks=[
            (
                "lr_scheduler",
                LRScheduler(policy=torch.optim.lr_scheduler.CosineAnnealingLR, T_max=epochs),
            )
        ],
        verbose=params["verbose"],
    )


def nets_state(stack: NeuralNet, refine: NeuralNet) -> dict:
    """Both networks' weights in one state dict (``stack.*`` and ``refine.*``)."""
    state = {f"stack.{k}": v for k, v in stack.module_.state_dict().items()}
    return state | {f"refine.{k}": v for k, v in refine.module_.state_dict().items()}


def check_level_steps(value) -> None:
    """Check a model file's ``level_steps``: None or ``{condition: [[mean, std]] * 4}``
    for sagittal conditions, in millimetres between consecutive levels.

    Raises
    ------
    ValueError
        For anything else: a mean that is not positive or infinite, a std that is
        negative or not finite, a condition that is not sagittal, another shape.

    Warns
    -----
    UserWarning
        For a NaN mean, which fit writes for a step no training series measured (rare):
        that step is decoded without its learned distance.
    """
    if value is None:
        return
    if not isinstance(value, dict):
        raise ValueError(f"'level_steps' must be a dict or null, got {type(value).__name__}")
    for condition, steps in value.items():
        if condition not in CONDITIONS[:3]:
            raise ValueError(
                f"'level_steps' has an entry for {condition!r}, not a sagittal condition"
            )
        try:
            array = np.asarray(steps, dtype=float)
        except (TypeError, ValueError):
            array = np.empty(0)
        means = array[:, 0] if array.shape == (len(LEVELS) - 1, 2) else np.empty(0)
        if (
            not means.size
            or (means <= 0).any()
            or np.isinf(means).any()
            or not np.isfinite(array[:, 1]).all()
            or (array[:, 1] < 0).any()
        ):
            raise ValueError(
                f"'level_steps'[{condition!r}] must be {len(LEVELS) - 1} pairs [mean, std] of "
                f"millimetres, means positive and stds finite and non-negative; got {steps!r}"
            )
        if np.isnan(means).any():
            warnings.warn(
                f"'level_steps'[{condition!r}] has no mean for step(s) "
                f"{np.flatnonzero(np.isnan(means)).tolist()} (never measured in training): "
                "those steps are decoded without their learned distance",
                UserWarning,
                stacklevel=5,
            )


def restore_nets(params: dict, fitted: dict, state_dict: dict) -> tuple[NeuralNet, NeuralNet]:
    """The two fitted networks from a model file's weights and histories.

    Raises
    ------
    ValueError
        For weights of neither network, or missing, extra or of another shape.
    """
    parts: dict[str, dict] = {"stack": {}, "refine": {}}
    for key, tensor in state_dict.items():
        part, _, name = key.partition(".")
        if part not in parts:
            raise ValueError(f"the weights hold {key!r}, of neither network")
        parts[part][name] = tensor
    nets = []
    for part, history in _PARTS:
        with torch.device("meta"):
            expected = SliceHeatmapNet(**heatmap_net_params(params, part == "stack"))
        check_state_dict(expected, parts[part])
        net = make_localizer_net(params, part == "stack")
        with torch.random.fork_rng(devices=[]):  # the initial weights are replaced at once
            net.initialize()
        net.module_.load_state_dict(parts[part])
        net.history = History(fitted[history])
        nets.append(net)
    return nets[0], nets[1]
