"""The JSON Schema of ``experiments/plan.yaml``, built from one table of parameters.

The schema file ``mame/engine/schema/plan.schema.json`` is what both the runner (``mame.engine.plan.check``) and
editors read (plan.yaml's first line points YAML language servers at it). It is draft-07, the draft those
servers implement, so every mapping that takes notebook parameters (a profile's ``params`` and ``force``, a
variant) lists them itself, with their types and ranges: they are written once here, in ``PARAMETERS``. Those
mappings stay open to other names (a notebook of the user's own may declare more): whether a name belongs to the
notebook it goes to is ``mame.engine.plan.rules``'s check. ``python -m
mame.engine.plan.reference`` (``make docs``) writes the file and its key reference ``experiments/plan-keys.md``; a
test checks that both are current.

Whether a key belongs to the notebook of the stage it is set for, and what the runs then resolve to, is checked
in ``mame.engine.plan.check`` after the schema: a schema cannot know the notebooks.
"""

from __future__ import annotations

import json
from functools import lru_cache

from mame import config
from mame.engine.plan.profiles import DEFAULT_TIMEOUTS
from mame.names import MAX_NAME_LENGTH, NAME_PATTERN

SCHEMA_FILE = config.SCHEMA_DIR / "plan.schema.json"
KEYS_DOC = config.EXPERIMENTS_DIR / "plan-keys.md"

# Every stage and backbone the package knows (tests compare them with mame.deck.sections.registry and mame.models.backbones).
STAGES = ("scratch", "features", "similarity", "classify", "finetune", "evaluate", "explain")
BACKBONES = ("vgg16", "resnet50", "efficientnetb0", "efficientnetb3", "efficientnetlite0")
CLASSIFIERS = ("logistic_regression", "linear_svm", "linear_svc", "knn", "rbf_svc", "random_forest", "mlp")
PROJECTIONS = ("pca", "tsne", "umap")
WEIGHT_POLICIES = ("random", "imagenet-if-cached", "imagenet-if-available", "imagenet")
SYNTH_SIZE = (16, 1024)  # mame.data.synthetic.generator.MIN_SIZE, MAX_SIZE (a test compares them)


def _int(minimum: int, text: str, *, null: str | None = None, maximum: int | None = None) -> dict:
    out = {"type": ["integer", "null"] if null else "integer", "minimum": minimum, "description": text}
    if maximum is not None:
        out["maximum"] = maximum
    if null:
        out["description"] += f" (null: {null})"
    return out


def _rate(text: str) -> dict:
    return {"type": "number", "exclusiveMinimum": 0, "description": text}


def _enum(values, text: str, *, null: str | None = None) -> dict:
    values = list(values) + ([None] if null else [])
    return {"enum": values, "description": text + (f" (null: {null})" if null else "")}


def _list(items: dict, text: str, *, min_items: int = 1, null: str | None = None) -> dict:
    out = {"type": ["array", "null"] if null else "array", "items": items, "minItems": min_items,
           "description": text + (f" (null: {null})" if null else "")}
    return out


_POSITIVE_INT = {"type": "integer", "minimum": 1}
_STAGE = {"enum": list(STAGES)}
_BACKBONE = {"enum": list(BACKBONES)}

