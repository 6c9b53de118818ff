"""`rsrt caption` and `rsrt caption-import`: argparse subcommands, added to the main CLI by `add_caption_subcommands`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .. import logsafe
from ..data.registry import DATASETS, SPLITS
from .backend import MODES
from .registry import CAPTIONING_BACKENDS, DEFAULT_OPENAI_MODEL, EXPECTED_TOKENS, PAID_BACKENDS, default_prices
from .runner import estimate_cost


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 or a negative number is an error, never 'all')."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: give a whole number >= 1 (or leave the option out for its default)")
    return value


def add_caption_subcommands(subparsers) -> None:
    """Add `caption` and `caption-import` to an argparse subparsers object (handler in `func`)."""
    caption = subparsers.add_parser("caption", help="describe gallery images with a VLM into an RSRT corpus (resumable)")
    caption.add_argument("--dataset", required=True, choices=DATASETS)
    caption.add_argument("--split", default="test", choices=SPLITS)
    caption.add_argument("--backend", default="openai-chat", choices=CAPTIONING_BACKENDS)
    caption.add_argument("--model", default=None, help=f"model id (default: the backend's; {DEFAULT_OPENAI_MODEL} for OpenAI)")
    caption.add_argument("--base-url", default=None, help="an OpenAI-compatible server, e.g. http://localhost:8000/v1")
    caption.add_argument("--mode", default="variants", choices=MODES)
    caption.add_argument("--concurrency", type=positive_int, default=8)
    caption.add_argument("--out", type=Path, default=None,
                         help="corpus JSONL (default: the corpus's one location under the cache dir, which `rsrt run` "
                              "with the same backend settings reads: nothing is captioned twice)")
    caption.add_argument("--data-root", type=Path, default=None, help="data store or mirror holding the dataset")
    caption.add_argument("--images-dir", type=Path, default=None,
                         help="folder with the split's image files (RSITMD has no pixels in the store: give its images)")
    caption.add_argument("--limit", type=positive_int, default=None, help="caption only the first N images (N >= 1)")
    caption.add_argument("--dry-run", action="store_true", help="show what would run and its estimated cost, then stop")
    caption.set_defaults(func=run_caption_command)

    importer = subparsers.add_parser("caption-import", help="import an existing corpus JSONL into a corpus store")
    importer.add_argument("--format", default="rsrt", choices=("rsrt", "plain"))
    importer.add_argument("--in", dest="in_path", type=Path, required=True)
    importer.add_argument("--out", type=Path, required=True)
    importer.add_argument("--model", default=None, help="model that wrote the corpus, if its lines do not say")
    importer.set_defaults(func=run_caption_import_command)


def _backend_config(args) -> dict:
    config = {"backend": args.backend}
    if args.model:
        config["model"] = args.model
    if args.base_url:
        config["base_url"] = args.base_url
    if args.backend in PAID_BACKENDS:
        config["concurrency"] = args.concurrency
    if args.backend == "neighbour":
        config["bank"] = _train_bank(args)
    return config


def _train_bank(args):
    """The neighbour captioner's bank: the TRAIN split (with pixels) of the same dataset, never the test split."""
    from ..data import load_dataset

    train = load_dataset(args.dataset, split="train", root=args.data_root).with_images()
    print(f"neighbour captioner bank: {train.coverage_note()} (uses in-domain train captions; not zero-shot)")
    return train


def _requests(args):
    """The split's images that have pixels (first --limit), saying how many have none; none at all is an error."""
    from ..data import load_dataset
    from .images import build_requests

    if args.images_dir is not None and not args.images_dir.is_dir():
        raise ValueError(f"--images-dir {args.images_dir}: no such folder")
    full = load_dataset(args.dataset, split=args.split, root=args.data_root, images_dir=args.images_dir)
    dataset = full.with_images()
    if dataset.n_images == 0:
        raise ValueError(f"{args.dataset} {args.split}: none of its {full.n_images} images has a pixel file here; "
                         f"pass --images-dir DIR with the image files (names as in the annotations)")
    without = full.n_images - dataset.n_images
    images = dataset.images[: args.limit] if args.limit else dataset.images
    print(f"{args.dataset} {args.split}: {dataset.n_images} of {full.n_images} images have pixels"
          + (f"; the {without} without pixels are not captioned" if without else "")
          + (f"; captioning the first {len(images)} (--limit)" if args.limit else ""))
    return build_requests(images)


def run_caption_command(args) -> int:
    """Caption a dataset split; prints the cost estimate first (and only that with --dry-run)."""
    from .api import make_caption_backend
    from .corpus import CorpusStore, default_corpus_path
    from .runner import caption_images, request_key

    backend = make_caption_backend(_backend_config(args))
    out = args.out or default_corpus_path(args.dataset, args.split, backend)
    requests = _requests(args)
    done = CorpusStore(out).done_keys() if out.exists() else set()
    missing = [r for r in requests if request_key(backend, r, args.mode) not in done]
    print(f"{len(requests)} image(s); {len(requests) - len(missing)} already in {out}; {len(missing)} to caption")
    if args.backend in PAID_BACKENDS and not args.base_url:
        print("estimate: " + estimate_cost(len(missing), default_prices(), EXPECTED_TOKENS,
                                           batch=args.backend == "openai-batch")["text"])
    if args.dry_run:
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logsafe.install()
    summary = caption_images(requests, backend, out, mode=args.mode, concurrency=args.concurrency)
    print(summary.text())
    return 0 if summary.failed == 0 else 1


def run_caption_import_command(args) -> int:
    """Import an existing corpus; prints the report with bad line numbers."""
    from .importer import import_corpus

    report = import_corpus(args.in_path, args.out, format=args.format, model=args.model)
    print(report.text())
    return 0 if not report.bad_lines else 1


def main(argv=None) -> int:
    """Stand-alone entry (python -m rsrt_utils.captioning.cli ...), the same subcommands as `rsrt`."""
    parser = argparse.ArgumentParser(prog="rsrt-caption")
    add_caption_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
