"""Figures of training, errors and what the networks see (the ``plot`` extra).

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot's
global state, and writes a PNG when given ``path``. matplotlib is imported when a
function is called, so ``import spinecls`` works without it.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import nn

from .labels import CONDITION_SHORT_NAMES

__all__ = [
    "conv_layers",
    "plot_confusion_matrices",
    "plot_feature_maps",
    "plot_filters",
    "plot_patches",
    "plot_reliability",
    "plot_training_curves",
]


def new_figure(**kwargs):
    """A matplotlib Figure outside pyplot's global state (``kwargs``: Figure's own)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "spinecls.plotting needs matplotlib: pip install 'spinecls[plot]'"
        ) from exc
    return Figure(**kwargs)


def save_figure(figure, path):
    """Write ``figure`` as a PNG at ``path`` (none when None); return the figure."""
    if path is not None:
        figure.savefig(os.fspath(path), dpi=100, bbox_inches="tight")
    return figure


def _module(model) -> nn.Module:
    """The torch module of a DualHeadClassifier, a Pipeline ending in one, or a module."""
    if isinstance(model, nn.Module):
        return model
    if hasattr(model, "steps"):
        model = model.steps[-1][1]
    if hasattr(model, "net_"):
        return model.net_.module_
    raise ValueError(
        f"expected a fitted DualHeadClassifier, a Pipeline ending in one, or a torch module; "
        f"got {type(model).__name__}"
    )


def _history(history) -> list[dict]:
    if hasattr(history, "steps"):
        history = history.steps[-1][1]
    if hasattr(history, "history_"):
        history = history.history_
    rows = history.to_list() if hasattr(history, "to_list") else list(history)
    if not rows:
        raise ValueError("the history is empty: fit the classifier first")
    return rows


