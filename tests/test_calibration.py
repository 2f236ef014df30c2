"""spinecls.calibration: temperature scaling per head, in fit, after fit and in the file."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline

from spinecls import CONDITIONS, SEVERITIES, DualHeadClassifier, LumbarPatchTransformer
from spinecls.calibration import (
    MIN_CALIBRATION_ROWS,
    HeadView,
    calibrate_heads,
    fit_temperatures,
    softmax,
)

QUICK = dict(max_epochs=2, batch_size=32, random_state=0, module__hidden=16)


def noisy(n=240, seed=0):
    """A square's place tells the condition and its brightness the severity, both noisily."""
    rng = np.random.default_rng(seed)
    condition = rng.integers(0, 5, n)
    severity = rng.choice(3, n, p=[0.6, 0.25, 0.15])
    X = rng.normal(0, 0.3, (n, 1, 32, 32)).astype(np.float32)
    corners = [(2, 2), (2, 20), (20, 2), (20, 20), (11, 11)]
    for i in range(n):
        r, c = corners[condition[i]]
        X[i, 0, r : r + 10, c : c + 10] += 0.2 + 0.2 * severity[i]
    y = pd.DataFrame(
        {"condition": np.array(CONDITIONS)[condition], "severity": np.array(SEVERITIES)[severity]}
    )
    return X, y


@pytest.fixture(scope="module")
def data():
    return noisy()


@pytest.fixture(scope="module")
def trained(data):
    """Fitted on the first 120 rows, without validation nor calibration."""
    X, y = data
    return DualHeadClassifier(valid_size=None, **QUICK).fit(X[:120], y[:120])


def _copy(clf):
    return pickle.loads(pickle.dumps(clf))


@pytest.fixture(scope="module")
def calibrated(data):
    X, y = data
    clf = DualHeadClassifier(calibration="temperature", valid_size=0.5, **QUICK)
    return clf.fit(X, y, groups=np.arange(len(X)) // 2)


def test_fit_calibrates_each_head_on_the_validation_split(calibrated, data):
    X, y = data
    T = calibrated.temperatures_
    assert T.shape == (2,) and (T > 0).all() and not np.allclose(T, 1)
    valid = calibrated.valid_index_
    assert len(valid) >= MIN_CALIBRATION_ROWS
    # predict_proba is the softmax of the logits divided by each head's temperature
    module = calibrated.net_.module_.eval()
    with torch.no_grad():
        logits = module(torch.from_numpy(X[:20]))
    for k, proba in enumerate(calibrated.predict_proba(X[:20])):
        expected = torch.softmax(logits[k] / float(T[k]), dim=1).numpy()
        np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-6)
    # the predicted classes do not change, and each temperature minimises the log loss of
    # its head on the validation rows
    uncalibrated = [torch.softmax(z, dim=1).numpy() for z in logits]
    predicted = calibrated.predict_proba(X[:20])
    for p, q in zip(predicted, uncalibrated):
        np.testing.assert_array_equal(p.argmax(1), q.argmax(1))
    valid_logits = calibrated.predict_logits(X[valid])
    for k, column in enumerate(["condition", "severity"]):
        truth = y[column].to_numpy()[valid]
        labels = calibrated.classes_[k]

        def loss(t, k=k, truth=truth, labels=labels):
            proba = softmax(valid_logits[k].astype(np.float64), t)
            return log_loss(truth, proba, labels=labels)

        # (to 1e-6: a head that learnt nothing yet runs to the flat bound, T = e^10)
        assert loss(T[k]) <= min(loss(T[k] * 1.05), loss(T[k] / 1.05), loss(1.0)) + 1e-6


