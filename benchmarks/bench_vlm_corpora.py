"""Benchmark: the paper's text-to-text method on the published VLM corpora (LLaVA, Qwen-VL), both test splits.

Usage:  python benchmarks/bench_vlm_corpora.py [--only retrieval|fusion|wall] [--encoders SPEC ... --out FILE]

1. retrieval: for RSITMD (452 images) and RSICD (1093), for LLaVA, Qwen-VL and both combined (the image's
   variants = the union of the two descriptions), every offline text encoder at the params files' settings
   (whole paragraph, max pooling; image->text query = the image's own description(s)); with the default
   encoder also the granularity rows (paragraph mean-pooled; sentences as variants, max- and mean-pooled).
2. fusion (RSICD only): each VLM ranking fused with the neighbour captioner's ranking of the default run
   (params/default.yaml must have run: its outputs/<run>/scores.npz) on the 1027 images both cover, by
   reciprocal rank fusion (k = 60) and by the z-scored score sum (equal weights): fixed in advance, nothing tuned.
   The neighbour captioner uses in-domain train captions, so the fused rows are not zero-shot.
3. wall: `rsrt run params/vlm_qwenvl_rsitmd.yaml`, cold (empty cache and outputs) and warm (the same again).
Every configuration evaluated on a test split is listed in the results file; none of them chooses anything.
Standard protocol through the shared scoring path (rsrt_utils.scoring, the run's ScoringSpec), random ties, 95 %
image-level bootstrap intervals (1000 resamples). Writes benchmarks/results/vlm_corpora.json (a reduced run: --out FILE).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from rsrt_utils.fileutil import write_json_atomic  # noqa: E402

RESULT_PATH = HERE / "results" / "vlm_corpora.json"
CORPORA = {"llava": "params/vlm_llava_{}.yaml", "qwenvl": "params/vlm_qwenvl_{}.yaml", "both": "params/vlm_both_{}.yaml"}
DATASETS = ("rsitmd", "rsicd")
NEIGHBOUR_RUN = "default-rsicd-aid150-neighbour"
GRANULARITY_ROWS = (("paragraph", "mean"), ("sentences", "max"), ("sentences", "mean"))


def _row(result: dict, **config) -> dict:
    return {**config, "t2i": result["t2i"], "i2t": result["i2t"], "mR": result["mR"], "ci95": result["ci95"]["mR"],
            "mR_ties_pessimistic": result.get("mR_ties_pessimistic"), "mR_ties_optimistic": result.get("mR_ties_optimistic")}


def _open(corpus: str, dataset: str, work: Path, **overrides):
    from rsrt_utils.study import pipeline as rs

    run = rs.open_run(CORPORA[corpus].format(dataset), str(work / f"{corpus}-{dataset}"), overrides)
    data = rs.prepare_dataset(run)
    rs.build_corpus(run, data, progress=False)
    return run, data


def retrieval_rows(encoders: list[str], work: Path) -> list[dict]:
    """Every corpus x dataset x encoder at the shipped settings, and the granularity rows with the default encoder,
    each through the shared scoring path (score_and_evaluate) under the run's ScoringSpec."""
    from rsrt_utils.scoring import score_and_evaluate
    from rsrt_utils.study import pipeline as rs

    rows = []
    for dataset in DATASETS:
        for corpus in CORPORA:
            run, data = _open(corpus, dataset, work)
            spec = rs.scoring_spec(run).replace(granularity="paragraph", pooling="max")
            variants, missing = rs.gallery_variants(run, data)
            for encoder_spec in encoders:
                started = time.perf_counter()
                encoder = rs.text_encoder(run, encoder_spec)
                result = score_and_evaluate(data, variants, encoder, spec)
                rows.append(_row(result, dataset=dataset, corpus=corpus, encoder=encoder.name, granularity="paragraph",
                                 pooling="max", n_images=data.n_images, missing=len(missing),
                                 seconds=round(time.perf_counter() - started, 1)))
                print(f"{dataset} {corpus:6s} {encoder.name:32s} paragraph/max  mR {result['mR']:6.2f} {result['ci95']['mR']}")
            encoder = rs.text_encoder(run)
            for granularity, pooling in GRANULARITY_ROWS:
                result = score_and_evaluate(data, variants, encoder, spec.replace(granularity=granularity, pooling=pooling))
                rows.append(_row(result, dataset=dataset, corpus=corpus, encoder=encoder.name, granularity=granularity,
                                 pooling=pooling, n_images=data.n_images))
                print(f"{dataset} {corpus:6s} {encoder.name:32s} {granularity}/{pooling}  mR {result['mR']:6.2f}")
    return rows


