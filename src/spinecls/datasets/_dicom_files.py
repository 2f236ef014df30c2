"""Writing MR slices as DICOM files: one header per series, each slice its own attributes.

Shared by the synthetic studies and :func:`spinecls.datasets.write_volumes`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, MRImageStorage

__all__ = ["mr_dataset", "save_slice"]


def mr_dataset(meta: dict, manufacturer: str = "spinecls synthetic phantom") -> Dataset:
    """An MR image header (no pixels yet): 16-bit MONOCHROME2, with the attributes in
    ``meta`` (DICOM keywords)."""
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = MRImageStorage
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = file_meta
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.Manufacturer = manufacturer
    ds.BodyPartExamined = "LSPINE"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    for key, value in meta.items():
        setattr(ds, key, value)
    return ds


def save_slice(ds: Dataset, path: Path, pixels: np.ndarray) -> None:
    """Write ``ds`` with ``pixels`` (uint16 rows x columns) to ``path``."""
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
