"""The search page's map in a real headless Chromium: a collection of georeferenced chips (real AID-150 scenes in a UTM
mosaic), hits drawn at their footprints with their quicklooks (offline, the vendored Leaflet), a box drawn with the
mouse that filters the search, a footprint that opens its item page. Screenshots go to outputs/screenshots/."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse

import pytest

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
from tests.geo.scenes import COLS, ROWS, build_geo_collection

pytestmark = pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
                                reason=f"needs the system Chromium and its driver ({CHROMIUM}, {CHROMEDRIVER})")


@pytest.fixture(scope="module")
def geo_server(tmp_path_factory):
    work = tmp_path_factory.mktemp("geo-serve")
    mp = pytest.MonkeyPatch()
    mp.setenv("RSRT_INDEX_DIR", str(work / "indexes"))
    classes = build_geo_collection(work, "scenes")
    mp.undo()
    port, log = free_port(), work / "server.log"
    command = [sys.executable, "-m", "rsrt_utils", "serve", "--port", str(port), "--outputs", str(work / "outputs"),
               "--index-root", str(work / "indexes")]
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                   stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", process, log)
        yield {"base": f"http://127.0.0.1:{port}", "classes": classes}
    finally:
        process.terminate()
        process.wait(timeout=20)


def footprints(browser):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, "#map path.footprint")


def test_the_map_draws_the_hits_a_drawn_box_filters_and_a_footprint_opens_its_item(geo_server, driver):  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.get(f"{geo_server['base']}/search?collection=scenes&q=a+bridge&k=16")
    wait_for(driver, lambda d: len(footprints(d)) == ROWS * COLS)
    overlays = driver.find_elements(By.CSS_SELECTOR, "#map img.leaflet-image-layer")
    wait_for(driver, lambda d: all(img.get_attribute("complete") and int(img.get_attribute("naturalWidth")) > 0
                                   for img in overlays))
    assert len(overlays) == ROWS * COLS, "offline: each hit's quicklook is drawn at its footprint"
    first = driver.find_element(By.CSS_SELECTOR, "#results li")
    assert "bridge" in first.text.lower()
    shot = screenshot(driver, "map_search")
    assert shot.stat().st_size > 50_000

    # draw a box over the lower-right quarter of the mosaic: only those chips remain
    driver.find_element(By.ID, "draw-box").click()
    holder = driver.find_element(By.ID, "map")
    chips = sorted(footprints(driver), key=lambda e: (e.rect["y"], e.rect["x"]))
    corner = [c for c in chips if c.rect["x"] >= chips[-1].rect["x"] - 1 and c.rect["y"] >= chips[-1].rect["y"] - 1][0]
    start_x = corner.rect["x"] - corner.rect["width"] * 0.5 - holder.rect["x"]
    start_y = corner.rect["y"] - corner.rect["height"] * 0.5 - holder.rect["y"]
    end_x = corner.rect["x"] + corner.rect["width"] * 0.9 - holder.rect["x"]
    end_y = corner.rect["y"] + corner.rect["height"] * 0.9 - holder.rect["y"]
    ActionChains(driver).move_to_element_with_offset(holder, start_x - holder.rect["width"] / 2,
                                                     start_y - holder.rect["height"] / 2).click_and_hold() \
        .move_by_offset(end_x - start_x, end_y - start_y).release().perform()
    wait_for(driver, lambda d: "bbox=" in d.current_url)
    bbox = urllib.parse.parse_qs(urllib.parse.urlsplit(driver.current_url).query)["bbox"][0]
    assert len(bbox.split(",")) == 4 and driver.find_element(By.ID, "bbox").get_attribute("value") == bbox
    wait_for(driver, lambda d: 1 <= len(footprints(d)) < ROWS * COLS)
    assert len(footprints(driver)) == len(driver.find_elements(By.CSS_SELECTOR, "#results li")) == 4, \
        "a box over the corner chip and a half: the 2 x 2 chips it meets"
    assert driver.find_elements(By.CSS_SELECTOR, "#map path.box-filter"), "the box itself is drawn"
    screenshot(driver, "map_search_box")

    # a footprint opens its item page, which states the place
    footprints(driver)[0].click()
    wait_for(driver, lambda d: "/items/" in d.current_url)
    place = driver.find_element(By.ID, "place").text
    assert "mosaic.tif" in place and "2024-06-01T10:30:00Z" in place and "EPSG:32633" in place and "2.00 m/px" in place
    screenshot(driver, "map_item")
    assert not console_errors(driver), console_errors(driver)
