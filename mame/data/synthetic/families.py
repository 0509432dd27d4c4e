"""One procedural image family per MAMe medium, and the function that renders a class's image.

Families live in ``prints`` (intaglio, relief, woodblock and lithographic prints),
``drawings`` (graphite, pen and ink, albumen photograph, oil painting), ``objects``
(metals, ceramics, glass, ivory) and ``materials`` (stone, wood, textiles).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np

from mame.classes import CLASS_NAMES
from mame.data.synthetic import drawings, materials, objects, prints
from mame.data.synthetic.primitives import collecting_object_masks, finish

Family = Callable[[np.random.Generator, int, int], np.ndarray]

FAMILIES: dict[str, Family] = {
    "Albumen photograph": drawings.albumen_photograph,
    "Bronze": partial(objects.metal, name="Bronze"),
    "Ceramic": objects.ceramic,
    "Clay": objects.clay,
    "Engraving": prints.engraving,
    "Etching": prints.etching,
    "Faience": objects.faience,
    "Glass": objects.glass,
    "Gold": partial(objects.metal, name="Gold"),
    "Graphite": drawings.graphite,
    "Hand-colored engraving": prints.hand_coloured_engraving,
    "Hand-colored etching": prints.hand_coloured_etching,
    "Iron": partial(objects.metal, name="Iron"),
    "Ivory": objects.ivory,
    "Limestone": materials.limestone,
    "Lithograph": prints.lithograph,
    "Marble": materials.marble,
    "Oil on canvas": drawings.oil_on_canvas,
    "Pen and brown ink": drawings.pen_and_brown_ink,
    "Polychromed wood": materials.polychromed_wood,
    "Porcelain": objects.porcelain,
    "Silk and metal thread": materials.silk_and_metal_thread,
    "Silver": partial(objects.metal, name="Silver"),
    "Steel": partial(objects.metal, name="Steel"),
    "Wood": materials.wood,
    "Wood engraving": prints.wood_engraving,
    "Woodblock": prints.woodblock,
    "Woodcut": prints.woodcut,
    "Woven fabric": materials.woven_fabric,
}

assert tuple(FAMILIES) == CLASS_NAMES, "FAMILIES must list every class of mame.classes, in order"

def render(name: str, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Render one image of class ``name`` as a (height, width, 3) uint8 array."""
    return render_with_mask(name, rng, width, height)[0]


def render_with_mask(name: str, rng: np.random.Generator, width: int,
                     height: int) -> tuple[np.ndarray, np.ndarray | None]:
    """One image of class ``name`` (uint8, (height, width, 3)) and its object mask: the coverage (0-1,
    (height, width)) of the object placed over a backdrop, or None where the picture fills the frame
    (prints, drawings, paintings, cloth filling the image). Same image as ``render`` for the same stream."""
    with collecting_object_masks() as masks:
        img = FAMILIES[name](rng, height, width)
    mask = np.maximum.reduce(masks) if masks else None
    return finish(rng, np.asarray(img, dtype=np.float32)), mask
