"""Benchmark: image-feature extraction time and the neighbour captioner's mR on RSICD test / AID-150.

Usage:  python benchmarks/bench_neighbour_captioner.py [--mirror DIR] [--cache DIR] [--skip-cold] [--only features|retrieval]
        [--threads N] [--runs baseline tuned_defaults ...] [--out FILE]

1. Feature extraction for all 10000 AID-150 images (EfficientNet-Lite0, float32, no TTA): a cold
   run into an emptied cache, then a cached rerun (hashing + SQLite reads only).
2. The neighbour captioner on the 1027 RSICD test scenes found in AID-150 (queries = their 5135
   human captions), through the shared scoring path (rsrt_utils.scoring.score_texts / evaluate) under the
   default study's ScoringSpec (params/default.yaml; t2i: max over an image's 5 variants; i2t: max over its
   first n_query_variants variants against all test captions), for the presets of neighbour_presets.py
   (baseline: k=10, unweighted consensus, 5/5 variants, no TTA; v1 and v2 defaults; the two-encoder row, each
   with the n_query_variants it was measured with) and the defaults chosen on the train validation split
   (tune_neighbour_captioner.py) with the study's own n_query_variants.
Ties are random (the shared default: expected hit rate under a uniformly random order of exactly
tied candidates), with 95 % bootstrap intervals; mR under pessimistic and optimistic ties
(mR_ties_*) is reported beside them, because images often share an identical consensus caption, so exact score
ties are frequent. A tie-exact diagnostic (identical texts scored bit-identically, see
tune_neighbour_captioner.tie_exact_pooled) shows how much float noise in the shared scoring path moves mR.
`--runs` scores only some presets: a reduced run, which must go to another file (`--out`).
Figures are on AID-150 pixels (150x150, a faithful proxy, not the benchmark's exact pixels), and
the captioner uses in-domain train captions: it is not zero-shot.
Writes benchmarks/results/neighbour_captioner.json (via a temp file + rename).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from neighbour_cli import add_common_arguments, apply_common_arguments  # noqa: E402

from rsrt_utils.fileutil import write_json_atomic  # noqa: E402

RESULT_PATH = HERE / "results" / "neighbour_captioner.json"
STUDY_PARAMS = HERE.parent / "params" / "default.yaml"  # its retrieval + evaluation sections are the scoring protocol


def time_feature_extraction(mirror: Path, cache_root: Path, skip_cold: bool) -> dict:
    """Cold (emptied cache) and cached extraction of every AID-150 image."""
    from rsrt_utils.captioning.neighbour import DEFAULT_SETTINGS
    from rsrt_utils.image_encoders.efficientnet import ImageFeatureExtractor

    model = DEFAULT_SETTINGS["image_model"]
    paths = sorted((mirror / "aid150" / "images").glob("*/*.jpg"))
    root = cache_root / "image_features_timing"  # its own folder: the cold run empties it
    out = {"n_images": len(paths), "encoder": None, "batch_size": 64, "decode_workers": 2}
    if not skip_cold and root.exists():
        shutil.rmtree(root)
    for run in ("cold", "cached"):
        if run == "cold" and skip_cold:
            continue
        extractor = ImageFeatureExtractor(model=model, cache_root=root, batch_size=64, decode_workers=2)
        start = time.perf_counter()
        features = extractor.extract(paths)
        out[f"{run}_seconds"] = round(time.perf_counter() - start, 2)
        out[f"{run}_stats"] = dict(extractor.last_stats)
        out["encoder"] = extractor.identity
        out["feature_shape"] = list(features.shape)
        extractor.close()
    out["naive_loop_seconds_reported"] = 430
    return out


def caption_variants(captioner, dataset) -> list[list]:
    """Every image's variants, captioned in batches of the captioner's batch size (mode "variants")."""
    from rsrt_utils.captioning.backend import CaptionRequest

    requests = [CaptionRequest(im.image_id, im.image_path, scene_class=im.scene_class) for im in dataset.images]
    answers = []
    for start in range(0, len(requests), captioner.batch_size):
        answers.extend(captioner.answer_batch(requests[start:start + captioner.batch_size], "variants"))
    return [answer.variants for answer in answers]


def tie_exact_scores(variants: list[list], captions, encoder, spec) -> tuple:
    """score_texts' (t2i, i2t), but with identical texts scored bit-identically (a diagnostic; see
    tune_neighbour_captioner.tie_exact_pooled)."""
    import numpy as np
    from tune_neighbour_captioner import tie_exact_pooled

    from rsrt_utils.scoring import image_texts

    queries = encoder.encode(list(captions))

    def pooled(groups: list[list[str]]):
        owner = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
        return tie_exact_pooled(queries, encoder.encode([t for g in groups for t in g]), owner, len(groups))

    t2i = pooled(image_texts(variants, spec))
    return t2i, np.ascontiguousarray(pooled(image_texts(variants, spec, spec.query_variants)).T)


def evaluate_captioner(captioner, test, encoder, spec) -> dict:
    """Caption every test image, then score and evaluate through the shared scoring path (plus the tie-exact diagnostic)."""
    from rsrt_utils.scoring import evaluate, score_texts

    start = time.perf_counter()
    variants = caption_variants(captioner, test)
    t2i, i2t = score_texts(variants, test.captions, encoder, spec)
    result = evaluate(t2i, i2t, test.caption_image_index, spec)
    result["seconds"] = round(time.perf_counter() - start, 2)
    exact = evaluate(*tie_exact_scores(variants, test.captions, encoder, spec), test.caption_image_index, spec)
    result["tie_exact_scoring"] = {"mR": exact["mR"], "ci95_mR": exact["ci95"]["mR"], "t2i": exact["t2i"], "i2t": exact["i2t"],
                                   **{key: value for key, value in exact.items() if key.startswith("mR_ties_")}}
    result["n_query_variants"] = spec.query_variants
    result["settings"] = captioner.settings
    return result


RUNS = ("baseline", "tuned_defaults", "best_two_encoders", "v2_defaults", "previous_defaults")


def preset_runs(study_spec, only=None) -> list[tuple]:
    """(name, captioner settings, scoring spec) of each scored preset; the defaults under the study's own spec."""
    from neighbour_presets import BASELINE_SETTINGS, BEST_TWO_ENCODER_SETTINGS, QUERY_VARIANTS, V1_DEFAULTS, V2_DEFAULTS

    from rsrt_utils.captioning.neighbour import DEFAULT_SETTINGS

    presets = {"baseline": (BASELINE_SETTINGS, QUERY_VARIANTS["baseline"]),
               "tuned_defaults": (DEFAULT_SETTINGS, study_spec.query_variants),
               "best_two_encoders": (BEST_TWO_ENCODER_SETTINGS, QUERY_VARIANTS["best_two_encoders"]),
               "v2_defaults": (V2_DEFAULTS, QUERY_VARIANTS["v2_defaults"]),
               "previous_defaults": (V1_DEFAULTS, QUERY_VARIANTS["v1_defaults"])}  # key kept from the results' history
    return [(name, dict(settings), study_spec.replace(n_query_variants=n_query)) for name, (settings, n_query) in presets.items()
            if (only is None or name in only) and (name == "tuned_defaults" or settings != DEFAULT_SETTINGS)]


