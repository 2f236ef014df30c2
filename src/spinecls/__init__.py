"""spinecls: detect and grade degenerative lumbar-spine conditions on MRI.

scikit-learn-style estimators over the RSNA 2024 lumbar spine data layout.
"""

from ._version import __version__
from .classifier import DualHeadClassifier
from .datasets import RSNADataWarning, load_rsna, make_synthetic_rsna
from .labels import CONDITIONS, LEVELS, SERIES_DESCRIPTIONS, SEVERITIES, SEVERITY_WEIGHTS
from .preprocessing import LumbarPatchTransformer

__all__ = [
    "CONDITIONS",
    "DualHeadClassifier",
    "LEVELS",
    "LumbarPatchTransformer",
    "RSNADataWarning",
    "SERIES_DESCRIPTIONS",
    "SEVERITIES",
    "SEVERITY_WEIGHTS",
    "__version__",
    "load_rsna",
    "make_synthetic_rsna",
]
