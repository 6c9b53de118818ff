"""The registry of published caption corpora: real VLM descriptions of benchmark test images, from public
repositories at pinned commits, checked by sha256. They enter the store as the `vlm_captions` dataset
(`rsrt data import --from DIR` / `rsrt data download`); nothing of them is committed."""

from __future__ import annotations

from dataclasses import dataclass

from .registry import DATASETS_INFO

CAPTION2CLIP = "RayzedWang/Caption2CLIP@ed97c37669e59e10e5bd0255322263fdbefebdd5"
CAPTION2CLIP_CITATION = ("Caption2CLIP, github.com/RayzedWang/Caption2CLIP @ ed97c376 (2025-07-24), "
                         "llmcaption/ret3 (RemoteCLIP's RET-3 test set); the folder was deleted in the next commit")
NO_LICENCE = "the repository has no licence file: no licence is granted; cite it, never commit its files"
PUBLISHED_LABEL = "zero-shot, image-grounded VLM descriptions (not GPT-4.1), one description per image"
STORE_NAME = "vlm_captions"


@dataclass(frozen=True)
class PublishedCorpus:
    """One published corpus file: where it comes from, what it is, and how its lines name images."""

    name: str
    model: str
    repository: str  # owner/repo@commit
    upstream_path: str
    relpath: str  # inside the store and the mirror
    sha256: str
    size: int
    citation: str = CAPTION2CLIP_CITATION
    licence: str = NO_LICENCE
    label: str = PUBLISHED_LABEL

    @property
    def line_prefixes(self) -> dict[str, str]:
        """dataset -> the prefix its images' lines carry in this corpus (from the dataset records)."""
        return {name: record.published_corpora[self.name] for name, record in DATASETS_INFO.items()
                if self.name in record.published_corpora}

    @property
    def upstream(self) -> str:
        return f"{self.repository}:{self.upstream_path}"

    def prefix_for(self, dataset: str) -> str:
        prefixes = self.line_prefixes
        if dataset not in prefixes:
            raise ValueError(f"published corpus {self.name!r} describes {', '.join(prefixes)} images, not {dataset!r}")
        return prefixes[dataset]

    def describe(self) -> dict:
        return {"name": self.name, "model": self.model, "source": self.upstream, "sha256": self.sha256,
                "citation": self.citation, "licence": self.licence, "label": self.label}


PUBLISHED_CORPORA: dict[str, PublishedCorpus] = {c.name: c for c in (
    PublishedCorpus("llava", "LLaVA (checkpoint and prompt not stated)", CAPTION2CLIP,
                    "llmcaption/ret3/llava/TestImgDetail.txt", "vlm_captions/caption2clip/llava/TestImgDetail.txt",
                    "a9d1101cffd02e0013c8f1563c32d8b50869dbf80c894e0c34eb3a6d20038320", 858887),
    PublishedCorpus("qwenvl", "Qwen-VL (checkpoint and prompt not stated)", CAPTION2CLIP,
                    "llmcaption/ret3/qwenvl/QWVLTestImgDetail.txt",
                    "vlm_captions/caption2clip/qwenvl/QWVLTestImgDetail.txt",
                    "b734dc090942fd3fdbc35ba52c4e9b47550cb3bf99ca87935a735bcc0f59faa9", 1103236),
)}


def published_corpus(name: str) -> PublishedCorpus:
    """The registry entry of a published corpus, or an error naming the known ones."""
    if name not in PUBLISHED_CORPORA:
        raise ValueError(f"published corpus {name!r} is not known; choose from {', '.join(PUBLISHED_CORPORA)}")
    return PUBLISHED_CORPORA[name]
