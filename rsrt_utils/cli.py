"""The `rsrt` command line (also `python -m rsrt_utils`): data, evaluation, captioning and study runs."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rsrt", description=__doc__)
    parser.add_argument("--version", action="version", version=f"rsrt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    from .commands.caption import add_caption_subcommands
    from .commands.data import add_data_subcommands
    from .commands.search import add_search_subcommands
    from .commands.study import add_study_subcommands

    add_data_subcommands(sub)
    add_caption_subcommands(sub)  # an import error here must surface, never make commands vanish
    add_study_subcommands(sub)
    from .commands.serve import add_serve_subcommand

    add_serve_subcommand(sub)
    add_search_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    late = getattr(args, "late_positional", None)  # `rsrt search NAME --k 5 "query"`: the query after the options
    if late and getattr(args, late) is None and len(extra) == 1 and not extra[0].startswith("-"):
        setattr(args, late, extra.pop())
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler = getattr(args, "func", None)
    if handler is None:
        parser.error(f"command {args.command!r} has no handler")
    try:
        return int(handler(args) or 0)
    except ModuleNotFoundError as exc:
        extra = extra_providing(exc.name or "")
        if extra is None:
            raise
        print(f"rsrt {args.command}: error: this command needs the {extra!r} extra ({exc.name} is not installed): "
              f"pip install 'rsrt[{extra}]'", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as exc:
        from .logsafe import scrub

        print(f"rsrt {args.command}: error: {scrub(str(exc))}", file=sys.stderr)  # a URL in a message is redacted
        return 2


def extra_providing(module: str) -> str | None:
    """The extra (pyproject's optional-dependencies, read from the installed metadata) whose packages provide the
    top-level module `module`, or None when no extra does."""
    import re
    from importlib import metadata

    def canonical(name: str) -> str:  # PEP 503: jupyter_client and jupyter-client are one distribution
        return re.sub(r"[-_.]+", "-", name).lower()

    top = module.split(".")[0]
    distributions = {canonical(d) for d in metadata.packages_distributions().get(top, [top])}
    for requirement in metadata.requires("rsrt") or []:
        found = re.match(r"^([A-Za-z0-9_.-]+).*;\s*extra\s*==\s*['\"]([\w-]+)['\"]", requirement)
        if found and canonical(found.group(1)) in distributions and found.group(2) not in ("all", "test"):
            return found.group(2)
    return None


if __name__ == "__main__":
    sys.exit(main())
