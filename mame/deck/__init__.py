"""The slide deck: runs -> context (``context``, ``sections``, ``figures``, ``history``) -> Jinja
(``templating``) -> HTML (``render``: Quarto or pandoc) -> PDF (``pdf``: decktape) -> browser check
(``browser``), all driven by ``build``. ``tools`` holds the Chromium and subprocess helpers they share.

May import ``mame.engine`` (plan, run store, status), ``mame.plots`` and the base modules.
"""
