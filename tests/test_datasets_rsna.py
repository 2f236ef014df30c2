"""load_rsna on generated data and on hand-written CSVs with the real data's quirks."""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spinecls
from spinecls import RSNADataWarning, load_rsna, load_series
from spinecls.labels import WIDE_COLUMNS

COLUMNS = [
    "study_id",
    "series_id",
    "instance_number",
    "condition",
    "level",
    "x",
    "y",
    "series_description",
    "severity",
    "image_path",
]
SCS, LNFN, LSS, RSS = (
    "Spinal Canal Stenosis",
    "Left Neural Foraminal Narrowing",
    "Left Subarticular Stenosis",
    "Right Subarticular Stenosis",
)


def _labels(study_id, **cells):
    row = {"study_id": study_id} | {c: "Normal/Mild" for c in WIDE_COLUMNS}
    row.update(cells)
    return row


@pytest.fixture
def quirks():
    """Hand-written tables with every quirk of the real CSVs."""
    labels = [
        _labels(
            100, spinal_canal_stenosis_l1_l2="Severe", left_subarticular_stenosis_l4_l5="Moderate"
        ),
        _labels(200, spinal_canal_stenosis_l2_l3=""),  # blank cell
    ]
    coords = [
        # study 100: instance numbers above 1000, two Axial T2 series
        (100, 1002, 1005, SCS, "L1/L2", 322.8, 227.9),
        (100, 1001, 12, LNFN, "L1/L2", 196.07, 126.02),
        (100, 1003, 7, LSS, "L4/L5", 150.5, 160.25),
        (100, 1004, 3, RSS, "L5/S1", 110.0, 170.0),
        # study 300 has no row in train.csv
        (300, 3001, 4, SCS, "L3/L4", 10.0, 20.0),
        # study 200 lacks a Sagittal T1; one blank severity; one undescribed series
        (200, 2002, 8, SCS, "L1/L2", 200.0, 100.0),
        (200, 2002, 8, SCS, "L2/L3", 201.0, 140.0),
        (200, 2999, 15, LSS, "L1/L2", 99.5, 101.5),
    ]
    descriptions = [
        (100, 1001, "Sagittal T1"),
        (100, 1002, "Sagittal T2/STIR"),
        (100, 1003, "Axial T2"),
        (100, 1004, "Axial T2"),
        (200, 2002, "Sagittal T2/STIR"),
        (200, 2003, "Axial T2"),
        (300, 3001, "Sagittal T2/STIR"),
    ]
    return {
        "train.csv": pd.DataFrame(labels),
        "train_label_coordinates.csv": pd.DataFrame(
            coords,
            columns=["study_id", "series_id", "instance_number", "condition", "level", "x", "y"],
        ),
        "train_series_descriptions.csv": pd.DataFrame(
            descriptions, columns=["study_id", "series_id", "series_description"]
        ),
    }


