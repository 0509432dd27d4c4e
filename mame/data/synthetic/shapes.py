"""Object silhouettes, surface normals, lighting and studio backdrops for the 3-D object families."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mame.data.synthetic.primitives import F32, Rng, blur, coords, fill, jitter, mix, record_object, smooth_noise


@dataclass
class Geometry:
    """A soft silhouette ``mask`` and unit surface normals (nx, ny, nz), all (h, w) arrays."""

    mask: np.ndarray
    nx: np.ndarray
    ny: np.ndarray
    nz: np.ndarray


def _edge(inside: np.ndarray, px: float) -> np.ndarray:
    """Anti-aliased coverage from a signed 'inside' distance in long-side units."""
    return np.clip(inside * px + 0.5, 0, 1).astype(F32)


def vessel_mask(rng: Rng, h: int, w: int) -> np.ndarray:
    """A turned vessel (vase, jar, bowl, cup): a symmetric profile r(t) around a vertical axis."""
    y, x = coords(h, w)
    hu, wu = h / max(h, w), w / max(h, w)
    top, bottom = hu * rng.uniform(0.08, 0.3), hu * rng.uniform(0.82, 0.95)
    cx = wu / 2 + rng.uniform(-0.05, 0.05) * wu
    radius = min(wu * rng.uniform(0.22, 0.42), (bottom - top) * rng.uniform(0.35, 0.8))
    t = np.clip((y[:, :1] - top) / (bottom - top), 0, 1)
    prof = F32(rng.uniform(0.35, 0.6)) + np.zeros_like(t)
    for k in (1, 2, 3):
        prof = prof + F32(rng.uniform(0, 0.45 / k)) * np.sin(k * np.pi * t + rng.uniform(-0.6, 0.6))
    r = radius * np.clip(prof, 0.12, 1.0)
    inside = np.minimum(r - np.abs(x - cx), np.minimum(y - top, bottom - y))
    return _edge(inside, max(h, w))


def blob_mask(rng: Rng, h: int, w: int, n_parts: int | None = None) -> np.ndarray:
    """A sculpture-like union of lumpy ellipses (figure, head, animal, fragment)."""
    y, x = coords(h, w)
    hu, wu = h / max(h, w), w / max(h, w)
    n_parts = n_parts or int(rng.integers(1, 4))
    inside = np.full((h, w), -1.0, F32)
    cy, cx = hu * rng.uniform(0.45, 0.6), wu * rng.uniform(0.4, 0.6)
    for _ in range(n_parts):
        ry, rx = hu * rng.uniform(0.2, 0.4), wu * rng.uniform(0.15, 0.35)
        py, px = cy + rng.uniform(-0.15, 0.15) * hu, cx + rng.uniform(-0.1, 0.1) * wu
        a = rng.uniform(0, np.pi)
        dy, dx = y - py, x - px
        u, v = dx * np.cos(a) + dy * np.sin(a), -dx * np.sin(a) + dy * np.cos(a)
        theta = np.arctan2(v, u)
        lump = 1 + 0.12 * np.sin(3 * theta + rng.uniform(0, 6)) + 0.08 * np.sin(5 * theta + rng.uniform(0, 6))
        rho = np.sqrt((u / rx) ** 2 + (v / ry) ** 2) / lump
        inside = np.maximum(inside, (1 - rho) * min(rx, ry))
    return _edge(inside, max(h, w))


def slab_mask(rng: Rng, h: int, w: int) -> np.ndarray:
    """A rounded rectangle: plaque, relief panel, box or book cover."""
    y, x = coords(h, w)
    hu, wu = h / max(h, w), w / max(h, w)
    ry, rx = hu * rng.uniform(0.25, 0.42), wu * rng.uniform(0.25, 0.42)
    cy, cx = hu / 2 + rng.uniform(-0.04, 0.04), wu / 2 + rng.uniform(-0.04, 0.04)
    corner = min(ry, rx) * rng.uniform(0.05, 0.5)
    qy, qx = np.abs(y - cy) - (ry - corner), np.abs(x - cx) - (rx - corner)
    outside = np.hypot(np.maximum(qy, 0), np.maximum(qx, 0)) + np.minimum(np.maximum(qy, qx), 0)
    return _edge(corner - outside, max(h, w))


def blade_mask(rng: Rng, h: int, w: int) -> np.ndarray:
    """A long tapering blade with a cross guard (sword, dagger, tool), at an angle."""
    y, x = coords(h, w)
    hu, wu = h / max(h, w), w / max(h, w)
    a = rng.uniform(-0.5, 0.5) + (np.pi / 2 if hu > wu else 0)
    cy, cx = hu / 2, wu / 2
    u = (x - cx) * np.cos(a) + (y - cy) * np.sin(a)
    v = -(x - cx) * np.sin(a) + (y - cy) * np.cos(a)
    half = 0.46 * np.hypot(hu, wu) * rng.uniform(0.75, 0.95) / 1.3
    taper = np.clip((half - u) / (2 * half), 0.05, 1)
    width = rng.uniform(0.025, 0.06) * (0.35 + 0.65 * taper)
    blade = np.minimum(width - np.abs(v), np.minimum(u + half * 0.55, half - u))
    guard_at = -half * 0.55
    guard = np.minimum(rng.uniform(0.06, 0.12) - np.abs(v), 0.015 - np.abs(u - guard_at))
    grip = np.minimum(0.02 - np.abs(v), np.minimum(guard_at - u, u - (guard_at - half * 0.4)))
    return _edge(np.maximum(np.maximum(blade, guard), grip), max(h, w))


def disk_mask(rng: Rng, h: int, w: int) -> np.ndarray:
    """A plate, dish, coin or medal: an ellipse, sometimes foreshortened."""
    y, x = coords(h, w)
    hu, wu = h / max(h, w), w / max(h, w)
    r = min(hu, wu) * rng.uniform(0.3, 0.46)
    squash = rng.uniform(0.45, 1.0) if rng.random() < 0.5 else 1.0
    rho = np.hypot((x - wu / 2) / r, (y - hu / 2) / (r * squash))
    return _edge((1 - rho) * r * squash, max(h, w))


MASKS = {"vessel": vessel_mask, "blob": blob_mask, "slab": slab_mask, "blade": blade_mask, "disk": disk_mask}


def geometry(rng: Rng, h: int, w: int, kinds: tuple[str, ...], roundness: float = 0.12) -> Geometry:
    """A silhouette of one of ``kinds`` with normals from its blurred, domed height field."""
    mask = MASKS[kinds[int(rng.integers(len(kinds)))]](rng, h, w)
    radius = max(1.0, roundness * max(h, w))
    height = np.sqrt(np.clip(blur(mask, radius), 0, 1)) * radius
    height += (smooth_noise(rng, h, w, 8) - 0.5) * F32(radius * 0.4)
    gy, gx = np.gradient(height * mask)
    norm = np.sqrt(gx**2 + gy**2 + 1)
    return Geometry(mask, (-gx / norm).astype(F32), (-gy / norm).astype(F32), (1 / norm).astype(F32))


def light_dir(rng: Rng) -> np.ndarray:
    """A key light from above, left or right, towards the viewer."""
    v = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.9, -0.2), rng.uniform(0.5, 1.0)], F32)
    return v / np.linalg.norm(v)


def shade(g: Geometry, light: np.ndarray, shininess: float) -> tuple[np.ndarray, np.ndarray]:
    """Diffuse (Lambert) and specular (Phong, viewer on +z) terms."""
    ndl = g.nx * light[0] + g.ny * light[1] + g.nz * light[2]
    rz = 2 * ndl * g.nz - light[2]
    return np.clip(ndl, 0, 1).astype(F32), (np.clip(rz, 0, 1) ** shininess).astype(F32)


def backdrop(rng: Rng, h: int, w: int, tone: str) -> np.ndarray:
    """A museum photo backdrop ('dark', 'grey', 'light' or 'any'): a sweep gradient, slightly tinted."""
    if tone == "any":
        tone = ("dark", "grey", "light")[int(rng.integers(3))]
    level = {"dark": rng.uniform(0.02, 0.16), "grey": rng.uniform(0.35, 0.6), "light": rng.uniform(0.78, 0.97)}[tone]
    y, _ = coords(h, w)
    ramp = 1 + rng.uniform(-0.25, 0.25) * (y / y.max() - 0.5)
    colour = jitter(rng, (level, level, level), 0.012)
    return np.clip(fill(h, w, colour) * ramp[..., None], 0, 1).astype(F32)


def composite(rng: Rng, bg: np.ndarray, obj: np.ndarray, g: Geometry) -> np.ndarray:
    """Place an object over a backdrop with a soft contact shadow (its silhouette is the image's object mask)."""
    h, w = g.mask.shape
    record_object(g.mask)
    shift = int(rng.integers(1, max(2, h // 20)))
    shadow = np.zeros_like(g.mask)
    shadow[shift:, :] = g.mask[:-shift, :]
    shadow = blur(shadow, max(1.0, 0.03 * max(h, w))) * F32(rng.uniform(0.2, 0.5))
    return mix(bg * (1 - shadow[..., None]), obj, g.mask)
