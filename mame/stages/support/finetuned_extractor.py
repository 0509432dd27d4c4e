"""Fine-tuned features for the ``features`` stage (``source="finetune"``): the best fine-tuning run of a
backbone, chosen on validation accuracy as ``evaluate`` chooses (``mame.stages.support.selection``: this stage runs
before ``evaluate``, so it cannot take evaluate's record), loaded from its ``model.keras`` and cut below its
softmax (the head's last hidden layer). Never reads the test split: the choice uses the runs' saved
validation predictions only."""

from __future__ import annotations

import json
from pathlib import Path

from mame.stages.support import selection
from mame.stages.support.common import MODEL_FILE


def choose_run(backbone: str, inputs: dict) -> tuple[selection.Candidate, list[selection.Candidate]]:
    """The fixed-shape fine-tuning run of ``backbone`` with the best validation accuracy among ``inputs["finetune"]``
    (``{run name: identity}``, what a plan variant's ``reads: [finetune]`` hands over), and every candidate."""
    handed = (inputs or {}).get("finetune") or {}
    runs = {name: identity for name, identity in handed.items()
            if selection.check_identity("finetune", name, identity)["backbone"] == backbone
            and selection.run_shape(Path(identity["folder"])) == "fixed"}
    if not runs:
        raise ValueError(f"source='finetune' needs the finetune runs of {backbone}: give the plan variant "
                         f"`reads: [finetune]` (inputs had: {sorted(handed)})")
    chosen = selection.choose_models({"finetune": runs}, include_scratch=False)[0]  # as evaluate chooses
    return chosen, selection.candidates({"finetune": runs})


def _run_metrics(folder: Path) -> dict:
    try:
        return json.loads((folder / "metrics.json").read_text(encoding="utf-8")).get("metrics") or {}
    except (OSError, ValueError):
        return {}


def build_extractor(backbone: str, inputs: dict, *, image_size: int | None = None):
    """(extractor model, info, weights) of the chosen fine-tuned run: raw images at the model's own input
    size -> the float32 activations that feed its softmax."""
    from mame.models import backbones, builders, extraction

    chosen, pool = choose_run(backbone, inputs)
    model = builders.load_model(chosen.path / MODEL_FILE, compile=False)
    extractor, layer = extraction.penultimate_extractor(model)
    size, dim = int(model.inputs[0].shape[1]), int(extractor.output.shape[-1])
    start = _run_metrics(chosen.path).get("weights") or "unknown"
    used = f"fine-tuned ({chosen.name})"
    reason = (f"the best {backbone} fine-tuning step on validation ({chosen.val_accuracy:.1%}), itself fine-tuned "
              f"from {start} weights; features: {layer}, the input of its softmax")
    choice = backbones.WeightsChoice(key=backbone, requested=f"finetune:{chosen.name}", used=used, include_top=False,
                                     reason=reason, path=str(chosen.path / MODEL_FILE))
    notes = []
    if image_size and image_size != size:
        notes.append(f"extracted at the fine-tuned model's input size, {size} px (image_size={image_size} does not apply)")
    info = {"key": backbone, "name": backbones.get_backbone(backbone).name, "n_params": int(extractor.count_params()),
            "feature_dim": dim, "input_size": size, "image_size": size, "feature_layer": layer, "weights": used,
            "weights_reason": reason, "source": "finetune", "extra_layers": {}, "notes": notes,
            "finetune": {"run": chosen.name, "val_accuracy": chosen.val_accuracy, "layer": layer, "dim": dim,
                         "trained_from": start, "candidates": {c.name: c.val_accuracy for c in pool}}}
    return extractor, info, choice
