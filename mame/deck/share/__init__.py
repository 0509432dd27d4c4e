"""``make share``: the deck, its PDF and the runs' metrics packaged (``bundle``), with no machine path
in what is packed (``paths``).
"""
