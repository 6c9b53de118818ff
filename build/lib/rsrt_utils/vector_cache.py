"""A key -> vector cache: one SQLite table of float32 vectors by key, the storage under every cache (text embeddings,
image features, CLIP image embeddings), and `fill_missing`, the one "compute what is not cached yet" loop they share.

Each `put_many` is one transaction, so an interrupted run leaves only complete rows; rows whose blob
does not match their dimension are treated as missing. One connection is shared by threads
(captioning backends run in a pool) and serialised by a lock.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

_SQL_CHUNK = 900  # SQLite's default limit on bound parameters is 999
CACHE_POLICIES = ("only-missing", "always", "never")
# compute(missing keys) yields, batch by batch: (keys computed, their vectors, {key: why it could not be computed}).
Computed = Iterator[tuple[Sequence[str], np.ndarray | None, dict[str, str]]]


class SQLiteVectorCache:
    def __init__(self, path: Path, table: str = "vectors", key_column: str = "key"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._table, self._key = table, key_column
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({key_column} TEXT PRIMARY KEY, dim INTEGER, vec BLOB)")
        self._db.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors for the keys present (incomplete rows are skipped, so they get recomputed)."""
        found: dict[str, np.ndarray] = {}
        keys = list(keys)
        with self._lock:
            for start in range(0, len(keys), _SQL_CHUNK):
                chunk = keys[start:start + _SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT {self._key}, dim, vec FROM {self._table} WHERE {self._key} IN ({marks})"
                for key, dim, blob in self._db.execute(query, chunk):
                    if dim and blob is not None and len(blob) == 4 * dim:
                        found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store rows in one transaction: all of them or none."""
        rows = [(k, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors)]
        with self._lock, self._db:
            self._db.executemany(f"INSERT OR REPLACE INTO {self._table} ({self._key}, dim, vec) VALUES (?, ?, ?)", rows)

    def execute(self, sql: str, parameters: Sequence = ()) -> list:
        """Run one statement in its own transaction (for small extra tables such as metadata)."""
        with self._lock, self._db:
            return self._db.execute(sql, parameters).fetchall()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM {self._table}").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def check_policy(policy: str) -> str:
    """A cache policy: only-missing (default), always (recompute and overwrite) or never (read-only)."""
    if policy not in CACHE_POLICIES:
        raise ValueError(f"cache policy {policy!r} is not known; choose one of {', '.join(CACHE_POLICIES)}")
    return policy


def fill_missing(cache: "SQLiteVectorCache | None", keys: Iterable[str], compute: Callable[[list[str]], Computed], *,
                 policy: str = "only-missing", what: str = "vectors", name: str = "", progress: str | None = None,
                 unit: str = "item") -> tuple[dict, dict[str, str], int]:
    """({key: vector} of every key, cached or computed now; {key: reason} of those that could not be computed; how
    many were computed now).

    Each computed batch is stored in one transaction (cache None: nothing stored), so an interrupted run keeps its
    finished batches; `progress` is the bar's label (None: no bar); policy "never" refuses to compute anything."""
    from tqdm.auto import tqdm

    keys = list(dict.fromkeys(keys))
    found = {} if cache is None or policy == "always" else cache.get_many(keys)
    missing = [k for k in keys if k not in found]
    if missing and policy == "never":
        owner = f"{name} " if name else ""
        raise RuntimeError(f"{len(missing)} of {len(keys)} {what} are not in the {owner}cache ({cache.path}) and the policy "
                           f"is 'never'; rerun with policy 'only-missing'")
    failed: dict[str, str] = {}
    bar = tqdm(total=len(missing), desc=progress, unit=unit, disable=not (progress and missing))
    for done, vectors, bad in (compute(missing) if missing else ()):
        done = list(done)
        if done:
            if cache is not None:
                cache.put_many(done, vectors)
            found.update(zip(done, vectors))
        failed.update(bad)
        bar.update(len(done) + len(bad))
    bar.close()
    return found, failed, len(missing) - len(failed)