def test_save_load_keeps_the_calibrated_probabilities(calibrated, data, tmp_path):
    X, _ = data
    calibrated.save(tmp_path / "model.pt")
    loaded = DualHeadClassifier.load(tmp_path / "model.pt")
    np.testing.assert_array_equal(loaded.temperatures_, calibrated.temperatures_)
    for got, want in zip(loaded.predict_proba(X), calibrated.predict_proba(X)):
        np.testing.assert_array_equal(got, want)
    assert loaded.get_params() == calibrated.get_params()
    # a file written before calibration existed has no temperatures: uncalibrated
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    del state["temperatures"]
    torch.save(state, tmp_path / "old.pt")
    old = DualHeadClassifier.load(tmp_path / "old.pt")
    assert old.temperatures_ is None
    np.testing.assert_array_equal(old.predict_proba(X[:5])[1], old.net_.predict_proba(X[:5])[1])
    for bad in ("[1.0]", "[1.0, -2.0]", '["a", 1.0]', "[1.0, true]"):
        torch.save({**state, "temperatures": bad}, tmp_path / "bad.pt")
        with pytest.raises(ValueError, match=r"bad.pt: 'temperatures' must be null or 2 positive"):
            DualHeadClassifier.load(tmp_path / "bad.pt")


def test_calibrate_heads_on_rows_of_ones_own(data, trained):
    X, y = data
    clf = _copy(trained)
    assert clf.temperatures_ is None
    before = clf.predict_proba(X[120:])
    assert calibrate_heads(clf, X[120:], y[120:]) is clf
    T = clf.temperatures_
    assert T.shape == (2,) and not np.allclose(T, 1)
    after = clf.predict_proba(X[120:])
    for k, column in enumerate(["condition", "severity"]):
        truth, labels = y[column].to_numpy()[120:], clf.classes_[k]
        assert log_loss(truth, after[k], labels=labels) < log_loss(truth, before[k], labels=labels)
    # the same temperatures as fitting scikit-learn's calibrator through the view
    again = fit_temperatures(clf, X[120:], np.column_stack(_codes(clf, y[120:])))
    np.testing.assert_allclose(again, T)
    with pytest.raises(ValueError, match=r"severity column has label\(s\) \['mild'\]"):
        calibrate_heads(clf, X[:2], [[CONDITIONS[0], "mild"], [CONDITIONS[0], "severe"]])
    with pytest.raises(ValueError, match="X has 3 samples but y has 2"):
        calibrate_heads(clf, X[:3], y[:2])
    missing = y[:12].assign(severity=[np.nan] * 11 + ["severe"])
    message = r"severity column has 11 missing value\(s\) \(NaN or None\) at row\(s\) 0, 1,"
    with pytest.raises(ValueError, match=message):
        calibrate_heads(clf, X[:12], missing)
    with pytest.raises(ValueError, match="min_rows must be a positive int"):
        calibrate_heads(clf, X, y, min_rows=0)


def _codes(clf, y):
    return [np.searchsorted(c, y[col].to_numpy()) for c, col in zip(clf.classes_, y.columns)]


def test_a_head_stays_uncalibrated_on_too_few_rows_or_a_missing_class(data, trained):
    X, y = data
    clf = _copy(trained)
    with pytest.warns(UserWarning) as caught:
        calibrate_heads(clf, X[120:170], y[120:170])
    assert [str(w.message) for w in caught] == [
        f"the {head} head is left uncalibrated (temperature 1): it needs at least 100 rows "
        "and got 50"
        for head in ("condition", "severity")
    ]
    np.testing.assert_array_equal(clf.temperatures_, [1.0, 1.0])
    no_severe = (y["severity"] != "severe").to_numpy()
    with pytest.warns(
        UserWarning, match=r"severity head .*no row has the class\(es\) \['severe'\]"
    ):
        calibrate_heads(clf, X[no_severe], y[no_severe])
    assert clf.temperatures_[1] == 1.0 and clf.temperatures_[0] != 1.0


class Stub:
    """A fitted two-head classifier whose logits are given: ``X`` is row positions."""

    def __init__(self, logits):
        self.logits = logits
        self.classes_ = [np.arange(z.shape[1]) for z in logits]
        self.net_ = "fitted"

    def predict_logits(self, X):
        return [z[np.asarray(X)] for z in self.logits]


