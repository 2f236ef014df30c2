"""The order of a series' slices: grouped by orientation, and found by instance number.

:class:`~spinecls.geometry.SeriesGeometry` is built from :func:`orientation_groups` (one
:class:`~spinecls.geometry.SliceStack` per group) and answers ``index_of`` with
:func:`slice_index`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .._utils.validation import listing
from ._slice import SliceGeometry


def orientation_groups(
    slices: Iterable[SliceGeometry], cos_tolerance: float, name: str
) -> list[list[SliceGeometry]]:
    """The slices of series ``name`` grouped by orientation, one group per stack.

    A slice joins the first group whose first slice's normal lies within the
    tolerance (``cos_tolerance``: the cosine of its angle) of its own, or starts a
    group. Groups form in instance-number order, so that their order does not depend
    on the order the files were listed in.

    Raises
    ------
    ValueError
        If there is no slice or a slice has no instance number.
    TypeError
        If a slice is not a SliceGeometry.
    """
    slices = list(slices)
    if not slices:
        raise ValueError(f"series {name}: no slices")
    for s in slices:
        if not isinstance(s, SliceGeometry):
            raise TypeError(f"series {name}: slices must be SliceGeometry, got {type(s).__name__}")
        if s.instance_number is None:
            raise ValueError(f"series {name}: {s.source} has no InstanceNumber")
    groups: list[list[SliceGeometry]] = []
    for s in sorted(slices, key=lambda s: (s.instance_number, s.source)):
        for group in groups:
            if float(s.normal @ group[0].normal) >= cos_tolerance:
                group.append(s)
                break
        else:
            groups.append([s])
    return groups


def slice_index(instance_numbers: np.ndarray, wanted, name: str) -> np.ndarray | int:
    """Position in series order of the slices numbered ``wanted``, in ``wanted``'s shape.

    ``instance_numbers`` holds series ``name``'s instance numbers in series order.

    Raises
    ------
    ValueError
        If an instance number is not in the series, or is on several slices.
    """
    wanted = np.asarray(wanted)
    order = np.argsort(instance_numbers, kind="stable")
    ordered = instance_numbers[order]
    first = np.searchsorted(ordered, wanted, side="left")
    last = np.searchsorted(ordered, wanted, side="right")
    unknown = np.unique(wanted[last == first])
    if unknown.size:
        raise ValueError(
            f"series {name} has no slice with InstanceNumber "
            f"{listing(unknown.tolist())}; it has {len(instance_numbers)} slices numbered "
            f"{int(ordered[0])} to {int(ordered[-1])}"
        )
    repeated = np.unique(wanted[last - first > 1])
    if repeated.size:
        raise ValueError(
            f"series {name}: InstanceNumber {listing(repeated.tolist())} is on "
            "several slices; address them by index in series.slices"
        )
    index = order[first]
    return int(index) if index.ndim == 0 else index
