"""make_synthetic_rsna: real DICOMs, the competition layout, balance, signal, determinism."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import MRImageStorage

import spinecls
from spinecls.datasets import synthetic


def _pixels(path):
    ds = pydicom.dcmread(path)
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    intercept = float(getattr(ds, "RescaleIntercept", 0.0))
    return ds, ds.pixel_array.astype(np.float64) * slope + intercept


def test_layout_and_csv_columns(rsna_root):
    assert sorted(p.name for p in rsna_root.iterdir()) == [
        ".spinecls-output.json",
        "train.csv",
        "train_images",
        "train_label_coordinates.csv",
        "train_series_descriptions.csv",
    ]
    labels = pd.read_csv(rsna_root / "train.csv")
    assert list(labels.columns) == ["study_id", *spinecls.labels.WIDE_COLUMNS]
    assert set(labels.drop(columns="study_id").stack()) <= {"Normal/Mild", "Moderate", "Severe"}
    descriptions = pd.read_csv(rsna_root / "train_series_descriptions.csv")
    for study, group in descriptions.groupby("study_id"):
        kinds = group["series_description"].value_counts()
        assert kinds["Sagittal T1"] == 1 and kinds["Sagittal T2/STIR"] == 1
        assert kinds["Axial T2"] in (1, 2)
        for series in group["series_id"]:
            files = list((rsna_root / "train_images" / str(study) / str(series)).glob("*.dcm"))
            assert len(files) >= 6


def test_dicom_files_are_valid_mr_images(rsna_root, rsna_frame):
    for series_id, rows in rsna_frame.groupby("series_id"):
        folder = rsna_root / "train_images" / str(rows.study_id.iloc[0]) / str(series_id)
        files = sorted(folder.glob("*.dcm"))
        numbers = []
        for path in files:
            ds = pydicom.dcmread(path)
            assert ds.file_meta.MediaStorageSOPClassUID == MRImageStorage
            assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
            assert ds.SOPClassUID == MRImageStorage
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert ds.Modality == "MR"
            assert ds.PhotometricInterpretation == "MONOCHROME2"
            assert (ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation) == (16, 16, 0)
            assert ds.pixel_array.dtype == np.uint16
            assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
            assert int(path.stem) == ds.InstanceNumber
            assert ds.SeriesDescription == rows.series_description.iloc[0]
            assert ds.PatientID == str(rows.study_id.iloc[0])
            assert len(ds.PixelSpacing) == 2 and ds.SliceThickness > 0
            numbers.append(ds.InstanceNumber)
            iop = np.array(ds.ImageOrientationPatient, dtype=float)
            normal = np.cross(iop[:3], iop[3:])
            if ds.SeriesDescription.startswith("Sagittal"):
                np.testing.assert_allclose(np.abs(normal), [1, 0, 0])
            else:
                np.testing.assert_allclose(np.abs(normal), [0, 0, 1])
        assert min(numbers) > 1
        assert len({pydicom.dcmread(p).SeriesInstanceUID for p in files}) == 1


def _patient_x(ds, col):
    """Patient left-right position of a pixel column (rows ignored: axial or sagittal)."""
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    return float(ds.ImagePositionPatient[0]) + col * float(ds.PixelSpacing[1]) * iop[0]


def test_coordinates_lie_where_each_condition_lives(rsna_root, rsna_frame):
    for study_id, study in rsna_frame.groupby("study_id"):
        for row in study.itertuples():
            ds = pydicom.dcmread(row.image_path)
            assert 0 <= row.x < ds.Columns and 0 <= row.y < ds.Rows
            position = _patient_x(ds, row.x)
            if row.condition == "Spinal Canal Stenosis":
                assert row.series_description == "Sagittal T2/STIR"
                # the mid-sagittal slice: the series' slice closest to x = 0
                folder = rsna_root / "train_images" / str(study_id) / str(row.series_id)
                xs = [
                    float(pydicom.dcmread(p).ImagePositionPatient[0]) for p in folder.glob("*.dcm")
                ]
                assert abs(position) == pytest.approx(min(abs(v) for v in xs))
            elif "Foraminal" in row.condition:
                assert row.series_description == "Sagittal T1"
                assert 10 < abs(position) < 22
                assert (position > 0) == row.condition.startswith("Left")
            else:
                assert row.series_description == "Axial T2"
                assert 5 < abs(position) < 14  # beside the canal, patient left = +x
                assert (position > 0) == row.condition.startswith("Left")


@pytest.fixture(scope="module")
def balanced(tmp_path_factory):
    root = spinecls.make_synthetic_rsna(
        tmp_path_factory.mktemp("bal") / "rsna", n_studies=40, random_state=3, image_size=(48, 64)
    )
    return spinecls.load_rsna(root)


def test_class_balance_follows_the_real_data(balanced):
    share = balanced["severity"].value_counts(normalize=True)
    assert share["normal_mild"] == pytest.approx(0.774, abs=0.05)
    assert share["moderate"] == pytest.approx(0.163, abs=0.04)
    assert share["severe"] == pytest.approx(0.063, abs=0.03)
    spinal = balanced.loc[balanced.condition == "Spinal Canal Stenosis", "severity"]
    assert spinal.value_counts(normalize=True)["normal_mild"] == pytest.approx(0.878, abs=0.06)


def test_severity_visibly_narrows_the_structure(balanced):
    """Normalised intensity at the coordinate falls with the severity, for every condition:
    fluid or fat is replaced by a dark bulge, bone or ligament."""
    means = {}
    for row in balanced.itertuples():
        ds, image = _pixels(row.image_path)
        lo, hi = np.percentile(image, [1, 99])
        image = (image - lo) / (hi - lo)
        r = max(1, round(2.5 / float(ds.PixelSpacing[0])))
        x, y = round(row.x), round(row.y)
        means.setdefault((row.condition, row.severity), []).append(
            image[y - r : y + r + 1, x - r : x + r + 1].mean()
        )
    for condition in spinecls.CONDITIONS:
        normal, moderate, severe = (np.mean(means[(condition, s)]) for s in spinecls.SEVERITIES)
        assert normal > moderate + 0.1 > severe + 0.15, condition


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    def digest(root):
        h = hashlib.sha256()
        for path in sorted(root.rglob("*")):
            if path.is_file():
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
        return h.hexdigest()

    a = spinecls.make_synthetic_rsna(
        tmp_path / "a", n_studies=2, random_state=7, image_size=(48, 64)
    )
    b = spinecls.make_synthetic_rsna(
        tmp_path / "b", n_studies=2, random_state=7, image_size=(48, 64), n_jobs=2
    )
    c = spinecls.make_synthetic_rsna(
        tmp_path / "c", n_studies=2, random_state=8, image_size=(48, 64)
    )
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_refuses_a_users_directory_and_overwrites_its_own_on_request(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        spinecls.make_synthetic_rsna(root, n_studies=1)
    with pytest.raises(FileExistsError, match="not written by spinecls.*keep.txt"):
        spinecls.make_synthetic_rsna(root, n_studies=1, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in root.iterdir()] == ["keep.txt"]
    assert (root / "keep.txt").read_text() == "mine"
    ours = tmp_path / "ours"
    spinecls.make_synthetic_rsna(ours, n_studies=2, image_size=(48, 48))
    spinecls.make_synthetic_rsna(ours, n_studies=1, image_size=(48, 48), overwrite=True)
    assert len(spinecls.load_rsna(ours)) == 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours", "out"]


def test_a_failure_leaves_no_partial_output(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = synthetic._write_dicom

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 20:
            raise OSError("disk full")
        original(*args, **kwargs)

    monkeypatch.setattr(synthetic, "_write_dicom", flaky)
    with pytest.raises(OSError, match="disk full"):
        spinecls.make_synthetic_rsna(tmp_path / "out", n_studies=2, image_size=(48, 48))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_studies": 0}, "n_studies"),
        ({"image_size": (16, 64)}, "image_size"),
        ({"image_size": (64, 48)}, "image_size"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        spinecls.make_synthetic_rsna(tmp_path / "x", **kwargs)
