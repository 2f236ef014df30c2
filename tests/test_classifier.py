"""DualHeadClassifier: learning, the scikit-learn contract, skorch pitfalls, persistence."""

from __future__ import annotations

import pickle

import albumentations as A
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
from torch import nn

from spinecls import CONDITIONS, SEVERITIES, DualHeadClassifier, LumbarPatchTransformer
from spinecls.augment import lateral_swap, tta_views
from spinecls.classifier import DualHeadLoss

FAST = dict(max_epochs=2, batch_size=16, random_state=0)


class TinyNet(nn.Module):
    """A backbone defined outside the registry, as in a user's script."""

    def __init__(self, in_channels, n_conditions, n_severities, width=4, dropout=0.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.dropout = nn.Dropout(dropout)
        self.condition = nn.Linear(width, n_conditions)
        self.severity = nn.Linear(width, n_severities)

    def forward(self, x):
        h = self.dropout(self.body(x))
        return self.condition(h), self.severity(h)


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
    # a list mixing names and codes keeps each column's own type (numpy would make "0" of 0)
    mixed = [[CONDITIONS[c], int(s)] for c, s in zip(y[:40, 0], y[:40, 1])]
    quick = DualHeadClassifier(max_epochs=1, valid_size=None, random_state=0).fit(X[:40], mixed)
    assert quick.classes_[1].tolist() == [0, 1, 2]
    assert quick.score(X[:40], mixed) == pytest.approx(quick.score(X[:40], np.array(mixed, object)))


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


def test_augmentation_changes_training_and_never_inference(data):
    X, y = data[0][:48], data[1][:48]
    quick = dict(max_epochs=1, batch_size=16, valid_size=None, random_state=0)
    plain = DualHeadClassifier(**quick).fit(X, y).predict_proba(X)
    study = DualHeadClassifier(augment="study", **quick).fit(X, y).predict_proba(X)
    again = DualHeadClassifier(augment="study", **quick).fit(X, y).predict_proba(X)
    alias = DualHeadClassifier(augment="seed", **quick).fit(X, y).predict_proba(X)
    # training sees augmented images: same seed, other weights; deterministic; "seed" = "study"
    assert not np.allclose(plain[0], study[0])
    for a, b, c in zip(study, again, alias):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # inference does not: with an always-on mirror in training, predict_proba is still the
    # module's output on the images as given, not on their mirror images
    flip = DualHeadClassifier(augment=A.HorizontalFlip(p=1), **quick).fit(X, y)
    module = flip.net_.module_.eval()
    with torch.no_grad():
        given = module(torch.from_numpy(X))
        mirrored = module(torch.from_numpy(np.ascontiguousarray(X[..., ::-1])))
    for k, proba in enumerate(flip.predict_proba(X)):
        np.testing.assert_array_equal(proba, torch.softmax(given[k], dim=1).numpy())
        assert not np.allclose(proba, torch.softmax(mirrored[k], dim=1).numpy(), atol=1e-4)


def test_fit_leaves_the_callers_torch_generator_alone(data):
    X, y = data[0][:32], data[1][:32]
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    DualHeadClassifier(max_epochs=1, valid_size=None, random_state=0).fit(X, y)
    np.testing.assert_array_equal(torch.rand(5), expected)


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
    with pytest.raises(ValueError, match=r"non-negative numbers; got \[1.0, -2.0, 4.0\]"):
        DualHeadClassifier(severity_weights=[1, -2, 4], **FAST).fit(X, y)
    with pytest.raises(ValueError, match="'rsna' needs severity labels"):
        DualHeadClassifier(severity_weights="rsna", **FAST).fit(X, codes + 5)


def test_every_parameter_survives_clone_and_a_typo_is_refused():
    clf = DualHeadClassifier(backbone="inception", lr=0.01, module__hidden=32)
    clf.set_params(module__dropout=0.5, lr=0.02)
    params = clf.get_params()
    assert (params["lr"], params["module__hidden"], params["module__dropout"]) == (0.02, 32, 0.5)
    twin = clone(clf)
    assert twin.get_params() == params
    twin.set_params(module__hidden=8)
    assert clf.module__hidden == 32  # the clone does not share state with the original
    with pytest.raises(NotFittedError):
        twin.predict(np.zeros((2, 1, 32, 32), np.float32))
    assert "module__hidden=32" in repr(clf)
    # a typo raises at once, as any Python call does, instead of vanishing on clone
    with pytest.raises(TypeError, match=r"unexpected parameter 'lrr' \(did you mean 'lr'\?\)"):
        DualHeadClassifier(lrr=0.5)
    with pytest.raises(TypeError, match=r"prefix 'module__' \(module__hidden\)"):
        DualHeadClassifier(hidden=3)
    with pytest.raises(ValueError, match="Invalid parameter 'lrr'"):
        clf.set_params(lrr=0.5)


def test_module_parameters_reach_the_backbone_and_are_checked(data):
    X, y = data
    clf = DualHeadClassifier(backbone="simple", module__hidden=24, module__widths=(4, 8, 8), **FAST)
    clf.fit(X, y)
    assert clf.net_.module_.dense[1].out_features == 24
    assert clf.net_.module_.features[0].out_channels == 4
    with pytest.raises(
        TypeError, match=r"no parameter module__hiden \(did you mean module__hidden"
    ):
        DualHeadClassifier(module__hiden=3, **FAST).fit(X, y)
    with pytest.raises(ValueError, match=r"module__hidden must be an int in \[1, 4096\]"):
        DualHeadClassifier(module__hidden=10**9, **FAST).fit(X, y)
    with pytest.raises(ValueError, match=r"'lr' parameter of DualHeadClassifier"):
        DualHeadClassifier(lr=-1.0).fit(X, y)


def test_backbone_as_a_class_or_a_builder(data):
    X, y = data[0][:32], data[1][:32]
    quick = dict(max_epochs=1, valid_size=None, random_state=0)
    by_class = DualHeadClassifier(backbone=TinyNet, module__width=6, **quick).fit(X, y)
    assert isinstance(by_class.net_.module_, TinyNet)
    assert by_class.net_.module_.body[0].out_channels == 6

    def builder(in_channels, n_conditions, n_severities, width=4):
        return TinyNet(in_channels, n_conditions, n_severities, width=width)

    by_builder = DualHeadClassifier(backbone=builder, module__width=6, **quick).fit(X, y)
    for a, b in zip(by_class.predict_proba(X), by_builder.predict_proba(X)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not a built TinyNet"):
        DualHeadClassifier(backbone=TinyNet(1, 5, 3), **quick).fit(X, y)
    with pytest.raises(TypeError, match="returned a 'str' object, not a torch.nn.Module"):
        DualHeadClassifier(backbone=lambda *args: "net", **quick).fit(X, y)
    with pytest.raises(TypeError, match=r"no parameter module__hidden; it takes \['module__width'"):
        DualHeadClassifier(backbone=builder, module__hidden=3, **quick).fit(X, y)


def test_weights_for_a_backbone_that_cannot_take_them_raise(data):
    X, y = data
    for backbone in ("simple", TinyNet):
        with pytest.raises(ValueError, match=r"backbone .*(simple|TinyNet).* takes no pretrained"):
            DualHeadClassifier(backbone=backbone, weights="IMAGENET1K_V1").fit(X, y)


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
    assert loaded.history_[:, "valid_loss"] == fitted.history_[:, "valid_loss"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.joblib", "model.pt"]
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
    """A backbone class from this module reaches loky's worker processes, where a
    registry entry made here would be missing."""
    X, y = data
    grid = GridSearchCV(
        DualHeadClassifier(max_epochs=1, batch_size=32, random_state=0),
        {"backbone": ["simple", TinyNet], "lr": [1e-3, 3e-3], "module__dropout": [0.1]},
        cv=GroupKFold(n_splits=2),
        n_jobs=n_jobs,
    )
    groups = np.repeat(np.arange(30), 5)
    grid.fit(X, y, groups=groups)
    assert [p["backbone"] for p in grid.cv_results_["params"]] == ["simple"] * 2 + [TinyNet] * 2
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert grid.best_estimator_.module__dropout == 0.1
    tiny = clone(grid.estimator).set_params(**grid.cv_results_["params"][2]).fit(X, y)
    assert isinstance(tiny.net_.module_, TinyNet) and tiny.net_.module_.dropout.p == 0.1


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
    with pytest.raises(
        ValueError, match=r"columns \['condition', 'severity', 'extra'\]: .* by name"
    ):
        clf.fit(X, y.assign(extra=1))
    with pytest.raises(ValueError, match=r"two columns.*got shape \(150, 3\)"):
        fitted.score(X, y.assign(extra=1).to_numpy())
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


# -- test-time augmentation and the any-severe loss ---------------------------------------
def _softmax_of(module, images):
    with torch.no_grad():
        return [torch.softmax(z, dim=1).numpy() for z in module(torch.from_numpy(images))]


def test_flip_tta_averages_the_mirror_with_subarticular_columns_swapped(fitted, data, tmp_path):
    X = data[0][:12]
    flip = pickle.loads(pickle.dumps(fitted)).set_params(tta="flip")
    module = flip.net_.module_.eval()
    given = _softmax_of(module, X)
    mirrored = _softmax_of(module, np.ascontiguousarray(X[..., ::-1]))
    # sorted names: the two subarticular classes (1 and 3) trade places; foraminal do not
    swap = lateral_swap(flip.classes_[0])
    assert swap.tolist() == [0, 3, 2, 1, 4]
    condition, severity = flip.predict_proba(X)
    np.testing.assert_allclose(condition, (given[0] + mirrored[0][:, swap]) / 2, rtol=1e-5)
    np.testing.assert_allclose(severity, (given[1] + mirrored[1]) / 2, rtol=1e-5)
    # so the prediction for a mirrored crop is the mirror of the prediction
    condition_m, severity_m = flip.predict_proba(np.ascontiguousarray(X[..., ::-1]))
    np.testing.assert_allclose(condition_m, condition[:, swap], rtol=1e-5)
    np.testing.assert_allclose(severity_m, severity, rtol=1e-5)
    # parameters and predictions survive clone, save and load
    assert clone(flip).tta == "flip"
    flip.save(tmp_path / "flip.pt")
    loaded = DualHeadClassifier.load(tmp_path / "flip.pt")
    assert loaded.tta == "flip"
    for got, want in zip(loaded.predict_proba(X), (condition, severity)):
        np.testing.assert_array_equal(got, want)


def test_flip_and_shift_tta_averages_four_views(fitted, data):
    X = data[0][:10]
    clf = pickle.loads(pickle.dumps(fitted)).set_params(tta="flip+shift")
    module = clf.net_.module_.eval()
    swap = lateral_swap(clf.classes_[0])
    views = tta_views("flip+shift", 32, 32)
    expected = [np.zeros((10, 5)), np.zeros((10, 3))]
    for view, mirrored in views:
        shown = view(torch.from_numpy(X)).numpy()
        for k, proba in enumerate(_softmax_of(module, shown)):
            expected[k] += (proba[:, swap] if mirrored and k == 0 else proba) / len(views)
    for got, want in zip(clf.predict_proba(X), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="'tta' parameter of DualHeadClassifier"):
        DualHeadClassifier(tta="rotate").fit(*data)


def test_the_any_severe_term_is_a_weighted_cross_entropy_on_spinal_rows():
    severity = torch.tensor([[0.2, 0.1, 1.5], [1.0, -0.5, 0.3], [0.0, 0.0, 2.0]])
    condition = torch.zeros(3, 2)
    # rows: spinal & severe, spinal & normal_mild, foraminal & severe (codes 0 / 1)
    y = torch.tensor([[0, 2], [0, 0], [1, 2]])
    p_severe = torch.softmax(severity, dim=1)[:, 2].numpy()
    bce = [-np.log(p_severe[0]), -np.log(1 - p_severe[1])]
    expected = (4 * bce[0] + 1 * bce[1]) / (4 + 1)
    plain = DualHeadLoss()((condition, severity), y)
    term = DualHeadLoss(
        any_severe_weight=0.5, spinal_class=0, severe_class=2, metric_weight=[1.0, 2.0, 4.0]
    )((condition, severity), y)
    assert float(term - plain) == pytest.approx(0.5 * expected, rel=1e-5)
    # a batch without spinal rows adds nothing
    other = torch.tensor([[1, 2], [1, 0], [1, 1]])
    assert float(
        DualHeadLoss(
            any_severe_weight=0.5, spinal_class=0, severe_class=2, metric_weight=[1.0, 2.0, 4.0]
        )((condition, severity), other)
    ) == (pytest.approx(float(DualHeadLoss()((condition, severity), other))))


def test_any_severe_weight_reaches_the_loss_and_is_checked(data):
    X, y = data[0][:40], data[1][:40]
    quick = dict(max_epochs=1, valid_size=None, random_state=0)
    clf = DualHeadClassifier(any_severe_weight=2.0, **quick).fit(X, y)
    criterion = clf.net_.criterion_
    # sorted classes: "Spinal Canal Stenosis" is the last condition, "severe" the last severity
    assert (criterion.any_severe_weight, criterion.spinal_class, criterion.severe_class) == (
        2.0,
        4,
        2,
    )
    assert criterion.metric_weight.tolist() == [2.0, 1.0, 4.0]
    plain = DualHeadClassifier(**quick).fit(X, y)
    assert not np.allclose(clf.predict_proba(X)[1], plain.predict_proba(X)[1])
    foraminal = y.assign(condition=np.where(np.arange(40) % 2, CONDITIONS[1], CONDITIONS[2]))
    with pytest.warns(UserWarning, match="any_severe_weight=2.0 has no effect"):
        DualHeadClassifier(any_severe_weight=2.0, **quick).fit(X, foraminal)
    codes = np.column_stack([np.arange(40) % 5, np.arange(40) % 3 + 5])
    with pytest.raises(ValueError, match="any_severe_weight needs severity labels"):
        DualHeadClassifier(any_severe_weight=1.0, **quick).fit(X, codes)
    with pytest.raises(ValueError, match="'any_severe_weight' parameter"):
        DualHeadClassifier(any_severe_weight=-1.0, **quick).fit(X, y)


def test_ordinal_head_learns_ordered_grades_and_keeps_the_contract(data, tmp_path):
    X, y = data
    clf = DualHeadClassifier(lr=3e-3, ordinal=True, **{**FAST, "max_epochs": 8})
    clf.fit(X, y)
    assert clf.classes_[1].tolist() == ["moderate", "normal_mild", "severe"]
    p = clf.predict_proba(X)[1]
    assert p.shape == (len(X), 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    # The brighter the square, the higher the grade: P(severe) rises and P(normal_mild)
    # falls from one true grade to the next (columns in classes_ order, not the grades').
    by_grade = [p[(y["severity"] == s).to_numpy()].mean(axis=0) for s in SEVERITIES]
    severe, normal = 2, 1
    assert by_grade[0][normal] > by_grade[1][normal] > by_grade[2][normal]
    assert by_grade[0][severe] < by_grade[1][severe] < by_grade[2][severe]
    assert (clf.predict(X)[:, 1] == y["severity"].to_numpy()).mean() > 0.6  # chance: 0.33
    # A cumulative link: P(grade <= k) is a sigmoid of the thresholds minus one score,
    # so the model's odds of "above normal_mild" and "above moderate" share that score.
    cumulative = np.cumsum(p[:, [normal, 0, severe]], axis=1)[:, :2]
    logit = np.log(cumulative / (1 - cumulative))
    np.testing.assert_allclose(np.ptp(logit[:, 1] - logit[:, 0]), 0.0, atol=1e-3)
    clf.save(tmp_path / "ordinal.pt")
    loaded = DualHeadClassifier.load(tmp_path / "ordinal.pt")
    assert loaded.ordinal is True
    np.testing.assert_allclose(loaded.predict_proba(X)[1], p, atol=1e-6)


def test_ordinal_head_calibrates_orders_numbers_and_refuses_unordered_labels(data):
    from spinecls.calibration import calibrate_heads

    X, y = data
    grades = y["severity"].map({s: k + 1 for k, s in enumerate(SEVERITIES)}).to_numpy()
    y_numbers = np.column_stack([y["condition"].to_numpy(), grades]).astype(object)
    y_numbers[:, 1] = grades  # ints: ordered by value
    clf = DualHeadClassifier(ordinal=True, valid_size=None, **FAST).fit(X, y_numbers)
    assert clf.classes_[1].tolist() == [1, 2, 3]
    before = clf.predict_proba(X)[1]
    calibrate_heads(clf, X, y_numbers, min_rows=50)
    after = clf.predict_proba(X)[1]
    assert clf.temperatures_[1] != 1.0
    np.testing.assert_allclose(after.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(after.argmax(axis=1), before.argmax(axis=1))
    unordered = y.assign(severity=y["severity"].map({"normal_mild": "a", "moderate": "b"}))
    unordered["severity"] = unordered["severity"].fillna("c")
    with pytest.raises(ValueError, match="ordinal=True needs severity labels that have an order"):
        DualHeadClassifier(ordinal=True, **FAST).fit(X, unordered)
    with pytest.raises(ValueError, match="'ordinal' parameter"):
        DualHeadClassifier(ordinal="yes", **FAST).fit(X, y)


def test_balanced_decision_divides_by_the_training_shares(fitted, data, tmp_path):
    X, y = data
    shares = [y[c].value_counts(normalize=True) for c in ("condition", "severity")]
    for k, head in enumerate(fitted.classes_):
        np.testing.assert_allclose(fitted.class_prior_[k], shares[k].reindex(head).to_numpy())
    balanced = clone(fitted).set_params(decision="balanced")
    balanced.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    probas = fitted.predict_proba(X)
    expected = [
        np.asarray(c)[(p / prior).argmax(axis=1)]
        for c, p, prior in zip(fitted.classes_, probas, fitted.class_prior_)
    ]
    np.testing.assert_array_equal(balanced.predict(X), np.column_stack(expected))
    for got, want in zip(balanced.predict_proba(X), probas):  # probabilities unchanged
        np.testing.assert_array_equal(got, want)
    balanced.save(tmp_path / "balanced.pt")
    loaded = DualHeadClassifier.load(tmp_path / "balanced.pt")
    np.testing.assert_array_equal(loaded.predict(X), balanced.predict(X))
    loaded.class_prior_ = None  # as a file written before the shares were kept
    with pytest.raises(ValueError, match="decision='balanced' needs the training class shares"):
        loaded.predict(X)
    with pytest.raises(ValueError, match="'decision' parameter"):
        DualHeadClassifier(decision="bayes", **FAST).fit(X, y)
