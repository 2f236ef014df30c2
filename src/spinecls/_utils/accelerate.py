"""Training on accelerators: mixed precision, channels-last, loader workers, accelerate.

Every estimator with a skorch net builds it through :func:`build_net`, which reads the
estimator's run-time parameters (``accelerator``, ``device``, ``precision``,
``channels_last``, ``num_workers``) and gives the net its class and keyword arguments:

- without an accelerator, the net trains on ``device``; :class:`PrecisionMixin` runs
  the forward pass under :func:`torch.autocast` for ``precision="bf16"`` or ``"fp16"``
  (fp16 with a :class:`torch.amp.GradScaler`, and on CUDA only), and keeps the model
  and its inputs channels-last when asked;
- with an ``accelerate.Accelerator``, the net class gets skorch's
  :class:`skorch.hf.AccelerateMixin`: the accelerator places the model and the batches,
  wraps the model for data-parallel training over its processes and applies its own
  ``mixed_precision``. ``device`` and ``precision`` must then be left at their defaults
  or agree with the accelerator (:func:`check_runtime_params`).

accelerate is imported only when an accelerator is given (the ``accelerate`` extra).
:func:`seed_from` and :func:`torch_seed` seed the nets' weights the same way for every
estimator, leaving the caller's generators as they were.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from numbers import Integral

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, Checkpoint, EarlyStopping, LRScheduler
from skorch.dataset import unpack_data
from skorch.hf import AccelerateMixin

__all__ = [
    "PRECISIONS",
    "AcceleratedMixin",
    "EpochMeanOverProcesses",
    "PrecisionMixin",
    "PrecisionNet",
    "autocast",
    "build_net",
    "check_runtime_params",
    "seed_from",
    "seed_worker",
    "torch_seed",
    "training_device",
]

PRECISIONS = ("32", "bf16", "fp16")
"""The ``precision`` values: float32, bfloat16 autocast, float16 autocast."""

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_ACCELERATE_PRECISION = {"no": "32", "bf16": "bf16", "fp16": "fp16"}


def _float32(outputs):
    """Outputs of an autocast region in float32, as the losses and numpy expect them."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_float32(o) for o in outputs)
    return outputs


def autocast(precision: str, device) -> contextlib.AbstractContextManager:
    """The autocast region of ``precision`` on ``device``: float32 runs without one.

    Parameters
    ----------
    precision : {"32", "bf16", "fp16"}
    device : str or torch.device

    Returns
    -------
    context manager
        :func:`torch.autocast` to bfloat16 or float16 on the device's type, or a
        null context for ``"32"``.
    """
    if precision not in _DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_DTYPES[precision])


