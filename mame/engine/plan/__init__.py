"""The plan: ``experiments/plan.yaml`` loaded and checked (``load``, ``check``, ``rules``), its JSON Schema
and key reference built from one table (``schema_build``, ``reference``), profiles, seeds and the weights rules.
Never imports ``mame.engine.run``.
"""
