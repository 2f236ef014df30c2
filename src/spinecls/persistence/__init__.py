"""Saving fitted estimators and whole pipelines, without pickle.

Two levels, imported one way:

- the file format (``_base``: :func:`save`, :func:`load`, :class:`PersistenceMixin`,
  :func:`check_state_dict`; ``_model_file``: the archive's layout and its checks on
  reading; ``_param_codec``: parameters as JSON), which the estimators themselves import;
- the pipeline files (``_pipeline_file``: :func:`save_pipeline`, :func:`load_pipeline`,
  :func:`load_localizer`), which import the estimators.

The pipeline names resolve on first use (PEP 562), so that an estimator importing the
format does not import the estimators through this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._base import (
    FIELDS,
    FILE_VERSION,
    DeviceWarning,
    PersistenceMixin,
    check_device,
    check_state_dict,
    decode_params,
    encode_params,
    load,
    save,
)

if TYPE_CHECKING:
    from ._pipeline_file import LOCALIZER_ENTRY as LOCALIZER_ENTRY
    from ._pipeline_file import load_localizer, load_pipeline, save_pipeline

_LAZY = {
    "LOCALIZER_ENTRY": "._pipeline_file",
    "load_localizer": "._pipeline_file",
    "load_pipeline": "._pipeline_file",
    "save_pipeline": "._pipeline_file",
}
"""Public name -> the module that defines it (the pipeline files)."""

__all__ = [
    "DeviceWarning",
    "FIELDS",
    "FILE_VERSION",
    "PersistenceMixin",
    "check_device",
    "check_state_dict",
    "decode_params",
    "encode_params",
    "load",
    "load_localizer",
    "load_pipeline",
    "save",
    "save_pipeline",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
