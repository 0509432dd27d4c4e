"""Stage ``evaluate``: the only stage that reads the test split.

Notebook ``06_evaluate.ipynb`` calls ``choose_models`` -> ``load_test`` -> ``predict_test`` -> ``ensembles``
-> ``compare`` -> ``save``. It takes the three approaches, each chosen on validation only: the best step of
each fine-tuned backbone, the best classifier-on-features pipeline of each backbone (feature extraction:
``mame.stages.feature_pipelines``, refitted and with its extractor rebuilt and checked) and the best scratch
rung; predicts the test split once per model (each read goes to the test-split ledger); averages the
probabilities of the fine-tuned and feature-extraction models into ensembles chosen on validation and scored
on test once (approaches may mix); and compares every model with the best single one on validation
(McNemar's test, bootstrap intervals; ``mame.stages.support.significance``). Fixed and variable shape are
not chosen between: each is chosen on validation within its shape and both go to test, where
``metrics["shapes"]`` compares them per approach and backbone (``shape_pairs``).

``inputs`` (from the plan's ``reads: [scratch, finetune, classify, features]``) is ``{stage: {run name:
identity}}``, an identity being the runner's ``{"stage", "backbone", "variant", "name", "seed", "folder",
"step"}``.

The run records the models it chose, and why, in ``metrics.json["metrics"]["chosen"]``: a list, one entry
per chosen single model, in the order chosen (the fine-tuned ones by validation accuracy, best first, then
the feature-extraction pipelines likewise, then the scratch rung)::

    {"model": "finetune/vgg16-step3",   # as in metrics["models"] and the classification keys ("<model>/test")
     "stage": "finetune", "run": "vgg16-step3", "backbone": "vgg16", "variant": "step3",
     "step": 3,                         # position among its backbone's variants of the stage, in plan order
     "seed": 0,                         # the run's seed (with several seeds, the one best on validation)
     "approach": "fine-tuning",         # scratch | feature extraction | fine-tuning
     "val_accuracy": 0.61,
     "why": "best of 6 VGG16 fine-tuning steps on validation",
     "best_step": true,                 # fine-tuned only: its backbone's step best on validation
     "reference": true}                 # the best single model on validation, which every other is compared with

(a scratch rung: ``"backbone": null``, ``"why": "best of 8 scratch rungs on validation"``). ``best_step`` is
the one record of each backbone's best fine-tuning step (``mame.stages.support.selection``): true on every fine-tuned
entry under ``select="best-per-backbone"``, on one per backbone under ``select="all"``; the deck's ladders
read it and never choose again. A pipeline's
``model`` is ``classify/<run>/<classifier>`` and its entry adds ``classifier``, ``params`` (its setting chosen
on validation), ``features_run``, ``feature_layer``, ``probabilities`` ("predict_proba" or "softmax of
decision_function"), ``in_ensembles``, ``refit`` (max_iter, standardize, seed) and ``extractor_check``
(images, relative_difference, tolerance). Exactly one entry has ``"reference": true``: the best single
model on validation over all approaches. ``explain`` takes its models from this record, never choosing
again (it skips the pipelines: no conv net to explain).

``metrics["models"]``: one row per model and one for the chosen ensemble: ``model``, ``kind`` (its stage, or
``ensemble``), ``approach``, ``val_accuracy``, test ``accuracy``, ``macro_f1``, ``ci_low``/``ci_high``,
``n_images``, ``reference``, and ``vs_best`` (McNemar) except on the reference.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mame import results
from mame.data import input_shape, metadata
from mame.data import ledger as split_ledger
from mame.metrics import classification_result
from mame.stages import feature_pipelines
from mame.stages.support import common, selection, significance
from mame.stages.support.parameters import IDENTITY, Notebook, StageConfig, param
from mame.stages.support.selection import Candidate

APPROACHES = {"scratch": "scratch", "classify": "feature extraction", "finetune": "fine-tuning",
              "ensemble": "ensemble"}
ENSEMBLE_STAGES = ("finetune", "classify")


@dataclass
class EvaluateConfig(StageConfig):
    """The stage parameters of ``06_evaluate.ipynb`` (its ``parameters`` cell is generated from these fields)."""
    select: str = param("best-per-backbone", "best-per-backbone | all (every fine-tuning step)")
    include_scratch: bool = param(True, "also the best scratch rung")
    include_classify: bool = param(True, "also the best classifier on each backbone's frozen features (feature extraction)")
    ensemble_stages: list[str] = param(list(ENSEMBLE_STAGES), "whose models may be averaged (add \"scratch\" for the rung)")
    ensemble_exhaustive_up_to: int = param(6, "every subset up to this many models, else greedy selection on val")
    bootstrap: int = param(1000, "resamples for the 95 % intervals")
    batch_size: int = param(32)


NOTEBOOK = Notebook("06_evaluate.ipynb", EvaluateConfig,
                    inputs_doc="{stage: {run name: identity}} for finetune, scratch, classify, features; identity: " + IDENTITY)


def choose_models(inputs: dict[str, dict[str, dict]], *, select: str = EvaluateConfig.select,
                  include_scratch: bool = EvaluateConfig.include_scratch,
                  include_classify: bool = EvaluateConfig.include_classify) -> list[Candidate]:
    """The models to score on test, chosen on validation only: the best step of each fine-tuned backbone
    (``select="all"``: every step; ``mame.stages.support.selection``), the best classifier-on-features pipeline of
    each backbone (``mame.stages.feature_pipelines``: refitted here, from validation data only) and the
    best scratch rung, in that order, each with a one-line ``why``."""
    trained = any(inputs.get(stage) for stage in ("finetune", "scratch"))
    base = selection.choose_models(inputs, select=select, include_scratch=include_scratch) if trained else []
    pipelines = feature_pipelines.choose(inputs) if include_classify else []
    chosen = [c for c in base if c.stage != "scratch"] + pipelines + [c for c in base if c.stage == "scratch"]
    if not chosen:
        raise ValueError("no finished finetune, classify or scratch run to evaluate (inputs: "
                         f"{ {k: sorted(v) for k, v in inputs.items()} })")
    selection.check_same_validation(chosen, "choosing the reference model across approaches")
    return chosen


def load_test(data_dir: str | Path, ledger: list) -> tuple[list, Path, tuple[str, ...]]:
    """The test split's records through the data layer's guarded reader, their image folder and the dataset's class
    names; the data layer records the read in ``ledger``, which the records carry: each later read of them goes
    there too."""
    meta = metadata.read_metadata(data_dir, ledger=ledger)
    records = metadata.read_test_split(meta, what="evaluate: the test split's records")
    return records, metadata.find_image_dir(data_dir), meta.classes


def predict_test(chosen: list[Candidate], records: list, image_dir: Path, *, ledger: list,
                 batch_size: int = EvaluateConfig.batch_size, data_dir: str | Path | None = None) -> None:
    """Each model's test probabilities, one pass per model, which the data layer records in ``ledger`` (one entry
    per model, in the words given to ``mame.data.ledger.reading``). A pipeline's extractor is
    rebuilt and checked on validation images of ``data_dir`` before its pass over the test images."""
    from mame.data import pipeline
    from mame.models import builders

    for c in chosen:
        if isinstance(c, feature_pipelines.Pipeline):
            if data_dir is None:
                raise ValueError(f"{c.name}: data_dir is needed to check its rebuilt extractor on validation images")
            model, shape = feature_pipelines.build_extractor(c)
            feature_pipelines.check_extractor(c, model, data_dir, batch_size=batch_size)
            with split_ledger.reading(ledger, what=f"evaluate: test predictions of {c.name} (test features from the rebuilt "
                                      f"{c.features_run} extractor, {c.layer})", model=c.name):
                dataset = pipeline.make_dataset(records, image_dir, batch_size=batch_size, allow_test=True,
                                                **shape.dataset_args())
            c.test = feature_pipelines.predict(c, model, dataset, records)
            del model
            continue
        model = builders.load_model(c.path / common.MODEL_FILE, compile=False)
        shape = input_shape.from_record(selection.run_metrics(c.path))
        with split_ledger.reading(ledger, what=f"evaluate: test predictions of {c.name}", model=f"{c.name}/{common.MODEL_FILE}"):
            c.test = common.predict(model, records, image_dir, image_size=shape, batch_size=batch_size, allow_test=True)
        del model


@dataclass
class Ensemble:
    members: list[str]
    val_accuracy: float
    val: dict
    test: dict

    @property
    def n_val(self) -> int:  # the validation images every member predicted
        return len(self.val["y_true"])


def _rows(parts: list[dict]) -> list[np.ndarray]:
    """Per member, the rows of the images all members predicted, in the first member's order: by file name
    where they differ (a training run may score a subsample of validation), else row by row."""
    files = [p.get("files") for p in parts]
    if any(f is None or len(f) == 0 for f in files) or all(np.array_equal(f, files[0]) for f in files):
        if any(len(p["y_true"]) != len(parts[0]["y_true"]) for p in parts):
            raise ValueError(f"ensemble members predicted {[len(p['y_true']) for p in parts]} images, without "
                             "file names to match them")
        return [np.arange(len(parts[0]["y_true"]))] * len(parts)
    common_files = set.intersection(*(set(map(str, f)) for f in files))
    order = [str(f) for f in files[0] if str(f) in common_files]
    if not order:
        raise ValueError("ensemble members share no image to average over")
    where = [{str(name): i for i, name in enumerate(f)} for f in files]
    return [np.array([w[name] for name in order]) for w in where]


def _average(members: list[Candidate], split: str) -> dict:
    parts = [getattr(m, split) for m in members]
    rows = _rows(parts)
    probs = np.mean([p["probabilities"][r] for p, r in zip(parts, rows)], axis=0)
    out = {"y_true": parts[0]["y_true"][rows[0]], "y_pred": probs.argmax(axis=1).astype(np.int32),
           "probabilities": probs.astype(np.float32)}
    if parts[0].get("files") is not None and len(parts[0]["files"]):
        out["files"] = parts[0]["files"][rows[0]]
    return out


def ensembles(chosen: list[Candidate], *, exhaustive_up_to: int = EvaluateConfig.ensemble_exhaustive_up_to,
              stages=ENSEMBLE_STAGES) -> dict:
    """Probability averages of the chosen models of ``stages`` (default: fine-tuned and feature-extraction
    models, which may mix; a pipeline whose classifier gives no probabilities is left out): every subset of
    two or more when there are at most ``exhaustive_up_to`` of them, else greedy forward selection on
    validation. The ensemble kept is the best on validation (on the validation images all its members
    predicted); test predictions are averaged from the members' (no new read of the test split)."""
    tuned = [c for c in chosen if c.stage in stages and getattr(c, "probabilistic", True) and not c.twin_of]
    what = ", ".join(f"{APPROACHES[s]}: {sum(c.stage == s for c in tuned)}" for s in stages
                     if any(c.stage == s for c in tuned))
    if len(tuned) < 2:
        return {"tried": [], "chosen": None,
                "method": f"none (fewer than two models with probabilities among {', '.join(APPROACHES[s] for s in stages)})"}
    if len(tuned) <= exhaustive_up_to:
        subsets = [list(s) for k in range(2, len(tuned) + 1) for s in itertools.combinations(tuned, k)]
        method = f"every subset of 2-{len(tuned)} of the {len(tuned)} models ({what})"
    else:
        subsets, current = [], [max(tuned, key=lambda c: c.val_accuracy)]
        while len(current) < len(tuned):
            options = [current + [c] for c in tuned if c not in current]
            best = max(options, key=lambda s: _val_acc(s))
            subsets.append(best)
            if _val_acc(best) < _val_acc(current) and len(current) >= 2:
                break
            current = best
        method = "greedy forward selection on validation"
    tried = [Ensemble([m.name for m in s], _val_acc(s), _average(s, "val"), _average(s, "test")) for s in subsets]
    chosen_one = max(tried, key=lambda e: (e.val_accuracy, -len(e.members)))
    return {"tried": tried, "chosen": chosen_one, "method": method}


