"""`rsrt caption` and `rsrt caption-import`: argparse subcommands, added to the main CLI by `add_caption_subcommands`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .. import logsafe
from ..captioning.backend import MODES
from ..captioning.registry import (
    BACKENDS_INFO,
    COMMAND_OPTIONS,
    DEFAULT_OPENAI_MODEL,
    backend_info,
)
from ..data.registry import DATASETS, SPLITS
from ..suggest import did_you_mean
from .where import add_where_options, positive_int, where_of


def add_caption_subcommands(subparsers) -> None:
    """Add `caption` and `caption-import` to an argparse subparsers object (handler in `func`)."""
    caption = subparsers.add_parser("caption", help="describe gallery images with a VLM into an RSRT corpus (resumable)")
    caption.add_argument("--dataset", required=True, choices=DATASETS)
    caption.add_argument("--split", default="test", choices=SPLITS)
    add_backend_options(caption, "openai-chat", [n for n, info in BACKENDS_INFO.items() if info.captions_images])
    caption.add_argument("--mode", default="variants", choices=MODES)
    caption.add_argument("--out", type=Path, default=None,
                         help="corpus JSONL (default: the corpus's one location under the cache dir, which `rsrt run` "
                              "with the same backend settings reads: nothing is captioned twice)")
    caption.add_argument("--data-root", type=Path, default=None, help="data store or mirror holding the dataset")
    caption.add_argument("--images-dir", type=Path, default=None,
                         help="folder with the split's image files (RSITMD has no pixels in the store: give its images)")
    caption.add_argument("--limit", type=positive_int, default=None, help="caption only the first N images (N >= 1)")
    caption.add_argument("--dry-run", action="store_true", help="show what would run and its estimated cost, then stop")
    add_where_options(caption)
    caption.set_defaults(func=run_caption_command)

    importer = subparsers.add_parser("caption-import", help="import an existing corpus JSONL into a corpus store")
    importer.add_argument("--format", default="rsrt", choices=("rsrt", "plain"))
    importer.add_argument("--in", dest="in_path", type=Path, required=True)
    importer.add_argument("--out", type=Path, required=True)
    importer.add_argument("--model", default=None, help="model that wrote the corpus, if its lines do not say")
    importer.set_defaults(func=run_caption_import_command)


def add_backend_options(parser, default: str, choices, alias: str | None = None) -> None:
    """The backend options, the same on every command: --backend and the options of the backends it may choose."""
    names = ["--backend"] + ([alias] if alias else [])
    parser.add_argument(*names, dest="backend", default=default, metavar="BACKEND",
                        help="; ".join(f"{n}: {BACKENDS_INFO[n].summary}" for n in choices) + f" (default {default})")
    parser.set_defaults(backend_choices=tuple(choices))
    usable = {option for name in choices for option in BACKENDS_INFO[name].command_options}
    if "model" in usable:
        parser.add_argument("--model", default=None, help=f"model id (openai-*: default {DEFAULT_OPENAI_MODEL}; "
                            "transformers: required, a local image-text-to-text model id or path)")
    if "base_url" in usable:
        parser.add_argument("--base-url", action="append", default=None, type=base_urls, metavar="URL",
                            help="an OpenAI-compatible server, e.g. http://localhost:8000/v1; give it several times "
                                 "(or @FILE, one URL a line) for a fleet: requests are spread over the servers, "
                                 "--concurrency in flight on each")
    if "concurrency" in usable:
        parser.add_argument("--concurrency", type=positive_int, default=8, help="requests in flight (paid backends)")
    if "corpus" in usable:
        parser.add_argument("--corpus", type=Path, default=None, help="for --backend import: a JSONL with one line per "
                            'image, {"image_id": <path relative to DIR>, "variants": [five {one_sentence, feature, caption}]}')
        parser.add_argument("--corpus-format", default="plain", choices=("plain", "rsrt"), help="format of --corpus")


def given_base_urls(args) -> list[str]:
    """Every URL of --base-url, given once or several times (each a URL or an @FILE of URLs)."""
    return [url for group in (getattr(args, "base_url", None) or []) for url in group]


def base_urls(text: str) -> list[str]:
    """argparse type of --base-url: a URL, or @FILE naming one URL a line (blank lines and # comments skipped)."""
    from ..captioning.api import check_base_url

    if not text.startswith("@"):
        urls = [text]
    else:
        path = Path(text[1:]).expanduser()
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"endpoint file {str(path)!r} does not exist; give one URL a line")
        urls = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
        if not urls:
            raise argparse.ArgumentTypeError(f"endpoint file {str(path)!r} lists no URL")
    for number, url in enumerate(urls, start=1):
        try:
            check_base_url(url)
        except ValueError as error:
            where = f"{text[1:]} line {number}: " if text.startswith("@") else ""
            raise argparse.ArgumentTypeError(f"{where}{error}") from None
    return urls


