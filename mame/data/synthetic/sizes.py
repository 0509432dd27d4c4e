"""Each synthetic image's width and height: the shape of a real MAMe image of its class.

A row of its class in the official ``MAMe_dataset.csv`` (``mame.data.official``) is drawn at random; its aspect
ratio is kept and its size scaled to the profile's pixel budget (``size``² pixels: the area of the square a
fixed-shape run resizes to). So aspect ratio carries what it carries in MAMe (albumen photographs stand upright,
hand-coloured etchings lie wide) and the images' pixel counts stay equal, as a variable-shape run at a pixel
budget sees them. Ratios beyond 1:4 (0.8 % of the real images, up to 1:15) are clipped to it, and no side is
shorter than ``MIN_SIDE``: the families need a few pixels to draw in.
"""

from __future__ import annotations

import functools

import numpy as np

from mame.data import official

MAX_ASPECT = 4.0
MIN_SIDE = 8


@functools.lru_cache(maxsize=None)
def real_aspect_ratios(name: str) -> np.ndarray:
    """The width/height ratios of every real image of class ``name``, in the CSV's order (KeyError if unknown)."""
    return np.array([w / h for w, h in official.image_shapes()[name]])


def image_size(rng: np.random.Generator, name: str, size: int) -> tuple[int, int]:
    """(width, height) of a synthetic image of class ``name``: a real image's aspect ratio (clipped to
    1:``MAX_ASPECT``) at about ``size``² pixels."""
    ratios = real_aspect_ratios(name)
    ratio = float(np.clip(ratios[rng.integers(len(ratios))], 1 / MAX_ASPECT, MAX_ASPECT))
    width, height = size * np.sqrt(ratio), size / np.sqrt(ratio)
    return max(MIN_SIDE, int(round(width))), max(MIN_SIDE, int(round(height)))
