"""``python -m mame share`` / ``make share``: the study's results packaged to send or publish.

One zip, ``report/_output/share/mame-<profile>-<date>-<commit>.zip``: ``deck.html`` (self-contained), ``deck.pdf``,
``runs/<stage>/<run>/metrics.json`` of every run the deck shows, the plan file and the profile used
(``plan.yaml``, ``profile.yaml``), ``references.yaml`` and a ``README.md`` that says how it was produced (commit
and dirty flag, dataset fingerprints, the weights each backbone used, versions, devices) and how to produce it
again. ``--with-notebooks`` adds each run's executed notebook, ``--with-models`` its ``model.keras`` (as its
metrics.json names them).
``--site DIR`` writes the same as a static folder instead: ``index.html`` is the deck, and ``records.html`` /
``records.json`` index the records. The deck is brought up to date first (rendered only when a run changed).

Nothing of the user's is deleted or leaked (``mame.deck.share.paths``):

- The site carries a marker file (``.mame-share-site``). An existing DIR is replaced (built beside it, swapped
  into place) only when it carries that marker or is empty; any other DIR is refused before anything is built,
  and so is a DIR that holds the project, its runs, data or report build, or the home folder.
- The copies of each metrics.json (and notebook) have no absolute path of this machine; only files inside their
  run folder are packed, no symlink is followed, and no member name has ``..`` or a leading ``/``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import yaml

from mame import config
from mame.data.image_cache import human_bytes
from mame.deck.sections.setup import weights_table
from mame.deck.share.paths import member_name, portable_text, run_members
from mame.engine.run import records
from mame.engine.run.provenance import git_info
from mame.files import atomic_path

SHOWN = ("done", "stale")
SITE_MARKER = ".mame-share-site"
MARKER_TEXT = ("Made by `python -m mame share --site`: the next share to this folder replaces it whole.\n"
               "Remove this file to keep the folder from being replaced.\n")


@dataclass
class Shared:
    path: Path           # the zip, or the site folder
    members: list[str]   # the files in it, relative
    size: int            # bytes (the zip's, or the folder's files together)


def share(profile_name: str, *, plan_file: Path | None = None, with_notebooks: bool = False,
          with_models: bool = False, site: Path | None = None, out=None, study=None) -> Shared:
    """Bring the deck up to date (no runs started), then package it with the runs it shows. ``study``: the command's
    plan, runs and keys (``mame.engine.run.study``; built from ``plan_file`` when not given)."""
    from mame.deck.render.build import build, build_dirs

    out = out or sys.stdout
    if site is not None:
        site = check_site(Path(site))  # before the build: a refusal costs nothing and changes nothing
    result = build(profile_name, run=False, pdf=True, plan_file=plan_file, out=out, study=study)
    entries = [e for e in result.entries if e.state in SHOWN and e.metrics is not None]
    plan_path = Path(plan_file or config.plan_path())
    files = {"deck.html": result.html, "deck.pdf": result.pdf, "references.yaml": config.ROOT / "report" / "references.yaml"}
    texts = {"plan.yaml": portable_text(plan_path.read_text(encoding="utf-8"))}
    artifacts = tuple(a for wanted, a in ((with_notebooks, "notebook"), (with_models, "model")) if wanted)
    for entry in entries:
        run_files, run_texts = run_members(entry, artifacts=artifacts, warn=lambda line: print(f"share: {line}", file=out))
        files.update(run_files)
        texts.update(run_texts)
    git = git_info()
    texts["profile.yaml"] = portable_text(profile_text(plan_path, profile_name))
    texts["README.md"] = readme(profile_name, entries, git, result.rendered_at or "")
    if site is not None:
        texts["records.json"] = json.dumps(run_index(entries), indent=1) + "\n"
        texts["records.html"] = runs_page(profile_name, entries)
        files["index.html"] = files.pop("deck.html")
        shared = _write_site(site, files, texts)
        print(f"share: site of {len(entries)} runs in {shared.path} ({human_bytes(shared.size)})", file=out)
        return shared
    name = f"mame-{profile_name}-{datetime.now(timezone.utc):%Y%m%d}-{_commit_tag(git)}.zip"
    shared = _write_zip(build_dirs()["output"] / "share" / name, files, texts)
    print(f"share: {shared.path} ({human_bytes(shared.size)}, {len(shared.members)} files, {len(entries)} runs)", file=out)
    return shared


def _commit_tag(git: dict) -> str:
    commit = (git.get("commit") or "nogit")[:7]
    return f"{commit}-dirty" if git.get("dirty") else commit


def _write_zip(path: Path, files: dict[str, Path], texts: dict[str, str]) -> Shared:
    """The archive, written beside its place and renamed into it: never a half-written zip under its name."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, source in files.items():
            archive.write(source, member_name(member))
        for member, text in texts.items():
            archive.writestr(member_name(member), text)
    return Shared(path, sorted([*files, *texts]), path.stat().st_size)


