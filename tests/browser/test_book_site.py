"""The study's book in a real headless Chromium: built by `rsrt book` from the smoke study and (with the benchmark mirror)
one VLM-corpus run, served by `rsrt serve` under /study. Every page opens without console errors, broken images or
broken internal links; the front page's table equals the runs' metrics.json. Screenshots go to outputs/screenshots/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from rsrt_utils.paths import shared_mirror_dir
from tests.browser.test_browser import (  # noqa: F401
    CHROMEDRIVER,
    CHROMIUM,
    PROJECT_ROOT,
    console_errors,
    driver,
    free_port,
    screenshot,
    wait_for,
    wait_until_up,
)

pytestmark = pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
                                reason=f"needs the system Chromium and its driver ({CHROMIUM}, {CHROMEDRIVER}); "
                                       "install the Debian packages chromium and chromium-driver")
VLM_RUN = ["params/vlm_both_rsitmd.yaml", "--set", "dataset.limit_images=40", "--set",
           "ablations.encoders=[all-MiniLM-L6-v2]", "--set", "evaluation.n_boot=50"]


def rsrt(env: dict, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "rsrt_utils", *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, f"rsrt {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Complete runs (smoke; a VLM-corpus run when the mirror is here), their book, and `rsrt serve` over them."""
    work = tmp_path_factory.mktemp("book")
    env = {**os.environ, "RSRT_DATA_DIR": str(work / "data"), "RSRT_CACHE_DIR": str(work / "cache"),
           "RSRT_OUTPUTS_DIR": str(work / "outputs"), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    rsrt(env, "run", "params/smoke.yaml", "--quiet")
    if shared_mirror_dir() is not None:
        rsrt(env, "run", *VLM_RUN, "--quiet")
    plant_model_written_script(work / "outputs")
    started = time.monotonic()
    built = rsrt(env, "book")
    seconds = time.monotonic() - started
    port, log = free_port(), work / "server.log"
    with log.open("w") as handle:
        process = subprocess.Popen([sys.executable, "-m", "rsrt_utils", "serve", "--port", str(port)], cwd=PROJECT_ROOT,
                                   env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/study/", process, log)
        yield {"base": f"http://127.0.0.1:{port}", "outputs": work / "outputs", "built": built, "seconds": seconds}
    finally:
        process.terminate()
        process.wait(timeout=20)


def page_problems(driver, url: str) -> tuple[list[str], list[str]]:  # noqa: F811
    """(broken things on the page, same-site links it holds) after opening `url`."""
    driver.get(url)
    problems = [f"console: {m}" for m in console_errors(driver)]
    broken = driver.execute_script("return [...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                                   ".map(i => i.src)")
    problems += [f"broken image: {src}" for src in broken]
    links = driver.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)")
    return problems, [link for link in links if urlsplit(link).netloc == urlsplit(url).netloc]


def test_every_page_opens_clean_and_every_internal_link_resolves(study, driver):  # noqa: F811
    import urllib.request

    start = study["base"] + "/study/index.html"
    queue, seen, problems, checked = [start], set(), {}, {}
    while queue:
        url = queue.pop().split("#")[0]
        if url in seen or not urlsplit(url).path.startswith("/study/") or not url.endswith((".html", "/")):
            continue
        seen.add(url)
        found, links = page_problems(driver, url)
        # the planted script is refused by design (the test below); Chromium may report it after the next page opened
        found = [f for f in found if not ("Content Security Policy" in f and (PLANTED_RUN in url or PLANTED_RUN in f))]
        if found:
            problems[url] = found
        for link in links:
            target = link.split("#")[0]
            if target not in checked:
                with urllib.request.urlopen(target) as response:  # raises on 404
                    checked[target] = response.status
            queue.append(target)
    assert not problems, problems
    assert len(seen) >= 12 and all(status == 200 for status in checked.values())


def test_the_front_page_table_equals_the_runs_metrics(study, driver):  # noqa: F811
    from selenium.webdriver.common.by import By

    driver.get(study["base"] + "/study/index.html")
    table = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#headline table"))[0]
    rows = {r[0]: r for r in ([td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                              for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr"))}
    runs = sorted(p.parent.name for p in study["outputs"].glob("*/RUN_COMPLETE.json"))
    assert sorted(rows) == runs and len(runs) == (3 if shared_mirror_dir() is not None else 2)
    for run in runs:
        metrics = json.loads((study["outputs"] / run / "metrics.json").read_text())
        assert float(rows[run][4]) == metrics["mR"] and rows[run][7] == f"[{metrics['ci95']['mR'][0]}, {metrics['ci95']['mR'][1]}]"
        assert (float(rows[run][5]), float(rows[run][6])) == (metrics["mR_t2i"], metrics["mR_i2t"])
        assert rows[run][1] == metrics["dataset"] and int(rows[run][2]) == metrics["n_images"]
    front = screenshot(driver, "book_front_page")
    run = next((r for r in runs if r not in ("smoke", PLANTED_RUN)), "smoke")
    driver.get(f"{study['base']}/study/runs/{run}.html")
    run_shot = screenshot(driver, "book_run_page")
    driver.get(f"{study['base']}/study/runs/{run}/04_evaluation.html")
    notebook_shot = screenshot(driver, "book_notebook_page")
    driver.get(f"{study['base']}/study/benchmarks.html")
    benchmark_shot = screenshot(driver, "book_benchmark_page")
    driver.get(f"{study['base']}/study/results/quality.html")
    chapter_shot = screenshot(driver, "book_results_chapter")
    shots = (front, run_shot, notebook_shot, benchmark_shot, chapter_shot)
    assert all(p.stat().st_size > 20_000 for p in shots)
    record = {"book_build_seconds": round(study["seconds"], 1), "built": study["built"].strip().splitlines()[0],
              "screenshots": [str(p) for p in shots]}
    (front.parent / "book_test.json").write_text(json.dumps(record, indent=2))


def test_the_app_links_to_the_book_and_keeps_its_pages_same_origin(study):
    import urllib.request

    with urllib.request.urlopen(study["base"] + "/search") as response:
        assert 'href="/study/"' in response.read().decode()
    with urllib.request.urlopen(study["base"] + "/study/") as response:
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "http" not in policy


POST_SCORES = """
const [url, body, done] = arguments;
fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: body})
  .then((r) => done("answered " + r.status)).catch((e) => done("refused " + e.name));
"""
PLANTED_RUN = "model-written"  # a run whose notebook output holds a script a model wrote


def _audit_row(outputs) -> tuple[str, dict]:
    """(a study run with an audit, a valid row of its scoring sheet)."""
    import csv

    template = next(outputs.glob("*/audit/scoring_sheet.csv"))
    with template.open(newline="") as handle:
        first = next(csv.DictReader(handle))
    return template.parent.parent.name, {"image_id": first["image_id"], "variant": first["variant"], "correct_objects": 1,
                                         "hallucinated_objects": 0, "direction_errors": 0, "completeness_1to5": 3,
                                         "notes": ""}


def plant_model_written_script(outputs) -> None:
    """A complete run whose evaluation notebook shows an HTML output with a script that would save an audit sheet."""
    import nbformat

    from tests.unit.test_book import make_run

    run, row = _audit_row(outputs)
    folder = make_run(outputs, PLANTED_RUN, 1.0)
    script = (f"<script>document.title = 'pwned'; fetch('/api/audit/{run}/scores', {{method: 'POST', headers: "
              f"{{'Content-Type': 'application/json'}}, body: JSON.stringify({json.dumps({'auditor': 'mallory', 'rows': [row]})})}});"
              "</script>")
    notebook = nbformat.read(folder / "notebooks" / "04_evaluation.ipynb", as_version=4)
    notebook.cells[1].outputs.append(nbformat.v4.new_output("display_data", data={"text/html": f"<p>caption</p>{script}"}))
    nbformat.write(notebook, folder / "notebooks" / "04_evaluation.ipynb")


def test_a_script_a_model_wrote_into_a_book_page_never_runs(study, driver):  # noqa: F811
    run, row = _audit_row(study["outputs"])
    sheets = study["outputs"] / run / "audit"
    driver.get(f"{study['base']}/study/runs/{PLANTED_RUN}/04_evaluation.html")
    time.sleep(1.0)
    refused = [m for m in console_errors(driver) if "Content Security Policy" in m]
    assert driver.title != "pwned" and refused, "the planted script was refused by the page's policy"
    assert not (sheets / "scoring_sheet.mallory.csv").exists()
    driver.get(f"{study['base']}/audit/{run}")  # the control: the same request from the app's own page is saved
    url = f"{study['base']}/api/audit/{run}/scores"
    assert driver.execute_async_script(POST_SCORES, url, json.dumps({"auditor": "control", "rows": [row]})) == "answered 200"
    assert (sheets / "scoring_sheet.control.csv").is_file()


def test_the_front_page_says_what_the_study_finds_with_its_figure(study, driver):  # noqa: F811
    from selenium.webdriver.common.by import By

    from rsrt_utils.study import findings

    driver.get(study["base"] + "/study/index.html")
    text = wait_for(driver, lambda d: d.find_element(By.ID, "what-it-finds")).text
    for row in findings.headline_rows():
        assert f"{row.mR:.2f} [{row.ci[0]:.2f}, {row.ci[1]:.2f}]" in text, row
    figure = driver.find_element(By.CSS_SELECTOR, "#headline img")
    assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", figure) > 800


def test_a_notebook_page_shows_no_machine_path_progress_bar_or_warning(study, driver):  # noqa: F811
    from selenium.webdriver.common.by import By

    for notebook in ("01_captioning", "02_embedding", "06_ablations"):
        driver.get(f"{study['base']}/study/runs/smoke/{notebook}.html")
        text = wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "main")).get_attribute("textContent")
        assert str(study["outputs"].parent) not in text and "/tmp/" not in text, notebook
        assert "%|" not in text and "IProgress" not in text and "it/s]" not in text, notebook
        assert "PARAMS_PATH" in text, "the parameters cell stays, its path shown relative to the project"
