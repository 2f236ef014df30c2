"""Augmentation presets and the laterality-aware flip."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from spinecls import CONDITIONS
from spinecls.augment import PRESETS, AugmentedDataset, lateral_swap, make_augmentation


def _dataset(images, labels):
    return torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))


def test_swap_table_for_names_and_codes():
    names = np.array(sorted(CONDITIONS))
    swap = lateral_swap(names)
    for i, name in enumerate(names):
        twin = name.replace("Left", "Right") if "Left" in name else name.replace("Right", "Left")
        assert names[swap[i]] == twin
    codes = np.arange(5)
    assert lateral_swap(codes).tolist() == [0, 2, 1, 4, 3]
    # a class without its twin among the classes keeps its label
    assert lateral_swap(np.array([0, 1, 3])).tolist() == [0, 1, 2]


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_horizontal_flip_mirrors_the_image_and_swaps_left_and_right(p):
    rng = np.random.default_rng(0)
    images = rng.random((5, 2, 8, 8), dtype=np.float32)
    labels = np.array([[0, 2], [1, 0], [2, 1], [3, 2], [4, 0]])
    transform = make_augmentation(A.HorizontalFlip(p=p), random_state=0)
    data = AugmentedDataset(_dataset(images, labels), transform, lateral_swap(np.arange(5)))
    for i in range(5):
        image, label = data[i]
        expected = images[i, :, :, ::-1] if p else images[i]
        np.testing.assert_array_equal(image.numpy(), expected)
        assert int(label[1]) == labels[i, 1]  # severity untouched
        assert int(label[0]) == ([0, 2, 1, 4, 3][labels[i, 0]] if p else labels[i, 0])
    assert labels[1, 0] == 1  # the source labels are not modified


def test_two_flips_cancel():
    images = np.random.default_rng(1).random((1, 1, 6, 6), dtype=np.float32)
    labels = np.array([[1, 0]])
    twice = A.Compose([A.HorizontalFlip(p=1), A.HorizontalFlip(p=1)])
    data = AugmentedDataset(
        _dataset(images, labels), make_augmentation(twice), lateral_swap(range(5))
    )
    image, label = data[0]
    np.testing.assert_array_equal(image.numpy(), images[0])
    assert int(label[0]) == 1


def test_presets_are_seeded_and_keep_the_shape():
    images = np.random.default_rng(2).random((6, 3, 16, 16), dtype=np.float32)
    labels = np.zeros((6, 2), dtype=np.int64)

    def run(preset, seed):
        data = AugmentedDataset(
            _dataset(images, labels), make_augmentation(preset, seed), lateral_swap(range(5))
        )
        return np.stack([data[i][0].numpy() for i in range(6)])

    a, b, c = run("study", 0), run("study", 0), run("study", 1)
    assert a.shape == images.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, images)
    np.testing.assert_array_equal(run("seed", 0), a)  # the preset's former name
    assert sorted(PRESETS) == ["light", "study"]
    names = [type(t).__name__ for t in make_augmentation("study").transforms]
    assert names == ["HorizontalFlip", "RandomBrightnessContrast", "Affine", "GaussianBlur"]
    assert make_augmentation(None) is None
    with pytest.raises(ValueError, match="augment must be"):
        make_augmentation("heavy")
    with pytest.raises(ValueError, match="augment must be"):
        make_augmentation(42)
