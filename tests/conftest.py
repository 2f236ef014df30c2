"""Shared fixtures: a tiny synthetic RSNA dataset, built once per test session."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import generate_uid

import spinecls
from spinecls.datasets.synthetic import _write_dicom


def write_dicom(path, pixels, **attributes):
    """Write a single-frame MR DICOM file with the given pixels and header attributes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"SOPInstanceUID": generate_uid(), "PixelSpacing": [1.0, 1.0]} | attributes
    pixels = np.asarray(pixels)
    _write_dicom(path, pixels.astype(np.uint16), meta)
    return path


@pytest.fixture(scope="session")
def rsna_root(tmp_path_factory):
    """Six synthetic studies with small images (read-only: copy before changing)."""
    return spinecls.make_synthetic_rsna(
        tmp_path_factory.mktemp("data") / "rsna", n_studies=6, random_state=0, image_size=(96, 128)
    )


@pytest.fixture(scope="session")
def rsna_frame(rsna_root):
    return spinecls.load_rsna(rsna_root)