def backend_config(args) -> dict:
    """The backend config of the command line (plain values); an option given to a backend it does not apply to is an
    error naming the backends it is for."""
    choices = getattr(args, "backend_choices", tuple(BACKENDS_INFO))
    if args.backend not in choices:
        raise ValueError(f"--backend {args.backend!r} is not one this command can use{did_you_mean(args.backend, choices)} "
                         f"(choose one of {', '.join(choices)})")
    info = backend_info(args.backend)
    config = {"backend": info.name}
    for option, key in COMMAND_OPTIONS.items():
        value = getattr(args, option, None)
        if option == "concurrency" or (option == "corpus_format" and getattr(args, "corpus", None) is None):
            if option in info.command_options and value is not None:
                config[key] = value
            continue
        if value is None:
            continue
        if option == "base_url":
            value = given_base_urls(args)
            value = value[0] if len(value) == 1 else value
        if option not in info.command_options:
            users = [name for name, entry in BACKENDS_INFO.items() if option in entry.command_options]
            raise ValueError(f"--{option.replace('_', '-')} is for --backend {' or '.join(users)}, not {info.name!r}")
        config[key] = value
    return config


def _requests(args):
    """The split's images that have pixels (first --limit), saying how many have none; none at all is an error."""
    from ..captioning.images import build_requests
    from ..data import load_dataset

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
    from ..captioning.corpus import default_corpus_path
    from ..captioning.cost import estimate_for
    from ..captioning.runner import pending
    from ..scaleout.engine import open_engine

    config = backend_config(args)
    context = {"dataset": args.dataset, "data_root": args.data_root}
    engine = open_engine(where_of(args), config)
    backend = engine.backend(config, context)
    out = args.out or default_corpus_path(args.dataset, args.split, backend)
    requests = _requests(args)
    missing = pending(requests, backend, args.mode, out)[0]
    print(f"{len(requests)} image(s); {len(requests) - len(missing)} already in {out}; {len(missing)} to caption")
    estimate = estimate_for(args.backend, len(missing), config.get("model"), config.get("base_url"))
    if estimate:
        print("estimate: " + estimate["text"])
    if args.dry_run:
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logsafe.install()
    summary = engine.caption(requests, backend, config, out, mode=args.mode, concurrency=args.concurrency,
                             context=context)
    print(summary.text())
    return 0 if summary.failed == 0 else 1


def run_caption_import_command(args) -> int:
    """Import an existing corpus; prints the report with bad line numbers."""
    from ..captioning.importer import import_corpus

    report = import_corpus(args.in_path, args.out, format=args.format, model=args.model)
    print(report.text())
    return 0 if not report.bad_lines else 1


def main(argv=None) -> int:
    """Stand-alone entry (python -m rsrt_utils.commands.caption ...), the same subcommands as `rsrt`."""
    parser = argparse.ArgumentParser(prog="rsrt-caption")
    add_caption_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
