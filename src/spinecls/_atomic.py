"""Writing a directory so that an interrupted run leaves nothing that looks complete."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(root: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``root``; on success it replaces ``root``.

    On any exception, Ctrl-C included, the temporary directory is removed and ``root``
    is left as it was.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
