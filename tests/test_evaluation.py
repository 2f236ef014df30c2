"""spinecls.evaluation: one function for the report, the submission and the score."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from spinecls import DualHeadClassifier, LumbarPatchTransformer
from spinecls.evaluation import evaluate
from spinecls.metrics import dual_head_report, rsna_score, solution_from_frame, to_submission


@pytest.fixture(scope="module")
def fitted(rsna_frame):
    pipe = Pipeline([
        ("patches", LumbarPatchTransformer(patch_size=32)),
        ("clf", DualHeadClassifier(max_epochs=1, valid_size=None, random_state=0)),
    ])  # fmt: skip
    return pipe.fit(rsna_frame, rsna_frame[["condition", "severity"]])


def test_evaluate_matches_the_metrics_computed_by_hand(fitted, rsna_frame):
    rows = rsna_frame.iloc[::3]
    evaluation = evaluate(fitted, rows)
    by_hand = dual_head_report(
        rows[["condition", "severity"]],
        fitted.predict(rows),
        proba=fitted.predict_proba(rows),
        classes=fitted.classes_,
    )
    assert evaluation.report.summary.equals(by_hand.summary)
    proba = fitted.predict_proba(rows)[1]
    submission = to_submission(rows, proba, classes=fitted.classes_[1], complete=False)
    assert evaluation.submission.equals(submission)
    assert evaluation.score == pytest.approx(rsna_score(solution_from_frame(rows), submission))


def test_a_complete_submission_has_25_rows_a_study_and_the_same_score(fitted, rsna_frame):
    rows = rsna_frame[rsna_frame.condition != "Spinal Canal Stenosis"].head(30)
    rows = rsna_frame[rsna_frame.study_id.isin(rows.study_id)]
    partial, complete = evaluate(fitted, rows), evaluate(fitted, rows, complete=True)
    assert len(complete.submission) == 25 * rows.study_id.nunique()
    assert complete.score == pytest.approx(partial.score)


def test_to_dict_is_json_with_the_score(fitted, rsna_frame):
    evaluation = evaluate(fitted, rsna_frame.head(25))
    loaded = json.loads(json.dumps(evaluation.to_dict()))
    assert loaded["competition_score"] == pytest.approx(evaluation.score)
    assert np.isfinite(loaded["summary"]["severity"]["accuracy"])
