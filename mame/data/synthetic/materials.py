"""Material families: stone (marble, limestone), wood (bare, polychromed) and textiles (woven, silk and metal)."""

from __future__ import annotations

import numpy as np

from mame.data.synthetic.objects import blotches, lit
from mame.data.synthetic.primitives import (
    F32,
    Rng,
    blur,
    coords,
    fbm,
    jitter,
    mix,
    pick,
    pixel_coords,
    record_object,
    relief_light,
    smooth_noise,
)
from mame.data.synthetic.shapes import backdrop, composite, geometry, light_dir, shade, slab_mask


def _stone_object(rng: Rng, h: int, w: int, surface: np.ndarray, gloss: float) -> np.ndarray:
    """Light a stone-like surface on a sculpture geometry and place it on a backdrop."""
    g = geometry(rng, h, w, ("blob", "blob", "slab", "vessel"), roundness=rng.uniform(0.06, 0.14))
    diffuse, spec = shade(g, light_dir(rng), rng.uniform(6, 20))
    obj = lit(surface, diffuse, spec, rng.uniform(0.25, 0.4), gloss)
    return composite(rng, backdrop(rng, h, w, "any"), obj, g)


def marble(rng: Rng, h: int, w: int) -> np.ndarray:
    """Marble: white (sometimes tinted) stone with turbulent grey veins and a slight polish."""
    y, x = coords(h, w)
    base = jitter(rng, pick(rng, [(0.92, 0.91, 0.88), (0.9, 0.88, 0.84), (0.86, 0.8, 0.78)]), 0.03)
    a = rng.uniform(0, np.pi)
    along = x * np.cos(a) + y * np.sin(a)
    veins = np.zeros((h, w), F32)
    for freq, sharp, depth in ((rng.uniform(5, 12), 6, 0.6), (rng.uniform(15, 30), 12, 0.35)):
        phase = along * freq + fbm(rng, h, w, 3, 3) * rng.uniform(4, 10)
        veins = np.maximum(veins, np.clip(1 - np.abs(np.sin(phase)) * sharp, 0, 1) * depth)
    veins = veins * rng.uniform(0.6, 1.1) + smooth_noise(rng, h, w, 6) * 0.15
    surface = mix(np.broadcast_to(base, (h, w, 3)), jitter(rng, (0.5, 0.5, 0.53), 0.08), veins)
    return _stone_object(rng, h, w, surface, rng.uniform(0.1, 0.35))


def limestone(rng: Rng, h: int, w: int) -> np.ndarray:
    """Limestone: porous, matte beige stone, weathered, often carved in relief."""
    base = jitter(rng, pick(rng, [(0.78, 0.7, 0.56), (0.72, 0.66, 0.55), (0.8, 0.74, 0.62)]), 0.05)
    pores = blur((rng.random((h, w), dtype=F32) < rng.uniform(0.04, 0.1)).astype(F32), 0.6)
    carving = blur((smooth_noise(rng, h, w, rng.uniform(3, 7)) > 0.55).astype(F32), max(h, w) * 0.01)
    relief = relief_light(carving * rng.uniform(4, 10) + fbm(rng, h, w, 16, 2) * 2, rng.uniform(0, 6.3), 1.0)
    surface = base * (relief * (1 - 0.5 * pores))[..., None]
    surface = mix(surface, surface * 0.75, blotches(rng, h, w, 0.3) * 0.7)
    return _stone_object(rng, h, w, np.clip(surface, 0, 1).astype(F32), 0.0)


def _wood_surface(rng: Rng, h: int, w: int) -> np.ndarray:
    """Brown wood with growth-ring grain following one direction, bent by turbulence."""
    y, x = coords(h, w)
    base = jitter(rng, pick(rng, [(0.55, 0.36, 0.2), (0.42, 0.27, 0.15), (0.68, 0.5, 0.32)]), 0.06)
    a = rng.uniform(0, np.pi)
    across = x * np.cos(a) + y * np.sin(a) + (fbm(rng, h, w, 2, 3) - 0.5) * rng.uniform(0.05, 0.2)
    rings = 0.5 + 0.5 * np.sin(across * rng.uniform(60, 140))
    fine = smooth_noise(rng, h, w, max(h, w) / 2.5)
    return np.clip(base * (0.72 + 0.3 * rings + 0.1 * fine)[..., None], 0, 1).astype(F32)


def wood(rng: Rng, h: int, w: int) -> np.ndarray:
    """Carved or turned wood: brown grain, satin sheen."""
    g = geometry(rng, h, w, ("blob", "slab", "vessel"), roundness=rng.uniform(0.06, 0.14))
    diffuse, spec = shade(g, light_dir(rng), rng.uniform(8, 25))
    obj = lit(_wood_surface(rng, h, w), diffuse, spec, 0.25, rng.uniform(0.1, 0.35))
    return composite(rng, backdrop(rng, h, w, "any"), obj, g)


def polychromed_wood(rng: Rng, h: int, w: int) -> np.ndarray:
    """Polychromed wood: a carved figure painted in flat colours and gilding, worn down to the grain."""
    g = geometry(rng, h, w, ("blob", "blob", "slab"), roundness=rng.uniform(0.06, 0.14))
    surface = _wood_surface(rng, h, w)
    paints = [(0.7, 0.15, 0.1), (0.15, 0.25, 0.55), (0.85, 0.65, 0.25), (0.88, 0.7, 0.58), (0.2, 0.4, 0.25),
              (0.9, 0.88, 0.82)]
    zones = np.digitize(smooth_noise(rng, h, w, rng.uniform(3, 6)), np.sort(rng.uniform(0.2, 0.8, 3)))
    wear = smooth_noise(rng, h, w, 10) > rng.uniform(0.15, 0.45)
    for k in range(4):
        paint = jitter(rng, pick(rng, paints), 0.08)
        surface = mix(surface, paint, ((zones == k) & wear).astype(F32) * rng.uniform(0.7, 0.95))
    diffuse, spec = shade(g, light_dir(rng), rng.uniform(8, 25))
    obj = lit(surface, diffuse, spec, 0.25, rng.uniform(0.1, 0.3))
    return composite(rng, backdrop(rng, h, w, "any"), obj, g)


