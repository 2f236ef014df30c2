"""What the dual-head estimators share: the classifier and the meta-estimators over it.

A dual-head estimator's ``predict_proba`` returns ``[P_condition, P_severity]``
(:class:`HeadProbabilities`) and its ``classes_`` the two heads' classes
(:class:`HeadClasses`), as :class:`spinecls.DualHeadClassifier`, a Pipeline ending in one,
and the meta-estimators :mod:`spinecls.routing` and :mod:`spinecls.ensemble` do.
:class:`DualHeadMixin` gives a meta-estimator the classifier's ``predict`` and ``score``;
:func:`member_params` routes fit parameters to the members, with or without
scikit-learn's metadata routing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import get_config
from sklearn.metrics import accuracy_score
from sklearn.utils import Bunch
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing
from sklearn.utils.validation import check_is_fitted

from .validation import two_columns

__all__ = [
    "DualHeadMixin",
    "HeadClasses",
    "HeadProbabilities",
    "MembersMixin",
    "decided_labels",
    "is_dropped",
    "labels_from_proba",
    "mean_head_accuracy",
    "over_prior",
    "member_classes",
    "member_params",
    "router",
    "take_params",
    "take_rows",
]


SCORER_HINT = (
    "to score one head in GridSearchCV or cross_validate, use "
    "spinecls.metrics.head_scorer(head, metric), e.g. head_scorer('severity', "
    "'balanced_accuracy') or head_scorer('severity', 'neg_log_loss'), or "
    "spinecls.metrics.rsna_scorer for the competition score"
)
CALIBRATION_HINT = (
    "to calibrate a head, use spinecls.calibration.calibrate_heads(estimator, X, y), or "
    "CalibratedClassifierCV(FrozenEstimator(spinecls.calibration.HeadView(classifier, "
    "head))) on that head's codes"
)


class HeadProbabilities(list):
    """``[P_condition, P_severity]``, as a dual-head estimator's ``predict_proba`` returns them.

    A list of two arrays that refuses to be read as one array. scikit-learn's string
    scorers (``GridSearchCV(scoring="neg_log_loss")``, ``"roc_auc_ovr"``...) read
    ``predict_proba`` as one array; they fail here with a message that names the scorers
    that work (:func:`spinecls.metrics.head_scorer`, :data:`spinecls.metrics.rsna_scorer`),
    instead of numpy's "inhomogeneous shape".
    """

    def __array__(self, dtype=None, copy=None):
        raise ValueError(
            "predict_proba gives one array per head, [P_condition, P_severity], not one "
            f"array: take one (predict_proba(X)[1]); {SCORER_HINT}"
        )


class HeadClasses(list):
    """``[condition classes, severity classes]``: a dual-head estimator's ``classes_``.

    A list of two arrays that refuses to be read as one array, as
    :class:`HeadProbabilities` does. scikit-learn's single-output tools read ``classes_``
    as one array before they predict: the label scorers (``scoring="accuracy"``,
    ``"balanced_accuracy"``, ``"f1_macro"``...) and
    :class:`~sklearn.calibration.CalibratedClassifierCV`. They fail here with a message
    that names what works (:func:`spinecls.metrics.head_scorer`,
    :func:`spinecls.calibration.calibrate_heads`, :class:`spinecls.calibration.HeadView`)
    instead of "multiclass-multioutput is not supported" or an ``IndexError``.
    """

    def __array__(self, dtype=None, copy=None):
        raise ValueError(
            "classes_ holds one array per head, [condition classes, severity classes], "
            f"not one array: take one (classes_[1]); {SCORER_HINT}; {CALIBRATION_HINT}"
        )


def labels_from_proba(classes: list[np.ndarray], probas: list[np.ndarray]) -> np.ndarray:
    """The most probable class of each head: an (n_samples, 2) array, condition then severity.

    The array takes the labels' dtype when both heads share a kind (ints, strings),
    object otherwise.
    """
    columns = [np.asarray(c)[p.argmax(axis=1)] for c, p in zip(classes, probas)]
    kinds = {column.dtype.kind for column in columns}
    dtype = np.result_type(*columns) if len(kinds) == 1 and kinds <= set("iuUS") else object
    out = np.empty((len(columns[0]), 2), dtype=dtype)
    out[:, 0], out[:, 1] = columns
    return out


def decided_labels(estimator, probas: list[np.ndarray], lacking: str) -> np.ndarray:
    """``predict``'s labels of a dual-head estimator with a ``decision`` parameter.

    ``"argmax"``: each head's most probable class; ``"balanced"``: the class of largest
    probability over its training share (``estimator.class_prior_``, :func:`over_prior`);
    ``lacking`` ends the error raised when the estimator has no shares.
    """
    if estimator.decision == "balanced":
        prior = getattr(estimator, "class_prior_", None)
        if prior is None:
            raise ValueError(f"decision='balanced' needs the training class shares {lacking}")
        probas = over_prior(probas, prior)
    return labels_from_proba(estimator.classes_, probas)


def over_prior(probas: list[np.ndarray], prior: list[np.ndarray]) -> list[np.ndarray]:
    """Each head's probabilities over its classes' training shares (``decision="balanced"``):
    the largest ratio is the best guess for balanced accuracy when the probabilities are
    calibrated."""
    return [
        p / np.maximum(np.asarray(share, dtype=np.float64), 1e-12)
        for p, share in zip(probas, prior)
    ]


def mean_head_accuracy(estimator, X, y, sample_weight=None) -> float:
    """Mean of a fitted dual-head estimator's two accuracies on ``X`` (its ``score``)."""
    predicted = estimator.predict(X)
    accuracies = [
        accuracy_score(
            truth.astype(classes.dtype),
            predicted[:, k].astype(classes.dtype),
            sample_weight=sample_weight,
        )
        for k, (truth, classes) in enumerate(zip(two_columns(y), estimator.classes_))
    ]
    return float(np.mean(accuracies))


