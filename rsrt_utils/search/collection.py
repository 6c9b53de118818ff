"""Collections: your own imagery described as caption variants, embedded and indexed, searchable by text or by image.

A collection is one folder under `indexes_dir()` (RSRT_INDEX_DIR), one per name:
  manifest.json   images_dir, every file with its sha256, the captioner config (never a secret), encoder, index
                  kind, counts, timings, created/updated times; written last, so it always names a complete index
  corpus.jsonl    the captions, written by the study's corpus runner (`caption_images`): one record per image,
                  keyed by its bytes and the captioner's settings, so a killed build resumes and nothing is paid twice
  queries.jsonl   the descriptions of query images (`search_image`), kept the same way
  index-<digest>/ the indexed images (items.jsonl: id, sha256, embedded texts, in index order) and the VectorIndex
A second build captions only new or changed files (a changed file has a new sha256) and drops removed ones.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

from ..captioning.api import build_backend
from ..captioning.registry import backend_info
from ..paths import indexes_dir
from ..scoring import DEFAULT_FIELD, IMAGE_QUERY_VARIANTS, variant_texts
from ..suggest import did_you_mean
from .build import backend_digest
from .layout import INDEX, ITEMS, QUERY_CORPUS, Hit, Item, endpoint_urls, is_inside, list_collections, read_manifest

_QUERY_LOCK = threading.Lock()


# ---------------------------------------------------------------- opening and searching
def single_threaded_queries() -> None:
    """One torch thread for query encoding in a serving process: with two on 2 busy cores, about a quarter of single
    query encodings took ~370 ms instead of ~10 ms (benchmarks/results/index_aid150.json)."""
    import torch

    torch.set_num_threads(1)


class Collection:
    """An opened collection: its items, its index and what it takes to search it by text or by image."""

    def __init__(self, folder: Path, manifest: dict, items: list[Item], index, backend=None,
                 base_urls: list[str] | None = None):
        self.folder, self.manifest, self.index = folder, manifest, index
        self._base_urls = base_urls
        self._rows = items  # in the index's numbering, retired items included
        self.items = [item for item in items if not item.retired]
        self.name = manifest["name"]
        self.images_dir = Path(manifest["images_dir"])
        self.captioner = manifest["captioner"]["label"]
        self.encoder = manifest["encoder"]["name"]
        self.n_images = sum(not item.retired for item in items)
        self.index_kind = manifest["index"]["kind"]
        self._by_id = {item.image_id: item for item in items if not item.retired}
        self._backend, self._encoder = backend, None
        self._lock = threading.RLock()
        self.places = _read_places(self.images_dir)  # {image_id: chip record}, empty unless built from scenes

    @classmethod
    def open(cls, name: str, root: Path | None = None, backend=None, base_urls: list[str] | None = None) -> "Collection":
        """Open collection `name`; `backend` serves image queries when the captioner cannot be rebuilt from the
        manifest (a bank given in code); `base_urls`: the captioner's server URLs with their credentials (else
        RSRT_CAPTIONER_BASE_URL). ValueError naming the known collections if there is none of that name."""
        from .index import IndexLoadError

        root = Path(root or indexes_dir())
        known = list_collections(root)
        if name not in known:
            raise ValueError(f"there is no collection {name!r} in {root}{did_you_mean(name, known)} (known: "
                             f"{', '.join(known) or 'none'}; build one with `rsrt index build DIR --name NAME`)")
        folder = root / name
        try:
            return cls._open_manifest(folder, read_manifest(folder), backend, base_urls)
        except (FileNotFoundError, IndexLoadError):  # a build swapped in a new index between the two reads
            return cls._open_manifest(folder, read_manifest(folder), backend, base_urls)

    @classmethod
    def _open_manifest(cls, folder: Path, manifest: dict, backend, base_urls) -> "Collection":
        from .index import VectorIndex

        name = manifest["name"]
        index_folder = folder / manifest["index"]["folder"]
        index = VectorIndex.load(index_folder / INDEX)
        images_dir = Path(manifest["images_dir"])
        rows = [json.loads(line) for line in (index_folder / ITEMS).read_text(encoding="utf-8").splitlines()]
        items = [Item(row["image_id"], (images_dir / row["image_id"]).resolve(), row["sha256"], row["descriptions"],
                      bool(row.get("retired"))) for row in rows]
        if index.n_items != len(items):
            raise ValueError(f"collection {name!r} is inconsistent ({index.n_items} indexed items, {len(items)} listed); "
                             f"rebuild it with `rsrt index build {images_dir} --name {name} --rebuild`")
        return cls(folder, manifest, items, index, backend, base_urls)

    def item(self, image_id: str) -> Item:
        """The item of that id; KeyError if it is not in the collection."""
        try:
            return self._by_id[image_id]
        except (KeyError, TypeError):
            raise KeyError(f"image {image_id!r} is not in collection {self.name!r}") from None

    def file_for(self, image_id: str) -> Path | None:
        """The image's file, only if image_id is an item of this collection and the file still resolves inside
        images_dir (a path with '..', an absolute path or a symlink pointing out of the folder gives None)."""
        item = self._by_id.get(image_id) if isinstance(image_id, str) else None
        if item is None:
            return None
        root = self.images_dir.resolve()
        path = (root / item.image_id).resolve()
        return path if is_inside(path, root) and path != root and path.is_file() else None

    def search_text(self, query: str, k: int = 10, where=None) -> list[Hit]:
        """The k images whose descriptions best match the query (cosine, max-pooled over an image's variants); with
        `where` (a geo.places.PlaceTimeFilter), only the chips in its box and date range."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"the text query is empty ({query!r}); give a description such as 'a bridge over a river'")
        return self._search(self._encode([query.strip()]), k, where)

    def search_image(self, path: Path, k: int = 10, where=None) -> list[Hit]:
        """Describe the image with the collection's captioner (variants mode), take its first IMAGE_QUERY_VARIANTS (2)
        variant texts, as the study's image->text queries, and rank images by their best match to any of them."""
        return self._search(self._encode(self.describe_image(path)), k, where)

    def describe_image(self, path: Path) -> list[str]:
        """The query texts for an image file: its first IMAGE_QUERY_VARIANTS descriptions by the collection's captioner
        (kept in queries.jsonl, so the same image is never described, nor paid for, twice)."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise ValueError(f"query image {str(path)!r} does not exist; give an image file (jpg, png, tif)")
        backend = self._query_backend()
        record = _describe(backend, path.resolve(), self.folder / QUERY_CORPUS)
        field_name = self.manifest.get("field", DEFAULT_FIELD)
        return variant_texts(record.variants[:self.manifest.get("n_query_variants", IMAGE_QUERY_VARIANTS)], field_name)

    def _query_backend(self):
        with self._lock:
            if self._backend is None:
                self._backend = _backend_from_manifest(self.manifest, self._base_urls)
            digest = backend_digest(self._backend)
            if digest != self.manifest["captioner"]["digest"]:
                raise ValueError(f"the captioner given for collection {self.name!r} answers differently from the one "
                                 f"that built it (settings {self._backend.settings} vs {self.manifest['captioner']['settings']}); "
                                 f"pass the same captioner, or rebuild the collection")
            return self._backend

    def _encode(self, texts: list[str]):
        """Query vectors from the collection's encoder, without the on-disk cache: user queries are never stored."""
        from ..encoders import make_text_encoder

        with self._lock:
            if self._encoder is None:
                self._encoder = make_text_encoder(self.manifest["encoder"]["spec"])
            return self._encoder.encode(texts)

    def _search(self, vectors, k: int, where=None) -> list[Hit]:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a whole number >= 1, got {k!r}")
        if where is not None:
            scores, owners = self.index.search_within(vectors, self._allowed(where), min(k, self.n_images))
        else:
            scores, owners = self.index.search(vectors, min(k, self.n_images))
        best: dict[int, float] = {}
        for row_scores, row_items in zip(scores, owners):
            for score, item in zip(row_scores, row_items):
                if item >= 0 and float(score) > best.get(int(item), float("-inf")):
                    best[int(item)] = float(score)
        order = sorted(best.items(), key=lambda pair: (-pair[1], pair[0]))[:k]
        return [Hit(rank, self._rows[i].image_id, score, self._rows[i].descriptions, self.places.get(self._rows[i].image_id))
                for rank, (i, score) in enumerate(order, start=1)]

    def _allowed(self, where) -> list[int]:
        """The index numbers of the live items `where` lets through (an error if the collection has no places)."""
        if not self.places:
            raise ValueError(f"collection {self.name!r} has no places or times (it was not built from georeferenced "
                             f"scenes with --chip): search it without --bbox / --from / --to")
        return [i for i, item in enumerate(self._rows) if not item.retired and where.matches(self.places.get(item.image_id))]


def _read_places(images_dir: Path) -> dict[str, dict]:
    """The chips' records of a collection built from scenes (chips.json beside the chips), else {}."""
    from ..geo.archive import CHIPS_MANIFEST, read_chips

    return read_chips(images_dir) if (images_dir / CHIPS_MANIFEST).is_file() else {}


def _backend_from_manifest(manifest: dict, base_urls: list[str] | None = None):
    """Rebuild the collection's captioner from its manifest (an API key, if any, comes from the environment; URL
    credentials from base_urls or RSRT_CAPTIONER_BASE_URL)."""
    spec = dict(manifest["captioner"]["spec"])
    urls = endpoint_urls(manifest, base_urls)
    if urls is not None:
        spec["base_url"] = urls if isinstance(spec.get("base_url"), list) else urls[0]
    if not backend_info(spec["backend"]).captions_images:
        raise ValueError(f"collection {manifest['name']!r} was captioned from an imported corpus, which cannot describe "
                         f"a new image; search it by text")
    if str(spec.get("bank", "")).startswith("custom:"):
        raise ValueError(f"collection {manifest['name']!r} was captioned with a bank given in code; open it with "
                         f"Collection.open(name, backend=<the same captioner>) to search by image")
    return build_backend(spec)


def _describe(backend, path: Path, store_path: Path):
    """The ok variants record of one query image, captioned through the corpus runner (cached by content)."""
    from ..captioning.corpus import CorpusBusyError, CorpusStore
    from ..captioning.images import build_requests
    from ..captioning.runner import caption_images, request_key

    request = build_requests([(f"query:{path.name}", path)])[0]
    key = request_key(backend, request, "variants")
    with _QUERY_LOCK, tempfile.TemporaryDirectory(prefix="rsrt-query-") as scratch:
        try:
            summary = caption_images([request], backend, store_path, concurrency=1, progress=False)
        except CorpusBusyError:  # another process writes the query cache: describe this one without caching it
            store_path = Path(scratch) / QUERY_CORPUS
            summary = caption_images([request], backend, store_path, concurrency=1, progress=False)
        record = next((r for r in CorpusStore(store_path).records() if r.cache_key == key and r.status == "ok"), None)
    if record is None:
        reason = next(iter(summary.failure_reasons), "no answer")
        raise ValueError(f"the captioner could not describe the query image {str(path)!r}: {reason}")
    return record
