"""One module per study stage, the only code a notebook calls (``from mame.stages import features``).

Stages: ``features`` (backbones as extractors), ``classify`` (classifiers on features); scratch,
finetune, evaluate and explain land here. May import data, models, plots and the base modules
(``mame.results`` to hand results to the runner); never ``mame.engine`` or ``mame.deck``.
"""