class MembersMixin:
    """The ``estimators`` plumbing of a meta-estimator built on ``_BaseComposition``."""

    def get_params(self, deep=True):
        """Parameters, with each estimator's as ``{name}__{parameter}`` when ``deep``."""
        return self._get_params("estimators", deep=deep)

    def set_params(self, **params):
        """Set parameters, an estimator by its name or its parameters as ``{name}__...``."""
        self._set_params("estimators", **params)
        return self

    @property
    def named_estimators(self) -> Bunch:
        """The (unfitted) estimators by name."""
        return Bunch(**dict(self.estimators))

    def _check_pairs(self, allow_drop: bool = False) -> tuple[list[str], list]:
        """Names and estimators of ``estimators``, each with ``fit`` and ``predict_proba``.

        ``estimators`` must be a non-empty list of ``(name, estimator)`` pairs with
        distinct, valid names; with ``allow_drop``, an estimator may be ``"drop"``.
        """
        if (
            not isinstance(self.estimators, (list, tuple))
            or not self.estimators
            or not all(isinstance(e, tuple) and len(e) == 2 for e in self.estimators)
        ):
            raise ValueError(
                "estimators must be a non-empty list of (name, estimator) pairs, got "
                f"{self.estimators!r}"
            )
        names, estimators = zip(*self.estimators)
        self._validate_names(names)
        self._check_estimators_are_instances(estimators)
        for name, estimator in self.estimators:
            if allow_drop and is_dropped(estimator):
                continue
            if not (hasattr(estimator, "fit") and hasattr(estimator, "predict_proba")):
                alternative = " or be 'drop'" if allow_drop else ""
                raise TypeError(
                    f"estimator {name!r} must have fit and predict_proba{alternative}, "
                    f"got {estimator!r}"
                )
        return list(names), list(estimators)


