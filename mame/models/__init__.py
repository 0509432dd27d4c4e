"""Keras models: the backbone registry (``backbones``: constructors, input sizes, preprocessing,
feature and last-conv layers, weight files) and the builders (``builders``: feature extractors,
transfer models, scratch CNNs, precision). Grad-CAM lands here.

May import ``mame.data`` and the base modules; never ``mame.plots``, stages, the engine or the deck.
"""
