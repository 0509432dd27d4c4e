"""One module per study stage, the only code a notebook calls (``from mame.stages import features``).

Stages: ``scratch`` (the baseline ladder), ``features`` (backbones as extractors, with ``structure``: groups,
nearest classes, outliers), ``classify`` (classifiers on features), ``finetune`` (the fine-tuning ladder),
``evaluate`` (the only reader of the test split, with ``significance``) and ``explain`` (Grad-CAM); ``common``
and ``selection`` (the models evaluate and explain take) are shared. May import data, models, plots and the
base modules (``mame.results`` to hand results to the runner); never ``mame.engine`` or ``mame.deck``.
"""
