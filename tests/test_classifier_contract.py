"""scikit-learn's estimator contract for DualHeadClassifier, on 4-D image batches.

scikit-learn's own checks feed 2-D tables (see test_estimator_checks.py); these are the
valuable ones rewritten for images ``(n, channels, height, width)`` and a two-column y,
and the contracts a scikit-learn user meets: y read by name, targets checked as class
labels, parameters refused at ``set_params``, sample weights routed to ``fit``, and the
single-output tools (string scorers, CalibratedClassifierCV) pointed to what works.
"""

from __future__ import annotations

import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import config_context
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import get_scorer
from sklearn.pipeline import Pipeline

from spinecls import DualHeadClassifier
from spinecls.calibration import HeadView
from spinecls.classifier import DualHeadLoss

PARAMS = dict(max_epochs=1, batch_size=8, valid_size=0.25, random_state=0, module__hidden=16)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.random((24, 2, 32, 32), dtype=np.float32)
    y = np.column_stack([np.arange(24) % 5, rng.integers(0, 3, 24)])
    return X, y


@pytest.fixture(scope="module")
def fitted(data):
    return DualHeadClassifier(**PARAMS).fit(*data)


def _assert_same(a, b, **tolerance):
    for got, want in zip(a, b):
        np.testing.assert_allclose(got, want, **tolerance)


def test_fit_is_idempotent(data, fitted):
    """check_fit_idempotent: fitting again on the same data gives the same model."""
    clf = clone(fitted)
    clf.fit(*data)
    first = clf.predict_proba(data[0])
    clf.fit(*data)
    _assert_same(clf.predict_proba(data[0]), first, rtol=0, atol=0)
    _assert_same(fitted.predict_proba(data[0]), first, rtol=0, atol=0)


def test_fit_overwrites_no_parameter_and_adds_only_fitted_attributes(data):
    """check_estimators_overwrite_params and check_dont_overwrite_parameters."""
    clf = DualHeadClassifier(**PARAMS, severity_weights=[1.0, 2.0, 4.0])
    before = clf.get_params()
    hashes = {k: joblib.hash(v) for k, v in before.items()}
    public = {k for k in vars(clf) if not k.startswith("_")}
    clf.fit(*data)
    assert {k: joblib.hash(v) for k, v in clf.get_params().items()} == hashes
    added = {k for k in vars(clf) if not k.startswith("_")} - public
    assert added and all(k.endswith("_") for k in added), added


@pytest.mark.parametrize("method", ["predict_proba", "predict"])
def test_predictions_of_a_subset_equal_the_subset_of_predictions(data, fitted, method):
    """check_methods_subset_invariance, on batches of 1, 5 and the rest."""
    X = data[0]
    full = getattr(fitted, method)(X)
    for part in (slice(0, 1), slice(1, 6), slice(6, None)):
        got = getattr(fitted, method)(X[part])
        want = [p[part] for p in full] if method == "predict_proba" else full[part]
        if method == "predict":
            np.testing.assert_array_equal(got, want)
        else:
            _assert_same(got, want, rtol=1e-6, atol=1e-7)


def test_predictions_follow_the_order_of_the_samples(data, fitted):
    """check_methods_sample_order_invariance."""
    X = data[0]
    order = np.random.default_rng(1).permutation(len(X))
    _assert_same(
        fitted.predict_proba(X[order]),
        [p[order] for p in fitted.predict_proba(X)],
        rtol=1e-6,
        atol=1e-7,
    )
    np.testing.assert_array_equal(fitted.predict(X[order]), fitted.predict(X)[order])


def test_pickle_round_trip_predicts_the_same(data, fitted):
    """check_estimators_pickle."""
    twin = pickle.loads(pickle.dumps(fitted))
    _assert_same(twin.predict_proba(data[0]), fitted.predict_proba(data[0]), rtol=0, atol=0)
    assert twin.get_params() == fitted.get_params()


def test_read_only_memmap_input(data, fitted, tmp_path):
    """check_readonly_memmap_input: the same model, the file untouched, no warning."""
    np.save(tmp_path / "X.npy", data[0])
    np.save(tmp_path / "y.npy", data[1])
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    y = np.load(tmp_path / "y.npy", mmap_mode="r")
    assert not X.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when it wraps read-only memory
        clf = clone(fitted).fit(X, y)
        proba = clf.predict_proba(X)
    _assert_same(proba, fitted.predict_proba(data[0]), rtol=0, atol=0)
    np.testing.assert_array_equal(np.load(tmp_path / "X.npy"), data[0])


def test_n_features_in_is_the_channel_count(data, fitted):
    """check_n_features_in and check_n_features_in_after_fitting."""
    assert not hasattr(DualHeadClassifier(), "n_features_in_")
    assert fitted.n_features_in_ == 2 and fitted.input_shape_ == (2, 32, 32)
    assert not hasattr(fitted, "feature_names_in_")
    with pytest.raises(ValueError, match=r"\(3, 32, 32\), but this classifier was fitted on"):
        fitted.predict(np.zeros((2, 3, 32, 32), np.float32))


def test_a_dataframe_y_is_read_by_column_name(data, fitted):
    """fit(X, frame[["severity", "condition"]]) trains the heads the columns name."""
    X, y = data
    frame = pd.DataFrame({"condition": y[:, 0], "severity": y[:, 1]})
    swapped = clone(fitted).fit(X, frame[["severity", "condition"]])
    assert [c.tolist() for c in swapped.classes_] == [c.tolist() for c in fitted.classes_]
    _assert_same(swapped.predict_proba(X), fitted.predict_proba(X), rtol=0, atol=0)
    for wrong in (frame.set_axis(["a", "b"], axis=1), pd.DataFrame(y)):
        with pytest.raises(
            ValueError, match=r"read by name and must be \['condition', 'severity'\]"
        ):
            clone(fitted).fit(X, wrong)
        with pytest.raises(ValueError, match="read by name"):
            fitted.score(X, wrong)


