"""ConditionGroupClassifier: one model per condition group, rows routed by their condition.

The condition of a crop is known when it is cut: it is the label of its coordinate. The
top solutions of the RSNA 2024 competition trained one model per condition group (the
spinal canal on sagittal T2, the foramina on sagittal T1, the subarticular recesses on
axial T2), each on its own kind of crop. This meta-estimator routes the rows of a frame
to one estimator per group by the frame's ``condition`` column and puts their
probabilities back in the frame's row order, as one dual-head model.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, MultiOutputMixin, clone
from sklearn.utils import Bunch
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from ._utils.dual_head import (
    DualHeadMixin,
    HeadClasses,
    HeadProbabilities,
    MembersMixin,
    member_classes,
    member_params,
    router,
    take_params,
    take_rows,
)
from ._utils.validation import located, two_columns
from .labels import CONDITIONS, SCORE_GROUPS, slug

__all__ = ["CONDITION_GROUPS", "ConditionGroupClassifier"]

CONDITION_GROUPS: dict[str, tuple[str, ...]] = {
    group: tuple(c for c in CONDITIONS if group in slug(c).split("_")) for group in SCORE_GROUPS
}
"""The competition's condition groups: ``spinal``, ``foraminal`` (left and right) and
``subarticular`` (left and right), as the competition score pools them."""


class ConditionGroupClassifier(
    MembersMixin, DualHeadMixin, ClassifierMixin, MultiOutputMixin, _BaseComposition
):
    """One dual-head estimator per condition group, each fitted on its group's rows.

    ``X`` is a frame of labelled coordinates (:func:`spinecls.load_rsna`): its
    ``condition`` column sends each row to the estimator named after the row's group.
    Each estimator is typically a Pipeline of :class:`~spinecls.LumbarPatchTransformer`
    and :class:`~spinecls.DualHeadClassifier`, with crops and a model of its own.

    Parameters
    ----------
    estimators : list of (str, estimator)
        One estimator per group, named by the group (e.g. ``"spinal"``). Each is
        cloned and fitted on the rows of its group only; it takes those rows and a
        two-column y, and predicts ``[P_condition, P_severity]`` with a two-array
        ``classes_``. Its parameters read ``{name}__{parameter}``, such as
        ``spinal__clf__lr``.
    condition_groups : dict of str to sequence, default=None
        ``{group: conditions}``: which values of the ``condition`` column each group
        holds. None: :data:`CONDITION_GROUPS`, the competition's three groups. Others
        split differently, e.g. ``{"sagittal": [spinal, left and right foraminal],
        "axial": [left and right subarticular]}`` or one group per condition.
    n_jobs : int, default=None
        Groups fitted in parallel by joblib (``-1``: all cores).

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted clones, in the order of ``estimators``.
    named_estimators_ : sklearn.utils.Bunch
        The same by name.
    condition_groups_ : dict of str to tuple
        The groups as fitted.
    classes_ : HeadClasses
        Condition classes and severity classes: the sorted union of the members'.

    See Also
    --------
    spinecls.ensemble.DualHeadEnsemble : Averages the probabilities of several models.

    Notes
    -----
    The output is that of a dual-head model, so :data:`spinecls.metrics.rsna_scorer`,
    :func:`spinecls.metrics.to_submission`, :func:`spinecls.metrics.dual_head_report`
    and ``GridSearchCV`` take it as they take one Pipeline:

    - ``predict_proba(X)`` is ``[P_condition, P_severity]``, one row per row of ``X``
      in its order. A row's condition probabilities are its group estimator's, in the
      columns of that group's conditions, and 0 for the other groups' conditions (the
      spinal model, whose condition head has one class, gives its condition 1). Its
      severity probabilities are its group estimator's, and 0 for a severity class
      that group never saw in training (``fit`` warns: a log loss punishes a
      probability of 0 for a class that occurs).
    - ``predict(X)`` is an (n_samples, 2) array; ``score`` the mean of the two heads'
      accuracies, as :class:`~spinecls.DualHeadClassifier` scores.

    Every row must belong to a group that has an estimator, in ``fit`` as in
    ``predict_proba``, and every estimator must have training rows: otherwise
    ValueError names the rows or the group. ``fit(X, y, **fit_params)`` passes each
    estimator the fit parameters, with those of one value per row of ``X`` (such as
    study ids: ``clf__groups=frame["study_id"]``, for the validation split of a
    Pipeline's DualHeadClassifier) cut to its group's rows. With scikit-learn's
    metadata routing enabled, each estimator gets what it requested.

    Examples
    --------
    >>> import tempfile, spinecls
    >>> from sklearn.pipeline import Pipeline
    >>> from spinecls import DualHeadClassifier, LumbarPatchTransformer
    >>> from spinecls.routing import ConditionGroupClassifier
    >>> root = spinecls.make_synthetic_rsna(
    ...     tempfile.mkdtemp() + "/d", n_studies=2, random_state=2, image_size=(64, 96))
    >>> frame = spinecls.load_rsna(root)
    >>> def pipeline():
    ...     return Pipeline([("patches", LumbarPatchTransformer(patch_size=16)),
    ...                      ("clf", DualHeadClassifier(max_epochs=1, random_state=0))])
    >>> model = ConditionGroupClassifier([("spinal", pipeline()), ("foraminal", pipeline()),
    ...                                   ("subarticular", pipeline())])
    >>> model = model.set_params(spinal__clf__lr=3e-3)
    >>> y = frame[["condition", "severity"]]
    >>> model = model.fit(frame, y, clf__groups=frame["study_id"])
    >>> [p.shape[1] for p in model.predict_proba(frame)], len(model.predict(frame)) == len(frame)
    ([5, 3], True)
    >>> model.named_estimators_["spinal"][-1].classes_[0].tolist()
    ['Spinal Canal Stenosis']
    """

    def __init__(self, estimators, *, condition_groups=None, n_jobs=None):
        self.estimators = estimators
        self.condition_groups = condition_groups
        self.n_jobs = n_jobs

    # -- scikit-learn plumbing (get_params, set_params, named_estimators: MembersMixin)
    def get_metadata_routing(self):
        """Metadata routing: each estimator's ``fit`` gets what it requested."""
        return router(self, self.estimators)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # a DataFrame with a condition column
        return tags

    # -- validation --------------------------------------------------------------------
    def _check_groups(self) -> dict[str, tuple]:
        groups = CONDITION_GROUPS if self.condition_groups is None else self.condition_groups
        if not isinstance(groups, dict) or not groups:
            raise ValueError(
                f"condition_groups must be None or a non-empty dict {{group: conditions}}, "
                f"got {groups!r}"
            )
        checked, seen = {}, {}
        for group, conditions in groups.items():
            if isinstance(conditions, str) or not np.iterable(conditions) or not len(conditions):
                raise ValueError(
                    f"condition_groups[{group!r}] must be a non-empty list of conditions, "
                    f"got {conditions!r}"
                )
            for condition in conditions:
                if condition in seen:
                    raise ValueError(
                        f"condition {condition!r} is in two condition groups, "
                        f"{seen[condition]!r} and {group!r}"
                    )
                seen[condition] = group
            checked[group] = tuple(conditions)
        return checked

    def _check_estimators(self, groups: dict) -> tuple[list[str], list]:
        names, estimators = self._check_pairs()
        unknown = [name for name in names if name not in groups]
        if unknown:
            raise ValueError(
                f"estimator name(s) {unknown} are no condition group; the groups are "
                f"{list(groups)} (condition_groups defines others)"
            )
        return names, estimators

    def _route(self, X, groups: dict, names: list[str]) -> dict[str, np.ndarray]:
        """The positions in X of each named group's rows."""
        if not isinstance(X, pd.DataFrame) or "condition" not in X.columns:
            columns = list(X.columns) if isinstance(X, pd.DataFrame) else type(X).__name__
            raise ValueError(
                "X must be a DataFrame of rows with a 'condition' column (load_rsna's frame) "
                f"to route them to their condition group; got {columns}"
            )
        group_of = {c: group for group, conditions in groups.items() for c in conditions}
        row_groups = X["condition"].map(group_of).to_numpy()
        unknown = pd.isna(row_groups)
        if unknown.any():
            values = sorted(set(X["condition"][unknown].tolist()), key=str)
            raise ValueError(
                f"X's condition column holds {values} at {located(unknown, X.index)}, "
                f"in no condition group; the groups are {groups}"
            )
        orphans = sorted(set(row_groups) - set(names))
        if orphans:
            raise ValueError(
                f"{located(row_groups == orphans[0], X.index)} of X are in condition group "
                f"{orphans[0]!r}, which has no estimator; the estimators are {names}"
            )
        return {name: np.flatnonzero(row_groups == name) for name in names}

    # -- fit and predict ---------------------------------------------------------------
    def fit(self, X, y, **fit_params):
        """Fit a clone of each estimator on the rows of its group.

        Parameters
        ----------
        X : pandas.DataFrame
            Rows with a ``condition`` column and whatever the estimators read
            (:func:`spinecls.load_rsna`'s frame for a LumbarPatchTransformer).
        y : DataFrame or array of shape (n_samples, 2)
            Condition then severity labels. When its conditions are X's condition
            names (not codes), they must equal X's, row by row.
        **fit_params : dict
            Passed to each estimator's ``fit``; values with one entry per row of
            ``X`` are cut to the estimator's rows (see Notes of the class).

        Returns
        -------
        self
        """
        groups = self._check_groups()
        names, estimators = self._check_estimators(groups)
        routes = self._route(X, groups, names)
        condition = two_columns(y)[0]
        if len(condition) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(condition)}")
        known = set(X["condition"])
        if all(c in known for c in condition):
            differ = condition != X["condition"].to_numpy()
            if differ.any():
                raise ValueError(
                    f"y's condition differs from X's at {located(differ, X.index)}: "
                    "X's condition column routes the rows, so they must agree"
                )
        for name in names:
            if not len(routes[name]):
                raise ValueError(
                    f"no training rows of condition group {name!r} (conditions "
                    f"{list(groups[name])}): drop its estimator or add rows"
                )
        params = member_params(self, names, fit_params)
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(
                clone(estimator),
                name,
                take_rows(X, routes[name]),
                take_rows(y, routes[name]),
                take_params(params[name], len(X), routes[name]),
            )
            for name, estimator in zip(names, estimators)
        )
        self.named_estimators_ = Bunch(**dict(zip(names, self.estimators_)))
        self.condition_groups_ = groups
        member = {name: member_classes(e, name) for name, e in self.named_estimators_.items()}
        self.classes_ = HeadClasses(
            np.unique(np.concatenate([m[k] for m in member.values()])) for k in range(2)
        )
        for name, (_, severities) in member.items():
            unseen = sorted(set(self.classes_[1].tolist()) - set(severities.tolist()), key=str)
            if unseen:
                warnings.warn(
                    f"condition group {name!r} had no {unseen} rows to train on: it gives "
                    "them probability 0, which a log loss such as the competition score "
                    "counts as 34.5 for each such row",
                    UserWarning,
                    stacklevel=2,
                )
        return self

    def predict_proba(self, X) -> list[np.ndarray]:
        """Probabilities of both heads, each row from its group's estimator.

        Parameters
        ----------
        X : pandas.DataFrame
            Rows as for :meth:`fit`.

        Returns
        -------
        HeadProbabilities
            ``[P_condition (n_samples, len(classes_[0])), P_severity (n_samples,
            len(classes_[1]))]`` in ``X``'s row order (see Notes of the class), as
            :meth:`spinecls.DualHeadClassifier.predict_proba` gives them.
        """
        check_is_fitted(self, "estimators_")
        routes = self._route(X, self.condition_groups_, list(self.named_estimators_))
        parts = []
        for name, rows in routes.items():
            if len(rows):
                estimator = self.named_estimators_[name]
                probas = estimator.predict_proba(take_rows(X, rows))
                parts.append((rows, member_classes(estimator, name), probas))
        out = []
        for k, classes in enumerate(self.classes_):
            dtype = np.result_type(np.float32, *(probas[k] for *_, probas in parts))
            proba = np.zeros((len(X), len(classes)), dtype=dtype)
            for rows, member, probas in parts:
                proba[np.ix_(rows, np.searchsorted(classes, member[k]))] = probas[k]
            out.append(proba)
        return HeadProbabilities(out)


def _fit_member(estimator, name: str, X, y, params: dict):
    try:
        estimator.fit(X, y, **params)
    except ValueError as exc:
        raise ValueError(f"the {name!r} estimator, on its {len(X)} rows: {exc}") from exc
    return estimator