def _write(root: Path, tables: dict) -> Path:
    root.mkdir(exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(root / name, index=False)
    return root


def test_quirks_give_the_documented_frame(tmp_path, quirks):
    root = _write(tmp_path / "rsna", quirks)
    with pytest.warns(RSNADataWarning) as record:
        frame = load_rsna(root)
    messages = [str(w.message) for w in record]
    assert any("dropped 1 coordinate row(s) whose severity is blank" in m for m in messages)
    assert any(
        "dropped 1 coordinate row(s) whose (study_id, condition, level) has no row" in m
        for m in messages
    )
    assert any("1 coordinate row(s) lie on 1 series absent" in m and "2999" in m for m in messages)

    assert list(frame.columns) == COLUMNS
    assert list(frame.index) == list(range(6))
    for column in ("study_id", "series_id", "instance_number"):
        assert frame[column].dtype == np.int64
    assert frame["x"].dtype == np.float64 and frame["y"].dtype == np.float64
    # rows in the coordinates file's order, the dropped ones removed
    assert frame["instance_number"].tolist() == [1005, 12, 7, 3, 8, 15]
    assert frame["series_id"].tolist() == [1002, 1001, 1003, 1004, 2002, 2999]
    assert frame["severity"].tolist() == [
        "severe",
        "normal_mild",
        "moderate",
        "normal_mild",
        "normal_mild",
        "normal_mild",
    ]
    assert frame["series_description"].iloc[:5].tolist() == [
        "Sagittal T2/STIR",
        "Sagittal T1",
        "Axial T2",
        "Axial T2",
        "Sagittal T2/STIR",
    ]
    assert pd.isna(frame["series_description"].iloc[5])
    assert frame.loc[0, "x"] == 322.8 and frame.loc[0, "y"] == 227.9
    expected = (root / "train_images" / "100" / "1002" / "1005.dcm").resolve()
    assert Path(frame.loc[0, "image_path"]) == expected
    assert Path(frame.loc[0, "image_path"]).is_absolute()


def test_two_axial_series_do_not_duplicate_rows(tmp_path, quirks):
    root = _write(tmp_path / "rsna", quirks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RSNADataWarning)
        frame = load_rsna(root)
    study = frame[frame.study_id == 100]
    assert len(study) == 4
    assert sorted(study.loc[study.series_description == "Axial T2", "series_id"]) == [1003, 1004]


def test_clean_input_gives_no_warning(tmp_path, quirks):
    quirks["train_label_coordinates.csv"] = quirks["train_label_coordinates.csv"].iloc[:4]
    root = _write(tmp_path / "rsna", quirks)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = load_rsna(root)
    assert len(frame) == 4


def test_generated_dataset_loads(rsna_root, rsna_frame):
    coords = pd.read_csv(rsna_root / "train_label_coordinates.csv")
    assert list(rsna_frame.columns) == COLUMNS
    assert len(rsna_frame) == len(coords) <= 6 * 25
    assert rsna_frame["instance_number"].tolist() == coords["instance_number"].tolist()
    assert set(rsna_frame["condition"]) == set(spinecls.CONDITIONS)
    assert set(rsna_frame["level"]) == set(spinecls.LEVELS)
    assert all(Path(p).is_file() for p in rsna_frame["image_path"])
    counts = rsna_frame.groupby(["study_id", "condition", "level"]).size()
    assert (counts == 1).all() and len(counts) == len(coords)
    # Labels without a coordinate: levels that the axial series do not cover.
    labelled = pd.MultiIndex.from_tuples(
        [(s, c, lv) for s in coords["study_id"].unique() for c, lv in WIDE_COLUMNS.values()]
    )
    missing = labelled.difference(counts.index)
    assert len(missing) == 6 * 25 - len(coords)
    assert all("Subarticular" in condition for _, condition, _ in missing)


def test_loads_from_the_csvs_alone(tmp_path, rsna_root, rsna_frame):
    root = tmp_path / "csv_only"
    root.mkdir()
    for name in ("train.csv", "train_label_coordinates.csv", "train_series_descriptions.csv"):
        shutil.copy(rsna_root / name, root / name)
    frame = load_rsna(root)
    pd.testing.assert_frame_equal(
        frame.drop(columns="image_path"), rsna_frame.drop(columns="image_path")
    )
    assert frame["image_path"].str.startswith(str(root.resolve())).all()


@pytest.mark.parametrize(
    "name", ["train.csv", "train_label_coordinates.csv", "train_series_descriptions.csv"]
)
def test_missing_csv_names_the_file(tmp_path, quirks, name):
    root = _write(tmp_path / "rsna", quirks)
    (root / name).unlink()
    with pytest.raises(FileNotFoundError, match=name):
        load_rsna(root)


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("train.csv", "left_neural_foraminal_narrowing_l3_l4"),
        ("train.csv", "study_id"),
        ("train_label_coordinates.csv", "x"),
        ("train_label_coordinates.csv", "instance_number"),
        ("train_series_descriptions.csv", "series_description"),
    ],
)
def test_missing_column_names_column_and_file(tmp_path, quirks, name, column):
    quirks[name] = quirks[name].drop(columns=column)
    root = _write(tmp_path / "rsna", quirks)
    with pytest.raises(ValueError, match=rf"{name}: missing column\(s\) \['{column}'\]"):
        load_rsna(root)


