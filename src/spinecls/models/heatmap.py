"""Heatmap regression over stacks of slices: a small encoder-decoder, its loss and decoding.

A stack of ``D`` slices (each with its neighbours as channels) goes through one 2-D
encoder-decoder shared over the slices. For every point the output is a logit map per
slice; a softmax over (slices x rows x columns) gives at once the slice (its marginal)
and the position in the slice (soft-argmax around the peak), as in the heatmap and
DSNT regressions of Nibali et al. (2018), "Numerical Coordinate Regression with
Convolutional Neural Networks". A light 1-D convolution across the slices' pooled
features adds a per-slice score, so a slice is judged against its neighbours.

Coordinates are continuous pixel indices of the network's input (a pixel's centre is
an integer); the output grid has one cell per ``stride`` input pixels.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["HeatmapLoss", "SliceHeatmapNet", "decode_heatmaps"]

# Padded slices of a batch get this logit: exp() of it is 0 and 0 * it stays finite.
_MASKED = -1.0e4


def _conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class SliceHeatmapNet(nn.Module):
    """U-Net-like heatmap network shared over the slices of a stack.

    Parameters
    ----------
    in_channels : int
        Channels of one slice (the slice and its neighbours).
    n_points : int
        Points located, one logit map each.
    widths : tuple of int, default=(16, 32, 64, 96)
        Channels of the encoder stages, at strides 2, 4, 8, ... (two convolutions each);
        the decoder climbs back (one convolution per stage, with the skip connection)
        to the output stride.
    stride : {2, 4}, default=2
        Input pixels per output cell.
    slice_context : bool, default=True
        Add a per-slice, per-point score computed by a 1-D convolution over the
        slices' pooled bottleneck features.

    Notes
    -----
    ``forward(images, slice_mask)`` takes ``images`` of shape ``(B, D, C, H, W)`` and a
    boolean ``slice_mask`` of shape ``(B, D)`` (False for padding) and returns logits of
    shape ``(B, D, n_points, H / stride, W / stride)``; padded slices get a large
    negative logit. Only real slices are computed.

    Examples
    --------
    >>> import torch
    >>> net = SliceHeatmapNet(3, 5)
    >>> net(torch.zeros(2, 4, 3, 32, 32), torch.ones(2, 4, dtype=torch.bool)).shape
    torch.Size([2, 4, 5, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        n_points: int,
        widths: tuple[int, ...] = (16, 32, 64, 96),
        stride: int = 2,
        slice_context: bool = True,
    ):
        super().__init__()
        if stride not in (2, 4):
            raise ValueError(f"stride must be 2 or 4, got {stride!r}")
        if len(widths) < stride:
            raise ValueError(f"stride {stride} needs at least {stride} widths, got {widths!r}")
        self.stride = stride
        self.encoder = nn.ModuleList(
            nn.Sequential(*_conv(c_in, c_out, 2), *_conv(c_out, c_out))
            for c_in, c_out in zip((in_channels, *widths[:-1]), widths)
        )
        top = stride.bit_length() - 2  # the encoder stage at the output stride
        self.decoder = nn.ModuleList(  # deepest first
            nn.Sequential(*_conv(widths[i + 1] + widths[i], widths[i]))
            for i in range(len(widths) - 2, top - 1, -1)
        )
        self.head = nn.Conv2d(widths[top], n_points, 1)
        self.context = (
            nn.ModuleList(
                [nn.Conv1d(widths[-1], 32, 3, padding=1), nn.Conv1d(32, n_points, 3, padding=1)]
            )
            if slice_context
            else None
        )

    def forward(self, images: torch.Tensor, slice_mask: torch.Tensor) -> torch.Tensor:
        batch, depth = images.shape[:2]
        x = images[slice_mask]
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        bottom = x
        for stage, i in zip(self.decoder, range(len(skips) - 2, -1, -1)):
            skip = skips[i]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = stage(torch.cat([x, skip], dim=1))
        maps = self.head(x)
        out = maps.new_full((batch, depth, *maps.shape[1:]), _MASKED)
        out[slice_mask] = maps
        if self.context is not None:
            pooled = bottom.new_zeros(batch, depth, bottom.shape[1])
            pooled[slice_mask] = bottom.mean(dim=(2, 3))
            # padding is zeroed after each layer, so a stack scores alike whatever its batch
            keep = slice_mask[:, None, :].to(pooled.dtype)
            hidden = F.relu(self.context[0](pooled.transpose(1, 2))) * keep
            score = (self.context[1](hidden) * keep).transpose(1, 2)
            out = out + score[..., None, None]
        return out


def _cell_centres(n: int, stride: int, device) -> torch.Tensor:
    """Input-pixel coordinate of each output cell's centre."""
    return torch.arange(n, device=device, dtype=torch.float32) * stride + (stride - 1) / 2


class HeatmapLoss(nn.Module):
    """Cross-entropy between the (slices x rows x columns) softmax and a Gaussian target.

    The target puts all its mass on the labelled slice, spread in-plane as a Gaussian
    of ``sigma`` input pixels around the labelled point: the loss is the slice's
    cross-entropy plus the in-plane one.

    Parameters
    ----------
    stride : int
        Input pixels per output cell (the network's ``stride``).
    sigma : float, default=2.0
        Spread of the target, in input pixels.

    Notes
    -----
    ``forward(logits, y)``: ``logits`` of shape ``(B, D, K, h, w)``; ``y`` of shape
    ``(B, K, 4)`` holding (slice index, x, y, weight) per point, weight 0 for points
    without a label. Returns the weighted mean over labelled points.
    """

    def __init__(self, stride: int, sigma: float = 2.0):
        super().__init__()
        self.stride = stride
        self.sigma = sigma

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        batch, depth, k, h, w = logits.shape
        weight = y[..., 3]
        log_p = logits.transpose(1, 2).reshape(batch, k, -1).log_softmax(-1)
        log_p = log_p.view(batch, k, depth, h, w)
        index = y[..., 0].long().clamp(0, depth - 1)
        on_slice = log_p.gather(2, index[..., None, None, None].expand(-1, -1, 1, h, w))[:, :, 0]
        rows = _cell_centres(h, self.stride, logits.device)
        cols = _cell_centres(w, self.stride, logits.device)
        d2 = (rows[:, None] - y[..., 2, None, None]) ** 2 + (cols - y[..., 1, None, None]) ** 2
        target = torch.softmax(-d2.view(batch, k, -1) / (2 * self.sigma**2), -1).view_as(d2)
        ce = -(target * on_slice).sum(dim=(-1, -2))
        return (ce * weight).sum() / weight.sum().clamp_min(1.0)


def decode_heatmaps(
    logits: torch.Tensor, stride: int, window: int = 2, radius: float = 2.0
) -> dict[str, torch.Tensor]:
    """Slice, position and confidences of each point from one stack's logits.

    Parameters
    ----------
    logits : Tensor of shape (D, K, h, w)
        One stack (padded slices carry a large negative logit).
    stride : int
        Input pixels per output cell.
    window : int, default=2
        Half-size (cells) of the window around the peak over which the soft-argmax is
        taken, so a second mode elsewhere does not pull the point.
    radius : float, default=2.0
        Radius (cells) around the point within which ``p_plane`` sums the in-plane
        probability.

    Returns
    -------
    dict of Tensors of shape (K,)
        ``slice`` (index of the most probable slice), ``x``, ``y`` (input pixels on that
        slice), ``p_slice`` (the slice's marginal probability) and ``p_plane`` (the
        probability mass within ``radius`` cells of the point on that slice).

    Examples
    --------
    >>> import torch
    >>> logits = torch.full((3, 1, 8, 8), -10.0)
    >>> logits[1, 0, 5, 2] = 10.0
    >>> out = decode_heatmaps(logits, stride=2)
    >>> int(out["slice"][0]), float(out["x"][0]), float(out["y"][0])
    (1, 4.5, 10.5)
    """
    depth, k, h, w = logits.shape
    flat = logits.transpose(0, 1).reshape(k, -1).float()
    marginal = flat.softmax(-1).view(k, depth, h * w).sum(-1)
    p_slice, best = marginal.max(-1)
    plane = logits[best, torch.arange(k)].float().reshape(k, -1).softmax(-1).view(k, h, w)
    peak = plane.view(k, -1).argmax(-1)
    peak_row, peak_col = peak // w, peak % w
    rows = torch.arange(h, device=logits.device, dtype=torch.float32)
    cols = torch.arange(w, device=logits.device, dtype=torch.float32)
    near = ((rows[:, None] - peak_row[:, None, None]).abs() <= window) & (
        (cols - peak_col[:, None, None]).abs() <= window
    )
    local = plane * near
    local = local / local.sum(dim=(1, 2), keepdim=True)
    row = (local * rows[:, None]).sum(dim=(1, 2))
    col = (local * cols).sum(dim=(1, 2))
    close = (rows[:, None] - row[:, None, None]) ** 2 + (cols - col[:, None, None]) ** 2
    p_plane = (plane * (close <= radius**2)).sum(dim=(1, 2))
    centre = (stride - 1) / 2
    return {
        "slice": best,
        "x": col * stride + centre,
        "y": row * stride + centre,
        "p_slice": p_slice,
        "p_plane": p_plane,
    }
