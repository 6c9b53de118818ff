"""The committed notebooks are the source: thin cells into rsrt_utils, one literal `parameters` cell, no outputs.

Fast: nothing is executed (nbval does that). The rule for logic in a code cell: no `def`, `class`, `lambda`,
`while`, `try` or `with`; a `for` or `if` only at the top level of a cell, each branch at most
MAX_BRANCH_STATEMENTS simple statements (calls, assignments, expressions) with nothing nested inside.
Anything longer belongs in a function of rsrt_utils.
"""

from __future__ import annotations

import ast
import copy
import json
import warnings
from pathlib import Path

import nbformat
import pytest
from nbformat.warnings import DuplicateCellId

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
MAX_CELL_LINES = 12
MAX_BRANCH_STATEMENTS = 2
ALLOWED_MODULES = ("rsrt_utils", "IPython.display", "pandas", "matplotlib.pyplot")  # rsrt_utils with its submodules
FORBIDDEN_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.While, ast.Try, ast.TryStar, ast.With,
                   ast.AsyncWith, ast.AsyncFor, ast.Global, ast.Nonlocal)
BACKEND_CALLS = {"use", "switch_backend"}  # matplotlib.use("Agg") / plt.switch_backend(...) would break inline figures
AGGREGATING_NOTEBOOKS = ("08_report",)  # they read metrics.json files only, so they never load a dataset
DATASET_LOADERS = {"prepare_dataset", "load_split", "load_dataset"}
EXECUTION_METADATA = {"execution", "papermill", "ExecuteTime"}


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def module_allowed(name: str) -> bool:
    return name == "rsrt_utils" or name.startswith("rsrt_utils.") or name in ALLOWED_MODULES


def import_problems(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return [f"imports {name!r}; allowed: {', '.join(ALLOWED_MODULES)}" for name in names if not module_allowed(name)]


def logic_problems(tree: ast.Module) -> list[str]:
    problems = [f"uses {type(node).__name__} (line {node.lineno}); move it into rsrt_utils"
                for node in ast.walk(tree) if isinstance(node, FORBIDDEN_NODES)]
    for statement in tree.body:
        if isinstance(statement, (ast.For, ast.If)):
            for branch in (statement.body, statement.orelse):
                nested = [s for s in branch if isinstance(s, (ast.For, ast.If, ast.While, ast.With, ast.Try))]
                if nested or len(branch) > MAX_BRANCH_STATEMENTS:
                    problems.append(f"{type(statement).__name__} at line {statement.lineno} is not trivial (at most "
                                    f"{MAX_BRANCH_STATEMENTS} simple statements per branch, nothing nested)")
    calls = [node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)]
    problems += [f"calls .{name}(): notebooks keep the kernel's inline backend" for name in calls if name in BACKEND_CALLS]
    return problems


def code_cell_problems(cell) -> list[str]:
    where = f"cell {cell.get('id')}"
    lines = cell.source.splitlines()
    problems = [f"{where}: {len(lines)} lines (at most {MAX_CELL_LINES})"] if len(lines) > MAX_CELL_LINES else []
    if cell.get("outputs") or cell.get("execution_count") is not None:
        problems.append(f"{where}: stored outputs or an execution count; clear outputs before committing")
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as error:
        return [*problems, f"{where}: not plain Python ({error.msg}, line {error.lineno}); no magics or shell escapes"]
    return problems + [f"{where}: {p}" for p in import_problems(tree) + logic_problems(tree)]


def parameters_problems(nb) -> list[str]:
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        return [f"{len(tagged)} cells tagged 'parameters' (need exactly one)"]
    cell = tagged[0]
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    problems = [] if code_cells and code_cells[0] is cell else ["the 'parameters' cell is not the first code cell"]
    try:
        body = ast.parse(cell.source).body
    except SyntaxError as error:
        return [*problems, f"the 'parameters' cell is not Python: {error.msg}"]
    literal = all(isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
                  and isinstance(s.value, ast.Constant) for s in body)
    return problems + ([] if literal and body else ["the 'parameters' cell must hold plain literal assignments only (NAME = constant)"])


def id_and_metadata_problems(nb) -> list[str]:
    ids = [c.get("id") for c in nb.cells]
    problems = [] if all(ids) else [f"{ids.count(None) + ids.count('')} cells without an id"]
    duplicates = sorted({i for i in ids if i and ids.count(i) > 1})
    problems += [f"duplicate cell ids {duplicates}"] if duplicates else []
    stale = sorted({key for c in nb.cells for key in c.get("metadata", {}) if key in EXECUTION_METADATA}
                   | set(nb.metadata) & EXECUTION_METADATA)
    problems += [f"execution metadata {stale} stored (an executed copy?)"] if stale else []
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    return problems + ([] if kernel == "python3" else [f"kernelspec name {kernel!r}; use 'python3'"])


def parsed(cell) -> ast.Module | None:
    try:
        return ast.parse(cell.source)
    except SyntaxError:
        return None  # reported by code_cell_problems


def setup_placement_problems(code_cells: list) -> list[str]:
    """Imports belong in the setup cell (the second code cell), so a notebook's dependencies are read in one place."""
    late = [c for c in code_cells[2:] if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(parsed(c) or ast.Module([])))]
    return [f"cell {c.get('id')}: imports outside the setup cell (the second code cell)" for c in late]