def fusion_rows(work: Path) -> dict:
    """RSICD: each VLM run fused with the neighbour captioner's run on the images both cover."""
    from rsrt_utils.paths import outputs_dir
    from rsrt_utils.study import ablations
    from rsrt_utils.study import pipeline as rs

    if not (outputs_dir() / NEIGHBOUR_RUN / "scores.npz").is_file():
        return {"skipped": f"{outputs_dir() / NEIGHBOUR_RUN}/scores.npz is missing: run `rsrt run params/default.yaml` first"}
    rows = []
    for corpus in CORPORA:
        run, data = _open(corpus, "rsicd", work, **{"ablations.fuse_with": [NEIGHBOUR_RUN]})
        rs.score_run(run, data)
        table = ablations.ablate_fusion(run, data)
        for record in table.to_dict(orient="records"):
            rows.append({"dataset": "rsicd", "corpus": corpus, **record})
            print(f"rsicd {corpus:6s} {record['setting']:60s} mR {record['mR']:6.2f} [{record['ci_low']}, {record['ci_high']}]")
    return {"neighbour_run": NEIGHBOUR_RUN, "label": "uses in-domain train captions; not zero-shot", "rows": rows}


def wall_times() -> dict:
    """`rsrt run` of one VLM params file with empty caches (cold), then again (warm)."""
    out = {"params": "params/vlm_qwenvl_rsitmd.yaml"}
    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "RSRT_CACHE_DIR": f"{root}/cache", "RSRT_OUTPUTS_DIR": f"{root}/outputs",
               "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
        for name in ("cold", "warm"):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rsrt_utils", "run", out["params"], "--quiet"], cwd=HERE.parent,
                           env=env, check=True, capture_output=True)
            out[f"{name}_seconds"] = round(time.perf_counter() - started, 1)
            print(f"wall time {name}: {out[f'{name}_seconds']} s")
    out["note"] = "cold: empty embedding cache and outputs (the data store already filled); warm: the same command again"
    return out


def main(argv=None) -> None:
    from rsrt_utils.encoders import available_offline_encoders

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("retrieval", "fusion", "wall"), default=None)
    parser.add_argument("--encoders", nargs="+", default=None, help="encoder specs (default: every offline encoder)")
    parser.add_argument("--out", type=Path, default=RESULT_PATH, help="result file (default: the committed one)")
    args = parser.parse_args(argv)
    if args.encoders and args.out.resolve() == RESULT_PATH:
        parser.error(f"--encoders is a reduced run: pass --out FILE so that it does not overwrite {RESULT_PATH}")
    previous = json.loads(args.out.read_text()) if args.out.is_file() and args.only else {}
    result = {**previous, "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "protocol": "standard; random ties; 95 % image-level bootstrap (1000 resamples of images with their captions); gallery = VLM description(s); "
                          "t2i queries = human test captions; i2t query = the image's own description(s)",
              "source": "RayzedWang/Caption2CLIP@ed97c37669e59e10e5bd0255322263fdbefebdd5 (llmcaption/ret3)",
              "selection": "nothing is chosen on these figures: every configuration evaluated on a test split is listed"}
    with tempfile.TemporaryDirectory() as work:
        if args.only in (None, "retrieval"):
            result["retrieval"] = retrieval_rows(args.encoders or available_offline_encoders(large=True), Path(work))
        if args.only in (None, "fusion"):
            result["fusion"] = fusion_rows(Path(work))
    if args.only in (None, "wall"):
        result["wall_time"] = wall_times()
    write_json_atomic(result, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
