"""The study's dual-head CNNs as one scikit-learn estimator: :class:`DualHeadClassifier`.

The estimator is in ``_classifier``; what it accepts (parameter constraints, ``module__*``
keys, the checks of X and y) in ``_checks``; what its model file holds in ``_state``; the
skorch net, its callbacks, validation split and test-time augmentation in ``_net``; the
loss in ``_loss``; temperature scaling, which ``fit`` runs with
``calibration="temperature"``, in ``_calibration`` (public as :mod:`spinecls.calibration`).
"""

from .._utils.dual_head import HeadClasses, HeadProbabilities
from ._classifier import DualHeadClassifier
from ._loss import DualHeadLoss
from ._net import DualHeadNet, HeadAccuracy

__all__ = [
    "DualHeadClassifier",
    "DualHeadLoss",
    "HeadAccuracy",
    "DualHeadNet",
    "HeadClasses",
    "HeadProbabilities",
]