def run_retrieval(mirror: Path, cache_root: Path, threads: int | None = None, only=None) -> dict:
    """Each preset captioner on RSICD test / AID-150, scored under the default study's ScoringSpec."""
    from rsrt_utils.captioning.neighbour import NeighbourCaptioner, TrainBank
    from rsrt_utils.data import load_dataset
    from rsrt_utils.encoders import CachedEncoder, make_text_encoder
    from rsrt_utils.image_encoders.efficientnet import make_image_extractor
    from rsrt_utils.scoring import PrecomputedEncoder, ScoringSpec
    from rsrt_utils.study.params import load_params

    test = load_dataset("rsicd", split="test", root=mirror).with_images()
    train = load_dataset("rsicd", split="train", root=mirror).with_images()
    text_encoder = CachedEncoder(make_text_encoder("all-MiniLM-L6-v2"), cache_root=cache_root / "embeddings", progress=False)
    encoder = PrecomputedEncoder(text_encoder, test.captions)  # the queries are embedded once for every preset
    study_spec = ScoringSpec.from_params(load_params(STUDY_PARAMS))
    feature_root = cache_root / "image_features"
    banks = {}
    out = {"gallery": repr(test), "train_bank": repr(train), "ties": "random (shared default); pessimistic/optimistic beside",
           "scoring": f"ScoringSpec of {STUDY_PARAMS}, n_query_variants per preset"}
    for name, settings, spec in preset_runs(study_spec, only):
        model = settings["image_model"]
        if model not in banks:
            banks[model] = TrainBank.from_dataset(train, extractor=make_image_extractor(
                model, cache_root=feature_root, torch_threads=threads))
        extractor = make_image_extractor(model, tta=settings["tta"], cache_root=feature_root, progress=False,
                                         torch_threads=threads)
        captioner = NeighbourCaptioner(banks[model], text_encoder=text_encoder, image_extractor=extractor, **settings)
        out[name] = evaluate_captioner(captioner, test, encoder, spec)
        print(name, out[name]["ties"], out[name]["mR"], out[name]["ci95"]["mR"],
              *(f"{key} {value}" for key, value in out[name].items() if key.startswith("mR_ties_")),
              "tie-exact", out[name]["tie_exact_scoring"]["mR"], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--skip-cold", action="store_true", help="keep the feature cache; time only the cached rerun")
    parser.add_argument("--only", choices=("features", "retrieval"), default=None)
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=None,
                        help="score only these presets (a reduced run: write it elsewhere with --out)")
    parser.add_argument("--out", type=Path, default=RESULT_PATH, help="result file (default: the committed one)")
    args = parser.parse_args()
    if args.runs and args.out.resolve() == RESULT_PATH:
        parser.error(f"--runs is a reduced run: pass --out FILE so that it does not overwrite {RESULT_PATH}")
    apply_common_arguments(args)
    payload = json.loads(args.out.read_text()) if args.out.exists() else {}
    payload["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    payload["note"] = ("AID-150 pixels (150x150) stand in for RSICD's: a faithful proxy, not the exact benchmark. "
                       "The neighbour captioner uses in-domain train captions; not zero-shot.")
    if args.only in (None, "features"):
        payload["feature_extraction"] = time_feature_extraction(Path(args.mirror), args.cache, args.skip_cold)
        print(json.dumps(payload["feature_extraction"], indent=2), flush=True)
        write_json_atomic(payload, args.out)
    elif "feature_extraction" in payload:
        payload["feature_extraction"]["note"] = (
            "not re-run with the latest retrieval figures (--only retrieval, to avoid recomputing the cache); the cold "
            "and cached figures are from the earlier run, measured while the machine was under other load")
    if args.only in (None, "retrieval"):
        payload["retrieval"] = run_retrieval(Path(args.mirror), args.cache, args.threads, args.runs)
        write_json_atomic(payload, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