# Every parameter a notebook declares (the runner's own, run_dir ... checkpoint_dir, are not the plan's to set).
PARAMETERS: dict[str, dict] = {
    "image_size": _int(8, "input side in pixels", null="the backbone's default, 224 (EfficientNetB3 300)"),
    "batch_size": _int(1, "images per batch"),
    "epochs": _int(1, "training epochs (finetune: of phase 2, the backbone unfrozen)"),
    "head_epochs": _int(0, "finetune phase 1: epochs of the new head alone, backbone frozen (0: none)"),
    "learning_rate": _rate("optimiser step size (finetune: of phase 2)"),
    "head_learning_rate": _rate("finetune phase 1: the head's learning rate"),
    "filters": _list(_POSITIVE_INT, "scratch: filters of each conv block, one entry a block"),
    "convs_per_block": _int(1, "scratch: convolutions in each block"),
    "batch_norm": {"type": "boolean", "description": "scratch: batch normalisation after every convolution"},
    "pooling": _enum(("flatten", "avg"), "scratch: flatten, or global average pooling, before the head"),
    "dense_units": _list(_POSITIVE_INT, "widths of the dense layers of the head", min_items=0),
    "dropout_rate": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "description": "dropout before the classifier"},
    "l2": {"type": "number", "minimum": 0, "description": "L2 weight decay on every kernel (0: none)"},
    "augment": {"type": "boolean", "description": "flips, crops, brightness and contrast jitter"},
    "shape": _enum(("fixed", "variable"), "fixed: images squeezed to image_size x image_size (MAMe's R65k-FS); variable: "
                                          "aspect ratio kept at about image_size² pixels (R65k-VS)"),
    "placement": _enum(("corner", "centre"), "variable shape: image top-left, pooled over its valid region; or centred "
                                             "on a mid-grey pad, pooled over all of it (the MAMe paper's)"),
    "patience": _int(1, "early stopping: epochs without a better val accuracy", null="never stop early"),
    "precision": _enum(("auto", "float32", "mixed_bfloat16"), "arithmetic (auto: bfloat16 where the CPU or GPU has it)"),
    "max_per_class": _int(1, "subsample train and val to this many images a class", null="every image"),
    "weights": {"type": "string", "minLength": 1, "description": "initial weights: one of "
                + ", ".join(WEIGHT_POLICIES) + ", or the path of a weights file"},
    "feature_layer": {"type": ["string", "null"], "minLength": 1,
                      "description": "the layer whose activations are the features (VGG16: fc1 or fc2; null: the backbone's own)"},
    "extra_layers": {"anyOf": [{"const": "above"}, {"type": "array", "items": {"type": "string", "minLength": 1}}],
                     "description": "features: also saved from the same pass: above (the layers above feature_layer) or a list"},
    "source": _enum(("imagenet", "finetune"), "features: the backbone as built with `weights`, or the best fine-tuning run's"),
    "n_groups": _int(2, "features: clusters of class centroids whose separability is measured"),
    "top_k": _int(1, "similarity: ImageNet classes kept per image"),
    "examples": _int(0, "similarity: validation images shown with their ImageNet labels"),
    "classifiers": _list(_enum(CLASSIFIERS, "a classifier"), "classify: the classifiers trained on the features"),
    "grids": {"type": "object", "propertyNames": {"enum": list(CLASSIFIERS)},
              "additionalProperties": {"type": "object", "additionalProperties": {"type": "array", "minItems": 1}},
              "description": "classify: per classifier, the values tried per hyper-parameter, e.g. {knn: {n_neighbors: [1, 5]}}"},
    "search": _enum(("grid", "none"), "classify: every setting of the grid (best on val), or the first only"),
    "max_iter": _int(1, "classify: iterations of the iterative classifiers"),
    "standardize": {"type": "boolean", "description": "classify: standardise the features first"},
    "rbf_svc_max_train": _int(1, "classify: the RBF SVM's training images at most (a seeded class-balanced sample; its "
                                 "fit grows with about their square)", null="every training image"),
    "trainable_from": {"type": ["string", "null"], "minLength": 1,
                       "description": "finetune: first layer unfrozen in phase 2 (auto: the registry's; null: none)"},
    "devices": _list({"type": "string", "minLength": 1}, "finetune: devices to train on", null="every visible GPU"),
    "select": _enum(("best-per-backbone", "all"), "evaluate: the best fine-tuning step per backbone, or every step"),
    "include_scratch": {"type": "boolean", "description": "evaluate: also the best scratch rung"},
    "include_classify": {"type": "boolean", "description": "evaluate: also the best classifier on each backbone's features"},
    "ensemble_stages": _list(_STAGE, "evaluate: stages whose models may be averaged"),
    "ensemble_exhaustive_up_to": _int(1, "evaluate: every subset up to this many models, else greedy on val"),
    "bootstrap": _int(1, "resamples for the 95 % intervals"),
    "per_class": _int(1, "explain: validation images per class"),
    "target": _enum(("true", "predicted"), "explain: the class each map explains"),
    "grid": _enum(("common", "last"), "explain: every model's map as fine as the finest last-conv map among them "
                                      "(like for like), or each model's last conv layer"),
}

_SEEDS = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "uniqueItems": True,
          "description": "one run per seed (run names end in -s<seed>); the deck shows mean ± std over them"}
_RESOURCES = {"type": "object", "additionalProperties": False, "description": "what one run asks a Ray cluster for",
              "properties": {"num_cpus": {"type": "number", "minimum": 0}, "num_gpus": {"type": "number", "minimum": 0},
                             "memory": {"type": "number", "minimum": 0, "description": "bytes"}}}


