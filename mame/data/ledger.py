"""The test-split ledger: every read of the test split, by any path, is recorded where it happens.

A read is one dict, ``{"what": ..., "n_images": ..., **extra}`` (the shape of a run's ``test_split_reads``).
The data layer records it itself, at the accessor that hands out test rows (``mame.data.metadata.Metadata``:
``records``, iteration, ``read_test_split``) or loads test images (``mame.data.pipeline.make_dataset``), in
up to three places:

- the ledger of the reader that asked: a ``Metadata`` object's ``ledger`` (a list; ``read_metadata(dir,
  ledger=...)`` binds the caller's), which the test rows it hands out carry along (``Rows.ledger``), so the
  images loaded from them are recorded there too; ``reading(ledger, ...)`` names another ledger and the words
  for the reads made inside it (the evaluate stage: one entry per model);
- this process's reads (``process_reads()``): a run's kernel holds every read it made, whatever the path;
- the journal file named by ``MAME_TEST_LEDGER`` when set (one JSON line per read, appended as it happens), so
  whatever runs the process can see the reads even when the process dies.
"""

from __future__ import annotations

import contextvars
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

JOURNAL_ENV = "MAME_TEST_LEDGER"

_PROCESS: list[dict] = []
_READING: contextvars.ContextVar[tuple[list | None, dict] | None] = contextvars.ContextVar("mame_test_reading", default=None)


class Rows(list):
    """Records as a plain list that also carries the ledger their reads go to (slices keep it)."""

    def __init__(self, records=(), ledger: list | None = None):
        super().__init__(records)
        self.ledger = ledger

    def __getitem__(self, index):
        item = super().__getitem__(index)
        return Rows(item, self.ledger) if isinstance(index, slice) else item


def record(ledger: list | None, what: str, n_images: int, **extra) -> dict:
    """Record one read of the test split: in ``ledger`` (or the one ``reading`` names), in this process's
    reads and in the journal file. Inside ``reading``, its words replace ``what`` and add its extras."""
    current = _READING.get()
    if current is not None:
        sink, words = current
        ledger = sink if sink is not None else ledger
        what, extra = words.get("what", what), {**extra, **{k: v for k, v in words.items() if k != "what"}}
    entry = {"what": what, "n_images": int(n_images), **extra}
    if ledger is not None:
        ledger.append(entry)
    _PROCESS.append(dict(entry))
    _journal(entry)
    return entry


@contextmanager
def reading(ledger: list | None = None, **words) -> Iterator[None]:
    """The reads of the test split made inside go to ``ledger`` (when given) with ``words`` (``what=...``,
    ``model=...``) in place of the data layer's own description."""
    token = _READING.set((ledger, words))
    try:
        yield
    finally:
        _READING.reset(token)


def process_reads() -> list[dict]:
    """Every read of the test split this process made, in order (copies)."""
    return [dict(entry) for entry in _PROCESS]


def _journal(entry: dict) -> None:
    path = os.environ.get(JOURNAL_ENV, "").strip()
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry, default=str) + "\n")
