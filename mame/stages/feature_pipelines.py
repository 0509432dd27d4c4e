"""The feature-extraction approach on the test split, for the ``evaluate`` stage: per backbone, the best
classifier-on-features pipeline (a ``classify`` run's classifier on its ``features`` run's features of the
frozen ImageNet backbone), chosen on validation only, then rebuilt to predict the test images.

Candidates: every classifier of every ``classify`` run handed over (``inputs["classify"]``) whose features
run (its ``run.depends_on.features``, among ``inputs["features"]``) built the backbone itself (features
``source == "imagenet"``): the default variant, and VGG16's ``dense-head``, which reads fc2 of that same run.
Classifiers on *fine-tuned* features (``features/vgg16-finetuned``, ``source == "finetune"``) are left out:
that is the fine-tuning approach, whose models evaluate scores as they are. Within a backbone the best
(classifier, setting) on validation wins; ties keep the earlier one (plan order, then the run's order).

Nothing is unpickled. The classifier is refitted from the features run's saved train features with the
setting the classify run recorded (its chosen hyper-parameters, ``max_iter``, ``standardize``, and its seed
as every stochastic classifier's ``random_state``), and must reproduce the recorded validation accuracy.
The extractor is built again from the features run's record (backbone, image size, feature layer and the
layers saved beside it, precision, the weights choice with its file, the seed set before building) and
checked on ``GUARD_IMAGES`` of the run's validation images against its saved features before the test
split is read; a mismatch is an error naming the features run to re-run. The test images themselves are
read by ``mame.stages.evaluate`` (the only stage that does), which hands the batches in.

Class probabilities (for ensembles and the error gallery): ``predict_proba`` where the classifier has it
(logistic regression, kNN, random forest, MLP); the SVMs have none, so their scores are a softmax of
``decision_function``, recorded as such, and they are left out of ensembles (their scores are not
calibrated probabilities).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mame.data import input_shape
from mame.stages import classify
from mame.stages.support.selection import Candidate, check_identity, display_name, seed_said, shape_said

FROZEN = "imagenet"          # a features run's source when it built the backbone itself (not fine-tuned)
GUARD_IMAGES = 8             # validation images re-extracted to check the rebuilt extractor
TOLERANCE = {"float32": 1e-4}  # relative difference allowed by the check; bfloat16 keeps ~3 digits
LOW_PRECISION_TOLERANCE = 2e-2
REFIT_TOLERANCE = 1e-9       # the refit's validation accuracy against the recorded one
PROBA, SOFTMAX = "predict_proba", "softmax of decision_function"
EXTRACTOR_KEYS = ("key", "image_size", "feature_layer", "extra_layers", "precision", "weights_choice")


class ExtractorMismatch(ValueError):
    """The extractor built again from a features run's record does not give that run's features."""


@dataclass
class Pipeline(Candidate):
    classifier: str = ""
    params: dict = field(default_factory=dict)      # the setting the classify run chose on validation
    settings: dict = field(default_factory=dict)    # how it fitted: max_iter, standardize, seed, rbf_svc_max_train
    feature_layer: str | None = None                # the classify run's parameter (None: the run's own layer)
    layer: str = ""                                 # the layer it classified, as it recorded it
    features_name: str = ""
    features_path: Path = Path()
    extractor: dict = field(default_factory=dict)   # the features run's record of its extractor, and its seed
    probabilities_from: str = ""
    model: object = None                            # the refitted scikit-learn pipeline
    check: dict = field(default_factory=dict)       # the extractor check's result
    classes: tuple[str, ...] = ()                   # the dataset's class names (from its features)

    @property
    def name(self) -> str:
        return f"{self.stage}/{self.run}/{self.classifier}"

    @property
    def features_run(self) -> str:
        return f"features/{self.features_name}"

    @property
    def probabilistic(self) -> bool:
        return self.probabilities_from == PROBA

    def record(self) -> dict:
        """What evaluate's ``metrics.chosen`` entry adds for a pipeline."""
        return {"classifier": self.classifier, "params": self.params, "features_run": self.features_run,
                "feature_layer": self.layer, "probabilities": self.probabilities_from,
                "in_ensembles": self.probabilistic, "refit": self.settings, "extractor_check": self.check}


def _metrics(folder: Path) -> dict:
    path = folder / "metrics.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the run's metrics: {exc}") from None


def _features_of(run: dict, metrics: dict, handed: dict) -> tuple[dict, dict]:
    """The identity and metrics of the features run a classify run read, checked to be the same run."""
    dep = (metrics["run"].get("depends_on") or {}).get("features")
    if not dep:
        raise ValueError(f"classify/{run['name']}: its metrics.json names no features run (run.depends_on.features)")
    identity = handed.get(dep["name"])
    if identity is None:
        raise ValueError(f"classify/{run['name']} read features/{dep['name']}, which the plan does not hand evaluate "
                         f"(give it `reads: [features]`; handed: {sorted(handed)})")
    found = _metrics(Path(identity["folder"]))
    if found["run"]["cache_key"] != dep["cache_key"]:
        raise ValueError(f"classify/{run['name']} was fitted on features/{dep['name']} with cache key {dep['cache_key']}, "
                         f"which now has {found['run']['cache_key']}: re-run classify/{run['name']}")
    return identity, found


