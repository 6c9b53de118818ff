"""`rsrt serve` in a real headless Chromium (system browser and driver, never a download): search a small AID-150
collection, score an audit, reload, and check the CSV, the console and the server log. Screenshots go to
outputs/screenshots/ (rsrt_utils.paths.outputs_dir())."""

from __future__ import annotations

import csv
import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rsrt_utils.paths import outputs_dir
from tests.fakes.keys import fake_key
from tests.unit.app_helpers import COLLECTION, RUN, build_sample_collection, copy_images, write_study_run

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CANARY = fake_key("browser-canary")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
                                reason=f"needs the system Chromium and its driver ({CHROMIUM}, {CHROMEDRIVER}); "
                                       "install the Debian packages chromium and chromium-driver")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rsrt serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"rsrt serve did not answer {url} within {timeout_s} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m rsrt_utils serve` as a real subprocess over a fresh collection and study run (default host)."""
    work = tmp_path_factory.mktemp("serve")
    images = copy_images(work / "images")
    (work / "secret.txt").write_text("TOP-SECRET-FILE-CONTENT")
    build_sample_collection(images, work / "indexes", work)
    write_study_run(work / "outputs", images)
    port, log = free_port(), work / "server.log"
    env = {**os.environ, "OPENAI_API_KEY": CANARY, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "rsrt_utils", "serve", "--port", str(port), "--outputs", str(work / "outputs"),
               "--index-root", str(work / "indexes")]
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", process, log)
        yield {"base": f"http://127.0.0.1:{port}", "port": port, "work": work, "log": log}
    finally:
        process.terminate()
        process.wait(timeout=20)
    text = log.read_text()
    assert CANARY not in text and "Logging error" not in text, "the API key reached the server log, or broke it"
    assert "/search?collection=" in text  # the access log was written


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}", "--window-size=1360,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(60)
    try:
        yield browser
    finally:
        browser.quit()


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver, name: str, max_height: int = 2200) -> Path:
    """A screenshot of the page (as tall as its content, up to max_height) in outputs/screenshots/."""
    target = outputs_dir() / "screenshots" / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1360, min(max(height, 800), max_height))
    driver.save_screenshot(str(target))
    driver.set_window_size(1360, 1000)
    return target


