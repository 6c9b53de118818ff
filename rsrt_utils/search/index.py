"""A FAISS index of caption-variant vectors that ranks ITEMS (images) by the max cosine over their rows.

Every row is an L2-normalised float32 vector owned by one item (an image has several description variants);
an item's score for a query is the maximum inner product over its rows (the method's max pooling). Small
collections are searched exactly (`IndexFlatIP`); from `EXACT_MAX_VECTORS` rows on, an HNSW graph
(`IndexHNSWFlat`, inner product) answers in a few milliseconds. Both kinds share one interface and one folder format.
An index follows its collection without a rebuild: `add` appends rows of new items, `retire` marks items as gone
(their rows stay but are never returned; searches fetch more rows when retired ones crowd the top), and `compact`
rebuilds from the live rows once retired rows pass COMPACT_RETIRED_FRACTION.
Threads: builds and batched searches use at most the cores this process was given (RSRT_FAISS_THREADS overrides);
small query batches use one thread, which was faster for single queries on the shared 2-core machine.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from ..fileutil import replace_folder

# Chosen from benchmarks/results/index.json (benchmarks/bench_index.py, 2 shared cores): exact single queries took
# 3.8 ms at 5*10^4 rows and 15 ms at 10^5; at 10^6 rows HNSW M=32 / efConstruction=40 / efSearch=128 gave
# recall@10 0.990 at 0.89 ms median (efConstruction=80 built 2x slower for the same recall; M=16 reached 0.955).
# On REAL description vectors (benchmarks/bench_index_real.py, AID-150 neighbour collection, 5*10^4 rows) HNSW recalls
# less (0.829 at efSearch 128, 0.962 at 1024, RSITMD train captions as queries: near-duplicate descriptions; 1024 is
# the smallest tried that reaches 0.95, at 0.9 ms a query, benchmarks/results/index_real.json) and exact takes 2.9 ms,
# so collections stay exact up to 10^5 rows (about 7 ms a query) and only larger ones trade recall for speed.
EXACT_MAX_VECTORS = 100_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 1024  # the search breadth; `rsrt index build --ef-search` changes it per collection
SINGLE_THREAD_QUERIES = 16  # batches up to this size search on one thread: on 2 shared cores a 2-thread exact
# single query took ~20 ms however small the index, one thread 0.6 ms at 10^4 rows (benchmarks/results/index.json)
KINDS = ("exact", "hnsw")
FORMAT_VERSION = 2  # 2: retired items (retired.npy); version 1 folders (none retired) are still read
READABLE_VERSIONS = (1, 2)
# Compact once this share of the rows belongs to retired items. At 10^5 rows retired ones barely cost (median query
# 0.94 ms at 0 %, 1.24 ms at 25 %, recall 0.999; benchmarks/results/scaleout.json): a conservative bound on memory.
COMPACT_RETIRED_FRACTION = 0.25
_INDEX_FILE, _OWNERS_FILE, _META_FILE, _RETIRED_FILE = "index.faiss", "owners.npy", "meta.json", "retired.npy"
_REFERENCE_CHUNK_BYTES = 1 << 28  # exact_search holds at most ~256 MB of similarities at a time


class IndexLoadError(ValueError):
    """A saved index folder is missing, incomplete or damaged."""


def default_threads() -> int:
    """FAISS threads: RSRT_FAISS_THREADS if set, else the cores this process may run on (not the host's count)."""
    value = os.environ.get("RSRT_FAISS_THREADS")
    if value is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"RSRT_FAISS_THREADS={value!r} is not a whole number >= 1; set e.g. RSRT_FAISS_THREADS=2 or unset it")
    return int(value)


def set_threads(n: int | None = None) -> int:
    """Limit FAISS's OpenMP threads to n (default: `default_threads()`) for the calling thread; returns n.

    OpenMP keeps this setting per thread: builds and batched searches apply the default in whichever thread runs them.
    """
    n = default_threads() if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads={n!r} is not allowed: give a whole number >= 1")
    faiss.omp_set_num_threads(n)
    return n


