"""`rsrt book`: the study as a static website, built by Sphinx + MyST-NB from what is already under outputs/.

No notebook is executed: each complete run's executed notebooks are rendered with their outputs. Every figure a page
shows comes from the run files (metrics.json, the executed notebooks, CSVs, provenance), so the book cannot disagree
with them. The site is self-contained (no font, script or style from the network) and opens from disk.

Every page carries its own Content-Security-Policy: only its theme's inline scripts (by hash) and the site's own
files run, so no text a model wrote into a notebook output can run as a script (docs/security.md).

The site is built in a temporary folder beside `--out` and swapped in whole; `--out` must be new, empty or a book
that `rsrt book` made (its `.rsrt-owned` mark says so): any other folder is refused, never emptied.

Layout of the generated source (in that temporary folder, removed after the build):
  index.md         the headline table of every complete run beside the quoted figures
  runs/<run>.md    parameters, provenance, coverage and label, the caption audit summary, the notebooks
  runs/<run>/*.ipynb   copies of the executed notebooks
  method.md, protocol.md   from docs/
  benchmarks.md    every benchmarks/results/*.json as tables
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..fileutil import check_replaceable, swap_in
from ..metrics_record import summary_metrics
from ..paths import cache_dir, data_dir, outputs_dir, project_dir
from . import findings
from .book_notebooks import clean_notebook
from .chapters import CHAPTERS
from .findings import markdown_table
from .run_folder import RunFolder, list_runs

DOC_PAGES = ("method", "protocol", "findings")
STUDY_FILES = Path(__file__).resolve().parent  # notebooks/, docs/, results/ ship with the package
BENCHMARK_RESULTS = STUDY_FILES / "results"  # the benchmarks' results files (benchmarks/results in a checkout)
BOOK_KIND = "book"  # the owner mark of a folder `rsrt book` made
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)
HEADLINE_COLUMNS = ["run", "dataset", "images", "setting", "mR", "T2I mean", "I2T mean", "95 % CI (images)", "quoted lines"]


@dataclass
class BookSummary:
    """What a build made: the site's folder, its runs, those left out (with why), pages, size and time."""

    out: Path
    runs: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)
    pages: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def index(self) -> Path:
        return self.out / "index.html"

    def text(self) -> str:
        lines = [f"book of {len(self.runs)} run(s) in {self.out} ({self.pages} pages, {self.bytes / 1e6:.1f} MB, "
                 f"{self.seconds:.1f} s); open {self.index.as_uri()}"]
        lines += [f"left out {run}: {why}" for run, why in sorted(self.left_out.items())]
        return "\n".join(lines)


def study_runs(root: Path) -> tuple[list[RunFolder], dict[str, str]]:
    """(complete runs, {incomplete run: why}) under outputs/ (a run is a folder with a params.resolved.yaml)."""
    complete, left_out = [], {}
    for run in (r for r in list_runs(root) if r.params.is_file()):
        if run.is_complete():
            complete.append(run)
        elif run.failed_mark.is_file():
            left_out[run.name] = f"its last attempt failed ({run.failed_mark.name}); rerun it with `rsrt run`"
        else:
            left_out[run.name] = f"not complete (no {run.complete_mark.name} or metrics.json); run it with `rsrt run`"
    return complete, left_out


def headline_table(runs: list[RunFolder]) -> pd.DataFrame:
    """One row per complete run, from its metrics.json: the book's front page (the quoted figures come apart)."""
    from .reference import setting_of, versus_references

    rows = []
    for run in runs:
        m = run.read_metrics().record
        rows.append({"run": f"[{run.name}](runs/{run.name}.md)", "dataset": m["dataset"], "images": m["n_images"],
                     "setting": setting_of(m.get("label")), "mR": m["mR"], "T2I mean": m.get("mR_t2i", ""), "I2T mean": m.get("mR_i2t", ""),
                     **{name: m.get(name) for name in summary_metrics()},
                     "95 % CI (images)": f"[{m['ci95']['mR'][0]}, {m['ci95']['mR'][1]}]",
                     "quoted lines": versus_references(m["dataset"], m["ci95"]["mR"])})
    at = HEADLINE_COLUMNS.index("I2T mean") + 1
    columns = HEADLINE_COLUMNS[:at] + summary_metrics() + HEADLINE_COLUMNS[at:]
    return pd.DataFrame(rows, columns=columns)


def quoted_table() -> pd.DataFrame:
    """The published figures the runs are read against (quoted, never re-run)."""
    from .reference import published_table

    return published_table()[["system", "dataset", "setting", "mR", "source"]]


