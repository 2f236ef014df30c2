"""predict_studies: the submission of a directory graded from located points.

The localizer here is an oracle that returns the labelled coordinates, so the
submission must equal the one graded from the given coordinates; the real
LevelLocalizer is exercised end to end in tests/test_localization.py.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

import spinecls
from spinecls import DualHeadClassifier, LumbarPatchTransformer
from spinecls.dicom import UnreadableFileWarning
from spinecls.inference import PriorFallbackWarning, predict_studies, submission_row_ids
from spinecls.labels import CONDITIONS, LEVELS, SEVERITY_PRIORS, TARGETS
from spinecls.metrics import to_submission

from .helpers import RowwiseDualHead


class Oracle:
    """Returns the labelled points of the series it is asked about."""

    def __init__(self, points):
        self.points = points

    def predict(self, series):
        keys = set(zip(series["study_id"], series["series_id"]))
        mine = [k in keys for k in zip(self.points["study_id"], self.points["series_id"])]
        return self.points.loc[mine].assign(confidence=1.0, qc_outside_image=False)


@pytest.fixture(scope="module")
def pipe(rsna_frame):
    model = Pipeline([
        ("patches", LumbarPatchTransformer(patch_size=40, output_size=32, n_jobs=1)),
        ("clf", DualHeadClassifier(max_epochs=1, valid_size=None, random_state=0)),
    ])  # fmt: skip
    return model.fit(rsna_frame, rsna_frame[["condition", "severity"]])


def test_row_ids_follow_the_competition_order():
    ids = submission_row_ids([5, 3])
    assert len(ids) == 50 and ids.is_unique
    assert ids.iloc[0] == "5_spinal_canal_stenosis_l1_l2"
    assert ids.iloc[5] == "5_left_neural_foraminal_narrowing_l1_l2"
    assert ids.iloc[25] == "3_spinal_canal_stenosis_l1_l2"


def test_oracle_points_give_the_submission_of_the_given_coordinates(pipe, rsna_root, rsna_frame):
    points = rsna_frame.drop(columns="severity")
    got = predict_studies(rsna_root, pipe, Oracle(points), split="train")
    expected = to_submission(
        points, pipe.predict_proba(points)[1], classes=pipe.classes_[1], complete=True
    ).set_index("row_id")
    studies = pd.read_csv(rsna_root / "train_series_descriptions.csv")["study_id"].unique()
    assert got["row_id"].tolist() == submission_row_ids(studies).tolist()
    np.testing.assert_allclose(
        got.set_index("row_id")[TARGETS], expected.loc[got["row_id"]], rtol=1e-6
    )
    np.testing.assert_allclose(got[TARGETS].sum(axis=1), 1.0)


def test_a_missing_series_falls_back_to_the_prior_with_a_warning(pipe, rsna_root, rsna_frame):
    study = int(rsna_frame["study_id"].iloc[0])
    kept = rsna_frame.loc[
        ~((rsna_frame["study_id"] == study) & (rsna_frame["series_description"] == "Axial T2"))
    ].drop(columns="severity")
    with pytest.warns(PriorFallbackWarning, match=rf"{study} \(10\)"):
        got = predict_studies(rsna_root, pipe, Oracle(kept), split="train").set_index("row_id")
    for side in ("left", "right"):
        for level in ("l1_l2", "l5_s1"):
            row = got.loc[f"{study}_{side}_subarticular_stenosis_{level}"]
            np.testing.assert_allclose(row, SEVERITY_PRIORS[CONDITIONS[3]], rtol=1e-6)


def test_points_on_two_series_are_averaged(pipe, rsna_root, rsna_frame):
    points = rsna_frame.drop(columns="severity")
    one = points.iloc[[0]]
    doubled = pd.concat([one, one.assign(x=one["x"] + 6.0)], ignore_index=True)
    with pytest.warns(PriorFallbackWarning):
        got = predict_studies(rsna_root, pipe, Oracle(doubled), split="train")
    proba = pipe.predict_proba(doubled)[1]
    row = got.set_index("row_id").iloc[0]
    order = [list(pipe.classes_[1]).index(t) for t in TARGETS]
    np.testing.assert_allclose(row.to_numpy(float), proba[:, order].mean(axis=0), rtol=1e-6)


def test_sample_submission_sets_rows_and_order(pipe, rsna_root, rsna_frame, tmp_path):
    root = tmp_path / "rsna"
    shutil.copytree(rsna_root, root)
    study = int(rsna_frame["study_id"].iloc[-1])
    ids = submission_row_ids([study])[::-1].reset_index(drop=True)
    pd.DataFrame({"row_id": ids, **dict.fromkeys(TARGETS, 1 / 3)}).to_csv(
        root / "sample_submission.csv", index=False
    )
    points = rsna_frame.drop(columns="severity")
    got = predict_studies(root, pipe, Oracle(points), split="train")
    assert got["row_id"].tolist() == ids.tolist()
    assert len(got) == len(CONDITIONS) * len(LEVELS)


def test_bad_inputs_are_named(pipe, rsna_root, rsna_frame, tmp_path):
    oracle = Oracle(rsna_frame.drop(columns="severity"))
    with pytest.raises(ValueError, match="split must be"):
        predict_studies(rsna_root, pipe, oracle, split="valid")
    with pytest.raises(FileNotFoundError, match="data directory"):
        predict_studies(tmp_path / "nowhere", pipe, oracle)
    with pytest.raises(TypeError, match="model must be a fitted"):
        predict_studies(rsna_root, object(), oracle, split="train")
    with pytest.raises(ValueError, match="needs a localizer"):
        predict_studies(rsna_root, pipe, None, split="train")
    root = tmp_path / "bad"
    shutil.copytree(rsna_root, root)
    (root / "sample_submission.csv").write_text("row_id,normal_mild\nnot-a-row,1\n")
    with pytest.raises(ValueError, match=r"sample_submission.csv.*see line 2 'not-a-row'"):
        predict_studies(root, pipe, oracle, split="train")


def test_studies_restricts_the_rows(pipe, rsna_root, rsna_frame):
    study = int(rsna_frame["study_id"].iloc[0])
    points = rsna_frame.drop(columns="severity")
    got = predict_studies(rsna_root, pipe, Oracle(points), split="train", studies=[study])
    assert got["row_id"].tolist() == submission_row_ids([study]).tolist()
    with pytest.raises(ValueError, match="not in"):
        predict_studies(rsna_root, pipe, Oracle(points), split="train", studies=[1])


def test_model_weight_shrinks_each_grade_towards_the_prior(pipe, rsna_root, rsna_frame):
    points = rsna_frame.drop(columns="severity").iloc[:10]
    oracle = Oracle(points)
    kwargs = dict(split="train", studies=[int(points["study_id"].iloc[0])])
    with pytest.warns(PriorFallbackWarning):
        alone = predict_studies(rsna_root, pipe, oracle, model_weight=1.0, **kwargs)
        half = predict_studies(rsna_root, pipe, oracle, model_weight=0.5, **kwargs)
        prior = predict_studies(rsna_root, pipe, oracle, model_weight=0.0, **kwargs)
        trusted = predict_studies(rsna_root, pipe, oracle, **kwargs)  # the oracle's confidence 1
    np.testing.assert_allclose(half[TARGETS], (alone[TARGETS] + prior[TARGETS]) / 2, rtol=1e-6)
    np.testing.assert_allclose(trusted[TARGETS], alone[TARGETS], rtol=1e-6)
    condition = CONDITIONS[0]
    rows = prior["row_id"].str.contains("spinal_canal")
    expected = np.asarray(SEVERITY_PRIORS[condition], dtype=float)
    np.testing.assert_allclose(prior.loc[rows, TARGETS], np.tile(expected / expected.sum(), (5, 1)))
    with pytest.raises(ValueError, match="model_weight"):
        predict_studies(rsna_root, pipe, oracle, model_weight=2.0, **kwargs)
    # a chain half sure of its naming: its grades weigh half, as with model_weight=0.5
    unsure = Oracle(points.assign(level_confidence=0.5))
    with pytest.warns(PriorFallbackWarning):
        shrunk = predict_studies(rsna_root, pipe, unsure, **kwargs)
    np.testing.assert_allclose(shrunk[TARGETS], half[TARGETS], rtol=1e-6)


class Raising:
    """A localizer that must not be reached."""

    def predict(self, series):
        raise AssertionError("the localizer ran before the inputs were checked")


class FailingOn(RowwiseDualHead):
    """Grades by x (RowwiseDualHead), but cannot read the files of series ``bad``."""

    def __init__(self, alpha=1.0, bad=None):
        super().__init__(alpha)
        self.bad = bad

    def predict_proba(self, X):
        hit = X["series_id"] == self.bad
        if hit.any():
            path = X.loc[hit, "image_path"].iloc[0]
            raise ValueError(f"{path}: not a readable DICOM file (truncated)")
        return super().predict_proba(X)


def test_a_condition_the_model_never_saw_gets_the_prior_with_a_warning(rsna_root, rsna_frame):
    canal = rsna_frame[rsna_frame["condition"].isin(CONDITIONS[:1] + CONDITIONS[3:])]
    model = RowwiseDualHead().fit(canal, canal[["condition", "severity"]])
    points = rsna_frame.drop(columns="severity")
    with pytest.warns(PriorFallbackWarning, match="not trained on Left Neural Foraminal"):
        got, sources = predict_studies(
            rsna_root, model, Oracle(points), split="train", return_sources=True
        )
    foraminal = got["row_id"].str.contains("foraminal").to_numpy()
    expected = np.asarray(SEVERITY_PRIORS[CONDITIONS[1]]) / sum(SEVERITY_PRIORS[CONDITIONS[1]])
    np.testing.assert_allclose(got.loc[foraminal, TARGETS], np.tile(expected, (foraminal.sum(), 1)))
    assert set(sources.loc[foraminal, "reason"]) == {"condition not trained"}
    assert (sources.loc[~foraminal, "source"] == "model").mean() > 0.9


def test_sources_say_where_each_row_came_from(rsna_root, rsna_frame, tmp_path):
    root = tmp_path / "rsna"
    shutil.copytree(rsna_root, root)
    study = int(rsna_frame["study_id"].iloc[0])
    described = pd.read_csv(root / "train_series_descriptions.csv")
    axial = (described["study_id"] == study) & (described["series_description"] == "Axial T2")
    described[~axial].to_csv(root / "train_series_descriptions.csv", index=False)
    model = RowwiseDualHead().fit(rsna_frame, rsna_frame[["condition", "severity"]])
    points = rsna_frame.drop(columns="severity")
    canal = points[(points["study_id"] == study) & (points["condition"] == CONDITIONS[0])]
    located = canal[canal["level"] != "L1/L2"].assign(confidence=0.5)
    with (
        pytest.warns(
            PriorFallbackWarning,
            match=rf"no series 10, not located 11\): study \(rows\) {study} \(21",
        ),
        pytest.warns(spinecls.RSNADataWarning, match="ignored 1 series folder"),
    ):
        got, sources = predict_studies(
            root,
            model,
            Oracle(located),
            "train",
            model_weight=0.5,
            studies=[study],
            return_sources=True,
        )
    assert list(sources.columns) == [
        "row_id", "study_id", "source", "reason", "n_points", "model_weight"
    ]  # fmt: skip
    assert sources["row_id"].tolist() == got["row_id"].tolist()
    assert (sources["study_id"] == study).all()
    reasons = sources.set_index("row_id")["reason"]
    assert reasons.iloc[:5].tolist() == ["not located", "", "", "", ""]
    assert set(reasons.iloc[5:15]) == {"not located"}  # foraminal: its series was read
    assert set(reasons.iloc[15:]) == {"no series"}  # subarticular: no axial series
    assert sources["source"].iloc[:5].tolist() == ["prior"] + ["model"] * 4
    assert sources["n_points"].iloc[:5].tolist() == [0, 1, 1, 1, 1]
    np.testing.assert_allclose(sources["model_weight"].iloc[:5], [0, 0.5, 0.5, 0.5, 0.5])


def test_a_series_that_cannot_be_graded_costs_its_rows_not_the_submission(rsna_root, rsna_frame):
    points = rsna_frame.drop(columns="severity")
    first = points.iloc[0]
    model = FailingOn(bad=int(first["series_id"])).fit(
        rsna_frame, rsna_frame[["condition", "severity"]]
    )
    kwargs = dict(split="train", studies=[int(first["study_id"])], return_sources=True)
    with (
        pytest.warns(UnreadableFileWarning, match=r"could not be graded .*truncated") as record,
        pytest.warns(PriorFallbackWarning, match="unreadable 5"),
    ):
        got, sources = predict_studies(rsna_root, model, Oracle(points), **kwargs)
    assert len([w for w in record if w.category is UnreadableFileWarning]) == 1
    assert len(got) == 25 and np.allclose(got[TARGETS].sum(axis=1), 1)
    canal = sources["row_id"].str.contains("spinal_canal")
    assert set(sources.loc[canal, "reason"]) == {"unreadable"}
    assert (sources.loc[~canal, "source"] == "model").all()
    with pytest.raises(ValueError, match=r"\.dcm: not a readable DICOM file \(truncated\)"):
        predict_studies(rsna_root, model, Oracle(points), strict=True, **kwargs)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "header line but no rows"),
        (["{s}_foo_l1_l2"], r"line 2 '\d+_foo_l1_l2'"),
        (["{s}_spinal_canal_stenosis_l1_l2", "{s}_spinal_canal_stenosis_l9_s9"], "line 3"),
        (["0{s}_spinal_canal_stenosis_l1_l2"], r"without leading zeros.*line 2 '0\d+_"),
        (["{s}_spinal_canal_stenosis_l1_l2"] * 2, "must be unique; see line 2 .* line 3"),
    ],
)
def test_sample_submission_is_checked_before_any_work(
    rsna_root, rsna_frame, tmp_path, rows, message
):
    root = tmp_path / "rsna"
    shutil.copytree(rsna_root, root)
    study = int(rsna_frame["study_id"].iloc[0])
    pd.DataFrame({"row_id": [r.format(s=study) for r in rows]}).to_csv(
        root / "sample_submission.csv", index=False
    )
    model = RowwiseDualHead().fit(rsna_frame, rsna_frame[["condition", "severity"]])
    with pytest.raises(ValueError, match="sample_submission.csv: .*" + message):
        predict_studies(root, model, Raising(), split="train")


def test_studies_and_localizer_are_checked(pipe, rsna_root, rsna_frame):
    study = int(rsna_frame["study_id"].iloc[0])
    with pytest.raises(ValueError, match=r"studies must hold whole numbers; got \['abc'\]"):
        predict_studies(rsna_root, pipe, Raising(), split="train", studies=["abc"])
    with pytest.raises(ValueError, match="studies must hold whole numbers"):
        predict_studies(rsna_root, pipe, Raising(), split="train", studies=[study + 0.7])
    with pytest.raises(TypeError, match="localizer must be a fitted LevelLocalizer; got Pipeline"):
        predict_studies(rsna_root, pipe, pipe, split="train")
    with pytest.raises(
        ValueError, match="prior needs exactly one entry per condition; missing Spinal"
    ):
        predict_studies(rsna_root, pipe, Raising(), split="train", prior={})
