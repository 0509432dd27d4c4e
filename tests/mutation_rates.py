"""``make mutation``'s two helpers around mutmut, run from the repository root:

``sample PERCENT``: the names of a fixed sample of the mutants ``mutmut run`` generated (``mutants/**/*.meta``):
each mutant whose name hashes below PERCENT % of the range, so the same mutants are drawn on every run and a
change's effect on the rates is measured on the same mutants (100: all of them).

``report MUTMUT``: mutmut's verdicts on the mutants it ran, grouped by package (``mame/engine``, ``mame/stages``,
``mame/models``): the kill rate of all and of those the fast tests reach, with a 95 % Wilson interval when the
mutants are a sample."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

PACKAGES = ("mame.engine", "mame.stages", "mame.models")
UNRUN = ("not checked", "skipped")


def mutant_names(mutants_dir: Path = Path("mutants")) -> list[str]:
    """Every mutant mutmut generated, from its per-file ``.meta`` records."""
    names = []
    for meta in sorted(mutants_dir.glob("mame/**/*.meta")):
        names += sorted(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    return names


def in_sample(name: str, percent: float) -> bool:
    return percent >= 100 or int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) < percent / 100 * 16 ** 8


def verdicts(lines: list[str]) -> dict[str, Counter]:
    """``{package: Counter(verdict)}`` from mutmut's ``name: verdict`` lines (mutants not run left out)."""
    found: dict[str, Counter] = defaultdict(Counter)
    for line in lines:
        name, sep, verdict = line.strip().rpartition(": ")
        if sep and name.startswith("mame.") and verdict not in UNRUN:
            found[".".join(name.split(".")[:2])][verdict] += 1
    return found


def wilson(k: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion k/n (statsmodels' ``proportion_confint``, method wilson)."""
    from statsmodels.stats.proportion import proportion_confint

    return proportion_confint(k, n, alpha=0.05, method="wilson") if n else (float("nan"), float("nan"))


def summary(package: str, counts: Counter, generated: int, sampled: bool) -> str:
    total, killed = sum(counts.values()), counts["killed"]
    reached = killed + counts["survived"] + counts["timeout"]
    rate = f"kill rate {100 * killed / max(1, total):.1f}% of all, {100 * killed / max(1, reached):.1f}% of those reached"
    if sampled:
        low, high = wilson(killed, reached)
        rate += f" (95 % CI {100 * low:.0f}-{100 * high:.0f}%)"
        what = f"{total} of its {generated} mutants (a fixed sample)"
    else:
        what = f"{total} mutants"
    return (f"{package.replace('.', '/')}: {what}, {killed} killed, {counts['survived']} survived, "
            f"{counts['timeout']} timed out, {counts['no tests']} not reached by the fast tests; {rate}")


def report(mutmut: str) -> int:
    out = subprocess.run([mutmut, "results", "--all", "true"], capture_output=True, text=True)
    found = verdicts(out.stdout.splitlines())
    if not found:
        print(f"no mutmut results ({(out.stderr or out.stdout).strip()[-500:]})", file=sys.stderr)
        return 1
    generated = Counter(".".join(name.split(".")[:2]) for name in mutant_names())
    for package in [*PACKAGES, *sorted(set(found) - set(PACKAGES))]:
        counts = found.get(package, Counter())
        print(summary(package, counts, generated[package], sum(counts.values()) < generated[package]))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "sample":
        names = mutant_names()
        if not names:
            print("no mutants under mutants/ (did `mutmut run` generate them? see mutants/run.log)", file=sys.stderr)
            return 1
        print("\n".join(name for name in names if in_sample(name, float(argv[1]))))
        return 0
    if len(argv) == 2 and argv[0] == "report":
        return report(argv[1])
    print("usage: mutation_rates.py sample PERCENT | report MUTMUT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
