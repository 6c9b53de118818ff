"""The book's copy of an executed notebook: no machine path, no progress bar, no environment warning; the code folded
under its output; the run's own notebook untouched."""

from __future__ import annotations

import json

import nbformat

from rsrt_utils.study.book_notebooks import FOLDED, clean_notebook, stderr_kept

TQDM = ("embedding with st:all-MiniLM-L6-v2:   0%|          | 0/98 [00:00<?, ?it/s]\rembedding with st:all-MiniLM-L6-v2:  "
        "10%|█         | 10/98 [00:02<00:20,  4.36it/s]\rembedding with st:all-MiniLM-L6-v2: 100%|██████████| 98/98 "
        "[00:20<00:00,  4.80it/s]\n")
WARNING = ("/home/someone/rsrt/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found. "
           "Please update jupyter and ipywidgets.\n  from .autonotebook import tqdm as notebook_tqdm\n")


def executed(tmp_path):
    parameters = nbformat.v4.new_code_cell('PARAMS_PATH = "/home/someone/rsrt/outputs/smoke/params.resolved.yaml"\n'
                                           'RUN_DIR = "/home/someone/rsrt/outputs/smoke"')
    parameters.metadata["tags"] = ["injected-parameters"]
    work = nbformat.v4.new_code_cell("vectors = rs.caption_vectors_by_image(run, dataset)", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text=WARNING + TQDM + "neighbour captioner bank: 8973 images\n"),
        nbformat.v4.new_output("stream", name="stdout", text="outputs in /home/someone/rsrt/outputs/smoke\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})])
    path = tmp_path / "02_embedding.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[parameters, work]), path)
    return path


def test_the_books_copy_shows_no_machine_path_no_progress_and_no_warning(tmp_path):
    source = executed(tmp_path)
    before = source.read_bytes()
    clean_notebook(source, tmp_path / "copy.ipynb", {"/home/someone/rsrt/outputs": "outputs", "/home/someone/rsrt": ".",
                                                     "/home/someone": "~"})
    text = (tmp_path / "copy.ipynb").read_text()
    assert "/home/someone" not in text and "%|" not in text and "IProgress" not in text and "autonotebook" not in text
    copy = json.loads(text)
    assert copy["cells"][0]["source"].startswith('PARAMS_PATH = "outputs/smoke/params.resolved.yaml"')
    outputs = copy["cells"][1]["outputs"]
    assert [o["output_type"] for o in outputs] == ["stream", "stream", "display_data"]
    assert outputs[0]["text"] == "neighbour captioner bank: 8973 images\n", "a line worth reading stays"
    assert outputs[1]["text"] == "outputs in outputs/smoke\n" and FOLDED in copy["cells"][1]["metadata"]["tags"]
    assert source.read_bytes() == before, "the run's own notebook is never changed"


def test_a_stream_of_only_progress_disappears():
    assert stderr_kept(TQDM) == "" and stderr_kept(WARNING + TQDM) == ""
