"""spinecls.plotting: figures have the right axes and titles, and PNGs are written."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from spinecls import CONDITIONS, SEVERITIES, DualHeadClassifier  # noqa: E402
from spinecls.labels import CONDITION_SHORT_NAMES  # noqa: E402
from spinecls.metrics import dual_head_report  # noqa: E402
from spinecls.plotting import (  # noqa: E402
    conv_layers,
    plot_confusion_matrices,
    plot_feature_maps,
    plot_filters,
    plot_patches,
    plot_reliability,
    plot_training_curves,
)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    X = rng.random((40, 1, 32, 32), dtype=np.float32)
    y = np.column_stack(
        [np.array(CONDITIONS)[rng.integers(0, 5, 40)], np.array(SEVERITIES)[rng.integers(0, 3, 40)]]
    )
    return DualHeadClassifier(max_epochs=2, random_state=0).fit(X, y), X, y


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_training_curves(model, tmp_path):
    clf, _, _ = model
    figure = plot_training_curves(clf, path=tmp_path / "curves.png")
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["loss", "condition accuracy", "severity accuracy"]
    loss = figure.axes[0]
    assert [line.get_label() for line in loss.get_lines()] == ["train", "validation"]
    np.testing.assert_allclose(loss.get_lines()[0].get_ydata(), clf.history_[:, "train_loss"])
    _png(tmp_path / "curves.png")
    with pytest.raises(ValueError, match="empty"):
        plot_training_curves([])


def test_confusion_matrices(model, tmp_path):
    clf, X, y = model
    report = dual_head_report(y, clf.predict(X))
    figure = plot_confusion_matrices(report, path=tmp_path / "cm.png")
    assert [ax.get_title() for ax in figure.axes] == ["condition", "severity"]
    _png(tmp_path / "cm.png")
    assert len(plot_confusion_matrices(y, clf.predict(X)).axes) == 2
    with pytest.raises(ValueError, match="DualHeadReport"):
        plot_confusion_matrices(y)


def test_reliability_diagram(model, tmp_path):
    clf, X, y = model
    proba = clf.predict_proba(X)
    report = dual_head_report(y, clf.predict(X), proba=proba, classes=clf.classes_)
    figure = plot_reliability(report, path=tmp_path / "reliability.png")
    assert [ax.get_title() for ax in figure.axes] == ["condition", "severity"]
    _png(tmp_path / "reliability.png")
    for ax, head in zip(figure.axes, ["condition", "severity"]):
        table = report.reliability[head]
        diagonal, model_line = ax.get_lines()
        np.testing.assert_allclose(model_line.get_xdata(), table["confidence"])
        np.testing.assert_allclose(model_line.get_ydata(), table["accuracy"])
        ece = report.summary.loc[head, "ece"]
        assert ax.get_legend().get_texts()[1].get_text() == f"model (ECE {ece:.3f})"
        assert [bar.get_height() for bar in ax.patches] == pytest.approx(table["accuracy"].tolist())
    # from labels and probabilities directly: the same bars
    direct = plot_reliability(y, proba, classes=clf.classes_)
    assert [p.get_height() for p in direct.axes[1].patches] == [
        p.get_height() for p in figure.axes[1].patches
    ]
    with pytest.raises(ValueError, match="no reliability tables"):
        plot_reliability(dual_head_report(y, clf.predict(X)))
    with pytest.raises(ValueError, match="y_true, proba and classes"):
        plot_reliability(y, proba)


def test_feature_maps_and_filters(model, tmp_path):
    clf, X, _ = model
    layers = conv_layers(clf)
    assert layers == ["features.0", "features.4", "features.8"]
    figure = plot_feature_maps(clf, X[0], "features.0", max_maps=8, path=tmp_path / "maps.png")
    assert len(figure.axes) == 8
    assert figure._suptitle.get_text() == "feature maps of layer features.0"
    # the first map is the conv output for channel 0
    import torch

    with torch.no_grad():
        expected = clf.net_.module_.features[0](torch.from_numpy(X[:1]))[0, 0].numpy()
    np.testing.assert_allclose(figure.axes[0].images[0].get_array(), expected, rtol=1e-5, atol=1e-6)
    _png(tmp_path / "maps.png")
    filters = plot_filters(clf, "features.4", max_filters=12, path=tmp_path / "filters.png")
    assert len(filters.axes) == 12
    _png(tmp_path / "filters.png")
    with pytest.raises(ValueError, match="no convolution layer named 'dense'"):
        plot_filters(clf, "dense")
    with pytest.raises(ValueError, match="expected a fitted DualHeadClassifier"):
        plot_filters(object(), "features.0")


def test_sample_patches(model, tmp_path):
    _, X, y = model
    figure = plot_patches(X, y, n=6, path=tmp_path / "patches.png")
    assert len(figure.axes) == 6
    assert figure.axes[0].get_title() == f"{CONDITION_SHORT_NAMES[y[0, 0]]}\n{y[0, 1]}"
    _png(tmp_path / "patches.png")
    with pytest.raises(ValueError, match="shape"):
        plot_patches(X[0])
