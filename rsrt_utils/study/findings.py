"""The study's results as readers see them — the README's table, the book's front page and its results chapters —
made from the results files (`benchmarks/results/*.json`, shipped as `study/results/`), never typed. Each figure
says the command that reproduces it and the machine it was measured on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .reference import versus_references

RESULTS = Path(__file__).resolve().parent / "results"  # benchmarks/results in a checkout
QUALITY, CORPORA, DEFAULT_RUN = "vlm_quality.json", "vlm_corpora.json", "default_run.json"
NEIGHBOUR_TUNING, SCALEOUT, INDEX_REAL, OVERLAP = "neighbour_tuning.json", "scaleout.json", "index_real.json", "test_overlap.json"
STUDY_SPEED, STUDY_SPEED_BFLOAT16 = "study_speed.json", "study_speed_bfloat16.json"
CLIP = "CLIP ViT-B/32 zero-shot"


def load(name: str, results: Path = RESULTS) -> dict:
    """One results file (FileNotFoundError naming the command that writes it)."""
    path = results / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the command that writes it ({COMMANDS.get(name, 'see benchmarks/')})")
    return json.loads(path.read_text(encoding="utf-8"))


COMMANDS = {QUALITY: "python benchmarks/tune_vlm_retrieval.py", OVERLAP: "python benchmarks/tune_vlm_retrieval.py",
            CORPORA: "python benchmarks/bench_vlm_corpora.py",
            DEFAULT_RUN: "bash scripts/run_study.sh && python benchmarks/record_default_run.py",
            NEIGHBOUR_TUNING: "python benchmarks/tune_neighbour_captioner.py", SCALEOUT: "python benchmarks/bench_scaleout.py",
            INDEX_REAL: "python benchmarks/bench_index_real.py", "install_size.json": "python benchmarks/bench_install.py",
            STUDY_SPEED: "python benchmarks/bench_study_speed.py",
            STUDY_SPEED_BFLOAT16: "python benchmarks/bench_study_speed.py --set encoder.options.precision=bfloat16 "
                                  "--out study_speed_bfloat16.json", "encoders.json": "python benchmarks/bench_encoders.py",
            "test_times.json": "python benchmarks/bench_tests.py"}


def machine_of(record: dict) -> str:
    """The machine a results file was measured on, in a few words."""
    machine = record.get("machine") or {}
    if isinstance(machine, str):
        return machine
    cpus = machine.get("cpus") or machine.get("cpu_count")
    parts = [machine.get("cpu") or machine.get("platform") or "", f"{cpus} cores" if cpus else ""]
    return ", ".join(p for p in parts if p) or "a machine the file does not record"


@dataclass(frozen=True)
class Headline:
    """One row of the headline table: a track on a dataset, its mR with its interval, and where it comes from."""

    kind: str  # "plain", "chosen" or "neighbour"
    track: str
    setting: str
    dataset: str
    mR: float
    ci: tuple[float, float]
    source: str

    @property
    def versus_clip(self) -> str:
        """Where zero-shot CLIP's quoted figure lies against the interval."""
        verdict = next((v for v in versus_references(self.dataset, self.ci).split("; ") if v.startswith(CLIP)), "")
        return verdict.replace(f"{CLIP} ", "")


def headline_rows(results: Path = RESULTS) -> list[Headline]:
    """The study's main figures: the real-VLM pipeline as published and with the settings chosen on the other dataset
    (zero-shot), and the offline neighbour captioner of the default run (uses train captions)."""
    quality = load(QUALITY, results)["tracks"]["zero-shot"]
    rows = []
    for dataset in ("rsitmd", "rsicd"):
        steps = quality[dataset]["steps"]
        rows.append(Headline("plain", "published LLaVA + Qwen-VL descriptions, the paper's pipeline (MiniLM, max)", "zero-shot",
                             dataset, steps[0]["mR"], tuple(steps[0]["ci95"]), QUALITY))
        rows.append(Headline("chosen", f"the same, settings chosen on {quality[dataset]['chosen_on'].upper()}", "zero-shot",
                             dataset, steps[-1]["mR"], tuple(steps[-1]["ci95"]), QUALITY))
    run = load(DEFAULT_RUN, results)
    rows.append(Headline("neighbour", "neighbour captioner, RSICD scenes in AID-150 (the default run)", "uses train captions",
                         run["dataset"], run["mR"], tuple(run["ci95"]["mR"]), DEFAULT_RUN))
    return rows


def headline_table(results: Path = RESULTS) -> pd.DataFrame:
    """The headline rows as a table (mR with its 95 % image-level interval, and zero-shot CLIP's quoted figure)."""
    return pd.DataFrame([{"system": r.track, "setting": r.setting, "dataset": r.dataset.upper(),
                          "mR [95 % CI]": f"{r.mR:.2f} [{r.ci[0]:.2f}, {r.ci[1]:.2f}]", "zero-shot CLIP (quoted)": r.versus_clip}
                         for r in headline_rows(results)])


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table (cells escaped) that GitHub and MyST render as an HTML table."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    return "\n".join([head, "|" + "---|" * len(frame.columns)] +
                     ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)])