def wait_for(driver, condition, timeout_s: float = 20):
    """Until the condition holds; an element that goes stale because the page reloaded is looked up again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, ignored_exceptions=[StaleElementReferenceException]).until(condition)


def test_the_server_listens_on_loopback_only_and_serves_no_file_outside(server):
    with open(server["log"]) as handle:
        assert f"Uvicorn running on http://127.0.0.1:{server['port']}" in handle.read()
    with pytest.raises(OSError):  # 127.0.0.2 is loopback too, but not the bound address
        socket.create_connection(("127.0.0.2", server["port"]), timeout=2).close()
    with urllib.request.urlopen(f"{server['base']}/search?collection={COLLECTION}&q=key+{CANARY}") as response:
        assert CANARY.encode() not in response.read()  # and, at the end, not in the access log either
    for path in ("../../secret.txt", "Forest/../../secret.txt", "%2e%2e%2f%2e%2e%2fsecret.txt", "/etc/passwd"):
        connection = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=10)
        connection.request("GET", f"/collections/{COLLECTION}/files/{path}")  # sent exactly as written
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status == 404 and b"TOP-SECRET" not in body and b"root:" not in body, path


def test_search_page_finds_the_bridge_first(server, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(f"{server['base']}/search?collection={COLLECTION}")
    box = driver.find_element(By.ID, "q")
    box.send_keys("a highway bridge over a green river with cars", Keys.ENTER)
    cards = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#results li.card"))
    assert cards[0].get_attribute("data-image-id") == "Bridge/bridge_1.jpg"
    assert len(cards) == 8
    wait_for(driver, lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
                                   for img in d.find_elements(By.CSS_SELECTOR, "#results img")))
    assert screenshot(driver, "search").stat().st_size > 10_000
    cards = driver.find_elements(By.CSS_SELECTOR, "#results li.card")
    cards[0].find_element(By.TAG_NAME, "a").click()
    descriptions = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#descriptions li"))
    assert len(descriptions) == 5 and "highway bridge" in descriptions[0].text.lower()
    assert CANARY not in driver.page_source
    assert console_errors(driver) == []


def _fill_image(driver, section, values: list[tuple[int, int, int, int, str]]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for variant, (correct, hallucinated, direction, complete, notes) in zip(section.find_elements(By.CSS_SELECTOR, ".variant"), values):
        for name, value in (("correct_objects", correct), ("hallucinated_objects", hallucinated),
                            ("direction_errors", direction)):
            field = variant.find_element(By.NAME, name)
            field.clear()
            field.send_keys(str(value))
        Select(variant.find_element(By.NAME, "completeness_1to5")).select_by_value(str(complete))
        variant.find_element(By.NAME, "notes").send_keys(notes)


def test_audit_scores_are_saved_to_the_csv_and_shown_after_a_reload(server, driver):
    from selenium.webdriver.common.by import By

    driver.get(f"{server['base']}/audit/{RUN}")
    driver.find_element(By.ID, "auditor").send_keys("alice")
    driver.find_element(By.CSS_SELECTOR, ".auditor-form button").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "audit").get_attribute("data-auditor") == "alice")
    assert driver.find_element(By.ID, "progress").text == "0 of 8 images scored"
    values = [(3, 0, 1, 4, "terminal visible"), (2, 1, 0, 3, ""), (3, 0, 0, 5, "good"), (1, 2, 1, 2, "misses planes"),
              (2, 0, 0, 3, "")]
    first = driver.find_elements(By.CSS_SELECTOR, "section.audit-item")[0]
    _fill_image(driver, first, values)
    first.find_element(By.CSS_SELECTOR, ".save-image").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "status").text.startswith("saved 5 row(s)"))
    assert driver.find_element(By.ID, "progress").text == "1 of 8 images scored"
    assert first.find_element(By.CSS_SELECTOR, ".item-status").text == "✓ scored"

    second = driver.find_elements(By.CSS_SELECTOR, "section.audit-item")[1]
    _fill_image(driver, second, [(-2, 0, 0, 3, "")])
    driver.find_element(By.ID, "save-all").click()
    status = wait_for(driver, lambda d: "nothing was saved" in d.find_element(By.ID, "status").text)
    status = driver.find_element(By.ID, "status").text
    assert "correct_objects" in status and "'-2'" in status and "Airport/airport_2.jpg" in status
    refused = console_errors(driver)  # the browser logs the refused request itself, and nothing else
    assert len(refused) == 1 and "/scores - Failed to load resource" in refused[0] and "400" in refused[0]
    fixed = second.find_element(By.NAME, "correct_objects")
    fixed.clear()
    fixed.send_keys("1")
    driver.find_element(By.ID, "save-all").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "status").text.startswith("saved 1 row(s)"))

    driver.refresh()
    wait_for(driver, lambda d: d.find_element(By.ID, "progress").text == "1 of 8 images scored")
    first = driver.find_elements(By.CSS_SELECTOR, "section.audit-item")[0]
    shown = [v.find_element(By.NAME, "correct_objects").get_attribute("value")
             for v in first.find_elements(By.CSS_SELECTOR, ".variant")]
    assert shown == [str(v[0]) for v in values]
    sheet = server["work"] / "outputs" / RUN / "audit" / "scoring_sheet.alice.csv"
    with sheet.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    saved = [(int(r["correct_objects"]), int(r["hallucinated_objects"]), int(r["direction_errors"]),
              int(r["completeness_1to5"]), r["notes"]) for r in rows[:6]]
    assert saved == values + [(1, 0, 0, 3, "")] and all(r["auditor"] == "alice" for r in rows)
    assert all(r["correct_objects"] == "" for r in rows[6:])
    assert screenshot(driver, "audit").stat().st_size > 10_000
    assert CANARY not in driver.page_source
    assert console_errors(driver) == []



def test_uploads_from_the_page_get_a_clear_message(server, driver):
    from selenium.webdriver.common.by import By

    text_file = server["work"] / "notes.txt"
    text_file.write_text("not an image")
    expected = {text_file: "is not an image", server["work"] / "images" / "Bridge" / "bridge_1.jpg": "search it by text"}
    for path, message in expected.items():
        driver.get(f"{server['base']}/search?collection={COLLECTION}")
        driver.find_element(By.ID, "file").send_keys(str(path))
        driver.find_element(By.CSS_SELECTOR, "#upload-form button").click()
        error = wait_for(driver, lambda d: d.find_elements(By.ID, "error"))[0]
        assert message in error.text and path.name in error.text
    refused = console_errors(driver)  # the two answers are 400 pages; nothing else went wrong
    assert len(refused) == 2 and all("/search/image - Failed to load resource" in e and "400" in e for e in refused)
