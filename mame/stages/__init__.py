"""One module per study stage, the only code a notebook calls (``from mame.stages import features``).

Stages: ``scratch`` (the baseline ladder), ``features`` (backbones as extractors), ``similarity`` (ImageNet
classes as a description), ``classify`` (classifiers on features), ``finetune`` (the fine-tuning ladder),
``evaluate`` (the only reader of the test split; ``feature_pipelines`` rebuilds the classify stage's best
pipelines for it) and ``explain`` (Grad-CAM). What they share is in ``support`` (splits, model saving, the
models evaluate and explain take, significance, the parameter declarations the notebooks' parameters cells are
generated from). May import data, models, plots and the base modules (``mame.results`` to hand results to the
runner); never ``mame.engine`` or ``mame.deck``.
"""
