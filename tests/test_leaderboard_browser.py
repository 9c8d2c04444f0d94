"""index.html in a real headless browser (Debian's chromium + chromedriver, through selenium):
it loads from disk, sorts by clicking, switches dataset, and logs no console error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOT_DIR = Path(__file__).resolve().parents[1] / "runs" / "screenshots"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver; "
    ".ci/run installs them)",
)


@pytest.fixture(scope="module")
def page(tiny_board) -> Path:
    return tiny_board / "index.html"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1600",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _visible_section(driver):
    from selenium.webdriver.common.by import By

    shown = [
        s for s in driver.find_elements(By.CSS_SELECTOR, "section.lb-section") if s.is_displayed()
    ]
    assert len(shown) == 1, [s.get_attribute("id") for s in shown]
    return shown[0]


def _column_values(table, header: str) -> tuple[list[str], list[float]]:
    """(labels, numbers) of the contender rows in table order, for the column named ``header``."""
    from selenium.webdriver.common.by import By

    headers = [
        th.text.replace("⇅", "").replace("▲", "").replace("▼", "").strip()
        for th in table.find_elements(By.CSS_SELECTOR, "thead th")
    ]
    col = headers.index(header)
    labels, values = [], []
    for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr.contender"):
        td = tr.find_elements(By.TAG_NAME, "td")[col]
        labels.append(tr.get_attribute("data-label"))
        values.append(float(td.get_attribute("data-sort")))
    return labels, values


def test_page_sorts_switches_dataset_and_logs_no_errors(page, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(page.as_uri())
    assert browser.title == "ganbench leaderboard"
    section = _visible_section(browser)
    assert section.get_attribute("id") == "tiny-cpu-digits"

    table = section.find_element(By.CSS_SELECTOR, "table[data-table=quality]")
    th = next(
        h for h in table.find_elements(By.CSS_SELECTOR, "thead th") if h.text.startswith("mmd2")
    )
    th.click()
    labels, values = _column_values(table, "mmd2 ↓")
    assert th.get_attribute("aria-sort") == "ascending"
    assert sorted(labels) == ["dcgan", "dcgan-wide"] and values == sorted(values)
    th.click()
    labels_desc, values_desc = _column_values(table, "mmd2 ↓")
    assert th.get_attribute("aria-sort") == "descending"
    assert values_desc == sorted(values, reverse=True) and labels_desc == labels[::-1]
    # controls stay below the contenders whichever way a column is sorted
    classes = [tr.get_attribute("class") for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert classes == sorted(classes, key=lambda c: c == "control")

    # per-seed values on hover over a score; an n/a says why (the real data has no seeds to
    # train, so its cells are scored; an untrained control's cells carry seed values too)
    col = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")].index(th.text)
    first = table.find_element(By.CSS_SELECTOR, "tbody tr.contender")
    assert first.find_elements(By.TAG_NAME, "td")[col].get_attribute("title").startswith("seed 0: ")

    Select(browser.find_element(By.ID, "section-select")).select_by_value("tiny-cpu-shapes")
    section = _visible_section(browser)
    assert section.get_attribute("id") == "tiny-cpu-shapes"
    assert section.find_element(By.TAG_NAME, "h2").text == "tiny · CPU · shapes"
    gallery = section.find_elements(By.CSS_SELECTOR, ".gallery .card img")
    assert gallery and all(
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        for img in gallery
    ), "a gallery image did not load from disk"
    legend = section.find_element(By.CSS_SELECTOR, "table.legend").text
    assert "c2st_accuracy" in legend and "mmd2" in legend

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOT_DIR / "leaderboard-shapes.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
