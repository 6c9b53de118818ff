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
    table = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "table"))[0]
    rows = {r[0]: r for r in ([td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                              for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr"))}
    runs = sorted(p.parent.name for p in study["outputs"].glob("*/RUN_COMPLETE.json"))
    assert sorted(rows) == runs and len(runs) == (2 if shared_mirror_dir() is not None else 1)
    for run in runs:
        metrics = json.loads((study["outputs"] / run / "metrics.json").read_text())
        assert float(rows[run][4]) == metrics["mR"] and rows[run][5] == f"[{metrics['ci95']['mR'][0]}, {metrics['ci95']['mR'][1]}]"
        assert rows[run][1] == metrics["dataset"] and int(rows[run][2]) == metrics["n_images"]
    front = screenshot(driver, "book_front_page")
    run = next(r for r in runs if r != "smoke") if len(runs) > 1 else runs[0]
    driver.get(f"{study['base']}/study/runs/{run}.html")
    run_shot = screenshot(driver, "book_run_page")
    driver.get(f"{study['base']}/study/runs/{run}/04_evaluation.html")
    notebook_shot = screenshot(driver, "book_notebook_page")
    assert all(p.stat().st_size > 20_000 for p in (front, run_shot, notebook_shot))
    record = {"book_build_seconds": round(study["seconds"], 1), "built": study["built"].strip().splitlines()[0],
              "screenshots": [str(p) for p in (front, run_shot, notebook_shot)]}
    (front.parent / "book_test.json").write_text(json.dumps(record, indent=2))


def test_the_app_links_to_the_book_and_keeps_its_pages_same_origin(study):
    import urllib.request

    with urllib.request.urlopen(study["base"] + "/search") as response:
        assert 'href="/study/"' in response.read().decode()
    with urllib.request.urlopen(study["base"] + "/study/") as response:
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "http" not in policy
