"""ConditionGroupClassifier: routing by condition, the dual-head output, the scikit-learn
contract (clone, nested parameters, GridSearchCV, metadata), and the one-class condition
head it needs from DualHeadClassifier."""

from __future__ import annotations

import io
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn import config_context
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline

from spinecls import CONDITIONS, SEVERITIES, DualHeadClassifier, LumbarPatchTransformer
from spinecls.classifier import DualHeadLoss
from spinecls.metrics import dual_head_report, rsna_scorer, to_submission
from spinecls.routing import CONDITION_GROUPS, ConditionGroupClassifier

from .helpers import RowwiseDualHead

GROUP_OF = {c: group for group, conditions in CONDITION_GROUPS.items() for c in conditions}


def pipeline(**clf):
    small = dict(module__widths=(4, 8, 8), module__hidden=16)  # the study's layout, narrow
    params = dict(max_epochs=2, batch_size=32, random_state=0, **small) | clf
    return Pipeline(
        [("patches", LumbarPatchTransformer(patch_size=32)), ("clf", DualHeadClassifier(**params))]
    )


def per_group(make=pipeline, **kwargs):
    return ConditionGroupClassifier([(g, make()) for g in CONDITION_GROUPS], **kwargs)


def target(frame):
    return frame[["condition", "severity"]]


def balanced(frame):
    """Labels in which every group has every severity (for routing that learns nothing)."""
    return target(frame).assign(severity=np.array(SEVERITIES)[np.arange(len(frame)) % 3])


@pytest.fixture(scope="module")
def fitted(rsna_frame):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = per_group().fit(rsna_frame, target(rsna_frame), clf__groups=rsna_frame.study_id)
    # these six studies have no moderate spinal row and no severe foraminal row
    assert [str(w.message)[:53] for w in caught] == [
        "condition group 'spinal' had no ['moderate'] rows to ",
        "condition group 'foraminal' had no ['severe'] rows to",
    ]
    assert "34.5 for each such row" in str(caught[0].message)
    return model


# -- the one-class condition head --------------------------------------------------------
def test_a_one_class_head_predicts_its_class_and_adds_no_loss():
    logits = torch.randn(6, 3, requires_grad=True)
    single = torch.randn(6, 1, requires_grad=True)
    y = torch.tensor([[0, k % 3] for k in range(6)])
    loss = DualHeadLoss()((single, logits), y)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, y[:, 1]).item())
    loss.backward()
    assert (single.grad == 0).all() and logits.grad.abs().sum() > 0

    rng = np.random.default_rng(0)
    X = rng.random((24, 1, 16, 16), dtype=np.float32)
    y = np.column_stack([np.full(24, CONDITIONS[0]), np.array(SEVERITIES)[np.arange(24) % 3]])
    clf = DualHeadClassifier(max_epochs=1, valid_size=None, random_state=0).fit(X, y)
    condition, severity = clf.predict_proba(X)
    assert clf.classes_[0].tolist() == [CONDITIONS[0]] and (condition == 1).all()
    assert severity.shape == (24, 3) and (clf.predict(X)[:, 0] == CONDITIONS[0]).all()
    conditions = np.array(CONDITIONS)[np.arange(24) % 5]
    with pytest.warns(UserWarning, match=r"severity head has a single class in y \(\['severe'\]\)"):
        alone = clf.fit(X, np.column_stack([conditions, np.full(24, "severe")]))
    assert alone.classes_[0].tolist() == sorted(CONDITIONS)
    assert (alone.predict_proba(X)[1] == 1).all()


