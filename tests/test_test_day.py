"""Test day: a test directory with one bad file of each kind still gets every row graded.

Every kind of file that made ``spinecls predict`` fail for the whole submission (issue 19)
is planted in one synthetic test directory; ``predict`` must write a complete submission
with one warning per bad file, and ``--strict`` must stop at the first, naming it. The same
directory carries the silently wrong cases: InstanceNumber tags that disagree with the file
names, and a series whose description contradicts its geometry.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEG2000Lossless, RLELossless
from sklearn.pipeline import Pipeline

import spinecls
from spinecls.cli import main
from spinecls.dicom import UnreadableFileWarning
from spinecls.labels import CONDITIONS, TARGETS
from spinecls.persistence import save_pipeline

SMALL = dict(size=32, crop=32, widths=(8, 16, 32, 32), batch_size=2)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A tiny pipeline cutting crops in millimetres, and a localizer, in one model file."""
    base = tmp_path_factory.mktemp("test_day")
    root = spinecls.make_synthetic_rsna(
        base / "train", n_studies=3, random_state=5, image_size=(48, 64)
    )
    frame = spinecls.load_rsna(root)
    pipe = Pipeline([
        ("patches", spinecls.LumbarPatchTransformer(patch_size_mm=30.0, output_size=16)),
        ("clf", spinecls.DualHeadClassifier(
            max_epochs=1, valid_size=None, random_state=0, module__widths=(4, 8, 8),
            module__hidden=8,
        )),
    ]).fit(frame, frame[["condition", "severity"]])  # fmt: skip
    localizer = spinecls.LevelLocalizer(max_epochs=1, random_state=0, **SMALL)
    localizer.fit(spinecls.load_series(root), frame)
    save_pipeline(pipe, base / "model.pt", localizer=localizer)
    return base / "model.pt"


def _edit(path: Path, **attributes) -> Path:
    ds = pydicom.dcmread(path)
    for key, value in attributes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom: "Invalid value for VR DS: 'nan'"
        ds.save_as(path)
    return path


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _rgb(path: Path) -> Path:
    pixels = pydicom.dcmread(path).pixel_array
    rgb = np.repeat((pixels >> 8).astype(np.uint8)[..., None], 3, axis=-1)
    return _edit(
        path,
        SamplesPerPixel=3,
        PhotometricInterpretation="RGB",
        PlanarConfiguration=0,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        PixelData=rgb.tobytes(),
    )


def _multi_frame(path: Path) -> Path:
    return _edit(path, NumberOfFrames=2, PixelData=pydicom.dcmread(path).PixelData * 2)


