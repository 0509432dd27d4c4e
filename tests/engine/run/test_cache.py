"""Cache keys: every input counts, and the code part follows exactly what a notebook runs."""

import ast
import json
import os
import shutil

import pytest

from mame import config
from mame.engine.run import cache

NB = config.EXPERIMENTS_DIR / "02_features.ipynb"
NOTEBOOKS = {"features": "02_features.ipynb", "classify": "04_classify.ipynb"}


@pytest.fixture(autouse=True)
def cold_memo():
    """Each test starts with the parsed-code memos empty, so it exercises the parser itself."""
    cache._parsed.cache_clear()
    cache._imports_of.cache_clear()


def key(**changes):
    args = dict(stage="features", name="vgg16", params={"batch_size": 16}, seed=0, profile="smoke",
                dataset_fingerprint="d1", notebook=NB, dependency_keys={})
    args.update(changes)
    return cache.cache_key(**args)


def test_key_is_stable_and_changes_with_every_input():
    base = key()
    assert base == key() and len(base) == cache.KEY_LENGTH
    variants = [key(params={"batch_size": 8}), key(profile="demo"), key(dataset_fingerprint="d2"),
                key(dependency_keys={"features": "abc"}), key(name="vgg16-fc2"), key(stage="classify"), key(seed=1),
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
    """Change ``path``'s code in place, keeping its size and modification time (so a memo keyed on file
    stats cannot hide the edit): the docstring's opening quotes and first two letters become ``0;\"\"\"``,
    a statement before it (the string is no longer a docstring, so it counts)."""
    stat = path.stat()
    text = path.read_text()
    assert text.startswith('"""') and not set(text[3:5]) & set('"\\'), path
    path.write_text('0;"""' + text[5:])
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
    ("deck/render/build.py", set()),
    ("engine/run/scheduler.py", set()),
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
    nb["cells"][-1]["source"] = ["classify.save(run_dir, table)"]  # arguments left out
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


def docstrings(tree):
    """The docstring nodes of a module, its classes and functions."""
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [node.body[0].value for node in ast.walk(tree) if isinstance(node, documented) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
            and isinstance(node.body[0].value.value, str)]


def reword(path):
    """Rewrite every docstring of ``path`` (new text, one line more) and add comments and blank lines
    above the code, so every line number moves; returns how many docstrings it rewrote."""
    lines = path.read_bytes().splitlines(keepends=True)  # bytes: ast's column offsets count UTF-8 bytes
    found = docstrings(ast.parse(b"".join(lines)))
    for node in sorted(found, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        first, last = node.lineno - 1, node.end_lineno - 1
        head, tail = lines[first][: node.col_offset], lines[last][node.end_col_offset:]
        lines[first: last + 1] = [head + b'"""Reworded, with a comment\'s worth of words.\n', b"\n", b'Two more lines."""' + tail]
    path.write_bytes(b"# A comment on top.\n\n# And another, after a blank line.\n" + b"".join(lines) + b"\n# The end.\n")
    return len(found)


def test_comments_docstrings_and_line_numbers_keep_every_key(copied):
    before = fingerprints(copied)
    rewritten = sum(reword(path) for path in (copied / "mame").rglob("*.py"))
    assert rewritten > 100  # module, class and function docstrings throughout the package
    assert fingerprints(copied) == before


def test_a_changed_constant_changes_the_key(copied):
    before = fingerprints(copied)
    builders = copied / "mame" / "models" / "builders.py"
    text = builders.read_text()
    assert text.count('HEAD_PREFIX = "head_"') == 1
    builders.write_text(text.replace('HEAD_PREFIX = "head_"', 'HEAD_PREFIX = "head-"'))
    after = fingerprints(copied)
    assert before["classify"] == after["classify"] and before["features"] != after["features"]


def formatted(pkg, a, b=""):
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(a)
    (pkg / "b.py").write_text(b)
    return cache.closure_fingerprint({"mame.a", "mame.b"}, package_dir=pkg)


def test_formatting_does_not_count_but_expressions_and_their_module_do(tmp_path):
    pkg = tmp_path / "mame"
    pkg.mkdir()
    base = formatted(pkg, 'def f(x, y=2):\n    """Add."""\n    return g(x, y)\n')
    assert formatted(pkg, "# f.\n\n\ndef f(x,\n      y=2):  # y: how much\n    return g(x,    y)\n\n") == base
    assert formatted(pkg, "def f(x, y=3):\n    return g(x, y)\n") != base
    assert formatted(pkg, "def f(x, y=2):\n    return g(y, x)\n") != base
    assert formatted(pkg, 'def f(x, y=2):\n    """Add."""\n    "a string that is not the docstring"\n'
                          "    return g(x, y)\n") != base
    moved = formatted(pkg, "x = 1\ny = 2\n")
    assert formatted(pkg, "x = 1\n", "y = 2\n") != moved  # the same code in another module
    (pkg / "c.py").write_text("y = 2\n")
    assert cache.closure_fingerprint({"mame.a", "mame.c"}, package_dir=pkg) != cache.closure_fingerprint(
        {"mame.a", "mame.b"}, package_dir=pkg)  # the same files under another name


def edit_parameters_cell(path, edit):
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    edit(nb, cell)
    path.write_text(json.dumps(nb))


def test_notebook_comments_blank_lines_and_markdown_keep_the_key_but_defaults_do_not(copied):
    nb = copied / NOTEBOOKS["features"]
    before = fingerprints(copied)["features"]

    def annotate(notebook, cell):
        source = "".join(cell["source"]).replace("batch_size = 32", "\n\n# per step\nbatch_size  =  32  # images")
        cell["source"] = "# The defaults.\n" + source + "\n\n# The end.\n"
        notebook["cells"][0]["source"] = ["# Another title\n", "\n", "Other words."]
        notebook["cells"].insert(2, {"cell_type": "code", "metadata": {}, "source": ["# nothing to run\n", "\n"],
                                     "outputs": [], "execution_count": None})

    edit_parameters_cell(nb, annotate)
    assert fingerprints(copied)["features"] == before
    edit_parameters_cell(nb, lambda _, cell: cell.update(source="".join(cell["source"]).replace(
        "batch_size  =  32", "batch_size = 16")))
    changed_default = fingerprints(copied)["features"]
    assert changed_default != before
    edit_parameters_cell(nb, lambda _, cell: cell["metadata"].update(tags=[]))
    assert fingerprints(copied)["features"] != changed_default  # papermill puts parameters after that tag


def test_closure_fingerprint_follows_the_modules_closure_only(copied):
    pkg = copied / "mame"
    roots = {"mame.stages.classify"}
    base = cache.closure_fingerprint(roots, package_dir=pkg)
    assert len(base) == 64 and base == cache.closure_fingerprint(roots | {"mame.stages", "os", "numpy"}, package_dir=pkg)
    assert cache.closure_fingerprint({"mame.stages.features"}, package_dir=pkg) != base
    edit_keeping_size_and_mtime(pkg / "models" / "builders.py")  # not imported by the classify stage
    reword(pkg / "metrics.py")  # imported, but only its docstrings and comments change
    assert cache.closure_fingerprint(roots, package_dir=pkg) == base
    edit_keeping_size_and_mtime(pkg / "stages" / "__init__.py")  # imported: its code changes
    assert cache.closure_fingerprint(roots, package_dir=pkg) != base


def test_code_that_does_not_parse_is_named(copied):
    pkg = copied / "mame"
    (pkg / "metrics.py").write_text((pkg / "metrics.py").read_text() + "\ndef broken(:\n")
    with pytest.raises(cache.CodeError, match=r"metrics\.py does not parse \(line \d+"):
        fingerprints(copied)
    nb_path = copied / NOTEBOOKS["features"]
    nb = json.loads(nb_path.read_text())
    nb["cells"][2]["source"] = ["%matplotlib inline\n", "from mame.stages import features"]
    nb_path.write_text(json.dumps(nb))
    with pytest.raises(cache.CodeError, match=r"02_features\.ipynb, cell 3 does not parse"):
        cache.notebook_fingerprint(nb_path)
