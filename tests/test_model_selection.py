"""spinecls.model_selection: splits that keep each study on one side."""

from __future__ import annotations

import pandas as pd
import pytest

import spinecls
from spinecls.model_selection import split_by_study


def test_split_by_study_keeps_studies_apart_and_covers_every_row(rsna_frame):
    develop, test = split_by_study(rsna_frame, random_state=0)
    assert sorted([*develop, *test]) == list(range(len(rsna_frame)))
    assert not set(rsna_frame.study_id.iloc[develop]) & set(rsna_frame.study_id.iloc[test])
    assert rsna_frame.study_id.iloc[test].nunique() == 1  # 15 % of 6 studies, rounded up


def test_the_same_seed_gives_the_same_split_and_another_seed_may_not(rsna_frame):
    first = split_by_study(rsna_frame, test_size=0.5, random_state=3)
    again = split_by_study(rsna_frame, test_size=0.5, random_state=3)
    assert all((a == b).all() for a, b in zip(first, again))
    studies = {
        frozenset(rsna_frame.study_id.iloc[split_by_study(rsna_frame, 0.5, seed)[1]])
        for seed in range(6)
    }
    assert len(studies) > 1


def test_split_by_study_is_public_at_the_top_level():
    assert spinecls.split_by_study is split_by_study


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"id": [1, 2]}), "study_id column"),
        (pd.DataFrame({"study_id": [7, 7, 7]}), "at least two studies; got 1"),
    ],
)
def test_bad_frames_say_what_is_wrong(frame, message):
    with pytest.raises(ValueError, match=message):
        split_by_study(frame)
