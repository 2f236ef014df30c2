"""Series folders -> ordered slices at a working size, and crops around points.

The data preparation of :class:`spinecls.LevelLocalizer`: a series is read once (its
geometry by :mod:`spinecls.geometry`, its pixels by :mod:`spinecls.dicom`), its
slices ordered along their normal and normalised together, then

- shrunk whole to a square working size, the aspect ratio kept (letterbox), for the
  network that finds the slice and a first position;
- cropped around a point at a finer scale, for the network that refines it.

Both keep the exact affine map back to the original pixels. Coordinates are
continuous pixel indices (a pixel's centre is an integer), ``x`` the column.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .._utils.validation import listing
from ..datasets import RSNADataWarning
from ..dicom import UnreadableFileWarning, UnreadableSeriesError, read_slice
from ..geometry import SeriesGeometry, SliceGeometry

__all__ = [
    "StackDataset",
    "Volume",
    "collate_stacks",
    "crop",
    "read_volume",
    "to_working",
]

# Intensities are scaled between these percentiles of the whole series, so the slices
# of a series keep their relative brightness (the canal's fluid fades off-centre).
_PERCENTILES = (0.5, 99.5)
_SAMPLE_PIXELS = 200_000
# Training augmentation: rotation (degrees), scaling and shift (fraction of the size).
# A shift of +-20 % with scaling of +-15 % trained worse in 10 epochs (more levels named
# one disc off), so the ranges stay narrow.
_ROTATE, _SCALE, _SHIFT = 10.0, 0.1, 0.06
# Real series come in several contrasts (T1: discs and fluid dark; T2, STIR: bright) and
# fields of view that end anywhere below the sacrum or above the thoracolumbar junction:
# training inverts a stack's contrast with this probability (the background kept dark)
# and cuts its field of view above the highest or below the lowest point with this one.
_INVERT = 0.25
_BACKGROUND = 0.05  # intensities below this stay dark when the contrast is inverted


@dataclass
class Volume:
    """A series' slices in order, with their pixels scaled to about [0, 1].

    Attributes
    ----------
    images : list of ndarray
        One float32 image per slice, in original pixels.
    instance_numbers : ndarray of int
    paths : list of str
        The slices' files.
    stack : ndarray of int
        The orientation stack of each slice (slices of one stack are consecutive and
        ordered along their normal, which points to +x, +y or +z whichever it is
        closest to).
    slices : list of SliceGeometry or None
        The slices' geometry; None for a series whose headers lack it.
    geometry : SeriesGeometry
        The whole series, for projecting points onto it.
    spacing : ndarray of float
        Each slice's pixel size in mm (the mean of its row and column spacing); NaN for
        a series whose headers lack it.
    skipped : tuple of (str, Exception)
        The files of the series that could not be read, with why (left out of all the
        above).
    """

    images: list[np.ndarray]
    instance_numbers: np.ndarray
    paths: list[str]
    stack: np.ndarray
    slices: list[SliceGeometry] | None
    geometry: SeriesGeometry
    spacing: np.ndarray
    skipped: tuple = ()

    def __len__(self) -> int:
        return len(self.images)

    def neighbours(self, n: int) -> np.ndarray:
        """Indices ``(len, 2n + 1)`` of each slice's neighbours in its stack (ends repeated)."""
        index = np.arange(len(self))
        out = np.empty((len(self), 2 * n + 1), dtype=np.int64)
        for stack in np.unique(self.stack):
            members = index[self.stack == stack]
            local = np.arange(len(members))
            for k, offset in enumerate(range(-n, n + 1)):
                out[members, k] = members[np.clip(local + offset, 0, len(members) - 1)]
        return out

    def to_patient(self, index: int, x: float, y: float) -> np.ndarray | None:
        """Patient millimetres of a pixel of slice ``index``; None without geometry."""
        if self.slices is None:
            return None
        return self.slices[index].pixel_to_patient(x, y)


def _oriented(stack) -> list[SliceGeometry]:
    slices = list(stack.slices)
    return slices if stack.normal[np.argmax(np.abs(stack.normal))] > 0 else slices[::-1]


