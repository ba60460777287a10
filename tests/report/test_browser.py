"""report.html in a real headless Chromium: no JS errors, every section and plot visible.

Uses Debian's ``chromium`` and ``chromium-driver`` packages (``.ci/run`` installs them); nothing
is downloaded at run time. Skipped cleanly when either binary or selenium is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tunelab.report import build_report, render_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
        reason="needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium "
        "chromium-driver; .ci/run does it)",
    ),
]

# Screenshots go to the test's tmp_path unless TUNELAB_SCREENSHOT_DIR names a folder to keep.
SCREENSHOT_DIR = os.environ.get("TUNELAB_SCREENSHOT_DIR") or None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver, path: Path) -> list[dict]:
    driver.get(path.resolve().as_uri())
    driver.execute_script("return document.readyState")
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _plot_sizes(driver) -> list[dict]:
    return driver.execute_script(
        """
        return Array.from(document.querySelectorAll('div.plot')).map(function (el) {
          var g = el.querySelector('.js-plotly-plot');
          var r = (g || el).getBoundingClientRect();
          return {name: el.dataset.plot, rendered: !!(g && g.querySelector('svg.main-svg')),
                  width: r.width, height: r.height};
        });
        """
    )


def _save_screenshot(driver, run: Path, tmp_path: Path, name: str) -> Path:
    target = (Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(int(height) + 100, 16000))
    assert driver.save_screenshot(str(target))
    assert target.stat().st_size > 10_000
    return target


def test_full_report_renders_without_js_errors(browser, handmade_run: Path, tmp_path: Path):
    path = render_report(handmade_run)
    errors = _open(browser, path)
    assert errors == [], errors
    headings = browser.execute_script(
        "return Array.from(document.querySelectorAll('section[data-section] > h2'))"
        ".map(function (h) { return [h.parentElement.id, h.getBoundingClientRect().height]; });"
    )
    expected = [s.key for s in build_report(handmade_run).sections]
    assert [h[0] for h in headings] == expected
    assert all(h[1] > 0 for h in headings)
    plots = _plot_sizes(browser)
    assert len(plots) >= 10
    for plot in plots:
        assert plot["rendered"], plot
        assert plot["width"] > 100 and plot["height"] > 100, plot
    assert browser.execute_script("return typeof Plotly") == "object"
    _save_screenshot(browser, handmade_run, tmp_path, "report-full.png")


def test_partial_report_renders_and_lists_missing_sections(
    browser, training_only_run: Path, tmp_path: Path
):
    path = render_report(training_only_run)
    assert _open(browser, path) == []
    text = browser.find_element("id", "missing-sections").text
    assert "Hyperparameter search" in text and "Compression" in text
    plots = _plot_sizes(browser)
    assert {p["name"] for p in plots} == {"learning_curves", "confusion_matrix", "grad_norms"}
    assert all(p["rendered"] and p["height"] > 100 for p in plots)
    _save_screenshot(browser, training_only_run, tmp_path, "report-partial.png")