@pytest.mark.parametrize("n_conditions", [5, 2])  # 2: a model of the foraminal group
def test_the_fitted_temperature_recovers_a_known_one(n_conditions):
    rng = np.random.default_rng(0)
    logits = [rng.normal(0, 3, (4000, k)).astype(np.float32) for k in (n_conditions, 3)]
    # labels drawn from softmax(logits / T): the logits are over-confident by T
    truth = [2.0, 0.5]
    codes = np.column_stack(
        [
            [rng.choice(z.shape[1], p=p) for p in softmax(z.astype(np.float64), t)]
            for z, t in zip(logits, truth)
        ]
    )
    T = fit_temperatures(Stub(logits), np.arange(4000), codes)
    np.testing.assert_allclose(T, truth, rtol=0.1)


def _weighted_log_loss(z, codes, t, weight):
    proba = softmax(z.astype(np.float64), t)
    return log_loss(codes, proba, labels=np.arange(z.shape[1]), sample_weight=weight)


def test_severity_weights_weigh_the_severity_rows_of_the_temperature():
    rng = np.random.default_rng(2)
    # a timid severity head: labels drawn from its logits made sharper (T = 0.5)
    logits = [rng.normal(0, 2, (3000, k)).astype(np.float32) for k in (5, 3)]
    codes = np.column_stack(
        [[rng.choice(z.shape[1], p=p) for p in softmax(z.astype(np.float64), 0.5)] for z in logits]
    )
    codes[:, 1] = np.where(rng.random(3000) < 0.3, 0, codes[:, 1])  # more normal_mild rows
    plain = fit_temperatures(Stub(logits), np.arange(3000), codes)
    weighted = fit_temperatures(Stub(logits), np.arange(3000), codes, severity_weights="rsna")
    rsna = np.array([1.0, 2.0, 4.0])[codes[:, 1]]
    by_rows = fit_temperatures(Stub(logits), np.arange(3000), codes, sample_weight=rsna)
    # the condition head's rows are not weighted; the severity head's are weighted 1 / 2 / 4
    assert weighted[0] == plain[0] and weighted[1] == pytest.approx(by_rows[1], rel=1e-6)
    assert abs(weighted[1] - plain[1]) > 0.02
    # the weighted temperature minimises the weighted log loss, not the plain one
    z = logits[1]
    for t in (weighted[1] * 1.05, weighted[1] / 1.05, plain[1]):
        assert _weighted_log_loss(z, codes[:, 1], weighted[1], rsna) < _weighted_log_loss(
            z, codes[:, 1], t, rsna
        )
    # rows of weight 0 count for nothing in the guard: with the rows the severity head
    # gets wrong weighted 0, every row left is predicted right, so it stays at 1; with
    # every severity weight 0 it has no rows (not scikit-learn's error); the condition
    # head is fitted all the same
    right = (logits[1].argmax(1) == codes[:, 1]).astype(float)
    with pytest.warns(UserWarning, match="severity head .*every row is predicted right"):
        T = fit_temperatures(Stub(logits), np.arange(3000), codes, sample_weight=right)
    assert T[1] == 1.0 and T[0] != 1.0
    with pytest.warns(UserWarning, match="needs at least 100 rows of positive weight and got 0"):
        T = fit_temperatures(Stub(logits), np.arange(3000), codes, severity_weights=[0, 0, 0])
    assert T[1] == 1.0 and T[0] == plain[0]
    with pytest.raises(ValueError, match="severity_weights must be non-negative numbers"):
        fit_temperatures(Stub(logits), np.arange(3000), codes, severity_weights=[1, -2, 4])
    # sample_weight and severity_weights multiply
    both = fit_temperatures(
        Stub(logits), np.arange(3000), codes, sample_weight=rsna, severity_weights=[1, 1, 1]
    )
    np.testing.assert_allclose(both, by_rows, rtol=1e-6)


