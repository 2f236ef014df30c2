"""The command line on studies without coordinates: train --localizer, localize, predict."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

import spinecls
from spinecls.cli import main
from spinecls.labels import TARGETS
from spinecls.persistence import load_localizer


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    train = spinecls.make_synthetic_rsna(
        base / "train", n_studies=3, random_state=5, image_size=(48, 64)
    )
    test = spinecls.make_synthetic_rsna(
        base / "test", n_studies=2, random_state=6, image_size=(48, 64), split="test"
    )
    return base, train, test


@pytest.fixture(scope="module")
def model(dirs):
    base, train, _ = dirs
    path = base / "model.pt"
    args = ["train", "--data", str(train), "--out", str(path), "--epochs", "1", "--size", "32"]
    assert main([*args, "--localizer", "--localizer-epochs", "1"]) == 0
    return path


def test_train_carries_the_localizer_in_the_model_file(model):
    localizer = load_localizer(model)
    assert type(localizer).__name__ == "LevelLocalizer"
    assert localizer.max_epochs == 1


def test_localize_writes_the_coordinates_columns_and_confidence(dirs, model, capsys):
    base, _, test = dirs
    out = base / "coords.csv"
    assert main(["localize", "--data", str(test), "--model", str(model), "--out", str(out)]) == 0
    points = pd.read_csv(out)
    assert list(points.columns[:8]) == [
        "study_id", "series_id", "instance_number", "condition", "level", "x", "y", "confidence"
    ]  # fmt: skip
    assert points["confidence"].between(0, 1).all()
    assert set(points["study_id"]) == set(pd.read_csv(test / "test_series_descriptions.csv")[
        "study_id"
    ])  # fmt: skip
    assert "flagged for review" in capsys.readouterr().out
    # The destination rules hold for the new command too.
    assert main(["localize", "--data", str(test), "--model", str(model), "--out", str(out)]) == 2


def test_predict_grades_the_test_layout_without_coordinates(dirs, model):
    base, _, test = dirs
    out = base / "submission.csv"
    with pytest.warns(UserWarning):  # tiny models miss levels: the prior fills them, named
        code = main(["predict", "--data", str(test), "--model", str(model), "--out", str(out)])
    assert code == 0
    submission = pd.read_csv(out)
    sample = pd.read_csv(test / "sample_submission.csv")
    assert submission["row_id"].tolist() == sample["row_id"].tolist()
    assert len(submission) == 25 * 2
    assert (submission[TARGETS].sum(axis=1) - 1).abs().max() < 1e-6


def test_predict_without_a_localizer_on_the_test_layout_is_one_line(dirs, tmp_path, capsys):
    _, train, test = dirs
    plain = tmp_path / "plain.pt"
    assert main(["train", "--data", str(train), "--out", str(plain), "--epochs", "1"]) == 0
    capsys.readouterr()
    out = tmp_path / "submission.csv"
    assert main(["predict", "--data", str(test), "--model", str(plain), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "carries no localizer" in err[0]
    assert not out.exists()


def test_predict_counts_the_studies_of_the_rows_it_wrote(dirs, model, tmp_path, capsys):
    """A sample_submission.csv of 30 rows (one study and part of another): two studies."""
    _, _, test = dirs
    data = tmp_path / "test"
    shutil.copytree(test, data)
    sample = pd.read_csv(data / "sample_submission.csv")
    sample.head(30).to_csv(data / "sample_submission.csv", index=False)
    out = tmp_path / "submission.csv"
    with pytest.warns(UserWarning):
        assert main(["predict", "--data", str(data), "--model", str(model), "--out", str(out)]) == 0
    assert f"wrote 30 rows for 2 studies to {out}" in capsys.readouterr().out
