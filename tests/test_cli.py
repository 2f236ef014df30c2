import pytest

import spinecls
from spinecls.cli import main


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
    assert "synth" in capsys.readouterr().out
