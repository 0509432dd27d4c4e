"""A read of the test split by any stage, even by a cell of its notebook, reaches that run's metrics.json: the data
layer journals it in the run's kernel (``mame.data.ledger``) and the runner hands the journal over.

The notebook is two cells without TensorFlow, run by the real runner through papermill."""

from pathlib import Path

import nbformat
import pytest

from mame.engine.run import records as runs
from mame.engine.run.execute import TEST_READS_FILE, journaled_reads
from mame.engine.run.scheduler import run_plan
from tests.helpers import write_smoke_plan

PARAMS = 'run_dir = "."\ndata_dir = "."\ninputs = {}\nprofile = "smoke"\nbackbone = None\nseed = 0\npeek = False'
BODY = """from mame import results
from mame.data.metadata import read_metadata
meta = read_metadata(data_dir)
n = len([r for r in meta.records if r.subset == "test"]) if peek else len(meta.split("val"))
results.save_result(run_dir, {"metrics": {"n": n}})"""
STAGES = """
stages:
  features:
    notebook: {notebook}
    variants:
      honest: {{}}
      peeking: {{peek: true}}
"""


@pytest.mark.slow
def test_a_notebook_cell_that_reads_the_test_split_is_recorded_in_its_runs_metrics(tmp_path, isolated_runs):
    notebook = tmp_path / "peek.ipynb"
    cells = [nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(BODY)]
    kernel = {"kernelspec": {"display_name": "Python (mame)", "language": "python", "name": "mame"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), notebook)
    plan = write_smoke_plan(tmp_path / "plan.yaml", STAGES.format(notebook=notebook))
    outcomes = run_plan("smoke", plan_file=plan, jobs=1)
    assert {o.run.id: o.state for o in outcomes} == {"features/honest": "done", "features/peeking": "done"}
    honest = runs.read_metrics(isolated_runs / "features" / "honest")
    peeking = runs.read_metrics(isolated_runs / "features" / "peeking")
    assert honest["run"]["test_split_reads"] == []
    assert peeking["run"]["executor"]["kernel"] == "forked"  # the journal's variable does not cost the forked kernel
    (read,) = peeking["run"]["test_split_reads"]
    assert read["n_images"] == peeking["metrics"]["n"] > 0 and "records" in read["what"]


def test_the_journal_is_read_leniently_a_torn_last_line_is_left_out(tmp_path):
    assert journaled_reads(tmp_path) is None  # the kernel never started: the stage's own list stands
    (tmp_path / TEST_READS_FILE).write_text('{"what": "Metadata.records", "n_images": 3}\n{"what": "x", "n_im')
    assert journaled_reads(Path(tmp_path)) == [{"what": "Metadata.records", "n_images": 3}]
