"""Every `rsrt` command and subcommand, found by walking the argparse tree, answers `--help` with its usage.

Top-level commands run as a real subprocess (`python -m rsrt_utils <cmd> --help`), so an import error in any
module the command line needs shows up; the deeper ones run in-process, which is fast.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rsrt_utils.cli import build_parser

PROJECT = Path(__file__).resolve().parents[2]
KNOWN_TOP_LEVEL = {"data", "oracle", "caption", "caption-import", "run", "sweep", "report"}


def subparser_actions(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction]:
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every (sub)command path below `parser`, e.g. ('data', 'import'), parents before children."""
    paths = []
    for action in subparser_actions(parser):
        for name, child in action.choices.items():
            paths += [prefix + (name,), *command_paths(child, prefix + (name,))]
    return paths


def commands_without_help(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[str]:
    """Commands their parent's --help lists without a one-line description."""
    missing = []
    for action in subparser_actions(parser):
        described = {choice.dest for choice in action._choices_actions if (choice.help or "").strip()}
        for name, child in action.choices.items():
            missing += [] if name in described else [" ".join(prefix + (name,))]
            missing += commands_without_help(child, prefix + (name,))
    return missing


PATHS = command_paths(build_parser())
TOP_LEVEL = [p for p in PATHS if len(p) == 1]
NESTED = [p for p in PATHS if len(p) > 1]


def test_the_walk_finds_the_known_commands():
    assert KNOWN_TOP_LEVEL <= {p[0] for p in TOP_LEVEL}, TOP_LEVEL
    assert {("data", "import"), ("data", "status")} <= set(NESTED), NESTED


def test_every_command_has_a_description():
    assert commands_without_help(build_parser()) == []


@pytest.mark.parametrize("path", TOP_LEVEL, ids=" ".join)
def test_top_level_help_in_a_subprocess(path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    out = subprocess.run([sys.executable, "-m", "rsrt_utils", *path, "--help"], capture_output=True, text=True, cwd=PROJECT,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(f"usage: rsrt {path[0]}"), out.stdout[:300]
    assert "-h, --help" in out.stdout


@pytest.mark.parametrize("path", NESTED, ids=" ".join)
def test_nested_help_in_process(path, capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([*path, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: rsrt " + " ".join(path)), text[:300]
    assert "-h, --help" in text


def test_an_unknown_command_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["no-such-command"])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'no-such-command'" in error and "data" in error
