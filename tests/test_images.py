"""Images without DICOM: PNG crops read into arrays, normalised, and graded end to end."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from spinecls import SEVERITIES, DualHeadClassifier, IntensityNormalizer, read_images


def _write(path, array):
    assert cv2.imwrite(str(path), array)
    return path


def test_read_images_makes_grey_float_crops_of_one_size(tmp_path):
    grey = _write(tmp_path / "grey.png", np.full((40, 60), 200, np.uint8))
    colour = np.zeros((20, 20, 3), np.uint8)
    colour[..., 2] = 255  # pure red (OpenCV stores BGR)
    red = _write(tmp_path / "red.png", colour)
    rgba = _write(tmp_path / "rgba.png", np.dstack([colour, np.zeros((20, 20), np.uint8)]))
    deep = _write(tmp_path / "deep.png", np.full((16, 16), 40000, np.uint16))
    X = read_images([grey, red, rgba, deep], size=(24, 32))
    assert X.shape == (4, 1, 24, 32) and X.dtype == np.float32
    np.testing.assert_allclose(X[0], 200.0, rtol=1e-6)
    np.testing.assert_allclose(X[1], 76.0, atol=0.5)  # OpenCV's luminance of red: 0.299 * 255
    np.testing.assert_array_equal(X[2], X[1])  # the alpha channel is dropped
    np.testing.assert_allclose(X[3], 40000.0)  # 16-bit values kept
    gradient = _write(tmp_path / "g.png", np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1)))
    small = read_images([str(gradient)], size=32)[0, 0]
    np.testing.assert_allclose(small[0, :3], [2.0, 10.0, 18.0])  # area interpolation


def test_read_images_names_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found: .*missing.png"):
        read_images([tmp_path / "missing.png"])
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="notes.png is not an image OpenCV can read"):
        read_images([tmp_path / "notes.png"])
    with pytest.raises(ValueError, match="paths is empty"):
        read_images([])
    with pytest.raises(ValueError, match="size must be a positive int"):
        read_images([tmp_path / "notes.png"], size=0)


def test_intensity_normalizer_puts_every_image_on_one_scale():
    rng = np.random.default_rng(0)
    base = np.repeat(rng.random((1, 2, 16, 16)).astype(np.float32), 3, axis=0)
    # the same tissue on three scanners: other gains and offsets, one outlier pixel
    X = base * np.array([1.0, 300.0, 4000.0], np.float32)[:, None, None, None] + 7.0
    X[1, 0, 0, 0] = 1e6
    z = IntensityNormalizer(method="zscore").fit_transform(X)
    np.testing.assert_allclose(z.mean(axis=(2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(2, 3)), 1.0, atol=1e-4)
    m = IntensityNormalizer(method="minmax").transform(X)
    np.testing.assert_allclose(m[2], m[0], atol=1e-5)
    p = IntensityNormalizer().transform(X)  # percentiles 1 and 99, clipped to [0, 1]
    assert p.min() == 0.0 and p.max() == 1.0
    np.testing.assert_allclose(p[2], p[0], atol=1e-5)
    lo, hi = np.percentile(X[1, 0], [1, 99])
    np.testing.assert_allclose(p[1, 0], np.clip((X[1, 0] - lo) / (hi - lo), 0, 1), atol=1e-5)
    constant = IntensityNormalizer().transform(np.full((1, 1, 8, 8), 5, np.uint8))
    np.testing.assert_array_equal(constant, 0.0)  # 8-bit input accepted; flat -> zeros
    clf = IntensityNormalizer(method="zscore", percentiles=(2, 98))
    assert clone(clf).get_params() == {"method": "zscore", "percentiles": (2, 98)}
    assert clf.__sklearn_tags__().requires_fit is False
    with pytest.raises(ValueError, match="percentiles must be two numbers"):
        IntensityNormalizer(percentiles=(99, 1)).transform(X)
    with pytest.raises(ValueError, match="'method' parameter"):
        IntensityNormalizer(method="histogram").fit(X)
    with pytest.raises(ValueError, match="X must be a 4-D array"):
        IntensityNormalizer().transform(X[0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        IntensityNormalizer().transform(np.full((1, 1, 8, 8), np.nan, np.float32))


def test_png_crops_train_a_pipeline_without_dicom(tmp_path):
    """The documented path: PNG files -> read_images -> IntensityNormalizer -> classifier."""
    rng = np.random.default_rng(1)
    paths, levels, grades = [], [], []
    for i in range(60):
        grade = i % 3
        level = ("L4/L5", "L5/S1")[i % 2]
        image = rng.normal(90, 10, (40, 40))
        image[12:28, 8:32] = 60 + 70 * grade  # a disc whose brightness is its grade
        gain = rng.uniform(0.5, 2.5)  # each export on its own scale
        path = tmp_path / f"disc_{i}.png"
        _write(path, np.clip(image * gain, 0, 255).astype(np.uint8))
        paths.append(path)
        levels.append(level)
        grades.append(SEVERITIES[grade])
    X = read_images(paths, size=32)
    y = np.column_stack([levels, grades])
    pipe = Pipeline(
        [
            ("normalize", IntensityNormalizer()),
            (
                "clf",
                DualHeadClassifier(
                    max_epochs=6, lr=3e-3, ordinal=True, augment="mri", random_state=0
                ),
            ),
        ]
    )
    pipe.fit(X, y, clf__groups=np.arange(60) // 3)
    p_level, p_grade = pipe.predict_proba(X)
    assert p_level.shape == (60, 2) and p_grade.shape == (60, 3)
    assert pipe[-1].classes_[0].tolist() == ["L4/L5", "L5/S1"]
    accuracy = (pipe.predict(X)[:, 1] == np.array(grades)).mean()
    assert accuracy > 0.6, accuracy  # chance: 0.33
