"""DualHeadEnsemble: the averaged probabilities of several dual-head models.

Soft voting, as scikit-learn's ``VotingClassifier(voting="soft")`` does for one output,
over the two heads of :class:`spinecls.DualHeadClassifier` and of the pipelines and
meta-estimators built on it. Every top solution of the RSNA 2024 competition averaged
several models; averaging probabilities also keeps the output a probability, which the
competition's log loss scores.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import ClassifierMixin, MultiOutputMixin, clone
from sklearn.utils import Bunch, get_tags
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from ._utils.dual_head import (
    DualHeadMixin,
    HeadClasses,
    HeadProbabilities,
    MembersMixin,
    decided_labels,
    is_dropped,
    member_classes,
    member_params,
    router,
)

__all__ = ["DualHeadEnsemble"]

MEANS = ("arithmetic", "geometric")
DECISIONS = ("argmax", "balanced")


class DualHeadEnsemble(
    MembersMixin, DualHeadMixin, ClassifierMixin, MultiOutputMixin, _BaseComposition
):
    """Average the two heads' probabilities of several models.

    Parameters
    ----------
    estimators : list of (str, estimator or "drop")
        The members: dual-head estimators (``predict_proba`` returns ``[P_condition,
        P_severity]``, ``classes_`` two arrays), such as a
        :class:`~spinecls.DualHeadClassifier`, a Pipeline ending in one or a
        :class:`~spinecls.routing.ConditionGroupClassifier`. Each is cloned and fitted
        on the same ``X`` and ``y``; wrap a fitted model in
        :class:`sklearn.frozen.FrozenEstimator` to use it as it is (its clone is itself
        and its ``fit`` does nothing). ``"drop"`` leaves a member out, e.g. in a grid
        search. Parameters read ``{name}__{parameter}``.
    weights : array-like of shape (n_estimators,), default=None
        Weight of each member's probabilities, in the order of ``estimators`` (a
        dropped member's is ignored). None: equal weights.
    mean : {"arithmetic", "geometric"}, default="arithmetic"
        How the members' probabilities are averaged, head by head: the weighted
        arithmetic mean (soft voting), or the weighted geometric mean renormalised so
        that each row sums to 1 (see Notes).
    decision : {"argmax", "balanced"}, default="argmax"
        How ``predict`` picks each head's label from ``predict_proba``, as
        :class:`~spinecls.DualHeadClassifier`'s ``decision``: the most probable class, or
        the class of largest probability over its training share (``class_prior_``), the
        best guess for balanced accuracy.
    n_jobs : int, default=None
        Members fitted in parallel by joblib (``-1``: all cores).

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted members, without the dropped ones.
    named_estimators_ : sklearn.utils.Bunch
        Every member by name, ``"drop"`` for dropped ones.
    weights_ : ndarray of shape (n_fitted_members,)
        The weights of ``estimators_``, summing to 1.
    classes_ : HeadClasses
        Condition classes and severity classes, on which all members agree.
    class_prior_ : list of two ndarrays or None
        Each head's class shares in the members' training rows, averaged with
        ``weights_`` (a member's ``class_prior_``, or that of the
        :class:`~spinecls.DualHeadClassifier` that ends it: a Pipeline's last step, a
        FrozenEstimator's estimator); None when a member of non-zero weight has none,
        such as a :class:`~spinecls.routing.ConditionGroupClassifier`
        (``decision="balanced"`` then refuses to fit).

    See Also
    --------
    spinecls.routing.ConditionGroupClassifier : One model per condition group.
    sklearn.ensemble.VotingClassifier : Soft voting for one output.

    Notes
    -----
    ``predict_proba`` is the weighted arithmetic mean of the members' probabilities,
    head by head: each row still sums to 1, and a class that one member rules out
    keeps the others' probability. ``mean="geometric"`` takes ``exp`` of the weighted
    mean of the log-probabilities and renormalises each row: the members' confident
    disagreements weigh more, and a class that one member gives probability 0 gets
    (almost) 0, which a log loss such as the competition score punishes if the class
    occurs. ``predict`` and ``score`` are those of
    :class:`~spinecls.DualHeadClassifier`. Members must agree on ``classes_`` (the
    same classes in the same order for each head); ``fit`` raises ValueError
    otherwise. Fit parameters go to every member (``clf__groups=...`` for members that
    are Pipelines); with scikit-learn's metadata routing enabled, each member gets
    what it requested.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.frozen import FrozenEstimator
    >>> from spinecls import DualHeadClassifier
    >>> from spinecls.ensemble import DualHeadEnsemble
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 1, 16, 16), dtype=np.float32)
    >>> y = np.column_stack([rng.integers(0, 5, 40), rng.integers(0, 3, 40)])
    >>> trained = DualHeadClassifier(max_epochs=1, random_state=0).fit(X, y)
    >>> ensemble = DualHeadEnsemble(
    ...     [("new", DualHeadClassifier(max_epochs=1, random_state=1)),
    ...      ("trained", FrozenEstimator(trained))],
    ...     weights=[1, 3],
    ... ).fit(X, y)
    >>> [p.shape for p in ensemble.predict_proba(X)]
    [(40, 5), (40, 3)]
    >>> ensemble.named_estimators_["trained"].estimator is trained, ensemble.weights_.tolist()
    (True, [0.25, 0.75])
    """

    def __init__(
        self, estimators, *, weights=None, mean="arithmetic", decision="argmax", n_jobs=None
    ):
        self.estimators = estimators
        self.weights = weights
        self.mean = mean
        self.decision = decision
        self.n_jobs = n_jobs

    # -- scikit-learn plumbing (get_params, set_params, named_estimators: MembersMixin)
    def get_metadata_routing(self):
        """Metadata routing: each member's ``fit`` gets what it requested."""
        return router(self, [(n, e) for n, e in self.estimators if not is_dropped(e)])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Every member takes the same X: the first one's input tags say what it is.
        members = self.estimators if isinstance(self.estimators, (list, tuple)) else []
        kept = [
            pair[1]
            for pair in members
            if isinstance(pair, tuple) and len(pair) == 2 and not is_dropped(pair[1])
        ]
        if kept:
            tags.input_tags = get_tags(kept[0]).input_tags
        return tags

    # -- validation --------------------------------------------------------------------
    def _check_decision(self) -> None:
        if not (isinstance(self.decision, str) and self.decision in DECISIONS):
            raise ValueError(f"decision must be one of {DECISIONS}, got {self.decision!r}")

    def _check_members(self) -> tuple[list[str], list, np.ndarray]:
        """Names and estimators of the kept members, and their weights summing to 1."""
        names, estimators = self._check_pairs(allow_drop=True)
        if self.mean not in MEANS:
            raise ValueError(f"mean must be one of {MEANS}, got {self.mean!r}")
        self._check_decision()
        kept = [k for k, e in enumerate(estimators) if not is_dropped(e)]
        if not kept:
            raise ValueError("all estimators are 'drop': at least one member is needed")
        weights = np.ones(len(estimators)) if self.weights is None else self.weights
        if (
            isinstance(weights, str)
            or not np.iterable(weights)
            or len(weights) != len(estimators)
            or not all(isinstance(w, Real) and np.isfinite(w) and w >= 0 for w in weights)
        ):
            raise ValueError(
                f"weights must be None or {len(estimators)} non-negative numbers, one per "
                f"estimator; got {self.weights!r}"
            )
        weights = np.asarray(weights, dtype=np.float64)[kept]
        if weights.sum() == 0:
            raise ValueError(f"the weights of the kept members sum to 0: {self.weights!r}")
        return [names[k] for k in kept], [estimators[k] for k in kept], weights / weights.sum()

    # -- fit and predict ---------------------------------------------------------------
    def fit(self, X, y=None, **fit_params):
        """Fit a clone of each member on ``X`` and ``y`` (FrozenEstimator members: none).

        Parameters
        ----------
        X : as the members take it
            Images for DualHeadClassifier members, a frame of rows for Pipelines that
            start with a LumbarPatchTransformer.
        y : DataFrame or array of shape (n_samples, 2), optional
            Condition then severity labels; only frozen members do without.
        **fit_params : dict
            Passed to every member's ``fit`` (see Notes of the class).

        Returns
        -------
        self
        """
        names, estimators, weights = self._check_members()
        params = member_params(self, names, fit_params)
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(clone(estimator), X, y, params[name])
            for name, estimator in zip(names, estimators)
        )
        fitted = dict(zip(names, self.estimators_))
        self.named_estimators_ = Bunch(
            **{name: fitted.get(name, "drop") for name, _ in self.estimators}
        )
        self.weights_ = weights
        self.classes_ = _agreed_classes(fitted)
        self.class_prior_ = _mean_prior(fitted, weights, self.decision == "balanced")
        return self

    def predict_proba(self, X) -> list[np.ndarray]:
        """The weighted mean (``mean``) of the members' probabilities, head by head.

        Parameters
        ----------
        X : as for :meth:`fit`

        Returns
        -------
        HeadProbabilities
            ``[P_condition (n_samples, len(classes_[0])), P_severity (n_samples,
            len(classes_[1]))]``, in ``X``'s row order, as
            :meth:`spinecls.DualHeadClassifier.predict_proba` gives them.
        """
        check_is_fitted(self, "estimators_")
        probas = [estimator.predict_proba(X) for estimator in self.estimators_]
        out = []
        for k in range(2):
            heads = [proba[k] for proba in probas]
            stacked = np.stack(heads).astype(np.float64)
            if self.mean == "geometric":
                # the smallest positive float keeps log finite where a member says 0
                logs = np.log(np.clip(stacked, np.finfo(np.float64).tiny, None))
                mean = np.exp(np.average(logs, axis=0, weights=self.weights_))
                mean /= mean.sum(axis=1, keepdims=True)
            else:
                mean = np.average(stacked, axis=0, weights=self.weights_)
            out.append(mean.astype(np.result_type(*heads), copy=False))
        return HeadProbabilities(out)

    def predict(self, X) -> np.ndarray:
        """Labels of both heads: an (n_samples, 2) array, condition then severity.

        The most probable class of each head, or with ``decision="balanced"`` the class
        of largest probability over its training share (``class_prior_``).

        Parameters
        ----------
        X : as for :meth:`fit`

        Returns
        -------
        ndarray of shape (n_samples, 2)
        """
        check_is_fitted(self, "estimators_")
        self._check_decision()
        return decided_labels(
            self,
            self.predict_proba(X),
            "of the members (class_prior_), which this ensemble, "
            "fitted before it kept them, lacks: refit it",
        )


