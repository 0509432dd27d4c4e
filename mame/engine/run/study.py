"""One command's view of the plan, built once: the plan loaded and checked, the profile's runs expanded, the
dataset located (generated where the runner needs it) and every run's cache key. ``run``, ``report``, ``status``
and ``share`` each build one :class:`Study` and hand it to the runner and the deck, which never load the plan or
compute cache keys again."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from mame import config
from mame.data import dataset_index, prepared
from mame.engine.plan.load import LeftOut, Plan, PlannedRun, Profile, expand, load_plan
from mame.engine.run import cache

FOLDER = "folder"


class StudyError(RuntimeError):
    """The study cannot start: no dataset where the profile says it is..."""


@dataclass
class Study:
    plan: Plan
    profile: Profile
    runs: list[PlannedRun]              # every run of the profile, in dependency order (``expand``)
    left_out: list[LeftOut]             # the runs the profile leaves out, and why
    plan_file: Path | None = None
    dataset: dict | None = None         # source, path, fingerprint (None: not there yet)
    keys: dict[str, str] = field(default_factory=dict)  # run id -> cache key (empty until the dataset is there)

    @classmethod
    def load(cls, profile_name: str, plan_file: Path | None = None, *, plan: Plan | None = None,
             data: str | Path | None = None) -> Study:
        """The study of ``profile_name``: the plan given (already loaded) or read from ``plan_file``; the dataset and
        keys where the data is already there (nothing is generated). ``data``: a dataset folder (or CSV) read
        instead of the profile's data (default: ``MAME_DATA``, which ``--data`` sets)."""
        plan = plan or load_plan(plan_file)
        profile = plan.profile(profile_name)
        data = data if data is not None else config.dataset_override()
        if data is not None:
            profile = with_data(profile, data)
        if profile.size_from_data:
            profile = sized(profile)
        plan = replace(plan, profiles={**plan.profiles, profile_name: profile})
        left_out: list[LeftOut] = []
        study = cls(plan, profile, expand(plan, profile_name, left_out=left_out), left_out, plan_file)
        study._set_dataset(existing_dataset(profile))
        return study

    def prepare(self) -> Study:
        """Generate the profile's synthetic data if needed, or check the real MAMe is where it is said to be; the
        keys follow the dataset (computed again only when its fingerprint changed)."""
        self._set_dataset(prepare_dataset(self.profile))
        return self

    def _set_dataset(self, dataset: dict | None) -> None:
        if dataset is not None and (self.dataset is None or dataset["fingerprint"] != self.dataset["fingerprint"]
                                    or not self.keys):
            self.keys = compute_keys(self.runs, self.profile, dataset)
        self.dataset = dataset

    def selected(self, only: str | None) -> list[PlannedRun]:
        """The runs ``--only`` selects ('stage' or 'stage/backbone', comma-separated), in plan order."""
        if not only:
            return list(self.runs)
        chosen = {r.id for r in expand(self.plan, self.profile.name, only)}
        return [r for r in self.runs if r.id in chosen]


def existing_dataset(profile: Profile) -> dict | None:
    """The profile's dataset description without generating anything (None if not there yet)."""
    path = dataset_location(profile)
    marker = prepared.ABOUT if profile.data.get("source") == FOLDER else config.METADATA_CSV
    if path is None or not (Path(path) / marker).is_file():
        return None
    return describe(profile, path)


def describe(profile: Profile, path: Path) -> dict:
    """A run's ``dataset`` provenance: source, path, fingerprint; for a dataset folder also its name, where it was
    read from, its layout, classes and how the splits were made."""
    from mame.data import metadata

    described = {"source": profile.data.get("source"), "path": str(path), "fingerprint": metadata.dataset_fingerprint(path)}
    if profile.data.get("source") == FOLDER:
        about = prepared.read_about(path)
        described.update({k: about[k] for k in ("name", "layout", "classes", "splits", "counts")},
                         read_from=about["source"])
    return described


def dataset_location(profile: Profile) -> Path | None:
    """Where the profile's data lives: its synthetic folder, or MAME_DIR (else the profile's data.path)."""
    if profile.data.get("source") == "synthetic":
        return config.synthetic_dir(profile.name)
    if profile.data.get("source") == FOLDER:
        return dataset_index.prepared_folder(config.data_home(), source_path(profile), folder_settings(profile))
    path = profile.data.get("path")
    return config.real_data_dir() or (Path(path).expanduser().resolve() if path else None)


