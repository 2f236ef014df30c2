import importlib.util
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import spinecls
from spinecls import CONDITIONS, SEVERITIES
from spinecls.cli import _commands, main


def test_synth_writes_a_loadable_dataset_and_prints_the_balance(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["synth", str(out), "--studies", "2", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote a synthetic RSNA dataset to {out}" in printed
    assert "2 studies" in printed and "50 labelled coordinates" in printed
    assert "Spinal Canal Stenosis" in printed
    frame = spinecls.load_rsna(out)
    assert frame["study_id"].nunique() == 2


def test_synth_same_seed_as_the_library(tmp_path):
    main(["synth", str(tmp_path / "cli"), "--studies", "1", "--seed", "9"])
    spinecls.make_synthetic_rsna(tmp_path / "lib", n_studies=1, random_state=9)
    for name in ("train.csv", "train_label_coordinates.csv", "train_series_descriptions.csv"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes()


def test_synth_variation_clinical_lists_the_quirks_it_drew(tmp_path):
    out = tmp_path / "clinical"
    assert (
        main(["synth", str(out), "--studies", "1", "--seed", "9", "--variation", "clinical"]) == 0
    )
    quirks = pd.read_csv(out / "synthetic_quirks.csv")
    expected = spinecls.datasets.synthetic_quirks(1, random_state=9)
    pd.testing.assert_frame_equal(quirks, expected, check_dtype=False)
    assert quirks["study_id"].tolist() == pd.read_csv(out / "train.csv")["study_id"].tolist()


def test_synth_test_split_writes_the_test_layout_and_its_truth(tmp_path, capsys):
    out, truth = tmp_path / "test", tmp_path / "labels"
    argv = ["synth", str(out), "--studies", "1", "--seed", "9", "--split", "test"]
    assert main([*argv, "--truth", str(truth)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote a synthetic RSNA test set to {out} and its labels to {truth}" in printed
    assert "1 studies" in printed and "25 labelled coordinates" in printed
    assert (out / "sample_submission.csv").is_file() and not (out / "train.csv").exists()
    spinecls.make_synthetic_rsna(tmp_path / "lib", n_studies=1, random_state=9)
    for name in ("train.csv", "train_label_coordinates.csv"):
        assert (truth / name).read_bytes() == (tmp_path / "lib" / name).read_bytes()
    # Without --truth, the labels go beside OUTDIR; both are replaced with --overwrite.
    assert main(["synth", str(tmp_path / "t2"), "--studies", "1", "--split", "test"]) == 0
    assert (tmp_path / "t2_truth" / "train.csv").is_file()
    assert main([*argv, "--truth", str(truth), "--overwrite"]) == 0
    assert main(["synth", str(tmp_path / "t3"), "--split", "test", "--truth", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert not (tmp_path / "t3").exists()


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["synth", str(tmp_path / "full"), "--studies", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spinecls synth: error:") and "not empty" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["synth", str(tmp_path / "y"), "--studies", "0"]) == 2


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("synth", "demo", "train", "predict", "evaluate"):
        assert command in out


def test_train_predict_evaluate_round_trip(rsna_root, tmp_path, capsys):
    model = tmp_path / "model.pt"
    code = main(
        ["train", "--data", str(rsna_root), "--out", str(model), "--epochs", "1",
         "--patch-size", "32", "--size", "32", "--backbone", "simple"]
    )  # fmt: skip
    assert code == 0 and model.is_file()
    loaded = spinecls.DualHeadClassifier.load(model)
    assert loaded.metadata_["transformer"]["patch_size"] == 32
    submission = tmp_path / "submission.csv"
    code = main(
        ["predict", "--data", str(rsna_root), "--model", str(model), "--out", str(submission),
         "--split", "train"]
    )  # fmt: skip
    assert code == 0
    written = submission.read_bytes()
    again = ["predict", "--data", str(rsna_root), "--model", str(model), "--out", str(submission)]
    assert main(again) == 2
    assert "exists: pass --overwrite" in capsys.readouterr().err
    assert submission.read_bytes() == written
    assert main([*again, "--split", "train", "--overwrite"]) == 0
    table = pd.read_csv(submission)
    assert list(table.columns) == ["row_id", "normal_mild", "moderate", "severe"]
    assert len(table) == 6 * 25 and table["row_id"].is_unique
    report = tmp_path / "report.json"
    capsys.readouterr()
    code = main(
        ["evaluate", "--data", str(rsna_root), "--model", str(model), "--json", str(report)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Per-head metrics" in printed and "competition score (lower is better)" in printed
    import json

    data = json.loads(report.read_text())
    assert data["competition_score"] > 0 and "condition" in data["summary"]


def test_model_and_data_errors_are_one_line(rsna_root, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    for argv in (
        ["evaluate", "--data", str(rsna_root), "--model", str(junk)],
        ["evaluate", "--data", str(rsna_root), "--model", str(tmp_path / "none.pt")],
        ["evaluate", "--data", str(rsna_root), "--model", str(tmp_path)],
        ["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.pt")],
        ["predict", "--data", str(rsna_root), "--model", str(junk), "--out", str(tmp_path / "s")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"spinecls {argv[0]}: error:") and len(err.splitlines()) == 1


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A tiny model on 32 x 32 patches, saved with the patch settings as train saves them."""
    rng = np.random.default_rng(0)
    X = rng.random((20, 1, 32, 32), dtype=np.float32)
    y = np.column_stack(
        [np.array(CONDITIONS)[np.arange(20) % 5], np.array(SEVERITIES)[np.arange(20) % 3]]
    )
    clf = spinecls.DualHeadClassifier(
        max_epochs=1, valid_size=None, random_state=0, module__widths=(4, 8, 8), module__hidden=8
    ).fit(X, y)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    clf.save(path, metadata={"transformer": {"patch_size": 32, "output_size": 32}})
    return path


def _changed(key, value):
    def change(state):
        state[key] = value

    return change


def _param(name, value):
    def change(state):
        state["params"] = json.dumps({**json.loads(state["params"]), name: value})

    return change


def _transformer(value):
    return _changed("metadata", json.dumps({"transformer": value}))


DAMAGED = {
    "missing-key": (lambda s: s.pop("state_dict"), "the model file has no 'state_dict' entry"),
    "wrong-type": (_changed("classes", 5), "'classes' has the wrong type (int)"),
    "wrong-shape": (
        lambda s: s["state_dict"].update({"heads.severity.1.weight": torch.zeros(2, 8)}),
        "'heads.severity.1.weight' has shape (2, 8), the model expects (3, 8)",
    ),
    "huge-hidden": (_param("module__hidden", 10**9), "module__hidden must be an int in [1, 4096]"),
    "bad-lr": (_param("lr", -1), "The 'lr' parameter of DualHeadClassifier must be"),
    "patch-settings": (_transformer("x"), "does not record how its patches were made"),
    "patch-keys": (_transformer({"bogus": 1}), "bad transformer parameters"),
    "patch-runtime": (_transformer({"memory": "/tmp"}), "run-time parameters ['memory']"),
    "patch-value": (
        _transformer({"patch_size": -3}),
        "bad.pt: bad transformer parameters: The 'patch_size' parameter",
    ),
    "patch-zero": (
        _transformer({"patch_size": 0, "output_size": 32}),
        "bad.pt: bad transformer parameters: The 'patch_size' parameter",
    ),
    "patch-marker": (
        _transformer({"patch_size": 32, "output_size": 32, "mode": "marker"}),
        "bad.pt: the recorded transformer makes patches of 2 channel(s) of 32 x 32 pixels",
    ),
    "patch-slices": (
        _transformer({"patch_size": 32, "output_size": 32, "slices": 3}),
        "but the model's weights take 1 channel(s) of 32 x 32",
    ),
    "reversed-classes": (
        _changed("classes", json.dumps([sorted(CONDITIONS), sorted(SEVERITIES)[::-1]])),
        "'classes' must list each output's labels in sorted order",
    ),
}


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("case", [*DAMAGED, "other-torch-file", "truncated", "empty", "directory"])
def test_a_bad_model_file_is_one_line_and_exit_2(
    case, command, model_file, rsna_root, tmp_path, capsys
):
    path = tmp_path / "bad.pt"
    if case in DAMAGED:
        change, message = DAMAGED[case]
        state = torch.load(model_file, weights_only=True)
        change(state)
        torch.save(state, path)
    elif case == "other-torch-file":
        torch.save({"weights": torch.zeros(3)}, path)
        message = "bad.pt is not a model file written by DualHeadClassifier.save"
    elif case == "truncated":
        path.write_bytes(model_file.read_bytes()[:3000])
        message = "bad.pt is not a model file written by DualHeadClassifier.save: it is not a"
    elif case == "empty":
        path.write_bytes(b"")
        message = "it is not a complete torch archive"
    else:
        path.mkdir()
        message = "bad.pt is a directory, not a model file"
    out = ["--out", str(tmp_path / "s.csv")] if command == "predict" else []
    argv = [command, "--data", str(rsna_root), "--model", str(path), *out]
    if command == "predict":
        argv += ["--split", "train"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"spinecls {command}: error:") and len(err.splitlines()) == 1
    assert message in err and "weights_only" not in err
    assert not (tmp_path / "s.csv").exists()


def test_a_model_saved_for_cuda_predicts_on_the_chosen_device(model_file, rsna_root, tmp_path):
    state = torch.load(model_file, weights_only=True)
    _param("device", "cuda")(state)
    torch.save(state, tmp_path / "cuda.pt")
    argv = ["predict", "--data", str(rsna_root), "--model", str(tmp_path / "cuda.pt"),
            "--split", "train", "--out", str(tmp_path / "s.csv")]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", spinecls.persistence.DeviceWarning)
        assert main(argv) == 0  # --device defaults to cpu, whatever the file says
    with_device = [*argv[:-1], str(tmp_path / "t.csv"), "--device", "cpu"]
    assert main(with_device) == 0
    assert (tmp_path / "s.csv").read_bytes() == (tmp_path / "t.csv").read_bytes()


@pytest.fixture
def no_work(monkeypatch):
    """Fail a command that gets past its destination check."""

    def work_started(*args, **kwargs):
        raise AssertionError("the work started before the destination was checked")

    monkeypatch.setattr(spinecls.datasets, "load_rsna", work_started)
    monkeypatch.setattr(spinecls.datasets, "make_synthetic_rsna", work_started)
    monkeypatch.setattr(_commands, "_load_pipeline", work_started)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--out", "{tmp}/typo/model.pt"], "the directory {tmp}/typo does not exist"),
        (["train", "--out", "{tmp}"], "is a directory: give a file name"),
        (["train", "--out", "{tmp}/old.pt"], "old.pt exists: pass --overwrite"),
        (["train", "--out", "{data}/train.csv", "--overwrite"], "lies inside the input data"),
        (["train", "--out", "{tmp}/old.pt/model.pt"], "old.pt is not a directory"),
        (["train", "--out", "{tmp}/m.pt", "--device", "bogus"], "--device bogus cannot be used"),
        (["predict", "--model", "{tmp}/old.pt", "--out", "{tmp}/s.csv", "--device", "bogus"],
         "--device bogus cannot be used"),
        (["evaluate", "--model", "{tmp}/old.pt", "--device", "cuda:99"],
         "--device cuda:99 cannot be used"),
        (["predict", "--model", "{tmp}/old.pt", "--out", "{tmp}/old.pt", "--overwrite"],
         "is the input file"),
        (["predict", "--model", "{tmp}/old.pt", "--out", "{tmp}/no/s.csv"], "does not exist"),
        (["evaluate", "--model", "{tmp}/old.pt", "--json", "{tmp}/old.pt"], "is the input file"),
        (["evaluate", "--model", "{tmp}/old.pt", "--json", "{tmp}"], "is a directory"),
        (["synth", "{tmp}/no/data"], "does not exist"),
        (["synth", "{tmp}/mine", "--overwrite"], "not written by spinecls (it has no"),
        (["synth", "{tmp}/new", "--split", "test", "--truth", "{tmp}/mine", "--overwrite"],
         "not written by spinecls (it has no"),
        (["synth", "{tmp}/new", "--split", "test", "--truth", "{tmp}/no/t"], "does not exist"),
        (["synth", "{tmp}/new", "--truth", "{tmp}/t"], "--truth is only written with --split"),
        (["demo", "--out", "{data}", "--overwrite"], "is the input data directory"),
        (["demo", "--out", "{data}/results"], "lies inside the input data directory"),
        (["demo", "--out", "{tmp}/mine", "--overwrite"], "would delete notes.md"),
        (["train", "--out", "{tmp}/m.pt", "--localizer", "--localizer-epochs", "0"],
         "--localizer-epochs must be at least 1, got 0"),
        (["train", "--out", "{tmp}/m.pt", "--epochs", "0"], "--epochs must be at least 1"),
        (["train", "--out", "{tmp}/m.pt", "--patch-size", "-4"], "--patch-size must be at"),
        (["train", "--out", "{tmp}/m.pt", "--slices", "2"], "--slices must be a positive odd"),
        (["train", "--out", "{tmp}/m.pt", "--lr", "nan"], "--lr must be a positive number"),
        (["train", "--out", "{tmp}/m.pt", "--backbone", "resnet"], "backbone must be one of"),
        (["predict", "--model", "{tmp}/old.pt", "--out", "{tmp}/s.csv", "--split", "test"],
         "has no test_series_descriptions.csv"),
        (["localize", "--model", "{tmp}/old.pt", "--out", "{tmp}/s.csv"],
         "has no test_series_descriptions.csv"),
    ],
)  # fmt: skip
def test_destinations_are_checked_before_the_work(argv, message, tmp_path, no_work, capsys):
    data = tmp_path / "rsna"
    data.mkdir()
    (data / "train.csv").write_text("study_id\n1\n")
    (data / "notes.txt").write_text("not from spinecls")
    (tmp_path / "old.pt").write_bytes(b"weights")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("mine")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    argv = [a.format(tmp=tmp_path, data=data) for a in argv]
    if argv[0] != "synth":
        argv += ["--data", str(data)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"spinecls {argv[0]}: error:") and len(err.splitlines()) == 1
    assert message.format(tmp=tmp_path) in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_bad_scheduler_is_one_line_and_exit_2_before_any_work(
    tmp_path, no_work, monkeypatch, capsys
):
    from spinecls.cli import _scheduler

    monkeypatch.setattr(_scheduler, "CONNECT_TIMEOUT", 1)
    installed = importlib.util.find_spec("distributed") is not None
    data = tmp_path / "rsna"
    data.mkdir()
    train = ["train", "--data", str(data), "--out", str(tmp_path / "m.pt")]
    for argv, env, message in [
        (
            [*train, "--scheduler", "tcp://127.0.0.1:1"],
            None,
            "cannot use the dask scheduler at tcp://127.0.0.1:1: Timed out trying to connect",
        ),
        (train, "127.0.0.1", "missing port number in address '127.0.0.1'"),
    ]:
        if env is None:
            monkeypatch.delenv(_scheduler.SCHEDULER_ENV, raising=False)
        else:
            monkeypatch.setenv(_scheduler.SCHEDULER_ENV, env)
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        if not installed:
            message = "needs dask.distributed: pip install 'spinecls[dask]'"
        assert err.startswith("spinecls train: error: ") and message in err
        assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == [data]


def test_the_library_s_overwrite_advice_names_the_option(capsys):
    from spinecls.cli._main import _message

    assert _message(FileExistsError("out exists: pass overwrite=True to replace it")) == (
        "out exists: pass --overwrite to replace it"
    )
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    assert "--truth directory" in " ".join(capsys.readouterr().out.split())