def test_fit_calibrates_with_the_loss_severity_weights(data):
    X, y = data
    params = dict(calibration="temperature", valid_size=0.5, severity_weights="rsna", **QUICK)
    clf = DualHeadClassifier(**params).fit(X, y, groups=np.arange(len(X)) // 2)
    valid = clf.valid_index_
    refit = calibrate_heads(_copy(clf), X[valid], y.iloc[valid], severity_weights="rsna")
    np.testing.assert_allclose(clf.temperatures_, refit.temperatures_, rtol=1e-6)
    plain = calibrate_heads(_copy(clf), X[valid], y.iloc[valid])
    assert plain.temperatures_[0] == pytest.approx(clf.temperatures_[0], rel=1e-6)
    assert plain.temperatures_[1] != pytest.approx(clf.temperatures_[1], rel=1e-3)
    with pytest.raises(ValueError, match="severity_weights must be None, 'rsna'"):
        calibrate_heads(_copy(clf), X[valid], y.iloc[valid], severity_weights="competition")


def test_rows_predicted_all_right_leave_the_head_alone():
    rng = np.random.default_rng(1)
    logits = [rng.normal(0, 1, (150, k)).astype(np.float32) for k in (5, 3)]
    codes = np.column_stack([z.argmax(1) for z in logits])
    codes[:40, 0] = (codes[:40, 0] + 1) % 5  # the condition head makes mistakes
    with pytest.warns(UserWarning, match="severity head .*every row is predicted right"):
        T = fit_temperatures(Stub(logits), np.arange(150), codes)
    assert T[1] == 1.0 and T[0] != 1.0
    one_class = Stub([logits[0], np.zeros((150, 1), np.float32)])
    assert fit_temperatures(one_class, np.arange(150), codes * [1, 0])[1] == 1.0


def test_head_view_is_one_head_as_a_scikit_learn_classifier(calibrated, data):
    X, _ = data
    view = HeadView(calibrated, "condition")
    assert view.classes_.tolist() == [0, 1, 2, 3, 4]
    assert view.__sklearn_is_fitted__()
    logits = view.decision_function(X[:6])
    assert logits.dtype == np.float64 and logits.shape == (6, 5)
    np.testing.assert_array_equal(view.predict(X[:6]), logits.argmax(1))
    uncalibrated = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    np.testing.assert_allclose(uncalibrated, calibrated.net_.predict_proba(X[:6])[0], rtol=1e-5)
    with pytest.raises(ValueError, match="head must be one of"):
        HeadView(calibrated, "level").decision_function(X[:2])
    # a two-class head in scikit-learn's binary form: one score, positive for class 1
    logits = np.random.default_rng(0).normal(0, 2, (50, 2)).astype(np.float32)
    binary = HeadView(Stub([logits, logits]), "condition")
    score = binary.decision_function(np.arange(50))
    assert score.shape == (50,)
    np.testing.assert_allclose(score, (logits[:, 1] - logits[:, 0]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(binary.predict(np.arange(50)), logits.argmax(1))


def test_calibration_is_a_parameter_checked_in_fit(data):
    X, y = data
    clf = DualHeadClassifier(calibration="temperature", tta="flip", any_severe_weight=0.5)
    params = clone(clf).get_params()
    assert (params["calibration"], params["tta"], params["any_severe_weight"]) == (
        "temperature",
        "flip",
        0.5,
    )
    with pytest.raises(ValueError, match="calibration='temperature' fits on the validation split"):
        DualHeadClassifier(calibration="temperature", valid_size=None).fit(X, y)
    with pytest.raises(ValueError, match="'calibration' parameter of DualHeadClassifier"):
        DualHeadClassifier(calibration="isotonic").fit(X, y)


def test_calibrate_a_pipeline_on_dicom_rows(rsna_frame):
    pipe = Pipeline(
        [
            ("patches", LumbarPatchTransformer(patch_size=32)),
            ("clf", DualHeadClassifier(max_epochs=1, batch_size=32, random_state=0)),
        ]
    )
    y = rsna_frame[["condition", "severity"]]
    pipe.fit(rsna_frame, y)
    calibrate_heads(pipe, rsna_frame, y, min_rows=20)
    assert pipe[-1].temperatures_.shape == (2,)
    assert pipe.predict_proba(rsna_frame)[1].shape == (len(rsna_frame), 3)
