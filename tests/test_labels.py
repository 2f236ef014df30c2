import re

import spinecls.datasets
from spinecls import CONDITIONS, LEVELS, SEVERITIES, SEVERITY_WEIGHTS
from spinecls.labels import (
    CONDITION_SERIES,
    CONDITION_SHORT_NAMES,
    LATERAL_SWAP,
    RAW_SEVERITIES,
    ROW_ID_GROUP,
    SCORE_GROUPS,
    TARGETS,
    WIDE_COLUMNS,
    slug,
)


def test_codes_follow_the_study():
    assert CONDITIONS.index("Spinal Canal Stenosis") == 0
    assert CONDITIONS.index("Left Neural Foraminal Narrowing") == 1
    assert CONDITIONS.index("Right Neural Foraminal Narrowing") == 2
    assert CONDITIONS.index("Left Subarticular Stenosis") == 3
    assert CONDITIONS.index("Right Subarticular Stenosis") == 4
    assert SEVERITIES == ("normal_mild", "moderate", "severe")
    assert LEVELS == ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")


def test_wide_columns_are_the_25_train_csv_columns_in_file_order():
    columns = list(WIDE_COLUMNS)
    assert len(columns) == 25
    assert columns[0] == "spinal_canal_stenosis_l1_l2"
    assert columns[5] == "left_neural_foraminal_narrowing_l1_l2"
    assert columns[-1] == "right_subarticular_stenosis_l5_s1"
    assert WIDE_COLUMNS["left_subarticular_stenosis_l4_l5"] == (
        "Left Subarticular Stenosis",
        "L4/L5",
    )


def test_slug_weights_and_maps():
    assert slug("Right Neural Foraminal Narrowing") == "right_neural_foraminal_narrowing"
    assert slug("L5/S1") == "l5_s1"
    assert [SEVERITY_WEIGHTS[s] for s in SEVERITIES] == [1.0, 2.0, 4.0]
    assert set(RAW_SEVERITIES.values()) == set(SEVERITIES)
    assert set(CONDITION_SERIES) == set(CONDITIONS)
    for a, b in LATERAL_SWAP.items():
        assert LATERAL_SWAP[b] == a
        assert a.replace("Left", "Right") == b or a.replace("Right", "Left") == b


def test_score_groups_are_read_from_row_ids():
    found = {c: re.search(ROW_ID_GROUP, f"7_{slug(c)}_l1_l2").group(1) for c in CONDITIONS}
    assert found == {
        "Spinal Canal Stenosis": "spinal",
        "Left Neural Foraminal Narrowing": "foraminal",
        "Right Neural Foraminal Narrowing": "foraminal",
        "Left Subarticular Stenosis": "subarticular",
        "Right Subarticular Stenosis": "subarticular",
    }
    assert set(found.values()) == set(SCORE_GROUPS)
    assert re.search(ROW_ID_GROUP, "7_spinalx_l1_l2") is None
    assert TARGETS == ["normal_mild", "moderate", "severe"]


def test_short_names_and_one_home_for_the_priors():
    assert list(CONDITION_SHORT_NAMES) == list(CONDITIONS)
    assert len(set(CONDITION_SHORT_NAMES.values())) == 5
    assert "SEVERITY_PRIORS" not in spinecls.datasets.__all__
