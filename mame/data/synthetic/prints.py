"""Print families: line engravings, etchings, relief prints, colour woodblocks and lithographs.

Each renders a darkness ``scene`` (what is depicted) through the technique's marks. Intaglio and relief
prints share the same hatching machinery with different line width, density, regularity and paper,
so they stay close to one another (as in the real collection) while remaining tellable apart.
"""

from __future__ import annotations

import numpy as np

from mame.data.synthetic.primitives import (
    F32,
    Rng,
    blur,
    coords,
    fbm,
    hatch,
    jitter,
    mix,
    normalise,
    paper,
    pick,
    pixel_coords,
    smooth_noise,
)

INK_BLACK = (0.07, 0.06, 0.06)
WASH_COLOURS = [(0.85, 0.3, 0.25), (0.3, 0.45, 0.8), (0.45, 0.7, 0.35), (0.95, 0.8, 0.3), (0.85, 0.55, 0.6)]


def _landscape(rng: Rng, y: np.ndarray, x: np.ndarray, detail: np.ndarray) -> np.ndarray:
    """Light sky, darker ground below a wavy horizon, and a few dark masses (trees, figures)."""
    hu, wu = float(y.max()), float(x.max())
    horizon = hu * (rng.uniform(0.35, 0.65) + (smooth_noise(rng, 1, x.shape[1], 3) - 0.5) * 0.2)
    ground = 1 / (1 + np.exp(-(y - horizon) * 60))
    dark = 0.12 * (1 - y / hu) + ground * rng.uniform(0.4, 0.7) + 0.25 * detail
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = horizon[0, int(rng.integers(x.shape[1]))] * rng.uniform(0.7, 1.0), rng.uniform(0, wu)
        ry, rx = rng.uniform(0.08, 0.25), rng.uniform(0.04, 0.15)
        dark = np.maximum(dark, (((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1) * rng.uniform(0.6, 0.95))
    return dark


def _portrait(rng: Rng, y: np.ndarray, x: np.ndarray, detail: np.ndarray) -> np.ndarray:
    """A head and shoulders, side-lit, against a plain ground."""
    hu, wu = float(y.max()), float(x.max())
    cy, cx, r = hu * rng.uniform(0.3, 0.45), wu * rng.uniform(0.4, 0.6), rng.uniform(0.12, 0.2)
    head = np.hypot((y - cy) / 1.25, x - cx) < r
    body = (np.hypot((y - hu) / 1.1, (x - cx) / 1.6) < hu - cy) & (y > cy + r * 0.8)
    dark = np.where(head, 0.25 + 0.4 * np.clip((x - cx) / r, 0, 1), rng.uniform(0.2, 0.7))
    return np.where(body, rng.uniform(0.5, 0.9), dark) + 0.2 * (detail - 0.5)


def scene(rng: Rng, h: int, w: int) -> np.ndarray:
    """A darkness field in [0, 1] (1 = black): a landscape (60%) or a portrait, softened a little."""
    y, x = coords(h, w)
    detail = fbm(rng, h, w, 4, 3)
    dark = (_landscape if rng.random() < 0.6 else _portrait)(rng, y, x, detail)
    return np.clip(blur(dark.astype(F32), max(h, w) * 0.01), 0, 1).astype(F32)


def plate_area(rng: Rng, h: int, w: int, margin: tuple[float, float]) -> np.ndarray:
    """A hard rectangle (1 inside) leaving a paper margin around the printed image."""
    m = rng.uniform(*margin)
    y, x = coords(h, w)
    hu, wu = h / max(h, w), w / max(h, w)
    bottom = m * rng.uniform(1.0, 1.8)
    return ((y > m) & (y < hu - bottom) & (x > m) & (x < wu - m)).astype(F32)


def _line_hatching(rng: Rng, h: int, w: int, dark: np.ndarray, spacing: float, wobble, swell: bool) -> np.ndarray:
    """Up to three layers of hatching; ``swell`` varies the line width with tone, else layers add density."""
    y, x = pixel_coords(h, w)
    angle = rng.uniform(0, np.pi)
    cover = np.zeros((h, w), F32)
    for layer, start in enumerate((0.0, 0.4, 0.7)):
        amount = np.clip((dark - start) / (1 - start), 0, 1)
        width = amount * spacing * 0.85 if swell else (amount > 0.05) * rng.uniform(0.8, 1.3)
        a = angle + layer * rng.uniform(0.8, 1.4)
        cover = np.maximum(cover, hatch(y, x, a, spacing, width, wobble * (1 - 0.3 * layer)))
    return cover


def engraving(rng: Rng, h: int, w: int, coloured: bool = False) -> np.ndarray:
    """Burin engraving: regular, swelling lines with cross-hatching in darks, black ink on white paper."""
    dark = scene(rng, h, w)
    spacing = max(2.0, rng.uniform(0.018, 0.028) * max(h, w))
    bend = (smooth_noise(rng, h, w, 2) - 0.5) * rng.uniform(0.5, 2.5)
    plate = plate_area(rng, h, w, (0.03, 0.1))
    cover = _line_hatching(rng, h, w, dark, spacing, bend, swell=True) * plate
    img = paper(rng, h, w, (0.93, 0.91, 0.86), 0.04)
    if coloured:
        img = washes(rng, img, plate)
    return mix(img, jitter(rng, INK_BLACK, 0.04), cover)


def etching(rng: Rng, h: int, w: int, coloured: bool = False) -> np.ndarray:
    """Etching: thin even lines drawn freely (wobbly, broken), density for tone, plate tone and platemark."""
    dark = scene(rng, h, w)
    spacing = max(2.0, rng.uniform(0.02, 0.035) * max(h, w))
    wobble = (smooth_noise(rng, h, w, 12) - 0.5) * rng.uniform(0.6, 1.2) + (smooth_noise(rng, h, w, 2) - 0.5)
    cover = _line_hatching(rng, h, w, dark, spacing, wobble, swell=False)
    cover *= (smooth_noise(rng, h, w, 40) > rng.uniform(0.05, 0.2)).astype(F32)
    plate = plate_area(rng, h, w, (0.04, 0.12))
    platemark = blur(plate, 1.2) * (1 - plate) * 3
    img = paper(rng, h, w, (0.92, 0.89, 0.82), 0.04)
    if coloured:
        img = washes(rng, img, plate)
    img = img * (1 - (plate * rng.uniform(0.03, 0.12) + np.clip(platemark, 0, 0.15)))[..., None]
    ink = jitter(rng, pick(rng, [INK_BLACK, (0.2, 0.13, 0.08)]), 0.04)
    return mix(img, ink, cover * plate)


def wood_engraving(rng: Rng, h: int, w: int) -> np.ndarray:
    """Wood engraving (white-line): a black block cut with fine white lines where the image is light."""
    dark = scene(rng, h, w) * rng.uniform(0.7, 0.9) + rng.uniform(0.15, 0.3)
    spacing = max(2.0, rng.uniform(0.016, 0.024) * max(h, w))
    bend = (smooth_noise(rng, h, w, 3) - 0.5) * rng.uniform(1.0, 3.0)
    white = _line_hatching(rng, h, w, np.clip(1 - dark, 0, 1), spacing, bend, swell=True)
    white = np.maximum(white, np.clip((0.2 - dark) * 12, 0, 1))
    block = plate_area(rng, h, w, (0.06, 0.18))
    cover = block * (1 - white)
    return mix(paper(rng, h, w, (0.94, 0.92, 0.88), 0.03), jitter(rng, INK_BLACK, 0.03), cover)


def woodcut(rng: Rng, h: int, w: int) -> np.ndarray:
    """Woodcut: bold, rough black lines and solid blacks, sparse hatching, high contrast."""
    dark = scene(rng, h, w)
    size = max(h, w)
    spacing = max(3.0, rng.uniform(0.045, 0.08) * size)
    y, x = pixel_coords(h, w)
    rough = (smooth_noise(rng, h, w, 10) - 0.5) * 0.35 + (smooth_noise(rng, h, w, 2) - 0.5) * 0.8
    lines = hatch(y, x, rng.uniform(0, np.pi), spacing, dark * spacing * rng.uniform(0.6, 0.9), rough)
    solid = np.clip((dark + 0.1 * smooth_noise(rng, h, w, 15) - 0.72) * 20, 0, 1)
    grad = np.hypot(*np.gradient(blur(dark, size * 0.02)))
    outline = np.clip(grad * size * rng.uniform(0.8, 1.5) - 0.4, 0, 1)
    cover = np.clip((np.maximum(np.maximum(lines, solid), outline) - 0.5) * 4 + 0.5, 0, 1)
    cover = cover * plate_area(rng, h, w, (0.03, 0.1))
    return mix(paper(rng, h, w, (0.92, 0.89, 0.8), 0.05), jitter(rng, INK_BLACK, 0.03), cover)


def woodblock(rng: Rng, h: int, w: int) -> np.ndarray:
    """Japanese colour woodblock: flat colour areas, graded sky, black key-block outlines, soft paper."""
    dark = scene(rng, h, w)
    palette = [(0.2, 0.3, 0.55), (0.8, 0.35, 0.3), (0.55, 0.65, 0.45), (0.85, 0.7, 0.45), (0.9, 0.7, 0.7),
               (0.45, 0.4, 0.38), (0.3, 0.5, 0.55)]
    levels = np.sort(rng.uniform(0.15, 0.8, int(rng.integers(3, 6))))
    zone = np.digitize(dark, levels)
    img = paper(rng, h, w, (0.92, 0.88, 0.78), 0.05)
    for k in range(1, len(levels) + 1):
        colour = jitter(rng, pick(rng, palette), 0.08)
        img = mix(img, colour, (zone == k).astype(F32) * rng.uniform(0.65, 0.95))
    y, _ = coords(h, w)
    sky = np.clip(1 - y / rng.uniform(0.15, 0.35), 0, 1) * (zone == 0)
    img = mix(img, jitter(rng, (0.2, 0.3, 0.6), 0.08), sky * rng.uniform(0.5, 0.9))
    edge = np.hypot(*np.gradient(zone.astype(F32)))
    key = np.clip(edge * rng.uniform(1.0, 1.6), 0, 1)
    return mix(img, jitter(rng, (0.1, 0.09, 0.1), 0.03), key)


def washes(rng: Rng, img: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Hand colouring: translucent watercolour washes multiplied onto the printed ``area``, loosely registered."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(2, 5))):
        region = (smooth_noise(rng, h, w, 3) > rng.uniform(0.45, 0.65)) * area
        region = blur(region.astype(F32), max(h, w) * 0.01)
        colour = jitter(rng, pick(rng, WASH_COLOURS), 0.08)
        img = img * (1 - (region * rng.uniform(0.35, 0.7))[..., None] * (1 - colour))
    return img


def lithograph(rng: Rng, h: int, w: int) -> np.ndarray:
    """Lithograph: soft tonal crayon drawing with a visible grain, sometimes on a tint stone."""
    dark = blur(scene(rng, h, w), max(h, w) * 0.02) * rng.uniform(0.6, 0.95)
    grain = rng.random((h, w), dtype=F32)
    grain = 0.6 * normalise(blur(grain, 0.8)) + 0.4 * smooth_noise(rng, h, w, max(h, w) / 3)
    cover = np.clip((dark - grain) * 2.2 + 0.5, 0, 1) * plate_area(rng, h, w, (0.02, 0.08))
    img = paper(rng, h, w, (0.95, 0.94, 0.9), 0.03)
    if rng.random() < 0.35:
        img = mix(img, jitter(rng, (0.85, 0.78, 0.62), 0.05), plate_area(rng, h, w, (0.03, 0.06)) * 0.8)
    ink = jitter(rng, pick(rng, [INK_BLACK, INK_BLACK, (0.2, 0.17, 0.15), (0.25, 0.2, 0.3)]), 0.04)
    return mix(img, ink, cover)


def hand_coloured_engraving(rng: Rng, h: int, w: int) -> np.ndarray:
    """An engraving with watercolour washes."""
    return engraving(rng, h, w, coloured=True)


def hand_coloured_etching(rng: Rng, h: int, w: int) -> np.ndarray:
    """An etching with watercolour washes."""
    return etching(rng, h, w, coloured=True)
