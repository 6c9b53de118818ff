"""Benchmark: all-MiniLM-L6-v2 embedding throughput on realistic descriptions, for the million-image plan.

Texts: the published LLaVA and Qwen-VL descriptions of RSICD test images (one paragraph each, the length of a
VLM-written variant) and RSICD's human test captions (short sentences), from the mirror; no embedding cache.
Also records the real embeddings' similarity profile that `bench_index.py`'s synthetic vectors imitate.

    python benchmarks/bench_archive_embedding.py            # writes benchmarks/results/archive_embedding.json
    python benchmarks/bench_archive_embedding.py --n 1000   # fewer texts per kind (default 3000)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from rsrt_utils.data.published_corpora import PUBLISHED_CORPORA
from rsrt_utils.encoders import DEFAULT_TEXT_ENCODER, make_text_encoder
from rsrt_utils.paths import shared_mirror_dir

RESULTS = Path(__file__).resolve().parent / "results" / "archive_embedding.json"


def published_descriptions(mirror: Path, corpus: str) -> dict[str, str]:
    """RSICD image name -> its description in one published corpus (first line per image)."""
    texts: dict[str, str] = {}
    for line in (mirror / PUBLISHED_CORPORA[corpus].relpath).read_text(encoding="utf-8").splitlines():
        name, _, text = line.strip().partition(" ")
        if name.startswith("rsicd_") and text:
            texts.setdefault(name, text)
    return texts


def timed_encode(encoder, texts: list[str]) -> dict:
    """Seconds and texts/s for one uncached pass, plus the texts' mean length in words and model tokens."""
    start = time.perf_counter()
    vectors = encoder.encode(texts)
    seconds = time.perf_counter() - start
    tokens = [len(ids) for ids in encoder.model.tokenizer(texts)["input_ids"]]
    limit = encoder.model.max_seq_length
    return {"n_texts": len(texts), "seconds": round(seconds, 2), "texts_per_s": round(len(texts) / seconds, 1),
            "mean_words": round(float(np.mean([len(t.split()) for t in texts])), 1),
            "mean_tokens": round(float(np.mean(tokens)), 1), "max_seq_length": limit,
            "truncated_fraction": round(float(np.mean(np.array(tokens) > limit)), 3)}, vectors


def profile(first: np.ndarray, second: np.ndarray) -> dict:
    """Random-pair, same-image (two VLMs) and nearest-other-image cosines of real description embeddings."""
    sims = first @ first.T
    np.fill_diagonal(sims, np.nan)
    return {"random_pair_cos": round(float(np.nanmean(sims)), 3),
            "same_image_cos": round(float(np.einsum("id,id->i", first, second).mean()), 3),
            "nearest_other_image_cos": round(float(np.nanmax(sims, axis=1).mean()), 3), "n_sample": len(first),
            "what": "all-MiniLM-L6-v2 on RSICD test: LLaVA descriptions; same image = LLaVA vs Qwen-VL description"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="texts per kind (paragraphs, captions)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    mirror = shared_mirror_dir()
    if mirror is None:
        raise SystemExit("needs the data mirror (../shared/data or RSRT_MIRROR_DIR) for realistic texts")
    load_before = round(os.getloadavg()[0], 2)
    llava, qwen = published_descriptions(mirror, "llava"), published_descriptions(mirror, "qwenvl")
    names = sorted(set(llava) & set(qwen))[: max(1, args.n // 2)]
    from rsrt_utils.data import load_dataset

    captions = load_dataset("rsicd", "test", root=mirror).captions[: args.n]
    encoder = make_text_encoder(DEFAULT_TEXT_ENCODER)
    encoder.encode(["warm-up sentence"] * 8)
    paragraphs, vectors = timed_encode(encoder, [llava[n] for n in names] + [qwen[n] for n in names])
    short, _ = timed_encode(encoder, captions)
    import torch

    result = {"benchmark": "all-MiniLM-L6-v2 throughput on realistic texts (no cache)", "encoder": encoder.name,
              "vlm_paragraphs": paragraphs, "rsicd_captions": short,
              "profile": profile(vectors[: len(names)], vectors[len(names):]),
              "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "load_avg_1m_before": load_before, "load_avg_1m_after": round(os.getloadavg()[0], 2),
                          "python": platform.python_version()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