@contextmanager
def _threads(n: int):
    """Run a block with n OpenMP threads in this thread, then restore the previous number."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _as_matrix(array, name: str, dim: int | None = None) -> np.ndarray:
    """A finite float32 (n, d) copy with unit rows; ValueError naming the problem otherwise."""
    matrix = np.array(array, dtype=np.float32, copy=True)
    if matrix.ndim == 1 and name == "queries":
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (rows, dim); got shape {matrix.shape}")
    if dim is not None and matrix.shape[1] != dim:
        raise ValueError(f"{name} have dimension {matrix.shape[1]} but the index holds {dim}-d vectors; "
                         f"embed them with the encoder the index was built with")
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad.size:
        raise ValueError(f"{name} row {bad[0]} contains NaN or infinity ({bad.size} such row(s)); fix or drop those rows")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ValueError(f"{name} row {zero[0]} is all zeros ({zero.size} such row(s)): it has no direction; drop it")
    matrix /= norms  # in place: no second copy of a large collection
    return matrix


def _as_owners(owners, n_rows: int) -> np.ndarray:
    """int64 item index per row, covering every item 0..n_items-1; ValueError naming the problem otherwise."""
    array = np.asarray(owners)
    if array.ndim != 1 or array.shape[0] != n_rows:
        raise ValueError(f"owners must be a 1-D array with one item index per vector ({n_rows}); got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"owners must hold integers (item indexes), got dtype {array.dtype}; pass e.g. np.int64 values")
    array = array.astype(np.int64)
    if array.min() < 0:
        raise ValueError(f"owners holds {array.min()}; item indexes start at 0")
    present = np.bincount(array)
    missing = np.flatnonzero(present == 0)
    if missing.size:
        raise ValueError(f"item {missing[0]} has no vector ({missing.size} of 0..{array.max()} have none); number the "
                         "items 0..n_items-1 without gaps and give every item at least one vector")
    return array


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k={k!r} is not allowed: give a whole number >= 1 (how many items to return)")
    return int(k)


def _make_faiss(kind: str, dim: int, params: dict) -> faiss.Index:
    """An empty FAISS index of the kind, for inner product on unit vectors."""
    if kind == "exact":
        return faiss.IndexFlatIP(dim)
    index = faiss.IndexHNSWFlat(dim, int(params["M"]), faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = int(params["efConstruction"])
    index.hnsw.efSearch = int(params["efSearch"])
    return index


def _search_params(kind: str, params: dict, fetch: int):
    """Per-call search parameters (thread-safe: the shared index is never changed by a search)."""
    if kind == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=max(int(params["efSearch"]), fetch))
    return None


def _pool_rows(scores: np.ndarray, owners: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Max-pool ranked rows (q, f) to items: (scores (q, k), items (q, k), distinct items found (q,))."""
    order = np.argsort(-scores, axis=1, kind="stable")
    scores, owners = np.take_along_axis(scores, order, 1), np.take_along_axis(owners, order, 1)
    by_owner = np.argsort(owners, axis=1, kind="stable")  # keeps score order within each owner
    grouped = np.take_along_axis(owners, by_owner, 1)
    first = np.ones(grouped.shape, dtype=bool)
    first[:, 1:] = grouped[:, 1:] != grouped[:, :-1]
    keep = np.zeros(grouped.shape, dtype=bool)
    np.put_along_axis(keep, by_owner, first & (grouped >= 0), 1)
    picked = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept positions first, still best first
    valid = np.take_along_axis(keep, picked, 1)
    out_scores = np.where(valid, np.take_along_axis(scores, picked, 1), -np.inf).astype(np.float32)
    out_items = np.where(valid, np.take_along_axis(owners, picked, 1), -1).astype(np.int64)
    if out_items.shape[1] < k:
        pad = k - out_items.shape[1]
        out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        out_items = np.pad(out_items, ((0, 0), (0, pad)), constant_values=-1)
    return out_scores, out_items, keep.sum(axis=1)


