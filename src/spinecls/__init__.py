"""spinecls: detect and grade degenerative lumbar-spine conditions on MRI.

scikit-learn-style estimators over the RSNA 2024 lumbar spine data layout.

Public names are resolved on first use (PEP 562), so ``import spinecls`` loads neither
torch nor albumentations nor OpenCV: the command line and the data readers start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._utils.moved import install as _install_moved_modules
from ._version import __version__

_install_moved_modules()  # old pickles name modules that moved into sub-packages

if TYPE_CHECKING:
    from .classifier import DualHeadClassifier
    from .datasets import RSNADataWarning, load_rsna, load_series, make_synthetic_rsna
    from .ensemble import DualHeadEnsemble
    from .images import IntensityNormalizer, read_images
    from .inference import predict_studies
    from .labels import CONDITIONS, LEVELS, SERIES_DESCRIPTIONS, SEVERITIES, SEVERITY_WEIGHTS
    from .localization import LevelLocalizer
    from .model_selection import split_by_study
    from .preprocessing import LumbarPatchTransformer
    from .routing import ConditionGroupClassifier

_LAZY = {
    "CONDITIONS": ".labels",
    "ConditionGroupClassifier": ".routing",
    "DualHeadClassifier": ".classifier",
    "DualHeadEnsemble": ".ensemble",
    "IntensityNormalizer": ".images",
    "LEVELS": ".labels",
    "LevelLocalizer": ".localization",
    "LumbarPatchTransformer": ".preprocessing",
    "RSNADataWarning": ".datasets",
    "SERIES_DESCRIPTIONS": ".labels",
    "SEVERITIES": ".labels",
    "SEVERITY_WEIGHTS": ".labels",
    "load_rsna": ".datasets",
    "load_series": ".datasets",
    "predict_studies": ".inference",
    "read_images": ".images",
    "make_synthetic_rsna": ".datasets",
    "split_by_study": ".model_selection",
}
"""Public name -> the module that defines it."""

_SUBMODULES = (
    "augment",
    "classifier",
    "cli",
    "datasets",
    "demo",
    "dicom",
    "ensemble",
    "estimator_checks",
    "evaluation",
    "geometry",
    "images",
    "inference",
    "labels",
    "localization",
    "metrics",
    "model_selection",
    "models",
    "patches",
    "persistence",
    "plotting",
    "preprocessing",
    "report",
    "routing",
)
"""Modules reachable as attributes (``spinecls.metrics``) without an import statement."""

__all__ = [
    "CONDITIONS",
    "ConditionGroupClassifier",
    "DualHeadClassifier",
    "DualHeadEnsemble",
    "IntensityNormalizer",
    "LEVELS",
    "LevelLocalizer",
    "LumbarPatchTransformer",
    "RSNADataWarning",
    "SERIES_DESCRIPTIONS",
    "SEVERITIES",
    "SEVERITY_WEIGHTS",
    "__version__",
    "load_rsna",
    "load_series",
    "make_synthetic_rsna",
    "predict_studies",
    "read_images",
    "split_by_study",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})