def _weave(rng: Rng, h: int, w: int, period: float) -> tuple:
    """Thread layout: (warp-on-top mask, thread shading, weft row index, warp column index)."""
    y, x = pixel_coords(h, w)
    amp = period * rng.uniform(0.5, 2.0)
    xw = x + (smooth_noise(rng, h, w, 3) - 0.5) * amp
    yw = y + (smooth_noise(rng, h, w, 3) - 0.5) * amp
    i, j = np.floor(xw / period), np.floor(yw / period)
    fx, fy = xw / period - i, yw / period - j
    step = int(pick(rng, [2, 3, 4]))
    top = ((i + j) % step) == 0 if step > 2 else ((i + j) % 2) == 0
    shading = np.where(top, np.sin(np.pi * fx), np.sin(np.pi * fy)) ** 0.6
    return top, shading.astype(F32), j, i


def _motif(rng: Rng, h: int, w: int, rows: np.ndarray, n: int) -> np.ndarray:
    """Pattern index per pixel in [0, n): stripes, diamonds or a woven floral figure."""
    y, x = coords(h, w)
    kind = int(rng.integers(3))
    if kind == 0:
        field = (rows // int(rng.integers(2, 8))) % n
    elif kind == 1:
        s = rng.uniform(0.1, 0.3)
        field = np.floor((np.abs((x % s) - s / 2) + np.abs((y % s) - s / 2)) / s * n * 1.5) % n
    else:
        field = np.digitize(smooth_noise(rng, h, w, rng.uniform(4, 10)), np.linspace(0.3, 0.7, n - 1))
    return field.astype(np.int64)


def _metal_threads(rng: Rng, cloth: np.ndarray, top: np.ndarray, shading: np.ndarray, rows: np.ndarray,
                   cols: np.ndarray) -> np.ndarray:
    """Replace the weft in one motif zone by gold or silver thread that glints unevenly, thread by thread."""
    h, w = top.shape
    sparkle = np.modf(np.abs(np.sin(rows * 12.9898 + cols * 78.233) * 43758.5453))[0]
    zone = (_motif(rng, h, w, rows, 3) == 0) & ~top
    gleam = jitter(rng, pick(rng, [(0.9, 0.75, 0.35), (0.85, 0.85, 0.85)]), 0.05)
    glint = (shading**6 * (0.4 + 0.9 * sparkle))[..., None]
    metal = np.clip(gleam * (0.3 + 0.6 * shading[..., None]) + glint * 0.6, 0, 1)
    return np.where(zone[..., None], metal, cloth)


def _fabric(rng: Rng, h: int, w: int, period: float, palette: list, metal: bool) -> np.ndarray:
    """A woven textile fragment on a backdrop; ``metal`` turns one motif colour into glinting metal thread."""
    top, shading, rows, cols = _weave(rng, h, w, period)
    colours = np.stack([jitter(rng, c, 0.08) for c in palette])
    weft = colours[_motif(rng, h, w, rows, len(palette))]
    warp = jitter(rng, pick(rng, palette), 0.08)
    cloth = np.where(top[..., None], warp, weft) * (0.35 + 0.65 * shading)[..., None]
    if metal:
        cloth = _metal_threads(rng, cloth, top, shading, rows, cols)
    folds = 0.85 + 0.25 * smooth_noise(rng, h, w, 2)
    cloth = cloth * folds[..., None]
    if rng.random() < 0.5:
        return cloth.astype(F32)
    frag = blur((slab_mask(rng, h, w) * (smooth_noise(rng, h, w, 20) > 0.15)).astype(F32), 0.5)
    record_object(frag)  # a fragment on a backdrop has an object mask; cloth filling the frame has none
    return mix(backdrop(rng, h, w, pick(rng, ["light", "grey"])), cloth, frag)


def woven_fabric(rng: Rng, h: int, w: int) -> np.ndarray:
    """Woven fabric: wool/linen/cotton weave in muted natural dyes with stripes or geometric patterns."""
    palette = [(0.65, 0.2, 0.15), (0.2, 0.25, 0.45), (0.85, 0.78, 0.6), (0.75, 0.6, 0.25), (0.35, 0.25, 0.18),
               (0.35, 0.45, 0.3)]
    chosen = [palette[k] for k in rng.choice(len(palette), int(rng.integers(2, 5)), replace=False)]
    return _fabric(rng, h, w, max(2.2, rng.uniform(0.02, 0.04) * max(h, w)), chosen, metal=False)


def silk_and_metal_thread(rng: Rng, h: int, w: int) -> np.ndarray:
    """Silk and metal thread: fine, lustrous silk weave in rich colours brocaded with glinting metal threads."""
    palette = [(0.6, 0.05, 0.12), (0.1, 0.3, 0.2), (0.12, 0.15, 0.45), (0.9, 0.85, 0.7), (0.45, 0.1, 0.35)]
    chosen = [palette[k] for k in rng.choice(len(palette), int(rng.integers(2, 4)), replace=False)]
    return _fabric(rng, h, w, max(2.0, rng.uniform(0.015, 0.03) * max(h, w)), chosen, metal=True)