def _index_page(runs: list[Path], left_out: dict[str, str]) -> str:
    table, quoted = markdown_table(headline_table(runs)), markdown_table(quoted_table())
    missing = "".join(f"\n- `{run}`: {why}" for run, why in sorted(left_out.items()))
    toc = "\n".join(f"runs/{r.name}" for r in runs)
    chapters = "\n".join(f"results/{name}" for name in CHAPTERS)
    return f"""# rsrt: the study

Training-free, text-to-text remote-sensing image retrieval, reproduced. mR = mean of R@1/5/10 in both directions
(percent); T2I mean and I2T mean = each direction's mean of its three recalls (the convention of the method's released
code, which some papers quote instead of mR); intervals are 95 % image-level bootstraps; *measured* figures were computed by this project, *quoted* ones
come from the papers named. The setting says what a result may use: zero-shot, in-domain train captions, or a ceiling.

## What it finds

{findings.summary()}

{markdown_table(findings.headline_table())}

From {findings.sources_line()}. The chapters under *Results* hold every figure behind these, each with the command
that reproduces it.

(headline)=
## The runs in this book

![mR of every complete run here beside the quoted figures](comparison.png)

{table}

## Quoted figures

{quoted}
{"" if not missing else chr(10) + "Runs left out (the book never runs a notebook):" + missing + chr(10)}
```{{toctree}}
:maxdepth: 1
:caption: Results

{chapters}
```

```{{toctree}}
:maxdepth: 1
:caption: Runs

{toc}
```

```{{toctree}}
:maxdepth: 1
:caption: Method and protocol

method
protocol
findings
benchmarks
```
"""


def _run_page(folder: RunFolder, notebooks: list[str]) -> str:
    m = folder.read_metrics().record
    params = folder.params.read_text(encoding="utf-8")
    provenance = folder.provenance.read_text(encoding="utf-8") if folder.provenance.is_file() else "{}"
    recalls = markdown_table(pd.DataFrame([{"direction": d, **m[d]} for d in ("t2i", "i2t")]))
    toc = "\n".join(f"{folder.name}/{nb}" for nb in notebooks)
    return f"""# {folder.name}

- **mR {m['mR']}** (95 % image-level interval {m['ci95']['mR']}; caption-level, a diagnostic:
  {m.get('ci95_caption_level', {}).get('mR', 'not recorded')})
- setting: {m.get('label') or 'training-free'}
- captioner: `{m['captioner']}`; encoder: `{m['encoder']}`; pooling: {m.get('pooling')}; field: {m.get('field')}
- coverage: {m.get('coverage', '')}
- {m['n_images']} images, {m['n_queries']['t2i']} caption queries

{recalls}

## Caption audit

{_audit_summary(folder)}

## Parameters

```yaml
{params.rstrip()}
```

## Provenance

```json
{provenance.rstrip()}
```

## Executed notebooks

```{{toctree}}
:maxdepth: 1

{toc}
```
"""


def _audit_summary(folder: RunFolder) -> str:
    """The run's automatic caption checks (means) and its most frequent unsupported words, from the audit CSVs."""
    from ..spreadsheet import read_frame

    checks, words = folder.automatic_checks, folder.unsupported_words
    if not checks.is_file():
        return "This run has no caption audit (an oracle or imported run has no generated captions to check)."
    frame = read_frame(checks)
    numeric = frame.select_dtypes("number")
    parts = [f"Automatic checks over {len(frame)} image(s) (`audit/automatic_checks.csv`), means:",
             markdown_table(numeric.mean().round(3).rename("mean").reset_index().rename(columns={"index": "check"}))]
    top = read_frame(words).head(15).round(3) if words.is_file() else pd.DataFrame()
    parts.append("Words no human caption of the image uses, most frequent first (`audit/top_unsupported_words.csv`):\n\n"
                 + markdown_table(top) if len(top) else "No word outside the human captions was found.")
    if folder.audit_first_page.is_file():
        parts.append(f"The first page of the audit sheet (`audit/audit_sheet_page01.png`; the whole sheet, with its "
                     f"scoring form, is in `rsrt serve`):\n\n![audit sheet of {folder.name}]({folder.name}/audit_sheet_page01.png)")
    sheets = folder.audit_summaries()
    for sheet in sheets:
        parts += [f"Hand audit ({sheet.name}):", markdown_table(read_frame(sheet))]
    if not sheets:
        parts.append("No filled scoring sheet yet: auditors score captions in `rsrt serve` (the Audit page).")
    return "\n\n".join(parts)


