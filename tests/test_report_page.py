"""The HTML report page of a video (anomaly/report_page.py): what it holds, checked in Python, and how it behaves,
checked in a real headless Chromium (tests/browser.py; the ``browser`` fixture skips without one, or fails under
S3R_REQUIRE_BROWSER=1).

docs/images/report_page.png is the screenshot that ``test_clicking_a_segment_seeks_the_video_to_its_start`` takes
when S3R_SCREENSHOT names a file; regenerate it with
``S3R_SCREENSHOT=docs/images/report_page.png .venv/bin/python -m pytest -q tests/test_report_page.py -k segment_seeks``.
"""

import json
from fractions import Fraction
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
import pytest

from anomaly.report_page import (MAX_POINTS, curve_points, frame_axis, json_for_script, segments_above,
                                 write_report_page)
from tests import browser as chromium
from tests.browser import (
    PageParts,
    console_errors,
    current_time,
    curve,
    curve_runs,
    open_page,
    playhead_x,
    plot_x,
    screenshot_if_requested,
    video_ready,
    wait,
    webm_codec,
)
from tests.extraction_helpers import make_video

FPS = 25
FRAMES = 50  # the clip: 2 s at 25 fps, 64 x 64
THRESHOLD = 0.5
# A curve with two anomalous bumps over a slow ripple: segments at frames 12-17 and 36-38.
BUMPS = 0.15 + 0.05 * np.sin(np.arange(FRAMES) / 4) + 0.7 * np.exp(-(((np.arange(FRAMES) - 15) / 4.0) ** 2)) \
    + 0.5 * np.exp(-(((np.arange(FRAMES) - 37) / 2.5) ** 2))
TRUTH = ((np.arange(FRAMES) >= 10) & (np.arange(FRAMES) < 21)) | ((np.arange(FRAMES) >= 34) & (np.arange(FRAMES) < 41))


def page_segments(page: str):
    return [int(button["data-first-frame"]) for button in PageParts(page).all("button")]


# ---------------------------------------------------------------------------------------------------------------
# The page's contents, without a browser
# ---------------------------------------------------------------------------------------------------------------


def test_a_short_curve_is_drawn_from_every_frame():
    scores = np.random.default_rng(0).random(MAX_POINTS)
    frames, values = curve_points(scores)
    assert frames.tolist() == list(range(MAX_POINTS))
    assert values.tolist() == scores.tolist()


def test_a_long_curve_is_drawn_from_max_points_bucket_maxima_at_their_frames():
    scores = np.random.default_rng(1).random(100_003)
    frames, values = curve_points(scores)
    assert len(frames) == len(values) == MAX_POINTS
    for bucket in range(MAX_POINTS):  # the documented buckets: frames bucket * F // MAX_POINTS onwards
        start, stop = bucket * len(scores) // MAX_POINTS, (bucket + 1) * len(scores) // MAX_POINTS
        assert values[bucket] == scores[start:stop].max()
        assert start <= frames[bucket] < stop and scores[frames[bucket]] == values[bucket]


def test_a_one_frame_spike_survives_downsampling_and_is_a_segment(tmp_path):
    scores = np.full(100_000, 0.1)
    scores[[4_321, 77_777]] = [0.97, 0.6]
    scores[50_000:50_300] = 0.8
    page = write_report_page(tmp_path / "long_report.html", title="long", scores=scores, fps=FPS, threshold=THRESHOLD)
    data = json.loads(PageParts(page.read_text()).texts["report-data"])
    drawn = dict(zip(data["curve"]["frames"], data["curve"]["scores"]))
    assert drawn[4_321] == 0.97 and drawn[77_777] == 0.6
    # The segments come from every frame, as detection finds them: the drawn curve has no say.
    assert page_segments(page.read_text()) == [segment.first_frame for segment in segments_above(scores, THRESHOLD)]
    assert page_segments(page.read_text()) == [4_321, 50_000, 77_777]


def test_the_segments_are_detections_and_the_summary_counts_them(tmp_path):
    page = write_report_page(tmp_path / "r.html", title="bumps", scores=BUMPS, fps=FPS, threshold=THRESHOLD).read_text()
    expected = segments_above(BUMPS, THRESHOLD)
    assert page_segments(page) == [segment.first_frame for segment in expected] == [12, 36]
    parts = PageParts(page)
    # A segment spans its frames' whole intervals (frames 12-17 at 25 fps: 12/25 s to 18/25 s), as detection says.
    assert parts.texts["button"] == ["0.48 s – 0.72 s", "1.44 s – 1.56 s"]
    axis = frame_axis(len(BUMPS), FPS, None)
    assert [segment.describe(axis) for segment in expected] == ["0.48-0.72 s (peak 0.821)", "1.44-1.56 s (peak 0.659)"]
    assert [text for text in parts.texts["span"] if text.startswith("peak")] == ["peak 0.821", "peak 0.659"]
    assert parts.texts["summary"] == ("2 segments above the threshold 0.5 · max score 0.821 at 0.60 s · "
                                      "50 frames, 2.00 s at 25 fps")


