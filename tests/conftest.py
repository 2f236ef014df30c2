"""Shared fixtures: a tiny synthetic RSNA dataset, built once per test session.

Helpers that tests import (``write_dicom``) live in ``tests/helpers.py``.
"""

from __future__ import annotations

import pytest

import spinecls


@pytest.fixture(scope="session")
def rsna_root(tmp_path_factory):
    """Six synthetic studies with small images (read-only: copy before changing)."""
    return spinecls.make_synthetic_rsna(
        tmp_path_factory.mktemp("data") / "rsna", n_studies=6, random_state=0, image_size=(96, 128)
    )


@pytest.fixture(scope="session")
def rsna_frame(rsna_root):
    return spinecls.load_rsna(rsna_root)