def _val_acc(members: list[Candidate]) -> float:
    avg = _average(members, "val")
    return float((avg["y_pred"] == avg["y_true"]).mean())


def compare(chosen: list[Candidate], ensemble: dict, *, bootstrap: int = EvaluateConfig.bootstrap, seed: int = 0) -> list[dict]:
    """One row per model and for the chosen ensemble: val and test accuracy, macro F1, a bootstrap 95 %
    interval of the test accuracy, and McNemar's test against the best single model (best on val)."""
    best = max((c for c in chosen if not c.twin_of), key=lambda c: c.val_accuracy)
    entries = [(c.name, c.stage, c.val_accuracy, c.test) for c in chosen]
    if ensemble.get("chosen") is not None:
        e = ensemble["chosen"]
        entries.append(("ensemble: " + " + ".join(e.members), "ensemble", e.val_accuracy, e.test))
    rows = []
    for name, kind, val_acc, test in entries:
        row = {"model": name, "kind": kind, "approach": APPROACHES[kind], "val_accuracy": val_acc,
               **significance.accuracy_summary(test["y_true"], test["y_pred"], resamples=bootstrap, seed=seed)}
        row["reference"] = name == best.name
        if name != best.name:
            row["vs_best"] = significance.mcnemar_test(test["y_true"], best.test["y_pred"], test["y_pred"])
        rows.append(row)
    return rows


