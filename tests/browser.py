"""A real headless Chromium driven through WebDriver (selenium), for tests of pages people open in a browser.

Use the ``browser`` fixture of tests/conftest.py: one Chromium for the whole test session (starting one takes
seconds), with its console log recorded. Per test, open a page with :func:`open_page`, then read
:func:`console_errors`. The system's Debian Chromium and ChromeDriver are started by their paths, so Selenium
Manager never looks for (or downloads) a browser of its own.

Without selenium, Chromium or ChromeDriver the browser tests skip and say what is missing and how to install it;
with ``S3R_REQUIRE_BROWSER=1`` (set by .ci/run) they fail instead, so that CI cannot pass without running them.
"""

import os
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import av

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRE_BROWSER = "S3R_REQUIRE_BROWSER"
SCREENSHOT = "S3R_SCREENSHOT"
WINDOW = (1100, 960)  # the window: its page area (the screenshot) shows a whole report page of a short video

# This machine's network is closed: without these flags Chromium's background services try to reach Google at every
# start, and every refused connection is logged. --no-sandbox: Chromium's sandbox refuses to run as root.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
)


def missing_browser(chromium: Path = CHROMIUM, chromedriver: Path = CHROMEDRIVER) -> list:
    """What the browser tests lack here, each with how to install it; empty when they can run."""
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the Python package selenium (pip install -e '.[test]')")
    if not chromium.is_file():
        missing.append(f"{chromium} (apt-get install chromium chromium-driver)")
    if not chromedriver.is_file():
        missing.append(f"{chromedriver} (apt-get install chromium chromium-driver)")
    return missing


def require_browser(chromium: Path = CHROMIUM, chromedriver: Path = CHROMEDRIVER) -> None:
    """Skip the calling test when the browser is missing, or fail it when ``S3R_REQUIRE_BROWSER=1``."""
    missing = missing_browser(chromium, chromedriver)
    if not missing:
        return
    message = "browser tests need " + "; ".join(missing)
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{message} ({REQUIRE_BROWSER}=1: the browser tests must run)", pytrace=False)
    pytest.skip(message)


def start_chromium(user_data_dir: Path):
    """A headless Chromium with a fresh profile in ``user_data_dir`` whose console log can be read."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def open_page(driver, path: Path) -> None:
    """Load the file ``path`` in ``driver``, its console log starting empty (what earlier pages logged is read
    and dropped)."""
    driver.get_log("browser")
    driver.get(Path(path).resolve().as_uri())


def console_errors(driver) -> list:
    """The SEVERE entries of the console log since the last read (uncaught exceptions, failed loads)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot_if_requested(driver) -> None:
    """Save what ``driver`` shows to the PNG file ``$S3R_SCREENSHOT`` when that variable is set."""
    path = os.environ.get(SCREENSHOT)
    if path:
        time.sleep(1.5)  # the player's controls fade their loading indicator out about a second after a seek
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(path), f"Chromium could not save the screenshot {path}"


def chromium_session():
    """Yield a started Chromium (after :func:`require_browser`) and quit it afterwards, its profile removed."""
    require_browser()
    with tempfile.TemporaryDirectory(prefix="s3r-chromium-") as profile:
        driver = start_chromium(Path(profile))
        try:
            yield driver
        finally:
            driver.quit()


# ---------------------------------------------------------------------------------------------------------------
# Reading a report page (anomaly/report_page.py): its parts as a parser finds them, and its state in the browser
# ---------------------------------------------------------------------------------------------------------------

WAIT_S = 10  # the longest a test waits for the browser (video decoding on a busy machine)


class PageParts(HTMLParser):
    """What a browser's parser finds in a page: its elements (tag, attributes), and the text inside each element
    that has an id (under its id) or none (under its tag name, the texts of all such elements listed)."""

    VOID = {"meta", "link", "img", "br", "hr", "input", "source"}  # elements without an end tag

    def __init__(self, page: str):
        super().__init__()
        self.elements, self.texts, self._open = [], {}, []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag not in self.VOID:
            self._open.append((tag, attributes.get("id")))
            if attributes.get("id") is None:
                self.texts.setdefault(tag, []).append("")

    def handle_endtag(self, tag):
        while any(name == tag for name, _ in self._open) and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if self._open:
            tag, identifier = self._open[-1]
            if identifier is None:
                self.texts[tag][-1] += data
            else:
                self.texts[identifier] = self.texts.get(identifier, "") + data

    def first(self, tag, **attributes):
        return next(found for name, found in self.elements if name == tag and attributes.items() <= found.items())

    def all(self, tag):
        return [found for name, found in self.elements if name == tag]


def webm_codec() -> str:
    """VP8 or VP9, which Chromium plays (its H.264 may be missing)."""
    codec = next((name for name in ("libvpx", "libvpx-vp9") if name in av.codecs_available), None)
    assert codec, "this PyAV has no VP8 or VP9 encoder (libvpx) to write a clip Chromium plays"
    return codec


def wait(driver, condition, what):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.02).until(lambda _: condition(), message=what)


def video_ready(driver):
    """Wait until the page's video has its duration (metadata loaded), and check that it loaded without error."""
    wait(driver, lambda: driver.execute_script("return document.getElementById('video').readyState >= 1"),
         "the video's metadata to load")
    assert driver.execute_script("return document.getElementById('video').error") is None


def plot_x(driver, value, end):
    """Where ``value`` of the x axis (0 to ``end``) lies in the SVG: the plot area spans the whole axis."""
    area = driver.find_element("id", "plot-area")
    return float(area.get_attribute("x")) + float(area.get_attribute("width")) * value / end


def curve(driver):
    """The drawn curve's points (x, y) in the SVG, and the count the page gives; points after a gap (an "M" after
    the first) are listed on, the gaps read apart by ``curve_runs``."""
    points = [point for run in curve_runs(driver) for point in run]
    return points, int(driver.find_element("id", "score-curve").get_attribute("data-points"))


def curve_runs(driver):
    """The curve's runs of points without a gap: the subpaths of its path, each a list of (x, y)."""
    path = driver.find_element("id", "score-curve").get_attribute("d")
    return [[tuple(map(float, pair.split(","))) for pair in run.replace("L", " ").split()]
            for run in path.split("M") if run.strip()]


def playhead_x(driver):
    return float(driver.find_element("id", "playhead").get_attribute("x1"))


def current_time(driver):
    return driver.execute_script("return document.getElementById('video').currentTime")