def aggregating_problems(name: str, code_cells: list) -> list[str]:
    if name not in AGGREGATING_NOTEBOOKS:
        return []
    calls = {n.func.attr for c in code_cells for n in ast.walk(parsed(c) or ast.Module([]))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    return [f"calls {call}(): an aggregating notebook must not load a dataset" for call in sorted(calls & DATASET_LOADERS)]


def read_notebook(path: Path) -> tuple[list[str], nbformat.NotebookNode]:
    """The id and metadata problems of the file as stored (nbformat.read renames duplicate ids), and the notebook."""
    problems = id_and_metadata_problems(nbformat.from_dict(json.loads(path.read_text(encoding="utf-8"))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicateCellId)  # reported above, by name
        return problems, nbformat.read(path, as_version=nbformat.NO_CONVERT)


def notebook_problems(path: Path) -> list[str]:
    """Every rule this file states, as readable messages (empty: the notebook is thin)."""
    problems, nb = read_notebook(path)
    try:
        nbformat.validate(copy.deepcopy(nb))
    except nbformat.ValidationError as error:
        return [*problems, f"not a valid nbformat 4 notebook: {error.message}"]
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    problems += parameters_problems(nb) + [p for c in code_cells for p in code_cell_problems(c)]
    return problems + setup_placement_problems(code_cells) + aggregating_problems(path.stem, code_cells)


def test_the_notebooks_are_there():
    names = [p.stem for p in notebook_paths()]
    assert len(names) >= 10 and names[0] == "00_data" and "08_report" in names, names


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_notebook_is_thin(path):
    assert notebook_problems(path) == []


# ------------------------------------------------------------------ the checker finds each kind of violation
GOOD_SETUP = "from rsrt_utils.study import pipeline as rs\n\nrun = rs.open_run(PARAMS_PATH, RUN_DIR)"


def write_notebook(folder: Path, name: str, cells: list, parameters: str = 'PARAMS_PATH = "params/smoke.yaml"\nRUN_DIR = ""') -> Path:
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), params, *cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps(nb, indent=1))
    return path


def code(source: str):
    return nbformat.v4.new_code_cell(source)


def test_a_thin_notebook_passes(tmp_path):
    loop = "for page in [1, 2]:\n    print(page)"
    assert notebook_problems(write_notebook(tmp_path, "ok", [code(GOOD_SETUP), code(loop)])) == []


@pytest.mark.parametrize("source, expected", [
    ("import numpy as np", "imports 'numpy'"),
    ("import matplotlib\nmatplotlib.use('Agg')", "imports 'matplotlib'"),
    ("import matplotlib.pyplot as plt\nplt.switch_backend('Agg')", "calls .switch_backend()"),
    ("def f():\n    return 1", "uses FunctionDef"),
    ("class A:\n    pass", "uses ClassDef"),
    ("f = lambda x: x", "uses Lambda"),
    ("while False:\n    pass", "uses While"),
    ("for a in b:\n    for c in a:\n        print(c)", "is not trivial"),
    ("for a in b:\n    x = 1\n    y = 2\n    print(x)", "is not trivial"),
    ("\n".join(f"x{i} = {i}" for i in range(13)), "13 lines"),
    ("%matplotlib inline", "not plain Python"),
    ("from rsrt_utils.study import quality", "imports outside the setup cell"),
])
def test_each_violation_is_named(tmp_path, source, expected):
    path = write_notebook(tmp_path, "bad", [code(GOOD_SETUP), code(source)])
    problems = notebook_problems(path)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("parameters, expected", [
    ('PARAMS_PATH = str("params/smoke.yaml")', "plain literal assignments"),
    ('import os\nPARAMS_PATH = "x"', "plain literal assignments"),
    ("", "plain literal assignments"),
])
def test_parameters_cell_must_be_literal(tmp_path, parameters, expected):
    problems = notebook_problems(write_notebook(tmp_path, "bad", [code(GOOD_SETUP)], parameters=parameters))
    assert any(expected in p for p in problems), problems


def test_stored_outputs_ids_and_tags_are_checked(tmp_path):
    executed = code(GOOD_SETUP)
    executed.execution_count = 1
    executed.outputs = [nbformat.v4.new_output("stream", text="hello")]
    extra_parameters = code("X = 1")
    extra_parameters.metadata["tags"] = ["parameters"]
    path = write_notebook(tmp_path, "bad", [executed, code("print(run)"), extra_parameters])
    raw = json.loads(path.read_text())
    raw["cells"][-1]["id"] = raw["cells"][-2]["id"]  # by hand: nbformat's constructors repair duplicate ids
    path.write_text(json.dumps(raw))
    problems = notebook_problems(path)
    assert any("stored outputs" in p for p in problems), problems
    assert any("duplicate cell ids" in p for p in problems), problems
    assert any("2 cells tagged 'parameters'" in p for p in problems), problems


def test_an_aggregating_notebook_must_not_load_the_dataset(tmp_path):
    setup = GOOD_SETUP + "\ndataset = rs.prepare_dataset(run)"
    problems = notebook_problems(write_notebook(tmp_path, AGGREGATING_NOTEBOOKS[0], [code(setup)]))
    assert any("must not load a dataset" in p for p in problems), problems
    assert notebook_problems(write_notebook(tmp_path, "03_other", [code(setup)])) == []