def shape_pairs(chosen: list[Candidate]) -> list[dict]:
    """Fixed against variable shape, per approach and backbone where both were chosen: their test accuracies and
    McNemar's test of the variable-shape model against the fixed-shape one on the same test images (``delta_pp``:
    variable minus fixed), the MAMe paper's R65k-FS vs R65k-VS question."""
    rows, by_name = [], {c.name: c for c in chosen}
    for variable in (c for c in chosen if c.shape == "variable" and c.stage != "scratch"):
        if variable.twin:  # a fine-tuning step: its fixed-shape twin, same settings
            fixed, how = by_name[variable.twin], "the same settings at fixed shape"
        else:  # a pipeline: the fixed-shape features' pipeline, chosen on validation the same way
            fixed = next((c for c in chosen if (c.stage, c.backbone, c.shape) == (variable.stage, variable.backbone, "fixed")
                          and not c.twin_of), None)
            how = "each shape's best on validation, chosen the same way"
        if fixed is None:
            continue
        rows.append({"approach": APPROACHES[variable.stage], "backbone": variable.backbone, "fixed": fixed.name,
                     "variable": variable.name, "paired_by": how, "fixed_val_accuracy": fixed.val_accuracy,
                     "variable_val_accuracy": variable.val_accuracy,
                     "fixed_accuracy": float((fixed.test["y_pred"] == fixed.test["y_true"]).mean()),
                     "variable_accuracy": float((variable.test["y_pred"] == variable.test["y_true"]).mean()),
                     "n_images": int(len(fixed.test["y_true"])),
                     "mcnemar": significance.mcnemar_test(fixed.test["y_true"], fixed.test["y_pred"],
                                                          variable.test["y_pred"])})
    return rows


