"""The heatmap network, its loss and decoding (spinecls.models.heatmap)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinecls.models.heatmap import HeatmapLoss, SliceHeatmapNet, decode_heatmaps


@pytest.mark.parametrize("stride", [2, 4])
def test_net_shapes_and_padding(stride):
    torch.manual_seed(0)
    net = SliceHeatmapNet(3, 5, widths=(8, 16, 32, 32), stride=stride).eval()
    images = torch.rand(2, 4, 3, 32, 48)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    out = net(images, mask)
    assert out.shape == (2, 4, 5, 32 // stride, 48 // stride)
    assert (out[1, 2:] < -1e3).all() and (out[1, :2] > -1e3).all()
    # a stack's real slices do not depend on the padding beside them
    alone = net(images[1:, :2], mask[1:, :2])
    torch.testing.assert_close(alone[0], out[1, :2], atol=1e-4, rtol=1e-4)


def test_net_rejects_bad_stride():
    with pytest.raises(ValueError, match="stride must be 2 or 4"):
        SliceHeatmapNet(3, 5, stride=3)


def test_loss_is_lowest_at_the_target():
    """The loss of logits peaked at the target is below that of logits peaked elsewhere."""
    loss = HeatmapLoss(stride=2, sigma=2.0)
    y = torch.tensor([[[1.0, 10.5, 6.5, 1.0], [0.0, 0.0, 0.0, 0.0]]])  # point 2 unlabelled

    def peaked(slice_, row, col):
        logits = torch.zeros(1, 3, 2, 8, 8)
        logits[0, slice_, 0, row, col] = 8.0
        return logits

    right, near = loss(peaked(1, 3, 5), y), loss(peaked(1, 3, 6), y)
    wrong_slice, far = loss(peaked(2, 3, 5), y), loss(peaked(1, 0, 0), y)
    assert right < near < far
    assert near < wrong_slice
    # the unlabelled point does not count, whatever its logits
    other = peaked(1, 3, 5)
    other[0, :, 1] = torch.randn(3, 8, 8)
    assert torch.isclose(loss(other, y), right)


def test_training_finds_a_bright_spot():
    """Forty steps of Adam teach the net where a bright spot is, within a pixel."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = SliceHeatmapNet(1, 1, widths=(8, 16), stride=2, slice_context=False)
    loss = HeatmapLoss(stride=2, sigma=2.0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)

    def batch(n):
        images = torch.rand(n, 1, 1, 16, 16) * 0.2
        y = torch.zeros(n, 1, 4)
        for k in range(n):
            r, c = rng.integers(2, 14, size=2)
            images[k, 0, 0, r - 1 : r + 2, c - 1 : c + 2] = 1.0
            y[k, 0] = torch.tensor([0.0, c, r, 1.0])
        return images, torch.ones(n, 1, dtype=torch.bool), y

    for _ in range(40):
        images, mask, y = batch(8)
        optimizer.zero_grad()
        loss(net(images, mask), y).backward()
        optimizer.step()
    net.eval()
    images, mask, y = batch(8)
    with torch.no_grad():
        logits = net(images, mask)
    errors = [
        np.hypot(float(h["x"][0] - t[0, 1]), float(h["y"][0] - t[0, 2]))
        for h, t in ((decode_heatmaps(g, 2), t) for g, t in zip(logits, y))
    ]
    assert np.median(errors) < 0.5


def test_decode_finds_slice_position_and_confidence():
    logits = torch.full((4, 2, 8, 8), -20.0)
    logits[2, 0, 3, 5] = 5.0  # point 0: one sharp peak on slice 2
    logits[2, 0, 3, 6] = 5.0
    logits[:, 1] = 0.0  # point 1: flat over every slice
    out = decode_heatmaps(logits, stride=4, window=2, radius=1.5)
    assert out["slice"][0] == 2
    assert float(out["x"][0]) == pytest.approx(5.5 * 4 + 1.5)
    assert float(out["y"][0]) == pytest.approx(3 * 4 + 1.5)
    assert float(out["p_slice"][0]) == pytest.approx(1.0, abs=1e-6)
    assert float(out["p_plane"][0]) == pytest.approx(1.0, abs=1e-6)
    assert float(out["p_slice"][1]) == pytest.approx(0.25)
    assert float(out["p_plane"][1]) < 0.15
