"""The study's three-model comparison end to end (``spinecls demo``), kept tiny."""

from __future__ import annotations

import contextlib
import json
import signal

import numpy as np
import pandas as pd
import pytest

import spinecls
from spinecls.cli import main
from spinecls.demo import MODELS, DemoConfig, run_demo, split_by_study
from spinecls.demo import _run as demo_module
from spinecls.demo._report import class_prior
from spinecls.metrics._competition import parse_row_ids, submission_row_ids

# The quick demo with five studies and one epoch per model: these tests check what the demo
# writes and that it is reproducible, not how well it trains.
TINY = DemoConfig(studies=5, crop=48, size=32, marker_size=32, epochs=(1, 1, 1), localizer_epochs=1)


@pytest.fixture(scope="module", autouse=True)
def tiny_quick_demo():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo_module, "QUICK", TINY)
        yield


def test_the_default_demo_holds_out_enough_studies_to_compare_models():
    frame = pd.DataFrame({"study_id": np.repeat(np.arange(demo_module.FULL.studies), 25)})
    develop, test = split_by_study(frame, random_state=0)
    assert frame["study_id"].iloc[test].nunique() == 12 and len(test) == 300
    assert frame["study_id"].iloc[develop].nunique() == 68


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    table = run_demo(None, out, quick=True, random_state=0)
    return out, table


def _trained() -> list[str]:
    return [
        *[n for m in MODELS for n in (m, *(f"{m}, {how}" for how in demo_module.CALIBRATIONS))],
        "recommended",
    ]


def test_the_table_lists_each_model_the_located_row_and_the_baselines(demo_run):
    out, table = demo_run
    best = json.loads((out / "results.json").read_text())["meta"]["best_model"]
    located = f"{best}, on predicted coordinates"
    trained = _trained()
    assert list(table["model"]) == [
        *trained, located, "baseline: majority class", "baseline: class prior"
    ]  # fmt: skip
    assert {"condition f1", "severity accuracy", "competition score"} <= set(table.columns)
    assert {"severity balanced accuracy", "severity log loss", "severity ECE"} <= set(table)
    assert table.set_index("model").loc[trained, "severity log loss"].notna().all()
    scores = table.set_index("model")["competition score"]
    assert np.isfinite(scores[[*trained, located, "baseline: class prior"]]).all()


def test_the_results_files_hold_the_table_and_the_run(demo_run):
    out, table = demo_run
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["studies"] == TINY.studies and len(results["table"]) == len(table)
    assert [row["model"] for row in results["table"]] == table["model"].tolist()
    assert results["meta"]["best_model"] in table["model"].tolist()
    assert "| model |" in (out / "results.md").read_text()
    assert not list(out.parent.glob(".*partial*"))


def test_the_end_to_end_stage_writes_the_localizer_a_located_submission_and_a_report(demo_run):
    out, _ = demo_run
    facts = json.loads((out / "results.json").read_text())["meta"]["localization"]
    assert 0 <= facts["sagittal_within_5px"] <= 1 and facts["points_matched"] > 0
    assert spinecls.LevelLocalizer.load(out / "localizer.pt").max_epochs == 1
    located = pd.read_csv(out / "submission_located.csv")
    assert set(located["row_id"]) == set(pd.read_csv(out / "submission.csv")["row_id"])
    for plot in ("localization", "localization_errors"):
        assert (out / f"{plot}.png").stat().st_size > 1000
    # The report of the held-out studies: one page each.
    studies = parse_row_ids(located["row_id"])["study_id"].astype(str).unique()
    pages = sorted(p.stem for p in (out / "report" / "studies").glob("*.html"))
    assert (out / "report" / "index.html").is_file() and pages == sorted(studies)


def test_each_model_is_saved_with_its_figures(demo_run):
    out, _ = demo_run
    for k, backbone in enumerate(["simple", "inception", "vgg16"], start=1):
        assert spinecls.DualHeadClassifier.load(out / f"model{k}.pt").backbone == backbone
        for plot in ("training_curves", "confusion_matrices", "feature_maps", "filters"):
            assert (out / f"model{k}_{plot}.png").stat().st_size > 1000
    recommended = spinecls.persistence.load_pipeline(out / "recommended.pt")
    assert recommended[-1].tta == demo_module.RECOMMENDED["classifier"]["tta"]


