"""Label vocabularies of the RSNA 2024 lumbar spine data, in one place.

The integer codes follow the study this library grows from: conditions 0-4 in
:data:`CONDITIONS` order, severities 0-2 in :data:`SEVERITIES` order.
"""

from __future__ import annotations

CONDITIONS: tuple[str, ...] = (
    "Spinal Canal Stenosis",
    "Left Neural Foraminal Narrowing",
    "Right Neural Foraminal Narrowing",
    "Left Subarticular Stenosis",
    "Right Subarticular Stenosis",
)
"""Condition names as written in ``train_label_coordinates.csv``; index = class code."""

LEVELS: tuple[str, ...] = ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")
"""Intervertebral levels, cranial to caudal."""

SEVERITIES: tuple[str, ...] = ("normal_mild", "moderate", "severe")
"""Severity grades; index = class code."""

HEADS: tuple[str, ...] = ("condition", "severity")
"""The two outputs of every model, in the order of y's columns and of ``classes_``."""

SEVERITY_WEIGHTS: dict[str, float] = {"normal_mild": 1.0, "moderate": 2.0, "severe": 4.0}
"""Per-row sample weights of the competition metric."""

TARGETS: list[str] = list(SEVERITIES)
"""The probability columns of a competition submission, in its order (a list, to index frames)."""

SCORE_GROUPS: tuple[str, ...] = ("spinal", "foraminal", "subarticular")
"""The competition score's condition groups; each is a word of its conditions' row ids."""

ROW_ID_GROUP: str = rf"_({'|'.join(SCORE_GROUPS)})_"
"""Regular expression whose first group is the :data:`SCORE_GROUPS` word of a row id."""

SCORE_EPSILON: float = 1e-15
"""The competition score clips normalised probabilities to ``[eps, 1 - eps]`` with this ``eps``."""

SEVERITY_PRIORS: dict[str, tuple[float, float, float]] = {
    "Spinal Canal Stenosis": (0.878, 0.075, 0.047),
    "Left Neural Foraminal Narrowing": (0.78, 0.18, 0.04),
    "Right Neural Foraminal Narrowing": (0.78, 0.18, 0.04),
    "Left Subarticular Stenosis": (0.71, 0.19, 0.10),
    "Right Subarticular Stenosis": (0.71, 0.19, 0.10),
}
"""Share of normal_mild / moderate / severe per condition in the real training labels."""

RAW_SEVERITIES: dict[str, str] = {
    "Normal/Mild": "normal_mild",
    "Moderate": "moderate",
    "Severe": "severe",
}
"""``train.csv`` cell values and the severity each stands for."""

SAGITTAL_T1: str = "Sagittal T1"
"""The series description of the sagittal T1 series (the foramina)."""

SAGITTAL_T2: str = "Sagittal T2/STIR"
"""The series description of the sagittal T2 or STIR series (the spinal canal)."""

AXIAL_T2: str = "Axial T2"
"""The series description of the axial T2 series (the subarticular recesses)."""

SERIES_DESCRIPTIONS: tuple[str, ...] = (SAGITTAL_T1, SAGITTAL_T2, AXIAL_T2)
"""The series descriptions of the competition data."""

CONDITION_SERIES: dict[str, str] = {
    "Spinal Canal Stenosis": SAGITTAL_T2,
    "Left Neural Foraminal Narrowing": SAGITTAL_T1,
    "Right Neural Foraminal Narrowing": SAGITTAL_T1,
    "Left Subarticular Stenosis": AXIAL_T2,
    "Right Subarticular Stenosis": AXIAL_T2,
}
"""The series on which each condition is labelled."""

LATERAL_SWAP: dict[str, str] = {
    "Left Neural Foraminal Narrowing": "Right Neural Foraminal Narrowing",
    "Right Neural Foraminal Narrowing": "Left Neural Foraminal Narrowing",
    "Left Subarticular Stenosis": "Right Subarticular Stenosis",
    "Right Subarticular Stenosis": "Left Subarticular Stenosis",
}
"""Condition each lateral condition becomes when the image is mirrored left to right."""

CONDITION_SHORT_NAMES: dict[str, str] = {
    "Spinal Canal Stenosis": "spinal canal",
    "Left Neural Foraminal Narrowing": "left foraminal",
    "Right Neural Foraminal Narrowing": "right foraminal",
    "Left Subarticular Stenosis": "left subarticular",
    "Right Subarticular Stenosis": "right subarticular",
}
"""Short condition names for figure titles."""


def slug(name: str) -> str:
    """Snake-case form of a condition or level name, as used in column and row ids.

    Parameters
    ----------
    name : str
        A condition (``"Left Neural Foraminal Narrowing"``) or level (``"L4/L5"``).

    Returns
    -------
    str
        ``"left_neural_foraminal_narrowing"`` or ``"l4_l5"``.

    Examples
    --------
    >>> slug("L5/S1")
    'l5_s1'
    >>> slug("Spinal Canal Stenosis")
    'spinal_canal_stenosis'
    """
    return name.lower().replace("/", "_").replace(" ", "_")


WIDE_COLUMNS: dict[str, tuple[str, str]] = {
    f"{slug(c)}_{slug(lv)}": (c, lv) for c in CONDITIONS for lv in LEVELS
}
"""The 25 ``train.csv`` label columns and the (condition, level) each holds, in file order."""

ROW_ID_PATTERN: str = (
    r"(0|[1-9][0-9]*)"
    rf"_({'|'.join(map(slug, CONDITIONS))})"
    rf"_({'|'.join(map(slug, LEVELS))})"
)
"""Regular expression of a submission row id, ``{study_id}_{condition}_{level}`` in snake
case (a study id in ASCII digits without leading zeros); its groups are the study id, the
condition's slug and the level's slug."""
