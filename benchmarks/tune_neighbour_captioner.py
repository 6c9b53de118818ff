"""Choose the neighbour captioner's settings on validation splits held out from TRAIN (never on test).

Usage:  python benchmarks/tune_neighbour_captioner.py [--mirror DIR] [--cache DIR] [--seeds 0 1 2] [--val-share 0.15]
        [--min-distinct 2] [--threads N] [--reference-only --out FILE]

Procedure (v2, "test-like validation"): RSICD train images with AID-150 pixels are split, seeded and
stratified by scene class; whole blocks of 8 consecutively numbered scenes are held out (RSICD's test
split holds out runs of consecutive numbers, and adjacent AID tiles are near-duplicates). The gallery
is the held-out images with at least `min-distinct` distinct captions: RSICD's test images almost all
have 2-5 distinct captions (1025 of 1027), while 54 % of train images carry one sentence five times;
a gallery of those makes queries that occur verbatim in the bank (42 % of validation captions against
11 % of test captions in v1) and rewarded settings that did not transfer to test. Held-out images
with fewer distinct captions leave the bank but are not queried. The rest of train is the bank (with
its scene labels, for the class vote). Every setting is scored on several seeded splits and ranked
by the mean mR over seeds (random ties: the shared default), through the shared scoring path
(rsrt_utils.scoring.score_texts / evaluate: gallery texts = the variants' `caption` field, max over 5 variants
for text->image, over the first n_query_variants for image->text, mean of six recalls).
The grid covers what the v1 selection did not: the image features (EfficientNet-Lite0 head; Lite0
multilayer; multilayer with TTA on the gallery images), the class vote (neighbours restricted to the
scene class voted by the 10 nearest train images; train labels only) and the paragraph variants
(paragraph_size 8), with the v1 consensus settings fixed (k 10, tau 0.03, nearest_bonus 0.1); then
coordinate ascent, one factor at a time (REFINE, up to REFINE_ROUNDS rounds). Stage 3 (v3) adds PCA
whitening of the image features, fitted on each split's bank (WHITEN_GRID: whiten_dim x tau around the
stage-2 choice), and up to FINAL_ROUNDS more coordinate rounds (FINAL_REFINE) from the best row.
Writes benchmarks/results/neighbour_tuning.json (v1's grid and split are kept in neighbour_tuning_v1.json,
v2's run, without whitening and with shorter refine ranges, in neighbour_tuning_v2.json).
`--reference-only` scores only the reference rows (v1 defaults, baseline): a reduced run, written to `--out`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from neighbour_cli import add_common_arguments, apply_common_arguments  # noqa: E402
from neighbour_presets import BASELINE_SETTINGS, V1_DEFAULTS  # noqa: E402

from rsrt_utils.fileutil import write_json_atomic  # noqa: E402

RESULT_PATH = HERE / "results" / "neighbour_tuning.json"


def image_number(image_id: str) -> int:
    """The scene number in an AID/RSICD file name ('airport_348.jpg' -> 348); -1 when there is none."""
    digits = "".join(ch if ch.isdigit() else " " for ch in Path(image_id).stem).split()
    return int(digits[-1]) if digits else -1


def stratified_validation_split(classes: list[str], share: float, seed: int, image_ids: list[str] | None = None,
                                block: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(validation indices, remaining indices): about `share` of each class, seeded.

    With image_ids, whole blocks of `block` consecutively numbered scenes are held out (as RSICD's
    test split holds out runs of consecutive numbers), so a validation image's near-duplicate
    neighbours (adjacent AID tiles) mostly leave the bank with it; without, images are drawn singly.
    """
    if not 0 < share < 1:
        raise ValueError(f"val share must be in (0, 1), got {share}")
    rng = np.random.default_rng(seed)
    classes = np.asarray(classes)
    val = []
    for name in sorted(set(classes)):
        members = np.flatnonzero(classes == name)
        if image_ids is not None:
            members = members[np.argsort([image_number(image_ids[i]) for i in members], kind="stable")]
            groups = [members[i:i + block] for i in range(0, len(members), block)]
        else:
            groups = [members[i:i + 1] for i in range(len(members))]
        n_val = max(1, int(round(share * len(groups))))
        for g in rng.choice(len(groups), size=n_val, replace=False):
            val.extend(groups[g].tolist())
    val = np.sort(np.asarray(val, dtype=np.int64))
    rest = np.setdiff1d(np.arange(len(classes)), val)
    return val, rest


