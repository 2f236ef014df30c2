""":class:`~spinecls.preprocessing.LumbarPatchTransformer`'s parameters, checked.

The transformer learns nothing: :func:`extraction_params` runs in ``fit`` and again in
every ``transform``, and returns the parameters in the form the extraction reads
(:mod:`spinecls._extract`); nothing is stored on the estimator.
"""

from __future__ import annotations

import numpy as np

from ._cache import check_cache
from .dicom import NORMALIZE

MODES = ("crop", "marker")
ON_ERROR = ("raise", "warn")


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
        or min(value) <= 0
    ):
        raise ValueError(f"{name} must be a positive int or a pair (h, w) of them, got {value!r}")
    return int(value[0]), int(value[1])


def _mm_pair(value) -> tuple[float, float]:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
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
    ``memory``); sizes become ``(height, width)`` pairs.

    Returns
    -------
    dict
        ``patch_size``, ``patch_size_mm`` (None or a pair of floats), ``output_size``,
        ``mode``, ``slices``, ``normalize``, ``blur`` (None or a float) and ``memory``.

    Raises
    ------
    ValueError
        Naming the first malformed parameter and its value.
    """
    t = transformer
    patch_size = _pair(t.patch_size, "patch_size")
    output_size = patch_size if t.output_size is None else _pair(t.output_size, "output_size")
    if t.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {t.mode!r}")
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
    if (
        not isinstance(t.slices, (int, np.integer))
        or isinstance(t.slices, bool)
        or t.slices < 1
        or t.slices % 2 == 0
    ):
        raise ValueError(f"slices must be a positive odd int, got {t.slices!r}")
    if t.normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {t.normalize!r}")
    if t.blur is not None and not (isinstance(t.blur, (int, float, np.number)) and t.blur > 0):
        raise ValueError(f"blur must be None or a positive sigma, got {t.blur!r}")
    if t.on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {t.on_error!r}")
    if not isinstance(t.verbose, (int, np.integer)) or t.verbose < 0:
        raise ValueError(f"verbose must be a non-negative int, got {t.verbose!r}")
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
