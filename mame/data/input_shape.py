"""How a stage shows images to a model: fixed shape (squeezed to ``image_size`` x ``image_size``, as MAMe's R65k-FS)
or variable shape (aspect ratio kept at about ``image_size``² pixels, as R65k-VS; padded batches bucketed by aspect
ratio, ``mame.data.padded_batches``).

One ``InputShape`` per run: the stage parameters ``shape`` and ``placement`` with its ``image_size``; its
``dataset_args`` go to ``mame.data.pipeline.make_dataset`` and its ``record`` into the run's metrics, so that a later
stage (evaluate rebuilding an extractor, explain) shows images the same way."""

from __future__ import annotations

from dataclasses import dataclass

from mame.data.aspect_buckets import PLACEMENTS

SHAPES = ("fixed", "variable")
SETTINGS = ("shape", "placement")  # the parameters that choose a run's input shape (a VS run differs from its twin in these)
SHAPE_DOC = ("fixed: every image squeezed to image_size x image_size | variable: aspect ratio kept at about image_size² "
             "pixels, batches padded per aspect-ratio bucket")
PLACEMENT_DOC = ("variable shape: corner (image top-left, pooling over its valid region) | centre (the MAMe paper's: "
                 "centred on a mid-grey pad, pooling over all of it)")


@dataclass(frozen=True)
class InputShape:
    shape: str
    image_size: int
    placement: str = "corner"

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}, not {self.shape!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, not {self.placement!r}")
        if int(self.image_size) < 8:
            raise ValueError(f"image_size must be at least 8, got {self.image_size!r}")

    @property
    def variable(self) -> bool:
        return self.shape == "variable"

    @property
    def target_pixels(self) -> int | None:
        return int(self.image_size) ** 2 if self.variable else None

    def dataset_args(self) -> dict:
        """``make_dataset``'s size arguments."""
        if self.variable:
            return {"target_pixels": self.target_pixels, "placement": self.placement}
        return {"image_size": int(self.image_size)}

    def record(self) -> dict:
        """What a run's metrics keep (``from_record`` reads it back)."""
        out = {"shape": self.shape, "image_size": int(self.image_size)}
        if self.variable:
            out.update({"target_pixels": self.target_pixels, "placement": self.placement})
        return out


def from_record(info: dict) -> InputShape:
    """The shape a run recorded (runs from before shapes existed were fixed)."""
    return InputShape(info.get("shape", "fixed"), int(info["image_size"]), info.get("placement", "corner"))


def as_shape(size) -> InputShape:
    """An ``InputShape`` as given, or a side in pixels as a fixed shape."""
    return size if isinstance(size, InputShape) else InputShape("fixed", int(size))