def _params(text: str) -> dict:
    # open to names it does not know: a notebook of the user's own may declare more (mame.engine.plan.rules checks
    # every name against the notebook it goes to); the names it knows get their types and ranges
    return {"type": "object", "properties": dict(PARAMETERS), "description": text}


def _closed(properties: dict, text: str, required: tuple[str, ...] = ()) -> dict:
    out = {"type": "object", "additionalProperties": False, "properties": properties, "description": text}
    if required:
        out["required"] = list(required)
    return out


def _variant() -> dict:
    reserved = {
        "about": {"type": "string", "description": "one line shown on the variant's slide"},
        "needs": {"type": "object", "propertyNames": _STAGE, "additionalProperties": {"$ref": "#/definitions/name"},
                  "description": "which variant of a needed stage it reads, {stage: variant}"},
        "backbones": {**_list(_BACKBONE, "run it for these of the stage's backbones only"), "uniqueItems": True},
        "reads": _list(_STAGE, "stages it reads whole, on top of the stage's reads", min_items=0),
        "seeds": _SEEDS,
    }
    return {"type": ["object", "null"], "properties": {**reserved, **PARAMETERS},
            "description": "what differs from the notebook's parameters cell, plus the reserved keys"}


def _stage() -> dict:
    return _closed({
        "notebook": {"type": "string", "pattern": r"\.ipynb$", "description": "the notebook, relative to experiments/"},
        "backbones": {**_list(_BACKBONE, "the backbones it runs for (none: one run a variant)"), "uniqueItems": True},
        "needs": {**_list(_STAGE, "stages whose run of the same backbone it needs", min_items=0), "default": []},
        "reads": {**_list(_STAGE, "stages whose runs it reads whole", min_items=0), "default": []},
        "variants": {"type": "object", "minProperties": 1, "propertyNames": {"$ref": "#/definitions/name"},
                     "additionalProperties": {"$ref": "#/definitions/variant"}, "default": {"default": {}},
                     "description": "its variants"},
        "seeds": _SEEDS,
    }, "one stage of the study", required=("notebook",))


def _data() -> dict:
    synthetic = _closed({
        "source": {"const": "synthetic"},
        "train_per_class": _int(1, "training images per class"),
        "val_per_class": _int(1, "validation images per class"),
        "test_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                          "description": "share of the official per-class test counts (at least 1 a class)"},
        "size": _int(SYNTH_SIZE[0], "long side of the images in pixels", maximum=SYNTH_SIZE[1]),
    }, "synthetic MAMe generated by the project", required=("source", "train_per_class", "val_per_class", "test_fraction", "size"))
    real = _closed({"source": {"const": "mame"},
                    "path": {"type": "string", "minLength": 1, "description": "the MAMe folder, when MAME_DIR is not set"}},
                   "the real MAMe (MAME_DIR)", required=("source",))
    column = {"type": "string", "minLength": 1}
    folder = _closed({
        "source": {"const": "folder"},
        "path": {"type": "string", "minLength": 1, "description": "the dataset: a folder of class folders (with or "
                 "without train/validation/test folders above them), a folder with a metadata.csv, or a CSV file"},
        "name": {"type": "string", "minLength": 1, "description": "the dataset's name on the slides (default: its folder's)"},
        "layout": {**_enum(("auto", "folders", "csv"), "how the images are laid out"), "default": "auto"},
        "csv": {"type": "string", "minLength": 1, "description": "the CSV naming the images, in the folder (default metadata.csv)"},
        "columns": _closed({"file": {**column, "default": "file_name", "description": "the image's path"},
                            "label": {**column, "default": "label", "description": "the image's class"},
                            "split": {**column, "default": "split", "description": "its split (optional column)"}},
                           "the CSV's column names"),
        "images": {"type": "string", "minLength": 1, "description": "the folder below the CSV's that the file names start from"},
        "classes": {**_list({"type": "string", "minLength": 1}, "the class order (default: sorted names)"), "uniqueItems": True},
        "split": _closed({"val": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5, "default": 0.15,
                                  "description": "share of each class drawn for validation when the data gives no val split"},
                          "test": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5, "default": 0.15,
                                   "description": "share of each class drawn for test when the data gives no test split"}},
                         "the seeded, stratified split drawn where the data gives none (the profile's seed)"),
    }, "any image-classification dataset on disk (make report DATA=/path, or --data; a profile without a path "
       "takes it from --data only)", required=("source",))
    return {"type": "object", "required": ["source"], "description": "where the images come from",
            "properties": {"source": _enum(("synthetic", "mame", "folder"),
                                           "synthetic (generated), the real MAMe, or a dataset folder")},
            "if": {"properties": {"source": {"const": "synthetic"}}}, "then": synthetic,
            "else": {"if": {"properties": {"source": {"const": "mame"}}}, "then": real,
                     "else": {"if": {"properties": {"source": {"const": "folder"}}}, "then": folder}}}


