"""The experiment engine: the plan (``plan``), cache keys (``cache``), the runner and its papermill
execution (``runner``, ``execute``), the run store and its schema (``runs``, ``schema/``),
provenance and status.

May import ``mame.data`` and the base modules. Stage code never imports the engine: stages hand
their results over through ``mame.results``.
"""
