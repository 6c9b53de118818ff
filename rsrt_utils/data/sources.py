"""Where every benchmark file comes from (public repositories at pinned commits) and its sha256.

The checksum tables in `checksums/<dataset>.tsv` (relpath, sha256, bytes) were computed from the
verified mirror. A file's upstream is "<owner>/<repo>@<commit>:<path>" (from UPSTREAM_PREFIXES), or
"-" for files that exist only in mirrors (the RSICD->AID-150 table, which the loader rebuilds by
file name when it is absent).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..fileutil import file_sha256
from .published_corpora import PUBLISHED_CORPORA, STORE_NAME as PUBLISHED_STORE
from .registry import AID150_MAPPING, DATASETS_INFO

CHECKSUM_DIR = Path(__file__).with_name("checksums")
STORE_DATASETS = ("rsitmd", "rsicd", "aid150", PUBLISHED_STORE)
RAW_BASE_URL = "https://raw.githubusercontent.com"

AMFMN = "xiaoyuan1996/AMFMN@c09bcfba90e8283f98317af3c0e35005c3587925"
SHSA = "hocker-sy/SHSA@9941748c57814a78e74284cb25c20a2b1d23c3b7"
TESTTENSOR = "zlima/testtensor@f6a0f74645eab10754425bff50747e508290dee1"

# relpath prefix in the store -> (repository@commit, path prefix upstream)
UPSTREAM_PREFIXES = [
    ("rsitmd/precomp_amfmn/", AMFMN, "AMFMN/data/rsitmd_precomp/"),
    ("rsitmd/Transferdataset_rsitmd.json", SHSA, "data/data/RSITMD/Transferdataset_rsitmd.json"),
    ("rsicd/precomp_amfmn/", AMFMN, "AMFMN/data/rsicd_precomp/"),
    ("aid150/images/", TESTTENSOR, "AID/"),
]
MIRROR_ONLY = (AID150_MAPPING,)
ANNOTATION_FILES = {name: list(info.store_files) for name, info in DATASETS_INFO.items()}


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
    if relpath in MIRROR_ONLY:
        return "-"
    for prefix, repo, upstream_prefix in UPSTREAM_PREFIXES:
        if relpath.startswith(prefix):
            return f"{repo}:{upstream_prefix}{relpath[len(prefix):]}"
    raise ValueError(f"no public source is known for {relpath!r}")


def source_files(dataset: str) -> list[SourceFile]:
    """The checksum table of one store dataset ('rsitmd', 'rsicd', 'aid150'; 'vlm_captions' from the registry)."""
    if dataset not in STORE_DATASETS:
        raise ValueError(f"dataset {dataset!r} is not known; choose one of {', '.join(STORE_DATASETS)}")
    if dataset == PUBLISHED_STORE:
        return [SourceFile(c.relpath, c.sha256, c.size, c.upstream) for c in PUBLISHED_CORPORA.values()]
    with (CHECKSUM_DIR / f"{dataset}.tsv").open(encoding="utf-8") as handle:
        return [SourceFile(r["relpath"], r["sha256"], int(r["bytes"]), upstream_of(r["relpath"]))
                for r in csv.DictReader(handle, delimiter="\t")]


def mirror_relpaths(mirror: Path, dataset: str) -> list[str]:
    if dataset == "aid150":
        return sorted(p.relative_to(mirror).as_posix() for p in (mirror / "aid150" / "images").glob("*/*.jpg"))
    return ANNOTATION_FILES[dataset]


def write_checksum_tables(mirror: Path) -> None:
    """Maintainers only: recompute the checksum tables from a verified mirror (published corpora: see published.py)."""
    CHECKSUM_DIR.mkdir(exist_ok=True)
    for dataset in (d for d in STORE_DATASETS if d != PUBLISHED_STORE):
        rows = [(rel, sha256_of(mirror / rel), (mirror / rel).stat().st_size) for rel in mirror_relpaths(mirror, dataset)]
        with (CHECKSUM_DIR / f"{dataset}.tsv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(["relpath", "sha256", "bytes"])
            writer.writerows(rows)
