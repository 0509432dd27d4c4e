"""Object families photographed in the museum: metals, ceramics, glass and ivory.

Related media share geometry and lighting and differ in hue, gloss and surface (gold vs bronze,
iron vs steel, ceramic vs faience vs porcelain), so they are close but tellable apart.
"""

from __future__ import annotations

import numpy as np

from mame.data.synthetic.primitives import F32, Rng, blur, coords, fbm, jitter, mix, pick, relief_light, smooth_noise
from mame.data.synthetic.shapes import Geometry, backdrop, composite, geometry, light_dir, shade

# hue, surface-change colour, its coverage range, shininess range, reflectivity, object kinds
METALS: dict[str, tuple] = {
    "Gold": ((0.92, 0.72, 0.3), (0.55, 0.4, 0.15), (0.0, 0.2), (15, 50), 0.55, ("vessel", "blob", "disk")),
    "Bronze": ((0.52, 0.4, 0.22), (0.3, 0.45, 0.36), (0.05, 0.6), (6, 25), 0.35, ("blob", "vessel", "disk")),
    "Silver": ((0.82, 0.82, 0.84), (0.25, 0.22, 0.2), (0.0, 0.35), (25, 80), 0.6, ("vessel", "disk", "blob")),
    "Iron": ((0.33, 0.32, 0.31), (0.45, 0.26, 0.13), (0.15, 0.6), (4, 14), 0.2, ("blade", "slab", "blob")),
    "Steel": ((0.5, 0.53, 0.58), (0.3, 0.3, 0.32), (0.0, 0.25), (15, 45), 0.45, ("blade", "slab", "disk")),
}


def lit(colour: np.ndarray, diffuse: np.ndarray, spec: np.ndarray, ambient: float, gloss: float) -> np.ndarray:
    """Diffuse-tinted colour plus a white specular highlight scaled by ``gloss``."""
    shaded = colour * (ambient + (1 - ambient) * diffuse)[..., None]
    return np.clip(shaded + (spec * gloss)[..., None], 0, 1).astype(F32)


def blotches(rng: Rng, h: int, w: int, coverage: float, cells: float = 6) -> np.ndarray:
    """Soft blotches covering about ``coverage`` of the image (patina, rust, tarnish, wear)."""
    return np.clip((smooth_noise(rng, h, w, cells) - (1 - coverage)) * 6, 0, 1).astype(F32)


def metal(rng: Rng, h: int, w: int, name: str) -> np.ndarray:
    """A metal object on a (mostly dark) backdrop: metal hue, environment sheen and highlights."""
    hue, change, cover, shine, reflect, kinds = METALS[name]
    g = geometry(rng, h, w, kinds, roundness=rng.uniform(0.06, 0.15))
    diffuse, spec = shade(g, light_dir(rng), rng.uniform(*shine))
    env = 0.5 + 0.5 * np.tanh(-g.ny * rng.uniform(3, 8) + np.sin(g.nx * rng.uniform(3, 9)) * 0.8)
    colour = np.clip(jitter(rng, hue, 0.06 if name in ("Gold", "Bronze") else 0.02) * rng.uniform(0.85, 1.1), 0, 1)
    surface = mix(np.broadcast_to(colour, (h, w, 3)), jitter(rng, change, 0.05),
                  blotches(rng, h, w, rng.uniform(*cover)))
    obj = lit(surface, diffuse * (1 - reflect) + env * reflect, spec, 0.12, rng.uniform(0.5, 1.0))
    obj += (spec**0.5 * reflect * 0.4)[..., None] * colour
    bg = backdrop(rng, h, w, pick(rng, ["dark", "dark", "grey", "light"]))
    return composite(rng, bg, np.clip(obj, 0, 1), g)


def _glazed(rng: Rng, h: int, w: int, g: Geometry, surface: np.ndarray, gloss: float, tone: str) -> np.ndarray:
    """Light a glazed surface (sharp highlight) and place it on a backdrop."""
    diffuse, spec = shade(g, light_dir(rng), rng.uniform(30, 90))
    obj = lit(surface, diffuse, spec, rng.uniform(0.2, 0.35), gloss)
    return composite(rng, backdrop(rng, h, w, tone), obj, g)