def plot_training_curves(history, path=None):
    """Loss and per-head accuracy against epoch, training and validation.

    Parameters
    ----------
    history : DualHeadClassifier, Pipeline, skorch History or list of dicts
        A fitted classifier's ``history_`` (or the classifier itself).
    path : str or path-like, optional
        Where to write a PNG.

    Returns
    -------
    matplotlib.figure.Figure
        Three axes: ``loss``, ``condition accuracy``, ``severity accuracy``.
    """
    rows = _history(history)
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(rows)]
    figure = new_figure(figsize=(13, 3.6))
    panels = [
        ("loss", "train_loss", "valid_loss"),
        ("condition accuracy", "train_condition_acc", "valid_condition_acc"),
        ("severity accuracy", "train_severity_acc", "valid_severity_acc"),
    ]
    for k, (title, train_key, valid_key) in enumerate(panels):
        ax = figure.add_subplot(1, 3, k + 1)
        for key, label in ((train_key, "train"), (valid_key, "validation")):
            values = [row.get(key) for row in rows]
            if any(v is not None for v in values):
                ax.plot(
                    epochs, [np.nan if v is None else v for v in values], marker="o", label=label
                )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_confusion_matrices(report_or_true, y_pred=None, path=None):
    """Confusion matrices of both heads.

    Parameters
    ----------
    report_or_true : DualHeadReport or array of shape (n_samples, 2)
        A :func:`spinecls.metrics.dual_head_report`, or the true labels.
    y_pred : array of shape (n_samples, 2), optional
        The predicted labels, when the first argument holds the true ones.
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two axes titled ``condition`` and ``severity``.
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    from .metrics import DualHeadReport, dual_head_report

    report = report_or_true
    if not isinstance(report, DualHeadReport):
        if y_pred is None:
            raise ValueError("pass a DualHeadReport, or y_true and y_pred")
        report = dual_head_report(report_or_true, y_pred)
    figure = new_figure(figsize=(13, 5.5))
    for k, (head, matrix) in enumerate(report.confusion_matrices.items()):
        ax = figure.add_subplot(1, 2, k + 1)
        labels = [str(v).replace(" ", "\n", 2) for v in matrix.index]
        ConfusionMatrixDisplay(matrix.to_numpy(), display_labels=labels).plot(
            ax=ax, colorbar=False, cmap="Blues"
        )
        ax.set_title(head)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_reliability(report_or_true, proba=None, classes=None, path=None):
    """Reliability diagrams of both heads: accuracy against confidence.

    Rows are binned by their top probability (:func:`spinecls.metrics.reliability_table`,
    equal-width bins); each bar is a bin's accuracy, each dot its mean confidence and
    accuracy. A calibrated head keeps to the diagonal; bars below it are over-confident.

    Parameters
    ----------
    report_or_true : DualHeadReport or array of shape (n_samples, 2)
        A :func:`spinecls.metrics.dual_head_report` built with ``proba=``, or the true
        labels.
    proba : (array, array), optional
        Both heads' probabilities (``predict_proba``), when the first argument holds
        the true labels.
    classes : (sequence, sequence), optional
        The label of each column of ``proba`` (the classifier's ``classes_``).
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two axes titled ``condition`` and ``severity``; the legend gives each head's
        expected calibration error.
    """
    from .metrics import DualHeadReport, dual_head_report

    report = report_or_true
    if not isinstance(report, DualHeadReport):
        if proba is None or classes is None:
            raise ValueError(
                "pass a DualHeadReport built with proba=, or y_true, proba and classes"
            )
        # An object array keeps each head's own label type (ints stay ints).
        predicted = np.empty((len(proba[0]), len(proba)), dtype=object)
        for k, (c, p) in enumerate(zip(classes, proba)):
            predicted[:, k] = np.asarray(c)[np.asarray(p).argmax(axis=1)]
        report = dual_head_report(report_or_true, predicted, proba=proba, classes=classes)
    if not report.reliability:
        raise ValueError(
            "the report has no reliability tables: build it with "
            "dual_head_report(..., proba=clf.predict_proba(X), classes=clf.classes_)"
        )
    figure = new_figure(figsize=(11, 4.6))
    for k, (head, table) in enumerate(report.reliability.items()):
        ax = figure.add_subplot(1, len(report.reliability), k + 1)
        ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="calibrated")
        ax.bar(
            table["lower"],
            table["accuracy"],
            width=table["upper"] - table["lower"],
            align="edge",
            alpha=0.35,
            edgecolor="tab:blue",
        )
        ax.plot(
            table["confidence"],
            table["accuracy"],
            marker="o",
            color="tab:blue",
            label=f"model (ECE {report.summary.loc[head, 'ece']:.3f})",
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(head)
        ax.set_xlabel("confidence (top probability)")
        ax.set_ylabel("accuracy")
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)


def conv_layers(model) -> list[str]:
    """Names of the convolution layers of a model (for :func:`plot_feature_maps`)."""
    return [name for name, m in _module(model).named_modules() if isinstance(m, nn.Conv2d)]


def _layer(module: nn.Module, name: str) -> nn.Conv2d:
    layers = dict(module.named_modules())
    if name not in layers or not isinstance(layers[name], nn.Conv2d):
        names = [n for n, m in layers.items() if isinstance(m, nn.Conv2d)]
        raise ValueError(f"no convolution layer named {name!r}; the model has {names}")
    return layers[name]


def _grid(figure, images, titles=None, columns=8, cmap="gray", suptitle=None):
    rows = math.ceil(len(images) / columns)
    for i, image in enumerate(images):
        ax = figure.add_subplot(rows, columns, i + 1)
        ax.imshow(image, cmap=cmap)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    if suptitle:
        figure.suptitle(suptitle)
    return figure


def plot_feature_maps(model, image, layer: str, max_maps: int = 16, path=None):
    """The activations of a named convolution layer for one input image.

    Parameters
    ----------
    model : DualHeadClassifier, Pipeline or torch module
    image : ndarray of shape (channels, height, width)
        One patch, as :class:`spinecls.LumbarPatchTransformer` returns.
    layer : str
        A name from :func:`conv_layers`, e.g. ``"features.0"``.
    max_maps : int, default=16
        How many channels of the activation to show.
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axis per shown channel; the title names the layer.
    """
    module = _module(model)
    conv = _layer(module, layer)
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise ValueError(f"image must have shape (channels, height, width); got {image.shape}")
    captured = {}
    handle = conv.register_forward_hook(lambda m, i, o: captured.setdefault("out", o.detach()))
    was_training = module.training
    module.eval()
    try:
        device = next(module.parameters()).device
        with torch.inference_mode():
            module(torch.from_numpy(image)[None].to(device))
    finally:
        handle.remove()
        module.train(was_training)
    maps = captured["out"][0].cpu().numpy()[:max_maps]
    figure = new_figure(figsize=(12, 1.6 * math.ceil(len(maps) / 8) + 0.6))
    titles = [f"{k}" for k in range(len(maps))]
    _grid(figure, maps, titles, cmap="viridis", suptitle=f"feature maps of layer {layer}")
    return save_figure(figure, path)


def plot_filters(model, layer: str, max_filters: int = 32, path=None):
    """The learned kernels of a convolution layer as a grid (averaged over inputs).

    Parameters
    ----------
    model : DualHeadClassifier, Pipeline or torch module
    layer : str
        A name from :func:`conv_layers`.
    max_filters : int, default=32
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    conv = _layer(_module(model), layer)
    weights = conv.weight.detach().cpu().numpy()[:max_filters].mean(axis=1)
    figure = new_figure(figsize=(12, 1.6 * math.ceil(len(weights) / 8) + 0.6))
    titles = [f"{k}" for k in range(len(weights))]
    _grid(figure, weights, titles, cmap="coolwarm", suptitle=f"filters of layer {layer}")
    return save_figure(figure, path)


def plot_patches(X, y=None, n: int = 16, channel: int | None = None, path=None):
    """A grid of sample patches titled with their condition and severity.

    Parameters
    ----------
    X : ndarray of shape (n_samples, channels, height, width)
    y : DataFrame or array of shape (n_samples, 2), optional
        Condition and severity of each patch.
    n : int, default=16
        How many patches (the first ``n``).
    channel : int, optional
        Which channel to show; default the middle one (the labelled slice).
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(f"X must have shape (n, channels, height, width); got {X.shape}")
    channel = X.shape[1] // 2 if channel is None else channel
    shown = X[:n, channel]
    titles = None
    if y is not None:
        labels = y.to_numpy() if hasattr(y, "to_numpy") else np.asarray(y)
        titles = [f"{CONDITION_SHORT_NAMES.get(c, c)}\n{s}" for c, s in labels[: len(shown)]]
    figure = new_figure(figsize=(12, 1.9 * math.ceil(len(shown) / 8) + 0.4))
    _grid(figure, shown, titles)
    return save_figure(figure, path)