def _corrupt_compressed(path: Path) -> Path:
    """The slice compressed (JPEG 2000 where pydicom can encode it), its codestream cut."""
    ds = pydicom.dcmread(path)
    try:
        ds.compress(JPEG2000Lossless)
    except (RuntimeError, NotImplementedError):  # no JPEG 2000 encoder installed
        ds.compress(RLELossless)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[: len(frame) // 2]])
    ds.save_as(path)
    return path


def _not_dicom(folder: Path, content: bytes) -> Path:
    (folder / "999.dcm").write_bytes(content)
    return folder / "999.dcm"


BAD_FILES = {
    # series (study, type) -> the bad files planted in it, each made from its k-th slice
    (0, "Sagittal T2/STIR"): [
        (2, lambda p: _edit(p, ImagePositionPatient=["nan", "0", "0"])),
        (4, lambda p: _edit(p, ImagePositionPatient=["inf", "0", "0"])),
    ],
    (0, "Sagittal T1"): [
        (2, lambda p: _edit(p, PixelSpacing=[0, 0])),
        (4, lambda p: _edit(p, PixelSpacing=[-1, 1])),
    ],
    (0, "Axial T2"): [
        (2, lambda p: _edit(p, ImageOrientationPatient=[0, 0, 0, 0, 0, 0])),
        (4, lambda p: _edit(p, ImageOrientationPatient=[1, 0, 0, 1, 0, 0])),
    ],
    (1, "Sagittal T1"): [(None, lambda f: _not_dicom(f, b"")), (3, _truncated)],
    (1, "Sagittal T2/STIR"): [
        (None, lambda f: _not_dicom(f, b"not a DICOM file\n")),
        (2, _rgb),
        (4, lambda p: _edit(p, RescaleSlope="nan")),
    ],
    (1, "Axial T2"): [(2, _multi_frame), (5, _corrupt_compressed)],
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """A test directory with one bad file of each kind; its bad files; its oddities."""
    root = spinecls.make_synthetic_rsna(
        tmp_path_factory.mktemp("test_day") / "test",
        n_studies=3,
        random_state=6,
        image_size=(48, 64),
        split="test",
    )
    described = pd.read_csv(root / "test_series_descriptions.csv")
    studies = list(pd.unique(described["study_id"]))
    folder = {
        (studies.index(r.study_id), r.series_description): root
        / "test_images"
        / str(r.study_id)
        / str(r.series_id)
        for r in described.itertuples()
    }
    bad = []
    for key, plants in BAD_FILES.items():
        files = sorted(folder[key].glob("*.dcm"), key=lambda p: int(p.stem))
        bad += [plant(folder[key] if k is None else files[k]) for k, plant in plants]
    # a series without PixelSpacing, which a model cutting crops in mm cannot grade
    no_spacing = folder[2, "Sagittal T1"]
    for path in no_spacing.glob("*.dcm"):
        _edit(path, PixelSpacing=None)
    # tags that disagree with the file names: all shifted, or all the same
    shifted, same = folder[2, "Sagittal T2/STIR"], folder[2, "Axial T2"]
    for path in shifted.glob("*.dcm"):
        _edit(path, InstanceNumber=int(path.stem) + 1000)
    for path in same.glob("*.dcm"):
        _edit(path, InstanceNumber=1)
    # an axial series described as a Sagittal T1
    described.loc[described["series_id"] == int(same.name), "series_description"] = "Sagittal T1"
    described.to_csv(root / "test_series_descriptions.csv", index=False)
    return root, [str(p) for p in bad], {"no_spacing": no_spacing, "shifted": shifted, "same": same}


@pytest.fixture(scope="module")
def predicted(broken, model_file, tmp_path_factory):
    """``spinecls predict`` on the broken directory: exit code, warnings, output, stdout."""
    root, _, _ = broken
    out = tmp_path_factory.mktemp("out") / "submission.csv"
    argv = ["predict", "--data", str(root), "--model", str(model_file), "--out", str(out)]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        code = main(argv)
    return code, record, out


def test_every_row_is_graded_with_one_warning_per_bad_file(broken, predicted, capsys):
    root, bad, odd = broken
    code, record, out = predicted
    assert code == 0
    submission = pd.read_csv(out)
    sample = pd.read_csv(root / "sample_submission.csv")
    assert submission["row_id"].tolist() == sample["row_id"].tolist()
    assert len(submission) == 25 * 3
    np.testing.assert_allclose(submission[TARGETS].sum(axis=1), 1.0, atol=1e-6)
    unreadable = [w.message for w in record if w.category is UnreadableFileWarning]
    named = [w.path for w in unreadable]
    # one warning per bad file, and one for the series without PixelSpacing (its crops)
    assert sorted(named) == sorted([*bad, str(odd["no_spacing"])])
    assert all(Path(w.path).name in str(w) for w in unreadable)
    slope = next(w for w in unreadable if "RescaleSlope" in str(w))
    assert str(slope).startswith(slope.path)  # named by its file, not "x and y must be finite"
    spacing = next(w for w in unreadable if w.path == str(odd["no_spacing"]))
    assert "PixelSpacing is absent" in str(spacing) and "class prior" in str(spacing)
    printed = [
        w for w in record if "described as 'Sagittal T1' but its slices are axial" in str(w.message)
    ]
    assert len(printed) == 1


def test_strict_stops_at_the_first_bad_file_and_names_it(
    broken, predicted, model_file, tmp_path, capsys
):
    root, bad, _ = broken
    first = next(w.message for w in predicted[1] if w.category is UnreadableFileWarning)
    out = tmp_path / "submission.csv"
    argv = ["predict", "--data", str(root), "--model", str(model_file), "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*argv, "--strict"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"spinecls predict: error: {first.path}: ")
    assert first.path in bad and not out.exists()


def test_localize_names_the_files_it_read_and_flags_series_read_in_part(
    broken, model_file, tmp_path, capsys
):
    root, bad, odd = broken
    out = tmp_path / "points.csv"
    argv = ["localize", "--data", str(root), "--model", str(model_file), "--out", str(out)]
    with pytest.warns(spinecls.RSNADataWarning) as record:
        assert main(argv) == 0
    messages = " ".join(str(w.message) for w in record)
    assert f"series {odd['shifted']}: the InstanceNumber of" in messages
    assert f"series {odd['same']}: the InstanceNumber of" in messages
    points = pd.read_csv(out)
    files = [
        root / "test_images" / str(p.study_id) / str(p.series_id) / f"{p.instance_number}.dcm"
        for p in points.itertuples()
    ]
    assert all(f.is_file() and str(f) not in bad for f in files)
    partly = {str(Path(b).parent) for b in bad}
    read_in_part = [str(f.parent) in partly for f in files]
    assert points["qc_skipped_slices"].tolist() == read_in_part and any(read_in_part)
    axial = points[points["series_id"] == int(odd["same"].name)]
    assert len(axial) and set(axial["condition"]) <= set(CONDITIONS[3:])
    assert "wrote" in capsys.readouterr().out


def test_an_empty_sample_submission_stops_predict_before_any_work(
    broken, model_file, tmp_path, capsys
):
    root, _, _ = broken
    data = tmp_path / "test"
    data.mkdir()
    for name in ("test_series_descriptions.csv", "test_images"):
        (data / name).symlink_to(root / name)
    (data / "sample_submission.csv").write_text("row_id,normal_mild,moderate,severe\n")
    argv = [
        "predict",
        "--data",
        str(data),
        "--model",
        str(model_file),
        "--out",
        str(tmp_path / "s"),
    ]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "header line but no rows" in captured.err and "locating" not in captured.out
    assert main([*argv[:-2], "--out", str(tmp_path / "s"), "--split", "train"]) == 2
    err = capsys.readouterr().err
    assert "has no train_series_descriptions.csv (it has test_images: --split test?)" in err


def test_localize_on_axial_series_only_counts_the_studies_it_read(
    broken, model_file, tmp_path, capsys
):
    root, _, _ = broken
    data = tmp_path / "test"
    data.mkdir()
    (data / "test_images").symlink_to(root / "test_images")
    described = pd.read_csv(root / "test_series_descriptions.csv")
    axial = described[described["series_description"] == "Axial T2"]
    axial.to_csv(data / "test_series_descriptions.csv", index=False)
    argv = [
        "localize",
        "--data",
        str(data),
        "--model",
        str(model_file),
        "--out",
        str(tmp_path / "p.csv"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 0
    assert (
        f"wrote 0 points for 0 of {axial['study_id'].nunique()} studies" in capsys.readouterr().out
    )
    assert len(pd.read_csv(tmp_path / "p.csv")) == 0


def test_a_series_whose_description_cannot_hold_its_plane_is_skipped(broken):
    from spinecls.localization._series_planes import check_planes

    root, _, odd = broken
    series = spinecls.load_series(root, split="test")
    sagittal = series["series_dir"] == str(odd["shifted"])  # a Sagittal T2/STIR
    series.loc[sagittal, "series_description"] = "Axial T2"
    with pytest.warns(spinecls.RSNADataWarning) as record:
        checked = check_planes(series, "test")
    messages = [str(w.message) for w in record]
    assert any(
        "described as 'Axial T2' but its slices are sagittal" in m and "skipped" in m
        for m in messages
    )
    assert any("described as 'Sagittal T1' but its slices are axial" in m for m in messages)
    assert str(odd["shifted"]) not in set(checked["series_dir"])
    relabelled = checked.loc[checked["series_dir"] == str(odd["same"]), "series_description"]
    assert relabelled.tolist() == ["Axial T2"] and len(checked) == len(series) - 1


def test_a_series_with_no_readable_file_is_left_out_and_its_rows_say_why(
    broken, model_file, tmp_path
):
    root, _, _ = broken
    data = tmp_path / "test"
    shutil.copytree(root, data)
    described = pd.read_csv(data / "test_series_descriptions.csv")
    axial = described[described["series_description"] == "Axial T2"].iloc[0]
    folder = data / "test_images" / str(axial.study_id) / str(axial.series_id)
    for path in folder.glob("*.dcm"):
        path.write_bytes(b"")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        submission, sources = spinecls.predict_studies(
            data, model_file, studies=[axial.study_id], return_sources=True
        )
    unreadable = [w.message for w in record if w.category is UnreadableFileWarning]
    assert [w.path for w in unreadable].count(str(folder)) == 1  # and one per file before it
    assert "no slice of the series can be read" in str(unreadable[-1])
    assert len(submission) == 25
    subarticular = sources["row_id"].str.contains("subarticular")
    assert set(sources.loc[subarticular, "reason"]) == {"unreadable"}