def ceramic(rng: Rng, h: int, w: int) -> np.ndarray:
    """Glazed stoneware or earthenware: one glaze colour pooling unevenly, glossy, sometimes banded."""
    g = geometry(rng, h, w, ("vessel", "vessel", "disk", "blob"))
    glazes = [(0.55, 0.68, 0.58), (0.42, 0.28, 0.16), (0.12, 0.1, 0.09), (0.72, 0.62, 0.45), (0.3, 0.45, 0.5),
              (0.55, 0.22, 0.14)]
    glaze = jitter(rng, pick(rng, glazes), 0.08)
    y, x = coords(h, w)
    runs = smooth_noise(rng, h, w, 2) * 0.5 + 0.5 * np.sin(x * rng.uniform(40, 90) + smooth_noise(rng, h, w, 3) * 4)
    pool = (fbm(rng, h, w, 4, 2) - 0.5) * 0.3 + (y - 0.5) * rng.uniform(-0.3, 0.3) + (runs - 0.5) * 0.25
    speckle = rng.random((h, w), dtype=F32) < rng.uniform(0.0, 0.05)
    surface = np.clip(glaze * (1 + pool - 0.5 * speckle)[..., None], 0, 1)
    foot = (y > y.max() * rng.uniform(0.82, 0.9)).astype(F32)
    surface = mix(surface, jitter(rng, (0.7, 0.6, 0.48), 0.06), foot * rng.uniform(0.0, 1.0))
    if rng.random() < 0.4:
        bands = (np.sin(y * rng.uniform(30, 70)) > 0.85).astype(F32) * 0.5
        surface = mix(surface, surface * 0.5, bands)
    return _glazed(rng, h, w, g, surface, rng.uniform(0.5, 0.9), "any")


def porcelain(rng: Rng, h: int, w: int) -> np.ndarray:
    """Porcelain: bright white glossy body with cobalt-blue bands and scrolling floral decoration."""
    g = geometry(rng, h, w, ("vessel", "vessel", "disk"))
    y, x = coords(h, w)
    white = jitter(rng, (0.95, 0.95, 0.97), 0.03)
    blue = jitter(rng, (0.13, 0.22, 0.58), 0.06)
    band_y = rng.uniform(0.1, 0.9, int(rng.integers(1, 4)))
    bands = np.max([np.abs(y - b) < rng.uniform(0.01, 0.03) for b in band_y], axis=0)
    floral = np.abs(smooth_noise(rng, h, w, rng.uniform(6, 12)) - 0.5) < rng.uniform(0.04, 0.1)
    deco = np.clip(bands + floral * (smooth_noise(rng, h, w, 3) > 0.35), 0, 1).astype(F32)
    surface = mix(np.broadcast_to(white, (h, w, 3)), blue, blur(deco, 0.5) * rng.uniform(0.7, 1.0))
    if rng.random() < 0.25:
        surface = mix(surface, jitter(rng, (0.8, 0.3, 0.2), 0.1), blotches(rng, h, w, 0.15, 10) * 0.8)
    return _glazed(rng, h, w, g, surface, rng.uniform(0.7, 1.0), pick(rng, ["grey", "light", "dark"]))


def faience(rng: Rng, h: int, w: int) -> np.ndarray:
    """Faience: Egyptian turquoise glazed amulets and vessels, or tin-glazed cream ware with bold colours."""
    if rng.random() < 0.5:
        g = geometry(rng, h, w, ("blob", "slab", "vessel"), roundness=0.08)
        base = jitter(rng, pick(rng, [(0.2, 0.62, 0.6), (0.25, 0.5, 0.7), (0.35, 0.65, 0.5)]), 0.08)
        detail = (fbm(rng, h, w, 8, 2) > rng.uniform(0.6, 0.75)).astype(F32)
        surface = mix(np.broadcast_to(base, (h, w, 3)), base * 0.3, detail * 0.8)
        return _glazed(rng, h, w, g, surface, rng.uniform(0.2, 0.5), "any")
    g = geometry(rng, h, w, ("vessel", "disk"))
    surface = np.broadcast_to(jitter(rng, (0.92, 0.9, 0.8), 0.04), (h, w, 3)).copy()
    for colour in [(0.15, 0.3, 0.65), (0.9, 0.7, 0.15), (0.3, 0.55, 0.3), (0.45, 0.25, 0.4)][: int(rng.integers(2, 5))]:
        motif = np.abs(smooth_noise(rng, h, w, rng.uniform(4, 9)) - 0.5) < rng.uniform(0.05, 0.12)
        surface = mix(surface, jitter(rng, colour, 0.08), blur(motif.astype(F32), 0.7))
    crackle = np.abs(smooth_noise(rng, h, w, 20) - 0.5) < 0.015
    surface = surface * (1 - 0.15 * crackle[..., None])
    return _glazed(rng, h, w, g, surface, rng.uniform(0.4, 0.7), "any")