def _flatten(value, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, value) of every scalar leaf of a JSON value."""
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in _flatten(item, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(value, list) and value and all(not isinstance(v, (dict, list)) for v in value) and len(value) <= 6:
        return [(prefix, ", ".join(str(v) for v in value))]
    if isinstance(value, list):
        return [pair for i, item in enumerate(value) for pair in _flatten(item, f"{prefix}[{i}]")]
    return [(prefix, str(value))]


BENCHMARKS_README = STUDY_FILES / "benchmarks_readme.md"  # benchmarks/README.md: what each script measures
MAX_TABLE_ROWS, MAX_TABLE_COLUMNS = 25, 12


def benchmark_catalogue(readme: Path = BENCHMARKS_README) -> dict[str, tuple[str, str]]:
    """results file name -> (script, what it measures), from the tables of benchmarks/README.md."""
    catalogue = {}
    for line in readme.read_text(encoding="utf-8").splitlines() if readme.is_file() else []:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        script = re.match(r"`([\w.]+\.py)`", cells[0]) if cells else None
        if script and len(cells) >= 3:
            for name in re.findall(r"([\w]+\.json)", " ".join(cells[2:])):
                catalogue.setdefault(name, (script.group(1), cells[1]))
    return catalogue


def _row_lists(value, depth: int = 0):
    """Every list of records (dicts) in a JSON value, to depth 3."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        yield value
    if depth < 3 and isinstance(value, dict):
        for item in value.values():
            yield from _row_lists(item, depth + 1)


def _main_table(data) -> pd.DataFrame:
    """A results file's main table: its longest list of records (scalar columns), else its top-level figures."""
    lists = sorted(_row_lists(data), key=len, reverse=True)
    if lists:
        frame = pd.json_normalize(lists[0][:MAX_TABLE_ROWS], max_level=1)
        scalar = [c for c in frame.columns if frame[c].map(lambda v: not isinstance(v, (list, dict))).all()]
        return frame[scalar[:MAX_TABLE_COLUMNS]]
    leaves = _flatten(data)[:MAX_TABLE_ROWS]
    return pd.DataFrame(leaves, columns=["figure", "value"])


def _benchmarks_page(results: Path) -> str:
    """Every results file: its question, the command that writes it, the machine, its conclusion and its main table."""
    catalogue = benchmark_catalogue()
    parts = ["# Benchmark results", "",
             "Every `benchmarks/results/*.json`: what it answers and how to rerun it (from `benchmarks/README.md` "
             f"where the file does not say), the machine it was measured on, and its main table (the first "
             f"{MAX_TABLE_ROWS} rows; the file holds the rest).", ""]
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        script, what = catalogue.get(path.name, (None, None))
        record = data if isinstance(data, dict) else {}
        question = record.get("question") or what or record.get("what") or record.get("benchmark") or "not stated"
        command = record.get("command") or (f"python benchmarks/{script}" if script else "see benchmarks/README.md")
        lines = [f"## {path.stem}", "", f"- **Question**: {question}", f"- **Command**: `{command}`",
                 f"- **Measured on**: {findings.machine_of(record)}"]
        if record.get("conclusion"):
            lines.append(f"- **Conclusion**: {record['conclusion']}")
        parts += [*lines, "", markdown_table(_main_table(data)), ""]
    return "\n".join(parts)


CONF_PY = '''# Generated by `rsrt book`; edit rsrt_utils/study/book.py instead.
project = "rsrt study"
author = "the rsrt project"
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_title = "rsrt: the study"
nb_execution_mode = "off"          # the book renders executed notebooks; it never runs one
nb_execution_cache_path = "_cache"
nb_ipywidgets_js = {}              # no widget scripts from a CDN
myst_enable_extensions = []
html_theme_options = {"use_download_button": False, "use_fullscreen_button": False, "search_bar_text": "Search the study"}
html_context = {"default_mode": "light"}  # without it the theme logs "invalid theme mode" on a first visit
html_show_sourcelink = False
html_copy_source = False
suppress_warnings = ["myst.xref_missing", "myst.header", "mystnb.unknown_mime_type", "toc.not_included"]
exclude_patterns = ["_build"]
'''


def _comparison_figure(runs: list[RunFolder], path: Path) -> None:
    """mR of every complete run beside the quoted figures (the report's figure, for the runs in the book)."""
    import matplotlib.pyplot as plt

    from .figures import plot_comparison
    from .reference import measured_row, published_table

    measured = [measured_row(run.read_metrics().record, system=run.name) for run in runs]
    rows = pd.concat([pd.DataFrame(measured), published_table()], ignore_index=True) if measured else published_table()
    plt.close(plot_comparison(rows, path=path, title="mR of the runs in this book beside the quoted figures"))


def shown_paths(folder: RunFolder) -> dict[str, str]:
    """How the book writes the machine's absolute paths: relative to the project (outputs/<run>/...), or `~`."""
    outputs = folder.path.resolve().parent
    project = project_dir()
    roots = {str(outputs): f"{outputs.relative_to(project)}" if project and outputs.is_relative_to(project) else "outputs"}
    for folder, name in ((cache_dir(), "cache"), (data_dir(), "data")):  # the caches' and the store's own names
        if not (project and folder.is_relative_to(project)):
            roots[str(folder)] = name
    if project:
        roots[str(project)] = "."
    roots[str(Path.home())] = "~"
    return roots


