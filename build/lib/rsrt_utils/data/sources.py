"""Where every benchmark file comes from (public repositories at pinned commits) and its sha256.

The checksum tables in `checksums/<dataset>.tsv` (relpath, sha256, bytes) were computed from the
verified mirror. A file's upstream is "<owner>/<repo>@<commit>:<path>" (from the records' `upstream`), or
"-" for files that exist only in mirrors (the RSICD->AID-150 table, which the loader rebuilds by
file name when it is absent).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..fileutil import file_sha256
from .published_corpora import PUBLISHED_CORPORA, STORE_NAME as PUBLISHED_STORE
from .registry import DATASETS_INFO, PIXEL_STORES

CHECKSUM_DIR = Path(__file__).with_name("checksums")
RAW_BASE_URL = "https://raw.githubusercontent.com"


def store_datasets() -> tuple[str, ...]:
    """Every store dataset: the benchmarks, their pixel stores and the published corpora (from the records)."""
    return (*DATASETS_INFO, *PIXEL_STORES, PUBLISHED_STORE)


def upstream_prefixes() -> list[tuple[str, str, str]]:
    """(relpath prefix in the store, repository@commit, path prefix upstream) of every record."""
    records = [*DATASETS_INFO.values(), *PIXEL_STORES.values()]
    return [prefix for record in records for prefix in record.upstream]


STORE_DATASETS = store_datasets()


@dataclass(frozen=True)
class SourceFile:
    relpath: str
    sha256: str
    size: int
    upstream: str  # "owner/repo@commit:path" or "-"

    def url(self, base_url: str = RAW_BASE_URL) -> str | None:
        """Download address: <base>/<owner>/<repo>/<commit>/<path>; None for mirror-only files."""
        if self.upstream == "-":
            return None
        repo_commit, path = self.upstream.split(":", 1)
        repo, commit = repo_commit.split("@")
        return f"{base_url.rstrip('/')}/{repo}/{commit}/{path}"


sha256_of = file_sha256  # the name the store and its tests use


def upstream_of(relpath: str) -> str:
    if any(relpath in record.mirror_only for record in DATASETS_INFO.values()):
        return "-"
    for prefix, repo, upstream_prefix in upstream_prefixes():
        if relpath.startswith(prefix):
            return f"{repo}:{upstream_prefix}{relpath[len(prefix):]}"
    raise ValueError(f"no public source is known for {relpath!r}")


def source_files(dataset: str) -> list[SourceFile]:
    """The checksum table of one store dataset ('rsitmd', 'rsicd', 'aid150'; 'vlm_captions' from the registry)."""
    if dataset not in store_datasets():
        raise ValueError(f"dataset {dataset!r} is not known; choose one of {', '.join(store_datasets())}")
    if dataset == PUBLISHED_STORE:
        return [SourceFile(c.relpath, c.sha256, c.size, c.upstream) for c in PUBLISHED_CORPORA.values()]
    with (CHECKSUM_DIR / f"{dataset}.tsv").open(encoding="utf-8") as handle:
        return [SourceFile(r["relpath"], r["sha256"], int(r["bytes"]), upstream_of(r["relpath"]))
                for r in csv.DictReader(handle, delimiter="\t")]


def mirror_relpaths(mirror: Path, dataset: str) -> list[str]:
    if dataset in PIXEL_STORES:
        return sorted(p.relative_to(mirror).as_posix() for p in mirror.glob(PIXEL_STORES[dataset].image_glob))
    return list(DATASETS_INFO[dataset].store_files)


def write_checksum_tables(mirror: Path) -> None:
    """Maintainers only: recompute the checksum tables from a verified mirror (published corpora: see published.py)."""
    CHECKSUM_DIR.mkdir(exist_ok=True)
    for dataset in (d for d in store_datasets() if d != PUBLISHED_STORE):
        rows = [(rel, sha256_of(mirror / rel), (mirror / rel).stat().st_size) for rel in mirror_relpaths(mirror, dataset)]
        with (CHECKSUM_DIR / f"{dataset}.tsv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(["relpath", "sha256", "bytes"])
            writer.writerows(rows)