def test_unknown_condition_and_level_list_values_and_lines(tmp_path, quirks):
    coords = quirks["train_label_coordinates.csv"]
    coords.loc[2, "condition"] = "Left Subarticular Stenossis"
    root = _write(tmp_path / "rsna", quirks)
    with pytest.raises(
        ValueError,
        match=r"unknown condition value\(s\) \['Left Subarticular Stenossis'\] at line\(s\) 4",
    ):
        load_rsna(root)
    coords.loc[2, "condition"] = LSS
    coords.loc[[0, 5], "level"] = "L6/L7"
    _write(root, quirks)
    with pytest.raises(ValueError, match=r"unknown level value\(s\) \['L6/L7'\] at line\(s\) 2, 7"):
        load_rsna(root)


def test_unknown_severity_lists_value_and_cell(tmp_path, quirks):
    quirks["train.csv"].loc[1, "right_subarticular_stenosis_l3_l4"] = "Very Severe"
    root = _write(tmp_path / "rsna", quirks)
    with pytest.raises(
        ValueError,
        match=r"unknown severity value\(s\) \['Very Severe'\].*"
        r"line 3 \(right_subarticular_stenosis_l3_l4='Very Severe'\)",
    ):
        load_rsna(root)


def test_non_numeric_coordinates_and_ids_are_reported(tmp_path, quirks):
    coords = quirks["train_label_coordinates.csv"]
    coords["y"] = coords["y"].astype(object)
    coords.loc[3, "y"] = "abc"
    root = _write(tmp_path / "rsna", quirks)
    with pytest.raises(
        ValueError, match=r"'y' must hold finite numbers; got \['abc'\] at line\(s\) 5"
    ):
        load_rsna(root)
    coords.loc[3, "y"] = 1.0
    coords["series_id"] = coords["series_id"].astype(float)
    coords.loc[1, "series_id"] = 1001.5
    _write(root, quirks)
    with pytest.raises(ValueError, match=r"'series_id' must hold whole numbers"):
        load_rsna(root)


def test_conflicting_series_descriptions_raise(tmp_path, quirks):
    descriptions = quirks["train_series_descriptions.csv"]
    quirks["train_series_descriptions.csv"] = pd.concat(
        [
            descriptions,
            pd.DataFrame(
                [(100, 1001, "Axial T2"), (100, 1002, "Sagittal T2/STIR")],
                columns=descriptions.columns,
            ),
        ]
    )
    root = _write(tmp_path / "rsna", quirks)
    with pytest.raises(ValueError, match=r"more than one description: \[\[100, 1001\]\]"):
        load_rsna(root)


def test_duplicated_study_in_train_csv_raises(tmp_path, quirks):
    quirks["train.csv"] = pd.concat([quirks["train.csv"], quirks["train.csv"].iloc[[0]]])
    root = _write(tmp_path / "rsna", quirks)
    with pytest.raises(ValueError, match=r"study_id \[100\] appears more than once"):
        load_rsna(root)


@pytest.mark.parametrize(
    ("name", "column", "value", "line"),
    [
        ("train_label_coordinates.csv", "instance_number", "99999999999999999999", 4),
        ("train_label_coordinates.csv", "series_id", "9223372036854775808", 2),
        ("train.csv", "study_id", "-9223372036854775809", 3),
        ("train_series_descriptions.csv", "series_id", "18446744073709551616", 5),
    ],
)
def test_ids_beyond_int64_are_rejected_with_their_line(tmp_path, quirks, name, column, value, line):
    table = quirks[name].astype({column: object})
    table.loc[line - 2, column] = value
    quirks[name] = table
    root = _write(tmp_path / "rsna", quirks)
    with pytest.raises(
        ValueError,
        match=rf"{name}: column '{column}' must hold whole numbers from -2\*\*63 to "
        rf"2\*\*63 - 1; got \['{value}'\] at line\(s\) {line}$",
    ):
        load_rsna(root)


