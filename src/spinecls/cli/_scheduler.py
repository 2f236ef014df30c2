"""The command line's ``--scheduler``: run a command's joblib work on a dask cluster.

Nothing in the library picks a joblib backend: decoding (``LumbarPatchTransformer``),
synthetic studies and ``GridSearchCV`` run on whatever backend is active. The command
line makes joblib's dask backend the active one for a whole command when given the
address of a running ``distributed`` scheduler (``--scheduler`` or the
:data:`SCHEDULER_ENV` environment variable); a library user writes the same two lines::

    with distributed.Client(address), joblib.parallel_backend("dask"):
        ...
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

SCHEDULER_ENV = "SPINECLS_SCHEDULER"
"""Environment variable read when ``--scheduler`` is not given."""

CONNECT_TIMEOUT = 10
"""Seconds to wait for the scheduler before a command gives up, before any work."""


def add_scheduler_option(parser: argparse.ArgumentParser) -> None:
    """Give a sub-command the ``--scheduler ADDRESS`` option (default: :data:`SCHEDULER_ENV`)."""
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=os.environ.get(SCHEDULER_ENV) or None,
        help="decode DICOM on the workers of the dask.distributed scheduler at ADDRESS, "
        f"e.g. tcp://10.0.0.5:8786 (default: ${SCHEDULER_ENV}; unset: this machine)",
    )


@contextmanager
def dask_backend(address: str | None) -> Iterator[None]:
    """Within the block, joblib runs its work on the cluster at ``address``.

    With ``address`` None the block runs with joblib's active backend, unchanged.

    Raises
    ------
    ValueError
        ``dask.distributed`` is not installed, or the address is malformed or no
        scheduler answers there within :data:`CONNECT_TIMEOUT` seconds.
    """
    if address is None:
        yield
        return
    try:
        from distributed import Client
    except ImportError as exc:
        raise ValueError(
            f"a scheduler ({address}) needs dask.distributed: pip install 'spinecls[dask]'"
        ) from exc
    from joblib import parallel_backend

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot use the dask scheduler at {address}: {exc}") from exc
    with client, parallel_backend("dask"):
        yield