def summary(results: Path = RESULTS) -> str:
    """What the study found, in a few sentences made from the headline rows (no more than they support)."""
    rows = {(r.dataset, r.kind): r for r in headline_rows(results)}
    procedures = load(QUALITY, results).get("selection_uncertainty", {}).get("current", {})
    lines = []
    for dataset in ("rsitmd", "rsicd"):
        plain, chosen = rows[(dataset, "plain")], rows[(dataset, "chosen")]
        clip = chosen.versus_clip
        told = ("so the two are not told apart" if "inside" in clip else
                "so the pick measures above it" if "below" in clip else "so it stays below zero-shot CLIP")
        lines.append(f"- **{dataset.upper()}**: the paper's pipeline on published open-VLM descriptions gives "
                     f"{plain.mR:.2f} [{plain.ci[0]:.2f}, {plain.ci[1]:.2f}]; with settings chosen on the other dataset "
                     f"{chosen.mR:.2f} [{chosen.ci[0]:.2f}, {chosen.ci[1]:.2f}]. Zero-shot CLIP's quoted figure lies "
                     f"{clip.split(': ', 1)[-1]}, {told}{procedure_clause(procedures.get(dataset), dataset, clip)}.")
    neighbour = rows[("rsicd", "neighbour")]
    lines.append(f"- The offline default run (neighbour captioner, which uses in-domain train captions, so not "
                 f"zero-shot) reads {neighbour.mR:.2f} [{neighbour.ci[0]:.2f}, {neighbour.ci[1]:.2f}] on RSICD scenes in "
                 f"AID-150.")
    lines.append("- Comparisons with a quoted figure ignore its own sampling error (it is a point). All of it stays well "
                 "below the paper's GPT-4.1 figures, which need the network and an API key.")
    return "\n".join(lines)


def procedure_clause(procedure: dict | None, dataset: str, pick_verdict: str) -> str:
    """"; the selection procedure itself ..." from the selection bootstrap: what holds for the procedure, not the pick."""
    if not procedure:
        return ""
    lo, hi = procedure["ci95"]
    where = next((v for v in versus_references(dataset, (lo, hi)).split("; ") if v.startswith(CLIP)), "")
    where = where.split(": ", 1)[-1]
    text = (f"; the grid's selection procedure itself (the choosing dataset's images resampled, the argmax re-run) "
            f"picks the same grid setting in {procedure['recurrence']:.0%} of resamples and expects "
            f"{procedure['expected_mR']:.2f} [{lo:.2f}, {hi:.2f}] here without the larger bank ({procedure['pick_mR']:.2f} "
            f"for the grid pick; that interval is which setting wins, the reported dataset's own sampling error comes "
            f"on top)")
    if "below" in pick_verdict:
        text += (f", CLIP's figure lying {where}: " + ("above CLIP holds for the procedure too" if "below" in where else
                                                         "above CLIP holds for this pick, not for the procedure"))
    return text


def sources_line(results: Path = RESULTS) -> str:
    """Where the headline figures come from: file, command and machine."""
    used = dict.fromkeys(r.source for r in headline_rows(results))
    return "; ".join(f"`benchmarks/results/{name}` (`{COMMANDS[name]}`; measured on {machine_of(load(name, results))})"
                     for name in used)


README_START, README_END = "<!-- headline:start -->", "<!-- headline:end -->"


def readme_block(results: Path = RESULTS) -> str:
    """What the README shows between its headline markers: the table, the findings and where they come from."""
    return (f"{README_START}\n{markdown_table(headline_table(results))}\n\n{summary(results)}\n\nFrom "
            f"{sources_line(results)}; written by `python tools/render_readme.py`.\n{README_END}")


SPEED_START, SPEED_END = "<!-- speed:start -->", "<!-- speed:end -->"


def minutes(seconds: float) -> str:
    """412.3 -> "6 min 52 s"; 41.0 -> "41 s"."""
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s" if whole >= 60 else f"{whole} s"


def speed_block(results: Path = RESULTS) -> str:
    """The README's timing sentence: the study command cold and warm on the machine that measured it."""
    record = load(STUDY_SPEED, results)
    cold, warm, machine = record["cold"], record["warm"], record["machine"]
    return (f"{SPEED_START}\nOn {machine['cpus']} cores of an {machine['cpu']} (load {machine['load_1m']:.2f} at the start), "
            f"the study command took {minutes(cold['total_seconds'])} from a fresh clone (the environment "
            f"{minutes(cold['environment']['seconds'])} of it) and {minutes(warm['total_seconds'])} when run again with "
            f"its caches (`benchmarks/results/{STUDY_SPEED}`, `{COMMANDS[STUDY_SPEED]}`){reduced_precision_clause(results)}; "
            f"where the time goes: [docs/speed.md](docs/speed.md).\n{SPEED_END}")


def reduced_precision_clause(results: Path = RESULTS) -> str:
    """", and ... with the text encoder in bfloat16 (...)" when that option's timing file exists, else ""."""
    if not (results / STUDY_SPEED_BFLOAT16).is_file():
        return ""
    record = load(STUDY_SPEED_BFLOAT16, results)
    metrics = record["metrics"]
    low, high = metrics["ci95"]["mR"]
    return (f"; with the text encoder in bfloat16 (`--set encoder.options.precision=bfloat16`, an option) "
            f"{minutes(record['cold']['total_seconds'])} cold, measuring mR {metrics['mR']:.2f} [{low:.2f}, {high:.2f}] "
            f"(`benchmarks/results/{STUDY_SPEED_BFLOAT16}`)")


def _replace_block(text: str, start_marker: str, end_marker: str, block: str) -> str:
    start, end = text.index(start_marker), text.index(end_marker) + len(end_marker)
    return text[:start] + block + text[end:]


def render_readme(text: str, results: Path = RESULTS) -> str:
    """The README with its headline and timing blocks regenerated from the results files."""
    text = _replace_block(text, README_START, README_END, readme_block(results))
    return _replace_block(text, SPEED_START, SPEED_END, speed_block(results))
