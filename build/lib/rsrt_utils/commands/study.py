"""`rsrt run`, `rsrt sweep`, `rsrt report`: the study's command-line entry points."""

from __future__ import annotations

import argparse

from .where import add_where_options, where_of


def _parse_override(text: str) -> tuple[str, object]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set {text!r}: use dotted.key=value, e.g. retrieval.pooling=mean")
    return key, yaml.safe_load(value)


def _run(args: argparse.Namespace) -> int:
    from ..study.notebook_runner import run_study
    from ..study.run_folder import RunFolder

    run_dir = run_study(args.params, dict(args.set or []), args.notebooks, args.run_dir, progress=not args.quiet,
                        where=where_of(args))
    if RunFolder(run_dir).metrics.is_file():
        m = RunFolder(run_dir).read_metrics()
        print(f"{m.run_name}: mR {m.mR} (95% CI {list(m.ci95_mR)}) t2i {m.t2i} i2t {m.i2t} [{m.coverage}]")
    print(f"outputs in {run_dir}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from ..study.notebook_runner import run_sweep

    results = run_sweep(args.sweep, progress=not args.quiet)
    for item in results:
        print(f"{item['status']:>22}  {item['run']}")
    return 1 if any(r["status"].startswith("failed") for r in results) else 0


def _report(args: argparse.Namespace) -> int:
    from ..study.report import build_report

    report = build_report(args.outputs)
    print(report["table"].drop(columns=["path"]).to_string(index=False))
    print(f"wrote {report['summary_csv']} and {report['figure']}")
    return 0


def _book(args: argparse.Namespace) -> int:
    from ..study.book import build_book

    summary = build_book(args.outputs, args.out, quiet=not args.verbose)
    print(summary.text())
    if args.open:
        print(summary.index)
    return 0


def add_study_subcommands(sub: argparse._SubParsersAction) -> None:
    from pathlib import Path

    run = sub.add_parser("run", help="execute the numbered notebooks with papermill into outputs/<run_name>/")
    run.add_argument("params", help="a params YAML file, e.g. params/default.yaml")
    run.add_argument("--set", action="append", type=_parse_override, metavar="KEY=VALUE", help="override a parameter (repeatable)")
    run.add_argument("--notebooks", nargs="+", default=None, help="notebook prefixes to run, e.g. 00 01 04 (default: all)")
    run.add_argument("--run-dir", type=Path, default=None, help="output folder (default outputs/<run_name>)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    add_where_options(run)
    run.set_defaults(func=_run)
    sweep = sub.add_parser("sweep", help="run a grid of parameter values, skipping runs already complete")
    sweep.add_argument("sweep", help="a sweep YAML (base: params file; grid: dotted key -> values)")
    sweep.add_argument("--quiet", action="store_true")
    sweep.set_defaults(func=_sweep)
    report = sub.add_parser("report", help="aggregate every outputs/*/metrics.json into one CSV and one comparison figure")
    report.add_argument("--outputs", type=Path, default=None, help="outputs folder (default outputs/)")
    report.set_defaults(func=_report)
    book = sub.add_parser("book", help="build the study as a static website from outputs/ (never re-runs a notebook)")
    book.add_argument("--outputs", type=Path, default=None, help="outputs folder (default outputs/)")
    book.add_argument("--out", type=Path, default=None, help="where the site goes (default outputs/book): a new or empty folder, or a book rsrt made "
                      "(any other folder is refused, never emptied)")
    book.add_argument("--open", action="store_true", help="print the path of the front page to open in a browser")
    book.add_argument("--verbose", action="store_true", help="show Sphinx's messages")
    book.set_defaults(func=_book)
