"""Shared fixtures: a tiny synthetic RSNA dataset, built once per test session.

Helpers that tests import (``write_dicom``) live in ``tests/helpers.py``.
"""

from __future__ import annotations

import os

import pytest

import spinecls  # lazy (PEP 562): loads no torch yet

# One BLAS/OpenMP thread per process in the test session (and the processes it starts: CLI
# runs, joblib and dask workers, accelerate's two ranks). The tests' networks are tiny: on
# two cores a second thread per convolution buys nothing and, with worker processes beside
# it, oversubscribes the cores (measured: half the CPU time with one thread). Set before
# torch is imported; a value the caller exported wins.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


@pytest.fixture(scope="session")
def rsna_root(tmp_path_factory):
    """Six synthetic studies with small images (read-only: copy before changing)."""
    return spinecls.make_synthetic_rsna(
        tmp_path_factory.mktemp("data") / "rsna", n_studies=6, random_state=0, image_size=(96, 128)
    )


@pytest.fixture(scope="session")
def rsna_frame(rsna_root):
    return spinecls.load_rsna(rsna_root)
