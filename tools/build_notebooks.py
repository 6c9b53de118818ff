"""Maintainers: regenerate notebooks/*.ipynb (without outputs) from the cell lists below.

The notebooks are the study's user interface; keep each code cell a call or two into rsrt_utils.
Run `python tools/build_notebooks.py` after editing, and commit the notebooks.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

PARAMETERS = '''# Parameters (papermill injects new values below this cell). PARAMS_PATH: a file in params/.
PARAMS_PATH = "params/smoke.yaml"
RUN_DIR = ""  # empty: outputs/<run_name>/'''

SETUP = '''import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, display

from rsrt_utils.study import pipeline as rs
from rsrt_utils.study import figures

run = rs.open_run(PARAMS_PATH, RUN_DIR)
dataset = rs.prepare_dataset(run)
print(run.params.description or run.params.run_name)
print(dataset.coverage_note())'''

SHOW = "display(Image(filename=str({path})))"

QUALITY_CONCLUSION = """## What the study can say about the paper's claim

*Written from the figures of `benchmarks/results/vlm_quality.json` as committed; rerunning the benchmark may move them.*

- **Text-to-text retrieval over real VLM captions beats zero-shot CLIP ViT-B/32 without any training** once the
  pipeline is tuned honestly: RSITMD 26.36 [24.58, 28.13] (settings chosen on RSICD) against 24.19, RSICD 17.27
  [16.23, 18.25] (settings chosen on RSITMD) against 15.74; both lower bounds sit above the CLIP figures.
- The plain pipeline (one paragraph per VLM, MiniLM, max pooling) does not (22.42 / 13.87). What closes the gap:
  two encoders summed (+1.3 / +1.2), mean pooling over the two VLMs' descriptions (+0.1 / +0.8), and above all a
  hubness correction on the image→text side — a caption's similarity to texts of *unrelated* images written by the
  same VLMs is subtracted (+2.6 / +1.1; image→text R@1 7.1 → 10.6 on RSITMD). Generic captions attract generic
  descriptions; removing that pull is worth more than a bigger encoder.
- It stays far from the paper (42.62 / 31.33) and from zero-shot GeoRSCLIP (35.33 / 26.06). The study cannot say
  which part of the gap is GPT-4.1, which the five structured variants, and which text-embedding-3-small: all three
  differ here. What it can say is that the paper's *method* is sound on real captions of the benchmark's own
  images, and that the figures depend strongly on corpus shape and on hubness, which the paper does not discuss.