def test_a_container_rate_given_as_a_fraction_is_taken_as_frames_per_second(tmp_path):
    page = write_report_page(tmp_path / "r.html", title="ntsc", scores=BUMPS, fps=Fraction(30000, 1001),
                             threshold=THRESHOLD).read_text()
    assert PageParts(page).texts["summary"].endswith("50 frames, 1.67 s at 29.97 fps")
    assert json.loads(PageParts(page).texts["report-data"])["fps"] == 30000 / 1001


# A phone's variable frame rate: frames 0-24 at 50 fps, then 20 fps (frame f >= 25 at 0.5 + (f - 25) / 20 s).
VFR_TIMES = np.where(np.arange(FRAMES) < 25, np.arange(FRAMES) / 50, 0.5 + (np.arange(FRAMES) - 25) / 20)


def test_with_the_frames_times_the_page_is_on_the_video_clock_not_frame_over_fps(tmp_path):
    """A stream's timestamps (a variable frame rate, a reconnection's gap) place the curve, the segments and their
    seek targets, and the ground truth at each frame's time, as the CSV has them: not at f / fps."""
    page = write_report_page(tmp_path / "r.html", title="phone", scores=BUMPS, fps=FPS, times=VFR_TIMES,
                             threshold=THRESHOLD, ground_truth=TRUTH.astype(int)).read_text()
    parts = PageParts(page)
    data = json.loads(parts.texts["report-data"])
    assert data["seconds"] and data["curve"]["x"] == pytest.approx(VFR_TIMES.tolist())
    assert data["end"] == pytest.approx(1.7 + 1 / FPS)  # the last frame lasts one frame at the declared rate
    # Frames 12-17 and 36-38: 0.24 s to 0.36 s, then 1.05 s to 1.2 s (frame 39's time), seeking to their starts.
    assert parts.texts["button"] == ["0.24 s – 0.36 s", "1.05 s – 1.20 s"]
    assert [float(button["data-x"]) for button in parts.all("button")] == [0.24, 1.05]
    assert np.allclose(data["truth"], [[0.2, 0.42], [0.95, 1.3]])  # frames 10-20 and 34-40
    assert parts.texts["summary"].endswith("max score 0.821 at 0.30 s · 50 frames, 1.74 s at 25 fps")


def test_a_long_curve_embeds_the_times_of_its_drawn_points_alone(tmp_path):
    scores = np.full(100_000, 0.1)
    times = np.cumsum(np.random.default_rng(3).uniform(0.02, 0.06, len(scores)))
    page = write_report_page(tmp_path / "r.html", title="long", scores=scores, times=times, threshold=THRESHOLD)
    data = json.loads(PageParts(page.read_text()).texts["report-data"])
    assert len(data["curve"]["x"]) == MAX_POINTS and data["curve"]["x"] == times[data["curve"]["frames"]].tolist()


def test_title_and_video_name_are_escaped_and_the_data_cannot_end_its_script(tmp_path):
    title = '</script><script>window.__injected__=1</script> "A&B" <img src=x>'
    video = tmp_path / "<" / "script><script>alert(1)<" / 'script> "a&b".webm'
    page = write_report_page(tmp_path / "r_report.html", title=title, scores=BUMPS, threshold=THRESHOLD, video=video)
    parts = PageParts(page.read_text())
    assert len(parts.all("script")) == 2 and parts.all("img") == []  # the page's data and its one script
    assert parts.texts["title"] == [title] and parts.texts["report-title"] == title
    assert parts.texts["video-caption"] == '</script><script>alert(1)</script> "a&b".webm'
    assert urljoin(page.as_uri(), parts.first("video")["src"]) == video.as_uri()


def test_the_page_says_what_made_the_features_when_told_and_escapes_it(tmp_path):
    told = write_report_page(tmp_path / "a_report.html", title="a", scores=BUMPS, threshold=THRESHOLD,
                             features="I3D features: --preset rtfm, 1 crop, <b>fp32</b>")  # fmt: skip
    parts = PageParts(told.read_text())
    assert parts.texts["features"] == "I3D features: --preset rtfm, 1 crop, <b>fp32</b>" and parts.all("b") == []
    untold = write_report_page(tmp_path / "b_report.html", title="b", scores=BUMPS, threshold=THRESHOLD)
    assert "features" not in PageParts(untold.read_text()).texts