def clay(rng: Rng, h: int, w: int) -> np.ndarray:
    """Unglazed clay/terracotta: matte orange-brown body, rough, dusty, no highlights."""
    g = geometry(rng, h, w, ("blob", "blob", "vessel", "slab"), roundness=rng.uniform(0.05, 0.12))
    body = jitter(rng, pick(rng, [(0.72, 0.45, 0.3), (0.65, 0.4, 0.28), (0.58, 0.48, 0.4)]), 0.07)
    rough = relief_light(fbm(rng, h, w, 12, 2) * 4, rng.uniform(0, 2 * np.pi), 1.0)
    surface = np.clip(body * rough[..., None] * (0.9 + 0.2 * smooth_noise(rng, h, w, 5))[..., None], 0, 1)
    diffuse, _ = shade(g, light_dir(rng), 1.0)
    obj = lit(surface, diffuse, diffuse * 0, rng.uniform(0.25, 0.4), 0.0)
    return composite(rng, backdrop(rng, h, w, "any"), obj, g)


def glass(rng: Rng, h: int, w: int) -> np.ndarray:
    """Glass: a translucent tinted vessel showing the backdrop through it, dark rims and bright streaks."""
    g = geometry(rng, h, w, ("vessel", "vessel", "blob"), roundness=0.1)
    bg = backdrop(rng, h, w, pick(rng, ["light", "light", "grey", "dark"]))
    tint = jitter(rng, pick(rng, [(0.85, 0.95, 0.92), (0.35, 0.65, 0.45), (0.2, 0.35, 0.8), (0.8, 0.55, 0.2),
                                  (0.55, 0.3, 0.6)]), 0.08)
    shift = int(max(1, 0.05 * max(h, w)))
    refracted = np.roll(blur(bg, 1.5), shift, axis=1) * 0.9 + 0.1
    body = refracted * tint * rng.uniform(0.55, 0.9) + tint * rng.uniform(0.05, 0.2)
    rim = np.clip((1 - g.nz) * rng.uniform(1.5, 3.0), 0, 1)
    body = mix(body, tint * 0.25, rim * 0.8)
    _, spec = shade(g, light_dir(rng), rng.uniform(40, 120))
    streak = np.clip(1 - np.abs(g.nx + rng.uniform(0.2, 0.5)) * rng.uniform(6, 12), 0, 1) * g.nz
    body = np.clip(body + ((spec + streak * rng.uniform(0.3, 0.7)) * 0.9)[..., None], 0, 1)
    return composite(rng, bg, body, g)


def ivory(rng: Rng, h: int, w: int) -> np.ndarray:
    """Ivory: a small creamy carved object, soft sheen, fine carving and growth striations."""
    g = geometry(rng, h, w, ("blob", "slab", "disk"), roundness=rng.uniform(0.05, 0.1))
    cream = jitter(rng, pick(rng, [(0.93, 0.87, 0.72), (0.86, 0.76, 0.56), (0.9, 0.84, 0.7)]), 0.04)
    carve = relief_light(fbm(rng, h, w, rng.uniform(6, 14), 2) * rng.uniform(3, 8), rng.uniform(0, 6.3), 1.2)
    y, x = coords(h, w)
    stria = 1 + 0.04 * np.sin((x * np.cos(0.3) + y) * rng.uniform(80, 160) + smooth_noise(rng, h, w, 3) * 6)
    surface = np.clip(cream * (carve * stria)[..., None], 0, 1)
    surface = mix(surface, surface * jitter(rng, (0.8, 0.65, 0.45), 0.05), blotches(rng, h, w, 0.3) * 0.6)
    diffuse, spec = shade(g, light_dir(rng), rng.uniform(8, 20))
    obj = lit(surface, diffuse, spec, 0.35, rng.uniform(0.1, 0.3))
    return composite(rng, backdrop(rng, h, w, pick(rng, ["dark", "dark", "grey"])), obj, g)
