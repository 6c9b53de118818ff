"""`rsrt index build|list` and `rsrt search`: build a searchable collection of your own imagery and query it."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

from ..captioning.registry import BACKENDS_INFO
from ..search.index import EXACT_MAX_VECTORS, HNSW_EF_SEARCH
from .caption import add_backend_options, backend_config, base_urls, given_base_urls
from .where import add_where_options, positive_int, where_of

SHOWN_DESCRIPTION = 90  # characters of the first description in the human output


def add_search_subcommands(subparsers) -> None:
    """Add `index` (build, list) and `search` to an argparse subparsers object (handler in `func`)."""
    index = subparsers.add_parser("index", help="build and list searchable collections of your own images")
    index_sub = index.add_subparsers(dest="index_command", required=True)
    _add_build(index_sub)
    listing = index_sub.add_parser("list", help="the collections with their counts")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(func=run_index_list)

    search = subparsers.add_parser("search", help="search a collection by text, or by an image (described first)")
    search.add_argument("name", help="the collection (see `rsrt index list`)")
    search.add_argument("query", nargs="?", default=None, help='a text query, e.g. "a bridge over a river"')
    search.add_argument("--image", type=Path, default=None, help="a query image instead of text (described by the "
                        "collection's captioner, then matched as text)")
    search.add_argument("--k", type=positive_int, default=10, help="number of results (>= 1)")
    search.add_argument("--bbox", default=None, metavar="W,S,E,N", help="only chips whose footprint meets this lon/lat "
                        "box (degrees; a collection built from georeferenced scenes with --chip)")
    search.add_argument("--from", dest="date_from", default=None, metavar="DATE", help="only chips acquired on or after "
                        "DATE (YYYY-MM-DD or ISO 8601)")
    search.add_argument("--to", dest="date_to", default=None, metavar="DATE", help="only chips acquired on or before DATE")
    add_endpoint_option(search)
    search.add_argument("--json", action="store_true", help="print the hits as a JSON list")
    search.add_argument("--format", choices=("text", "json", "geojson"), default=None, help="output: text (default), "
                        "json, or geojson (a FeatureCollection of the hits' footprints that QGIS opens)")
    search.set_defaults(func=run_search, late_positional="query")


def add_endpoint_option(parser) -> None:
    """--base-url for searching by image: the captioner's server URL(s) whole, when the manifest masks credentials."""
    from ..search.layout import BASE_URL_VARIABLE

    parser.add_argument("--base-url", action="append", default=None, type=base_urls, metavar="URL",
                        help="with --image: the captioner's server URL with its credentials (e.g. ?api-key=...), when the "
                             f"collection was built through one; repeat for a fleet, or set {BASE_URL_VARIABLE}")


def _add_build(index_sub) -> None:
    build = index_sub.add_parser("build", help="describe, embed and index every image under DIR (incremental, resumable)")
    build.add_argument("images_dir", type=Path, metavar="DIR", help="folder of images (jpg/jpeg, png, tif/tiff; recursive); "
                       "with --chip, a folder of scenes (GeoTIFF, COG, JPEG 2000) or a STAC catalogue / ItemCollection file")
    build.add_argument("--name", required=True, help="collection name: letters, digits, '.', '_', '-'")
    add_backend_options(build, "neighbour", [n for n, info in BACKENDS_INFO.items() if info.in_collections],
                        alias="--captioner")
    build.add_argument("--encoder", default=None, help="text encoder spec (default all-MiniLM-L6-v2)")
    build.add_argument("--limit", type=positive_int, default=None, help="only the first N images (sorted by path)")
    build.add_argument("--ef-search", type=positive_int, default=None, help="HNSW search breadth of a large collection "
                       f"(from {EXACT_MAX_VECTORS:,} vectors on; default {HNSW_EF_SEARCH}, measured on real descriptions: "
                       "higher recalls more of the exact top 10, slower)")
    add_where_options(build)
    geo = build.add_argument_group("remote-sensing scenes (the geo extra: pip install 'rsrt[geo]')")
    geo.add_argument("--chip", default=None, metavar="SIZE", help="cut each scene into chips of SIZE pixels (256) or "
                     "metres on the ground (960m), read window by window; each chip is an item with its footprint and time")
    geo.add_argument("--overlap", type=float, default=0.0, help="chip overlap as a fraction of the side (default 0)")
    geo.add_argument("--bands", default=None, metavar="R,G,B", help="the bands the captioner sees, by name or number "
                     "(e.g. B4,B3,B2 for Sentinel-2); default: red, green, blue by colour interpretation")
    geo.add_argument("--max-nodata", type=float, default=0.5, help="leave out chips with a larger share of nodata (0.5)")
    geo.add_argument("--stac-asset", default=None, metavar="KEY", help="with a STAC file: the asset key to read "
                     "(default: the asset with role 'data', else visual / image / data)")
    build.add_argument("--rebuild", action="store_true", help="replace the collection (another folder, captioner or "
                       "encoder); captions already in its corpus are reused where they still apply")
    build.add_argument("--dry-run", action="store_true", help="show what would be captioned (and its cost), then stop")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=run_index_build)


def run_index_build(args) -> int:
    """Build or update a collection; exit code 1 if some images could not be described."""
    from functools import partial

    from .. import logsafe
    from ..scaleout.engine import open_engine
    from ..search.build import build_collection

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logsafe.install()
    if args.chip is not None:
        args.images_dir = _chip_scenes(args)
    summary = build_collection(args.images_dir, args.name, backend_config(args), args.encoder,
                               progress=not args.quiet, concurrency=args.concurrency, limit=args.limit,
                               rebuild=args.rebuild, dry_run=args.dry_run, ef_search=args.ef_search,
                               engine=partial(open_engine, where_of(args)))
    print(summary.text())
    return 1 if summary.failed else 0


def _chip_scenes(args) -> Path:
    """Cut the scenes of DIR (a folder or a STAC file) into the collection's chips/ folder; the folder to index."""
    from ..geo.archive import chip_scenes, scenes_in_folder
    from ..geo.raster import ChipSpec
    from ..geo.stac import scenes_from_stac
    from ..paths import indexes_dir
    from ..search.layout import check_name

    bands = tuple(int(b) if b.strip().isdigit() else b.strip() for b in args.bands.split(",")) if args.bands else ()
    spec = ChipSpec.parse_size(args.chip, overlap=args.overlap, bands=bands, max_nodata=args.max_nodata)
    source = Path(args.images_dir).expanduser()
    scenes = scenes_from_stac(source, key=args.stac_asset) if source.is_file() else scenes_in_folder(source)
    if not scenes:
        raise ValueError(f"no scene (GeoTIFF, COG, JPEG 2000) under {str(source)!r}; give the folder of your scenes or a "
                         f"STAC file")
    chips = indexes_dir() / check_name(args.name) / "chips"
    summary = chip_scenes(scenes, chips, spec, progress=not args.quiet)
    print(summary.text())
    if not summary.chips and summary.failed:
        scene, reason = next(iter(summary.failed.items()))
        raise ValueError(f"no chip could be cut: scene {scene!r}: {reason}")
    return chips


def run_index_list(args) -> int:
    """Print every collection with its image count, captioner and encoder."""
    from ..paths import indexes_dir
    from ..search.layout import list_collections, read_manifest

    rows = []
    for name in list_collections():
        manifest = read_manifest(indexes_dir() / name)
        rows.append({"name": name, "images": manifest["counts"]["indexed"], "files": manifest["counts"]["files"],
                     "captioner": manifest["captioner"]["label"], "encoder": manifest["encoder"]["name"],
                     "index": manifest["index"]["kind"], "images_dir": manifest["images_dir"], "updated": manifest["updated"]})
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no collection in {indexes_dir()}; build one with `rsrt index build DIR --name NAME`")
    for row in [] if args.json else rows:
        print(f"{row['name']}: {row['images']} image(s) from {row['images_dir']}; {row['captioner']}; {row['encoder']}; "
              f"{row['index']} index; updated {row['updated']}")
    return 0


def run_search(args) -> int:
    """Search by text or by image; human lines (rank, score, path, first description) or --json."""
    from ..search.collection import Collection, single_threaded_queries

    single_threaded_queries()
    if (args.query is None) == (args.image is None):
        raise ValueError('give either a text query or --image FILE (not both), e.g. rsrt search NAME "a bridge over a river"')

    from ..geo.places import PlaceTimeFilter, hits_geojson

    where = PlaceTimeFilter.parse(args.bbox, args.date_from, args.date_to)  # checked before the collection is opened
    output = args.format or ("json" if args.json else "text")
    given = given_base_urls(args)
    collection = Collection.open(args.name, base_urls=given or None)
    hits = collection.search_image(args.image, args.k, where) if args.image else \
        collection.search_text(args.query, args.k, where)
    if output != "text":
        rows = [_hit_dict(collection, hit) for hit in hits]
        print(json.dumps(hits_geojson(rows) if output == "geojson" else rows, indent=2))
        return 0
    print(f"{collection.name}: {collection.n_images} image(s); captioner {collection.captioner}; encoder {collection.encoder}")
    for hit in hits:
        first = textwrap.shorten(hit.descriptions[0], SHOWN_DESCRIPTION, placeholder=" ...") if hit.descriptions else ""
        print(f"{hit.rank:>3}  {hit.score:.4f}  {collection.item(hit.image_id).path}  {first}")
    return 0


def _hit_dict(collection, hit) -> dict:
    row = {"rank": hit.rank, "image_id": hit.image_id, "path": str(collection.item(hit.image_id).path),
           "score": round(hit.score, 6), "descriptions": hit.descriptions}
    return {**row, "place": hit.place} if hit.place is not None else row
