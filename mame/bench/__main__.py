"""``python -m mame.bench`` (``make bench``)."""

from mame.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