def read_volume(
    series_dir: str | os.PathLike, largest_stack_only: bool = False, skip_unreadable: bool = True
) -> Volume:
    """Read a series folder of ``*.dcm`` files.

    Parameters
    ----------
    series_dir : str or path-like
    largest_stack_only : bool, default=False
        Keep only the orientation with the most slices (a sagittal series with a
        stray localizer slice).
    skip_unreadable : bool, default=True
        Leave out a file that cannot be read (not DICOM, truncated, degenerate geometry,
        undecodable, colour or multi-frame pixels...), with one
        :class:`~spinecls.dicom.UnreadableFileWarning` naming it and the cause, and
        read the series from its other files (``Volume.skipped`` lists them). False:
        raise the first such error.

    Returns
    -------
    Volume
        Slices are numbered by their file names (``{instance_number}.dcm``, the
        competition's layout, which the coordinates CSVs follow) when every file is
        so named; an InstanceNumber tag that disagrees is warned about
        (:class:`~spinecls.datasets.RSNADataWarning`). Otherwise by the tags.

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing folder, one without ``.dcm`` files, or an unreadable file (the
        message names it).
    spinecls.dicom.UnreadableSeriesError
        A ValueError: with ``skip_unreadable``, when no file can be read.
    """
    skipped: dict[str, Exception] = {}
    decoded: dict = {}
    files = None
    while True:
        try:
            if files is None:
                geometry = SeriesGeometry.from_directory(
                    series_dir, skip_unreadable=skip_unreadable
                )
            else:
                geometry = SeriesGeometry.from_files(
                    files, name=os.fspath(series_dir), skip_unreadable=True
                )
        except ValueError as exc:
            if not skip_unreadable:
                raise
            _warn_skipped(skipped)
            raise UnreadableSeriesError(
                f"{series_dir}: no slice of the series can be read ({exc})", series_dir
            ) from exc
        skipped.update(geometry.skipped)
        slices, paths, numbers, stack_of = _slice_order(geometry, largest_stack_only)
        for path in (p for p in paths if p not in decoded):
            try:
                decoded[path] = read_slice(path)
            except (OSError, ValueError) as exc:
                if not skip_unreadable:
                    raise
                skipped[path] = exc
        if all(p in decoded for p in paths):
            break
        # read the geometry again without the files whose pixels failed
        files = [p for p in geometry.sources if p not in skipped]
        if not files:
            _warn_skipped(skipped)
            raise UnreadableSeriesError(
                f"{series_dir}: no slice of the series can be read", series_dir
            )
    _warn_skipped(skipped)
    numbers = _file_numbers(paths, numbers, series_dir)
    images = [decoded[path].image(normalize=None) for path in paths]
    pool = np.concatenate([im.ravel() for im in images])
    if pool.size > _SAMPLE_PIXELS:
        pool = pool[:: pool.size // _SAMPLE_PIXELS]
    low, high = np.percentile(pool, _PERCENTILES)
    scale = np.float32(1.0 / (high - low)) if high > low else np.float32(0.0)
    images = [np.clip((im - np.float32(low)) * scale, 0.0, 1.0) for im in images]
    skipped_files = tuple(sorted(skipped.items()))
    spacing = np.array(
        [np.mean(s.pixel_spacing) for s in slices] if slices is not None else [np.nan] * len(paths)
    )
    return Volume(images, numbers, paths, stack_of, slices, geometry, spacing, skipped_files)


def _slice_order(geometry: SeriesGeometry, largest_stack_only: bool):
    """The slices (None without geometry), their files, instance numbers and stacks."""
    if geometry.has_geometry:
        stacks = sorted(geometry.stacks, key=len, reverse=True)
        stacks = stacks[:1] if largest_stack_only else list(geometry.stacks)
        slices = [s for stack in stacks for s in _oriented(stack)]
        stack_of = np.concatenate([np.full(len(s), k) for k, s in enumerate(stacks)])
        paths = [s.source for s in slices]
        numbers = np.array([s.instance_number for s in slices], dtype=np.int64)
        return slices, paths, numbers, stack_of
    paths = list(geometry.sources)
    numbers = np.asarray(geometry.instance_numbers, dtype=np.int64)
    return None, paths, numbers, np.zeros(len(paths), dtype=np.int64)


def _warn_skipped(skipped: dict[str, Exception]) -> None:
    for path, error in sorted(skipped.items()):
        warnings.warn(UnreadableFileWarning.skipping(path, error), stacklevel=3)


def _file_numbers(paths: list[str], tags: np.ndarray, series_dir) -> np.ndarray:
    """The slices' numbers from their file names ``{n}.dcm`` when every file is so named
    (warning when a tag disagrees), else their InstanceNumber tags."""
    stems = [Path(p).stem for p in paths]
    if not all(re.fullmatch("[0-9]+", stem) for stem in stems):
        return tags
    numbers = np.array([int(stem) for stem in stems], dtype=np.int64)
    differ = np.flatnonzero(numbers != tags)
    if differ.size:
        examples = listing(f"{Path(paths[k]).name} holds {tags[k]}" for k in differ)
        warnings.warn(
            f"series {series_dir}: the InstanceNumber of {differ.size} of {len(paths)} files "
            f"differs from the number in its file name ({examples}); the slices are "
            "numbered by their file names, as the competition's coordinates are",
            RSNADataWarning,
            stacklevel=3,
        )
    return numbers


def to_working(images: list[np.ndarray], size: int, scales=None) -> tuple[np.ndarray, np.ndarray]:
    """Resample each image by its scale into a ``size`` x ``size`` square, centred.

    Parameters
    ----------
    images : list of ndarray
    size : int
    scales : sequence of float, optional
        Working pixels per original pixel, per image (an image that would not fit is
        shrunk to fit); default: each image shrunk to fit, aspect ratio kept.

    Returns
    -------
    stack : ndarray of shape (n, size, size), float32
    transforms : ndarray of shape (n, 4)
        ``(sx, sy, px, py)`` per image: working ``u = sx * (x + 0.5) - 0.5 + px`` and
        ``v = sy * (y + 0.5) - 0.5 + py`` (see :func:`to_original`).
    """
    stack = np.zeros((len(images), size, size), np.float32)
    transforms = np.zeros((len(images), 4))
    for k, image in enumerate(images):
        rows, cols = image.shape
        ratio = size / max(rows, cols)
        if scales is not None:
            ratio = min(ratio, float(scales[k]))
        w, h = max(1, round(cols * ratio)), max(1, round(rows * ratio))
        px, py = (size - w) // 2, (size - h) // 2
        interpolation = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
        stack[k, py : py + h, px : px + w] = cv2.resize(image, (w, h), interpolation=interpolation)
        transforms[k] = (w / cols, h / rows, px, py)
    return stack, transforms


def to_original(transform: np.ndarray, u, v) -> tuple[np.ndarray, np.ndarray]:
    """Working coordinates back to original pixels (the inverse of :func:`to_working`)."""
    sx, sy, px, py = transform
    return (np.asarray(u) - px + 0.5) / sx - 0.5, (np.asarray(v) - py + 0.5) / sy - 0.5


def to_working_xy(transform: np.ndarray, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Original pixels to working coordinates (see :func:`to_working`)."""
    sx, sy, px, py = transform
    return sx * (np.asarray(x) + 0.5) - 0.5 + px, sy * (np.asarray(y) + 0.5) - 0.5 + py


def crop(images: list[np.ndarray], x: float, y: float, scale: float, size: int) -> np.ndarray:
    """Square crops of the same window of several images, resampled by ``scale``.

    The window is centred on original pixel ``(x, y)``; crop pixel ``(u, v)`` shows
    original ``x + (u - c) / scale`` with ``c = (size - 1) / 2`` (likewise for ``v``).
    Outside the image is 0. A shrinking ``scale`` is preceded by an anti-alias blur.

    Returns
    -------
    ndarray of shape (len(images), size, size), float32
    """
    c = (size - 1) / 2
    matrix = np.array([[scale, 0.0, c - scale * x], [0.0, scale, c - scale * y]])
    out = np.empty((len(images), size, size), np.float32)
    for k, image in enumerate(images):
        if scale < 0.8:
            image = cv2.GaussianBlur(image, (0, 0), 0.5 / scale)
        out[k] = cv2.warpAffine(
            image,
            matrix,
            (size, size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
    return out


class StackDataset(Dataset):
    """Stacks of slices (each with its neighbours as channels) and their point targets.

    Parameters
    ----------
    samples : list of (images, targets)
        ``images``: float32 array ``(D, C, S, S)``; ``targets``: float32 array
        ``(K, 4)`` of (slice, x, y, weight) in the stack's pixels.
    augment : bool
        Random rotation (+-10 degrees), scaling (+-10 %), shift (+-6 % of the size) of
        the whole stack, a random gamma and contrast, an inverted contrast (a quarter of
        the stacks) and a field of view cut short above or below the points (three in
        ten). A point moved out of the image loses its weight.
    seed : int or None
        Seeds the augmentation.
    window : int, optional
        Return a random ``window`` x ``window`` part of each (larger) stack, so the
        point is seen anywhere within it (a point left outside loses its weight).
    depth : int, optional
        Return a random run of at most ``depth`` consecutive slices of each deeper
        stack, holding every labelled point's slice (all of them if they span more):
        the slices far from the points cost training time and teach little.
    """

    def __init__(
        self,
        samples,
        augment: bool = False,
        seed: int | None = None,
        window: int | None = None,
        depth: int | None = None,
    ):
        self.samples = samples
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self.window = window
        self.depth = depth

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        images, targets = self.samples[i]
        targets = np.array(targets, dtype=np.float32)
        if self.depth is not None and len(images) > self.depth:
            start, stop = _slice_run(len(images), targets, self.depth, self.rng)
            images = images[start:stop]
            targets[:, 0] -= start
        images = torch.from_numpy(np.asarray(images, dtype=np.float32))
        targets = torch.from_numpy(targets)
        if self.augment:
            images, targets = self._augment(images, targets)
        if self.window is not None:
            h, w = images.shape[-2:]
            top = int(self.rng.integers(0, h - self.window + 1))
            left = int(self.rng.integers(0, w - self.window + 1))
            images = images[..., top : top + self.window, left : left + self.window]
            targets = targets.clone()
            targets[:, 1] -= left
            targets[:, 2] -= top
            outside = (targets[:, 1:3] < 0).any(1) | (targets[:, 1:3] > self.window - 1).any(1)
            targets[outside, 3] = 0.0
        return images, targets

    def _augment(self, images: torch.Tensor, targets: torch.Tensor):
        rng = self.rng
        depth, channels, h, w = images.shape
        angle = np.radians(rng.uniform(-_ROTATE, _ROTATE))
        zoom = rng.uniform(1 - _SCALE, 1 + _SCALE)
        shift = rng.uniform(-_SHIFT, _SHIFT, size=2) * np.array([w, h])
        # forward map about the image centre, in pixels: p' = A (p - c) + c + shift
        a = zoom * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        centre = np.array([(w - 1) / 2, (h - 1) / 2])
        inverse = np.linalg.inv(a)
        # grid_sample samples the source at theta @ (normalised output coordinates)
        norm = np.diag([2 / w, 2 / h])
        theta = np.zeros((2, 3))
        theta[:, :2] = norm @ inverse @ np.linalg.inv(norm)
        theta[:, 2] = norm @ (-inverse @ shift)
        grid = torch.nn.functional.affine_grid(
            torch.tensor(theta, dtype=torch.float32)[None], [1, 1, h, w], align_corners=False
        )
        flat = images.reshape(1, depth * channels, h, w)
        images = torch.nn.functional.grid_sample(flat, grid, align_corners=False).view_as(images)
        xy = targets[:, 1:3].numpy().astype(np.float64)
        moved = (xy - centre) @ a.T + centre + shift
        targets = targets.clone()
        targets[:, 1:3] = torch.from_numpy(moved.astype(np.float32))
        outside = (moved < 0).any(axis=1) | (moved > [w - 1, h - 1]).any(axis=1)
        targets[torch.from_numpy(outside), 3] = 0.0
        gamma = float(np.exp(rng.uniform(-0.3, 0.3)))
        gain = float(rng.uniform(0.85, 1.15))
        images = (images.clamp_min(0) ** gamma) * gain
        if rng.random() < _INVERT:
            images = (1 - images.clamp(0, 1)) * (images / _BACKGROUND).clamp(0, 1)
        return images, targets


def _slice_run(n: int, targets: np.ndarray, depth: int, rng) -> tuple[int, int]:
    """A random run of ``depth`` of ``n`` slices holding every labelled target's slice
    (exactly their span when it is longer)."""
    labelled = targets[targets[:, 3] > 0, 0].astype(int)
    low, high = (int(labelled.min()), int(labelled.max())) if labelled.size else (0, 0)
    if high - low + 1 >= depth:
        return low, high + 1
    start = int(rng.integers(max(0, high - depth + 1), min(low, n - depth) + 1))
    return start, start + depth


def collate_stacks(batch):
    """Pad stacks of different depths; skorch's ``X`` is a dict of images and slice mask."""
    depth = max(images.shape[0] for images, _ in batch)
    first = batch[0][0]
    images = first.new_zeros((len(batch), depth, *first.shape[1:]))
    mask = torch.zeros((len(batch), depth), dtype=torch.bool)
    for k, (stack, _) in enumerate(batch):
        images[k, : len(stack)] = stack
        mask[k, : len(stack)] = True
    targets = torch.stack([t for _, t in batch])
    return {"images": images, "slice_mask": mask}, targets
