"""Stage ``evaluate``: the only stage that reads the test split.

Notebook ``06_evaluate.ipynb`` calls ``choose_models`` -> ``load_test`` -> ``predict_test`` -> ``ensembles``
-> ``compare`` -> ``save``. It takes, by default, the best validation step of each fine-tuned backbone
and the best scratch rung (chosen on validation only), predicts the test split once per model (each
read goes to the test-split ledger), averages the fine-tuned models' probabilities into ensembles
chosen on validation and scored on test once, and compares every model with the best single one
(McNemar's test, bootstrap intervals; ``mame.stages.significance``).

``inputs`` (from the plan's ``reads: [scratch, finetune]``) is ``{stage: {run name: identity}}``, an identity
being the runner's ``{"stage", "backbone", "variant", "name", "seed", "folder", "step"}``.

The run records the models it chose, and why, in ``metrics.json["metrics"]["chosen"]``: a list, one entry
per chosen single model, in the order chosen (the fine-tuned ones by validation accuracy, best first, then
the scratch rung)::

    {"model": "finetune/vgg16-step3",   # stage/run, as in metrics["models"] and the classification keys
     "stage": "finetune", "run": "vgg16-step3", "backbone": "vgg16", "variant": "step3",
     "step": 3,                         # position among its backbone's variants of the stage, in plan order
     "val_accuracy": 0.61,
     "why": "best of 6 VGG16 fine-tuning steps on validation",
     "reference": true}                 # the best single model on validation, which every other is compared with

(a scratch rung: ``"backbone": null``, ``"why": "best of 8 scratch rungs on validation"``). Exactly one
entry has ``"reference": true``. ``explain`` takes its models from this record, never choosing again.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mame import results
from mame.data import metadata
from mame.metrics import classification_result
from mame.stages import common, significance
from mame.stages.selection import Candidate, choose_models  # noqa: F401 (the notebook calls choose_models)


def load_test(data_dir: str | Path, ledger: list) -> tuple[list, Path]:
    """The test split's records through the data layer's guarded reader; the read goes to ``ledger``."""
    meta = metadata.read_metadata(data_dir)
    records = metadata.read_test_split(meta, ledger=ledger, what="evaluate: the test split's records")
    return records, metadata.find_image_dir(data_dir)


def predict_test(chosen: list[Candidate], records: list, image_dir: Path, *, ledger: list,
                 batch_size: int = 32) -> None:
    """Each model's test probabilities, one pass (one ledger entry) per model."""
    from mame.models import builders

    for c in chosen:
        model = builders.load_model(c.path / common.MODEL_FILE, compile=False)
        size = int(model.input_shape[1])
        c.test = common.predict(model, records, image_dir, image_size=size, batch_size=batch_size, allow_test=True)
        ledger.append({"what": f"evaluate: test predictions of {c.name}", "n_images": len(records),
                       "model": f"{c.name}/{common.MODEL_FILE}"})
        del model


@dataclass
class Ensemble:
    members: list[str]
    val_accuracy: float
    val: dict
    test: dict


def _average(members: list[Candidate], split: str) -> dict:
    probs = np.mean([getattr(m, split)["probabilities"] for m in members], axis=0)
    y_true = getattr(members[0], split)["y_true"]
    return {"y_true": y_true, "y_pred": probs.argmax(axis=1).astype(np.int32), "probabilities": probs.astype(np.float32)}


def ensembles(chosen: list[Candidate], *, exhaustive_up_to: int = 6) -> dict:
    """Probability averages of the fine-tuned models: every subset of two or more when there are at most
    ``exhaustive_up_to`` of them, else greedy forward selection on validation. The ensemble kept is the best
    on validation; test predictions are averaged from the members' (no new read of the test split)."""
    tuned = [c for c in chosen if c.stage == "finetune"]
    if len(tuned) < 2:
        return {"tried": [], "chosen": None, "method": "none (fewer than two fine-tuned models)"}
    if len(tuned) <= exhaustive_up_to:
        subsets = [list(s) for k in range(2, len(tuned) + 1) for s in itertools.combinations(tuned, k)]
        method = f"every subset of 2-{len(tuned)} of the {len(tuned)} fine-tuned models"
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


def compare(chosen: list[Candidate], ensemble: dict, *, bootstrap: int = 1000, seed: int = 0) -> list[dict]:
    """One row per model and for the chosen ensemble: val and test accuracy, macro F1, a bootstrap 95 %
    interval of the test accuracy, and McNemar's test against the best single model (best on val)."""
    best = max(chosen, key=lambda c: c.val_accuracy)
    entries = [(c.name, c.stage, c.val_accuracy, c.test) for c in chosen]
    if ensemble.get("chosen") is not None:
        e = ensemble["chosen"]
        entries.append(("ensemble: " + " + ".join(e.members), "ensemble", e.val_accuracy, e.test))
    rows = []
    for name, kind, val_acc, test in entries:
        row = {"model": name, "kind": kind, "val_accuracy": val_acc,
               **significance.accuracy_summary(test["y_true"], test["y_pred"], resamples=bootstrap, seed=seed)}
        row["reference"] = name == best.name
        if name != best.name:
            row["vs_best"] = significance.mcnemar_test(test["y_true"], best.test["y_pred"], test["y_pred"])
        rows.append(row)
    return rows


def chosen_record(chosen: list[Candidate], reference: str) -> list[dict]:
    """What the run records of the models it chose (shape in the module docstring); ``reference`` is the
    ``model`` (``stage/run``) of the best single one."""
    return [{"model": c.name, "stage": c.stage, "run": c.run, "backbone": c.backbone, "variant": c.variant,
             "step": c.step, "val_accuracy": c.val_accuracy, "why": c.why, "reference": c.name == reference}
            for c in chosen]


def save(run_dir: str | Path, chosen: list[Candidate], ensemble: dict, table: list[dict], ledger: list) -> Path:
    run_dir = Path(run_dir)
    classification, artifacts = {}, {}
    for c in chosen:
        name = f"test_{c.stage}_{c.run}.npz"
        np.savez_compressed(run_dir / name, **c.test)
        artifacts[f"test/{c.name}"] = name
        classification[f"{c.name}/test"] = classification_result(c.test["y_true"], c.test["y_pred"], predictions=name)
    if ensemble.get("chosen") is not None:
        e = ensemble["chosen"]
        np.savez_compressed(run_dir / "test_ensemble.npz", **e.test)
        artifacts["test/ensemble"] = "test_ensemble.npz"
        classification["ensemble/test"] = classification_result(e.test["y_true"], e.test["y_pred"],
                                                                predictions="test_ensemble.npz")
    best = next(r for r in table if r["reference"])
    result = {"headline": {"name": "test_accuracy", "value": best["accuracy"], "split": "test"},
              "metrics": {"models": table, "best_single": best["model"], "chosen": chosen_record(chosen, best["model"]),
                          "ensembles": [{"members": e.members, "val_accuracy": e.val_accuracy} for e in ensemble["tried"]],
                          "ensemble_method": ensemble["method"],
                          "ensemble": ensemble["chosen"].members if ensemble.get("chosen") else None},
              "classification": classification, "artifacts": artifacts, "test_split_reads": ledger,
              "notes": [f"models chosen on validation; {len(ledger)} reads of the test split, one per model"]}
    return results.save_result(run_dir, result)
