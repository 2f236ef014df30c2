"""Augmentation: albumentations presets, test-time views and a laterality-aware flip.

A horizontal flip mirrors the patient's left and right only where the image's
horizontal axis is the patient's left-right axis: on axial images, where the
subarticular conditions are labelled. There a flipped left-sided condition shows a
right-sided one. On a sagittal image (spinal canal, foraminal conditions) the
horizontal axis runs front to back, and a flip leaves the side as it was.
:func:`lateral_swap` encodes that rule (the condition tells the plane:
:data:`spinecls.labels.CONDITION_SERIES`); :class:`AugmentedDataset` applies it
whenever the albumentations pipeline applied an odd number of horizontal flips, and
test-time augmentation (:func:`tta_views`) applies it to the condition head's columns.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import albumentations as A
import cv2
import numpy as np
import torch
from torch.nn import functional as F

from .labels import CONDITION_SERIES, CONDITIONS, LATERAL_SWAP

__all__ = [
    "PRESETS",
    "PRESET_ALIASES",
    "TTA_MODES",
    "AugmentedDataset",
    "check_intensity_range",
    "intensity_transforms",
    "lateral_swap",
    "make_augmentation",
    "mirrors_sides",
    "shift_pixels",
    "tta_views",
]

MIRRORS = frozenset({"HorizontalFlip"})
"""albumentations transforms that mirror left and right."""


def _study() -> list:
    # The study's model 3 list (ShiftScaleRotate is albumentations' deprecated
    # spelling of this Affine: shift 0.05, scale 0.05, rotate 15 degrees).
    return [
        A.HorizontalFlip(p=0.5),
        A.RandomBrightnessContrast(p=0.2),
        A.Affine(translate_percent=(-0.05, 0.05), scale=(0.95, 1.05), rotate=(-15, 15), p=0.5),
        A.GaussianBlur(p=0.2),
    ]


def _light() -> list:
    return [
        A.HorizontalFlip(p=0.5),
        A.Affine(translate_percent=(-0.03, 0.03), scale=(0.97, 1.03), rotate=(-7, 7), p=0.3),
    ]


def _mri() -> list:
    # Real MRI differs from scan to scan more in contrast, noise and sharpness than in
    # geometry: intensity changes for images in [0, 1], a small affine with mirrored
    # borders (a black border would be a dark structure), and no flip, which would put
    # the spinal canal in front of the disc on a sagittal crop.
    return [
        A.Affine(
            translate_percent=(-0.05, 0.05),
            scale=(0.9, 1.1),
            rotate=(-10, 10),
            border_mode=cv2.BORDER_REFLECT_101,
            p=0.7,
        ),
        A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.2, p=0.5),
        A.RandomGamma(gamma_limit=(70, 150), p=0.5),
        A.GaussNoise(std_range=(0.01, 0.04), p=0.3),
        A.GaussianBlur(blur_limit=(3, 3), p=0.2),
    ]


PRESETS = {"study": _study, "light": _light, "mri": _mri}
"""Named augmentation lists: ``"study"`` (the study's model 3 list), ``"light"`` (flip and a
small affine: geometry only, for images on any intensity scale) and ``"mri"`` (for real
MRI crops with intensities in [0, 1]: a small affine, brightness, contrast, gamma, noise
and blur, no flip; docs/real_data.md)."""

PRESET_ALIASES = {"seed": "study"}
"""Older preset names that keep working, silently: ``"seed"`` is ``"study"``."""


def make_augmentation(augment, random_state: int | None = None) -> A.Compose | None:
    """An albumentations pipeline that records which transforms it applied.

    Parameters
    ----------
    augment : None, str or albumentations transform
        None, a key of :data:`PRESETS` (or of :data:`PRESET_ALIASES`), or any
        albumentations transform or Compose.
    random_state : int or None
        Seed of the pipeline's random draws.

    Returns
    -------
    albumentations.Compose or None
    """
    if augment is None:
        return None
    if isinstance(augment, str):
        name = PRESET_ALIASES.get(augment, augment)
        if name not in PRESETS:
            raise ValueError(
                f"augment must be None, one of {sorted(PRESETS)} or an albumentations "
                f"transform, got {augment!r}"
            )
        transforms = PRESETS[name]()
    elif isinstance(augment, (A.BaseCompose, A.BasicTransform)):
        transforms = [augment]
    else:
        raise ValueError(
            f"augment must be None, one of {sorted(PRESETS)} or an albumentations transform, "
            f"got {type(augment).__name__}"
        )
    return A.Compose(transforms, seed=random_state, save_applied_params=True)


def intensity_transforms(augmentation: A.BaseCompose | None) -> list[str]:
    """Names of the pipeline's intensity (pixel-level) transforms.

    albumentations applies those to float images as intensities in [0, 1] and clips
    the result to that range (a z-scored crop loses its negative half); spatial
    transforms (flip, affine) keep any values.

    Parameters
    ----------
    augmentation : albumentations.Compose or None
        From :func:`make_augmentation`.

    Returns
    -------
    list of str
    """
    if augmentation is None:
        return []
    names = []
    for transform in augmentation.transforms:
        if isinstance(transform, A.BaseCompose):
            names += intensity_transforms(transform)
        elif isinstance(transform, A.ImageOnlyTransform):
            names.append(type(transform).__name__)
    return names


def check_intensity_range(augment, X: np.ndarray, stacklevel: int = 2) -> None:
    """Warn when ``augment`` has intensity transforms and ``X`` leaves [0, 1].

    Parameters
    ----------
    augment : None, str or albumentations transform
        As ``DualHeadClassifier(augment=...)`` takes it.
    X : ndarray
        The training images.
    stacklevel : int, default=2
        Of the warning.
    """
    names = intensity_transforms(make_augmentation(augment))
    if not names or X.size == 0:
        return
    low, high = float(X.min()), float(X.max())
    if low >= -1e-3 and high <= 1 + 1e-3:
        return
    warnings.warn(
        f"augment={augment!r} has intensity transforms ({', '.join(sorted(set(names)))}) "
        f"that albumentations applies to float images in [0, 1], clipping the rest; the "
        f"images range from {low:.3g} to {high:.3g}: scale them to [0, 1] first "
        "(spinecls.IntensityNormalizer(method='percentile')), or use augment='light'",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def mirrors_sides(condition) -> bool:
    """Whether a horizontal flip of a crop of ``condition`` mirrors the patient's sides.

    True for conditions labelled on axial images (the subarticular ones), whose
    horizontal axis is the patient's left-right axis; False for those labelled on
    sagittal images (spinal canal, foraminal), where it runs front to back.

    Parameters
    ----------
    condition : str or int
        A name of :data:`spinecls.CONDITIONS` or its code 0-4.

    Returns
    -------
    bool

    Examples
    --------
    >>> mirrors_sides("Left Subarticular Stenosis")
    True
    >>> mirrors_sides("Left Neural Foraminal Narrowing")
    False
    """
    if isinstance(condition, (int, np.integer)) and 0 <= int(condition) < len(CONDITIONS):
        condition = CONDITIONS[int(condition)]
    return CONDITION_SERIES.get(condition, "").startswith("Axial")


def lateral_swap(condition_classes) -> np.ndarray:
    """For each condition class, the index of the class its horizontal mirror image shows.

    Left and Right swap only for conditions whose crops are axial
    (:func:`mirrors_sides`): a mirrored left subarticular crop shows a right
    subarticular one, while a mirrored (sagittal) left foraminal crop is still a left
    foraminal one. Classes are condition names (:data:`spinecls.CONDITIONS`) or the
    study's integer codes 0-4; a class without a lateral twin among the classes maps
    to itself.

    Parameters
    ----------
    condition_classes : array-like
        The condition head's classes, sorted as in ``classes_[0]``.

    Returns
    -------
    ndarray of int

    Examples
    --------
    >>> lateral_swap(range(5)).tolist()  # codes: spinal, foraminal L/R, subarticular L/R
    [0, 1, 2, 4, 3]
    """
    classes = list(condition_classes)
    index = {c: i for i, c in enumerate(classes)}
    swap = np.arange(len(classes))
    for i, c in enumerate(classes):
        name = c
        if isinstance(c, (int, np.integer)) and 0 <= int(c) < len(CONDITIONS):
            name = CONDITIONS[int(c)]
        twin = LATERAL_SWAP.get(name)
        if twin is None or not mirrors_sides(name):
            continue
        twin_class = CONDITIONS.index(twin) if not isinstance(c, str) else twin
        if twin_class in index:
            swap[i] = index[twin_class]
    return swap


TTA_MODES = ("flip", "flip+shift")
"""Test-time augmentation modes: ``"flip"`` (the image and its horizontal mirror) and
``"flip+shift"`` (those two and the image shifted by :func:`shift_pixels` along both
axes, one way and the other)."""


def shift_pixels(height: int, width: int) -> int:
    """The test-time shift: 1/32 of the crop's shorter side, at least 1 pixel (2 at 64 px).

    About 3 %, the translation of the ``"light"`` preset: larger shifts move the graded
    structure away from the centre the network learnt to read.
    """
    return max(1, round(min(height, width) / 32))


def _flip(batch: torch.Tensor) -> torch.Tensor:
    return torch.flip(batch, dims=[-1])


def _shift(dy: int, dx: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def shift(batch: torch.Tensor) -> torch.Tensor:
        # Edge pixels fill the gap: a wrap-around (torch.roll) would move the far edge
        # of the crop next to its centre.
        height, width = batch.shape[-2:]
        padded = F.pad(batch, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)), mode="replicate")
        top, left = max(-dy, 0), max(-dx, 0)
        return padded[..., top : top + height, left : left + width]

    return shift


def tta_views(mode: str | None, height: int, width: int) -> list[tuple[Callable, bool]]:
    """The test-time views of a batch of crops and whether each is mirrored.

    Parameters
    ----------
    mode : None or one of :data:`TTA_MODES`
        None: the crops as given.
    height, width : int
        The crops' size (it sets the shift, :func:`shift_pixels`).

    Returns
    -------
    list of (callable, bool)
        Functions from a ``(n, channels, height, width)`` tensor to one of the same
        shape, each with True when it mirrors left and right (so that the condition
        head's columns are permuted by :func:`lateral_swap` before averaging).
    """
    if mode is not None and mode not in TTA_MODES:
        raise ValueError(f"tta must be None or one of {list(TTA_MODES)}; got {mode!r}")
    views: list[tuple[Callable, bool]] = [(lambda batch: batch, False)]
    if mode is not None:
        views.append((_flip, True))
    if mode == "flip+shift":
        d = shift_pixels(height, width)
        views += [(_shift(d, d), False), (_shift(-d, -d), False)]
    return views


class AugmentedDataset(torch.utils.data.Dataset):
    """A dataset of ``(image (C, H, W), labels (2,))`` augmented on the fly.

    Parameters
    ----------
    dataset : torch Dataset
        Yields ``(image, labels)`` with labels ``[condition_code, severity_code]``.
    transform : albumentations.Compose
        Built by :func:`make_augmentation` (records the transforms it applied).
    swap : ndarray of int
        From :func:`lateral_swap`: condition code after a horizontal flip (changed only
        for axial, subarticular crops).
    """

    def __init__(self, dataset, transform: A.Compose, swap: np.ndarray):
        self.dataset = dataset
        self.transform = transform
        self.swap = swap

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        image, labels = self.dataset[i]
        array = np.asarray(image, dtype=np.float32).transpose(1, 2, 0)
        result = self.transform(image=np.ascontiguousarray(array))
        out = np.ascontiguousarray(result["image"].reshape(array.shape).transpose(2, 0, 1))
        flips = sum(name in MIRRORS for name, _ in result["applied_transforms"])
        if flips % 2:
            labels = labels.clone() if isinstance(labels, torch.Tensor) else np.array(labels)
            labels[0] = int(self.swap[int(labels[0])])
        return torch.from_numpy(out), labels