class PrecisionMixin:
    """skorch net mixin: autocast forward passes and channels-last memory.

    Parameters
    ----------
    precision : {"32", "bf16", "fp16"}, default="32"
        ``"bf16"`` and ``"fp16"`` run every forward pass (training and inference) under
        :func:`torch.autocast` and return float32 outputs; ``"fp16"`` scales the loss
        with a :class:`torch.amp.GradScaler` (CUDA only).
    channels_last : bool, default=False
        Keep the module's 4-D weights and the 4-D inputs in channels-last memory format.
    """

    def __init__(self, *args, precision="32", channels_last=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.precision = precision
        self.channels_last = channels_last

    def initialize_module(self):
        super().initialize_module()
        if self.channels_last:
            self.module_ = self.module_.to(memory_format=torch.channels_last)
        return self

    def initialize_optimizer(self, *args, **kwargs):
        super().initialize_optimizer(*args, **kwargs)
        # A disabled scaler passes losses and steps through unchanged.
        self.scaler_ = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        return self

    def infer(self, x, **fit_params):
        if self.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.precision not in _DTYPES or self.device is None:
            # device None: an accelerator places the model and casts as it was told.
            return super().infer(x, **fit_params)
        with autocast(self.precision, self.device):
            return _float32(super().infer(x, **fit_params))

    def train_step_single(self, batch, **fit_params):
        if not self.scaler_.is_enabled():
            return super().train_step_single(batch, **fit_params)
        # skorch's step with the backward pass on the scaled loss; the gradients are
        # unscaled at once so that callbacks (gradient clipping) see their true values.
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.scaler_.scale(loss).backward()
        for name in self._optimizers:
            self.scaler_.unscale_(getattr(self, name + "_"))
        return {"loss": loss, "y_pred": y_pred}

    def _step_optimizer(self, step_fn):
        if not self.scaler_.is_enabled():
            return super()._step_optimizer(step_fn)
        # GradScaler.step takes no closure: the step runs first, as AccelerateMixin does.
        step_fn()
        for name in self._optimizers:
            self.scaler_.step(getattr(self, name + "_"))
        self.scaler_.update()
        return None


class PrecisionNet(PrecisionMixin, NeuralNet):
    """skorch ``NeuralNet`` with :class:`PrecisionMixin`'s options."""


class AcceleratedMixin(AccelerateMixin):
    """skorch's :class:`~skorch.hf.AccelerateMixin`, unwrapping the model last.

    skorch calls the net's own ``on_train_end`` before the callbacks', and
    AccelerateMixin's unwraps the data-parallel model there: ``EarlyStopping(
    load_best=True)`` would then load the wrapped model's weights (names prefixed
    ``module.``) into the bare module. Here the callbacks run first.
    """

    def _initialize_accelerator(self):
        # accelerate wraps each module it prepares in DistributedDataParallel, which
        # refuses one without trainable parameters, as a loss usually is: those are only
        # moved to the accelerator's device.
        criteria = self._criteria
        fixed = [
            name
            for name in criteria
            if isinstance(getattr(self, name + "_"), torch.nn.Module)
            and not any(p.requires_grad for p in getattr(self, name + "_").parameters())
        ]
        for name in fixed:
            setattr(self, name + "_", getattr(self, name + "_").to(self.accelerator.device))
        self._criteria = [name for name in criteria if name not in fixed]
        try:
            return super()._initialize_accelerator()
        finally:
            self._criteria = criteria

    def notify(self, method_name, **cb_kwargs):
        if method_name != "on_train_end":
            return super().notify(method_name, **cb_kwargs)
        for _, callback in self.callbacks_:
            callback.on_train_end(self, **cb_kwargs)
        self.on_train_end(self, **cb_kwargs)
        return None


@functools.cache
def _accelerated(base: type) -> type:
    return type(f"Accelerated{base.__name__}", (AcceleratedMixin, base), {})


class EpochMeanOverProcesses(Callback):
    """Make every process record the same epoch scores: the means over all processes.

    Each process of a data-parallel run sees its own share of the batches, so its
    ``train_loss``, ``valid_loss`` and other ``train_*``/``valid_*`` scores differ, and
    early stopping or a learning-rate schedule would decide differently in each (one
    process stops, the others wait for it forever). This callback, placed before the
    callbacks that read the history, replaces them with their means over the processes,
    weighted by each process's number of samples, and recomputes the ``*_loss_best``
    flags from those means.
    """

    def on_epoch_end(self, net, **kwargs):
        accelerator = net.accelerator
        if accelerator.num_processes == 1:
            return
        row = net.history[-1]
        splits = ("train", "valid")
        sizes = [sum(b.get(f"{s}_batch_size", 0) for b in row["batches"]) for s in splits]
        keys = sorted(
            k
            for k, v in row.items()
            if k.split("_")[0] in splits
            and isinstance(v, (float, int))
            and not isinstance(v, bool)
            and not k.endswith("_batch_size")
        )
        weight = {split: size for split, size in zip(splits, sizes)}
        local = [row[k] * weight[k.split("_")[0]] for k in keys] + sizes
        total = accelerator.reduce(
            torch.tensor(local, dtype=torch.float64, device=accelerator.device), "sum"
        ).tolist()
        counts = dict(zip(splits, total[len(keys) :]))
        for key, value in zip(keys, total):
            mean = value / counts[key.split("_")[0]]
            net.history.record(key, mean)
            if f"{key}_best" in row:
                earlier = [r[key] for r in net.history[:-1] if key in r]
                net.history.record(f"{key}_best", not earlier or mean < min(earlier))


def _import_accelerate():
    try:
        import accelerate
    except ImportError:
        raise ImportError(
            "accelerator= needs Hugging Face accelerate: pip install 'spinecls[accelerate]'"
        ) from None
    return accelerate


def check_runtime_params(params: dict) -> None:
    """Check the run-time parameters against each other; ValueError names the conflict.

    Parameters
    ----------
    params : dict
        The estimator's parameters; ``precision``, ``channels_last``, ``num_workers``
        and ``accelerator`` may be absent (their defaults).
    """
    precision = params.get("precision", "32")
    accelerator = params.get("accelerator")
    device = torch.device(params["device"])
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}; got {precision!r}")
    workers = params.get("num_workers", 0)
    if not isinstance(workers, Integral) or isinstance(workers, bool) or workers < 0:
        raise ValueError(f"num_workers must be an int >= 0; got {workers!r}")
    if accelerator is None:
        if precision == "fp16" and device.type != "cuda":
            raise ValueError(
                f"precision='fp16' needs a CUDA device (device='cuda'); got device="
                f"{params['device']!r}: use precision='bf16' on {device.type}"
            )
        return
    accelerate = _import_accelerate()
    if not isinstance(accelerator, accelerate.Accelerator):
        raise ValueError(
            f"accelerator must be an accelerate.Accelerator or None; got {accelerator!r}"
        )
    if device != torch.device("cpu") and device != accelerator.device:
        raise ValueError(
            f"device={params['device']!r} differs from the accelerator's device "
            f"{accelerator.device}: with an accelerator, leave device at its default"
        )
    own = _ACCELERATE_PRECISION.get(str(accelerator.mixed_precision))
    if precision != "32" and precision != own:
        raise ValueError(
            f"precision={precision!r} differs from the accelerator's mixed_precision="
            f"{accelerator.mixed_precision!r}: with an accelerator, set it as "
            f"Accelerator(mixed_precision={precision!r})"
        )


