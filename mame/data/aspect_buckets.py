"""Variable shape: each image keeps its aspect ratio at a pixel budget, and batches are grouped by aspect ratio
into a small fixed set of padded shapes ("buckets"), so that a model traces (and, under XLA, compiles) once per
bucket rather than once per batch shape.

The paper's R65k-VS (HPAI-BSC/MAMe-baselines) resizes each image to about 65,536 pixels keeping its aspect
ratio and zero-pads every batch, centred, to its largest image: as many batch shapes as batches. Here the
aspect-ratio axis is cut into ``len(RATIOS)`` buckets a factor ``STEP`` (2^(1/3)) apart, from 1:3.2 to 3.2:1.
Each image is resized as the paper resizes it (``resized``: its ratio kept, about the budget's pixels; a
3144 x 3840 image becomes 232 x 283 at R65k) and goes to the bucket of the nearest ratio, whose shape holds
every image of its ratio range: about sqrt(STEP) = 1.12 times the budget, so 11-12 % of a padded image is pad
(the paper's batches, padded to their tallest and their widest image, are about half pad at MAMe's mix of
ratios). Images beyond the outer buckets (0.8 % of MAMe) are shrunk to fit them, ratio kept. Placement: top-left,
with the valid (unpadded) size passed beside the batch for pooling over the valid region only
(``mame.models.valid_pooling``), or, like the paper, centred (``placement="centre"``). The pad is mid-grey (the
ImageNet mean), which every backbone's preprocessing maps to about zero.

Pure numpy: the data pipeline, the models and the deck read these numbers alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

R65K = 65_536                      # the paper's pixel budget (a 256 x 256 image's pixels)
STEP = 2 ** (1 / 3)                # ratio between neighbouring buckets
RATIOS = tuple(STEP ** k for k in range(-5, 6))  # width / height of each bucket's centre: 0.31 ... 3.17
PAD_RGB = (124, 117, 104)          # the ImageNet mean, rounded: mid-grey
PLACEMENTS = ("corner", "centre")  # corner: top-left + valid-region pooling; centre: the paper's (pooling over all)
PADDED_PIXELS = 2 ** (1 / 6)       # a padded shape's pixels over the budget: sqrt(STEP), about 1.12 (estimates)
MIN_SIDE = 32                      # no padded side shorter: VGG16's five 2x2 'valid' poolings need 32 px for one cell


@dataclass(frozen=True)
class Buckets:
    """The padded shapes of a pixel budget, and where each image goes."""

    target_pixels: int

    def __post_init__(self) -> None:
        if int(self.target_pixels) < 64:
            raise ValueError(f"target_pixels must be at least 64, not {self.target_pixels}")

    @cached_property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """(height, width) of each bucket, in ``RATIOS`` order: the tallest and the widest image of its ratio range
        at the budget, and at least ``MIN_SIDE`` (small budgets only: 32 px is a 1:3.2 image's short side at
        about 3,000 pixels)."""
        half = math.sqrt(STEP)
        return tuple((max(MIN_SIDE, math.ceil(math.sqrt(self.target_pixels * half / r) - 1e-9)),
                      max(MIN_SIDE, math.ceil(math.sqrt(self.target_pixels * r * half) - 1e-9))) for r in RATIOS)

    def bucket(self, width: np.ndarray, height: np.ndarray) -> np.ndarray:
        """The bucket index of images of these sizes (any units: only the ratio counts)."""
        ratio = np.asarray(width, dtype=np.float64) / np.asarray(height, dtype=np.float64)
        steps = np.rint(np.log(ratio) / math.log(STEP)).astype(np.int64)
        return np.clip(steps, -(len(RATIOS) // 2), len(RATIOS) // 2) + len(RATIOS) // 2

    def resized(self, width: np.ndarray, height: np.ndarray) -> np.ndarray:
        """(height, width) in pixels of each image resized to about ``target_pixels`` with its aspect ratio (as
        the paper does), shrunk to fit its bucket only beyond the outer
        buckets; int64 ``(n, 2)``."""
        w, h = np.asarray(width, dtype=np.float64), np.asarray(height, dtype=np.float64)
        size = np.stack([h, w], axis=-1)
        paper = np.maximum(np.rint(size * np.sqrt(self.target_pixels / (w * h))[..., None]), 1)
        box = np.array(self.shapes, dtype=np.float64)[self.bucket(w, h)]
        shrink = (box / paper).min(axis=-1, keepdims=True)
        fitted = np.where(shrink < 1, np.floor(size * shrink * np.sqrt(self.target_pixels / (w * h))[..., None]), paper)
        return np.clip(fitted, 1, box).astype(np.int64)

    def padded_fraction(self, width: np.ndarray, height: np.ndarray) -> np.ndarray:
        """The share of each image's padded shape that is pad."""
        size = self.resized(width, height)
        box = np.array(self.shapes)[self.bucket(width, height)]
        return 1.0 - size.prod(axis=-1) / box.prod(axis=-1)


def batch_plan(buckets: np.ndarray, batch_size: int, *, shuffle: bool, seed: int, epoch: int) -> list[np.ndarray]:
    """One epoch's batches as arrays of record indices, each batch from one bucket.

    Without ``shuffle``: buckets in index order, each bucket's records in record order (every image once).
    With it: records shuffled by (``seed``, ``epoch``), split into batches per bucket, then the batches shuffled
    by the same stream, so every epoch mixes buckets differently and the same seed gives the same batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    buckets = np.asarray(buckets)
    rng = np.random.default_rng([seed, epoch]) if shuffle else None
    order = rng.permutation(len(buckets)) if rng is not None else np.arange(len(buckets))
    batches = []
    for b in np.unique(buckets):
        members = order[buckets[order] == b]
        batches += [members[i:i + batch_size] for i in range(0, len(members), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
