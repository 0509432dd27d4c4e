"""The headless-browser check of a rendered deck.
"""