def test_continuous_targets_are_refused_as_classification_targets(data):
    """check_classifiers_regression_target, on images: scikit-learn's own check of y."""
    X = data[0]
    y = np.random.default_rng(0).random((len(X), 2))
    with pytest.raises(ValueError, match="condition column does not hold class labels.*continuous"):
        DualHeadClassifier(**PARAMS).fit(X, y)


def test_one_label_per_head_fits_and_predicts_that_label(data):
    """check_classifiers_one_label, a design choice: a one-class head is accepted.

    scikit-learn's check allows either an error or predicting the one label. A model of
    one condition group (spinecls.routing) has a one-class condition head by design; a
    one-class severity head (a small grid-search fold) warns and predicts its class.
    """
    X = data[0]
    y = np.column_stack([np.full(len(X), 3), np.full(len(X), 1)])
    with pytest.warns(UserWarning, match="severity head has a single class"):
        clf = DualHeadClassifier(**PARAMS).fit(X, y)
    np.testing.assert_array_equal(clf.predict(X), y)


def test_unknown_module_parameters_are_refused_at_set_params():
    clf = DualHeadClassifier()
    pipe = Pipeline([("clf", clf)])
    with pytest.raises(
        ValueError, match=r"no parameter module__hiden \(did you mean module__hidden"
    ):
        pipe.set_params(clf__module__hiden=8)
    pipe.set_params(clf__module__hidden=8)
    assert [k for k in pipe.get_params() if "module__" in k] == ["clf__module__hidden"]
    # names are checked against the backbone set in the same call
    pipe.set_params(clf__backbone="inception", clf__module__dropout=0.2)
    with pytest.raises(ValueError, match="backbone 'inception' has no parameter module__widths"):
        pipe.set_params(clf__module__widths=(4, 8))
    with pytest.raises(TypeError, match="did you mean 'lr'"):
        DualHeadClassifier(lrr=0.1)


def test_per_row_sample_weight_reaches_fit_through_metadata_routing(data, fitted):
    X, y = data
    ones = DualHeadClassifier(**PARAMS).fit(X, y, sample_weight=np.ones(len(X)))
    _assert_same(ones.predict_proba(X), fitted.predict_proba(X), rtol=1e-5, atol=1e-6)
    with config_context(enable_metadata_routing=True):
        clf = DualHeadClassifier(**PARAMS).set_fit_request(sample_weight=True)
        weight = np.where(y[:, 1] == 2, 0.0, 1.0)
        routed = Pipeline([("clf", clf)]).fit(X, y, sample_weight=weight)
    direct = DualHeadClassifier(**PARAMS).fit(X, y, sample_weight=weight)
    _assert_same(routed.predict_proba(X), direct.predict_proba(X), rtol=0, atol=0)
    assert not np.allclose(direct.predict_proba(X)[1], fitted.predict_proba(X)[1])
    with pytest.raises(ValueError, match=r"finite, non-negative numbers; got \[-1.0\] at sample"):
        DualHeadClassifier(**PARAMS).fit(X, y, sample_weight=np.r_[-1.0, np.ones(len(X) - 1)])


def test_the_loss_weighs_each_row_by_its_sample_weight_times_its_class_weight():
    torch.manual_seed(0)
    logits = [torch.randn(6, 5), torch.randn(6, 3)]
    codes = torch.tensor([[0, 0], [1, 2], [2, 1], [3, 2], [4, 0], [0, 1]])
    rows = torch.tensor([1.0, 0.0, 2.0, 1.0, 0.5, 3.0])
    classes = torch.tensor([1.0, 2.0, 4.0])
    loss = DualHeadLoss(severity_weight=classes)
    got = loss(logits, torch.column_stack([codes.float(), rows]))
    ce = torch.nn.functional.cross_entropy
    condition = (rows * ce(logits[0], codes[:, 0], reduction="none")).sum() / rows.sum()
    weight = rows * classes[codes[:, 1]]
    severity = (weight * ce(logits[1], codes[:, 1], reduction="none")).sum() / weight.sum()
    torch.testing.assert_close(got, condition + severity)
    # weights of 1 give torch's own class-weighted mean
    torch.testing.assert_close(
        loss(logits, torch.column_stack([codes.float(), torch.ones(6)])), loss(logits, codes)
    )


@pytest.mark.parametrize("scoring", ["accuracy", "balanced_accuracy", "f1_macro", "neg_log_loss"])
def test_string_scorers_point_to_head_scorer(data, fitted, scoring):
    with pytest.raises(ValueError, match=r"one array per head.*spinecls.metrics.head_scorer"):
        get_scorer(scoring)(fitted, *data)


def test_calibrated_classifier_cv_with_one_column_points_to_head_view(data, fitted):
    X, y = data
    with pytest.raises(ValueError, match=r"both heads' labels: to calibrate one head.*HeadView"):
        CalibratedClassifierCV(clone(fitted), cv=2).fit(X, y[:, 1])
    view = FrozenEstimator(HeadView(fitted, "severity"))
    calibrated = CalibratedClassifierCV(view, method="temperature").fit(X, y[:, 1])
    assert calibrated.predict_proba(X).shape == (len(X), 3)