def candidates(inputs: dict) -> list[Pipeline]:
    """Every classifier of every classify run on frozen-backbone features, each with its recorded validation
    accuracy; per backbone in plan order, then in the run's order."""
    handed = {n: check_identity("features", n, i) for n, i in (inputs.get("features") or {}).items()}
    runs = [check_identity("classify", n, i) for n, i in (inputs.get("classify") or {}).items()]
    found = []
    for run in sorted(runs, key=lambda i: (i["backbone"] or "", i["step"], i["name"])):
        folder = Path(run["folder"])
        metrics = _metrics(folder)
        features_identity, features_metrics = _features_of(run, metrics, handed)
        if features_metrics["metrics"].get("source", FROZEN) != FROZEN:
            continue  # fine-tuned features: the fine-tuning approach
        params = metrics["run"]["params"]
        defaults = classify.ClassifyConfig  # a run that did not record the parameter ran with its default
        settings = {"max_iter": params.get("max_iter", defaults.max_iter),
                    "standardize": params.get("standardize", defaults.standardize), "seed": metrics["run"].get("seed", 0),
                    "rbf_svc_max_train": params.get("rbf_svc_max_train", defaults.rbf_svc_max_train)}
        extractor = {k: v for k, v in features_metrics["metrics"].items() if k in EXTRACTOR_KEYS + input_shape.SETTINGS + ("seed",)}
        for row in metrics["metrics"]["classifiers"]:
            found.append(Pipeline("classify", run["name"], folder, float(row["val_accuracy"]), {}, run["backbone"],
                                  variant=run["variant"], step=run["step"], seed=run["seed"],
                                  shape=str(features_metrics["metrics"].get("shape", "fixed")), classifier=row["classifier"],
                                  params=dict(row.get("params") or {}), settings=settings,
                                  feature_layer=params.get("feature_layer"),
                                  layer=metrics["metrics"].get("feature_layer") or "",
                                  features_name=features_identity["name"], features_path=Path(features_identity["folder"]),
                                  extractor=extractor))
    return found


def choose(inputs: dict) -> list[Pipeline]:
    """Per backbone and input shape, the pipeline best on validation, refitted (with validation probabilities),
    each with a one-line ``why``; best first."""
    per_backbone: dict[tuple, list[Pipeline]] = {}
    found = candidates(inputs)
    for p in found:
        per_backbone.setdefault((p.backbone, p.shape), []).append(p)
    chosen = []
    for options in per_backbone.values():
        best = max(options, key=lambda p: p.val_accuracy)  # ties keep the first
        layers = sorted({p.layer for p in options if p.layer})
        on = f"{display_name(best.backbone)}{shape_said(best.shape)} features" + (
            f" ({', '.join(layers)})" if len(layers) > 1 else "")
        best.why = (f"best of {len(options)} classifiers on {on} on validation" if len(options) > 1
                    else f"the only classifier on {on}") + seed_said(best, options)
        refit(best)
        chosen.append(best)
    return sorted(chosen, key=lambda p: -p.val_accuracy)


def refit(p: Pipeline) -> None:
    """Fit ``p``'s classifier again from the saved train features as the classify run did; its validation
    accuracy must equal the recorded one (else ValueError naming the runs). Sets ``p.model`` and ``p.val``."""
    features = classify.load_features(p.features_path, ("train", "val"), layer=p.feature_layer)
    model, _, _ = classify.fit_one(features, p.classifier, p.params, seed=p.settings["seed"],
                                   max_iter=p.settings["max_iter"], standardize=p.settings["standardize"],
                                   max_train=p.settings["rbf_svc_max_train"] if p.classifier == "rbf_svc" else None)
    y_pred = model.predict(features.x["val"]).astype(np.int32)
    accuracy = float(np.mean(y_pred == features.y["val"]))
    if abs(accuracy - p.val_accuracy) > REFIT_TOLERANCE:
        raise ValueError(f"{p.name}: refitted from {p.features_run}'s train features with {p.params} "
                         f"({p.settings}), it scores {accuracy:.4f} on validation, not the {p.val_accuracy:.4f} the "
                         f"classify run recorded: re-run classify/{p.run}")
    probabilities, p.probabilities_from = class_probabilities(model, features.x["val"], len(features.classes))
    p.model, p.classes = model, features.classes
    p.val = {"y_true": features.y["val"], "y_pred": y_pred, "probabilities": probabilities,
             "files": features.files.get("val", np.array([]))}


def class_probabilities(model, x: np.ndarray, n_classes: int) -> tuple[np.ndarray, str]:
    """(n, n_classes) float32 class scores and where they come from: ``predict_proba``, else a softmax of
    ``decision_function``; classes absent from training get 0."""
    if hasattr(model, "predict_proba"):
        part, source = model.predict_proba(x), PROBA
    else:
        scores = np.asarray(model.decision_function(x), dtype=np.float64)
        if scores.ndim == 1:  # two classes: one margin
            scores = np.stack([-scores, scores], axis=1)
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        part, source = scores / scores.sum(axis=1, keepdims=True), SOFTMAX
    full = np.zeros((len(x), n_classes), dtype=np.float32)
    full[:, np.asarray(model.classes_, dtype=int)] = part
    return full, source