def test_frames_without_a_score_are_gaps_not_points_nor_segments(tmp_path):
    """NaN: a frame not scored (a snippet a live stream dropped). The data holds null there, the segments and the
    summary come from the scored frames alone."""
    scores = BUMPS.copy()
    scores[20:30] = np.nan
    page = write_report_page(tmp_path / "r.html", title="gap", scores=scores, fps=FPS, threshold=THRESHOLD)
    data = json.loads(PageParts(page.read_text()).texts["report-data"])
    assert data["curve"]["scores"][20:30] == [None] * 10 and None not in data["curve"]["scores"][:20] + \
        data["curve"]["scores"][30:]
    assert page_segments(page.read_text()) == [12, 36]
    assert PageParts(page.read_text()).texts["summary"].startswith("2 segments above the threshold 0.5 · max score 0.821")


def test_a_long_curve_passes_over_frames_without_a_score():
    scores = np.full(10_000, 0.2)
    scores[:3] = np.nan  # the first bucket (frames 0-4) is partly scored: its peak is a number, at a scored frame
    scores[5_000:5_010] = np.nan  # the buckets of frames 5000-5004 and 5005-5009 have no score: gaps
    scores[7] = 0.9
    frames, values = curve_points(scores, max_points=2000)
    assert (frames[0], values[0]) == (3, 0.2) and (frames[1], values[1]) == (7, 0.9)
    assert frames[1000] == 5000 and np.isnan(values[1000]) and np.isnan(values[1001])
    assert np.isnan(values).sum() == 2


def test_embedded_json_escapes_what_could_end_a_script():
    text = json_for_script({"name": "</script><!-- & \u2028\u2029"})
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == {"name": "</script><!-- & \u2028\u2029"}


def test_the_video_is_linked_relative_to_the_page_folder(tmp_path):
    video = tmp_path / "data" / "videos" / "a b#1%.webm"
    (tmp_path / "out" / "reports").mkdir(parents=True)
    page = write_report_page(tmp_path / "out" / "reports" / "a_report.html", title="a", scores=BUMPS,
                             threshold=THRESHOLD, video=video)
    src = PageParts(page.read_text()).first("video")["src"]
    assert src == "../../data/videos/a%20b%231%25.webm"
    assert urljoin(page.as_uri(), src) == video.as_uri()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(scores=[float("nan"), float("nan")]), "at least one scored frame: every one is NaN (not scored)"),
        (dict(scores=[0.1, float("inf")]), "scores must be finite (or NaN: not scored): frame 1 scores inf"),
        (dict(scores=[]), "a non-empty 1-D sequence"),
        (dict(scores=[[0.1, 0.2]]), "not shape (1, 2)"),
        (dict(scores=[0.1, 0.2, 0.3], ground_truth=[0, 1]), "ground_truth has 2 values for 3 scores"),
        (dict(scores=[0.1, 0.2], ground_truth=[0, 2]), "only 0 (normal) and 1 (anomalous)"),
        (dict(scores=[0.1, 0.2], threshold=float("nan")), "the threshold must be a finite number"),
        (dict(scores=[0.1, 0.2], fps=0), "fps must be a positive number"),
        (dict(scores=BUMPS, times=np.arange(FRAMES - 1) / FPS), "times must be one per frame: (49,) for 50 scores"),
        (dict(scores=BUMPS, times=VFR_TIMES[::-1]), "times must be finite seconds that never decrease, one per frame"),
    ],
)
def test_bad_input_is_refused_in_one_line_and_nothing_is_written(tmp_path, arguments, message):
    with pytest.raises(ValueError) as refusal:
        write_report_page(tmp_path / "r.html", **{"title": "t", "threshold": THRESHOLD, **arguments})
    assert message in str(refusal.value) and "\n" not in str(refusal.value)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_browser_skips_saying_what_is_missing_and_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.delenv(chromium.REQUIRE_BROWSER, raising=False)
    with pytest.raises(pytest.skip.Exception) as skip:
        chromium.require_browser(chromium=tmp_path / "chromium", chromedriver=tmp_path / "chromedriver")
    install = "(apt-get install chromium chromium-driver)"
    assert str(skip.value).startswith("browser tests need ")
    assert f"{tmp_path / 'chromium'} {install}; {tmp_path / 'chromedriver'} {install}" in str(skip.value)


