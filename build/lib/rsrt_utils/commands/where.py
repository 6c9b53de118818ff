"""`--ray/--actors`, declared once for every command that captions or embeds (`scaleout.engine.open_engine` opens it)."""

from __future__ import annotations

import argparse

from ..engine import DEFAULT_ACTORS, Where


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 or a negative number is an error, never 'all')."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: give a whole number >= 1 (or leave the option out for its default)")
    return value


def add_where_options(parser: argparse.ArgumentParser) -> None:
    """--ray [ADDRESS] and --actors: run on a Ray cluster (without them everything runs here)."""
    parser.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                        help="caption and embed on a Ray cluster: 'auto' (the default: RAY_ADDRESS or a cluster "
                             "running here), 'local' (start one on this machine) or HOST:PORT of the head node "
                             "(pip install 'rsrt[ray]')")
    parser.add_argument("--actors", type=positive_int, default=DEFAULT_ACTORS,
                        help=f"with --ray: actors in each pool (default {DEFAULT_ACTORS})")


def where_of(args: argparse.Namespace) -> Where:
    """The choice the options make, checked (a bad address is named before any work)."""
    if args.ray is None:
        return Where(None, args.actors)
    from ..scaleout.cluster import check_address

    return Where(check_address(args.ray), args.actors)

