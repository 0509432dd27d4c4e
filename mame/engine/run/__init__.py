"""Running the plan: the study a command works on (``study``), cache keys (``cache``), what runs when
(``scheduler``), where runs execute (``executors``, ``ray_executor``), the processes they run in (``processes``,
``preload``, ``environment``), one run executed by papermill (``execute``, ``notebook_engine``), run folders and
their metrics.json (``folders``, ``records``), provenance and status.
"""