def _profile_stage() -> dict:
    return _closed({
        "params": _params("this stage's parameters in this profile"),
        "force": _params("parameters forced for this stage whatever a variant says"),
        "pretrained": _closed({"params": _params("params of runs whose backbone starts from ImageNet weights"),
                               "force": _params("force of runs whose backbone starts from ImageNet weights")},
                              "settings of the runs whose backbone starts from ImageNet weights"),
        "random_weights": {**_enum(("run", "skip"), "run or leave out the runs of a backbone left with random weights"),
                           "default": "run"},
        "backbones": {**_list(_BACKBONE, "run the stage for these of its backbones only"), "uniqueItems": True},
        "variants": {"type": "object", "description": "per variant, {backbones: [...]}: run it for these backbones "
                                                      "only in this profile ([]: not at all)",
                     "additionalProperties": _closed({"backbones": {**_list(_BACKBONE, "the backbones that run it", min_items=0),
                                                                    "uniqueItems": True}},
                                                     "this profile's settings for one variant")},
        "resources": _RESOURCES,
        "seeds": _SEEDS,
    }, "the profile's settings for one stage")


def _profile() -> dict:
    return _closed({
        "data": {"$ref": "#/definitions/data"},
        "params": _params("parameters of every stage whose notebook has them"),
        "force": _params("parameters forced on every stage whatever a variant says (a profile's scale)"),
        "backbones": {**_list(_BACKBONE, "run only these backbones"), "uniqueItems": True},
        "seed": {**_int(0, "the seed of every run"), "default": 0},
        "seeds": _SEEDS,
        "timeouts": _closed({"start": {**_int(1, "seconds for a kernel to start"), "default": DEFAULT_TIMEOUTS["start"]},
                             "execution": {**_int(1, "seconds a run may take"), "default": DEFAULT_TIMEOUTS["execution"]}},
                            "timeouts of each run"),
        "report": _closed({"projections": {**_list(_enum(PROJECTIONS, "a method"), "2-D projections of the features"),
                                           "default": ["pca"]},
                           "projections_3d": {**_list(_enum(PROJECTIONS, "a method"), "interactive 3-D views", min_items=0),
                                              "default": []},
                           "points_per_class": {**_int(1, "points a class in the projections"), "default": 100}},
                          "what the deck draws"),
        "stages": {"type": "object", "propertyNames": _STAGE, "additionalProperties": {"$ref": "#/definitions/profile_stage"},
                   "description": "settings per stage"},
        "resources": _RESOURCES,
        "size_from_data": {"type": "boolean", "default": False,
                           "description": "size the study from the dataset and the machine when a command starts (the "
                                          "auto profile: backbones, image sizes, epochs and images a class, printed "
                                          "before it runs); what the profile sets itself wins"},
    }, "data, scale and settings of one way to run the plan", required=("data",))


def build_schema() -> dict:
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "MAMe study plan (experiments/plan.yaml)",
        "description": "Generated by `python -m mame.engine.plan.reference` (make docs) from mame/engine/plan/schema_build.py.",
        "type": "object", "additionalProperties": False, "required": ["stages", "profiles"],
        "properties": {
            "stages": {"type": "object", "minProperties": 1, "propertyNames": _STAGE,
                       "additionalProperties": {"$ref": "#/definitions/stage"}, "description": "the stages, in study order"},
            "profiles": {"type": "object", "minProperties": 1, "propertyNames": {"$ref": "#/definitions/name"},
                         "additionalProperties": {"$ref": "#/definitions/profile"}, "description": "ways to run the plan"},
        },
        "definitions": {
            "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_LENGTH,
                     "description": "a safe name: letters, digits, '.', '_', '-', starting with a letter or digit"},
            "stage": _stage(), "variant": _variant(), "data": _data(), "profile": _profile(),
            "profile_stage": _profile_stage(),
        },
    }


def schema_text() -> str:
    return json.dumps(build_schema(), indent=1, ensure_ascii=False) + "\n"


@lru_cache(maxsize=1)
def load_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
