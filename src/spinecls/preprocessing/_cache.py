"""What the transformer's ``memory`` caches, and the file stamps that key it.

A file is named in a cache key by its stamp (path, modification time, size, inode,
change time), so a changed or replaced file is read again. The cached units are a
series' slice order and a series' decoded slices; the transformer also caches whole
calls, keyed by :func:`folder_stamps`.
"""

from __future__ import annotations

import os

import joblib
import numpy as np
from sklearn.utils.validation import check_memory

from .. import dicom
from ..geometry import series_order

_INT63 = (1 << 63) - 1


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


def stamp(path: str) -> tuple[str, int, int, int, int]:
    """A file's identity for the cache: path, modification time, size, inode, change time.

    The modification time alone can be forged: ``cp -p``, ``rsync -t`` or files renamed
    within a series keep it (and often the size). The inode and the change time
    (``st_ctime_ns``: set by the system on every write, rename or chmod, never by a
    user) cannot, so a replaced file is always read again.
    """
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1, -1, -1)
    return (path, st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def folder_stamps(folders) -> tuple[str, np.ndarray]:
    """Names and :func:`stamp` numbers of the DICOM files in the given folders.

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
            # inodes are unsigned: their low 63 bits fit the int64 array
            numbers.append((st.st_mtime_ns, st.st_size, st.st_ino & _INT63, st.st_ctime_ns))
    return "\n".join(names), np.asarray(numbers, dtype=np.int64).reshape(-1, 4)


def sorted_series(stamps: tuple) -> tuple[tuple[str, ...], str | None]:
    """The stamped files in series order and the GeometryWarning's message, if any (a cached
    unit; see :func:`spinecls.geometry.series_order`)."""
    return series_order(path for path, *_ in stamps)


def decoded_series(stamps: tuple) -> dict[str, dicom.DicomSlice]:
    """Every stamped file decoded (a cached unit); raises on the first bad one."""
    return {path: dicom.read_slice(path) for path, *_ in stamps}
