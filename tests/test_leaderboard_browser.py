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
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(page.as_uri())
    assert browser.title == "ganbench leaderboard"
    section = _visible_section(browser)
    assert section.get_attribute("id") == "tiny-cpu-digits"

    table = section.find_element(
        By.CSS_SELECTOR, "table[data-table=quality-distances-in-feature-space]"
    )
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
    # the gallery's images load lazily: each loads from disk once scrolled into view (those
    # behind a click are opened first)
    for details in section.find_elements(By.CSS_SELECTOR, "details.controls"):
        browser.execute_script("arguments[0].open = true", details)
    gallery = section.find_elements(By.CSS_SELECTOR, ".gallery .card img")
    assert gallery

    def loaded(img):
        browser.execute_script("arguments[0].scrollIntoView()", img)
        return WebDriverWait(browser, 10).until(
            lambda d: d.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", img
            )
        )

    assert all(loaded(img) for img in gallery), "a gallery image did not load from disk"
    legend = section.find_element(By.CSS_SELECTOR, "table.legend").get_attribute("textContent")
    assert "c2st_accuracy" in legend and "mmd2" in legend

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOT_DIR / "leaderboard-shapes.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_summary_first_sticky_labels_and_pixelated_sample_grids_only(page, browser):
    """The summary opens each section and names what the ranking table ranks first; the
    architecture column stays in view when a wide table is scrolled right (on a phone-sized
    window); only sample grids are drawn pixelated."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(1400, 1600)
    browser.get(page.as_uri())
    section = _visible_section(browser)
    summary = section.find_element(By.CSS_SELECTOR, "div.summary")
    assert summary.is_displayed()
    # it is the first thing in the section, and on the first screen
    assert summary.location["y"] < 700
    lines = [li.text for li in summary.find_elements(By.TAG_NAME, "li")]
    best = next(line for line in lines if line.startswith("Best sample quality"))
    ranking = section.find_element(By.CSS_SELECTOR, "table[data-table=ranking]")
    firsts = [
        tr.find_elements(By.TAG_NAME, "td")[1].text
        for tr in ranking.find_elements(By.CSS_SELECTOR, "tbody tr")
        if tr.find_elements(By.TAG_NAME, "td")[0].text.split("–")[0].split(" ")[0] == "1"
    ]
    assert firsts and all(a in best for a in firsts), (best, firsts)

    browser.set_window_size(390, 900)
    try:
        table = max(
            section.find_elements(By.CSS_SELECTOR, "table.lb-table"),
            key=lambda t: browser.execute_script("return arguments[0].scrollWidth", t),
        )
        box = table.find_element(By.XPATH, "./..")
        browser.execute_script("arguments[0].scrollIntoView(); arguments[0].scrollLeft = 1e6", box)
        assert browser.execute_script("return arguments[0].scrollLeft", box) > 50, "not wide"
        first = table.find_element(By.CSS_SELECTOR, "tbody tr td")
        left = browser.execute_script(
            "return [arguments[0].getBoundingClientRect().left, "
            "arguments[1].getBoundingClientRect().left]",
            first,
            box,
        )
        assert abs(left[0] - left[1]) < 2, f"the first column scrolled away: {left}"
    finally:
        browser.set_window_size(1400, 1600)

    images = browser.find_elements(By.CSS_SELECTOR, "img")
    assert images
    for img in images:
        rendering = browser.execute_script(
            "return getComputedStyle(arguments[0]).imageRendering", img
        )
        grid = "grid" in (img.get_attribute("class") or "")
        assert (rendering == "pixelated") == grid, img.get_attribute("src")
        if grid:  # a sample grid: the samples or the real images
            src = img.get_attribute("src")
            assert src.endswith("real-data.png") or "-seed" in src, src
    # the real-data grid comes first in the gallery; controls' figures wait behind a click
    cards = section.find_elements(By.CSS_SELECTOR, ".gallery .card")
    assert cards[0].get_attribute("data-architecture") == "real data (reference)"
    controls = section.find_elements(By.CSS_SELECTOR, "details.controls")
    assert controls and controls[0].get_attribute("open") is None
    for cap in section.find_elements(By.CSS_SELECTOR, ".gallery figcaption"):
        if cap.is_displayed():
            assert "seed" in cap.text or cap.text.startswith("real data"), cap.text
