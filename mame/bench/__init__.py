"""``make bench``: speed figures measured in one process, printed (never asserted).

- runner: the smoke plan from nothing, then again with nothing stale (the ratio the cache must keep
  under 1/10), in a private runs folder;
- data: reading the official metadata CSV and fingerprinting a dataset, when the files are at hand.
"""

from __future__ import annotations

import gzip
import io
import os
import tempfile
import time
from pathlib import Path

from mame import config


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def bench_runner(profile: str = "smoke") -> None:
    from mame.engine.runner import run_plan

    with tempfile.TemporaryDirectory(prefix="mame-bench-") as tmp:
        os.environ["MAME_RUNS_DIR"] = str(Path(tmp) / "runs")
        first, outcomes = _timed(run_plan, profile, out=io.StringIO())
        again, cached = _timed(run_plan, profile, out=io.StringIO())
    executed = sum(o.state == "done" for o in outcomes)
    skipped = sum(o.state == "cached" for o in cached)
    print(f"runner  {profile}: first run {first:7.1f} s ({executed} notebooks executed)")
    print(f"runner  {profile}: rerun     {again:7.2f} s ({skipped} cached, "
          f"{len(cached) - skipped} executed)  ratio {again / first:.4f}")


def bench_data() -> None:
    from mame.data import metadata

    packed = config.ROOT / "tests" / "data" / "official" / f"{config.METADATA_CSV}.gz"
    if packed.is_file():  # the official metadata, vendored with the tests
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / config.METADATA_CSV
            csv_path.write_bytes(gzip.decompress(packed.read_bytes()))
            seconds, meta = _timed(metadata.read_metadata, csv_path)
        print(f"data    read_metadata official CSV: {seconds:.3f} s for {len(meta.records):,} rows")
    synth = config.synthetic_dir("smoke")
    if (synth / config.METADATA_CSV).is_file():
        seconds, _ = _timed(metadata.dataset_fingerprint, synth)
        print(f"data    dataset_fingerprint smoke synthetic set: {seconds * 1000:.1f} ms")


def main() -> int:
    print(f"machine: {os.cpu_count()} cores")
    bench_runner()
    bench_data()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
