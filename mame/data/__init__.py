"""The data layer: MAMe metadata (``metadata``), tf.data pipelines (``pipeline``), the dataset check
(``check``), the official downloader (``download``) and the synthetic MAMe generator (``synthetic/``).

May import ``mame.config`` and ``mame.classes`` only. No module here imports TensorFlow at import
time: ``pipeline`` imports it inside its functions, so reading metadata stays light.
"""
