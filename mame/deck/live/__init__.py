"""``make watch``: the live deck server (``server``), its Host/Origin guard, the page it serves, the runs it
starts and the renders it triggers.
"""
