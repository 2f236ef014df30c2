"""What the transformer's ``memory`` caches, and the file stamps that key it.

A file is named in a cache key by its stamp (path, modification time, size), so a
changed file is read again. The cached units are a series' slice order and a series'
decoded slices; the transformer also caches whole calls, keyed by
:func:`folder_stamps`.
"""

from __future__ import annotations

import os

import joblib
import numpy as np
from sklearn.utils.validation import check_memory

from . import dicom


def check_cache(memory):
    """``memory`` as an object with joblib.Memory's interface, or None if it caches nothing.

    A path gives a ``joblib.Memory`` there whose cached arrays come back memory-mapped
    (read-only), so a cache hit costs no copy; a ``joblib.Memory`` (or anything with its
    interface) is used as it is.

    Raises
    ------
    ValueError
        For anything else (from :func:`sklearn.utils.validation.check_memory`).
    """
    if isinstance(memory, (str, os.PathLike)):
        memory = joblib.Memory(os.fspath(memory), mmap_mode="r", verbose=0)
    memory = check_memory(memory)
    return None if getattr(memory, "location", "") is None else memory


def stamp(path: str) -> tuple[str, int, int]:
    """A file's identity for the cache: its path, modification time and size."""
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, st.st_mtime_ns, st.st_size)


def folder_stamps(folders) -> tuple[str, np.ndarray]:
    """Names, modification times and sizes of the DICOM files in the given folders.

    Returned as one string and one int64 array, which the cache hashes quickly.
    """
    names, numbers = [], []
    for folder in sorted(folders):
        try:
            entries = [e for e in os.scandir(folder) if e.name.endswith(".dcm")]
        except OSError:
            entries = []
        for entry in sorted(entries, key=lambda e: e.name):
            st = entry.stat()
            names.append(entry.path)
            numbers.append((st.st_mtime_ns, st.st_size))
    return "\n".join(names), np.asarray(numbers, dtype=np.int64).reshape(-1, 2)


def sorted_series(stamps: tuple) -> list[str]:
    """:func:`spinecls.dicom.sort_slices` of the stamped files (a cached unit)."""
    return dicom.sort_slices(path for path, _, _ in stamps)


def decoded_series(stamps: tuple) -> dict[str, dicom.DicomSlice]:
    """Every stamped file decoded (a cached unit); raises on the first bad one."""
    return {path: dicom.read_slice(path) for path, _, _ in stamps}
