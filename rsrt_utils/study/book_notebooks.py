"""The executed notebooks as the book shows them: what a reader came for first (figures and tables; the code folded
under each output), and nothing of the machine that ran them: no absolute path (shown relative to the project), no
progress-bar stream and no environment warning. The run folder's own notebooks are never changed."""

from __future__ import annotations

import json
import re
from pathlib import Path

PROGRESS = re.compile(r"\d+%\||\|\s*\d+/\d+\s*\[|\bit/s\]|\bs/it\]|\bcell/s\]")  # tqdm's bars, at any stage
ENVIRONMENT_WARNING = re.compile(r"Warning\b|warnings\.warn|IProgress not found|^\s*from \.autonotebook|^\s*$")
FOLDED = "hide-input"  # MyST-NB folds a cell's code under its output (a <details> element: no script)


def stderr_kept(text: str) -> str:
    """The lines of a stderr stream worth reading: not a progress bar (each \\r frame), not an environment warning."""
    lines = [frame for line in text.split("\n") for frame in line.split("\r")[-1:]]
    kept = [line for line in lines if not PROGRESS.search(line) and not ENVIRONMENT_WARNING.search(line)]
    return "\n".join(kept) + ("\n" if kept else "")


def relative_paths(text: str, roots: dict[str, str]) -> str:
    """`text` with every absolute path under one of `roots` (absolute path -> shown as) written relative to it."""
    for absolute, shown in sorted(roots.items(), key=lambda item: -len(item[0])):
        text = text.replace(absolute.rstrip("/") + "/", f"{shown}/").replace(absolute.rstrip("/"), shown)
    return text


def _clean_outputs(outputs: list[dict], roots: dict[str, str]) -> list[dict]:
    cleaned = []
    for output in outputs:
        if output.get("output_type") == "stream":
            text = "".join(output.get("text", ""))
            text = stderr_kept(text) if output.get("name") == "stderr" else text
            if not text.strip():
                continue
            output = {**output, "text": relative_paths(text, roots)}
        elif "data" in output and "text/plain" in output["data"]:
            plain = output["data"]["text/plain"]
            output = {**output, "data": {**output["data"], "text/plain": relative_paths("".join(plain), roots)}}
        cleaned.append(output)
    return cleaned


def clean_notebook(source: Path, target: Path, roots: dict[str, str]) -> None:
    """Write the book's copy of an executed notebook (see the module docstring)."""
    notebook = json.loads(source.read_text(encoding="utf-8"))
    for cell in notebook.get("cells", []):
        cell["source"] = relative_paths("".join(cell.get("source", "")), roots)
        if cell.get("cell_type") != "code":
            continue
        cell["outputs"] = _clean_outputs(cell.get("outputs", []), roots)
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if cell["outputs"] and FOLDED not in tags:
            tags.append(FOLDED)
    target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False), encoding="utf-8")
