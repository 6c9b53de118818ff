"""Arguments shared by the neighbour-captioner benchmark and tuning scripts (mirror, cache, threads)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsrt_utils.paths import cache_dir, shared_mirror_dir


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mirror", type=Path, default=shared_mirror_dir())
    parser.add_argument("--cache", type=Path, default=cache_dir() / "bench")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (text/image encoders, if anything has to be computed)")


def apply_common_arguments(args: argparse.Namespace) -> None:
    """Set torch threads and stop with the fix when the data mirror is missing."""
    if args.threads is not None:
        import torch
        torch.set_num_threads(args.threads)
    if args.mirror is None or not Path(args.mirror).is_dir():
        raise SystemExit("the data mirror (../shared/data) was not found; pass --mirror DIR or set RSRT_MIRROR_DIR")