class VectorIndex:
    """Max-pooled item search over variant rows: `build`, `search`, `add`, `retire`, `compact`, `save`, `load`
    (kind "exact" or "hnsw")."""

    def __init__(self, index: faiss.Index, owners: np.ndarray, kind: str, params: dict, retired: np.ndarray | None = None):
        self._index, self._owners, self._params = index, owners, dict(params)
        self.kind = kind
        self.dim = int(index.d)
        self._retired = np.zeros(int(owners.max()) + 1, dtype=bool) if retired is None else retired.astype(bool)
        self._refresh()

    def _refresh(self) -> None:
        self.n_vectors = int(self._index.ntotal)
        self.n_items = int(self._owners.max()) + 1
        if len(self._retired) < self.n_items:
            self._retired = np.concatenate([self._retired, np.zeros(self.n_items - len(self._retired), dtype=bool)])
        self.max_rows_per_item = int(np.bincount(self._owners).max())
        self.n_retired_rows = int(self._retired[self._owners].sum())

    @property
    def n_live_items(self) -> int:
        return int(self.n_items - self._retired.sum())

    @property
    def retired_fraction(self) -> float:
        """The share of rows owned by retired items."""
        return self.n_retired_rows / max(self.n_vectors, 1)

    def is_retired(self, item: int) -> bool:
        return bool(self._retired[item])

    @property
    def params(self) -> dict:
        """The approximate index's settings (empty for exact search)."""
        return dict(self._params)

    @classmethod
    def build(cls, vectors: np.ndarray, owners: np.ndarray, kind: str = "auto", params: dict | None = None) -> "VectorIndex":
        """Index rows (n, d), normalised here, owned by items 0..n_items-1; kind auto|exact|hnsw.

        "auto" is exact below EXACT_MAX_VECTORS rows, else HNSW; params overrides M / efConstruction / efSearch.
        """
        matrix = _as_matrix(vectors, "vectors")
        owners = _as_owners(owners, matrix.shape[0])
        kind = cls._resolve_kind(kind, matrix.shape[0])
        settings = cls._settings(kind, params)
        index = _make_faiss(kind, matrix.shape[1], settings)
        with _threads(default_threads()):
            index.add(matrix)
        return cls(index, owners, kind, settings)

    @staticmethod
    def _resolve_kind(kind: str, n_vectors: int) -> str:
        if kind == "auto":
            return "exact" if n_vectors < EXACT_MAX_VECTORS else "hnsw"
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not known; use 'auto' or one of {', '.join(KINDS)}")
        return kind

    @staticmethod
    def _settings(kind: str, params: dict | None) -> dict:
        if kind == "exact":
            if params:
                raise ValueError(f"params {sorted(params)} do not apply to exact search; leave them out or use kind='hnsw'")
            return {}
        settings = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH}
        unknown = sorted(set(params or {}) - set(settings))
        if unknown:
            raise ValueError(f"unknown HNSW parameter(s) {unknown}; use {sorted(settings)}")
        settings.update(params or {})
        bad = {name: v for name, v in settings.items() if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2}
        if bad:
            raise ValueError(f"HNSW parameter(s) {bad} must be whole numbers >= 2")
        return {name: int(v) for name, v in settings.items()}

    def set_ef_search(self, ef_search: int) -> None:
        """Change HNSW's search-time breadth (higher: better recall, slower); an error for exact search."""
        if self.kind != "hnsw":
            raise ValueError(f"efSearch applies to HNSW indexes; this index is {self.kind!r}")
        self._params.update(self._settings("hnsw", {**self._params, "efSearch": ef_search}))

    def add(self, vectors: np.ndarray, owners: np.ndarray) -> None:
        """Append rows of new items, numbered from n_items on without gaps (the next items of the collection)."""
        matrix = _as_matrix(vectors, "vectors", self.dim)
        owners = np.asarray(owners)
        if owners.ndim != 1 or len(owners) != len(matrix) or not np.issubdtype(owners.dtype, np.integer):
            raise ValueError(f"owners must be one integer item index per new vector ({len(matrix)}); got {owners.shape}")
        relative = _as_owners(owners.astype(np.int64) - self.n_items, len(matrix))  # new items n_items.. without gaps
        with _threads(default_threads()):
            self._index.add(matrix)
        self._owners = np.concatenate([self._owners, relative + self.n_items])
        self._refresh()

    def retire(self, items) -> None:
        """Mark items as gone: their rows are never returned again (compact() drops them for good)."""
        items = np.asarray(list(items), dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise ValueError(f"item {int(items.max() if items.max() >= self.n_items else items.min())} is not in this "
                             f"index (items 0..{self.n_items - 1})")
        self._retired[items] = True
        self.n_retired_rows = int(self._retired[self._owners].sum())

    def needs_compaction(self, threshold: float | None = None) -> bool:
        """Whether retired rows pass the threshold (default COMPACT_RETIRED_FRACTION)."""
        return self.retired_fraction > (COMPACT_RETIRED_FRACTION if threshold is None else threshold)

    def compact(self) -> np.ndarray:
        """Rebuild from the live rows; returns new item number per old item (-1 for retired ones)."""
        keep = ~self._retired[self._owners]
        if not keep.any():
            raise ValueError("every item is retired: an empty index cannot be compacted; build a new one")
        vectors = self._index.reconstruct_n(0, self.n_vectors)[keep]
        renumber = np.full(self.n_items, -1, dtype=np.int64)
        live = np.flatnonzero(~self._retired)
        renumber[live] = np.arange(len(live))
        fresh = VectorIndex.build(vectors, renumber[self._owners[keep]], self.kind, self._params or None)
        self._index, self._owners, self._retired = fresh._index, fresh._owners, fresh._retired
        self._refresh()
        return renumber

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-k live items per query by max cosine over their rows: (scores (q, k) float32, items (q, k) int64).

        Rows fetched per query start at k * max_rows_per_item (enough for exact search without retired items) and
        double for any query that still sees fewer than k distinct live items; missing places are padded with -inf / -1.
        """
        k = _check_k(k)
        matrix = _as_matrix(queries, "queries", self.dim)
        out_scores = np.full((len(matrix), k), -np.inf, dtype=np.float32)
        out_items = np.full((len(matrix), k), -1, dtype=np.int64)
        todo = np.arange(len(matrix))
        fetch = min(self.n_vectors, k * self.max_rows_per_item)
        while todo.size:
            scores, items, distinct = self._search_rows(matrix[todo], fetch, k)
            out_scores[todo], out_items[todo] = scores, items
            if fetch >= self.n_vectors:
                break
            todo = todo[distinct < k]
            fetch = min(self.n_vectors, 2 * fetch)
        return out_scores, out_items

    def search_within(self, queries: np.ndarray, items, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of the live `items` only (a place or time filter): filter first, then rank exactly — their rows'
        vectors scored against every query and max-pooled — so a filter never loses a hit the index would miss."""
        k = _check_k(k)
        matrix = _as_matrix(queries, "queries", self.dim)
        allowed = np.zeros(self.n_items, dtype=bool)
        chosen = np.asarray(list(items), dtype=np.int64)
        allowed[chosen[(chosen >= 0) & (chosen < self.n_items)]] = True
        allowed &= ~self._retired
        rows = np.flatnonzero(allowed[self._owners])
        if not rows.size:
            return np.full((len(matrix), k), -np.inf, dtype=np.float32), np.full((len(matrix), k), -1, dtype=np.int64)
        vectors = self._index.reconstruct_batch(rows) if hasattr(self._index, "reconstruct_batch") else \
            np.vstack([self._index.reconstruct(int(r)) for r in rows])
        scores = (matrix @ np.asarray(vectors, dtype=np.float32).T).astype(np.float32)
        owners = np.broadcast_to(self._owners[rows], scores.shape)
        return _pool_rows(scores, np.ascontiguousarray(owners), k)[:2]

    def _search_rows(self, matrix: np.ndarray, fetch: int, k: int):
        with _threads(1 if len(matrix) <= SINGLE_THREAD_QUERIES else default_threads()):
            scores, rows = self._index.search(matrix, fetch, params=_search_params(self.kind, self._params, fetch))
        owners = np.where(rows >= 0, self._owners[np.maximum(rows, 0)], -1)
        if self.n_retired_rows:
            owners = np.where(owners >= 0, np.where(self._retired[np.maximum(owners, 0)], -1, owners), -1)
        scores = np.where(owners >= 0, scores, -np.inf)
        return _pool_rows(scores, owners, k)

    def save(self, folder: Path) -> None:
        """Write index, owners and metadata to a temporary sibling folder, then swap it in (readers never see half)."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
        try:
            self._write(staging)
            self._swap_in(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _write(self, staging: Path) -> None:
        faiss.write_index(self._index, str(staging / _INDEX_FILE))
        np.save(staging / _OWNERS_FILE, self._owners)
        np.save(staging / _RETIRED_FILE, self._retired)
        meta = {"format_version": FORMAT_VERSION, "kind": self.kind, "dim": self.dim, "n_vectors": self.n_vectors,
                "n_items": self.n_items, "n_retired_items": int(self._retired.sum()), "params": self._params,
                "faiss_version": faiss.__version__,
                "bytes": {name: (staging / name).stat().st_size for name in (_INDEX_FILE, _OWNERS_FILE, _RETIRED_FILE)}}
        (staging / _META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @staticmethod
    def _swap_in(staging: Path, folder: Path) -> None:
        if folder.exists() and not (folder / _META_FILE).is_file():  # never replace a folder that is not a saved index
            raise FileExistsError(f"{folder} exists and is not a saved index (no {_META_FILE}); save to a new folder")
        replace_folder(staging, folder)

    @classmethod
    def load(cls, folder: Path) -> "VectorIndex":
        """Read a folder written by `save`; IndexLoadError naming the folder and the fix if it is missing or damaged."""
        folder = Path(folder)
        meta = _read_meta(folder)
        try:
            index = faiss.read_index(str(folder / _INDEX_FILE))
            owners = np.load(folder / _OWNERS_FILE, allow_pickle=False)
            retired = np.load(folder / _RETIRED_FILE, allow_pickle=False) if _RETIRED_FILE in meta["bytes"] else None
        except (RuntimeError, OSError, ValueError) as exc:
            raise _damaged(folder, f"cannot read its files ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from exc
        found = {"dim": index.d, "n_vectors": index.ntotal, "owners": len(owners)}
        wanted = {"dim": meta["dim"], "n_vectors": meta["n_vectors"], "owners": meta["n_vectors"]}
        if found != wanted:
            raise _damaged(folder, f"its files hold {found} but meta.json says {wanted}")
        return cls(index, owners.astype(np.int64), meta["kind"], meta.get("params", {}), retired)


def _damaged(folder: Path, reason: str) -> IndexLoadError:
    return IndexLoadError(f"index folder {folder}: {reason}. Rebuild it (VectorIndex.build(...).save(folder); "
                          "for a collection, build the collection again)")


def _read_meta(folder: Path) -> dict:
    """meta.json of a saved index, checked against the files' recorded sizes."""
    if not folder.is_dir():
        raise IndexLoadError(f"index folder {folder} does not exist. Build it first "
                             "(VectorIndex.build(...).save(folder); for a collection, build the collection)")
    try:
        meta = json.loads((folder / _META_FILE).read_text(encoding="utf-8"))
        sizes = {name: (folder / name).stat().st_size for name in meta.get("bytes", {})}
    except (OSError, json.JSONDecodeError) as exc:
        raise _damaged(folder, f"it is incomplete ({exc.__class__.__name__}: {exc})") from exc
    if meta.get("format_version") not in READABLE_VERSIONS or meta.get("kind") not in KINDS:
        raise _damaged(folder, f"format {meta.get('format_version')!r} / kind {meta.get('kind')!r} is not one this "
                               f"version reads (formats {READABLE_VERSIONS}, kinds {', '.join(KINDS)})")
    if not {_INDEX_FILE, _OWNERS_FILE} <= set(meta.get("bytes", {})):
        raise _damaged(folder, "meta.json does not list the index and owners files")
    if sizes != meta.get("bytes"):
        raise _damaged(folder, f"file sizes {sizes} differ from the recorded {meta.get('bytes')} (truncated or replaced)")
    return meta


def exact_search(vectors: np.ndarray, owners: np.ndarray, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Pure-numpy reference: brute-force cosine, max over each item's rows, top k (ties by lower item index)."""
    k = _check_k(k)
    matrix = _as_matrix(vectors, "vectors")
    owners = _as_owners(owners, len(matrix))
    queries = _as_matrix(queries, "queries", matrix.shape[1])
    order = np.argsort(owners, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(owners[order]) != 0])
    columns = matrix[order].T
    step = max(1, _REFERENCE_CHUNK_BYTES // (4 * len(matrix)))
    pooled = np.concatenate([np.maximum.reduceat(queries[s:s + step] @ columns, starts, axis=1)
                             for s in range(0, len(queries), step)])
    take = min(k, pooled.shape[1])
    items = np.argsort(-pooled, axis=1, kind="stable")[:, :take]
    scores = np.take_along_axis(pooled, items, 1)
    pad = ((0, 0), (0, k - take))
    return (np.pad(scores, pad, constant_values=-np.inf).astype(np.float32),
            np.pad(items, pad, constant_values=-1).astype(np.int64))
