"""`rsrt book` on a run folder made here: the front page holds the run's own figures, incomplete runs are named and
left out, nothing is fetched from the network, and the command's errors say what to do."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from rsrt_utils.cli import main
from rsrt_utils.study.book import build_book

PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


pytestmark = pytest.mark.slow  # builds Sphinx sites


def make_run(root: Path, name: str, mr: float, complete: bool = True) -> Path:
    folder = root / name
    (folder / "notebooks").mkdir(parents=True)
    (folder / "params.resolved.yaml").write_text(f"run_name: {name}\n")
    (folder / "provenance.json").write_text(json.dumps({"git": {"revision": "abc123"}}))
    metrics = {"run_name": name, "dataset": "rsitmd", "split": "test", "n_images": 452, "n_queries": {"t2i": 2260, "i2t": 452},
               "captioner": "published:llava+qwenvl", "encoder": "st:all-MiniLM-L6-v2", "pooling": "max",
               "field": "caption", "label": "zero-shot: nothing from any train split", "coverage": "RSITMD test",
               "t2i": {"R@1": 8.0, "R@5": 25.0, "R@10": 38.0}, "i2t": {"R@1": 5.0, "R@5": 17.0, "R@10": 24.0},
               "mR": mr, "mR_t2i": 23.67, "mR_i2t": 15.33, "ci95": {"mR": [round(mr - 2.1, 2), round(mr + 2.3, 2)]},
               "ci95_caption_level": {"mR": [round(mr - 1.5, 2), round(mr + 1.5, 2)]}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Evaluation of " + name),
                                               nbformat.v4.new_code_cell("figure()", outputs=[nbformat.v4.new_output(
                                                   "display_data", data={"image/png": PNG_1PX, "text/plain": "<Figure>"})])])
    nbformat.write(notebook, folder / "notebooks" / "04_evaluation.ipynb")
    if complete:
        (folder / "RUN_COMPLETE.json").write_text(json.dumps({"notebooks": {}}))
    return folder


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    make_run(root, "vlm-a", 22.42)
    make_run(root, "half-done", 10.0, complete=False)
    return root, build_book(root, quiet=True)


def test_the_front_page_shows_each_complete_run_with_its_own_figures(book):
    root, summary = book
    assert summary.runs == ["vlm-a"] and "half-done" in summary.left_out and summary.out == root / "book"
    assert not (root / "jupyter_execute").exists() and not (root / ".book-source").exists(), "no scratch left behind"
    page = BeautifulSoup((summary.out / "index.html").read_text(), "html.parser")
    rows = [[td.get_text(" ", strip=True) for td in tr.find_all("td")] for tr in page.select("#headline table")[0].select("tbody tr")]
    metrics = json.loads((root / "vlm-a" / "metrics.json").read_text())
    assert rows == [["vlm-a", "rsitmd", "452", "zero-shot", "22.42", "23.67", "15.33", f"[{metrics['ci95']['mR'][0]}, {metrics['ci95']['mR'][1]}]",
                     rows[0][-1]]]
    assert "CLIP ViT-B/32 zero-shot 24.19: inside the interval" in rows[0][-1]
    assert "half-done" in page.get_text() and "42.62" in page.select("#quoted-figures table")[0].get_text()


def test_run_pages_render_the_executed_notebooks_without_running_them(book):
    root, summary = book
    run_page = (summary.out / "runs" / "vlm-a.html").read_text()
    assert "abc123" in run_page and "22.42" in run_page and "04_evaluation.html" in run_page
    notebook = summary.out / "runs" / "vlm-a" / "04_evaluation.html"
    images = re.findall(r'<img[^>]+src="([^"]+)"', notebook.read_text())
    assert images and all((notebook.parent / src).is_file() for src in images)
    assert not (root / "vlm-a" / "notebooks" / "04_evaluation.ipynb").read_text().count('"execution_count": 1')


def test_the_site_fetches_nothing_from_the_network(book):
    _, summary = book
    remote = re.compile(r'(?:src|href)="(?:https?:)?//|url\((?:["\'])?(?:https?:)?//|@import\s+["\']?(?:https?:)?//')
    offenders = [p.name for p in summary.out.rglob("*") if p.suffix in (".html", ".css", ".js") and remote.search(
        p.read_text(errors="replace"))]
    assert not offenders, offenders


def test_the_command_prints_where_to_open_it_and_names_the_fix_when_there_is_nothing(tmp_path, capsys):
    make_run(tmp_path / "outputs", "r1", 20.0)
    assert main(["book", "--outputs", str(tmp_path / "outputs"), "--out", str(tmp_path / "site"), "--open"]) == 0
    assert str(tmp_path / "site" / "index.html") in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["book", "--outputs", str(tmp_path / "empty")]) == 2
    error = capsys.readouterr().err
    assert "no complete run under" in error and "rsrt run params/" in error


def test_a_folder_it_did_not_make_is_refused_and_left_as_it_is(book, tmp_path, monkeypatch, capsys):
    root, _ = book
    mine = tmp_path / "thesis"
    (mine / "sub").mkdir(parents=True)
    (mine / "my-thesis.tex").write_text("\\chapter{Results}")
    (mine / "sub" / "data.csv").write_text("a,b\n1,2\n")
    before = sorted(p.relative_to(mine) for p in mine.rglob("*"))
    with pytest.raises(RuntimeError, match="not empty and was not made by rsrt"):
        build_book(root, out=mine)
    monkeypatch.chdir(mine)
    assert main(["book", "--outputs", str(root), "--out", "."]) == 2
    assert "is never emptied" in capsys.readouterr().err
    assert sorted(p.relative_to(mine) for p in mine.rglob("*")) == before
    assert (mine / "my-thesis.tex").read_text() == "\\chapter{Results}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"], "nothing was made beside it either"


def test_a_book_it_made_is_replaced_whole_and_nothing_is_left_beside_it(book, tmp_path):
    root, _ = book
    site = tmp_path / "site"
    first = build_book(root, out=site)
    (site / "stale.html").write_text("a page of an earlier build")
    second = build_book(root, out=site)
    assert first.index.is_file() and second.index.is_file() and not (site / "stale.html").exists()
    assert (site / ".rsrt-owned").read_text().strip() == "book"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"], "no staging, scratch or source folder is left"


INJECTED = "<script>document.title = 'pwned'</script>"


def test_each_page_runs_only_its_theme_scripts_and_never_one_from_a_notebook_output(tmp_path):
    import base64
    import hashlib

    folder = make_run(tmp_path / "outputs", "model-text", 12.0)
    notebook = nbformat.read(folder / "notebooks" / "04_evaluation.ipynb", as_version=4)
    notebook.cells[1].outputs.append(nbformat.v4.new_output("display_data", data={
        "text/html": f"<p>a caption a model wrote</p>{INJECTED}", "text/plain": "caption"}))
    nbformat.write(notebook, folder / "notebooks" / "04_evaluation.ipynb")
    site = build_book(tmp_path / "outputs", out=tmp_path / "site").out
    page = (site / "runs" / "model-text" / "04_evaluation.html").read_text()
    assert INJECTED in page, "the output is rendered (the policy, not the renderer, stops it)"
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)[1]
    allowed = set(re.findall(r"'sha256-[^']+'", policy))

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    head = page[:page.index("</head>")]
    theme = re.findall(r"<script(?![^>]*src=)[^>]*>(.*?)</script>", head, re.S)
    assert theme and {digest(t) for t in theme} == allowed and digest("document.title = 'pwned'") not in allowed
    assert policy.startswith("script-src 'self' ") and "unsafe-inline" not in policy
    for other in (p for p in site.rglob("*.html") if "_static" not in p.parts):
        assert '<meta http-equiv="Content-Security-Policy"' in other.read_text(), other
