"""The book's results chapters, one per track, each made from its results files with the command that reproduces it
and the machine it was measured on: the neighbour captioner, the real VLM corpora, the quality chapter, scale-out and
the index. Nothing here is typed: a chapter is tables of the files' own figures around a sentence of what they hold."""

from __future__ import annotations

import pandas as pd

from .findings import (
    COMMANDS,
    CORPORA,
    DEFAULT_RUN,
    INDEX_REAL,
    NEIGHBOUR_TUNING,
    OVERLAP,
    QUALITY,
    RESULTS,
    SCALEOUT,
    load,
    machine_of,
    markdown_table,
)


def _recalls(record: dict) -> dict:
    return {**{f"T2I {k}": v for k, v in record["t2i"].items()}, **{f"I2T {k}": v for k, v in record["i2t"].items()}}


def _interval(ci) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _provenance(*names: str, results=RESULTS) -> str:
    return "\n".join(f"- `benchmarks/results/{name}`: reproduce with `{COMMANDS[name]}`; measured on "
                     f"{machine_of(load(name, results))}." for name in names)


def neighbour(results=RESULTS) -> str:
    """The offline default run and how its captioner's settings were chosen."""
    run, tuning = load(DEFAULT_RUN, results), load(NEIGHBOUR_TUNING, results)
    table = pd.DataFrame([{"run": run["run_name"], "images": run["n_images"], **_recalls(run), "mR": run["mR"],
                           "95 % CI (images)": _interval(run["ci95"]["mR"]),
                           "pessimistic / optimistic ties": f"{run['mR_ties_pessimistic']:.2f} / {run['mR_ties_optimistic']:.2f}"}])
    chosen = pd.DataFrame([{"setting": k, "chosen": v} for k, v in tuning["chosen"].items()])
    return f"""# The neighbour captioner (offline; uses train captions)

{run['coverage']}; {run['label']}.

{markdown_table(table)}

Its settings were chosen on validation splits held out from RSICD train (never the test split); the choice, at a mean
validation mR of {tuning['chosen_row']['mR']}:

{markdown_table(chosen)}

{_provenance(DEFAULT_RUN, NEIGHBOUR_TUNING, results=results)}
"""


def vlm_corpora(results=RESULTS) -> str:
    """The paper's pipeline on the published LLaVA / Qwen-VL descriptions: corpora x encoders, and fusion."""
    record = load(CORPORA, results)
    rows = [{"dataset": r["dataset"].upper(), "corpus": r["corpus"], "encoder": r["encoder"], **_recalls(r), "mR": r["mR"],
             "95 % CI": _interval(r["ci95"])} for r in record["retrieval"]
            if r.get("granularity") == "paragraph" and r.get("pooling") == "max"]
    fusion = [{"corpus": r["corpus"], "setting": r["setting"], "mR": r["mR"], "95 % CI": _interval((r["ci_low"], r["ci_high"]))}
              for r in record["fusion"]["rows"]]
    return f"""# The published VLM descriptions (zero-shot)

One free-form paragraph per test image by LLaVA and by Qwen-VL (not GPT-4.1, not five structured variants); the
human test captions as text queries; {record['selection']}.

{markdown_table(pd.DataFrame(rows))}

Fused with the neighbour captioner on the RSICD images both cover ({record['fusion']['label']} for the fused rows):

{markdown_table(pd.DataFrame(fusion))}

{_provenance(CORPORA, results=results)}
"""


def quality(results=RESULTS) -> str:
    """The quality chapter: each step chosen on the other dataset (both mR conventions), the selection's own
    uncertainty, the shared-scene lists, the larger bank lever and what the image-to-text bank needs."""
    from .quality import bank_lever_table, direction_mean, lists_table, selection_table

    record, overlap = load(QUALITY, results), load(OVERLAP, results)
    sections = []
    for dataset, track in record["tracks"]["zero-shot"].items():
        steps = pd.DataFrame([{"step": s["step"], **_recalls(s), "T2I mean": direction_mean(s, "t2i"),
                               "I2T mean": direction_mean(s, "i2t"),
                               "mR": s["mR"], "95 % CI": _interval(s["ci95"])} for s in track["steps"]])
        sections.append(f"## {dataset.upper()}, settings chosen on {track['chosen_on'].upper()}\n\n{markdown_table(steps)}")
    bank = pd.DataFrame([{"dataset": d.upper(), "bank": r["bank"], "β_c": r["beta_c"], "mR": r["mR"]}
                         for d, part in record["bank_ablation"].items() for r in part["rows"]])
    return f"""# Retrieval quality without training

Every setting is chosen on one dataset and reported on the other; the choosing dataset leaves out the scenes the two
test splits share ({overlap['n_pairs']} pairs by the rule in `{OVERLAP}`: {overlap['rule']}). `T2I mean` and `I2T mean`
are each direction's mean of R@1/5/10 (the convention of the method's released code); mR is the mean of all six.
A quoted figure is a point: a comparison with it ignores its own sampling error.

{chr(10).join(sections)}

## The selection's own uncertainty

The choosing dataset's images resampled 1,000 times, the grid re-ranked each time, the pick read on the reported
dataset: how often the pick recurs, and what the selection procedure (not the one pick) can be expected to give.

{markdown_table(selection_table(record))}

## The pick with each shared-scene list

{markdown_table(lists_table(record))}

## A larger same-VLM bank, and the transductive one (never a headline)

{markdown_table(bank_lever_table(record))}

## The image-to-text bank

{markdown_table(bank)}

{_provenance(QUALITY, OVERLAP, results=results)}
"""


def scaleout(results=RESULTS) -> str:
    """Captioning and embedding on a Ray cluster against the local runner."""
    record = load(SCALEOUT, results)
    captioning = record["captioning"]
    runs = captioning["node_environments"]["rsrt[ray]"]["runs"]
    table = pd.DataFrame([{"run": name, **{k: v for k, v in run.items() if k in ("seconds", "images_per_s", "ok", "requests")}}
                          for name, run in runs.items()])
    embedding = record["embedding"]
    embed = pd.DataFrame([{"where": name, **embedding[name]} for name in ("local", "ray_1actor", "ray_2actors")])
    return f"""# Scale-out on a Ray cluster

{captioning['images']} images against local OpenAI-protocol servers ({captioning['latency_s']} s a call), on
{captioning['machine']} (`{captioning['command']}`, {captioning['measured']}):

{markdown_table(table)}

Embedding {embedding['texts']} texts (`{embedding['command']}`):

{markdown_table(embed)}

{_provenance(SCALEOUT, results=results)}
"""


def index(results=RESULTS) -> str:
    """Exact and HNSW search on real description vectors."""
    record = load(INDEX_REAL, results)
    return f"""# The vector index

{record['n_vectors']} real description vectors ({record['collection']}, {record['encoder']}), {record['queries']}:

{markdown_table(pd.DataFrame(record['rows']))}

{_provenance(INDEX_REAL, results=results)}
"""


CHAPTERS = {"neighbour": neighbour, "vlm-corpora": vlm_corpora, "quality": quality, "scaleout": scaleout, "index": index}
