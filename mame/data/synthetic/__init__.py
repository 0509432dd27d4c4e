"""A synthetic MAMe-shaped dataset: procedural images with one visual family per medium.

``generator`` writes the dataset (metadata CSVs, images, manifest); ``families`` maps each of the 29
classes to a drawing function built from ``base``, ``shapes``, ``objects``, ``materials``,
``prints`` and ``drawings``. Imports numpy, Pillow, ``mame.config`` and ``mame.classes`` only.
"""