def tie_exact_pooled(queries: np.ndarray, variant_vectors: np.ndarray, owner: np.ndarray, n_images: int) -> np.ndarray:
    """(n_queries, n_images) max cosine over each image's variants, computed once per distinct (query, variant) vector pair.

    A matrix product gives the same text pair slightly different values (~1e-7) at different positions, which
    turns exact ties (identical texts) into arbitrary orders; here identical vectors share one product, so
    identical texts tie exactly and the tie policy decides their order, as it is meant to.
    """
    queries = np.asarray(queries, dtype=np.float32)
    variant_vectors = np.asarray(variant_vectors, dtype=np.float32)
    owner = np.asarray(owner, dtype=np.int64)
    unique_q, q_inv = np.unique(queries, axis=0, return_inverse=True)
    unique_v, v_inv = np.unique(variant_vectors, axis=0, return_inverse=True)
    q_inv, v_inv = q_inv.reshape(-1), v_inv.reshape(-1)
    sims = unique_q @ unique_v.T
    counts = np.bincount(owner, minlength=n_images)
    width = max(int(counts.max()), 1) if counts.size else 1
    order = np.argsort(owner, kind="stable")
    slot = np.arange(len(owner)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[owner[order]]
    index = np.full((n_images, width), -1, dtype=np.int64)
    index[owner[order], slot] = v_inv[order]
    pooled = np.full((len(unique_q), n_images), -np.inf, dtype=np.float32)
    for j in range(width):
        column = index[:, j]
        valid = column >= 0
        pooled[:, valid] = np.maximum(pooled[:, valid], sims[:, column[valid]])
    return pooled[q_inv]


OTHER_TIES = ("pessimistic", "optimistic")
FEATURES = [("efficientnet-lite0-multilayer", False)]
GRID = {"class_vote_k": [0, 10], "paragraph_size": [0, 8], "k": [10, 20]}
FIXED = {"tau": 0.03, "nearest_bonus": 0.1, "n_variants": 5, "whiten_dim": 0}
# Stage 2: coordinate ascent from the best grid row: every value of one factor at a time; move to the best row
# if it improves the mean over seeds, repeat (at most REFINE_ROUNDS rounds).
REFINE = {"k": [5, 10, 15, 20], "paragraph_size": [5, 8, 12, 16, 20], "nearest_bonus": [0.0, 0.1, 0.2],
          "tau": [0.02, 0.03, 0.05], "class_vote_k": [5, 10, 20, 30, 40]}
REFINE_ROUNDS = 4
# Stage 3 (v3): PCA whitening of the image features (fitted on each bank) with the weighting temperature it interacts
# with (whitened cosines are spread differently), as a grid around the stage-2 choice; then one more coordinate round.
WHITEN_GRID = {"whiten_dim": [0, 256, 512], "tau": [0.03, 0.05, 0.08]}
FINAL_REFINE = {"class_vote_k": [20, 30, 40], "paragraph_size": [8, 12, 16], "k": [5, 10, 15], "tau": [0.05, 0.08, 0.12]}
FINAL_ROUNDS = 2
# Reference rows scored on the same splits: V1_DEFAULTS (Lite0 head features) and BASELINE_SETTINGS (neighbour_presets).
# Every setting is scored with image->text pooled over its first n variants, for each n here (ScoringSpec.n_query_variants).
N_QUERY_VARIANTS = [2, 5]


def distinct_caption_count(captions: list[str]) -> int:
    return len({normalised(c) for c in captions if c.strip()})


def test_like_split(train, share: float, seed: int, min_distinct: int, block: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(gallery indices, bank indices): held-out blocks, queried only where an image has >= min_distinct captions."""
    held_out, bank = stratified_validation_split(train.image_classes, share, seed, train.image_ids, block)
    captions = train.captions_by_image()
    gallery = np.asarray([i for i in held_out if distinct_caption_count(captions[i]) >= min_distinct], dtype=np.int64)
    return gallery, bank


def novel_queries(val, bank_captions: list[str]):
    """(dataset, kept image positions): validation captions found verbatim (case, trailing period ignored) among the
    bank's captions are dropped, and images left without any: test captions are rarely train captions (11 %),
    validation ones often are (30 %)."""
    from dataclasses import replace

    seen = {normalised(c) for c in bank_captions}
    keep = [q for q, c in enumerate(val.captions) if normalised(c) not in seen]
    kept = replace(val, captions=[val.captions[q] for q in keep], caption_image_index=val.caption_image_index[keep],
                   notes=val.notes + [f"dropped {len(val.captions) - len(keep)} captions found verbatim in the bank"])
    positions = sorted(set(kept.caption_image_index.tolist()))
    return kept.subset(positions, note="images with a novel caption"), np.asarray(positions, dtype=np.int64)


def normalised(caption: str) -> str:
    return caption.strip().lower().rstrip(" .")


_WHITENED: dict = {}


def whitened_banks(bank, dim: int):
    """neighbour.whitened_bank, fitted once per (bank, dim)."""
    from rsrt_utils.captioning.neighbour import whitened_bank

    key = (id(bank), dim)  # the banks live for the whole run (one per split and image model)
    if key not in _WHITENED:
        _WHITENED[key] = whitened_bank(bank, dim)
    return _WHITENED[key]


def score_setting(settings: dict, query_features, bank, bank_vectors, val, encoder) -> dict:
    """Validation metrics of one setting, for every n in N_QUERY_VARIANTS (random ties + the other policies)."""
    from rsrt_utils.captioning.neighbour import consensus_captions, paragraph_variants
    from rsrt_utils.scoring import PrecomputedEncoder, ScoringSpec, evaluate, image_texts, score_texts

    whitening, bank = whitened_banks(bank, settings.get("whiten_dim", 0))  # as the captioner does
    if whitening is not None:
        query_features = whitening.apply(query_features)
    width = max(settings["n_variants"], settings["paragraph_size"], max(N_QUERY_VARIANTS))
    chosen = consensus_captions(query_features, bank, bank_vectors, settings["k"], settings["tau"], width,
                                settings["nearest_bonus"], settings["class_vote_k"],
                                min_distinct=settings["n_variants"])  # as the captioner does
    variants = [paragraph_variants([bank.caption_texts[c] for c in row], settings["n_variants"], settings["paragraph_size"])
                for row in chosen]
    spec = ScoringSpec(n_variants=settings["n_variants"], n_boot=1)
    encoder = PrecomputedEncoder(encoder, [t for g in image_texts(variants, spec) for t in g] + list(val.captions))
    out = {}
    for nq in N_QUERY_VARIANTS:  # each n rescored from the same vectors
        nq_spec = spec.replace(n_query_variants=nq)
        result = evaluate(*score_texts(variants, val.captions, encoder, nq_spec), val.caption_image_index, nq_spec)
        out[nq] = {"mR": result["mR"], "t2i": result["t2i"], "i2t": result["i2t"],
                   **{key: value for key, value in result.items() if key.startswith("mR_ties_")}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--val-share", type=float, default=0.15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--min-distinct", type=int, default=2, help="gallery images need this many distinct captions")
    parser.add_argument("--queries", choices=("novel", "all"), default="novel",
                        help="novel: drop validation captions found verbatim in the bank (as test captions rarely are)")
    parser.add_argument("--out", type=Path, default=RESULT_PATH)
    parser.add_argument("--reference-only", action="store_true",
                        help="score only the reference rows (v1 defaults, baseline): a reduced run, needs --out FILE")
    args = parser.parse_args()
    if args.reference_only and args.out.resolve() == RESULT_PATH:
        parser.error(f"--reference-only is a reduced run: pass --out FILE so that it does not overwrite {RESULT_PATH}")
    apply_common_arguments(args)

    from rsrt_utils.captioning.neighbour import TrainBank
    from rsrt_utils.data import load_dataset
    from rsrt_utils.encoders import CachedEncoder, make_text_encoder
    from rsrt_utils.image_encoders.efficientnet import make_image_extractor

    started = time.perf_counter()
    train = load_dataset("rsicd", split="train", root=args.mirror).with_images()
    encoder = CachedEncoder(make_text_encoder("all-MiniLM-L6-v2"), cache_root=args.cache / "embeddings", progress=False)
    feature_root = args.cache / "image_features"
    paths = [im.image_path for im in train.images]
    models = {V1_DEFAULTS["image_model"], BASELINE_SETTINGS["image_model"]} | (set() if args.reference_only else {m for m, _ in FEATURES})
    plain = {model: make_image_extractor(model, cache_root=feature_root, torch_threads=args.threads).extract(paths)
             for model in sorted(models)}
    captions = train.captions_by_image()
    splits = {seed: test_like_split(train, args.val_share, seed, args.min_distinct) for seed in args.seeds}
    every_gallery = sorted(set(np.concatenate([g for g, _ in splits.values()]).tolist()))
    tta = {}
    for model in sorted({m for m, t in FEATURES if t and not args.reference_only}):
        extracted = make_image_extractor(model, tta=True, cache_root=feature_root, torch_threads=args.threads).extract(
            [paths[i] for i in every_gallery])
        tta[model] = dict(zip(every_gallery, extracted))

    points = [{**FIXED, "image_model": model, "tta": use_tta, "class_vote_k": vote, "paragraph_size": size, "k": k}
              for (model, use_tta), vote, size, k in itertools.product(FEATURES, *GRID.values())]
    points += [dict(V1_DEFAULTS), dict(BASELINE_SETTINGS)]
    split_info, prepared = {}, {}
    for seed, (gallery, rest) in splits.items():
        val = train.subset(gallery, note=f"test-like validation, seed {seed}")
        if args.queries == "novel":
            val, positions = novel_queries(val, [c for i in rest for c in captions[i]])
            gallery = gallery[positions]
        split_info[seed] = {"n_gallery_images": val.n_images, "n_queries": len(val.captions), "n_bank_images": int(len(rest))}
        banks = {model: TrainBank([train.image_ids[i] for i in rest], features[rest], [captions[i] for i in rest],
                                  name="rsicd-train-minus-val", classes=[train.image_classes[i] for i in rest])
                 for model, features in plain.items()}
        prepared[seed] = (gallery, val, banks, next(iter(banks.values())).caption_vectors(encoder))

    scored_points: dict = {}

    def score_everywhere(point: dict) -> dict:
        """{seed: {n_query_variants: metrics}} of one setting on every split (each setting scored once)."""
        key = tuple(sorted(point.items()))
        if key in scored_points:
            return scored_points[key]
        out = scored_points[key] = {}
        for seed, (gallery, val, banks, bank_vectors) in prepared.items():
            model = point["image_model"]
            query = np.stack([tta[model][g] for g in gallery]) if point["tta"] else plain[model][gallery]
            out[seed] = score_setting(point, query, banks[model], bank_vectors, val, encoder)
            print(f"seed {seed} {point} mR {max(r['mR'] for r in out[seed].values())}", flush=True)
        return out

    def summarise(point: dict, scored: dict, stage: str) -> list[dict]:
        rows = []
        for nq in N_QUERY_VARIANTS:
            seeds = [scored[seed][nq] for seed in args.seeds]
            rows.append({**point, "n_query_variants": nq, "stage": stage, "mR": round(float(np.mean([r["mR"] for r in seeds])), 2),
                         **{f"mR_ties_{t}": round(float(np.mean([r[f"mR_ties_{t}"] for r in seeds])), 2) for t in OTHER_TIES},
                         "mR_per_seed": [r["mR"] for r in seeds], "per_seed": seeds})
        return rows

    reference_rows = {name: summarise(point, score_everywhere(point), name) for name, point in zip(("v1_defaults", "baseline"), points[-2:])}
    if args.reference_only:
        write_json_atomic({"reference_only": True, "split": {"seeds": args.seeds, "per_seed": split_info},
                           "v1_default_rows": reference_rows["v1_defaults"], "baseline_rows": reference_rows["baseline"],
                           "seconds": round(time.perf_counter() - started, 1)}, args.out)
        print("v1 defaults", [r["mR"] for r in reference_rows["v1_defaults"]], "baseline", [r["mR"] for r in reference_rows["baseline"]])
        return
    grid_rows = [row for point in points[:-2] for row in summarise(point, score_everywhere(point), "grid")]
    best = max(grid_rows, key=lambda r: r["mR"])  # first best in grid order on an exact tie
    def coordinate_ascent(start: dict, factors: dict, rounds: int, label: str, earlier: list[dict]) -> tuple[dict, list[dict]]:
        """Every value of one factor at a time around `start`; move to the best row seen if it improves, repeat."""
        rows, current = [], start
        for round_number in range(1, rounds + 1):
            for factor, values in factors.items():
                for value in values:
                    point = {key: current[key] for key in points[0]} | {factor: value}
                    if point != {key: current[key] for key in points[0]}:
                        rows.extend(summarise(point, score_everywhere(point), f"{label} round {round_number}: {factor}"))
            leader = max(earlier + rows, key=lambda r: r["mR"])
            if leader["mR"] <= current["mR"]:
                break
            current = leader
        return current, rows

    stage2, refine_rows = coordinate_ascent(best, REFINE, REFINE_ROUNDS, "refine", grid_rows)
    whiten_rows = [row for values in itertools.product(*WHITEN_GRID.values())
                   for point in [{key: stage2[key] for key in points[0]} | dict(zip(WHITEN_GRID, values))]
                   for row in summarise(point, score_everywhere(point), "whitening grid")]
    stage3 = max([stage2] + whiten_rows, key=lambda r: r["mR"])
    chosen, final_rows = coordinate_ascent(stage3, FINAL_REFINE, FINAL_ROUNDS, "final", grid_rows + refine_rows + whiten_rows)
    refine_rows = refine_rows + whiten_rows + final_rows
    rows = grid_rows + refine_rows + reference_rows["v1_defaults"] + reference_rows["baseline"]
    rows = list({json.dumps({k: v for k, v in r.items() if k not in ("stage", "per_seed")}, sort_keys=True): r
                 for r in reversed(rows)}.values())[::-1]  # a setting revisited in a later round: its first row
    keys = ("k", "tau", "n_variants", "n_query_variants", "tta", "nearest_bonus", "image_model",
            "class_vote_k", "paragraph_size", "whiten_dim")
    payload = {
        "procedure": " ".join(__doc__.strip().splitlines()[4:]),
        "split": {"dataset": repr(train), "val_share": args.val_share, "seeds": args.seeds, "min_distinct_captions": args.min_distinct,
                  "queries": args.queries,
                  "held_out_unit": "blocks of 8 consecutively numbered scenes", "stratified_by": "scene class", "per_seed": split_info},
        "text_encoder": encoder.name, "fixed": FIXED, "grid": {"features": FEATURES, **GRID, "n_query_variants": N_QUERY_VARIANTS},
        "chosen": {key: chosen[key] for key in keys}, "chosen_row": chosen,
        "best_grid_row": best, "refine": REFINE, "refine_rounds": REFINE_ROUNDS, "stage2_choice": stage2,
        "whiten_grid": WHITEN_GRID, "stage3_choice": stage3, "final_refine": FINAL_REFINE, "final_rounds": FINAL_ROUNDS,
        "v1_default_rows": reference_rows["v1_defaults"],
        "baseline_rows": reference_rows["baseline"],
        "rows_by_mR": sorted(rows, key=lambda r: -r["mR"]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json_atomic(payload, args.out)
    print("chosen", payload["chosen"], chosen["mR"], chosen["mR_per_seed"])
    print("v1 defaults", [r["mR"] for r in payload["v1_default_rows"]], "baseline", [r["mR"] for r in payload["baseline_rows"]])


if __name__ == "__main__":
    main()
