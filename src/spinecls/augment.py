"""Training-time augmentation: albumentations presets and a laterality-aware flip.

A horizontal flip mirrors the anatomy, so a flipped image of a left-sided condition
shows a right-sided one: :class:`AugmentedDataset` swaps the Left and Right condition
labels whenever the albumentations pipeline applied an odd number of horizontal flips.
"""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch

from .labels import CONDITIONS, LATERAL_SWAP

__all__ = ["PRESETS", "PRESET_ALIASES", "AugmentedDataset", "lateral_swap", "make_augmentation"]

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


PRESETS = {"study": _study, "light": _light}
"""Named augmentation lists: ``"study"`` (the study's model 3 list), ``"light"``."""

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


def lateral_swap(condition_classes) -> np.ndarray:
    """For each condition class, the index of the class a mirror image shows.

    Classes are condition names (:data:`spinecls.CONDITIONS`) or the study's integer
    codes 0-4. A class without a lateral twin among the classes maps to itself.

    Parameters
    ----------
    condition_classes : array-like
        The condition head's classes, sorted as in ``classes_[0]``.

    Returns
    -------
    ndarray of int
    """
    classes = list(condition_classes)
    index = {c: i for i, c in enumerate(classes)}
    swap = np.arange(len(classes))
    for i, c in enumerate(classes):
        name = c
        if isinstance(c, (int, np.integer)) and 0 <= int(c) < len(CONDITIONS):
            name = CONDITIONS[int(c)]
        twin = LATERAL_SWAP.get(name)
        if twin is None:
            continue
        twin_class = CONDITIONS.index(twin) if not isinstance(c, str) else twin
        if twin_class in index:
            swap[i] = index[twin_class]
    return swap


class AugmentedDataset(torch.utils.data.Dataset):
    """A dataset of ``(image (C, H, W), labels (2,))`` augmented on the fly.

    Parameters
    ----------
    dataset : torch Dataset
        Yields ``(image, labels)`` with labels ``[condition_code, severity_code]``.
    transform : albumentations.Compose
        Built by :func:`make_augmentation` (records the transforms it applied).
    swap : ndarray of int
        From :func:`lateral_swap`: condition code after a mirror.
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
