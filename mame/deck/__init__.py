"""The slide deck, in rooms: ``sections`` (what each stage's slides say, from the runs' metrics.json),
``render`` (``build``: collect -> figures -> context -> Jinja -> HTML -> PDF), ``check`` (the browser check of a
rendered deck), ``live`` (``make watch``) and ``share`` (``make share``); ``tools`` holds the Chromium and
subprocess helpers they share.

May import ``mame.engine`` (plan, run records, status), ``mame.plots`` and the base modules.
"""