def check_site(folder: Path) -> Path:
    """``folder`` (resolved) if ``share --site`` may write it: new, empty, or a site an earlier share made (it
    carries ``SITE_MARKER``); else a ValueError saying why, and nothing is changed."""
    folder = folder.expanduser().resolve()
    held = [(p, role) for p, role in _protected() if p == folder or folder in p.parents]
    if held:
        path, role = held[0]
        where = f"it is {role}" if path == folder else f"it holds {role} ({path})"
        raise ValueError(f"--site {folder}: {where}, which a site folder would replace; nothing was changed: "
                         "pick a folder of its own (e.g. report/_output/site)")
    if not folder.exists():
        return folder
    if not folder.is_dir():
        raise ValueError(f"--site {folder}: exists and is not a folder; nothing was changed: pick a new folder")
    marker = folder / SITE_MARKER
    if not (marker.is_file() and not marker.is_symlink()) and any(folder.iterdir()):
        raise ValueError(f"--site {folder}: the folder is not empty and no earlier `mame share` made it (no {SITE_MARKER} "
                         "in it), so it is not replaced; nothing was changed: pick a new or empty folder")
    return folder


def _protected() -> list[tuple[Path, str]]:
    """Folders a site must never replace (nor any folder holding them), each with what it is."""
    found = [(config.ROOT, "the project"), (config.runs_dir(), "the runs folder"), (config.data_home(), "the data folder"),
             (config.report_build_dir(), "the deck's build folder"), (Path.home().resolve(), "the home folder")]
    return found + ([(config.real_data_dir(), "the MAMe data ($MAME_DIR)")] if config.real_data_dir() else [])


def _write_site(folder: Path, files: dict[str, Path], texts: dict[str, str]) -> Shared:
    """The site, built in a sibling folder and swapped into place: an earlier site there (``check_site``) is replaced
    whole; the old one is moved into a fresh temporary folder before it is removed, so nothing else is touched."""
    folder = check_site(folder)
    texts = {**texts, SITE_MARKER: MARKER_TEXT}
    folder.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    old = None
    try:
        for member, source in files.items():
            (build / member_name(member)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, build / member)
        for member, text in texts.items():
            (build / member_name(member)).parent.mkdir(parents=True, exist_ok=True)
            (build / member).write_text(text, encoding="utf-8")
        build.chmod(0o755)
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            folder.rename(old / folder.name)
        build.rename(folder)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        if old is not None and not folder.exists():
            (old / folder.name).rename(folder)  # the earlier site back in its place
        raise
    finally:
        if old is not None and folder.exists():  # the new site (or the earlier one, put back) is in place
            shutil.rmtree(old, ignore_errors=True)
    members = sorted([*files, *texts])
    return Shared(folder, members, sum((folder / m).stat().st_size for m in members))


def profile_text(plan_path: Path, profile_name: str) -> str:
    """The profile's block of the plan, as written there."""
    raw = yaml.safe_load(plan_path.read_text(encoding="utf-8")) or {}
    block = (raw.get("profiles") or {}).get(profile_name)
    return yaml.safe_dump({"profiles": {profile_name: block}}, sort_keys=False, allow_unicode=True)


def run_index(entries: list) -> list[dict]:
    """One row per run: id, stage, state, headline, where its metrics.json is, and how it ran."""
    rows = []
    for e in entries:
        headline, run = e.metrics.get("headline") or {}, e.metrics["run"]
        rows.append({"run": e.run.id, "stage": e.run.stage, "backbone": e.run.backbone, "state": e.state,
                     "headline": {"metric": headline.get("name"), "value": headline.get("value"), "split": headline.get("split")}
                     if headline else None,
                     "metrics": f"runs/{e.run.id}/{records.METRICS_FILE}", "commit": (run.get("git") or {}).get("commit"),
                     "dataset": (run.get("dataset") or {}).get("fingerprint"), "ended": run.get("ended")})
    return rows


