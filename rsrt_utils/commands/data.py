"""`rsrt data` (import, download, status, validate) and `rsrt oracle`: the benchmark store and the human-caption ceiling."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data.registry import DATASETS, SPLITS
from ..data.sources import STORE_DATASETS
from ..encoders.base import DEFAULT_TEXT_ENCODER
from ..metrics import DEFAULT_TIES, TIE_POLICIES
from ..retrieval import POOLINGS


def add_data_subcommands(sub: argparse._SubParsersAction) -> None:
    """Add `data` and `oracle` to an argparse subparsers object (handler in `func`)."""
    _add_data_commands(sub)
    _add_oracle_command(sub)


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="import, download, inspect and validate the benchmark data store")
    data.set_defaults(func=_run_data)
    data_sub = data.add_subparsers(dest="data_command", required=True)
    imp = data_sub.add_parser("import", help="copy datasets from a local folder or mirror (e.g. ../shared/data) into data/")
    imp.add_argument("--from", dest="source", required=True, help="folder with the mirror's layout")
    dl = data_sub.add_parser("download", help="fetch datasets from their public sources (pinned commits, sha256-checked)")
    dl.add_argument("--base-url", default=None, help="serve the same paths from a mirror (default: GitHub raw)")
    dl.add_argument("--workers", type=int, default=8)
    for cmd in (imp, dl):
        cmd.add_argument("--datasets", nargs="+", default=None, choices=STORE_DATASETS, metavar="NAME",
                         help=f"store datasets: {' '.join(STORE_DATASETS)} (default: all)")
        cmd.add_argument("--overwrite", action="store_true", help="replace a complete dataset already in the store")
        cmd.add_argument("--store", type=Path, default=None, help="store folder (default: data/ or RSRT_DATA_DIR)")
    status = data_sub.add_parser("status", help="which datasets are complete in the store")
    status.add_argument("--store", type=Path, default=None)
    val = data_sub.add_parser("validate", help="counts against the standard splits, blanks, duplicates, pixel coverage")
    _add_dataset_args(val)


def _add_dataset_args(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--dataset", default="rsitmd", choices=DATASETS)
    cmd.add_argument("--split", default="test", choices=SPLITS)
    cmd.add_argument("--data-root", type=Path, default=None, help="store or mirror folder (default: the project store)")
    cmd.add_argument("--source", default=None, help="annotation source inside the root: amfmn (default) or json (RSITMD)")
    cmd.add_argument("--annotations", type=Path, default=None, help="an annotation file/folder in any supported format")


def _add_oracle_command(sub: argparse._SubParsersAction) -> None:
    oracle = sub.add_parser("oracle", help="evaluate the human-caption oracle (leave-one-caption-out ceiling)")
    oracle.set_defaults(func=_run_oracle)
    _add_dataset_args(oracle)
    oracle.add_argument("--encoder", default=DEFAULT_TEXT_ENCODER, help="text encoder spec (see rsrt_utils.encoders)")
    oracle.add_argument("--pooling", default="max", choices=POOLINGS)
    oracle.add_argument("--ties", default=DEFAULT_TIES, choices=TIE_POLICIES,
                        help="how exact score ties are ordered (default: expected value under a random order)")
    oracle.add_argument("--n-boot", type=int, default=1000)
    oracle.add_argument("--out", type=Path, default=None, help="metrics.json path (default outputs/oracle-<dataset>-<split>/)")


def _run_data(args: argparse.Namespace) -> int:
    from ..data import load_dataset, validation_report
    from ..data.store import download, import_from_folder, store_status

    if args.data_command == "import":
        done = import_from_folder(Path(args.source), args.datasets, args.store, overwrite=args.overwrite)
    elif args.data_command == "download":
        done = download(args.datasets, args.store, base_url=args.base_url, overwrite=args.overwrite, workers=args.workers)
    elif args.data_command == "status":
        print(json.dumps(store_status(args.store), indent=2))
        return 0
    else:
        dataset = load_dataset(args.dataset, args.split, root=args.data_root, source=args.source, annotations=args.annotations)
        print(json.dumps(validation_report(dataset), indent=2))
        return 0
    for name, path in done.items():
        print(f"{name}: complete in {path}")
    return 0


def _run_oracle(args: argparse.Namespace) -> int:
    from ..data import load_dataset
    from ..encoders import CachedEncoder, make_text_encoder
    from ..evaluation import ORACLE_CAPTIONER, human_caption_oracle, metrics_record
    from ..metrics_record import write_record
    from ..paths import outputs_dir

    dataset = load_dataset(args.dataset, args.split, root=args.data_root, source=args.source, annotations=args.annotations)
    encoder = CachedEncoder(make_text_encoder(args.encoder))
    result = human_caption_oracle(dataset, encoder, pooling=args.pooling, ties=args.ties, n_boot=args.n_boot)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    record = metrics_record(result, dataset, ORACLE_CAPTIONER, encoder.name, args.pooling, params)
    from ..study.run_folder import RunFolder

    folder = RunFolder(Path(args.out).parent if args.out else outputs_dir() / f"oracle-{args.dataset}-{args.split}")
    out = args.out or folder.metrics
    write_record(record, out)
    folder.mark_complete({"command": "rsrt oracle", "params": params})
    print(f"{dataset.name} {dataset.split} oracle with {encoder.name}: mR {record['mR']} (95% CI {record['ci95']['mR']}); "
          f"t2i {record['t2i']} i2t {record['i2t']} -> {out}")
    return 0


