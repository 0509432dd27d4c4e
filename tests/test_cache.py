import json

from mame import cache, config

NB = config.EXPERIMENTS_DIR / "02_features.ipynb"


def key(**changes):
    args = dict(stage="features", name="vgg16", params={"batch_size": 16}, profile="smoke",
                dataset_fingerprint="d1", notebook=NB, dependency_keys={})
    args.update(changes)
    return cache.cache_key(**args)


def test_key_is_stable_and_changes_with_every_input():
    base = key()
    assert base == key() and len(base) == cache.KEY_LENGTH
    variants = [key(params={"batch_size": 8}), key(profile="demo"), key(dataset_fingerprint="d2"),
                key(dependency_keys={"features": "abc"}), key(name="vgg16-fc2"), key(stage="classify")]
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
    classify_files = cache.code_files(config.EXPERIMENTS_DIR / "03_classify.ipynb")
    features_files = cache.code_files(config.EXPERIMENTS_DIR / "02_features.ipynb")
    assert "classify.py" in classify_files and "metrics.py" in classify_files
    assert "models.py" not in classify_files and "classify.py" not in features_files
    assert {"features.py", "models.py", "backbones.py", "pipeline.py", "data.py"} <= set(features_files)
    assert "runner.py" not in features_files and "cli.py" not in features_files


def test_module_closure_is_transitive_and_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "mame"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .c import thing\n    import numpy\n")
    (pkg / "c.py").write_text("thing = 1\n")
    (pkg / "unused.py").write_text("x = 1\n")
    names = [p.name for p in cache.module_closure({"mame.a"}, pkg)]
    assert names == ["__init__.py", "a.py", "b.py", "c.py"]
    assert cache.imported_modules("from mame import features\nimport os") == {"mame", "mame.features"}
