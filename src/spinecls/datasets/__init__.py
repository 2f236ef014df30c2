"""Reading the competition layout and writing synthetic studies in it."""

from .rsna import (
    RSNADataWarning,
    image_paths,
    load_coordinates,
    load_rsna,
    read_series_descriptions,
)
from .synthetic import SEVERITY_PRIORS, make_synthetic_rsna

__all__ = [
    "RSNADataWarning",
    "SEVERITY_PRIORS",
    "image_paths",
    "load_coordinates",
    "load_rsna",
    "make_synthetic_rsna",
    "read_series_descriptions",
]