def test_ids_are_read_exactly_up_to_the_int64_limit(tmp_path, quirks):
    big = 2**63 - 1  # a float64 would round it to 2**63
    coords = quirks["train_label_coordinates.csv"].iloc[:4].copy()
    coords.loc[1, "instance_number"] = big
    quirks["train_label_coordinates.csv"] = coords
    frame = load_rsna(_write(tmp_path / "rsna", quirks))
    assert frame.loc[1, "instance_number"] == big
    assert frame.loc[1, "image_path"].endswith(f"{os.sep}1001{os.sep}{big}.dcm")


def test_exact_duplicate_coordinates_are_dropped_with_a_count(tmp_path, quirks):
    coords = quirks["train_label_coordinates.csv"]
    # lines 10 and 11 repeat lines 2 and 4; line 12 differs from line 2 in x only
    moved = coords.iloc[[0]].assign(x=323.0)
    quirks["train_label_coordinates.csv"] = pd.concat([coords, coords.iloc[[0, 2]], moved])
    root = _write(tmp_path / "rsna", quirks)
    with pytest.warns(RSNADataWarning) as record:
        frame = load_rsna(root)
    messages = [str(w.message) for w in record]
    assert (
        "train_label_coordinates.csv: dropped 2 exact duplicate row(s): "
        "line 10 (= line 2), line 11 (= line 4)" in messages
    )
    # the later warnings still name the CSV's own lines
    assert any("blank in train.csv (train_label_coordinates.csv line(s) 8)" in m for m in messages)
    assert len(frame) == 7 and frame["x"].tolist().count(322.8) == 1 and 323.0 in frame["x"].values
    with pytest.warns(RSNADataWarning, match="dropped 2 exact duplicate row"):
        loaded = spinecls.datasets.load_coordinates(root, split="train")
    assert len(loaded) == 9  # 10 rows less the duplicate ones (no labels to drop)


@pytest.mark.parametrize(
    "name", ["train.csv", "train_label_coordinates.csv", "train_series_descriptions.csv"]
)
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty; expected a UTF-8 CSV file with a header line holding"),
        (b"\n\n", "the file is empty"),
        (None, "the file has a header line but no rows; expected at least one"),
        (b"id,name\n1,caf\xe9\n", r"not UTF-8 text \(line 2: invalid continuation byte"),
        (b'a,b\n"1,2\n', "not a readable CSV file"),
    ],
)
def test_empty_headed_and_non_utf8_csvs_name_the_file(tmp_path, quirks, name, content, message):
    root = _write(tmp_path / "rsna", quirks)
    path = root / name
    if content is None:  # the header line alone
        content = path.read_bytes().splitlines(keepends=True)[0]
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: {message}"):
        load_rsna(root)


def _series_folders(root, names):
    for study, series in names:
        folder = root / "test_images" / study / series
        folder.mkdir(parents=True)
        (folder / "1.dcm").write_bytes(b"")


def test_load_series_takes_only_ascii_digit_ids_and_refuses_two_folders_for_one(tmp_path):
    pd.DataFrame(
        {"study_id": [123, 123], "series_id": [10, 11], "series_description": ["Axial T2"] * 2}
    ).to_csv(tmp_path / "test_series_descriptions.csv", index=False)
    # "³" passes str.isdigit() but is no number; "٤٥" (Arabic-Indic) and "011" are not ids
    _series_folders(tmp_path, [("123", "10"), ("123", "³"), ("123", "٤٥"), ("123", "011")])
    with pytest.warns(RSNADataWarning, match="ignored 3 folder") as caught:
        series = load_series(tmp_path, split="test")
    assert series["series_id"].tolist() == [10]
    message = " ".join(str(w.message) for w in caught)
    assert "³" in message and "٤٥" in message and "011" in message
    _series_folders(tmp_path, [("0123", "11")])
    with pytest.raises(
        ValueError, match=r"test_images/0123, .*test_images/123: 2 folders name study 123"
    ):
        load_series(tmp_path, split="test")
