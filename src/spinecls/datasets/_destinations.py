"""Where a written competition layout and its truth go, checked before anything is written.

Shared by :func:`spinecls.make_synthetic_rsna` and :func:`spinecls.datasets.write_volumes`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._utils.atomic import check_destination

__all__ = ["layout_destinations"]


def layout_destinations(
    root: str | os.PathLike, truth_dir, split: str, overwrite: bool
) -> tuple[Path, Path | None]:
    """The layout's folder and, for ``split="test"``, its truth's (``truth_dir``, or
    ``<root>_truth`` beside it; None otherwise), both checked as destinations.

    Raises
    ------
    ValueError
        When the truth would lie in the layout, the layout in the truth, or both in one.
    FileExistsError
        From :func:`spinecls._utils.atomic.check_destination`, for a folder spinecls did
        not write or that is not empty without ``overwrite``.
    """
    root = Path(root)
    truth = None
    if split == "test":
        truth = Path(truth_dir) if truth_dir is not None else root.with_name(f"{root.name}_truth")
        a, b = root.resolve(), truth.resolve()
        if a == b or a in b.parents or b in a.parents:
            raise ValueError(
                f"truth_dir {str(truth)!r} and root {str(root)!r} overlap: truth_dir must lie "
                "outside root, and root outside it"
            )
    for destination in (root, truth):
        if destination is not None:
            check_destination(destination, directory=True, overwrite=overwrite, create_parents=True)
    return root, truth
