"""Temperature scaling of a :class:`~spinecls.DualHeadClassifier`'s two heads.

Temperature scaling divides a head's logits by one number, its temperature ``T``,
chosen to minimise the log loss on rows the network did not train on: ``T > 1``
softens over-confident probabilities, ``T < 1`` sharpens timid ones, and the
predicted class never changes. Each head gets its own temperature.

The fit is scikit-learn's: ``CalibratedClassifierCV(FrozenEstimator(view),
method="temperature")`` on a :class:`HeadView`, a single-head view of the fitted
classifier whose ``decision_function`` is that head's logits.

- ``DualHeadClassifier(calibration="temperature")`` fits both temperatures after
  training, on its own validation split (``valid_index_``, by study when ``fit`` gets
  ``groups``), and keeps them in ``temperatures_`` and in its model file. The severity
  head's rows weigh as in its loss (``severity_weights``): a model trained for the
  competition's weighted log loss is calibrated for it too.
- :func:`calibrate_heads` fits them on rows of your own for a classifier (or a Pipeline
  ending in one) that is already fitted.

One number fitted on a few rows is noisy, and a small split can as well sharpen
probabilities that needed softening: a head is left uncalibrated (``T = 1``, with a
warning) when it has fewer than :data:`MIN_CALIBRATION_ROWS` rows, when a class of
the head has no row among them, or when every row is predicted right (the log loss
then falls all the way to ``T = 0``, certainty). A head with a single class needs no
temperature.

The code is the classifier's own (``spinecls.classifier._calibration``): its ``fit``
fits the temperatures, so the estimator does not import this front module.
"""

from .classifier._calibration import (
    MIN_CALIBRATION_ROWS,
    HeadView,
    calibrate_heads,
    check_temperatures,
    fit_temperatures,
    softmax,
)

__all__ = [
    "MIN_CALIBRATION_ROWS",
    "HeadView",
    "calibrate_heads",
    "check_temperatures",
    "fit_temperatures",
    "softmax",
]