def chosen_record(chosen: list[Candidate], reference: str) -> list[dict]:
    """What the run records of the models it chose (shape in the module docstring); ``reference`` is the
    ``model`` (``stage/run``) of the best single one."""
    return [{"model": c.name, "stage": c.stage, "run": c.run, "backbone": c.backbone, "variant": c.variant,
             "step": c.step, "seed": c.seed, "shape": c.shape, "approach": APPROACHES[c.stage],
             "val_accuracy": c.val_accuracy,
             **c.val_set, "why": c.why, "reference": c.name == reference,
             **({"twin_of": c.twin_of} if c.twin_of else {}), **({"twin": c.twin} if c.twin else {}),
             **({"best_step": c.best_step} if c.stage == "finetune" else {}),
             **(c.record() if isinstance(c, feature_pipelines.Pipeline) else {})}
            for c in chosen]


def save(run_dir: str | Path, chosen: list[Candidate], ensemble: dict, table: list[dict], ledger: list,
         classes: tuple[str, ...]) -> Path:
    run_dir = Path(run_dir)
    classification, artifacts = {}, {}
    for c in chosen:
        name = f"test_{c.name.replace('/', '_')}.npz"
        np.savez_compressed(run_dir / name, **c.test)
        artifacts[f"test/{c.name}"] = name
        classification[f"{c.name}/test"] = classification_result(c.test["y_true"], c.test["y_pred"], class_names=classes,
                                                                 predictions=name)
    if ensemble.get("chosen") is not None:
        e = ensemble["chosen"]
        np.savez_compressed(run_dir / "test_ensemble.npz", **e.test)
        artifacts["test/ensemble"] = "test_ensemble.npz"
        classification["ensemble/test"] = classification_result(e.test["y_true"], e.test["y_pred"], class_names=classes,
                                                                predictions="test_ensemble.npz")
    best = next(r for r in table if r["reference"])
    result = {"headline": {"name": "test_accuracy", "value": best["accuracy"], "split": "test"},
              "metrics": {**common.tensorflow_gpus(), "models": table, "best_single": best["model"],
                          "chosen": chosen_record(chosen, best["model"]),
                          "ensembles": [{"members": e.members, "val_accuracy": e.val_accuracy, "n_val": e.n_val}
                                        for e in ensemble["tried"]],
                          "ensemble_method": ensemble["method"], "shapes": shape_pairs(chosen),
                          "ensemble": ensemble["chosen"].members if ensemble.get("chosen") else None},
              "classification": classification, "artifacts": artifacts, "test_split_reads": ledger,
              "notes": [f"models chosen on validation; {len(ledger)} reads of the test split, one per model"]}
    return results.save_result(run_dir, result)
