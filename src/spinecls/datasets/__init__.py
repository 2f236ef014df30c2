"""Reading the competition layout and writing synthetic studies in it.

:func:`make_synthetic_rsna` is imported on first use (PEP 562): it draws with OpenCV,
which reading the competition layout does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import rsna
from .rsna import *  # noqa: F403 - exactly rsna.__all__, as numpy's __init__ gathers its parts

if TYPE_CHECKING:
    from .synthetic import make_synthetic_rsna

__all__ = ["make_synthetic_rsna", *rsna.__all__]


def __getattr__(name: str):
    if name == "make_synthetic_rsna":
        value = importlib.import_module(".synthetic", __name__).make_synthetic_rsna
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
