"""spinecls.metrics: reports, scorers, the competition score, submissions."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    get_scorer,
    log_loss,
    roc_auc_score,
)
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline

from spinecls import CONDITIONS, LEVELS, SEVERITIES, DualHeadClassifier, LumbarPatchTransformer
from spinecls.inference import predict_studies
from spinecls.labels import SEVERITY_PRIORS, TARGETS
from spinecls.metrics import (
    CALIBRATION_BINS,
    dual_head_report,
    expected_calibration_error,
    head_scorer,
    reliability_table,
    row_ids,
    rsna_score,
    rsna_scorer,
    solution_from_frame,
    to_submission,
)
from spinecls.metrics._competition import parse_row_ids, submission_row_ids

LOG3 = math.log(3)


def labelled(studies=(1, 2), seed=0):
    """Every condition-level of each study with random severities."""
    rng = np.random.default_rng(seed)
    rows = [(s, c, lv) for s in studies for c in CONDITIONS for lv in LEVELS]
    frame = pd.DataFrame(rows, columns=["study_id", "condition", "level"])
    frame["severity"] = np.array(SEVERITIES)[rng.choice(3, len(frame), p=[0.6, 0.25, 0.15])]
    return frame


# -- reports -------------------------------------------------------------------------------
def test_report_matches_sklearn_weighted_metrics():
    rng = np.random.default_rng(0)
    true = np.column_stack(
        [np.array(CONDITIONS)[rng.integers(0, 5, 60)], np.array(SEVERITIES)[rng.integers(0, 3, 60)]]
    )
    pred = true.copy()
    flip = rng.random(60) < 0.3
    pred[flip, 1] = "severe"
    report = dual_head_report(true, pred)
    assert report.summary.loc["condition", "accuracy"] == 1.0
    expected_f1 = f1_score(true[:, 1], pred[:, 1], average="weighted", zero_division=0)
    assert report.summary.loc["severity", "f1"] == pytest.approx(expected_f1)
    assert report.summary.loc["severity", "support"] == 60
    matrix = report.confusion_matrices["severity"]
    assert list(matrix.index) == list(SEVERITIES) and matrix.to_numpy().sum() == 60
    assert matrix.loc["severe", "severe"] == (true[:, 1] == "severe").sum()
    assert "weighted avg" in report.classification_reports["condition"].index
    text = str(report)
    assert "Per-head metrics" in text and "confusion matrix" in text
    data = json.loads(report.to_json())
    assert data["summary"]["condition"]["accuracy"] == 1.0
    assert data["confusion_matrices"]["severity"]["labels"] == list(SEVERITIES)


def test_report_on_integer_codes_and_dataframes():
    true = pd.DataFrame({"condition": [0, 1, 2, 3, 4, 0], "severity": [0, 1, 2, 0, 1, 2]})
    pred = pd.DataFrame({"severity": [0, 1, 2, 0, 1, 2], "condition": [0, 1, 2, 3, 4, 1]})
    report = dual_head_report(true, pred)
    assert report.summary.loc["condition", "accuracy"] == pytest.approx(5 / 6)
    assert report.summary.loc["severity", "accuracy"] == 1.0


def test_report_reads_lists_of_mixed_labels_as_their_own_types():
    """One two-column parser for metrics and the classifier: ints in a list stay ints."""
    y = [[CONDITIONS[0], 0], [CONDITIONS[1], 2], [CONDITIONS[0], 2]]
    report = dual_head_report(y, y, labels=(list(CONDITIONS), [0, 1, 2]))
    assert list(report.confusion_matrices["severity"].index) == [0, 2]
    assert report.confusion_matrices["severity"].to_numpy().trace() == 3


def test_report_bad_input():
    with pytest.raises(ValueError, match="y_true has 2 rows but y_pred has 1"):
        dual_head_report([["a", "b"], ["a", "b"]], [["a", "b"]])
    with pytest.raises(ValueError, match=r"y_true must have two columns.*got shape \(2,\)"):
        dual_head_report([1, 2], [1, 2])
    with pytest.raises(ValueError, match=r"y_pred must have two columns.*got shape \(1, 3\)"):
        dual_head_report([["a", "b"]], [["a", "b", "c"]])
    with pytest.raises(
        ValueError, match=r"y_pred is a DataFrame with columns \[0, 1\]: .* by name"
    ):
        dual_head_report([["a", "b"]], pd.DataFrame([["a", "b"]]))
    with pytest.raises(ValueError, match=r"unknown severity label\(s\) \['mild'\] in y_pred"):
        dual_head_report([[CONDITIONS[0], "severe"]], [[CONDITIONS[0], "mild"]])
    with pytest.raises(ValueError, match="unknown condition"):
        dual_head_report([["x", 0]], [["y", 0]], labels=(["x"], [0]))


def test_report_names_rows_with_missing_labels():
    scs = CONDITIONS[0]
    good = [[scs, "severe"], [scs, "moderate"], [scs, "severe"]]
    with pytest.raises(ValueError, match=r"y_true has missing severity labels at row\(s\) 1, 2$"):
        dual_head_report([[scs, "severe"], [scs, None], [scs, np.nan]], good)
    codes = pd.DataFrame({"condition": [0.0, np.nan, 1.0], "severity": [0, 1, 2]})
    with pytest.raises(ValueError, match=r"y_pred has missing condition labels at row\(s\) 1$"):
        dual_head_report(codes.fillna(0), codes)


def test_expected_calibration_error_by_hand():
    # confidences 0.95, 0.92 (bin 0.9-1), 0.75 (bin 0.7-0.8), 0.55, 0.52 (bin 0.5-0.6)
    y_true = ["a", "a", "b", "a", "b"]
    proba = [[0.95, 0.05], [0.08, 0.92], [0.25, 0.75], [0.55, 0.45], [0.52, 0.48]]
    table = reliability_table(y_true, proba, classes=["a", "b"])
    assert table[["lower", "upper"]].round(1).to_numpy().tolist() == [
        [0.5, 0.6],
        [0.7, 0.8],
        [0.9, 1.0],
    ]
    assert table["count"].tolist() == [2, 1, 2]
    np.testing.assert_allclose(table["confidence"], [0.535, 0.75, 0.935])
    np.testing.assert_allclose(table["accuracy"], [0.5, 1.0, 0.5])
    # (2 |0.5 - 0.535| + 1 |1 - 0.75| + 2 |0.5 - 0.935|) / 5
    expected = (2 * 0.035 + 0.25 + 2 * 0.435) / 5
    assert expected_calibration_error(y_true, proba, classes=["a", "b"]) == pytest.approx(expected)
    # one bin: |accuracy - mean confidence| over all rows; default classes: sorted y_true
    assert expected_calibration_error(y_true, proba, n_bins=1) == pytest.approx(
        abs(0.6 - np.mean([0.95, 0.92, 0.75, 0.55, 0.52]))
    )
    assert CALIBRATION_BINS == 10
    # a confidence of exactly 1 falls in the last bin, and perfect certainty costs 0
    assert expected_calibration_error([0, 1], [[1.0, 0.0], [0.0, 1.0]]) == 0.0
    with pytest.raises(ValueError, match=r"proba must have shape \(5, 3\)"):
        reliability_table(y_true, proba, classes=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"label\(s\) 'b' not in the classes"):
        reliability_table(y_true, np.array(proba)[:, :1].repeat(2, 1), classes=["a", "z"])
    with pytest.raises(ValueError, match="n_bins must be a positive int"):
        reliability_table(y_true, proba, n_bins=0)


def test_report_with_probabilities_adds_log_loss_ece_and_balanced_accuracy():
    rng = np.random.default_rng(3)
    n = 80
    severities = sorted(SEVERITIES)  # a classifier's classes_[1]
    conditions = sorted(CONDITIONS)
    true = np.column_stack(
        [rng.choice(conditions, n), rng.choice(severities, n, p=[0.3, 0.6, 0.1])]
    )
    proba = [
        rng.dirichlet(np.ones(5), n).astype(np.float32),
        rng.dirichlet(np.ones(3), n).astype(np.float32),
    ]
    classes = [np.array(conditions), np.array(severities)]
    pred = np.column_stack([c[p.argmax(1)] for c, p in zip(classes, proba)])
    report = dual_head_report(true, pred, proba=proba, classes=classes)
    for k, head in enumerate(["condition", "severity"]):
        p64 = proba[k].astype(np.float64)
        p64 /= p64.sum(1, keepdims=True)
        assert report.summary.loc[head, "log_loss"] == pytest.approx(
            log_loss(true[:, k], p64, labels=classes[k])
        )
        assert report.summary.loc[head, "ece"] == pytest.approx(
            expected_calibration_error(true[:, k], p64, classes=classes[k])
        )
        assert report.summary.loc[head, "balanced_accuracy"] == pytest.approx(
            balanced_accuracy_score(true[:, k], pred[:, k])
        )
        assert report.reliability[head]["count"].sum() == n
    assert list(report.summary.columns) == [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "balanced_accuracy",
        "log_loss",
        "ece",
        "support",
    ]
    data = json.loads(report.to_json())
    assert data["summary"]["severity"]["log_loss"] == pytest.approx(
        report.summary.loc["severity", "log_loss"]
    )
    assert sum(data["reliability"]["condition"]["count"]) == n
    assert "severity: reliability" in str(report)
    # without probabilities: the old columns plus balanced accuracy, no reliability
    plain = dual_head_report(true, pred)
    assert "log_loss" not in plain.summary and plain.reliability == {}
    assert plain.summary.loc["severity", "balanced_accuracy"] == pytest.approx(
        report.summary.loc["severity", "balanced_accuracy"]
    )
    with pytest.raises(ValueError, match="proba needs classes="):
        dual_head_report(true, pred, proba=proba)
    with pytest.raises(ValueError, match=r"severity probabilities must have shape \(80, 3\)"):
        dual_head_report(true, pred, proba=[proba[0], proba[1][:, :2]], classes=classes)
    with pytest.raises(ValueError, match="condition probabilities must be finite"):
        dual_head_report(true, pred, proba=[-proba[0], proba[1]], classes=classes)


# -- scorers -------------------------------------------------------------------------------
class Fixed:
    """A stand-in estimator that predicts given labels and probabilities."""

    def __init__(self, predicted, proba=None, classes=None):
        self.predicted = np.asarray(predicted, dtype=object)
        self.proba = proba
        self.classes_ = classes

    def predict(self, X):
        return self.predicted[: len(X)]

    def predict_proba(self, X):
        return [p[: len(X)] for p in self.proba]


def test_head_scorer_scores_one_column():
    y = np.array([[0, 0], [1, 1], [2, 2], [3, 0]], dtype=object)
    predicted = np.array([[0, 1], [1, 1], [0, 2], [3, 0]], dtype=object)
    X = np.zeros((4, 1))
    assert head_scorer("condition")(Fixed(predicted), X, y) == 0.75
    assert head_scorer("severity", "accuracy")(Fixed(predicted), X, y) == 0.75
    f1 = f1_score(y[:, 1].astype(int), predicted[:, 1].astype(int), average="macro")
    assert head_scorer("severity", "f1_macro")(Fixed(predicted), X, y) == pytest.approx(f1)
    with pytest.raises(ValueError, match="head must be one of"):
        head_scorer("level")
    with pytest.raises(ValueError, match="metric must be one of"):
        head_scorer("severity", "roc_auc")


def test_head_scorer_scores_one_heads_probabilities():
    rng = np.random.default_rng(0)
    severity = np.array(SEVERITIES)[[0, 1, 2, 0, 0, 1, 2, 0]]
    condition = np.array(CONDITIONS)[[0, 1, 0, 1, 0, 1, 0, 0]]
    y = np.column_stack([condition, severity])
    classes = [np.unique(condition), np.unique(severity)]  # as a fitted classifier sorts them
    proba = [rng.dirichlet([1, 1], 8), rng.dirichlet([1, 1, 1], 8)]
    estimator, X = Fixed(y, proba, classes), np.zeros((8, 1))

    def score(head, metric, estimator=estimator, X=X, y=y):
        return head_scorer(head, metric)(estimator, X, y)

    assert score("severity", "neg_log_loss") == pytest.approx(-log_loss(severity, proba[1]))
    assert score("severity", "neg_brier_score") == pytest.approx(
        -brier_score_loss(severity, proba[1], labels=classes[1])
    )
    for metric, multi_class, average in [
        ("roc_auc_ovr", "ovr", "macro"),
        ("roc_auc_ovo_weighted", "ovo", "weighted"),
    ]:
        assert score("severity", metric) == pytest.approx(
            roc_auc_score(severity, proba[1], multi_class=multi_class, average=average)
        )
    # a head of two classes: the binary AUC of its second class, as scikit-learn scores it
    assert score("condition", "roc_auc_ovr") == pytest.approx(
        roc_auc_score(condition == classes[0][1], proba[0][:, 1])
    )
    # a fold whose labels lack "severe" is scored against all the fitted classes
    part = severity != "severe"
    fold = Fixed(y[part], [p[part] for p in proba], classes)
    expected = -log_loss(severity[part], proba[1][part], labels=classes[1])
    assert score("severity", "neg_log_loss", fold, X[part], y[part]) == pytest.approx(expected)
    wrong = Fixed(y, [proba[0], proba[1][:, :2]], classes)
    with pytest.raises(ValueError, match=r"severity probabilities have shape \(8, 2\); expected"):
        score("severity", "neg_log_loss", wrong)
    with pytest.raises(ValueError, match=r"y has missing severity labels at row\(s\) 0"):
        score("severity", "neg_log_loss", y=np.column_stack([condition, [None, *severity[1:]]]))


TINY = dict(
    max_epochs=1, valid_size=None, random_state=0, module__widths=(4, 8, 8), module__hidden=8
)


@pytest.fixture(scope="module")
def images():
    """24 random images with every condition and severity, for quick grid searches."""
    rng = np.random.default_rng(0)
    X = rng.random((24, 1, 32, 32), dtype=np.float32)
    y = np.column_stack(
        [np.array(CONDITIONS)[np.arange(24) % 5], np.array(SEVERITIES)[np.arange(24) % 3]]
    )
    return X, y


def test_string_probability_scorers_name_head_scorer_instead_of_a_silent_nan(images):
    search = GridSearchCV(DualHeadClassifier(**TINY), {"lr": [1e-3]}, scoring="neg_log_loss", cv=2)
    # scikit-learn turns any scoring error into NaN under the default error_score; the
    # warning it gives then says what to use
    with pytest.warns(UserWarning) as record:
        search.fit(*images)
    messages = [str(w.message) for w in record]
    assert any("Scoring failed" in m and "spinecls.metrics.head_scorer" in m for m in messages)
    assert any("test scores are non-finite" in m for m in messages)
    fitted = search.best_estimator_
    # what GridSearchCV(error_score="raise") lets through: one line naming the way out
    for scoring in ("neg_log_loss", "roc_auc_ovr", "neg_brier_score"):
        with pytest.raises(ValueError, match=r"head_scorer\(head, metric\)") as info:
            get_scorer(scoring)(fitted, *images)
        assert "\n" not in str(info.value) and "rsna_scorer" in str(info.value)
    proba = fitted.predict_proba(images[0])
    assert isinstance(proba, list) and [p.shape for p in proba] == [(24, 5), (24, 3)]
    with pytest.raises(ValueError, match="one array per head"):
        np.asarray(proba)


def test_head_scorer_probabilities_in_a_grid_search(images):
    search = GridSearchCV(
        DualHeadClassifier(**TINY),
        {"lr": [1e-3]},
        scoring={
            "severity_log_loss": head_scorer("severity", "neg_log_loss"),
            "condition_auc": head_scorer("condition", "roc_auc_ovr"),
        },
        refit="severity_log_loss",
        cv=2,
        error_score="raise",
    ).fit(*images)
    results = search.cv_results_
    assert (results["mean_test_severity_log_loss"] < 0).all()
    auc = results["mean_test_condition_auc"]
    assert np.isfinite(auc).all() and ((auc >= 0) & (auc <= 1)).all()
    X, y = images
    best = search.best_estimator_
    expected = -log_loss(y[:, 1], best.predict_proba(X)[1], labels=best.classes_[1])
    assert head_scorer("severity", "neg_log_loss")(best, X, y) == pytest.approx(expected)


# -- the competition score -----------------------------------------------------------------
def test_row_ids_are_the_competition_ones():
    frame = pd.DataFrame({"study_id": [44036939], "condition": [CONDITIONS[1]], "level": ["L1/L2"]})
    assert row_ids(frame).tolist() == ["44036939_left_neural_foraminal_narrowing_l1_l2"]


def test_uniform_predictions_score_log3_per_group():
    frame = labelled()
    solution = solution_from_frame(frame)
    uniform = solution[["row_id"]].assign(normal_mild=1 / 3, moderate=1 / 3, severe=1 / 3)
    # any_severe: label 1 costs -log(1/3), label 0 costs -log(2/3), weighted by max weight
    spinal = frame[frame.condition == CONDITIONS[0]]
    per_study = spinal.groupby("study_id")["severity"]
    label = per_study.apply(lambda s: (s == "severe").any()).to_numpy()
    weight = per_study.apply(
        lambda s: max({"normal_mild": 1, "moderate": 2, "severe": 4}[v] for v in s)
    )
    binary = np.where(label, LOG3, math.log(1.5))
    any_severe = np.average(binary, weights=weight.to_numpy())
    assert rsna_score(solution, uniform) == pytest.approx((3 * LOG3 + any_severe) / 4)
    # a submission multiplied by 3 (rows not summing to one) scores the same
    assert rsna_score(
        solution, uniform.assign(normal_mild=1, moderate=1, severe=1)
    ) == pytest.approx(rsna_score(solution, uniform))


def test_each_group_equals_sklearn_weighted_log_loss():
    frame = labelled(studies=(5, 6, 7), seed=3)
    solution = solution_from_frame(frame)
    rng = np.random.default_rng(1)
    proba = rng.dirichlet([2, 1, 1], size=len(solution))
    submission = solution[["row_id"]].assign(
        normal_mild=proba[:, 0], moderate=proba[:, 1], severe=proba[:, 2]
    )
    losses = []
    for key in ("spinal", "foraminal", "subarticular"):
        rows = solution["row_id"].str.contains(f"_{key}_")
        losses.append(
            log_loss(
                solution.loc[rows, SEVERITIES].to_numpy().argmax(1),
                proba[rows.to_numpy()],
                sample_weight=solution.loc[rows, "sample_weight"],
                labels=[0, 1, 2],
            )
        )
    spinal = solution[solution["row_id"].str.contains("_spinal_")].assign(
        study=lambda d: d.row_id.str.split("_").str[0],
        p=proba[solution["row_id"].str.contains("_spinal_").to_numpy(), 2],
    )
    g = spinal.groupby("study")
    losses.append(
        log_loss(
            g["severe"].max(), g["p"].max(), sample_weight=g["sample_weight"].max(), labels=[0, 1]
        )
    )
    assert rsna_score(solution, submission.sample(frac=1, random_state=0)) == pytest.approx(
        np.mean(losses)
    )


def test_perfect_submission_scores_about_zero():
    solution = solution_from_frame(labelled())
    perfect = solution[["row_id", *SEVERITIES]].astype({s: float for s in SEVERITIES})
    assert rsna_score(solution, perfect) == pytest.approx(0, abs=1e-12)


def test_any_severe_term_by_hand():
    """One study, spinal L1/L2 severe (weight 4): any_severe label 1, weight 4; the
    prediction is the largest normalised severe probability of its spinal rows."""
    ids = {
        "s1": "9_spinal_canal_stenosis_l1_l2",
        "s2": "9_spinal_canal_stenosis_l2_l3",
        "f": "9_left_neural_foraminal_narrowing_l1_l2",
        "a": "9_left_subarticular_stenosis_l1_l2",
    }
    solution = pd.DataFrame(
        [
            (ids["s1"], 0, 0, 1, 4.0),
            (ids["s2"], 1, 0, 0, 1.0),
            (ids["f"], 1, 0, 0, 1.0),
            (ids["a"], 0, 1, 0, 2.0),
        ],
        columns=["row_id", *SEVERITIES, "sample_weight"],
    )
    submission = pd.DataFrame(
        [
            (ids["s1"], 2.0, 1.0, 1.0),  # severe 0.25 after normalising
            (ids["s2"], 0.2, 0.2, 0.6),  # severe 0.6: the study's max
            (ids["f"], 0.5, 0.25, 0.25),
            (ids["a"], 0.25, 0.5, 0.25),
        ],
        columns=["row_id", *SEVERITIES],
    )
    spinal = (4 * -math.log(0.25) + 1 * -math.log(0.2)) / 5
    foraminal = -math.log(0.5)
    subarticular = -math.log(0.5)
    any_severe = -math.log(0.6)  # label 1, weight 4 (one study: the weight cancels)
    expected = (spinal + foraminal + subarticular + any_severe) / 4
    assert rsna_score(solution, submission) == pytest.approx(expected)
    # a second study without severe spinal rows: label 0, weight = its max spinal weight (2)
    two = pd.concat(
        [
            solution,
            pd.DataFrame(
                [("10_spinal_canal_stenosis_l1_l2", 0, 1, 0, 2.0)],
                columns=["row_id", *SEVERITIES, "sample_weight"],
            ),
        ]
    )
    sub_two = pd.concat(
        [
            submission,
            pd.DataFrame(
                [("10_spinal_canal_stenosis_l1_l2", 0.3, 0.5, 0.2)], columns=["row_id", *SEVERITIES]
            ),
        ]
    )
    spinal2 = (4 * -math.log(0.25) + 1 * -math.log(0.2) + 2 * -math.log(0.5)) / 7
    any2 = (4 * -math.log(0.6) + 2 * -math.log(0.8)) / 6
    assert rsna_score(two, sub_two) == pytest.approx(
        (spinal2 + foraminal + subarticular + any2) / 4
    )


def test_clipping_keeps_zero_probabilities_finite():
    solution = solution_from_frame(labelled())
    wrong = solution[["row_id"]].assign(
        normal_mild=1.0 - solution["normal_mild"],
        moderate=0.0,
        severe=solution["normal_mild"] * 1.0,
    )
    score = rsna_score(solution, wrong)
    assert np.isfinite(score) and score > 10  # -log(1e-15) is about 34.5


def test_score_bad_input():
    solution = solution_from_frame(labelled())
    submission = solution[["row_id"]].assign(normal_mild=0.5, moderate=0.3, severe=0.2)
    with pytest.raises(ValueError, match=r"submission lacks 2 row\(s\) of the solution"):
        rsna_score(solution, submission.iloc[2:])
    with pytest.raises(ValueError, match=r"submission is missing column\(s\) \['severe'\]"):
        rsna_score(solution, submission.drop(columns="severe"))
    nan = submission.copy()
    nan.loc[3, "moderate"] = np.nan
    with pytest.raises(ValueError, match="finite, non-negative numbers; see row_id"):
        rsna_score(solution, nan)


def changed(**values):
    """A change to the first row of a solution (sorted: 1_left_neural_..._l1_l2)."""

    def change(frame):
        frame = frame.astype(object)
        for column, value in values.items():
            frame.loc[0, column] = value
        return frame

    return change


FIRST = "1_left_neural_foraminal_narrowing_l1_l2"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: pd.concat([s, s.iloc[:1]]), rf"duplicated row_id\(s\).*once: {FIRST}$"),
        (
            lambda s: pd.concat([s, s.iloc[:1].assign(normal_mild=0, moderate=0, severe=1)]),
            rf"duplicated row_id\(s\).*once: {FIRST}$",
        ),
        (changed(normal_mild=1, moderate=1, severe=0), rf"must be one-hot.*row_id\(s\) {FIRST}$"),
        (changed(normal_mild=0, moderate=0, severe=0), rf"must be one-hot.*row_id\(s\) {FIRST}$"),
        (changed(normal_mild=0.5, moderate=0.5, severe=0), "must be one-hot"),
        (changed(normal_mild=np.nan), rf"must be one-hot.*row_id\(s\) {FIRST}$"),
        (changed(normal_mild="yes"), rf"must be one-hot.*row_id\(s\) {FIRST}$"),
        (changed(sample_weight=np.nan), rf"sample_weight must be finite.*row_id\(s\) {FIRST}$"),
        (changed(sample_weight=-1.0), rf"sample_weight must be finite.*row_id\(s\) {FIRST}$"),
        (lambda s: s.assign(sample_weight=0), "every spinal row of the solution has sample_"),
        (lambda s: s.assign(sample_weight=s.sample_weight.where(~s.row_id.str.contains("sub"), 0)),
         "every subarticular row of the solution has sample_weight 0"),
        (changed(row_id="1_spinal_l1_l2"), r"row_id\(s\) not of the form .*: 1_spinal_l1_l2$"),
        (changed(row_id=None), r"row_id\(s\) not of the form .*: None$"),
        (lambda s: s.iloc[:0], "the solution has no rows"),
    ],
    ids=[
        "duplicated",
        "duplicated-conflicting",
        "two-ones",
        "no-one",
        "fractions",
        "nan-label",
        "text-label",
        "nan-weight",
        "negative-weight",
        "zero-weights",
        "zero-weights-in-a-group",
        "malformed-row-id",
        "missing-row-id",
        "empty",
    ],
)  # fmt: skip
def test_the_solution_is_checked_as_strictly_as_the_submission(change, message):
    solution = solution_from_frame(labelled(studies=(1,)))
    submission = solution[["row_id"]].assign(normal_mild=0.5, moderate=0.3, severe=0.2)
    with pytest.raises(ValueError, match=message) as info:
        rsna_score(change(solution), submission)
    assert "\n" not in str(info.value)


def test_submission_row_ids_are_checked_and_named():
    solution = solution_from_frame(labelled(studies=(1,)))
    submission = solution[["row_id"]].assign(normal_mild=0.5, moderate=0.3, severe=0.2)
    with pytest.raises(ValueError, match=rf"submission has duplicated row_id\(s\).*: {FIRST}$"):
        rsna_score(solution, pd.concat([submission, submission.iloc[:1]]))
    with pytest.raises(ValueError, match=r"submission has row_id\(s\) not of the form.*: 7$"):
        rsna_score(solution, changed(row_id=7)(submission))
    text = changed(moderate="0.3x")(submission)
    with pytest.raises(
        ValueError, match=rf"finite, non-negative numbers; see row_id\(s\) {FIRST}$"
    ):
        rsna_score(solution, text)


# -- submissions ---------------------------------------------------------------------------
def test_to_submission_averages_fills_with_the_prior_and_reorders_columns():
    frame = pd.DataFrame(
        {
            "study_id": [7, 7, 7],
            "condition": [CONDITIONS[0], CONDITIONS[0], CONDITIONS[3]],
            "level": ["L4/L5", "L4/L5", "L1/L2"],
        }
    )
    # columns in a classifier's classes_ order: moderate, normal_mild, severe
    proba = np.array([[0.2, 0.7, 0.1], [0.4, 0.5, 0.1], [0.1, 0.1, 0.8]])
    sub = to_submission(frame, proba, classes=np.array(["moderate", "normal_mild", "severe"]))
    assert list(sub.columns) == ["row_id", *SEVERITIES]
    assert len(sub) == 25 and sub["row_id"].is_unique
    row = sub.set_index("row_id").loc["7_spinal_canal_stenosis_l4_l5"]
    np.testing.assert_allclose(row.to_numpy(), [0.6, 0.3, 0.1])
    row = sub.set_index("row_id").loc["7_left_subarticular_stenosis_l1_l2"]
    np.testing.assert_allclose(row.to_numpy(), [0.1, 0.1, 0.8])
    filled = sub.set_index("row_id").loc["7_right_neural_foraminal_narrowing_l3_l4"]
    np.testing.assert_allclose(filled.to_numpy(), SEVERITY_PRIORS[CONDITIONS[2]])
    only = to_submission(frame, proba, classes=[1, 0, 2], complete=False)
    assert len(only) == 2
    csv = sub.to_csv(index=False)
    assert csv.splitlines()[0] == "row_id,normal_mild,moderate,severe"


def test_to_submission_and_solution_bad_input():
    frame = labelled(studies=(1,))
    with pytest.raises(ValueError, match="3 columns"):
        to_submission(frame, np.ones((len(frame), 2)))
    with pytest.raises(ValueError, match="NaN or infinite values at row"):
        to_submission(frame, np.full((len(frame), 3), np.nan))
    with pytest.raises(ValueError, match="probability rows for"):
        to_submission(frame, np.ones((3, 3)))
    with pytest.raises(ValueError, match="missing column"):
        to_submission(frame.drop(columns="level"), np.ones((len(frame), 3)))
    conflict = pd.concat([frame.iloc[:1], frame.iloc[:1].assign(severity="severe")])
    conflict.iloc[0, conflict.columns.get_loc("severity")] = "normal_mild"
    with pytest.raises(ValueError, match="disagree on the severity"):
        solution_from_frame(conflict)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prior": {c: (-0.1, 0.6, 0.5) for c in CONDITIONS}},
         r"prior probabilities must not be negative; see condition\(s\) Spinal Canal"),
        ({"prior": {CONDITIONS[0]: (1, 0, 0)}},
         "prior needs exactly one entry per condition; missing Left Neural Foraminal"),
        ({"prior": {**SEVERITY_PRIORS, "Spinal": (1, 0, 0)}}, "; unknown 'Spinal'$"),
        ({"prior": {**SEVERITY_PRIORS, CONDITIONS[1]: (1, 0)}},
         r"prior\['Left Neural Foraminal Narrowing'\] must be 3 values"),
        ({"prior": {**SEVERITY_PRIORS, CONDITIONS[1]: (0, 0, 0)}},
         r"prior probabilities sum to zero at condition\(s\) Left Neural Foraminal Narrowing:"),
        ({"prior": {**SEVERITY_PRIORS, CONDITIONS[1]: (np.nan, 0, 1)}}, "NaN or infinite"),
        ({"prior": [0.8, 0.1, 0.1]}, "prior must be a dict"),
        ({"classes": [0, 1, 3]}, "severity codes must be 0-2 .* classes holds 3"),
        ({"classes": [-1, 0, 1]}, "severity codes must be 0-2 .* classes holds -1"),
        ({"classes": ["normal_mild", "severe", "severe"]}, "three severities .* each once"),
        ({"classes": ["normal_mild", "moderate"]}, "three severities"),
    ],
    ids=["negative-prior", "incomplete-prior", "unknown-prior", "short-prior", "zero-prior",
         "nan-prior", "list-prior", "code-3", "code-minus-1", "repeated-class", "two-classes"],
)  # fmt: skip
def test_to_submission_refuses_a_bad_prior_or_bad_classes(kwargs, message):
    frame = labelled(studies=(1,)).iloc[:3]
    with pytest.raises(ValueError, match=message):
        to_submission(frame, np.full((3, 3), 1 / 3), **kwargs)


@pytest.mark.parametrize(
    "prior",
    [
        {CONDITIONS[0]: (1, 0, 0)},
        {**SEVERITY_PRIORS, CONDITIONS[1]: (0, 0, 0)},
        {**SEVERITY_PRIORS, CONDITIONS[1]: (1, 0)},
        [0.8, 0.1, 0.1],
    ],
    ids=["incomplete", "zero", "short", "list"],
)
def test_predict_studies_checks_the_prior_as_to_submission_does(prior, tmp_path):
    frame = labelled(studies=(1,)).iloc[:3]
    with pytest.raises(ValueError) as expected:
        to_submission(frame, np.full((3, 3), 1 / 3), prior=prior)
    with pytest.raises(ValueError) as got:
        predict_studies(tmp_path, None, prior=prior)  # before any file is read
    assert str(got.value) == str(expected.value)


def test_row_ids_are_built_and_read_in_one_place():
    ids = submission_row_ids([12, 3])
    assert len(ids) == 50 and ids.iloc[0] == "12_spinal_canal_stenosis_l1_l2"
    parts = parse_row_ids(ids)
    assert parts["study_id"].tolist() == [12] * 25 + [3] * 25
    frame = parts.assign(severity="normal_mild")
    assert row_ids(frame).tolist() == ids.tolist()
    # a complete submission's rows are those ids (sorted by study, then row id)
    submission = to_submission(frame.iloc[:1], [[1.0, 0, 0]])
    assert submission["row_id"].tolist() == sorted(submission_row_ids([12]))
    bad = pd.Series(["12_spinal_canal_stenosis_l1_l2", "12_spinal_l1_l2", "x"], index=[2, 3, 4])
    with pytest.raises(ValueError, match=r"got '12_spinal_l1_l2', 'x' at line\(s\) 3, 4$"):
        parse_row_ids(bad, unit="line")


def test_to_submission_normalises_rows_and_the_prior():
    frame = labelled(studies=(1,)).iloc[:2]  # spinal canal stenosis L1/L2 and L2/L3
    sub = to_submission(frame, [[2, 1, 1], [0, 0, 3]], prior={c: (2, 1, 1) for c in CONDITIONS})
    table = sub.set_index("row_id")
    np.testing.assert_allclose(table.loc["1_spinal_canal_stenosis_l1_l2"], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(table.loc["1_spinal_canal_stenosis_l2_l3"], [0, 0, 1])
    np.testing.assert_allclose(table.loc["1_left_subarticular_stenosis_l4_l5"], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(sub[TARGETS].sum(axis=1), 1)
    with pytest.raises(ValueError, match=r"severity probabilities sum to zero at row\(s\) 1:"):
        to_submission(frame, [[1, 1, 1], [0, 0, 0]])
    with pytest.raises(ValueError, match=r"must not be negative; see row\(s\) 0$"):
        to_submission(frame, [[-1, 1, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match="severity probabilities must be numbers"):
        to_submission(frame, [["a", 1, 1], [1, 1, 1]])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.nan, r"column 'study_id' must hold whole numbers; got \[nan\] at row\(s\) 2$"),
        (1.5, r"must hold whole numbers; got \[1.5\] at row\(s\) 2$"),
        ("x1", r"must hold whole numbers; got \['x1'\] at row\(s\) 2$"),
        (-4, r"must hold non-negative ids; got \[-4\] at row\(s\) 2$"),
    ],
    ids=["nan", "fraction", "text", "negative"],
)
def test_rows_with_bad_study_ids_are_named(value, message):
    frame = labelled(studies=(1,)).iloc[:4].astype({"study_id": object})
    frame.loc[2, "study_id"] = value
    with pytest.raises(ValueError, match=message):
        to_submission(frame, np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match=message):
        solution_from_frame(frame)


def test_unknown_and_missing_labels_are_named_with_their_rows():
    frame = labelled(studies=(1,)).iloc[:4]
    with pytest.raises(
        ValueError, match=r"unknown severity value\(s\) nan at row\(s\) 1; expected"
    ):
        solution_from_frame(frame.assign(severity=["severe", np.nan, "severe", "moderate"]))
    with pytest.raises(ValueError, match=r"unknown condition value\(s\) Spinal at row\(s\) 3;"):
        row_ids(frame.assign(condition=[*frame.condition[:3], "Spinal"]))
    with pytest.raises(ValueError, match=r"unknown level value\(s\) nan at row\(s\) 0;"):
        to_submission(frame.assign(level=[None, *frame.level[1:]]), np.ones((4, 3)))


def test_rsna_scorer_takes_no_sample_weight():
    with pytest.raises(ValueError, match="rsna_scorer weights rows as the competition does"):
        rsna_scorer(Fixed([]), labelled(studies=(1,)), None, sample_weight=np.ones(25))


def test_solution_from_load_rsna_frame(rsna_frame):
    solution = solution_from_frame(rsna_frame)
    assert len(solution) == len(rsna_frame)
    assert (solution[list(SEVERITIES)].sum(axis=1) == 1).all()
    assert set(solution["sample_weight"]) <= {1, 2, 4}


def test_scorers_in_a_multi_metric_grid_search(rsna_frame):
    pipe = Pipeline(
        [
            ("patches", LumbarPatchTransformer(patch_size=32)),
            ("clf", DualHeadClassifier(max_epochs=1, batch_size=32, random_state=0)),
        ]
    )
    y = rsna_frame[["condition", "severity"]]
    search = GridSearchCV(
        pipe,
        {"clf__lr": [1e-3, 3e-3]},
        scoring={
            "severity_f1": head_scorer("severity", "f1_weighted"),
            "condition_acc": head_scorer("condition", "accuracy"),
            "rsna": rsna_scorer,
        },
        refit="rsna",
        cv=GroupKFold(n_splits=2),
    )
    search.fit(rsna_frame, y, groups=rsna_frame["study_id"])
    results = search.cv_results_
    assert (results["mean_test_rsna"] < 0).all()
    assert ((results["mean_test_severity_f1"] >= 0) & (results["mean_test_severity_f1"] <= 1)).all()
    assert search.best_index_ == int(np.argmax(results["mean_test_rsna"]))
    with pytest.raises(ValueError, match="rsna_scorer needs X"):
        rsna_scorer(search.best_estimator_[-1], np.zeros((2, 1, 32, 32), np.float32), y[:2])
