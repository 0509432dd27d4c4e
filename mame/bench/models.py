"""Throughput figures on this machine: decoding (cold, and from the decoded-image cache), each backbone's
``model.predict`` on in-memory arrays (the compute ceiling) against our pipeline cold and warm, in fp32 and,
where the hardware has it, bf16; and fine-tuning train steps. Images are written here (256 x 256 JPEGs with
structure, like MAMe's ``data_256``), weights are random: what is measured is speed, not accuracy."""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from mame.classes import CLASS_NAMES
from mame.machine import cpu_bf16

BACKBONES = ("vgg16", "resnet50", "efficientnetb0", "efficientnetb3", "efficientnetlite0")
WARM_PASSES = 5
HEADER = "Image file,Medium,Museum,Museum-based instance ID,Subset,Width,Height,Product size,Aspect ratio"


def cpu_has_bf16() -> bool:
    """bf16 pays on CPUs with AVX-512-BF16 or AMX (else it is emulated, slower than fp32); and on GPUs."""
    from mame.engine.run.provenance import gpu_names

    return bool(gpu_names()) or cpu_bf16() is not None


def write_images(folder: Path, count: int, side: int = 256) -> list:
    """``count`` JPEGs of ``side`` px with smooth structure and noise (decoding cost like a photo's), and the
    metadata CSV that names them; their records."""
    from PIL import Image

    from mame.data.metadata import read_metadata

    images = folder / "data_256"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    grid = np.linspace(0, 6 * np.pi, side)
    rows = []
    for i in range(count):
        a, b, c = rng.uniform(0.5, 2.0, 3)
        base = 127 + 60 * np.sin(a * grid[:, None] + b * grid[None, :])[..., None] * np.array([1.0, 0.7, 0.4 * c])
        pixels = np.clip(base + rng.normal(0, 18, (side, side, 3)), 0, 255).astype(np.uint8)
        name = f"{i}.jpg"
        Image.fromarray(pixels).save(images / name, quality=90)
        medium = CLASS_NAMES[i % len(CLASS_NAMES)]
        rows.append(f"{name},{medium},M,{i},train,{side}.0,{side}.0,{side * side}.0,1.0")
    (folder / "MAMe_dataset.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return read_metadata(folder).records


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("inf")


def _iterate(dataset) -> float:
    """Seconds to draw every batch as the tensors Keras' ``fit``/``predict`` take (no copy to numpy)."""
    start = time.perf_counter()
    for _ in dataset:
        pass
    return time.perf_counter() - start


def decode_rates(records, image_dir: Path, size: int = 224) -> dict:
    """Decode + resize only (no model), images/s: without the cache (every pass decodes, as before it), filling
    the cache (decoding side by side), and from the cache; each pass delivers the batches the models take (uint8
    pixels, cast by Keras at the model's input; median pass: the warm one is memory traffic, noisy when shared)."""
    from mame.data import image_cache, pipeline

    _iterate(pipeline.make_dataset(records[:8], image_dir, image_size=size, cache=False))  # TensorFlow warmed up
    uncached = pipeline.make_dataset(records, image_dir, image_size=size, batch_size=64, cache=False)
    cold = sorted(_iterate(uncached) for _ in range(3))[1]  # median of 3, as the warm figure is a median
    start = time.perf_counter()
    cached = pipeline.make_dataset(records, image_dir, image_size=size, batch_size=64)
    fill = time.perf_counter() - start
    warm = sorted(_iterate(cached) for _ in range(WARM_PASSES))[WARM_PASSES // 2]
    return {"images": len(records), "size": size, "cold_per_s": _rate(len(records), cold),
            "fill_per_s": _rate(len(records), fill), "warm_per_s": _rate(len(records), warm),
            "warm_over_cold": round(cold / warm, 1), "cache": image_cache.describe_use(image_cache.cache_root())}


def backbone_rates(key: str, precision: str, records, image_dir: Path, *, batch: int = 16) -> dict:
    """images/s of one backbone's feature extractor: in-memory arrays, our pipeline uncached, and cached."""
    import keras

    from mame.data import pipeline
    from mame.models import builders

    previous = builders.configure_precision(precision)
    try:
        keras.utils.set_random_seed(0)
        spec = builders.get_backbone(key)
        size = spec.default_size
        model = builders.build_feature_extractor(key, image_size=size, weights_choice="random")
        arrays = pipeline.load_arrays(records, image_dir, image_size=size, batch_size=batch)[0]

        def dataset(cache: bool):
            made = pipeline.make_dataset(records, image_dir, image_size=size, batch_size=batch, cache=cache)
            return made.map(lambda images, labels: images)

        sources = {"ceiling": lambda: arrays, "cold": lambda: dataset(False), "warm": lambda: dataset(True)}
        best = dict.fromkeys(sources, float("inf"))
        for name, source in sources.items():  # each kind of input traced once, not timed
            model.predict(source().take(1) if name != "ceiling" else arrays[:batch], batch_size=batch, verbose=0)
        for _ in range(2):  # alternating, best of two: the machine's other load counts least
            for name, source in sources.items():
                made = source()
                start = time.perf_counter()
                model.predict(made, batch_size=batch, verbose=0)
                best[name] = min(best[name], time.perf_counter() - start)
        ceiling, cold, warm = (_rate(len(records), best[k]) for k in ("ceiling", "cold", "warm"))
        return {"backbone": key, "precision": precision, "size": size, "images": len(records),
                "in_memory_per_s": ceiling, "pipeline_cold_per_s": cold, "pipeline_warm_per_s": warm,
                "warm_over_ceiling": round(warm / ceiling, 3), "cold_over_ceiling": round(cold / ceiling, 3)}
    finally:
        builders.configure_precision(previous)
        keras.backend.clear_session()


def finetune_rate(precision: str, *, size: int = 64, batch: int = 32, steps: int = 6) -> dict:
    """Train steps of the demo's VGG16 fine-tuning (blocks 4-5 and a 512-512-29 head trainable), images/s."""
    import keras

    from mame.models import builders

    previous = builders.configure_precision(precision)
    try:
        keras.utils.set_random_seed(0)
        spec = builders.get_backbone("vgg16")
        model = builders.build_transfer_model("vgg16", num_classes=len(CLASS_NAMES), image_size=size,
                                              dense_units=(512, 512), trainable_from=spec.finetune_from)
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
        y = rng.integers(0, len(CLASS_NAMES), batch)
        model.train_on_batch(x, y)  # traced once, not timed
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        return {"backbone": "vgg16", "precision": precision, "size": size, "batch": batch,
                "train_per_s": _rate(steps * batch, time.perf_counter() - start)}
    finally:
        builders.configure_precision(previous)
        keras.backend.clear_session()


def measure(out, *, images: int = 32, decode_images: int = 384, backbones=BACKBONES) -> dict:
    """Every throughput figure, printed as it comes; the whole as a dict."""
    from mame.data import image_cache

    warnings.filterwarnings("ignore", message="Your input ran out of data")  # Keras, at the end of each predict
    precisions = ["float32"] + (["mixed_bfloat16"] if cpu_has_bf16() else [])
    found: dict = {"precisions": precisions}
    with tempfile.TemporaryDirectory(prefix="mame-bench-images-") as tmp:
        saved = os.environ.get(image_cache.CACHE_ENV)
        os.environ[image_cache.CACHE_ENV] = str(Path(tmp) / "cache")  # a private cache: cold means cold
        try:
            records = write_images(Path(tmp) / "set", decode_images)
            image_dir = Path(tmp) / "set" / "data_256"
            found["decode"] = decode = decode_rates(records, image_dir)
            print(f"decode  224 px, {decode['images']} images: uncached {decode['cold_per_s']:,.0f}/s, filling the "
                  f"cache {decode['fill_per_s']:,.0f}/s, from the cache {decode['warm_per_s']:,.0f}/s "
                  f"({decode['warm_over_cold']}x)", file=out, flush=True)
            found["backbones"] = []
            for key in backbones:
                for precision in precisions:
                    rates = backbone_rates(key, precision, records[:images], image_dir)
                    found["backbones"].append(rates)
                    print(f"model   {key:<18} {precision:<15} {rates['size']} px  in memory "
                          f"{rates['in_memory_per_s']:7.1f}/s  pipeline cold {rates['pipeline_cold_per_s']:7.1f}/s "
                          f"warm {rates['pipeline_warm_per_s']:7.1f}/s  warm/ceiling {rates['warm_over_ceiling']:.2f}",
                          file=out, flush=True)
        finally:
            os.environ.pop(image_cache.CACHE_ENV, None)
            if saved is not None:
                os.environ[image_cache.CACHE_ENV] = saved
    found["finetune"] = []
    for precision in precisions:
        rate = finetune_rate(precision)
        found["finetune"].append(rate)
        print(f"train   vgg16 fine-tuning {precision:<15} {rate['size']} px batch {rate['batch']}: "
              f"{rate['train_per_s']:.1f} images/s", file=out, flush=True)
    return found