def _member_prior(estimator):
    """A member's training class shares: its own ``class_prior_``, or that of the
    classifier a Pipeline ends with or a FrozenEstimator wraps; None if it has none."""
    while True:
        prior = getattr(estimator, "class_prior_", None)
        if prior is not None:
            return prior
        if hasattr(estimator, "steps"):
            estimator = estimator.steps[-1][1]
        elif type(estimator).__name__ == "FrozenEstimator":
            estimator = estimator.estimator
        else:
            return None


def _mean_prior(members: dict, weights: np.ndarray, needed: bool):
    """The members' class shares averaged with the ensemble's weights (members of weight 0
    left out); None if one has none, a ValueError naming it when ``decision="balanced"``
    needs them."""
    weighed = [(n, e, w) for (n, e), w in zip(members.items(), weights) if w > 0]
    priors = {name: _member_prior(estimator) for name, estimator, _ in weighed}
    weights = [w for _, _, w in weighed]
    missing = [name for name, prior in priors.items() if prior is None]
    if missing:
        if needed:
            raise ValueError(
                f"decision='balanced' needs each member's training class shares "
                f"(class_prior_), which {missing[0]!r} does not have: use a "
                "DualHeadClassifier, or a Pipeline or FrozenEstimator ending in one"
            )
        return None
    return [
        np.average(
            [np.asarray(prior[k], dtype=np.float64) for prior in priors.values()],
            axis=0,
            weights=weights,
        )
        for k in range(2)
    ]


def _fit_member(estimator, X, y, params: dict):
    estimator.fit(X, y, **params)
    return estimator


def _agreed_classes(members: dict) -> list[np.ndarray]:
    """The members' common ``classes_``, or a ValueError naming two that differ."""
    (first, estimator), *others = members.items()
    classes = member_classes(estimator, first)
    for name, other in others:
        theirs = member_classes(other, name)
        for head, mine, their in zip(("condition", "severity"), classes, theirs):
            if mine.tolist() != their.tolist():
                raise ValueError(
                    f"members disagree on classes_: {name!r} has {head} classes "
                    f"{their.tolist()} where {first!r} has {mine.tolist()}; an ensemble "
                    "averages columns of the same classes"
                )
    return HeadClasses(classes)
