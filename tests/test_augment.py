"""Augmentation presets and the laterality-aware flip."""

from __future__ import annotations

import warnings

import albumentations as A
import numpy as np
import pytest
import torch

from spinecls import CONDITIONS
from spinecls.augment import (
    PRESETS,
    TTA_MODES,
    AugmentedDataset,
    lateral_swap,
    make_augmentation,
    mirrors_sides,
    shift_pixels,
    tta_views,
)


def _dataset(images, labels):
    return torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))


def test_swap_table_swaps_only_the_axial_conditions():
    names = np.array(sorted(CONDITIONS))
    swap = lateral_swap(names)
    for i, name in enumerate(names):
        twin = name
        if "Subarticular" in name:  # axial crops: the flip mirrors the patient's sides
            twin = (
                name.replace("Left", "Right") if "Left" in name else name.replace("Right", "Left")
            )
        assert names[swap[i]] == twin
    codes = np.arange(5)
    assert lateral_swap(codes).tolist() == [0, 1, 2, 4, 3]
    # a class without its twin among the classes keeps its label
    assert lateral_swap(np.array([0, 1, 3])).tolist() == [0, 1, 2]
    assert [mirrors_sides(c) for c in CONDITIONS] == [False, False, False, True, True]
    assert [mirrors_sides(c) for c in range(5)] == [False, False, False, True, True]


def _crop(plane: str) -> np.ndarray:
    """A crop whose left and right halves differ, as a sagittal or an axial image."""
    crop = np.zeros((1, 1, 8, 8), np.float32)
    crop[0, 0, :, :3] = 1.0  # front of a sagittal slice, patient's right on an axial one
    crop[0, 0, 2, 4] = 0.5 if plane == "axial" else 0.25
    return crop


@pytest.mark.parametrize(
    ("condition", "plane", "after"),
    [
        ("Left Neural Foraminal Narrowing", "sagittal", "Left Neural Foraminal Narrowing"),
        ("Right Neural Foraminal Narrowing", "sagittal", "Right Neural Foraminal Narrowing"),
        ("Spinal Canal Stenosis", "sagittal", "Spinal Canal Stenosis"),
        ("Left Subarticular Stenosis", "axial", "Right Subarticular Stenosis"),
        ("Right Subarticular Stenosis", "axial", "Left Subarticular Stenosis"),
    ],
)
def test_a_flipped_sagittal_crop_keeps_its_side_and_an_axial_one_swaps(condition, plane, after):
    classes = np.array(sorted(CONDITIONS))
    image = _crop(plane)
    labels = np.array([[list(classes).index(condition), 1]])
    flip = make_augmentation(A.HorizontalFlip(p=1), random_state=0)
    data = AugmentedDataset(_dataset(image, labels), flip, lateral_swap(classes))
    mirrored, label = data[0]
    np.testing.assert_array_equal(mirrored.numpy(), image[0, :, :, ::-1])
    assert classes[int(label[0])] == after
    assert int(label[1]) == 1


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_horizontal_flip_mirrors_the_image_and_swaps_subarticular_sides(p):
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
        assert int(label[0]) == ([0, 1, 2, 4, 3][labels[i, 0]] if p else labels[i, 0])
    assert labels[3, 0] == 3  # the source labels are not modified


def test_two_flips_cancel():
    images = np.random.default_rng(1).random((1, 1, 6, 6), dtype=np.float32)
    labels = np.array([[3, 0]])
    twice = A.Compose([A.HorizontalFlip(p=1), A.HorizontalFlip(p=1)])
    data = AugmentedDataset(
        _dataset(images, labels), make_augmentation(twice), lateral_swap(range(5))
    )
    image, label = data[0]
    np.testing.assert_array_equal(image.numpy(), images[0])
    assert int(label[0]) == 3


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
    assert sorted(PRESETS) == ["light", "mri", "study"]
    names = [type(t).__name__ for t in make_augmentation("study").transforms]
    assert names == ["HorizontalFlip", "RandomBrightnessContrast", "Affine", "GaussianBlur"]
    assert make_augmentation(None) is None
    with pytest.raises(ValueError, match="augment must be"):
        make_augmentation("heavy")
    with pytest.raises(ValueError, match="augment must be"):
        make_augmentation(42)


def test_test_time_views_flip_and_shift_with_edge_pixels():
    batch = torch.arange(2 * 1 * 64 * 64, dtype=torch.float32).reshape(2, 1, 64, 64)
    assert tta_views(None, 64, 64)[0][0](batch) is batch and len(tta_views(None, 64, 64)) == 1
    flip = tta_views("flip", 64, 64)
    assert [mirrored for _, mirrored in flip] == [False, True]
    torch.testing.assert_close(flip[1][0](batch), batch.flip(-1))
    views = tta_views("flip+shift", 64, 64)
    assert [mirrored for _, mirrored in views] == [False, True, False, False]
    assert shift_pixels(64, 64) == 2 and shift_pixels(128, 96) == 3 and shift_pixels(8, 8) == 1
    down, up = views[2][0](batch), views[3][0](batch)
    assert down.shape == up.shape == batch.shape
    # content moves by 2 pixels down and right; the gap repeats the edge (no wrap-around)
    torch.testing.assert_close(down[..., 2:, 2:], batch[..., :-2, :-2])
    torch.testing.assert_close(down[..., 0, 2:], batch[..., 0, :-2])
    torch.testing.assert_close(down[..., 2:, 0], batch[..., :-2, 0])
    torch.testing.assert_close(up[..., :-2, :-2], batch[..., 2:, 2:])
    torch.testing.assert_close(up[..., -1, :-2], batch[..., -1, 2:])
    assert TTA_MODES == ("flip", "flip+shift")
    with pytest.raises(ValueError, match=r"tta must be None or one of \['flip', 'flip\+shift'\]"):
        tta_views("rotate", 32, 32)


def test_mri_preset_keeps_intensities_in_range_and_never_flips():
    from spinecls.augment import check_intensity_range, intensity_transforms

    images = np.random.default_rng(3).random((8, 1, 32, 32), dtype=np.float32)
    data = AugmentedDataset(
        _dataset(images, np.zeros((8, 2), dtype=np.int64)),
        make_augmentation("mri", 0),
        lateral_swap(range(5)),
    )
    out = np.stack([data[i][0].numpy() for i in range(8)])
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert not np.array_equal(out, images)
    names = [type(t).__name__ for t in make_augmentation("mri").transforms]
    assert "HorizontalFlip" not in names and "Affine" in names
    assert intensity_transforms(make_augmentation("light")) == []
    assert intensity_transforms(make_augmentation("study")) == [
        "RandomBrightnessContrast",
        "GaussianBlur",
    ]
    nested = A.Compose([A.OneOf([A.GaussNoise(), A.Affine()]), A.HorizontalFlip()])
    assert intensity_transforms(make_augmentation(nested)) == ["GaussNoise"]
    # albumentations clips a float image to [0, 1] in its intensity transforms: a z-scored
    # crop would lose its negative half, so fit warns; [0, 1] images and spatial presets pass
    z_scored = (images - images.mean()) / images.std()
    with pytest.warns(UserWarning, match=r"clipping the rest; the images range from -1\.7"):
        check_intensity_range("mri", z_scored)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_intensity_range("mri", images)
        check_intensity_range("light", z_scored)
        check_intensity_range(None, z_scored)
