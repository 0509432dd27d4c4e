"""``make bench``'s shapes section: fixed against variable shape at one pixel budget (R65k on a GPU, a smaller one
on a CPU to keep the bench short), on images with real MAMe shapes.

- images/s of each backbone's variable-shape feature extractor through the pipeline (decoded-image cache warm),
  given fixed-shape batches (squeezed square, nothing padded) and variable-shape ones (aspect ratio kept, padded
  batches bucketed by aspect ratio): the same model and pixel budget, so the ratio is what the shape costs;
- traced shapes: how many times the variable-shape model's function was traced in that pass (one per distinct
  padded batch shape: bounded by the buckets), beside the distinct shapes the paper's per-batch padding (each
  batch padded to its tallest and widest image) would have given the same batches;
- the padding gap: how far an image's features in its padded bucket are from its features alone at its own size
  (relative L2 distance; convolutions near the border of the valid region see the pad), per backbone, with the
  weights the backbone had here.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mame.classes import CLASS_NAMES

BACKBONES = ("vgg16", "resnet50", "efficientnetb0", "efficientnetb3", "efficientnetlite0")
HEADER = "Image file,Medium,Museum,Museum-based instance ID,Subset,Width,Height,Product size,Aspect ratio"


def write_shaped_images(folder: Path, count: int, pixels: int, seed: int = 0) -> list:
    """``count`` JPEGs, each the shape of a real MAMe image (drawn over all classes) at about ``pixels`` pixels,
    and the metadata CSV that names them; their records."""
    from PIL import Image

    from mame.data import official
    from mame.data.metadata import read_metadata

    rng = np.random.default_rng(seed)
    shapes = [s for per_class in official.image_shapes().values() for s in per_class]
    images = folder / "data_256"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        width, height = shapes[rng.integers(len(shapes))]
        scale = np.sqrt(pixels / (width * height))
        w, h = max(8, round(width * scale)), max(8, round(height * scale))
        x, y = np.meshgrid(np.linspace(0, 4 * np.pi, w), np.linspace(0, 4 * np.pi, h))
        base = 127 + 60 * np.sin(x * rng.uniform(0.5, 2) + y * rng.uniform(0.5, 2))[..., None] * np.array([1.0, 0.7, 0.4])
        Image.fromarray(np.clip(base + rng.normal(0, 18, (h, w, 3)), 0, 255).astype(np.uint8)).save(images / f"{i}.jpg",
                                                                                                  quality=90)
        rows.append(f"{i}.jpg,{CLASS_NAMES[i % len(CLASS_NAMES)]},M,{i},train,{w}.0,{h}.0,{w * h}.0,{w / h:.4f}")
    (folder / "MAMe_dataset.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return read_metadata(folder).records


def epoch_shapes(target_pixels: int = 65_536, batch_size: int = 64, seed: int = 0) -> dict:
    """Distinct batch shapes in one shuffled epoch over the real MAMe's shapes (all 37,407 images of the official
    metadata, no pixels needed): the paper's padding (each batch padded to its tallest and widest image) against
    the buckets (``mame.data.aspect_buckets``: each batch from one bucket, padded to its fixed shape)."""
    from mame.data import aspect_buckets, official

    sizes = np.array([s for per_class in official.image_shapes().values() for s in per_class], dtype=np.float64)
    w, h = sizes[:, 0], sizes[:, 1]
    scale = np.sqrt(target_pixels / (w * h))  # each image at about the budget, its ratio kept, as the paper resizes
    resized = np.stack([np.rint(h * scale), np.rint(w * scale)], axis=1).astype(int)
    order = np.random.default_rng(seed).permutation(len(resized))
    paper = {tuple(resized[order[i:i + batch_size]].max(axis=0)) for i in range(0, len(order), batch_size)}
    buckets = aspect_buckets.Buckets(target_pixels)
    plan = aspect_buckets.batch_plan(buckets.bucket(w, h), batch_size, shuffle=True, seed=seed, epoch=0)
    ours = {buckets.shapes[int(buckets.bucket(w[batch[0]:batch[0] + 1], h[batch[0]:batch[0] + 1])[0])] for batch in plan}
    return {"images": len(resized), "batch": batch_size, "target_pixels": target_pixels,
            "batches": len(plan), "paper_shapes": len(paper), "bucket_shapes": len(ours),
            "paper_padded_fraction": round(float(1 - np.mean([resized[order[i:i + batch_size]].prod(axis=1).sum()
                                                              / (len(order[i:i + batch_size]) * np.prod(
                                                                  resized[order[i:i + batch_size]].max(axis=0)))
                                                              for i in range(0, len(order), batch_size)])), 3),
            "bucket_padded_fraction": round(float(buckets.padded_fraction(w, h).mean()), 3)}


def _timed_pass(function, dataset) -> tuple[float, np.ndarray]:
    start, rows = time.perf_counter(), []
    for images, _ in dataset:
        rows.append(np.asarray(function(images)))
    return time.perf_counter() - start, np.concatenate(rows)


def backbone_shapes(key: str, records, image_dir: Path, *, image_size: int, batch: int) -> dict:
    """One backbone: FS and VS images/s (second pass: traced, cache warm), VS traces, and the padding gap."""
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # the retracing warning: each trace here is one bucket's shape, counted below
    from mame.data import aspect_buckets, padded_batches, pipeline
    from mame.models import builders, weight_files

    keras.utils.set_random_seed(0)
    weights = weight_files.outlook(key, "imagenet-if-cached")
    choice = "imagenet" if weights.pretrained else "random"
    variable_model = builders.build_variable_extractor(key, weights_choice=choice)  # one model for both shapes
    whole = lambda x: tf.fill([tf.shape(x)[0], 2], tf.constant(image_size, tf.int32))  # noqa: E731  (no pad)
    fixed_fn = tf.function(lambda x: variable_model({"image": x, "valid_size": whole(x)}, training=False))
    variable_fn = tf.function(lambda x: variable_model(x, training=False))
    fixed_data = pipeline.make_dataset(records, image_dir, image_size=image_size, batch_size=batch)
    variable_data = pipeline.make_dataset(records, image_dir, target_pixels=image_size ** 2, batch_size=batch)
    _timed_pass(fixed_fn, fixed_data)  # traced, cache filled: the timed passes are the second ones
    _timed_pass(variable_fn, variable_data)
    fixed_s, _ = _timed_pass(fixed_fn, fixed_data)
    variable_s, features = _timed_pass(variable_fn, variable_data)
    features = pipeline.in_record_order(variable_data, features)
    gaps = []
    for i in range(0, len(records), max(1, len(records) // 8)):  # each image alone at its own size, no pad
        alone = padded_batches.unpadded(str(image_dir / records[i].image_file), image_size ** 2)[None]
        if min(alone.shape[1:3]) < aspect_buckets.MIN_SIDE:
            continue  # too small alone for VGG16's poolings: only its bucket's box makes it fit
        own = np.asarray(variable_model({"image": alone, "valid_size": np.array([alone.shape[1:3]], np.int32)},
                                        training=False))[0]
        gaps.append(float(np.linalg.norm(features[i] - own) / max(np.linalg.norm(own), 1e-12)))
    out = {"backbone": key, "weights": choice, "image_size": image_size, "target_pixels": image_size ** 2,
           "images": len(records), "batch": batch,
           "fixed_per_s": round(len(records) / fixed_s, 1), "variable_per_s": round(len(records) / variable_s, 1),
           "variable_traces": int(variable_fn.experimental_get_tracing_count()),
           "fixed_traces": int(fixed_fn.experimental_get_tracing_count()),
           "padding_gap_images": len(gaps),
           "padding_gap_median": round(float(np.median(gaps)), 4) if gaps else None,
           "padding_gap_max": round(float(np.max(gaps)), 4) if gaps else None}
    out["variable_over_fixed"] = round(out["variable_per_s"] / out["fixed_per_s"], 2)
    keras.backend.clear_session()
    return out


def measure(out, tmp: Path, *, image_size: int, images: int = 48, batch: int = 8, backbones=BACKBONES) -> dict:
    """The shapes section, printed as it comes (images and their decoded-image cache in ``tmp``)."""
    import os

    from mame.data import image_cache

    records = write_shaped_images(tmp / "shaped", images, image_size ** 2)
    image_dir = tmp / "shaped" / "data_256"
    saved = os.environ.get(image_cache.CACHE_ENV)
    os.environ[image_cache.CACHE_ENV] = str(tmp / "cache")  # a private cache
    try:
        return _measure(out, records, image_dir, image_size=image_size, images=images, batch=batch, backbones=backbones)
    finally:
        os.environ.pop(image_cache.CACHE_ENV, None)
        if saved is not None:
            os.environ[image_cache.CACHE_ENV] = saved


def _measure(out, records, image_dir: Path, *, image_size: int, images: int, batch: int, backbones) -> dict:
    from mame.data import aspect_buckets

    epoch = epoch_shapes()
    found: dict = {"image_size": image_size, "target_pixels": image_size ** 2, "images": images, "batch": batch,
                   "buckets": len(aspect_buckets.RATIOS), "epoch": epoch, "backbones": []}
    print(f"shapes  one shuffled epoch of the real MAMe's {epoch['images']:,} shapes at R65k, batch {epoch['batch']} "
          f"({epoch['batches']} batches): the paper's per-batch padding gives {epoch['paper_shapes']} batch shapes "
          f"({epoch['paper_padded_fraction']:.0%} pad), the buckets {epoch['bucket_shapes']} "
          f"({epoch['bucket_padded_fraction']:.0%} pad)", file=out, flush=True)
    for key in backbones:
        row = backbone_shapes(key, records, image_dir, image_size=image_size, batch=batch)
        found["backbones"].append(row)
        print(f"shapes  {key:<18} {row['weights']:<8} FS {row['fixed_per_s']:6.1f}/s  VS {row['variable_per_s']:6.1f}/s "
              f"({row['variable_over_fixed']}x)  VS traced {row['variable_traces']} shapes  padding gap " + (
                  f"median {row['padding_gap_median']:.3f} max {row['padding_gap_max']:.3f} ({row['padding_gap_images']} images)"
                  if row["padding_gap_images"] else "not measured (images too small alone)"), file=out, flush=True)
    return found
