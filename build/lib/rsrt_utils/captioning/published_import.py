"""Published corpora (see `data.published_corpora`) turned into project corpora: one record per image holding its
descriptions as they were written (1..N free-form variants, never padded or split), matched to the split.

The published format is one line per description, `<prefix><file name> <text>` (e.g. `rsicd_00623.jpg The
image is ...`). Lines of other datasets in the same file are skipped; a name that matches no image of the
split, a line with no text, or an exact repeat of a line are reported. RSITMD names are matched on the stem
(the file says `.png` where the annotations say `.tif`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..data.published_corpora import PublishedCorpus, published_corpus
from ..fileutil import file_sha256
from ..paths import cache_dir, data_dir
from .corpus import CorpusStore, make_cache_key, utc_now
from .schema import CorpusRecord, Variant

PUBLISHED_BACKEND = "published"
PUBLISHED_PROMPT_VERSION = "published-v1"


@dataclass
class PublishedReport:
    """What reading one published corpus for one dataset split found."""

    corpus: str
    dataset: str
    n_images_in_split: int
    descriptions: int = 0
    images: int = 0
    other_datasets: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"{self.corpus} on {self.dataset}: {self.descriptions} description(s) of {self.images} of "
                 f"{self.n_images_in_split} images; {len(self.uncovered)} image(s) without a description; "
                 f"{len(self.bad_lines)} bad line(s); {self.other_datasets} line(s) of other datasets skipped"]
        lines += [f"  line {n}: {reason}" for n, reason in self.bad_lines[:20]]
        if self.uncovered:
            lines.append(f"  not described: {', '.join(self.uncovered[:10])}{' ...' if len(self.uncovered) > 10 else ''}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"corpus": self.corpus, "dataset": self.dataset, "n_images_in_split": self.n_images_in_split,
                "descriptions": self.descriptions, "images": self.images, "other_datasets": self.other_datasets,
                "bad_lines": self.bad_lines[:50], "n_bad_lines": len(self.bad_lines), "uncovered": self.uncovered}


def _name_index(image_ids: Sequence[str]) -> dict[str, str]:
    """File name and stem -> image id (the exact name wins over a stem shared by another id)."""
    index = {Path(i).stem: i for i in image_ids}
    index.update({i: i for i in image_ids})
    return index


def read_published_descriptions(path: Path | str, prefix: str, image_ids: Sequence[str],
                                corpus: str = "corpus", dataset: str = "dataset") -> tuple[dict[str, list[str]], PublishedReport]:
    """image id -> its descriptions in file order, and the report of what was found (bad lines by number)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"published corpus file {str(path)!r} does not exist; run `rsrt data import --from DIR` "
                                f"or `rsrt data download --datasets vlm_captions`")
    names = _name_index(image_ids)
    report = PublishedReport(corpus, dataset, len(image_ids))
    found: dict[str, list[str]] = {}
    first_line: dict[tuple[str, str], int] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if not line.startswith(prefix):
                report.other_datasets += 1
                continue
            name, _, text = line[len(prefix):].strip().partition(" ")
            text = " ".join(text.split())
            image_id = names.get(name) or names.get(Path(name).stem)
            if not text:
                report.bad_lines.append((number, f"{name!r} has no description text"))
            elif image_id is None:
                report.bad_lines.append((number, f"{name!r} matches no image of the {dataset} split"))
            elif (image_id, text) in first_line:
                report.bad_lines.append((number, f"{name!r}: the same description again (first on line "
                                                 f"{first_line[image_id, text]}); kept once"))
            else:
                first_line[image_id, text] = number
                found.setdefault(image_id, []).append(text)
    report.descriptions = sum(len(v) for v in found.values())
    report.images = len(found)
    report.uncovered = [i for i in image_ids if i not in found]
    return found, report


def published_source_path(corpus: PublishedCorpus, store: Path | None = None) -> Path:
    return (store or data_dir()) / corpus.relpath


def published_corpus_path(name: str, dataset: str, split: str, source_sha256: str) -> Path:
    return cache_dir() / "corpora" / f"{dataset}-{split}-{PUBLISHED_BACKEND}-{name}-{source_sha256[:10]}.jsonl"


def build_published_corpus(name: str, dataset: str, split: str, image_ids: Sequence[str],
                           store: Path | None = None, out: Path | None = None) -> tuple[Path, PublishedReport]:
    """Write (or complete) the project corpus of one published corpus for a dataset split; idempotent."""
    entry = published_corpus(name)
    if split != "test":
        raise ValueError(f"published corpus {name!r} describes test images only; set dataset.split: test")
    source = published_source_path(entry, store)
    descriptions, report = read_published_descriptions(source, entry.prefix_for(dataset), image_ids, name, dataset)
    sha = file_sha256(source)
    if sha != entry.sha256:
        raise ValueError(f"{source}: sha256 {sha[:12]}… is not the pinned {entry.sha256[:12]}… of {name!r}; "
                         f"re-import it with `rsrt data import --from DIR --datasets vlm_captions --overwrite`")
    out = Path(out) if out else published_corpus_path(name, dataset, split, sha)
    settings = {"source": entry.upstream, "source_sha256": sha}
    with CorpusStore(out) as store:
        for image_id, texts in descriptions.items():
            key = make_cache_key(PUBLISHED_BACKEND, name, PUBLISHED_PROMPT_VERSION, settings, "variants", None, image_id)
            store.append(CorpusRecord(image_id=image_id, cache_key=key, status="ok",
                                      variants=[Variant.description(t) for t in texts], backend=PUBLISHED_BACKEND,
                                      model=entry.model, prompt_version=PUBLISHED_PROMPT_VERSION, settings=settings,
                                      label=entry.label, created_at=utc_now()))
    return out, report