def write_source(source: Path, runs: list[Path], left_out: dict[str, str]) -> None:
    """The Sphinx source of the book (in a new folder): pages from the run files, notebooks cleaned for readers
    (book_notebooks.py), docs pages copied."""
    (source / "runs").mkdir(parents=True)
    (source / "conf.py").write_text(CONF_PY, encoding="utf-8")
    (source / "index.md").write_text(_index_page(runs, left_out), encoding="utf-8")
    _comparison_figure(runs, source / "comparison.png")
    (source / "results").mkdir()
    for name, chapter in CHAPTERS.items():
        (source / "results" / f"{name}.md").write_text(chapter(BENCHMARK_RESULTS), encoding="utf-8")
    for folder in runs:
        target = source / "runs" / folder.name
        target.mkdir()
        notebooks = []
        if folder.audit_first_page.is_file():
            shutil.copyfile(folder.audit_first_page, target / folder.audit_first_page.name)
        for notebook in sorted(folder.notebooks.glob("*.ipynb")):
            clean_notebook(notebook, target / notebook.name, shown_paths(folder))
            notebooks.append(notebook.stem)
        (source / "runs" / f"{folder.name}.md").write_text(_run_page(folder, notebooks), encoding="utf-8")
    for page in DOC_PAGES:
        shutil.copyfile(STUDY_FILES / "docs" / f"{page}.md", source / f"{page}.md")
    (source / "benchmarks.md").write_text(_benchmarks_page(BENCHMARK_RESULTS), encoding="utf-8")


def build_book(outputs_root: Path | None = None, out: Path | None = None, quiet: bool = True) -> BookSummary:
    """Build the book of every complete run under outputs_root (default outputs/) into `out` (default
    outputs/book); RuntimeError naming the fix when there is no complete run or Sphinx fails."""
    started = time.monotonic()
    root = Path(outputs_root or outputs_dir()).expanduser().resolve()
    out = check_replaceable(Path(out) if out else root / "book", BOOK_KIND)  # before any work: never a user's folder
    out.parent.mkdir(parents=True, exist_ok=True)
    if not root.is_dir():
        raise FileNotFoundError(f"outputs folder {root} does not exist; run the study first (bash scripts/run_study.sh)")
    runs, left_out = study_runs(root)
    if not runs:
        raise RuntimeError(f"no complete run under {root}" + (f" ({', '.join(sorted(left_out))} incomplete)" if left_out
                                                               else "") + "; run one with `rsrt run params/<file>.yaml`")
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-build-"))  # ours: MyST-NB's scratch lands in it
    try:
        write_source(work / "source", runs, left_out)
        _sphinx(work / "source", work / "site", quiet)
        seal_inline_scripts(work / "site")
        swap_in(work / "site", out, BOOK_KIND)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    files = [p for p in out.rglob("*") if p.is_file()]
    return BookSummary(out, [r.name for r in runs], left_out, pages=sum(p.suffix == ".html" for p in files),
                       bytes=sum(p.stat().st_size for p in files), seconds=round(time.monotonic() - started, 1))


def seal_inline_scripts(site: Path) -> int:
    """Give every page a Content-Security-Policy that runs only its own theme scripts: the inline scripts of its
    <head> (and of Sphinx's search page) by their sha256, scripts from the site itself, nothing else. A script a
    model's text put into a notebook output, in the page's body, never runs. Returns the pages sealed."""
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)  # not theme snippets
    for page in pages:
        html = page.read_text(encoding="utf-8")
        head_end = html.find("</head>")
        if "<head>" not in html or head_end < 0:
            raise RuntimeError(f"the book's page {page} has no <head>: its scripts cannot be sealed")
        trusted = page == site / "search.html"
        hashes = sorted({_script_hash(m[1]) for m in _INLINE_SCRIPT.finditer(html) if trusted or m.start() < head_end})
        policy = f"script-src 'self' {' '.join(hashes)}; object-src 'none'; base-uri 'none'".replace("  ", " ")
        html = html.replace("<head>", f'<head>\n  <meta http-equiv="Content-Security-Policy" content="{policy}">', 1)
        page.write_text(html, encoding="utf-8")
    return len(pages)


def _script_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def _sphinx(source: Path, out: Path, quiet: bool) -> None:
    """sphinx-build -b html into a new folder (stale pages of removed runs never linger)."""
    from sphinx.cmd.build import build_main

    args = ["-b", "html", "-E", "-d", str(source / "_doctrees"), str(source), str(out)] + (["-q"] if quiet else [])
    if build_main(args) != 0:
        raise RuntimeError(f"Sphinx could not build the book from {source}; its messages are above")
    shutil.rmtree(out / ".doctrees", ignore_errors=True)
