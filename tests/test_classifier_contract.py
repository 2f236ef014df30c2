"""scikit-learn's estimator contract for DualHeadClassifier, on 4-D image batches.

scikit-learn's own checks feed 2-D tables (see test_estimator_checks.py); these are the
valuable ones rewritten for images ``(n, channels, height, width)`` and a two-column y.
"""

from __future__ import annotations

import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone

from spinecls import DualHeadClassifier

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
