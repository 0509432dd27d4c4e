"""The experiment engine, in two rooms: ``plan`` (the plan file loaded, checked and expanded into runs) and
``run`` (deciding what is stale, executing runs in processes of their own, their folders and records,
provenance and status). ``plan`` never imports ``run``.

May import ``mame.data`` and the base modules. Stage code never imports the engine: stages hand
their results over through ``mame.results``.
"""
