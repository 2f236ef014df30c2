"""DualHeadClassifier: learning, the scikit-learn contract, skorch pitfalls, persistence."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import config_context
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline

from spinecls import CONDITIONS, SEVERITIES, DualHeadClassifier, LumbarPatchTransformer

FAST = dict(max_epochs=2, batch_size=16, random_state=0)


def separable(n=150, seed=0, size=32):
    """Condition = where a square sits (5 places); severity = how bright it is (3 levels)."""
    rng = np.random.default_rng(seed)
    condition = rng.integers(0, 5, n)
    severity = rng.integers(0, 3, n)
    X = rng.normal(0, 0.05, (n, 1, size, size)).astype(np.float32)
    corners = [(2, 2), (2, 20), (20, 2), (20, 20), (11, 11)]
    for i in range(n):
        r, c = corners[condition[i]]
        X[i, 0, r : r + 10, c : c + 10] += 0.3 + 0.35 * severity[i]
    y = pd.DataFrame(
        {
            "condition": np.array(CONDITIONS)[condition],
            "severity": np.array(SEVERITIES)[severity],
        }
    )
    return X, y


@pytest.fixture(scope="module")
def data():
    return separable()


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return DualHeadClassifier(max_epochs=12, batch_size=16, lr=3e-3, random_state=0).fit(X, y)


def test_learns_a_separable_problem_far_above_chance(fitted):
    X, y = separable(n=80, seed=1)
    predicted = fitted.predict(X)
    condition_acc = (predicted[:, 0] == y["condition"].to_numpy()).mean()
    severity_acc = (predicted[:, 1] == y["severity"].to_numpy()).mean()
    assert condition_acc > 0.8, condition_acc  # chance: 0.2
    assert severity_acc > 0.6, severity_acc  # chance: 0.33
    assert fitted.score(X, y) == pytest.approx((condition_acc + severity_acc) / 2)


def test_classes_probabilities_and_labels_follow_y(fitted, data):
    X, y = data
    assert [list(c) for c in fitted.classes_] == [sorted(CONDITIONS), sorted(SEVERITIES)]
    p_condition, p_severity = fitted.predict_proba(X[:7])  # both heads, not skorch's first
    assert p_condition.shape == (7, 5) and p_severity.shape == (7, 3)
    np.testing.assert_allclose(p_condition.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(p_severity.sum(1), 1, rtol=1e-5)
    predicted = fitted.predict(X[:7])
    assert predicted.shape == (7, 2)
    np.testing.assert_array_equal(predicted[:, 0], fitted.classes_[0][p_condition.argmax(1)])
    np.testing.assert_array_equal(predicted[:, 1], fitted.classes_[1][p_severity.argmax(1)])


def test_history_has_losses_and_per_head_accuracy(fitted):
    history = fitted.history_
    assert len(history) >= 2
    for key in (
        "train_loss",
        "valid_loss",
        "train_condition_acc",
        "train_severity_acc",
        "valid_condition_acc",
        "valid_severity_acc",
    ):
        values = history[:, key]
        assert len(values) == len(history) and all(np.isfinite(values))
    assert history[-1, "valid_condition_acc"] > 0.5
    assert history[:, "train_loss"][-1] < history[:, "train_loss"][0]


def test_verbose_prints_the_epoch_table(data, capsys):
    X, y = data
    DualHeadClassifier(max_epochs=1, verbose=1, random_state=0).fit(X[:40], y[:40])
    out = capsys.readouterr().out
    assert "train_loss" in out and "valid_loss" in out


def test_string_labels_predict_as_strings(fitted, data):
    X, _ = data
    predicted = fitted.predict(X[:2])
    assert predicted.dtype.kind == "U"
    assert set(predicted[:, 1]) <= set(SEVERITIES)


def test_integer_labels_give_one_classes_array_per_head(data):
    X, _ = data
    rng = np.random.default_rng(3)
    y = np.column_stack([rng.integers(0, 5, len(X)), rng.integers(0, 3, len(X))])
    clf = DualHeadClassifier(**FAST).fit(X, y)
    assert [c.tolist() for c in clf.classes_] == [[0, 1, 2, 3, 4], [0, 1, 2]]
    assert clf.predict(X[:3]).dtype.kind == "i"


def test_validation_split_is_grouped_by_study(data):
    X, y = data
    groups = np.repeat(np.arange(30), 5)
    clf = DualHeadClassifier(valid_size=0.2, **FAST).fit(X, y, groups=groups)
    valid = clf.valid_index_
    train = np.setdiff1d(np.arange(len(X)), valid)
    assert len(valid) > 0
    assert not set(groups[valid]) & set(groups[train])
    # without groups the split is shuffled, not skorch's first-k-samples KFold
    plain = DualHeadClassifier(valid_size=0.2, **FAST).fit(X, y)
    assert not np.array_equal(np.sort(plain.valid_index_), np.arange(len(plain.valid_index_)))


def test_training_iterator_shuffles_and_the_same_seed_repeats(data):
    X, y = data
    a = DualHeadClassifier(**FAST).fit(X, y)
    assert a.net_.iterator_train__shuffle is True
    b = DualHeadClassifier(**FAST).fit(X, y)
    c = DualHeadClassifier(**{**FAST, "random_state": 1}).fit(X, y)
    for pa, pb, pc in zip(a.predict_proba(X), b.predict_proba(X), c.predict_proba(X)):
        np.testing.assert_array_equal(pa, pb)
        assert not np.allclose(pa, pc)


def test_augmentation_runs_in_training_only_and_is_deterministic(data):
    X, y = data
    a = DualHeadClassifier(augment="seed", **FAST).fit(X, y)
    b = DualHeadClassifier(augment="seed", **FAST).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X)[0], b.predict_proba(X)[0])
    # inference is not augmented: the same input gives the same output every time
    np.testing.assert_array_equal(a.predict_proba(X[:5])[1], a.predict_proba(X[:5])[1])


def test_severity_weights(data):
    X, y = data
    clf = DualHeadClassifier(severity_weights="rsna", **FAST).fit(X, y)
    weight = clf.net_.criterion_.severity_weight.tolist()
    assert weight == [2.0, 1.0, 4.0]  # classes_ order: moderate, normal_mild, severe
    codes = np.column_stack([np.zeros(len(X), int) + np.arange(len(X)) % 5, np.arange(len(X)) % 3])
    clf = DualHeadClassifier(severity_weights="rsna", **FAST).fit(X, codes)
    assert clf.net_.criterion_.severity_weight.tolist() == [1.0, 2.0, 4.0]
    clf = DualHeadClassifier(severity_weights=[1, 1, 3], **FAST).fit(X, y)
    assert clf.net_.criterion_.severity_weight.tolist() == [1.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="one weight per severity class"):
        DualHeadClassifier(severity_weights=[1, 2], **FAST).fit(X, y)
    with pytest.raises(ValueError, match="'rsna' needs severity labels"):
        DualHeadClassifier(severity_weights="rsna", **FAST).fit(X, codes + 5)


def test_sklearn_parameters_clone_and_not_fitted():
    clf = DualHeadClassifier(backbone="inception", lr=0.01, module__hidden=32)
    params = clf.get_params()
    assert params["backbone"] == "inception" and params["module__hidden"] == 32
    clf.set_params(module__dropout=0.5, lr=0.02)
    assert clf.module__dropout == 0.5 and clf.lr == 0.02
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    assert twin is not clf
    with pytest.raises(NotFittedError):
        twin.predict(np.zeros((2, 1, 32, 32), np.float32))
    assert "module__hidden=32" in repr(clf)


def test_module_parameters_reach_the_backbone(data):
    X, y = data
    clf = DualHeadClassifier(backbone="simple", module__hidden=24, module__widths=(4, 8, 8), **FAST)
    clf.fit(X, y)
    assert clf.net_.module_.dense[1].out_features == 24
    assert clf.net_.module_.features[0].out_channels == 4
    with pytest.raises(TypeError, match="prefix 'module__'"):
        DualHeadClassifier(hidden=3, **FAST).fit(X, y)


def test_joblib_round_trip_and_save_load_give_identical_probabilities(fitted, data, tmp_path):
    X, _ = data
    expected = fitted.predict_proba(X)
    joblib.dump(fitted, tmp_path / "model.joblib")
    for got, want in zip(joblib.load(tmp_path / "model.joblib").predict_proba(X), expected):
        np.testing.assert_array_equal(got, want)
    fitted.save(tmp_path / "model.pt")
    state = torch.load(tmp_path / "model.pt", weights_only=True)  # no pickle needed
    assert state["format"] == "spinecls.DualHeadClassifier"
    loaded = DualHeadClassifier.load(tmp_path / "model.pt")
    for got, want in zip(loaded.predict_proba(X), expected):
        np.testing.assert_array_equal(got, want)
    assert loaded.get_params() == fitted.get_params()
    assert [c.tolist() for c in loaded.classes_] == [c.tolist() for c in fitted.classes_]
    assert len(loaded.history_) == len(fitted.history_)
    assert not (tmp_path / "model.pt.partial").exists()
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.pt is not a model file"):
        DualHeadClassifier.load(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a model file"):
        DualHeadClassifier.load(tmp_path / "other.pt")


def test_custom_augmentation_survives_save_and_load(data, tmp_path):
    import albumentations as A

    X, y = data
    clf = DualHeadClassifier(augment=A.HorizontalFlip(p=0.5), max_epochs=1, random_state=0)
    clf.fit(X[:40], y[:40])
    clf.save(tmp_path / "m.pt")
    loaded = DualHeadClassifier.load(tmp_path / "m.pt")
    assert isinstance(loaded.augment, A.HorizontalFlip) and loaded.augment.p == 0.5


def test_pipeline_and_grid_search_on_dicom_rows(rsna_frame):
    pipe = Pipeline(
        [
            ("patches", LumbarPatchTransformer(patch_size=32)),
            ("clf", DualHeadClassifier(max_epochs=1, batch_size=32, random_state=0)),
        ]
    )
    y = rsna_frame[["condition", "severity"]]
    groups = rsna_frame["study_id"].to_numpy()
    pipe.fit(rsna_frame, y, clf__groups=groups)
    assert pipe.predict(rsna_frame).shape == (len(rsna_frame), 2)
    assert 0 <= pipe.score(rsna_frame, y) <= 1
    assert not set(groups[pipe[-1].valid_index_]) & set(np.delete(groups, pipe[-1].valid_index_))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_over_backbone_lr_and_a_module_parameter(data, n_jobs):
    X, y = data
    grid = GridSearchCV(
        DualHeadClassifier(max_epochs=1, batch_size=32, random_state=0),
        {"backbone": ["simple", "inception"], "lr": [1e-3, 3e-3], "module__dropout": [0.1]},
        cv=GroupKFold(n_splits=2),
        n_jobs=n_jobs,
    )
    groups = np.repeat(np.arange(30), 5)
    grid.fit(X, y, groups=groups)
    assert len(grid.cv_results_["params"]) == 4
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert grid.best_estimator_.module__dropout == 0.1


def test_groups_reach_fit_through_metadata_routing(data):
    X, y = data
    groups = np.repeat(np.arange(30), 5)
    with config_context(enable_metadata_routing=True):
        clf = DualHeadClassifier(max_epochs=1, batch_size=32, random_state=0, valid_size=0.2)
        clf.set_fit_request(groups=True)
        grid = GridSearchCV(clf, {"lr": [1e-3]}, cv=GroupKFold(n_splits=2))
        grid.fit(X, y, groups=groups)
        best = grid.best_estimator_
        valid = best.valid_index_
        assert not set(groups[valid]) & set(np.delete(groups, valid))


def test_bad_inputs_say_what_was_expected(fitted, data):
    X, y = data
    clf = DualHeadClassifier(**FAST)
    with pytest.raises(ValueError, match=r"4-D array .* got shape \(150, 1, 32\)"):
        clf.fit(X[..., 0], y)
    with pytest.raises(ValueError, match="floating point.*int64"):
        clf.fit(X.astype(np.int64), y)
    bad = X.copy()
    bad[3, 0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(bad, y)
    with pytest.raises(ValueError, match=r"two columns.*got shape \(150,\)"):
        clf.fit(X, y["condition"].to_numpy())
    with pytest.raises(ValueError, match=r"two columns.*got 3"):
        clf.fit(X, y.assign(extra=1))
    with pytest.raises(ValueError, match="severity head needs at least two classes"):
        clf.fit(X, y.assign(severity="severe"))
    with pytest.raises(ValueError, match="150 samples but y has 149"):
        clf.fit(X, y.iloc[:149])
    with pytest.raises(
        ValueError, match=r"\(2, 32, 32\), but this classifier was fitted on \(1, 32, 32\)"
    ):
        fitted.predict(np.repeat(X[:2], 2, axis=1))
    with pytest.raises(ValueError, match=r"\(1, 40, 40\)"):
        fitted.predict_proba(np.zeros((2, 1, 40, 40), np.float32))
    with pytest.raises(ValueError, match="backbone must be one of"):
        DualHeadClassifier(backbone="lenet").fit(X, y)
