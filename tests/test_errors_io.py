"""The command line reports bad image and CSV input in one line with exit status 2."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.pixels import get_decoder
from pydicom.uid import RLELossless

import spinecls
from spinecls.cli import main


@pytest.fixture
def study(tmp_path):
    """One small synthetic study and the path of its first labelled DICOM file, RLE-compressed."""
    root = spinecls.make_synthetic_rsna(tmp_path / "rsna", n_studies=1, image_size=(32, 32))
    path = spinecls.load_rsna(root)["image_path"].iloc[0]
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(path)
    return root, path


def _train(root, tmp_path) -> list[str]:
    return ["train", "--data", str(root), "--out", str(tmp_path / "model.pt"), "--epochs", "1"]


def _one_line(capsys) -> str:
    """The error line, after checking that it is the only one (beside the progress bar)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line and not line.startswith("patches:")]
    assert len(lines) == 1 and "Traceback" not in err
    return lines[0]


def test_a_corrupt_compressed_file_names_the_file_and_the_decoder(study, tmp_path, capsys):
    root, path = study
    with open(path, "r+b") as f:
        f.truncate(f.seek(0, 2) - 300)
    assert main(_train(root, tmp_path)) == 2
    err = _one_line(capsys)
    assert err.startswith(f"spinecls train: error: {path}: corrupt or truncated pixel data")
    assert "RLE Lossless decoder failed" in err and "codecs" not in err
    assert not (tmp_path / "model.pt").exists()


def test_a_missing_codec_names_the_transfer_syntax_and_the_extra(study, tmp_path, capsys):
    root, path = study
    decoder = get_decoder(RLELossless)
    available = dict(decoder._available)
    decoder._available.clear()
    decoder._unavailable.update({name: ("pylibjpeg-rle",) for name in available})
    try:
        code = main(_train(root, tmp_path))
    finally:
        decoder._available.update(available)
        for name in available:
            decoder._unavailable.pop(name, None)
    assert code == 2
    err = _one_line(capsys)
    assert err.startswith(f"spinecls train: error: {path}: cannot decode pixel data compressed")
    assert "RLE Lossless" in err and "pip install 'spinecls[codecs]'" in err


def test_a_header_only_csv_is_one_line(study, tmp_path, capsys):
    root, _ = study
    labels = root / "train.csv"
    labels.write_text(labels.read_text().splitlines()[0] + "\n")
    assert main(_train(root, tmp_path)) == 2
    assert f"{labels}: the file has a header line but no rows" in _one_line(capsys)