def test_the_best_models_submission_covers_the_test_studies(demo_run):
    out, _ = demo_run
    submission = pd.read_csv(out / "submission.csv")
    assert list(submission.columns) == ["row_id", "normal_mild", "moderate", "severe"]
    test = demo_module._split(out / "data", random_state=0).test
    assert sorted(submission["row_id"]) == sorted(submission_row_ids(test["study_id"].unique()))
    np.testing.assert_allclose(
        submission[["normal_mild", "moderate", "severe"]].sum(axis=1), 1, rtol=1e-5
    )


def test_the_table_says_how_many_scored_rows_hold_the_one_class_prior(demo_run):
    out, table = demo_run
    results = json.loads((out / "results.json").read_text())
    facts, best = results["meta"]["localization"], results["meta"]["best_model"]
    rows = facts["scored_rows"]
    filled = table.set_index("model")["prior-filled rows"]
    assert filled[f"{best}, on predicted coordinates"] == f"{facts['prior_filled_rows']} of {rows}"
    assert filled["baseline: class prior"] == f"{rows} of {rows}"
    assert filled[best] == f"0 of {rows}" and filled["baseline: majority class"] == ""
    assert "| prior-filled rows |" in (out / "results.md").read_text()
    assert (
        f"{facts['prior_filled_rows']} of the {rows} scored rows"
        in (out / "results.md").read_text()
    )
    # one prior: the baseline's and the fallback's, with no severity at probability 0
    prior = class_prior(demo_module._split(out / "data", random_state=0).develop)
    assert min(min(p) for p in prior.values()) > 0
    located = pd.read_csv(out / "submission_located.csv").set_index("row_id")
    conditions = parse_row_ids(located.index.to_series())["condition"]
    rows_of_prior = [np.allclose(row, prior[c]) for c, row in zip(conditions, located.values)]
    assert sum(rows_of_prior) >= facts["prior_filled_rows"]


def test_demo_is_deterministic_for_a_seed(demo_run, tmp_path, monkeypatch):
    # Model 1 alone, trained again on the fixture's studies and split, gives the fixture's
    # rows (retraining all three would double the cost).
    out, table = demo_run
    first = next(iter(MODELS))
    monkeypatch.setattr(demo_module, "MODELS", {first: MODELS[first]})
    split = demo_module._split(out / "data", random_state=0)
    rows, _ = demo_module._study_models(split, TINY, 0, None, None, tmp_path, plots=False)
    again = pd.DataFrame(rows)
    assert again["model"].tolist() == [
        first, f"{first}, calibrated", f"{first}, calibrated for the score"
    ]  # fmt: skip
    expected = table.set_index("model").loc[again["model"], again.columns[1:]].reset_index()
    pd.testing.assert_frame_equal(again, expected)


def test_demo_refuses_an_existing_output_and_its_own_data(demo_run):
    out, _ = demo_run
    with pytest.raises(FileExistsError, match="not empty"):
        run_demo(None, out)
    with pytest.raises(ValueError, match="contains the input data directory"):
        run_demo(out / "data", out, overwrite=True)
    with pytest.raises(ValueError, match="lies inside the input data directory"):
        run_demo(out / "data", out / "data" / "results")
    assert json.loads((out / "results.json").read_text())["meta"]["studies"] == TINY.studies


def test_ctrl_c_during_training_stops_the_demo_and_leaves_no_output(
    demo_run, tmp_path, monkeypatch
):
    def fit_like_skorch(self, *args, **kwargs):
        with contextlib.suppress(KeyboardInterrupt):  # skorch's fit returns normally...
            signal.raise_signal(signal.SIGINT)  # ...after a Ctrl-C during training
        return self

    monkeypatch.setattr(demo_module.DualHeadClassifier, "fit", fit_like_skorch)
    with pytest.raises(KeyboardInterrupt):
        run_demo(demo_run[0] / "data", tmp_path / "out", quick=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "{tmp}/missing"], "missing is not a directory"),
        (["--studies", "0"], "n_studies"),
    ],
)
def test_cli_demo_errors_are_one_line(argv, message, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(["demo", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spinecls demo: error:") and message in err
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