- Using in-domain train captions adds little on top (a hubness correction against the train captions: 26.53 /
  17.52); fusing with the neighbour captioner on RSICD / AID-150 reaches 20.89 [19.88, 21.89], short of 26.06."""


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str):
    return new_code_cell(text.strip())


def notebook(title: str, intro: str, cells: list) -> nbformat.NotebookNode:
    parameters = new_code_cell(PARAMETERS)
    parameters.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[md(f"# {title}\n\n{intro}"), parameters, code(SETUP), *cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


BOOKS = {
    "00_data": ("Data: import, validate, look",
                "Loads the configured split from the data store (importing from a local mirror when needed), checks it "
                "against the standard test splits, analyses duplicate captions and shows sample images per scene class.",
                [md("## Counts against the standard split, blanks and duplicates"),
                 code("report = rs.data_report(run, dataset)\npd.DataFrame(report).drop(index=['notes', 'captions_per_image'], errors='ignore')"),
                 md("Caption strings shared by several images cap text→image R@1 below 100 %: a query that describes "
                    "17 images can only rank one of them first."),
                 code("rs.shared_captions(dataset, top=10)"),
                 md("## Sample images per scene class, with a human caption each"),
                 code("if rs.has_pixels(dataset):\n    fig = figures.plot_class_samples(dataset, path=run.figure_path('00_class_samples'))\n"
                      "    plt.close(fig)\n    " + SHOW.format(path="run.figure_path('00_class_samples')") + "\nelse:\n"
                      "    print(f'{dataset.coverage_note()}: this figure needs pixels and is skipped; the captions are above')")]),
    "01_captioning": ("Captioning: the RSRT corpus",
                      "Builds (or resumes) the corpus with the configured backend: five structured variants per image from "
                      "a VLM backend, or a published corpus's descriptions as they were written (one or more per image). "
                      "The cost estimate comes first for paid backends; failures are summarised, never hidden.",
                      [md("## Cost estimate (before anything is sent)"),
                       code("print(rs.cost_estimate(run, dataset)['text'])"),
                       md("## Build or resume the corpus"),
                       code("corpus = rs.build_corpus(run, dataset)\nprint(corpus.get('summary_text', corpus['captioner']))\n"
                            "if corpus.get('label'):\n    print('NOTE:', corpus['label'])"),
                       md("## Three sample records"),
                       code("rs.corpus_sample(run, dataset, n=3)")]),
    "02_embedding": ("Embedding: variants and queries",
                     "Embeds every gallery text and query with the frozen text encoder (cached on disk, keyed by model and "
                     "exact text) and projects the images' mean text vectors to 2-D, coloured by scene class.",
                     [code("encoder = rs.text_encoder(run)\nvectors = rs.caption_vectors_by_image(run, dataset, encoder)\n"
                           "print(encoder.name, vectors.shape, 'cache:', encoder.last_stats)"),
                      code("fig = figures.plot_embedding_projection(vectors, dataset.image_classes, "
                           "title=f'Gallery text embeddings ({encoder.name})', coverage=dataset.coverage_note(), "
                           "path=run.figure_path('02_embedding_projection'))\nplt.close(fig)\n"
                           + SHOW.format(path="run.figure_path('02_embedding_projection')"))]),
    "03_retrieval": ("Retrieval: rank images by their caption variants",
                     "Scores every caption query against every image (cosine, pooled over the image's variants) in both "
                     "directions and shows example queries with their top-5 images, successes and failures.",
                     [code("queries, t2i, i2t = rs.retrieval_scores(run, dataset)  # the oracle: its first leave-one-out round\n"
                           "print('text->image scores', t2i.shape, '| image->text scores', i2t.shape)"),
                      code("examples = figures.choose_example_queries(t2i, queries.caption_image_index, n_success=3, n_failure=3)\n"
                           "fig = figures.plot_example_queries(queries, t2i, examples, k=5, path=run.figure_path('03_example_queries'))\n"
                           "plt.close(fig)\n" + SHOW.format(path="run.figure_path('03_example_queries')"))]),
    "04_evaluation": ("Evaluation: the standard protocol",
                      "R@1/5/10 in both directions and mR (mean of the six), with 95 % bootstrap intervals over queries; "
                      "side by side with the paper and its peers (measured here vs quoted); recall per scene class.",
                      [code("metrics = rs.evaluate_run(run, dataset)\n"
                            "pd.DataFrame({'text→image': metrics['t2i'], 'image→text': metrics['i2t']}).T"),
                       code("print(f\"mR {metrics['mR']} (95% CI {metrics['ci95']['mR']}), ties {metrics['ties']}; \"\n"
                            "      f\"captioner {metrics['captioner']}; {metrics['coverage']}\")\nif metrics.get('label'):\n    print('NOTE:', metrics['label'])"),
                       md("How much do ties and duplicate captions move the figure? (Diagnostics, not the protocol: "
                          "the protocol figure above counts only an image's own captions as relevant.)"),
                       code("pd.Series({k: v for k, v in metrics.items() if k.startswith('mR_')}, name='mR', dtype=object)"),
                       md("## Beside the paper and its peers\nRows marked *quoted* come from the papers named in `source`; only "
                          "*measured* rows were computed here, on the images stated in `source`."),
                       code("from rsrt_utils.study.reference import comparison_table\n"
                            "table = comparison_table([metrics], dataset=metrics['dataset'] if metrics['dataset'] in ('rsitmd', 'rsicd') else None)\ntable"),
                       code("fig = figures.plot_comparison(table, path=run.figure_path('04_comparison'))\nplt.close(fig)\n"
                            + SHOW.format(path="run.figure_path('04_comparison')")),
                       code("fig = figures.plot_per_class_recall(metrics['per_class'], title='Recall per scene class', "
                            "coverage=metrics['coverage'], path=run.figure_path('04_per_class'))\nplt.close(fig)\n"
                            + SHOW.format(path="run.figure_path('04_per_class')"))]),
    "05_caption_audit": ("Caption audit: by hand and automatically",
                         "Samples images reproducibly (stratified by class), renders an audit sheet (HTML and figures) of "
                         "each image beside its caption variants and its human captions, and writes a scoring sheet to fill "
                         "in. Filled sheets listed in `audit.filled_sheets` are summarised (two sheets: agreement). The HTML "
                         "sheet flags, per image, whether the text names the image's scene class or other classes, and lists "
                         "the words no human caption of that image uses.",
                         [code("audit = rs.prepare_audit(run, dataset)\nprint(audit.get('message') or f\"audit sheet: {audit['html']}\")\n"
                               "print('scoring sheet to fill:', audit['scoring_sheet'])"),
                          code("for page in audit['pages'][:2]:\n    display(Image(filename=str(page)))"),
                          md("## Filled scoring sheets (if any)"),
                          code("summary = rs.summarise_audit(run)\nsummary if summary is not None else print('no filled sheets given (audit.filled_sheets)')"),
                          md("## Automatic checks: length, diversity between variants, words no human caption uses, "
                             "scene-class word named (or another class named)"),
                          code("checks = rs.automatic_audit(run, dataset)\nchecks['summary']"),
                          code("checks.get('top_unsupported_words')"),
                          code("checks['per_image'].head(10)")]),
    "06_ablations": ("Ablations",
                     "Number of variants, pooling, embedded field, granularity (whole variants or their sentences), text "
                     "encoder, captioner (each corpus alone and together, with the human-caption oracle as a ceiling) and "
                     "fusion with other runs, each with 95 % intervals. Measured on the run's split: they choose nothing. "
                     "Embeddings come from the cache.",
                     [code("from rsrt_utils.study import ablations\naxes = ablations.ablation_axes(run) if run.params.ablations.enabled else []\nprint('axes:', axes)"),
                      code("tables = {}\nfor axis in axes:\n    tables[axis] = ablations.run_ablation(run, dataset, axis)\n"
                           "    fig = figures.plot_ablation(tables[axis], title=f'Ablation: {axis}', xlabel=axis, "
                           "coverage=dataset.coverage_note(), path=run.figure_path(f'06_ablation_{axis}'))\n    plt.close(fig)\n"
                           "pd.concat(tables.values(), ignore_index=True) if tables else None"),
                      code("for axis in axes:\n    " + SHOW.format(path="run.figure_path(f'06_ablation_{axis}')"))]),
    "07_clip_baseline": ("Baseline: zero-shot CLIP, and rank fusion with text-to-text",
                         "Runs a dual-encoder CLIP baseline through the same evaluation code wherever weights can be loaded "
                         "(a hub id with network access, or a local path), and fuses its ranking with the text-to-text one "
                         "by reciprocal rank fusion. Without weights the notebook says so and shows the published figures, "
                         "marked quoted.",
                         [code("clip = rs.clip_baseline(run, dataset)\nprint(clip['message'])"),
                          code("clip['table']")]),
    "09_retrieval_quality": ("Retrieval quality: how far training-free text-to-text retrieval goes on real VLM captions",
                             "The study chapter on the published LLaVA / Qwen-VL descriptions (both datasets): from the plain "
                             "baseline to the best training-free pipeline, one lever at a time, in two tracks — zero-shot "
                             "(nothing from any train split) and *uses in-domain train captions; not zero-shot*. There is no "
                             "validation split for these corpora, so every setting was chosen on one dataset and is reported "
                             "on the other; every configuration evaluated on a test split is listed below. The figures come "
                             "from `python benchmarks/tune_vlm_retrieval.py` (`benchmarks/results/vlm_quality.json`); this "
                             "notebook does not depend on the run's parameters.",
                             [code("from rsrt_utils.study import quality\nresults = quality.load_quality_results()\n"
                                   "quality.quality_table(results)"),
                              md("## The path, step by step, beside the quoted zero-shot CLIPs and the paper"),
                              code("fig = figures.plot_quality_path(quality.quality_rows(results), path=run.figure_path('09_quality_path'))\n"
                                   "plt.close(fig)\n" + SHOW.format(path="run.figure_path('09_quality_path')")),
                              md("## Where the gains come from: per direction, per R@K, per scene class"),
                              code("fig = figures.plot_gain_breakdown(quality.gain_pairs(results), path=run.figure_path('09_quality_gains'))\n"
                                   "plt.close(fig)\n" + SHOW.format(path="run.figure_path('09_quality_gains')")),
                              md("## Targets"),
                              code("quality.targets_table(results)"),
                              md("## Everything that was tried (mR on each dataset's test split; 1 bootstrap)"),
                              code("tried = quality.tried_table(results)\nprint(len(tried), 'configurations')\n"
                                   "tried.sort_values('rsitmd', ascending=False).head(15)"),
                              md(QUALITY_CONCLUSION)]),
    "08_report": ("Report: every run side by side",
                  "Aggregates every `outputs/*/metrics.json` into one CSV and one comparison figure (also `rsrt report`).",
                  [code("from rsrt_utils.study.report import build_report\nreport = build_report(current=run.run_dir)\n"
                        "report['table'].drop(columns=['path'])"),
                   code(SHOW.format(path="report['figure']"))]),
}


def main() -> None:
    NOTEBOOKS.mkdir(exist_ok=True)
    for name, (title, intro, cells) in BOOKS.items():
        nbformat.write(notebook(title, intro, cells), NOTEBOOKS / f"{name}.ipynb")
        print("wrote", NOTEBOOKS / f"{name}.ipynb")


if __name__ == "__main__":
    main()
