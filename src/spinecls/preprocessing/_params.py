""":class:`~spinecls.preprocessing.LumbarPatchTransformer`'s parameters, checked.

:data:`PARAMETER_CONSTRAINTS` is the transformer's scikit-learn constraint table
(``_parameter_constraints``, checked by ``_validate_params`` as every scikit-learn
estimator and :class:`~spinecls.DualHeadClassifier` check theirs). The transformer
learns nothing: :func:`extraction_params` runs in ``fit`` and again in every
``transform``, checks what the table cannot say (pairs, odd slices, parameters that
need each other), and returns the parameters in the form the extraction reads
(:mod:`spinecls.preprocessing._extract`); nothing is stored on the estimator.
"""

from __future__ import annotations

import os
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from ..dicom import NORMALIZE
from ._cache import check_cache

MODES = ("crop", "marker")
ON_ERROR = ("raise", "warn")

PARAMETER_CONSTRAINTS: dict = {
    "data_dir": [str, os.PathLike, None],
    "patch_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
    "output_size": [Interval(Integral, 1, None, closed="left"), tuple, list, None],
    "patch_size_mm": [Interval(Real, 0, None, closed="neither"), tuple, list, None],
    "mode": [StrOptions(set(MODES))],
    "slices": [Interval(Integral, 1, None, closed="left")],
    "normalize": [StrOptions({n for n in NORMALIZE if n is not None}), None],
    "blur": [Interval(Real, 0, None, closed="neither"), None],
    "n_jobs": [Integral, None],
    "memory": [str, os.PathLike, HasMethods(["cache"]), None],
    "on_error": [StrOptions(set(ON_ERROR))],
    "verbose": ["verbose"],
    "progress": [StrOptions({"deprecated"}), "boolean"],
}
"""LumbarPatchTransformer's ``_parameter_constraints`` (checked by ``_validate_params``)."""


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if (
        len(value) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
        or min(value) <= 0
    ):
        raise ValueError(f"{name} must be a positive int or a pair (h, w) of them, got {value!r}")
    return int(value[0]), int(value[1])


def _mm_pair(value) -> tuple[float, float]:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        value = (value, value)
    if (
        len(value) != 2
        or not all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            for v in value
        )
        or not all(np.isfinite(v) and v > 0 for v in value)
    ):
        raise ValueError(
            "patch_size_mm must be None, a positive number of millimetres or a pair (h, w) "
            f"of them, got {value!r}"
        )
    return float(value[0]), float(value[1])


def extraction_params(transformer) -> dict:
    """``transformer``'s patch parameters as the extraction reads them.

    Every parameter is checked, the runtime ones too (``on_error``, ``verbose``,
    ``memory``): first against :data:`PARAMETER_CONSTRAINTS`, then what the table cannot
    say; sizes become ``(height, width)`` pairs.

    Returns
    -------
    dict
        ``patch_size``, ``patch_size_mm`` (None or a pair of floats), ``output_size``,
        ``mode``, ``slices``, ``normalize``, ``blur`` (None or a float) and ``memory``.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        A ValueError naming the first parameter of the wrong type or range, the values
        it takes and the value it got.
    ValueError
        Naming a malformed pair, an even ``slices``, or parameters that do not go together.
    """
    t = transformer
    t._validate_params()
    patch_size = _pair(t.patch_size, "patch_size")
    output_size = patch_size if t.output_size is None else _pair(t.output_size, "output_size")
    patch_size_mm = None if t.patch_size_mm is None else _mm_pair(t.patch_size_mm)
    if patch_size_mm is not None and t.output_size is None:
        raise ValueError(
            "patch_size_mm needs output_size: windows in mm are a different number of "
            "pixels at each PixelSpacing, and are resized to output_size"
        )
    if patch_size_mm is not None and t.mode != "crop":
        raise ValueError(
            f"patch_size_mm sizes crops; mode={t.mode!r} keeps whole slices: set patch_size_mm=None"
        )
    if t.slices % 2 == 0:
        raise ValueError(f"slices must be a positive odd int, got {t.slices!r}")
    check_cache(t.memory)
    return {
        "patch_size": patch_size,
        "patch_size_mm": patch_size_mm,
        "output_size": output_size,
        "mode": t.mode,
        "slices": int(t.slices),
        "normalize": t.normalize,
        "blur": None if t.blur is None else float(t.blur),
        "memory": t.memory,
    }
