"""The collections the app can search: opened once, re-opened when their folder changes, unknown names refused."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Mapping


class UnknownCollection(LookupError):
    """No collection of that name under the index root."""


def default_index_root() -> Path:
    """Where collections live when --index-root is not given (rsrt_utils.paths.indexes_dir())."""
    from .. import paths

    return paths.indexes_dir()


class CollectionShelf:
    """Opened rsrt_utils.search.collection.Collection objects by name (the search module is imported on first use)."""

    def __init__(self, root: Path | None = None, captioners: Mapping[str, object] | None = None,
                 base_urls: list[str] | None = None):
        self._root = Path(root).resolve() if root else None
        self._captioners = dict(captioners or {})  # backends for collections built with a bank given in code
        self._base_urls = base_urls  # captioners' server URLs with credentials (`rsrt serve --base-url`)
        self._lock = threading.Lock()
        self._open: dict[str, tuple[int, object]] = {}

    @property
    def root(self) -> Path:
        return self._root or default_index_root()

    def names(self) -> list[str]:
        """Names of the collections under the root (ImportError while the search module is not installed)."""
        from ..search.layout import list_collections

        return list_collections(self._root)

    def _stamp(self, name: str) -> int:
        folder = self.root / name
        return folder.stat().st_mtime_ns if folder.exists() else 0

    def get(self, name: str):
        """The opened collection; UnknownCollection naming the known ones when `name` is not one of them."""
        from ..search.collection import Collection

        known = self.names()
        if name not in known:
            listed = ", ".join(known) if known else "none yet"
            raise UnknownCollection(f"no collection {name!r} under {self.root}; known collections: {listed} "
                                    "(build one with rsrt_utils.search.build.build_collection)")
        stamp = self._stamp(name)
        with self._lock:
            cached = self._open.get(name)
            if cached is None or cached[0] != stamp:
                cached = (stamp, Collection.open(name, self._root, backend=self._captioners.get(name),
                                                        base_urls=self._base_urls))
                self._open[name] = cached
            return cached[1]
