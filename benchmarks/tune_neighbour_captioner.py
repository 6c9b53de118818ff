"""Choose the neighbour captioner's settings on a validation split held out from TRAIN (never on test).

Usage:  python benchmarks/tune_neighbour_captioner.py [--mirror DIR] [--cache DIR] [--val-share 0.1] [--seed 0] [--threads N]

Procedure: RSICD train images with AID-150 pixels are split, seeded and stratified by scene class,
into a validation part (val-share of each class) and the rest. By default whole blocks of 8
consecutively numbered scenes are held out, as RSICD's test split holds out runs of consecutive
numbers: a random single-image split leaves each validation image's adjacent, near-duplicate AID
tiles in the bank and rewarded settings (strong similarity weighting) that did not transfer to test
(--split random reproduces that run, kept in neighbour_tuning_random_split.json). The rest is the neighbour bank; the
validation images are the gallery and their human captions the queries, scored with the standard
protocol (t2i: max over the n_variants consensus captions; i2t: max over the first n_query_captions,
against all validation captions; mR = mean of six recalls, shared metric code). n_variants is fixed
at 5 (the RSRT corpus schema requires exactly five variants per image). The grid covers the image
encoder (EfficientNet-Lite0, Lite2, Lite0+Lite2 concatenated), TTA on the query image (Lite0 only), k,
tau (None = unweighted), weighting the candidate itself, nearest_bonus (a bonus for the nearest
neighbour's own captions) and n_query_captions.
Ties are random (the shared metric default: the expected hit rate when exactly tied candidates are
put in a uniformly random order), which matters here because images often share an identical
variant text; every grid row also carries its pessimistic and optimistic mR, and the chosen and
baseline settings are reported under all three policies. Writes benchmarks/results/neighbour_tuning.json
with every grid point, the baseline (k=10, unweighted, 5/5, no TTA) and the chosen setting with its
95 % interval.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from neighbour_cli import add_common_arguments, apply_common_arguments  # noqa: E402
from rsrt_utils.fileutil import write_json_atomic  # noqa: E402

RESULT_PATH = HERE / "results" / "neighbour_tuning.json"
GRID = {
    "image_model": ["efficientnet-lite0", "efficientnet-lite2", "efficientnet-lite0+efficientnet-lite2"],
    "tta": [False, True],
    "k": [10, 30, 50],
    "tau": [None, 0.03, 0.1],
    "weight_candidates": [False, True],
    "nearest_bonus": [0.0, 0.05, 0.1, 0.2],
}
# Left out of the product to keep the run short: TTA for Lite2 and Lite0+Lite2 (Lite2 TTA features are not cached), and
# weight_candidates together with nearest_bonus > 0 (both favour the nearest neighbour's own captions).
N_VARIANTS = [5]  # fixed: the RSRT corpus schema requires exactly five variants per image
N_QUERY_CAPTIONS = [1, 2, 3, 5]
OTHER_TIES = ("pessimistic", "optimistic")


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


def direction_hits(scores: np.ndarray, relevant: np.ndarray, ties: str | None = None) -> np.ndarray:
    """(n_queries, 3) hits at 1/5/10 with the shared metric code (ties=None: its default, random)."""
    from rsrt_utils.metrics import DEFAULT_TIES, hit_rates
    return hit_rates(scores, relevant, ties=ties or DEFAULT_TIES)


def pooled_scores(query_vectors: np.ndarray, caption_vectors: np.ndarray, chosen: list[list[int]], n: int,
                  exact_ties: bool = False) -> np.ndarray:
    """(n_queries, n_images) max similarity over each image's first n chosen captions.

    exact_ties=False: the shared path (retrieval.pooled_similarity), as score_gallery computes it.
    exact_ties=True: identical texts get bit-identical scores (see tie_exact_pooled).
    """
    from rsrt_utils.retrieval import VariantGallery, pooled_similarity
    picks = [row[:n] for row in chosen]
    flat = np.concatenate([np.asarray(p, dtype=np.int64) for p in picks])
    owner = np.repeat(np.arange(len(picks)), [len(p) for p in picks])
    if exact_ties:
        return tie_exact_pooled(query_vectors, caption_vectors[flat], owner, len(picks))
    return pooled_similarity(query_vectors, VariantGallery.from_groups(caption_vectors[flat], owner, len(picks)), "max")


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


def grid_metrics(t2i_scores: dict, i2t_scores: dict, relevant: np.ndarray) -> tuple[dict, dict]:
    """{ties: {n: mean hits}} for both directions, for the default policy (key None) and the other two."""
    t2i, i2t = {}, {}
    for ties in (None,) + OTHER_TIES:
        t2i[ties] = {n: direction_hits(scores, relevant, ties).mean(axis=0) for n, scores in t2i_scores.items()}
        i2t[ties] = {n: direction_hits(np.ascontiguousarray(scores.T), relevant.T, ties).mean(axis=0)
                     for n, scores in i2t_scores.items()}
    return t2i, i2t


def evaluate_grid_point(query_features, bank, bank_vectors, val_vectors, relevant, point: dict) -> list[dict]:
    """Every (n_variants, n_query_captions) pair for one consensus setting.

    "mR", "t2i", "i2t": random ties (the shared default, used for selection) on the shared scoring path, so a
    row equals evaluate_scores on score_gallery-style matrices; "mR_ties_<policy>": the other policies;
    "tie_exact": the same three mR with identical texts scored bit-identically (tie_exact_pooled).
    """
    from rsrt_utils.captioning.neighbour import consensus_captions
    width = max(N_VARIANTS + N_QUERY_CAPTIONS)
    chosen = consensus_captions(query_features, bank, bank_vectors, point["k"], point["tau"], width, point["weight_candidates"],
                                point["nearest_bonus"])
    metrics = {}
    for exact in (False, True):
        scores = {n: pooled_scores(val_vectors, bank_vectors, chosen, n, exact) for n in set(N_VARIANTS + N_QUERY_CAPTIONS)}
        metrics[exact] = grid_metrics({n: scores[n] for n in N_VARIANTS}, {n: scores[n] for n in N_QUERY_CAPTIONS}, relevant)

    def m_r(exact, ties, nv, nq):
        t2i, i2t = metrics[exact]
        return round(float((t2i[ties][nv].sum() + i2t[ties][nq].sum()) / 6 * 100), 2)

    rows = []
    for nv, nq in itertools.product(N_VARIANTS, N_QUERY_CAPTIONS):
        t2i, i2t = metrics[False]
        rows.append({**point, "n_variants": nv, "n_query_captions": nq, "mR": m_r(False, None, nv, nq),
                     **{f"mR_ties_{ties}": m_r(False, ties, nv, nq) for ties in OTHER_TIES},
                     "t2i": [round(float(x) * 100, 2) for x in t2i[None][nv]],
                     "i2t": [round(float(x) * 100, 2) for x in i2t[None][nq]],
                     "tie_exact": {"mR": m_r(True, None, nv, nq),
                                   **{f"mR_ties_{ties}": m_r(True, ties, nv, nq) for ties in OTHER_TIES}}})
    return rows


def final_validation_figure(captioner_settings: dict, query_features, bank, bank_vectors, val_vectors, val,
                            ties: str | None = None, exact_ties: bool = False) -> dict:
    """A setting on validation through evaluate_scores (with its bootstrap interval); ties=None: the shared default."""
    from rsrt_utils.captioning.neighbour import consensus_captions
    from rsrt_utils.metrics import evaluate_scores
    s = captioner_settings
    chosen = consensus_captions(query_features, bank, bank_vectors, s["k"], s["tau"], s["n_variants"], s["weight_candidates"],
                                s["nearest_bonus"])
    t2i = pooled_scores(val_vectors, bank_vectors, chosen, s["n_variants"], exact_ties)
    i2t = np.ascontiguousarray(pooled_scores(val_vectors, bank_vectors, chosen, s["n_query_captions"], exact_ties).T)
    result = evaluate_scores(t2i, i2t, val.caption_image_index) if ties is None else \
        evaluate_scores(t2i, i2t, val.caption_image_index, ties=ties)
    return {key: result[key] for key in ("n_images", "n_queries", "t2i", "i2t", "mR", "ci95", "ties")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--val-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("blocks", "random"), default="blocks",
                        help="hold out blocks of consecutively numbered scenes (default, like RSICD test) or single images")
    parser.add_argument("--block", type=int, default=8, help="scenes per held-out block")
    parser.add_argument("--out", type=Path, default=RESULT_PATH)
    args = parser.parse_args()
    apply_common_arguments(args)

    from rsrt_utils.captioning.neighbour import BASELINE_SETTINGS, TrainBank
    from rsrt_utils.data import load_dataset
    from rsrt_utils.encoders import CachedEncoder, make_text_encoder
    from rsrt_utils.image_features import ImageFeatureExtractor, make_image_extractor
    from rsrt_utils.metrics import relevance_t2i

    started = time.perf_counter()
    train = load_dataset("rsicd", split="train", root=args.mirror).with_images()
    encoder = CachedEncoder(make_text_encoder("all-MiniLM-L6-v2"), cache_root=args.cache / "embeddings")
    feature_root = args.cache / "image_features"
    full_banks = {model: TrainBank.from_dataset(train, extractor=make_image_extractor(
        model, cache_root=feature_root, torch_threads=args.threads)) for model in GRID["image_model"]}
    image_ids = None if args.split == "random" else [im.image_id for im in train.images]
    val_idx, rest_idx = stratified_validation_split(train.image_classes, args.val_share, args.seed, image_ids, args.block)
    banks = {model: full.subset(rest_idx, name="rsicd-train-minus-val") for model, full in full_banks.items()}
    bank = banks[BASELINE_SETTINGS["image_model"]]
    val = train.subset(val_idx, note="validation images held out from train")
    bank_vectors = bank.caption_vectors(encoder)
    val_vectors = encoder.encode(list(val.captions))
    relevant = relevance_t2i(val.caption_image_index, val.n_images)
    features = {(model, False): full.features[val_idx] for model, full in full_banks.items()}
    features[(BASELINE_SETTINGS["image_model"], True)] = ImageFeatureExtractor(
        model=BASELINE_SETTINGS["image_model"], tta=True, cache_root=feature_root,
        torch_threads=args.threads).extract([im.image_path for im in val.images])

    rows = []
    for model, tta, k, tau, weight_candidates, nearest_bonus in itertools.product(*GRID.values()):
        if tau is None and weight_candidates:
            continue  # unweighted: all weights are 1, so weighting the candidate changes nothing
        if (model, tta) not in features or (weight_candidates and nearest_bonus > 0):
            continue  # left out (see GRID)
        point = {"image_model": model, "tta": tta, "k": k, "tau": tau, "weight_candidates": weight_candidates,
                 "nearest_bonus": nearest_bonus}
        point_rows = evaluate_grid_point(features[(model, tta)], banks[model], bank_vectors, val_vectors, relevant, point)
        rows.extend(point_rows)
        best = max(point_rows, key=lambda r: r["mR"])
        print(f"{point} best {best['mR']} (nv={best['n_variants']}, nq={best['n_query_captions']})", flush=True)

    chosen = max(rows, key=lambda r: r["mR"])  # first best in grid order on an exact tie
    chosen_settings = {key: chosen[key] for key in ("k", "tau", "weight_candidates", "n_variants", "n_query_captions", "tta",
                                                    "nearest_bonus", "image_model")}
    base_features = features[(BASELINE_SETTINGS["image_model"], False)]
    chosen_features, chosen_bank = features[(chosen["image_model"], chosen["tta"])], banks[chosen["image_model"]]
    baseline = next(r for r in rows if all(r[key] == BASELINE_SETTINGS[key] for key in BASELINE_SETTINGS))
    tie_best = max(rows, key=lambda r: r["tie_exact"]["mR"])
    payload = {
        "procedure": __doc__.strip().splitlines()[0] + " " + " ".join(__doc__.strip().splitlines()[4:]),
        "split": {"dataset": repr(train), "val_share": args.val_share, "seed": args.seed, "stratified_by": "scene class",
                  "held_out_unit": f"blocks of {args.block} consecutively numbered scenes" if args.split == "blocks" else "single images",
                  "n_val_images": int(len(val_idx)), "n_val_captions": len(val.captions), "n_bank_images": int(len(rest_idx))},
        "text_encoder": encoder.name,
        "image_encoder": {model: full.feature_identity for model, full in full_banks.items()},
        "grid": {**{key: value for key, value in GRID.items()}, "n_variants": N_VARIANTS, "n_query_captions": N_QUERY_CAPTIONS},
        "baseline_validation": baseline,
        "chosen": chosen_settings,
        "chosen_validation": final_validation_figure(chosen_settings, chosen_features, chosen_bank, bank_vectors, val_vectors, val),
        **{f"chosen_validation_{ties}_ties": final_validation_figure(chosen_settings, chosen_features, chosen_bank, bank_vectors,
                                                                     val_vectors, val, ties=ties) for ties in OTHER_TIES},
        "baseline_validation_full": final_validation_figure(BASELINE_SETTINGS, base_features, bank, bank_vectors, val_vectors, val),
        **{f"baseline_validation_{ties}_ties": final_validation_figure(BASELINE_SETTINGS, base_features, bank, bank_vectors,
                                                                       val_vectors, val, ties=ties) for ties in OTHER_TIES},
        "ablations_from_baseline": ablations(rows, chosen_settings),
        "top10": sorted(rows, key=lambda r: -r["mR"])[:10],
        "tie_exact_scoring": {
            "note": ("Diagnostic: the shared scoring path (retrieval.pooled_similarity, a matrix product) gives the same "
                     "text pair values that differ by ~1e-7 at different positions, so identical texts are not always "
                     "exact ties; here identical vectors share one product (tie_exact_pooled). Selection uses the shared path."),
            "chosen_by_tie_exact_mR": {key: tie_best[key] for key in chosen_settings},
            "top10": sorted(rows, key=lambda r: -r["tie_exact"]["mR"])[:10],
            "chosen_validation": final_validation_figure(chosen_settings, chosen_features, chosen_bank, bank_vectors,
                                                         val_vectors, val, exact_ties=True),
            "baseline_validation": final_validation_figure(BASELINE_SETTINGS, base_features, bank, bank_vectors,
                                                           val_vectors, val, exact_ties=True),
        },
        "all_rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json_atomic(payload, args.out)
    for name in ("chosen", "baseline"):
        full = payload[f"{name}_validation" if name == "chosen" else "baseline_validation_full"]
        print(name, chosen_settings if name == "chosen" else dict(BASELINE_SETTINGS), full["ties"], full["mR"], full["ci95"]["mR"],
              *(f"{ties} {payload[f'{name}_validation_{ties}_ties']['mR']}" for ties in OTHER_TIES))
    exact = payload["tie_exact_scoring"]
    print("tie-exact scoring: chosen", exact["chosen_validation"]["mR"], "baseline", exact["baseline_validation"]["mR"],
          "best setting", exact["chosen_by_tie_exact_mR"], tie_best["tie_exact"]["mR"])


def ablations(rows: list[dict], chosen: dict) -> dict:
    """Validation mR of the chosen setting with one factor reverted to the baseline at a time (what helped)."""
    from rsrt_utils.captioning.neighbour import BASELINE_SETTINGS

    def lookup(settings: dict) -> float | None:
        for r in rows:
            if all(r[key] == settings[key] for key in settings):
                return r["mR"]
        return None

    out = {"chosen": lookup(chosen), "baseline": lookup(dict(BASELINE_SETTINGS))}
    for factor in ("image_model", "tta", "k", "n_variants", "n_query_captions", "nearest_bonus"):
        if chosen[factor] != BASELINE_SETTINGS[factor]:
            out[f"chosen but {factor}={BASELINE_SETTINGS[factor]}"] = lookup({**chosen, factor: BASELINE_SETTINGS[factor]})
    if chosen["tau"] is not None:
        out["chosen but unweighted (tau=None)"] = lookup({**chosen, "tau": None, "weight_candidates": False})
        out[f"chosen but weight_candidates={not chosen['weight_candidates']}"] = lookup(
            {**chosen, "weight_candidates": not chosen["weight_candidates"]})
    return out


if __name__ == "__main__":
    main()