def training_device(params: dict) -> torch.device:
    """The device the estimator trains on: the accelerator's, or ``device``."""
    accelerator = params.get("accelerator")
    return accelerator.device if accelerator is not None else torch.device(params["device"])


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: a distinct augmentation seed in each worker.

    Every worker starts with a copy of the dataset, and so of its augmentation's random
    generator: without this, the workers would draw the same augmentations. The seed is
    the one torch gives the worker (the loader's base seed plus ``worker_id``), which
    the estimator's ``random_state`` decides. It seeds an albumentations ``transform``
    of the dataset, or a numpy generator it keeps as ``rng``.
    """
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None)
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(info.seed % 2**32)
    # a dataset drawing from its own numpy generator (the localizer's StackDataset)
    if isinstance(getattr(info.dataset, "rng", None), np.random.Generator):
        info.dataset.rng = np.random.default_rng(info.seed % 2**32)


def build_net(base: type, params: dict, **kwargs) -> NeuralNet:
    """A skorch net of class ``base`` set up for the estimator's device and options.

    Parameters
    ----------
    base : type
        A skorch net class; :class:`PrecisionMixin` in its bases when ``precision`` or
        ``channels_last`` may differ from their defaults (e.g. :class:`PrecisionNet`).
    params : dict
        The estimator's parameters (``get_params()``): ``device`` and, if it has them,
        ``accelerator``, ``precision``, ``channels_last`` and ``num_workers``.
    **kwargs
        The net's other arguments, without ``device``.

    Returns
    -------
    skorch.NeuralNet
        ``base`` with :class:`AcceleratedMixin` mixed in when ``params["accelerator"]``
        is set; its data loaders use ``num_workers`` workers and pinned memory on CUDA.
    """
    accelerator = params.get("accelerator")
    options = {}
    if issubclass(base, PrecisionMixin):
        options["channels_last"] = params.get("channels_last", False)
        # With an accelerator, the accelerator casts (Accelerator(mixed_precision=...)).
        options["precision"] = "32" if accelerator is not None else params.get("precision", "32")
    elif params.get("precision", "32") != "32" or params.get("channels_last", False):
        raise ValueError(f"{base.__name__} has no precision or channels_last options")
    workers = params.get("num_workers", 0)
    for split in ("train", "valid"):
        options[f"iterator_{split}__num_workers"] = workers
        options[f"iterator_{split}__pin_memory"] = training_device(params).type == "cuda"
        if workers:
            options[f"iterator_{split}__worker_init_fn"] = seed_worker
    if accelerator is None:
        return base(**kwargs, **options, device=params["device"])
    callbacks = list(kwargs.pop("callbacks", []))
    readers = (EarlyStopping, LRScheduler, Checkpoint)
    first = next((i for i, (_, cb) in enumerate(callbacks) if isinstance(cb, readers)), None)
    callbacks.insert(
        len(callbacks) if first is None else first, ("epoch_mean", EpochMeanOverProcesses())
    )
    # skorch's "auto" sink prints the epoch table on the main process even when quiet.
    sink = "auto" if kwargs.get("verbose") else print
    return _accelerated(base)(
        **kwargs,
        **options,
        callbacks=callbacks,
        callbacks__print_log__sink=sink,
        accelerator=accelerator,
        device=None,
    )


def seed_from(random_state) -> int | None:
    """An int seed from ``random_state`` (None stays None: unseeded)."""
    if random_state is None:
        return None
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    return int(random_state)


@contextlib.contextmanager
def torch_seed(seed: int | None, device: str | torch.device = "cpu") -> Iterator[None]:
    """Seed torch inside the block and leave the caller's generators as they were.

    The CPU generator and, for a CUDA ``device``, that device's generator are forked
    (:func:`torch.random.fork_rng`) and seeded. ``seed=None`` neither forks nor seeds:
    the block draws from the global generators, as unseeded torch code does.
    """
    if seed is None:
        yield
        return
    device = torch.device(device)
    cuda = []
    if device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield
