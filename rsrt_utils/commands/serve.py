"""`rsrt serve`: start the local web app (search collections, score a study run's caption audit)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..server_urls import DEFAULT_HOST

DEFAULT_PORT = 8000


def add_serve_subcommand(sub: argparse._SubParsersAction) -> None:
    """Register `rsrt serve` on the top-level subparsers."""
    serve = sub.add_parser("serve", help="a local web page to search collections and to score caption audits")
    serve.add_argument("--host", default=DEFAULT_HOST,
                       help=f"address to bind (default {DEFAULT_HOST}: this machine only; 0.0.0.0 opens it to the network)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--outputs", type=Path, default=None, help="folder of study runs (default outputs/ or RSRT_OUTPUTS_DIR)")
    serve.add_argument("--index-root", type=Path, default=None,
                       help="folder of collections (default <cache>/indexes or RSRT_INDEX_DIR)")
    from .search import add_endpoint_option

    add_endpoint_option(serve)
    serve.add_argument("--basemap", default=None, metavar="URL", help="a tile URL template for the map of collections "
                       "built from georeferenced scenes, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png (needs the "
                       "network; without it the map shows the chips' own quicklooks, offline)")
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..app.safety import install_log_scrubbing
    from ..app.server import create_app
    from ..image_files import max_image_pixels
    from ..search.collection import single_threaded_queries
    from ..server_urls import LOOPBACK_HOSTS
    from .caption import given_base_urls

    single_threaded_queries()
    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port} is not a port; use 1-65535 (e.g. 8000)")
    max_image_pixels()  # every setting is checked before the server starts (a bad RSRT_MAX_IMAGE_PIXELS is named)
    given = given_base_urls(args)
    app = create_app(args.outputs, args.index_root, host=args.host, base_urls=given or None, basemap=args.basemap)
    if args.host not in LOOPBACK_HOSTS:
        print(f"rsrt serve: warning: bound to {args.host}: anyone who can reach this machine can read the collections "
              "and write audit scores")
    print(f"rsrt serve: http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/ "
          f"(study runs: {app.state.outputs_root}; collections: {app.state.collections.root})", flush=True)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info", server_header=False)
    server = uvicorn.Server(config)
    install_log_scrubbing()
    server.run()
    return 0
