"""DualHeadEnsemble: weighted soft voting over two heads, frozen members, the scikit-learn
contract (clone, nested parameters, GridSearchCV, metadata)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import config_context
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline

from spinecls import CONDITIONS, SEVERITIES, DualHeadClassifier, LumbarPatchTransformer
from spinecls.classifier import HeadClasses, HeadProbabilities
from spinecls.ensemble import DualHeadEnsemble
from spinecls.metrics import rsna_scorer
from spinecls.routing import CONDITION_GROUPS, ConditionGroupClassifier

from .helpers import RowwiseDualHead

SMALL = dict(module__widths=(4, 8, 8), module__hidden=16, batch_size=32)


def target(frame):
    return frame[["condition", "severity"]]


def balanced(frame):
    """Labels in which every condition group has every severity."""
    return target(frame).assign(severity=np.array(SEVERITIES)[np.arange(len(frame)) % 3])


def images(n=48, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 1, 16, 16), dtype=np.float32)
    y = pd.DataFrame(
        {
            "condition": np.array(CONDITIONS)[np.arange(n) % 5],
            "severity": np.array(SEVERITIES)[np.arange(n) % 3],
        }
    )
    return X, y


def test_probabilities_are_the_weighted_mean_of_the_members(rsna_frame):
    y = target(rsna_frame)
    a, b = RowwiseDualHead(alpha=1.0), RowwiseDualHead(alpha=-2.0)
    pa, pb = (clone(m).fit(rsna_frame, y).predict_proba(rsna_frame) for m in (a, b))
    mean = DualHeadEnsemble([("a", a), ("b", b)]).fit(rsna_frame, y)
    weighted = DualHeadEnsemble([("a", a), ("b", b)], weights=[1, 3]).fit(rsna_frame, y)
    for k in range(2):
        np.testing.assert_allclose(mean.predict_proba(rsna_frame)[k], (pa[k] + pb[k]) / 2)
        np.testing.assert_allclose(weighted.predict_proba(rsna_frame)[k], (pa[k] + 3 * pb[k]) / 4)
        np.testing.assert_allclose(weighted.predict_proba(rsna_frame)[k].sum(axis=1), 1)
    assert weighted.weights_.tolist() == [0.25, 0.75]
    assert [c.tolist() for c in mean.classes_] == [sorted(CONDITIONS), sorted(SEVERITIES)]
    predicted = mean.predict(rsna_frame)
    assert predicted.shape == (len(rsna_frame), 2)
    assert (
        predicted[:, 1].tolist()
        == mean.classes_[1][mean.predict_proba(rsna_frame)[1].argmax(1)].tolist()
    )
    assert 0 <= mean.score(rsna_frame, y) <= 1
    dropped = DualHeadEnsemble([("a", a), ("b", "drop")], weights=[2, 5]).fit(rsna_frame, y)
    assert dropped.named_estimators_["b"] == "drop" and len(dropped.estimators_) == 1
    np.testing.assert_allclose(dropped.predict_proba(rsna_frame)[1], pa[1])
    shuffled = rsna_frame.sample(frac=1, random_state=0)
    order = rsna_frame.index.get_indexer(shuffled.index)
    np.testing.assert_allclose(
        weighted.predict_proba(shuffled)[1], weighted.predict_proba(rsna_frame)[1][order]
    )


def test_the_geometric_mean_is_renormalised_and_survives_zeros(rsna_frame):
    y = target(rsna_frame)
    a, b = RowwiseDualHead(alpha=1.0), RowwiseDualHead(alpha=-2.0)
    pa, pb = (clone(m).fit(rsna_frame, y).predict_proba(rsna_frame) for m in (a, b))
    geometric = DualHeadEnsemble([("a", a), ("b", b)], weights=[1, 3], mean="geometric")
    proba = geometric.fit(rsna_frame, y).predict_proba(rsna_frame)
    for k in range(2):
        expected = pa[k] ** 0.25 * pb[k] ** 0.75
        np.testing.assert_allclose(proba[k], expected / expected.sum(1, keepdims=True))
        assert proba[k].dtype == pa[k].dtype
    # a per-group model gives 0 to the other groups' conditions: they stay 0, rows sum to 1
    groups = ConditionGroupClassifier([(g, RowwiseDualHead()) for g in CONDITION_GROUPS])
    members = [("groups", groups), ("plain", RowwiseDualHead())]
    condition = DualHeadEnsemble(members, mean="geometric").fit(rsna_frame, balanced(rsna_frame))
    condition = condition.predict_proba(rsna_frame)[0]
    assert np.isfinite(condition).all()
    np.testing.assert_allclose(condition.sum(1), 1)
    for conditions in CONDITION_GROUPS.values():
        rows = rsna_frame.condition.isin(conditions).to_numpy()
        columns = np.isin(sorted(CONDITIONS), conditions)
        np.testing.assert_allclose(condition[np.ix_(rows, columns)].sum(1), 1)


def test_frozen_members_are_used_as_they_are_and_the_rest_are_fitted():
    X, y = images()
    trained = DualHeadClassifier(max_epochs=1, random_state=0, **SMALL).fit(X, y)
    weights = {k: v.clone() for k, v in trained.net_.module_.state_dict().items()}
    before = trained.predict_proba(X)
    frozen = FrozenEstimator(trained)
    fresh = DualHeadClassifier(max_epochs=1, random_state=1, **SMALL)
    ensemble = DualHeadEnsemble([("trained", frozen), ("fresh", fresh)]).fit(X, y)
    assert ensemble.named_estimators_["trained"] is frozen
    assert ensemble.named_estimators_["fresh"] is not fresh and not hasattr(fresh, "net_")
    assert len(trained.history_) == 1
    for name, value in trained.net_.module_.state_dict().items():
        assert torch.equal(value, weights[name])
    other = ensemble.named_estimators_["fresh"].predict_proba(X)
    for k in range(2):
        np.testing.assert_allclose(trained.predict_proba(X)[k], before[k])
        np.testing.assert_allclose(
            ensemble.predict_proba(X)[k], (before[k] + other[k]) / 2, rtol=1e-6
        )
    only_frozen = DualHeadEnsemble([("a", frozen), ("b", FrozenEstimator(trained))]).fit(X)
    np.testing.assert_allclose(only_frozen.predict_proba(X)[1], before[1], rtol=1e-6)


def test_same_seeds_same_ensemble():
    X, y = images()

    def make():
        return DualHeadEnsemble(
            [(f"m{s}", DualHeadClassifier(max_epochs=1, random_state=s, **SMALL)) for s in (0, 1)]
        )

    a, b = make().fit(X, y).predict_proba(X), make().fit(X, y).predict_proba(X)
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa, pb)
    assert a[0].dtype == np.float32


def test_an_ensemble_of_a_pipeline_and_a_per_group_model_on_dicom_rows(rsna_frame):
    def pipeline(seed):
        clf = DualHeadClassifier(max_epochs=1, random_state=seed, **SMALL)
        return Pipeline([("patches", LumbarPatchTransformer(patch_size=32)), ("clf", clf)])

    groups = ConditionGroupClassifier([(g, pipeline(1)) for g in CONDITION_GROUPS])
    y = balanced(rsna_frame)
    ensemble = DualHeadEnsemble([("one", pipeline(0)), ("groups", groups)])
    ensemble.fit(rsna_frame, y, clf__groups=rsna_frame["study_id"])
    members = [m.predict_proba(rsna_frame) for m in ensemble.estimators_]
    for k, proba in enumerate(ensemble.predict_proba(rsna_frame)):
        np.testing.assert_allclose(proba, (members[0][k] + members[1][k]) / 2, rtol=1e-6)
    assert np.isfinite(rsna_scorer(ensemble, rsna_frame, y))
    assert ensemble.get_params()["groups__spinal__clf__lr"] == 1e-3


def test_members_must_agree_on_their_classes(rsna_frame):
    y = target(rsna_frame)
    codes = y.assign(severity=y["severity"].map(SEVERITIES.index))
    a, b = RowwiseDualHead().fit(rsna_frame, y), RowwiseDualHead().fit(rsna_frame, codes)
    with pytest.raises(
        ValueError,
        match=r"members disagree on classes_: 'b' has severity classes \['0', '1', '2'\] "
        r"where 'a' has \['moderate', 'normal_mild', 'severe'\]",
    ):
        DualHeadEnsemble([("a", FrozenEstimator(a)), ("b", FrozenEstimator(b))]).fit(rsna_frame)
    X = np.random.default_rng(0).random((20, 3))
    single = LogisticRegression().fit(X, np.arange(20) % 2)
    with pytest.raises(ValueError, match="'lr' is not a dual-head classifier"):
        DualHeadEnsemble([("lr", FrozenEstimator(single)), ("b", FrozenEstimator(b))]).fit(X)


def test_nested_parameters_clone_and_grid_search(rsna_frame):
    groups = ConditionGroupClassifier([(g, RowwiseDualHead()) for g in CONDITION_GROUPS])
    ensemble = DualHeadEnsemble([("plain", RowwiseDualHead()), ("groups", groups)], n_jobs=1)
    params = ensemble.get_params()
    assert params["plain__alpha"] == 1.0 and params["groups__spinal__alpha"] == 1.0
    ensemble.set_params(groups__foraminal__alpha=2.0, weights=[1, 2])
    twin = clone(ensemble)
    assert twin.get_params()["groups__foraminal__alpha"] == 2.0 and twin.weights == [1, 2]
    assert twin.named_estimators["groups"] is not groups
    search = GridSearchCV(
        ensemble,
        {"plain": [RowwiseDualHead(), "drop"], "groups__spinal__alpha": [0.5, 3.0]},
        cv=GroupKFold(n_splits=2),
    )
    search.fit(rsna_frame, balanced(rsna_frame), groups=rsna_frame["study_id"])
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.get_params()["estimator__groups__spinal__alpha"] == 1.0
    with pytest.raises(NotFittedError):
        ensemble.predict_proba(rsna_frame)


def test_fit_parameters_and_routed_metadata_reach_every_member(rsna_frame):
    y, studies = target(rsna_frame), rsna_frame["study_id"].to_numpy()
    ensemble = DualHeadEnsemble([("a", RowwiseDualHead()), ("b", RowwiseDualHead())])
    ensemble.fit(rsna_frame, y, groups=studies)
    assert all((m.groups_ == studies).all() for m in ensemble.estimators_)
    with config_context(enable_metadata_routing=True):
        asks = RowwiseDualHead().set_fit_request(groups=True)
        declines = RowwiseDualHead().set_fit_request(groups=False)
        ensemble = DualHeadEnsemble([("asks", asks), ("declines", declines)])
        ensemble.fit(rsna_frame, y, groups=studies)
        assert (ensemble.named_estimators_["asks"].groups_ == studies).all()
        assert ensemble.named_estimators_["declines"].groups_ is None


@pytest.mark.parametrize(
    ("estimators", "weights", "error", "message"),
    [
        ([], None, ValueError, "non-empty list of \\(name, estimator\\) pairs"),
        ([("a", RowwiseDualHead()), ("a", RowwiseDualHead())], None, ValueError, "not unique"),
        ([("a", "drop")], None, ValueError, "all estimators are 'drop'"),
        ([("a", "model")], None, TypeError, "must have fit and predict_proba or be 'drop'"),
        ([("a", RowwiseDualHead)], None, TypeError, "estimator instance"),
        ([("a", RowwiseDualHead())], [1, 2], ValueError, "weights must be None or 1 non-neg"),
        ([("a", RowwiseDualHead())], [-1], ValueError, "non-negative numbers"),
        ([("a", RowwiseDualHead())], "equal", ValueError, "got 'equal'"),
        ([("a", RowwiseDualHead()), ("b", "drop")], [0, 1], ValueError, "sum to 0"),
    ],
)
def test_bad_members_and_weights_say_what_is_wrong(rsna_frame, estimators, weights, error, message):
    with pytest.raises(error, match=message):
        DualHeadEnsemble(estimators, weights=weights).fit(rsna_frame, target(rsna_frame))


def test_an_unknown_mean_is_named(rsna_frame):
    with pytest.raises(ValueError, match=r"mean must be one of \('arithmetic', 'geometric'\), "):
        DualHeadEnsemble([("a", RowwiseDualHead())], mean="median").fit(rsna_frame)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DualHeadEnsemble([("a", RowwiseDualHead()), ("b", RowwiseDualHead(alpha=2.0))]),
        lambda: ConditionGroupClassifier([(g, RowwiseDualHead()) for g in CONDITION_GROUPS]),
    ],
    ids=["DualHeadEnsemble", "ConditionGroupClassifier"],
)
def test_meta_estimators_keep_the_classifiers_contract(make, rsna_frame):
    """NotFittedError before fit; HeadProbabilities and HeadClasses after, as the classifier."""
    model, y = make(), balanced(rsna_frame)
    for call in (model.predict, model.predict_proba, lambda X: model.score(X, y)):
        with pytest.raises(NotFittedError):
            call(rsna_frame)
    model.fit(rsna_frame, y)
    proba = model.predict_proba(rsna_frame)
    assert isinstance(proba, HeadProbabilities) and isinstance(model.classes_, HeadClasses)
    assert [p.shape for p in proba] == [(len(rsna_frame), 5), (len(rsna_frame), 3)]
    with pytest.raises(ValueError, match="one array per head.*head_scorer"):
        np.asarray(proba)
    with pytest.raises(ValueError, match="one array per head.*head_scorer"):
        get_scorer("balanced_accuracy")(model, rsna_frame, y)


def test_balanced_decision_divides_by_the_members_weighted_class_shares():
    X, y = images(n=60)
    y = y.assign(severity=np.array(SEVERITIES)[[0] * 40 + [1] * 14 + [2] * 6])
    first = DualHeadClassifier(max_epochs=1, random_state=0, **SMALL).fit(X, y)
    second = Pipeline([("clf", DualHeadClassifier(max_epochs=1, random_state=1, **SMALL))])
    second.fit(X[20:], y[20:])  # trained on other rows: other shares
    members = [("a", FrozenEstimator(first)), ("b", FrozenEstimator(second))]
    ensemble = DualHeadEnsemble(members, weights=[3, 1], decision="balanced").fit(X, y)
    for k in range(2):
        np.testing.assert_allclose(
            ensemble.class_prior_[k],
            0.75 * first.class_prior_[k] + 0.25 * second[-1].class_prior_[k],
        )
    probas = ensemble.predict_proba(X)
    severity = np.asarray(ensemble.classes_[1])[(probas[1] / ensemble.class_prior_[1]).argmax(1)]
    assert (ensemble.predict(X)[:, 1] == severity).all()
    argmax = ensemble.set_params(decision="argmax").predict(X)[:, 1]
    assert (argmax == np.asarray(ensemble.classes_[1])[probas[1].argmax(1)]).all()
    # the rare classes gain what argmax gave the common one
    rare = ~np.isin(y["severity"], [SEVERITIES[0]])
    assert (severity[rare] != SEVERITIES[0]).sum() >= (argmax[rare] != SEVERITIES[0]).sum()


def test_balanced_decision_needs_members_with_class_shares(rsna_frame):
    X, y = rsna_frame, target(rsna_frame)
    member = RowwiseDualHead()
    with pytest.raises(ValueError, match="class_prior_.*'odd'"):
        DualHeadEnsemble([("odd", member)], decision="balanced").fit(X, y)
    fitted = DualHeadEnsemble([("odd", member)]).fit(X, y)  # argmax needs none
    assert fitted.class_prior_ is None
    with pytest.raises(ValueError, match="decision must be one of"):
        DualHeadEnsemble([("odd", member)], decision="prior").fit(X, y)
