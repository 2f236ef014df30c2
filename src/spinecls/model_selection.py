"""Splits that keep each study on one side.

Patches of one study are alike (same patient, same scanner): a split that puts some of
them in training and others in testing measures memory, not skill. scikit-learn's
group-aware splitters (``GroupShuffleSplit``, ``GroupKFold``) do the work; this module
names the one the study's protocol uses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

__all__ = ["split_by_study"]


def split_by_study(
    frame: pd.DataFrame, test_size: float = 0.15, random_state: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of a development set and a test set with no study on both sides.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with a ``study_id`` column, e.g. from :func:`spinecls.load_rsna`.
    test_size : float, default=0.15
        Share of the studies held out (scikit-learn's ``GroupShuffleSplit``).
    random_state : int or None, default=0

    Returns
    -------
    develop, test : ndarray of int
        Positions (for ``frame.iloc``) of the development and test rows.

    Raises
    ------
    ValueError
        If ``frame`` has no ``study_id`` column or fewer than two studies.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"study_id": [1, 1, 2, 2, 3, 3, 4, 4]})
    >>> develop, test = split_by_study(frame, test_size=0.25, random_state=0)
    >>> len(develop), len(test), set(frame.study_id.iloc[develop]) & set(frame.study_id.iloc[test])
    (6, 2, set())
    """
    if not isinstance(frame, pd.DataFrame) or "study_id" not in frame.columns:
        raise ValueError("split_by_study needs a DataFrame with a study_id column")
    if frame["study_id"].nunique() < 2:
        raise ValueError(
            f"split_by_study needs at least two studies; got {frame['study_id'].nunique()}"
        )
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=random_state)
    develop, test = next(splitter.split(frame, groups=frame["study_id"]))
    return develop, test