def build_extractor(p: Pipeline):
    """The features run's extractor built again from its record; returns (model, its ``InputShape``)."""
    from mame.models import builders
    from mame.models.backbones import WeightsChoice
    from mame.stages import features

    info = p.extractor
    missing = [key for key in EXTRACTOR_KEYS if key not in info]
    if missing:
        raise ValueError(f"{p.features_run}: its metrics.json does not record {', '.join(missing)} (written by an "
                         f"older features stage), so its extractor cannot be rebuilt: re-run {p.features_run}")
    choice = WeightsChoice(**info["weights_choice"])
    if choice.path and not Path(choice.path).is_file():
        raise ValueError(f"{p.features_run} was extracted with the weights file {choice.path}, which is not here: "
                         f"put it back or re-run {p.features_run}")
    previous = builders.configure_precision(info["precision"])
    try:
        extractor = features.build_extractor(info["key"], image_size=info["image_size"], weights=choice,
                                             feature_layer=info["feature_layer"], precision=info["precision"],
                                             extra_layers=list(info["extra_layers"]), seed=info.get("seed"),
                                             shape=info.get("shape", "fixed"), placement=info.get("placement", "corner"))
    finally:
        builders.configure_precision(previous)
    return extractor.model, input_shape.from_record(info)


def extract(p: Pipeline, model, dataset) -> np.ndarray:
    """The layer ``p`` classifies, for every image of ``dataset`` (an unshuffled ``make_dataset``), in record order."""
    from mame.data import pipeline
    from mame.models import extraction

    extra: dict = {}
    own, _ = extraction.extract_features(model, dataset, extra=extra)
    if p.feature_layer in (None, p.extractor["feature_layer"]):
        return pipeline.in_record_order(dataset, own)
    if p.feature_layer not in extra:
        raise ValueError(f"{p.features_run}: the rebuilt extractor gives no {p.feature_layer!r} layer")
    return pipeline.in_record_order(dataset, extra[p.feature_layer])


def check_extractor(p: Pipeline, model, data_dir: str | Path, *, batch_size: int = 32,
                    n_images: int = GUARD_IMAGES) -> dict:
    """Re-extract the first ``n_images`` validation images of the features run and compare with its saved
    features: ExtractorMismatch (naming the run to re-run) beyond the tolerance of its precision."""
    from mame.data import metadata, pipeline

    saved = classify.load_features(p.features_path, ("val",), layer=p.feature_layer)
    files = [str(f) for f in saved.files.get("val", [])][:n_images]
    by_file = {r.image_file: r for r in metadata.read_metadata(data_dir).split("val")}
    if not files or any(f not in by_file for f in files):
        raise ValueError(f"{p.features_run}: its saved validation images are not in {data_dir}'s validation split")

    dataset = pipeline.make_dataset([by_file[f] for f in files], metadata.find_image_dir(data_dir),
                                    batch_size=batch_size, **input_shape.from_record(p.extractor).dataset_args())
    again, before = extract(p, model, dataset), saved.x["val"][: len(files)]
    difference = float(np.linalg.norm(again - before) / max(np.linalg.norm(before), 1e-12))
    tolerance = TOLERANCE.get(p.extractor["precision"], LOW_PRECISION_TOLERANCE)
    if not difference <= tolerance:
        raise ExtractorMismatch(
            f"{p.features_run}: the extractor rebuilt from its record ({p.extractor['key']}, {p.extractor['image_size']} "
            f"px, layer {p.layer}, weights {p.extractor['weights_choice'].get('used')}, seed {p.extractor.get('seed')}) "
            f"gives features {difference:.3g} (relative) away from the run's saved validation features on {len(files)} "
            f"images (tolerance {tolerance:g}): its weights or code changed since. Re-run it "
            f"(python -m mame run --only {p.features_run} --force) and the classify runs on it."
            + (" A random initialisation is rebuilt from the recorded seed: a backbone whose initialisers do not "
               "follow keras.utils.set_random_seed (e.g. initialiser objects made at import) cannot be rebuilt, "
               "and re-running does not help." if p.extractor["weights_choice"].get("used") == "random" else ""))
    p.check = {"images": len(files), "relative_difference": difference, "tolerance": tolerance}
    return p.check


def predict(p: Pipeline, model, dataset, records: list) -> dict:
    """``p``'s predictions of ``records`` (batches of their images in ``dataset``, in order)."""
    x = extract(p, model, dataset)
    if len(x) != len(records):
        raise ValueError(f"{p.name}: extracted {len(x)} rows for {len(records)} images")
    probabilities, _ = class_probabilities(p.model, x, len(p.classes))
    return {"y_true": np.array([r.label for r in records], dtype=np.int32),
            "y_pred": np.asarray(p.model.predict(x), dtype=np.int32), "probabilities": probabilities,
            "files": np.array([r.image_file for r in records])}