def test_a_missing_browser_fails_when_the_browser_tests_are_required(tmp_path, monkeypatch):
    monkeypatch.setenv(chromium.REQUIRE_BROWSER, "1")
    with pytest.raises(pytest.fail.Exception, match="S3R_REQUIRE_BROWSER=1: the browser tests must run"):
        chromium.require_browser(chromium=tmp_path / "chromium")


# ---------------------------------------------------------------------------------------------------------------
# The page in Chromium
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 2 s WebM clip."""
    return make_video(tmp_path_factory.mktemp("clip") / "clip.webm", FRAMES, 64, 64, fps=FPS, codec=webm_codec())


def bumps_page(folder: Path, clip, fps=FPS):
    return write_report_page(folder / "clip_report.html", title="clip.webm", scores=BUMPS, fps=fps,
                             threshold=THRESHOLD, ground_truth=TRUTH.astype(int), video=clip)


def test_a_page_with_a_video_loads_without_console_errors(browser, clip, tmp_path):
    open_page(browser, bumps_page(tmp_path, clip))
    video_ready(browser)
    assert browser.find_element("id", "video").is_displayed()
    assert len(browser.find_elements("css selector", "#segments button")) == 2
    assert len(browser.find_elements("css selector", "#curve rect.truth")) == 2
    assert console_errors(browser) == []


def test_a_page_without_a_video_loads_without_console_errors(browser, tmp_path):
    page = write_report_page(tmp_path / "r.html", title="no video", scores=BUMPS, fps=FPS, threshold=THRESHOLD)
    open_page(browser, page)
    assert browser.find_element("id", "no-video").is_displayed()
    assert curve(browser)[1] == FRAMES
    browser.find_elements("css selector", "#segments button")[1].click()  # without a video the playhead marks it
    assert playhead_x(browser) == pytest.approx(plot_x(browser, 36 / FPS, FRAMES / FPS), abs=0.01)
    assert console_errors(browser) == []


def test_a_video_missing_when_the_page_opens_gives_a_note_and_no_script_error(browser, clip, tmp_path):
    page = bumps_page(tmp_path, tmp_path / "gone.webm")
    open_page(browser, page)
    wait(browser, lambda: browser.find_element("id", "video-missing").is_displayed(), "the missing-video note")
    assert not browser.find_element("id", "video").is_displayed()
    assert curve(browser)[1] == FRAMES
    # The browser itself reports the file it could not load (no page can prevent that); nothing else is logged.
    errors = console_errors(browser)
    gone = (tmp_path / "gone.webm").as_uri()
    assert [(entry["source"], gone in entry["message"]) for entry in errors] == [("network", True)]


def test_a_short_curve_has_one_point_per_frame(browser, clip, tmp_path):
    open_page(browser, bumps_page(tmp_path, clip))
    points, count = curve(browser)
    assert count == len(points) == FRAMES
    expected = [plot_x(browser, frame / FPS, FRAMES / FPS) for frame in range(FRAMES)]
    assert [x for x, _ in points] == pytest.approx(expected, abs=0.01)


def test_frames_without_a_score_break_the_curve(browser, tmp_path):
    scores = BUMPS.copy()
    scores[20:30] = np.nan
    open_page(browser, write_report_page(tmp_path / "r.html", title="gap", scores=scores, fps=FPS, threshold=THRESHOLD))
    runs = curve_runs(browser)
    assert [len(run) for run in runs] == [20, 20] and curve(browser)[1] == 40
    assert runs[1][0][0] == pytest.approx(plot_x(browser, 30 / FPS, FRAMES / FPS), abs=0.01)
    assert console_errors(browser) == []


def test_a_long_curve_has_max_points_and_keeps_its_peak(browser, tmp_path):
    scores = 0.2 + 0.1 * np.random.default_rng(2).random(100_000)
    scores[61_234] = 0.95
    page = write_report_page(tmp_path / "r.html", title="long", scores=scores, fps=FPS, threshold=THRESHOLD)
    open_page(browser, page)
    points, count = curve(browser)
    assert count == len(points) == MAX_POINTS
    top_x, top_y = min(points, key=lambda point: point[1])  # SVG's y grows downwards
    assert top_x == pytest.approx(plot_x(browser, 61_234 / FPS, len(scores) / FPS), abs=0.01)
    area = browser.find_element("id", "plot-area")
    top, height = float(area.get_attribute("y")), float(area.get_attribute("height"))
    assert top_y == pytest.approx(top + height - 0.95 * height, abs=0.01)  # the y axis spans the scores 0 to 1
    assert console_errors(browser) == []


def test_playing_moves_the_playhead_with_the_video(browser, clip, tmp_path):
    open_page(browser, bumps_page(tmp_path, clip))
    video_ready(browser)
    assert playhead_x(browser) == pytest.approx(plot_x(browser, 0, FRAMES / FPS))
    browser.execute_script("document.getElementById('video').play()")
    wait(browser, lambda: playhead_x(browser) > plot_x(browser, 0.3, FRAMES / FPS), "the playhead to pass 0.3 s")
    browser.execute_script("document.getElementById('video').pause()")

    def at_the_video_time():
        return playhead_x(browser) == pytest.approx(plot_x(browser, current_time(browser), FRAMES / FPS), abs=0.01)

    wait(browser, at_the_video_time, "the playhead to stop where the video paused")
    assert current_time(browser) >= 0.3
    assert console_errors(browser) == []


def test_clicking_a_segment_seeks_the_video_to_its_start(browser, clip, tmp_path):
    open_page(browser, bumps_page(tmp_path, clip))
    video_ready(browser)
    for button, first_frame in zip(browser.find_elements("css selector", "#segments button"), (12, 36)):
        button.click()
        assert current_time(browser) == pytest.approx(first_frame / FPS, abs=1 / FPS)
        at_start = plot_x(browser, first_frame / FPS, FRAMES / FPS)
        wait(browser, lambda: playhead_x(browser) == pytest.approx(at_start, abs=0.5), "the playhead at the start")
        wait(browser, lambda: browser.execute_script("var v = document.getElementById('video');"
                                                     "return !v.seeking && v.readyState >= 2"), "the frame at the start")
    assert console_errors(browser) == []
    screenshot_if_requested(browser)


def test_with_the_frames_times_a_segment_seeks_the_video_to_its_first_frame_s_time(browser, clip, tmp_path):
    page = write_report_page(tmp_path / "clip_report.html", title="clip.webm", scores=BUMPS, fps=FPS,
                             times=VFR_TIMES, threshold=THRESHOLD, video=clip)
    open_page(browser, page)
    video_ready(browser)
    browser.find_elements("css selector", "#segments button")[1].click()  # frame 36: 1.05 s, not 36 / 25 s
    assert current_time(browser) == pytest.approx(1.05, abs=0.01)
    at = plot_x(browser, 1.05, 1.7 + 1 / FPS)
    wait(browser, lambda: playhead_x(browser) == pytest.approx(at, abs=0.5), "the playhead at the segment's time")
    assert console_errors(browser) == []


def test_without_fps_the_page_maps_frames_to_the_video_by_its_duration(browser, clip, tmp_path):
    open_page(browser, bumps_page(tmp_path, clip, fps=None))
    video_ready(browser)
    duration = browser.execute_script("return document.getElementById('video').duration")
    browser.find_elements("css selector", "#segments button")[1].click()
    assert current_time(browser) == pytest.approx(36 * duration / FRAMES, abs=duration / FRAMES)
    assert console_errors(browser) == []


def test_clicking_the_curve_seeks_the_video_to_the_clicked_time(browser, clip, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(browser, bumps_page(tmp_path, clip))
    video_ready(browser)
    area = browser.find_element("id", "plot-area")
    width = browser.execute_script("return arguments[0].getBoundingClientRect().width", area)
    for fraction in (0.75, 0.3):  # offsets are from the plot area's centre, in CSS pixels
        ActionChains(browser).move_to_element_with_offset(area, round((fraction - 0.5) * width), 0).click().perform()
        assert current_time(browser) == pytest.approx(fraction * FRAMES / FPS, abs=1 / FPS)
    assert console_errors(browser) == []


def test_an_injection_named_video_and_title_run_no_script_and_show_literally(browser, clip, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException

    title = '</script><script>window.__injected__=1</script> "A&B" <img src=x onerror="window.__injected__=2">'
    video = tmp_path / "<" / "script><script>alert(1)<" / 'script> "a&b".webm'
    video.parent.mkdir(parents=True)
    video.write_bytes(clip.read_bytes())
    open_page(browser, write_report_page(tmp_path / "r_report.html", title=title, scores=BUMPS, fps=FPS,
                                         threshold=THRESHOLD, video=video))
    video_ready(browser)  # the link, percent-encoded, finds the file
    assert browser.execute_script("return window.__injected__") is None
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    assert browser.title == title
    assert browser.find_element("id", "report-title").text == title
    assert browser.find_element("id", "video-caption").text == '</script><script>alert(1)</script> "a&b".webm'
    assert console_errors(browser) == []
