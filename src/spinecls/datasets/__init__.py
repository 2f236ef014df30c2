"""Reading the competition layout, and writing synthetic studies or image volumes in it.

:func:`make_synthetic_rsna`, :func:`synthetic_quirks` and the volume writers
(:mod:`.volumes`) are imported on first use (PEP 562): the synthetic studies draw with
OpenCV, which reading the competition layout does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import rsna
from .rsna import *  # noqa: F403 - exactly rsna.__all__, as numpy's __init__ gathers its parts

if TYPE_CHECKING:
    from .synthetic import make_synthetic_rsna, synthetic_quirks
    from .volumes import SpineVolume, levels_from_mask, write_volumes

_LAZY = {
    "make_synthetic_rsna": ".synthetic",
    "synthetic_quirks": ".synthetic",
    "SpineVolume": ".volumes",
    "levels_from_mask": ".volumes",
    "write_volumes": ".volumes",
}

__all__ = [
    "SpineVolume",
    "levels_from_mask",
    "make_synthetic_rsna",
    "synthetic_quirks",
    "write_volumes",
    *rsna.__all__,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