def is_dropped(estimator) -> bool:
    """Whether a member is ``"drop"``: left out, as in scikit-learn's VotingClassifier."""
    return isinstance(estimator, str) and estimator == "drop"


class DualHeadMixin:
    """``predict`` and ``score`` of a dual-head estimator from ``predict_proba`` and ``classes_``.

    They are those of :class:`spinecls.DualHeadClassifier`, so that a meta-estimator
    scores the same way in ``GridSearchCV`` and with :func:`spinecls.metrics.dual_head_report`.
    """

    def predict(self, X) -> np.ndarray:
        """Labels of both heads: an (n_samples, 2) array, condition then severity.

        Parameters
        ----------
        X : as for ``predict_proba``

        Returns
        -------
        ndarray of shape (n_samples, 2)
        """
        check_is_fitted(self, "classes_")
        return labels_from_proba(self.classes_, self.predict_proba(X))

    def score(self, X, y, sample_weight=None) -> float:
        """Mean of the condition head's and the severity head's accuracies.

        Parameters
        ----------
        X : as for ``predict_proba``
        y : DataFrame or array of shape (n_samples, 2)
            Condition then severity labels.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        check_is_fitted(self, "classes_")
        return mean_head_accuracy(self, X, y, sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = False
        tags.target_tags.multi_output = True
        return tags


def member_classes(estimator, name: str) -> list[np.ndarray]:
    """A fitted member's ``classes_`` as two arrays, or a ValueError naming the member."""
    classes = getattr(estimator, "classes_", None)
    if classes is None or isinstance(classes, np.ndarray) or len(classes) != 2:
        raise ValueError(
            f"estimator {name!r} is not a dual-head classifier: its classes_ must be two "
            f"arrays (condition classes, severity classes), got {classes!r}"
        )
    return [np.asarray(c) for c in classes]


def router(owner, members) -> MetadataRouter:
    """Metadata routing of a meta-estimator whose ``fit`` calls each member's ``fit``."""
    routing = MetadataRouter(owner=type(owner).__name__)
    for name, estimator in members:
        routing.add(
            **{name: estimator}, method_mapping=MethodMapping().add(caller="fit", callee="fit")
        )
    return routing


def member_params(owner, names, fit_params: dict) -> dict[str, dict]:
    """Each member's fit parameters.

    With scikit-learn's metadata routing enabled, those each member requested
    (``set_fit_request``); without it, every member gets all of them, as a Pipeline
    member takes ``clf__groups=...``.
    """
    if get_config()["enable_metadata_routing"]:
        routed = process_routing(owner, "fit", **fit_params)
        return {name: routed[name].fit for name in names}
    return {name: fit_params for name in names}


def take_rows(data, rows: np.ndarray):
    """The rows of ``data`` at positions ``rows``: a frame's or a series' by position.

    Parameters
    ----------
    data : DataFrame, Series, ndarray or sequence
        Sequences become arrays (of objects, so that mixed labels keep their types).
    rows : ndarray of int
    """
    if isinstance(data, (pd.DataFrame, pd.Series)):
        return data.iloc[rows]
    array = data if isinstance(data, np.ndarray) else np.asarray(data, dtype=object)
    return array[rows]


def take_params(params: dict, n_samples: int, rows: np.ndarray) -> dict:
    """Fit parameters cut to ``rows``: those with one value per sample, the others as given.

    A value is per sample when it is array-like (a sequence, an array or a pandas
    object, not a string) of length ``n_samples``, as study ids for the validation
    split are.
    """
    return {
        key: take_rows(value, rows) if _per_sample(value, n_samples) else value
        for key, value in params.items()
    }


def _per_sample(value, n_samples: int) -> bool:
    if hasattr(value, "shape"):
        return len(value.shape) >= 1 and value.shape[0] == n_samples
    return isinstance(value, (list, tuple)) and len(value) == n_samples
