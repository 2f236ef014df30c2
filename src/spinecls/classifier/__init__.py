"""The study's dual-head CNNs as one scikit-learn estimator: :class:`DualHeadClassifier`.

The estimator is in ``_classifier``; what it accepts (parameter constraints, ``module__*``
keys, the checks of X and y) in ``_checks``; what its model file holds in ``_state``; the
skorch net, its callbacks, validation split and test-time augmentation in ``_net``; the
loss in ``_loss``.

Names resolve on first use (PEP 562): :mod:`spinecls.calibration` imports the loss's
class weights from ``_loss`` while the estimator fits temperatures with
:mod:`spinecls.calibration`, so importing a part of this package must not import the
estimator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._utils.dual_head import HeadClasses, HeadProbabilities
    from ._classifier import DualHeadClassifier
    from ._loss import DualHeadLoss
    from ._net import DualHeadNet, HeadAccuracy

_LAZY = {
    "DualHeadClassifier": "._classifier",
    "DualHeadLoss": "._loss",
    "DualHeadNet": "._net",
    "HeadAccuracy": "._net",
    "HeadClasses": ".._utils.dual_head",
    "HeadProbabilities": ".._utils.dual_head",
}
"""Public name -> the module that defines it."""

__all__ = [
    "DualHeadClassifier",
    "DualHeadLoss",
    "HeadAccuracy",
    "DualHeadNet",
    "HeadClasses",
    "HeadProbabilities",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
