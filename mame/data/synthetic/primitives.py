"""Vectorised drawing primitives shared by the synthetic image families.

Images are float32 arrays in [0, 1] of shape (height, width, 3); masks and fields are (height, width).
Lengths are in pixels unless a name says otherwise; ``long_side`` fractions keep looks size-independent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
from PIL import Image

Rng = np.random.Generator
F32 = np.float32
_OBJECT_MASKS: ContextVar[list | None] = ContextVar("object_masks", default=None)


@contextmanager
def collecting_object_masks() -> Iterator[list]:
    """Collect the silhouettes the families place over a backdrop (``record_object``) while drawing one image."""
    sink: list = []
    token = _OBJECT_MASKS.set(sink)
    try:
        yield sink
    finally:
        _OBJECT_MASKS.reset(token)


def record_object(mask: np.ndarray) -> None:
    """Note an object's coverage (an (h, w) array in [0, 1]) for the mask of the image being drawn.
    Draws nothing and takes nothing from the random stream, so images are the same with or without it."""
    sink = _OBJECT_MASKS.get()
    if sink is not None:
        sink.append(np.asarray(mask, F32))


def coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) in units of the long side, so both span at most [0, 1]."""
    scale = F32(1.0 / max(h, w))
    y = (np.arange(h, dtype=F32)[:, None] + F32(0.5)) * scale
    x = (np.arange(w, dtype=F32)[None, :] + F32(0.5)) * scale
    return np.broadcast_to(y, (h, w)), np.broadcast_to(x, (h, w))


def normalise(a: np.ndarray) -> np.ndarray:
    """Rescale an array linearly to [0, 1] (a constant array becomes zeros)."""
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo if hi > lo else 1.0)).astype(F32)


def smooth_noise(rng: Rng, h: int, w: int, cells: float) -> np.ndarray:
    """Band-limited noise in [0, 1] with about ``cells`` features along the long side."""
    long = max(h, w)
    gh = max(2, int(round(2 * cells * h / long))) + 1
    gw = max(2, int(round(2 * cells * w / long))) + 1
    grid = rng.random((gh + 4, gw + 4), dtype=F32)
    for _ in range(2):  # a valid [1, 2, 1] / 4 smoothing along both axes rounds off the grid's squares
        grid = (grid[:-2] + 2 * grid[1:-1] + grid[2:]) * F32(0.25)
        grid = (grid[:, :-2] + 2 * grid[:, 1:-1] + grid[:, 2:]) * F32(0.25)
    return normalise(np.asarray(Image.fromarray(grid).resize((w, h), Image.BICUBIC)))


def fbm(rng: Rng, h: int, w: int, cells: float = 3.0, octaves: int = 3) -> np.ndarray:
    """Fractal sum of smooth noise octaves, rescaled to [0, 1]."""
    total = np.zeros((h, w), F32)
    for k in range(octaves):
        total += smooth_noise(rng, h, w, cells * 2**k) * F32(0.5**k)
    return normalise(total)


