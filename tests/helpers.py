"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from sklearn.base import BaseEstimator


def write_dicom(path, pixels, **attributes):
    """Write a single-frame 16-bit MR DICOM file with the given pixels and header attributes.

    ``attributes`` are set on the dataset after the defaults, so they can override
    ``PhotometricInterpretation`` or ``PixelSpacing``; returns ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(pixels).astype(np.uint16)
    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = uid
    ds.Modality = "MR"
    ds.PixelSpacing = [1.0, 1.0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


class RowwiseDualHead(BaseEstimator):
    """A dual-head estimator without torch, for meta-estimator tests: fast and exact.

    ``fit`` records the rows (``X.index``) and the ``groups`` it got; ``predict_proba``
    gives each head a softmax of ``alpha * x / 100 * class position``, so each row's
    probabilities follow its own ``x`` column and nothing else.
    """

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, X, y, groups=None):
        y = np.asarray(y, dtype=object)
        self.classes_ = [np.unique(y[:, k].astype(str)) for k in range(2)]
        self.index_ = X.index.to_numpy()
        self.groups_ = None if groups is None else np.asarray(groups)
        return self

    def predict_proba(self, X):
        x = X["x"].to_numpy(dtype=np.float64)[:, None] / 100
        out = []
        for classes in self.classes_:
            logits = self.alpha * x * np.arange(len(classes))
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            out.append(p / p.sum(axis=1, keepdims=True))
        return out
