"""Cache keys: every input counts, and the code part follows exactly what a notebook runs."""

import json
import os
import shutil

import pytest

from mame import config
from mame.engine import cache

NB = config.EXPERIMENTS_DIR / "02_features.ipynb"
NOTEBOOKS = {"features": "02_features.ipynb", "classify": "04_classify.ipynb"}


@pytest.fixture(autouse=True)
def cold_memo():
    """Each test starts with the parsed-imports memo empty, so it exercises the parser itself."""
    cache._imports_of.cache_clear()


def key(**changes):
    args = dict(stage="features", name="vgg16", params={"batch_size": 16}, profile="smoke",
                dataset_fingerprint="d1", notebook=NB, dependency_keys={})
    args.update(changes)
    return cache.cache_key(**args)


def test_key_is_stable_and_changes_with_every_input():
    base = key()
    assert base == key() and len(base) == cache.KEY_LENGTH
    variants = [key(params={"batch_size": 8}), key(profile="demo"), key(dataset_fingerprint="d2"),
                key(dependency_keys={"features": "abc"}), key(name="vgg16-fc2"), key(stage="classify"),
                key(notebook=config.EXPERIMENTS_DIR / "04_classify.ipynb")]
    assert len({base, *variants}) == len(variants) + 1


def test_notebook_fingerprint_ignores_outputs_but_not_sources(tmp_path):
    nb = json.loads(NB.read_text())
    copy = tmp_path / "nb.ipynb"
    copy.write_text(json.dumps(nb))
    base = cache.notebook_fingerprint(copy)
    nb["cells"][-1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi"}]
    nb["cells"][-1]["execution_count"] = 7
    copy.write_text(json.dumps(nb))
    assert cache.notebook_fingerprint(copy) == base
    nb["cells"][-1]["source"] = "print('changed')"
    copy.write_text(json.dumps(nb))
    assert cache.notebook_fingerprint(copy) != base


def test_code_fingerprint_follows_the_notebook_imports_only():
    classify_files = set(cache.code_files(config.EXPERIMENTS_DIR / "04_classify.ipynb"))
    features_files = set(cache.code_files(config.EXPERIMENTS_DIR / "02_features.ipynb"))
    assert {"stages/classify.py", "stages/__init__.py", "metrics.py", "results.py", "__init__.py"} <= classify_files
    assert not {"models/builders.py", "stages/features.py", "data/pipeline.py"} & classify_files
    assert {"stages/features.py", "models/builders.py", "models/backbones.py", "models/__init__.py",
            "data/pipeline.py", "data/metadata.py", "data/__init__.py"} <= features_files
    assert "stages/classify.py" not in features_files
    assert not {p for p in features_files | classify_files if p.startswith(("engine/", "deck/", "cli"))}


@pytest.fixture
def copied(tmp_path):
    """A private copy of the package and the two notebooks, to edit."""
    pkg = tmp_path / "mame"
    shutil.copytree(config.PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for name in NOTEBOOKS.values():
        shutil.copy(config.EXPERIMENTS_DIR / name, tmp_path / name)
    return tmp_path


def fingerprints(root):
    return {stage: cache.code_fingerprint(root / nb, package_dir=root / "mame") for stage, nb in NOTEBOOKS.items()}


def edit_keeping_size_and_mtime(path):
    """Change one letter of ``path``'s docstring in place, keeping its size and modification time
    (so a memo keyed on file stats cannot hide the edit)."""
    stat = path.stat()
    text = path.read_text()
    assert text.startswith('"""'), path
    i = next(i for i, char in enumerate(text) if char.isalpha())
    path.write_text(text[:i] + text[i].swapcase() + text[i + 1:])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size


@pytest.mark.parametrize("module, changed", [
    ("stages/classify.py", {"classify"}),
    ("stages/features.py", {"features"}),
    ("models/builders.py", {"features"}),
    ("data/pipeline.py", {"features"}),
    ("data/metadata.py", {"features"}),
    ("metrics.py", {"features", "classify"}),
    ("results.py", {"features", "classify"}),
    ("stages/__init__.py", {"features", "classify"}),
    ("deck/build.py", set()),
    ("engine/runner.py", set()),
])
def test_editing_a_module_changes_exactly_the_keys_of_the_notebooks_that_run_it(copied, module, changed):
    before = fingerprints(copied)  # computed first, in this process: a memo must not hide the edit
    edit_keeping_size_and_mtime(copied / "mame" / module)
    after = fingerprints(copied)
    assert {stage for stage in NOTEBOOKS if before[stage] != after[stage]} == changed


def test_editing_a_notebook_cell_changes_only_its_own_key(copied):
    before = fingerprints(copied)
    nb_path = copied / NOTEBOOKS["classify"]
    nb = json.loads(nb_path.read_text())
    nb["cells"][-1]["source"] = ["classify.save(run_dir, table)  # edited"]
    nb_path.write_text(json.dumps(nb))
    after = fingerprints(copied)
    assert before["features"] == after["features"] and before["classify"] != after["classify"]


def test_a_new_import_in_a_stage_pulls_that_module_into_its_key(copied):
    before = fingerprints(copied)
    classify = copied / "mame" / "stages" / "classify.py"
    classify.write_text(classify.read_text() + "\n\ndef _later():\n    from mame.models import builders\n")
    assert "models/builders.py" in cache.code_files(copied / NOTEBOOKS["classify"], package_dir=copied / "mame")
    after_import = fingerprints(copied)
    edit_keeping_size_and_mtime(copied / "mame" / "models" / "builders.py")
    after_edit = fingerprints(copied)
    assert before["classify"] != after_import["classify"] != after_edit["classify"]


def test_module_closure_is_transitive_and_sees_lazy_relative_and_package_imports(tmp_path):
    pkg = tmp_path / "mame"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from mame import c\n")
    (pkg / "a.py").write_text("from . import b\nimport mame.sub.d\n")
    (pkg / "b.py").write_text("def f():\n    from .e import thing\n    import numpy\n")
    (pkg / "c.py").write_text("x = 1\n")
    (pkg / "sub" / "d.py").write_text("from .. import e\n")
    (pkg / "e.py").write_text("thing = 1\n")
    (pkg / "unused.py").write_text("x = 1\n")
    files = [p.relative_to(pkg).as_posix() for p in cache.module_closure({"mame.a"}, pkg)]
    assert files == ["__init__.py", "a.py", "b.py", "c.py", "e.py", "sub/__init__.py", "sub/d.py"]
    assert cache.imported_modules("from mame.stages import features\nimport os") == {
        "mame.stages", "mame.stages.features"}
