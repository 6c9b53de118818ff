"""docs/contributing.md's figure, followed literally: a plot function saved with `save_figure` to a run's
`figure_path`, and a cell in the notebook whose stage has the data; the run's folder and the book's copy of the
executed notebook then show it."""

from __future__ import annotations

import json
import shutil

import pytest

from rsrt_utils.study import book, notebook_runner
from rsrt_utils.study.run_folder import RunFolder

pytestmark = pytest.mark.slow

# The plot function (in figures.py in the package; a module on the path here, as the toy backend is)
TOY_FIGURE = '''
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

from rsrt_utils.study.figures import save_figure


def plot_vector_norms(vectors, coverage, path=None):
    """The length of each gallery embedding (a toy figure: all 1 for normalised vectors)."""
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(((vectors ** 2).sum(axis=-1).ravel() ** 0.5), ".")
    ax.set_title(f"embedding norms ({coverage})")
    return save_figure(fig, path)
'''

# ... and the cell in notebook 02, where the vectors are
CELL = ["import toy_figures\n", "from IPython.display import Image, display\n",
        "toy_figures.plot_vector_norms(vectors, dataset.coverage_note(), path=run.figure_path('02_vector_norms'))\n",
        "display(Image(filename=str(run.figure_path('02_vector_norms'))))"]


def test_a_figure_is_a_plot_function_and_a_notebook_cell(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    shutil.copytree(notebook_runner.NOTEBOOKS_DIR, notebooks)
    embedding = notebooks / "02_embedding.ipynb"
    notebook = json.loads(embedding.read_text())
    notebook["cells"].append({"cell_type": "code", "execution_count": None, "id": "toy-figure", "metadata": {},
                              "outputs": [], "source": CELL})
    embedding.write_text(json.dumps(notebook, indent=1))
    (tmp_path / "toy_figures.py").write_text(TOY_FIGURE)
    monkeypatch.setattr(notebook_runner, "NOTEBOOKS_DIR", notebooks)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{monkeypatch.delenv('PYTHONPATH', raising=False) or ''}")
    run_dir = notebook_runner.run_study("smoke", {"encoder.spec": "hashing:512"}, ["00", "01", "02", "03", "04"], tmp_path / "run",
                                        progress=False)
    folder = RunFolder(run_dir)
    assert folder.figure("02_vector_norms").is_file()
    source = tmp_path / "book-source"
    book.write_source(source, [folder], {})
    copied = json.loads((source / "runs" / folder.name / "02_embedding.ipynb").read_text())
    outputs = [o for cell in copied["cells"] if cell.get("id") == "toy-figure" for o in cell["outputs"]]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the book's page of notebook 02 shows the figure"
