"""Object masks read back as written: real PNG files in a dataset's ``masks/`` folder, non-square images
squeezed to the models' square input the way the pipeline squeezes them, the object's side kept (no
transposition or flip), the coverage threshold, and the heat measure that uses them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mame.data import masks
from mame.data.metadata import Record
from mame.models import gradcam

SIZE = 8


def record(image_file: str, width: int, height: int) -> Record:
    return Record(image_file, "Bronze", 0, "Museum", image_file, "val", float(width), float(height),
                  float(width * height), width / height)


def write_mask(data_dir, image_file: str, coverage: np.ndarray) -> None:
    """``coverage``: ``(height, width)`` 0-255, saved as an 8-bit grey PNG (what the generator writes)."""
    masks.mask_dir(data_dir).mkdir(parents=True, exist_ok=True)
    Image.fromarray(coverage.astype(np.uint8)).save(masks.mask_path(data_dir, image_file), format="PNG")


@pytest.fixture
def dataset(tmp_path):
    wide = np.zeros((8, 16), np.uint8)
    wide[:, :4] = 255                    # a 16x8 image: the object fills its left quarter, every row
    tall = np.zeros((8, 4), np.uint8)
    tall[6:, :] = 255                    # an 8x16 image's half-size mask: the object is the bottom quarter
    edge = np.zeros((8, 8), np.uint8)
    edge[2, 5] = 128                     # 128/255 = 0.502: at or above the threshold, the object
    edge[5, 2] = 127                     # 127/255 = 0.498: below it, the backdrop
    write_mask(tmp_path, "wide.jpg", wide)
    write_mask(tmp_path, "tall.jpg", tall)
    write_mask(tmp_path, "edge.jpg", edge)
    records = [record("wide.jpg", 16, 8), record("none.jpg", 8, 8), record("tall.jpg", 8, 16), record("edge.jpg", 8, 8)]
    return tmp_path, records


def test_masks_come_back_where_the_object_is_at_the_models_square_size(dataset):
    data_dir, records = dataset
    found, known = masks.load_masks(data_dir, records, image_size=SIZE)
    assert found.shape == (4, SIZE, SIZE) and found.dtype == bool
    assert known.tolist() == [True, False, True, True]
    left = np.zeros((SIZE, SIZE), bool)
    left[:, :2] = True                   # the left quarter of the squeezed image: two of eight columns
    bottom = np.zeros((SIZE, SIZE), bool)
    bottom[6:, :] = True
    edge = np.zeros((SIZE, SIZE), bool)
    edge[2, 5] = True
    np.testing.assert_array_equal(found[0], left)
    np.testing.assert_array_equal(found[1], np.zeros((SIZE, SIZE), bool))  # no mask file: nothing known
    np.testing.assert_array_equal(found[2], bottom)
    np.testing.assert_array_equal(found[3], edge)
    assert masks.known_masks(data_dir, records).tolist() == known.tolist()


def test_heat_on_the_loaded_mask_is_measured_on_the_objects_side(dataset):
    data_dir, records = dataset
    found, _ = masks.load_masks(data_dir, records[:1], image_size=SIZE)
    maps = np.zeros((3, SIZE, SIZE), np.float32)
    maps[0, :, :2] = 1.0                 # heat only on the left quarter: all on the object
    maps[1, :, 4:] = 0.7                 # heat only on the right half: none on it
    maps[2, :, :] = 1.0                  # uniform heat: the object's area share
    np.testing.assert_allclose(gradcam.mass_inside(maps, np.repeat(found, 3, axis=0)), [1.0, 0.0, 0.25])