# -- routing and the output contract --------------------------------------------------------
def test_rows_go_to_their_group_and_come_back_in_the_frames_order(fitted, rsna_frame):
    condition, severity = fitted.predict_proba(rsna_frame)
    assert fitted.classes_[0].tolist() == sorted(CONDITIONS)
    assert fitted.classes_[1].tolist() == sorted(SEVERITIES)
    n = len(rsna_frame)
    assert condition.shape == (n, 5) and severity.shape == (n, 3)
    np.testing.assert_allclose(condition.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(severity.sum(axis=1), 1, rtol=1e-5)
    groups = rsna_frame["condition"].map(GROUP_OF).to_numpy()
    for name, member in fitted.named_estimators_.items():
        rows = groups == name
        assert member[0].__class__ is LumbarPatchTransformer
        assert set(member[-1].classes_[0]) == set(CONDITION_GROUPS[name])
        own = member.predict_proba(rsna_frame[rows])
        for k, proba in enumerate((condition, severity)):
            columns = np.searchsorted(fitted.classes_[k], member[-1].classes_[k])
            np.testing.assert_array_equal(proba[np.ix_(rows, columns)], own[k])
            others = np.delete(np.arange(proba.shape[1]), columns)
            assert (proba[np.ix_(rows, others)] == 0).all()
    spinal = groups == "spinal"
    assert (condition[spinal, fitted.classes_[0].tolist().index(CONDITIONS[0])] == 1).all()
    # no moderate spinal row in these six studies: that group gives the class 0
    assert fitted.named_estimators_["spinal"][-1].classes_[1].tolist() == ["normal_mild", "severe"]
    assert (severity[spinal, fitted.classes_[1].tolist().index("moderate")] == 0).all()
    predicted = fitted.predict(rsna_frame)
    assert predicted.shape == (len(rsna_frame), 2) and predicted.dtype.kind == "U"
    assert all(GROUP_OF[p] == g for p, g in zip(predicted[:, 0], groups))

    shuffled = rsna_frame.sample(frac=1, random_state=1)
    again = fitted.predict_proba(shuffled)
    order = rsna_frame.index.get_indexer(shuffled.index)
    np.testing.assert_allclose(again[0], condition[order], atol=1e-6)
    np.testing.assert_allclose(again[1], severity[order], atol=1e-6)


def test_scorers_reports_and_submissions_take_it_as_one_model(fitted, rsna_frame):
    y = target(rsna_frame)
    score = rsna_scorer(fitted, rsna_frame, y)
    assert np.isfinite(score) and score < 0
    assert fitted.score(rsna_frame, y) == pytest.approx(
        np.mean([(fitted.predict(rsna_frame)[:, k] == y.iloc[:, k]).mean() for k in range(2)])
    )
    report = dual_head_report(y, fitted.predict(rsna_frame))
    assert report.summary.loc["condition", "support"] == len(rsna_frame)
    submission = to_submission(
        rsna_frame, fitted.predict_proba(rsna_frame)[1], classes=fitted.classes_[1]
    )
    assert len(submission) == 6 * 25


def test_same_seed_same_model_and_pickle_round_trip(fitted, rsna_frame):
    with pytest.warns(UserWarning, match="group '(spinal|foraminal)' had no"):
        twin = clone(fitted).fit(rsna_frame, target(rsna_frame), clf__groups=rsna_frame.study_id)
    expected = fitted.predict_proba(rsna_frame)
    for a, b in zip(twin.predict_proba(rsna_frame), expected):
        np.testing.assert_array_equal(a, b)
    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    buffer.seek(0)
    for a, b in zip(joblib.load(buffer).predict_proba(rsna_frame), expected):
        np.testing.assert_array_equal(a, b)


def test_fit_params_and_routed_metadata_are_cut_to_each_groups_rows(rsna_frame):
    frame = rsna_frame.set_index(rsna_frame.index * 10)  # labels are not positions
    studies = frame["study_id"].to_numpy()
    model = per_group(RowwiseDualHead).fit(frame, balanced(frame), groups=studies)
    groups = frame["condition"].map(GROUP_OF).to_numpy()
    for name, member in model.named_estimators_.items():
        np.testing.assert_array_equal(member.index_, frame.index[groups == name])
        np.testing.assert_array_equal(member.groups_, studies[groups == name])
    with config_context(enable_metadata_routing=True):
        requested = RowwiseDualHead().set_fit_request(groups=True)
        model = ConditionGroupClassifier([(g, requested) for g in CONDITION_GROUPS])
        model.fit(frame, balanced(frame), groups=studies)
        spinal = model.named_estimators_["spinal"]
        np.testing.assert_array_equal(spinal.groups_, studies[groups == "spinal"])


def test_the_inner_validation_split_keeps_each_study_on_one_side(fitted, rsna_frame):
    groups = rsna_frame["condition"].map(GROUP_OF).to_numpy()
    for name, member in fitted.named_estimators_.items():
        studies = rsna_frame["study_id"].to_numpy()[groups == name]
        valid = member[-1].valid_index_
        assert len(valid) and not set(studies[valid]) & set(np.delete(studies, valid))


def test_other_condition_groups_and_parallel_fits(rsna_frame):
    y = balanced(rsna_frame)
    axial = [c for c in CONDITIONS if "Subarticular" in c]
    split = {"sagittal": [c for c in CONDITIONS if c not in axial], "axial": axial}
    model = ConditionGroupClassifier(
        [("sagittal", RowwiseDualHead()), ("axial", RowwiseDualHead(alpha=2.0))],
        condition_groups=split,
    ).fit(rsna_frame, y)
    assert len(model.named_estimators_["sagittal"].index_) == 90
    assert model.named_estimators_["axial"].classes_[0].tolist() == axial
    serial = per_group(RowwiseDualHead).fit(rsna_frame, y).predict_proba(rsna_frame)
    parallel = per_group(RowwiseDualHead, n_jobs=2).fit(rsna_frame, y).predict_proba(rsna_frame)
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


# -- parameters, clone and model selection -----------------------------------------------
def test_nested_parameters_clone_and_set_params_round_trip():
    model = per_group(n_jobs=2)
    params = model.get_params()
    assert params["spinal__clf__lr"] == 1e-3 and params["n_jobs"] == 2
    assert params["foraminal__patches__patch_size"] == 32
    assert params["spinal"] is model.named_estimators["spinal"]
    model.set_params(spinal__clf__lr=0.01, subarticular__patches__patch_size=48)
    assert model.named_estimators["spinal"][-1].lr == 0.01
    assert model.named_estimators["foraminal"][-1].lr == 1e-3
    twin = clone(model)
    assert twin.get_params()["spinal__clf__lr"] == 0.01
    assert twin.get_params()["subarticular__patches__patch_size"] == 48
    assert twin.named_estimators["spinal"] is not model.named_estimators["spinal"]
    replaced = model.set_params(foraminal=RowwiseDualHead(alpha=3.0))
    assert replaced.get_params()["foraminal__alpha"] == 3.0
    wrapped = GridSearchCV(model, {"spinal__clf__lr": [0.1]})
    assert wrapped.get_params()["estimator__spinal__clf__lr"] == 0.01
    wrapped.set_params(estimator__spinal__clf__lr=0.2, estimator__foraminal__alpha=4.0)
    assert model.named_estimators["spinal"][-1].lr == 0.2
    assert clone(wrapped).get_params()["estimator__foraminal__alpha"] == 4.0


# A fold of three studies may hold no moderate or severe spinal row: those are the warnings.
@pytest.mark.filterwarnings("ignore:the severity head has a single class:UserWarning")
@pytest.mark.filterwarnings("ignore:condition group .* had no:UserWarning")
def test_grid_search_over_one_groups_learning_rate(rsna_frame):
    y = target(rsna_frame)
    search = GridSearchCV(
        per_group(lambda: pipeline(max_epochs=1)),
        {"spinal__clf__lr": [1e-3, 1e-2]},
        cv=GroupKFold(n_splits=2),
        scoring={"rsna": rsna_scorer, "accuracy": None},
        refit="rsna",
    )
    search.fit(rsna_frame, y, groups=rsna_frame["study_id"], clf__groups=rsna_frame["study_id"])
    assert [p["spinal__clf__lr"] for p in search.cv_results_["params"]] == [1e-3, 1e-2]
    assert np.isfinite(search.cv_results_["mean_test_rsna"]).all()
    assert (search.cv_results_["mean_test_accuracy"] > 0).all()
    best = search.best_estimator_
    assert best.named_estimators_["spinal"][-1].lr == search.best_params_["spinal__clf__lr"]
    assert best.named_estimators_["foraminal"][-1].lr == 1e-3


def test_grid_search_in_worker_processes(rsna_frame):
    search = GridSearchCV(
        per_group(RowwiseDualHead), {"foraminal__alpha": [0.5, 2.0]}, cv=GroupKFold(2), n_jobs=2
    )
    search.fit(rsna_frame, balanced(rsna_frame), groups=rsna_frame["study_id"])
    assert search.best_estimator_.named_estimators_["foraminal"].alpha in (0.5, 2.0)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


# -- bad input -----------------------------------------------------------------------------
def test_rows_without_an_estimator_or_a_group_are_named(rsna_frame):
    y = balanced(rsna_frame)
    partial = ConditionGroupClassifier([("spinal", RowwiseDualHead())])
    with pytest.raises(
        ValueError,
        match=r"row\(s\) 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 and 50 more of X are in condition "
        r"group 'foraminal', "
        r"which has no estimator; the estimators are \['spinal'\]",
    ):
        partial.fit(rsna_frame, y)
    spinal = rsna_frame["condition"] == CONDITIONS[0]
    partial.fit(rsna_frame[spinal], y[spinal])
    with pytest.raises(ValueError, match="condition group 'foraminal', which has no estimator"):
        partial.predict_proba(rsna_frame)
    odd = rsna_frame.assign(condition=rsna_frame["condition"].replace(CONDITIONS[0], "Scoliosis"))
    with pytest.raises(
        ValueError,
        match=r"holds \['Scoliosis'\] at row\(s\) 0, 1, 2, 3, 4, 25, .* in no condition group",
    ):
        per_group(RowwiseDualHead).fit(odd, y.assign(condition=odd["condition"]))
    with pytest.raises(ValueError, match="no training rows of condition group 'subarticular'"):
        sagittal = ~rsna_frame["condition"].str.contains("Subarticular")
        per_group(RowwiseDualHead).fit(rsna_frame[sagittal], y[sagittal])


def test_bad_estimators_groups_and_targets_say_what_is_wrong(rsna_frame):
    y = balanced(rsna_frame)
    model = per_group(RowwiseDualHead)
    with pytest.raises(NotFittedError):
        model.predict_proba(rsna_frame)
    with pytest.raises(ValueError, match=r"name\(s\) \['spine'\] are no condition group"):
        ConditionGroupClassifier([("spine", RowwiseDualHead())]).fit(rsna_frame, y)
    with pytest.raises(ValueError, match="Names provided are not unique"):
        ConditionGroupClassifier([("spinal", RowwiseDualHead())] * 2).fit(rsna_frame, y)
    with pytest.raises(ValueError, match="list of \\(name, estimator\\) pairs"):
        ConditionGroupClassifier(RowwiseDualHead()).fit(rsna_frame, y)
    with pytest.raises(TypeError, match="must have fit and predict_proba, got 'model'"):
        ConditionGroupClassifier([("spinal", "model")]).fit(rsna_frame, y)
    with pytest.raises(TypeError, match="must have fit and predict_proba, got 'drop'"):
        ConditionGroupClassifier([("spinal", "drop")]).fit(rsna_frame, y)  # no 'drop' here
    twice = {"a": [CONDITIONS[0]], "b": [CONDITIONS[0], CONDITIONS[1]]}
    with pytest.raises(ValueError, match="'Spinal Canal Stenosis' is in two condition groups"):
        ConditionGroupClassifier([("a", RowwiseDualHead())], condition_groups=twice).fit(
            rsna_frame, y
        )
    with pytest.raises(ValueError, match="'condition' column.*got \\['x'\\]"):
        model.fit(rsna_frame[["x"]], y)
    with pytest.raises(
        ValueError, match=f"X has {len(rsna_frame)} rows but y has {len(rsna_frame) - 1}"
    ):
        model.fit(rsna_frame, y.iloc[:-1])
    swapped = y.assign(condition=y["condition"].to_numpy()[::-1])
    with pytest.raises(ValueError, match=r"y's condition differs from X's at row\(s\) 0, 1"):
        model.fit(rsna_frame, swapped)
    coded = y.assign(condition=y["condition"].map(CONDITIONS.index))
    assert model.fit(rsna_frame, coded).classes_[0].tolist() == ["0", "1", "2", "3", "4"]
    with pytest.raises(ValueError, match=r"the 'spinal' estimator, on its 30 rows: .*'lr'"):
        per_group(lambda: pipeline(lr=-1.0)).fit(rsna_frame, y)