def _box(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a window of 2r+1 rows (edges repeated), via cumulative sums."""
    n = a.shape[0]
    padded = np.concatenate([np.repeat(a[:1], r + 1, axis=0), a, np.repeat(a[-1:], r, axis=0)])
    c = np.cumsum(padded, axis=0, dtype=F32)
    return (c[2 * r + 1: 2 * r + 1 + n] - c[:n]) * F32(1 / (2 * r + 1))


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Approximate Gaussian blur of the first two axes: a 3-tap kernel when small, else three box passes."""
    a = a.astype(F32)
    if sigma <= 0:
        return a
    if sigma < 1:
        k = F32(sigma * sigma / 2)
        for _ in range(2):  # rows, then columns (via the transpose)
            p = np.concatenate([a[:1], a, a[-1:]])
            a = (p[1:-1] * (1 - 2 * k) + (p[:-2] + p[2:]) * k).swapaxes(0, 1)
        return np.ascontiguousarray(a)
    r = max(1, int(round((np.sqrt(4 * sigma * sigma + 1) - 1) / 2)))
    for _ in range(2):
        a = _box(_box(_box(a, r), r), r).swapaxes(0, 1)
    return np.ascontiguousarray(a)


def jitter(rng: Rng, rgb: tuple[float, float, float], amount: float) -> np.ndarray:
    """A colour with independent uniform jitter per channel, clipped to [0, 1]."""
    return np.clip(np.asarray(rgb, F32) + rng.uniform(-amount, amount, 3).astype(F32), 0, 1)


def pick(rng: Rng, options: list) -> object:
    """One element of a list, chosen uniformly."""
    return options[int(rng.integers(len(options)))]


def fill(h: int, w: int, rgb: np.ndarray) -> np.ndarray:
    """A solid image of one colour."""
    return np.broadcast_to(np.asarray(rgb, F32), (h, w, 3)).copy()


def mix(base: np.ndarray, top: np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
    """Alpha-blend ``top`` over ``base``; a 2-D alpha is broadcast over channels."""
    if isinstance(alpha, np.ndarray) and alpha.ndim == 2:
        alpha = alpha[..., None]
    return base + (top - base) * alpha


def tone_map(t: np.ndarray, dark: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Map a [0, 1] lightness field onto a two-colour ramp."""
    return dark + (light - dark) * np.clip(t, 0, 1)[..., None]


def paper(rng: Rng, h: int, w: int, rgb: tuple[float, float, float], grain: float) -> np.ndarray:
    """Paper: a jittered tone with fibre grain and gentle blotches."""
    base = np.clip(jitter(rng, rgb, 0.012) * F32(rng.uniform(0.96, 1.03)), 0, 1)
    tex = (rng.random((h, w), dtype=F32) - 0.5) * grain + (smooth_noise(rng, h, w, 4) - 0.5) * grain
    return np.clip(fill(h, w, base) + tex[..., None], 0, 1)


def vignette(h: int, w: int, strength: float, power: float = 2.0) -> np.ndarray:
    """A multiplicative darkening field, 1 at the centre, ``1 - strength`` at the corners."""
    y, x = coords(h, w)
    cy, cx = h / max(h, w) / 2, w / max(h, w) / 2
    r = np.sqrt(((y - cy) / cy) ** 2 + ((x - cx) / cx) ** 2) / np.sqrt(2)
    return (1 - strength * r**power).astype(F32)


def segment_dist(y: np.ndarray, x: np.ndarray, p0: tuple, p1: tuple) -> np.ndarray:
    """Distance from every (y, x) to the segment p0-p1 (points given as (y, x))."""
    dy, dx = p1[0] - p0[0], p1[1] - p0[1]
    length2 = dy * dy + dx * dx + 1e-9
    t = np.clip(((y - p0[0]) * dy + (x - p0[1]) * dx) / length2, 0, 1)
    return np.hypot(y - (p0[0] + t * dy), x - (p0[1] + t * dx))


def stroke(canvas: np.ndarray, p0: tuple, p1: tuple, width: float, value, soft: float = 0.7) -> None:
    """Paint an anti-aliased round-capped stroke (pixel coords) onto ``canvas`` in place.

    ``value`` is a scalar (2-D canvas, drawn as max coverage) or an RGB colour (3-D canvas, painted over).
    """
    h, w = canvas.shape[:2]
    pad = width + 2 * soft + 1
    y0, y1 = int(max(0, min(p0[0], p1[0]) - pad)), int(min(h, max(p0[0], p1[0]) + pad + 1))
    x0, x1 = int(max(0, min(p0[1], p1[1]) - pad)), int(min(w, max(p0[1], p1[1]) + pad + 1))
    if y0 >= y1 or x0 >= x1:
        return
    yy = np.arange(y0, y1, dtype=F32)[:, None] + F32(0.5)
    xx = np.arange(x0, x1, dtype=F32)[None, :] + F32(0.5)
    d = segment_dist(yy, xx, p0, p1)
    cover = np.clip((width / 2 - d) / soft + 0.5, 0, 1).astype(F32)
    region = canvas[y0:y1, x0:x1]
    if canvas.ndim == 2:
        np.maximum(region, cover * F32(value), out=region)
    else:
        region += (np.asarray(value, F32) - region) * cover[..., None]


def hatch(
    y: np.ndarray, x: np.ndarray, angle: float, spacing: float, width: np.ndarray | float,
    wobble: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Coverage of parallel lines (pixel coords): ``spacing`` apart, ``width`` wide (may vary per pixel)."""
    d = (x * np.cos(angle) + y * np.sin(angle)) / spacing + wobble
    dist = np.abs(d - np.round(d)) * spacing
    return np.clip(np.asarray(width, F32) / 2 - dist + 0.5, 0, 1).astype(F32)


def pixel_coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) in pixels."""
    y = np.arange(h, dtype=F32)[:, None] + F32(0.5)
    x = np.arange(w, dtype=F32)[None, :] + F32(0.5)
    return np.broadcast_to(y, (h, w)), np.broadcast_to(x, (h, w))


def relief_light(height: np.ndarray, angle: float, strength: float) -> np.ndarray:
    """Lambert-like shading of a height field lit from ``angle``; about 1 on flat ground."""
    gy, gx = np.gradient(height.astype(F32))
    return (1 + strength * (gx * np.cos(angle) + gy * np.sin(angle))).astype(F32)


def finish(rng: Rng, img: np.ndarray) -> np.ndarray:
    """Camera-like finishing: exposure, contrast and colour-cast jitter plus sensor noise; returns uint8."""
    gain = rng.uniform(0.97, 1.03, 3).astype(F32) * F32(rng.uniform(0.9, 1.1))
    contrast = F32(rng.uniform(0.88, 1.12))
    img = (img - 0.5) * contrast + 0.5
    img = img * gain + F32(rng.uniform(-0.04, 0.04))
    img = img + rng.standard_normal(img.shape, dtype=F32) * F32(rng.uniform(0.004, 0.02))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
