"""Turning the runs into the deck: ``build`` drives collect -> figures -> context -> Jinja -> HTML
(``html``) -> PDF (``pdf``), skipping a render when nothing changed (``freshness``).
"""
