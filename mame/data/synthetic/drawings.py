"""Drawing, photograph and painting families: graphite, pen and brown ink, albumen print, oil on canvas."""

from __future__ import annotations

import numpy as np

from mame.data.synthetic.primitives import (
    F32,
    Rng,
    blur,
    coords,
    fbm,
    fill,
    jitter,
    mix,
    paper,
    pick,
    pixel_coords,
    smooth_noise,
    stroke,
    tone_map,
    vignette,
)
from mame.data.synthetic.prints import scene


def _sample_points(rng: Rng, weight: np.ndarray, n: int) -> np.ndarray:
    """``n`` pixel positions (y, x) drawn with probability proportional to ``weight``."""
    h, w = weight.shape
    p = weight.ravel().astype(np.float64) + 1e-6
    idx = rng.choice(h * w, size=n, p=p / p.sum())
    return np.stack([idx // w, idx % w], axis=1).astype(F32) + rng.random((n, 2), dtype=F32)


def _sketch_strokes(rng: Rng, dark: np.ndarray, n: int, length: tuple, width: tuple, angle_spread: float,
                    soft: float = 0.7) -> np.ndarray:
    """Coverage of ``n`` short strokes gathered where the subject is dark, mostly along one direction."""
    h, w = dark.shape
    size = max(h, w)
    cover = np.zeros((h, w), F32)
    flow = rng.uniform(0, np.pi) + (smooth_noise(rng, h, w, 3) - 0.5) * 2 * angle_spread
    for (py, px) in _sample_points(rng, dark**2, n):
        a = flow[int(py), int(px)] + rng.normal(0, 0.1)
        half = rng.uniform(*length) * size / 2
        dy, dx = np.sin(a) * half, np.cos(a) * half
        stroke(cover, (py - dy, px - dx), (py + dy, px + dx), rng.uniform(*width), rng.uniform(0.35, 1.0), soft)
    return cover


def graphite(rng: Rng, h: int, w: int) -> np.ndarray:
    """Graphite: light, soft grey strokes and rubbed shading catching the paper's tooth, lots of white."""
    dark = scene(rng, h, w) ** rng.uniform(1.2, 2.0)
    n = int(rng.integers(30, 90) * max(h, w) / 64)
    cover = _sketch_strokes(rng, dark, n, (0.05, 0.2), (0.6, 1.4), rng.uniform(0.2, 1.2), soft=1.1)
    tooth = rng.random((h, w), dtype=F32)
    rubbed = blur(dark, max(h, w) * 0.02) * rng.uniform(0.25, 0.6) * (0.5 + 0.5 * tooth)
    cover = np.clip(cover * rng.uniform(0.45, 0.75) + rubbed, 0, 1)
    pencil = jitter(rng, (0.32, 0.33, 0.36), 0.04)
    return mix(paper(rng, h, w, (0.95, 0.94, 0.91), 0.03), pencil, cover)


def pen_and_brown_ink(rng: Rng, h: int, w: int) -> np.ndarray:
    """Pen and brown ink: brown contour lines and loose hatching, with a bistre wash, on cream paper."""
    dark = scene(rng, h, w)
    soft = blur(dark, max(h, w) * 0.015)
    grad = np.maximum(np.hypot(*np.gradient(soft)), 0.3 / max(h, w))
    cover = np.zeros((h, w), F32)
    for level in rng.uniform(0.25, 0.75, int(rng.integers(2, 5))):
        dist = np.abs(soft - level) / grad
        cover = np.maximum(cover, np.clip(rng.uniform(0.5, 0.9) - dist + 0.5, 0, 1))
    n = int(rng.integers(20, 60) * max(h, w) / 64)
    cover = np.maximum(cover, _sketch_strokes(rng, dark, n, (0.04, 0.1), (0.8, 1.4), 0.15))
    ink = jitter(rng, (0.36, 0.22, 0.1), 0.06)
    img = paper(rng, h, w, (0.91, 0.85, 0.71), 0.05)
    wash = blur((dark > rng.uniform(0.45, 0.7)).astype(F32), max(h, w) * 0.02) * rng.uniform(0.15, 0.45)
    img = mix(img, jitter(rng, (0.62, 0.47, 0.3), 0.05), wash)
    return mix(img, ink, cover * rng.uniform(0.75, 1.0))


def albumen_photograph(rng: Rng, h: int, w: int) -> np.ndarray:
    """Albumen print: a continuous-tone sepia photograph, faded highlights, vignette, often on a card mount."""
    dark = scene(rng, h, w) + (fbm(rng, h, w, 12, 2) - 0.5) * rng.uniform(0.1, 0.25)
    y, x = coords(h, w)
    for _ in range(int(rng.integers(0, 4))):
        top, left, right = rng.uniform(0.15, 0.6), rng.uniform(0, 0.8), rng.uniform(0.1, 0.4)
        dark = np.where((y > top) & (x > left) & (x < left + right), rng.uniform(0.2, 0.8), dark)
    light = 1 - blur(np.clip(dark, 0, 1), max(h, w) * rng.uniform(0.003, 0.008))
    light = np.clip(light * rng.uniform(0.75, 0.95) + rng.uniform(0.03, 0.15), 0, 1)
    light = light * vignette(h, w, rng.uniform(0.15, 0.55), rng.uniform(1.5, 3.0))
    photo = tone_map(light**rng.uniform(0.8, 1.3), jitter(rng, (0.2, 0.11, 0.05), 0.04),
                     jitter(rng, (0.93, 0.83, 0.6), 0.04))
    photo += (rng.random((h, w, 1), dtype=F32) - 0.5) * 0.03
    if rng.random() < 0.5:
        return photo
    hu, wu = h / max(h, w), w / max(h, w)
    m = rng.uniform(0.06, 0.14)
    if rng.random() < 0.5:
        window = ((y - hu / 2) / (hu / 2 - m)) ** 2 + ((x - wu / 2) / (wu / 2 - m)) ** 2 < 1
    else:
        window = (y > m) & (y < hu - m * 1.6) & (x > m) & (x < wu - m)
    card = paper(rng, h, w, pick(rng, [(0.86, 0.8, 0.68), (0.78, 0.72, 0.62), (0.3, 0.25, 0.22)]), 0.04)
    return mix(card, photo, blur(window.astype(F32), 0.6))


def _oil_palette(rng: Rng) -> list:
    """Colours for one painting: an earthy, landscape or portrait family, jittered."""
    families = [
        [(0.35, 0.22, 0.12), (0.6, 0.45, 0.25), (0.15, 0.1, 0.07), (0.75, 0.6, 0.4), (0.5, 0.15, 0.1)],
        [(0.45, 0.6, 0.8), (0.3, 0.45, 0.25), (0.55, 0.55, 0.3), (0.85, 0.8, 0.65), (0.2, 0.3, 0.2)],
        [(0.08, 0.07, 0.06), (0.8, 0.6, 0.45), (0.55, 0.1, 0.1), (0.2, 0.2, 0.35), (0.9, 0.85, 0.75)],
    ]
    return [jitter(rng, c, 0.1) for c in pick(rng, families)]


def oil_on_canvas(rng: Rng, h: int, w: int) -> np.ndarray:
    """Oil on canvas: rich colour regions laid in with visible brush strokes, canvas weave, old varnish."""
    palette = _oil_palette(rng)
    weights = np.stack([smooth_noise(rng, h, w, 3) ** 3 for _ in palette], axis=-1) + 1e-3
    field = (weights / weights.sum(-1, keepdims=True)) @ np.stack(palette)
    field = mix(field, fill(h, w, palette[0] * 0.6), scene(rng, h, w) * rng.uniform(0.3, 0.7))
    img = blur(field, 1.0)
    size = max(h, w)
    bl, bw = rng.uniform(0.04, 0.08) * size, max(1.5, rng.uniform(0.02, 0.035) * size)
    flow = smooth_noise(rng, h, w, 2) * np.pi * rng.uniform(0.5, 2)
    n = int(h * w / (bl * bw) * rng.uniform(0.8, 1.5))
    for py, px in zip(rng.uniform(0, h, n), rng.uniform(0, w, n)):
        iy, ix = int(py), int(px)
        a, half = flow[iy, ix], bl / 2
        colour = np.clip(field[iy, ix] + rng.normal(0, 0.05, 3), 0, 1)
        stroke(img, (py - np.sin(a) * half, px - np.cos(a) * half), (py + np.sin(a) * half, px + np.cos(a) * half),
               bw, colour, soft=0.9)
    y, x = pixel_coords(h, w)
    period = rng.uniform(1.8, 2.6)
    weave = np.sin(2 * np.pi * x / period) * np.sin(2 * np.pi * y / period)
    img = img * (1 + rng.uniform(0.04, 0.09) * weave)[..., None]
    varnish = jitter(rng, (1.0, 0.93, 0.75), 0.05)
    return np.clip(mix(img, img * varnish, rng.uniform(0.2, 0.8)), 0, 1)