def prepare_dataset(profile: Profile) -> dict:
    """Generate the profile's synthetic data if needed, locate the real MAMe, or prepare a dataset folder's index;
    return its description."""
    source = profile.data.get("source")
    path = dataset_location(profile)
    if source == "synthetic":
        from mame.data.synthetic import generator

        spec_fields = {k: v for k, v in profile.data.items() if k != "source"}
        spec = generator.SynthSpec.from_dict({"seed": profile.seed, **spec_fields})
        generator.ensure(path, spec)
    elif source == "mame":
        if path is None:
            raise StudyError(f"profile {profile.name!r} reads the real MAMe: set MAME_DIR to the folder holding "
                              f"{config.METADATA_CSV} and data_256/ or data/ (python -m mame data download fetches it)")
        if not (path / config.METADATA_CSV).is_file():
            raise StudyError(f"{path}: no {config.METADATA_CSV} here; MAME_DIR must point at the MAMe folder")
    elif source == FOLDER:
        dataset_index.prepare(source_path(profile), path, seed=profile.seed, **folder_settings(profile))
    else:
        raise StudyError(f"profile {profile.name!r}: data source must be 'synthetic', 'mame' or 'folder', not {source!r}")
    return describe(profile, path)


def source_path(profile: Profile) -> Path:
    if not profile.data.get("path"):
        raise StudyError(f"profile {profile.name!r} studies a dataset folder and names none: give --data DIR "
                         f"(make report DATA=DIR), or data.path in the plan")
    return Path(profile.data["path"]).expanduser().resolve()


def sized(profile: Profile) -> Profile:
    """The ``auto`` profile sized from its dataset folder (prepared here: its listing says the training images and
    classes) and this machine (``mame.engine.plan.sizing``)."""
    from mame.engine.plan import sizing
    from mame.engine.run import provenance
    from mame.models import weight_files

    if profile.data.get("source") != FOLDER:
        raise StudyError(f"profile {profile.name!r} is sized from a dataset folder: give --data DIR (make report "
                         f"DATA=DIR); for synthetic MAMe use --profile demo, for the real MAMe --profile full")
    described = prepare_dataset(profile)
    data = sizing.Data(described["name"], int(described["counts"]["train"]), len(described["classes"]))
    device = provenance.device_info()
    machine = sizing.Machine(gpus=provenance.gpu_count(), cores=provenance.cpu_count(),
                             name=f"this machine's {device['kind'].upper()}: {device['name']}")
    offline = tuple(b for b in sizing.SEED if weight_files.outlook(b, "imagenet-if-cached").pretrained)
    return sizing.size_profile(profile, data, machine, offline)


def folder_settings(profile: Profile) -> dict:
    """A folder dataset's settings as ``dataset_index.prepare`` takes them."""
    names = {"csv": "csv_file"}
    return {names.get(k, k): v for k, v in profile.data.items() if k not in ("source", "path")}


def with_data(profile: Profile, path: str | Path) -> Profile:
    """``profile`` reading the dataset at ``path`` (``--data``, ``make report DATA=``) instead of its own data."""
    return replace(profile, data={"source": FOLDER, "path": str(Path(path).expanduser().resolve())})


def compute_keys(planned: list[PlannedRun], profile: Profile, dataset: dict) -> dict[str, str]:
    """Cache key of every planned run, each including the keys of the runs it needs and reads (so a new
    dependency result makes it stale); ``planned`` must come in dependency order, as ``expand`` returns it."""
    keys: dict[str, str] = {}
    for run in planned:
        missing = [dep for dep in [f"{s}/{n}" for s, n in run.needs.items()] + _read_ids(run) if dep not in keys]
        if missing:
            raise StudyError(f"{run.id} depends on {', '.join(missing)}, whose cache key is not known yet: "
                              "runs must come in dependency order (mame.engine.plan.load.expand)")
        dep_keys = {stage: keys[f"{stage}/{name}"] for stage, name in run.needs.items()}
        dep_keys.update({dep: keys[dep] for dep in _read_ids(run)})
        keys[run.id] = cache.cache_key(stage=run.stage, name=run.name, params=run.params, seed=run.seed, profile=profile.name,
                                       dataset_fingerprint=dataset["fingerprint"], notebook=run.notebook,
                                       dependency_keys=dep_keys)
    return keys


def _read_ids(run) -> list[str]:
    return [f"{stage}/{name}" for stage, names in run.reads.items() for name in names]