def runs_page(profile_name: str, entries: list) -> str:
    """A small HTML index of the runs, each linking its metrics.json."""
    cells = []
    for row in run_index(entries):
        value = row["headline"]["value"] if row["headline"] else None
        headline = f"{escape(str(row['headline']['metric']))} {value:.3f}" if isinstance(value, (int, float)) else ""
        cells.append(f"<tr><td><a href=\"{escape(row['metrics'])}\">{escape(row['run'])}</a></td>"
                     f"<td>{escape(row['state'])}</td><td>{headline}</td><td>{escape(row['ended'] or '')}</td></tr>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>MAMe study runs "
            f"({escape(profile_name)})</title></head>\n<body><h1>Runs of the {escape(profile_name)} profile</h1>\n"
            "<p><a href=\"index.html\">The deck</a> · <a href=\"deck.pdf\">PDF</a> · <a href=\"records.json\">records.json</a></p>\n"
            "<table><tr><th>run (metrics.json)</th><th>state</th><th>headline</th><th>ended</th></tr>\n"
            + "\n".join(cells) + "\n</table></body></html>\n")


def readme(profile_name: str, entries: list, git: dict, rendered_at: str) -> str:
    """How these results were produced, and how to produce them again."""
    datasets = sorted({(r["dataset"].get("source", "?"), r["dataset"].get("fingerprint", "?"))
                       for r in (e.metrics["run"] for e in entries) if r.get("dataset")})
    commits = sorted({(r.get("git") or {}).get("commit") or "?" for r in (e.metrics["run"] for e in entries)})
    devices = sorted({(r.get("device") or {}).get("name", "?") for r in (e.metrics["run"] for e in entries)})
    dirty = git.get("dirty")
    lines = [f"# MAMe transfer-learning study: results of the `{profile_name}` profile", "",
             f"Packaged {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; the deck was rendered {rendered_at or 'earlier'}.", "",
             "- `deck.html`: the slides (self-contained: opens offline in any browser); `deck.pdf`: one page per slide.",
             "- `runs/<stage>/<run>/metrics.json`: every run the deck shows (schema: `mame/engine/schema/` in the project).",
             "- `plan.yaml`: the experiment plan; `profile.yaml`: the profile used; `references.yaml`: the cited numbers.",
             "", "## How it was produced", "",
             f"- Commit `{git.get('commit') or 'unknown'}`" + (" with uncommitted changes (dirty): the commit alone may not "
                                                            "reproduce these numbers" if dirty else ", clean working tree"),
             f"- Runs made at commit(s): {', '.join(f'`{c[:12]}`' for c in commits)}",
             "- Data: " + "; ".join(f"{source}, fingerprint `{fp[:16]}`" for source, fp in datasets),
             f"- Devices: {', '.join(devices)}",
             "- Versions the runs recorded: " + ", ".join(f"{k} {' / '.join(v)}" for k, v in run_versions(entries).items()), "",
             "Weights each backbone used:", "", "| backbone | weights | stages | why |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['backbone']} | {r['used']} | {', '.join(r['stages'])} | {r['reason']} |" for r in weights_table(entries)]
    lines += ["", f"Runs ({len(entries)}):", "", "| run | state | headline |", "| --- | --- | --- |"]
    for row in run_index(entries):
        value = (row["headline"] or {}).get("value")
        lines.append(f"| {row['run']} | {row['state']} | "
                     + (f"{row['headline']['metric']} {value:.3f}" if isinstance(value, (int, float)) else "") + " |")
    lines += ["", "## How to produce it again", "", "```bash",
              f"git checkout {git.get('commit') or '<commit>'}",
              f"make report PROFILE={profile_name}   # installs what it needs, runs what is stale, renders the deck",
              "```", "", "With the same data (the fingerprints above), weights and versions the runs give these "
              "metrics again; TensorFlow on CPU can differ in the last digits with another thread count or CPU."]
    return "\n".join(lines) + "\n"


def run_versions(entries: list) -> dict[str, list[str]]:
    """Each package's versions over the runs (one, unless runs were made with different ones)."""
    found: dict[str, set] = {}
    for e in entries:
        for name, version in (e.metrics["run"].get("versions") or {}).items():
            found.setdefault(name, set()).add(str(version))
    return {name: sorted(values) for name, values in found.items()}
