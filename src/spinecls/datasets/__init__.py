"""Reading the competition layout and writing synthetic studies in it.

:func:`make_synthetic_rsna` and :func:`synthetic_quirks` are imported on first use
(PEP 562): they draw with OpenCV, which reading the competition layout does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import rsna
from .rsna import *  # noqa: F403 - exactly rsna.__all__, as numpy's __init__ gathers its parts

if TYPE_CHECKING:
    from .synthetic import make_synthetic_rsna, synthetic_quirks

__all__ = ["make_synthetic_rsna", "synthetic_quirks", *rsna.__all__]
_SYNTHETIC = ("make_synthetic_rsna", "synthetic_quirks")


def __getattr__(name: str):
    if name in _SYNTHETIC:
        value = getattr(importlib.import_module(".synthetic", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
