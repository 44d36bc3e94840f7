"""The line a watch of a live source says once, after its first snippets: the snippets per second it scores against
the rate the stream brings, and when it falls behind, what could keep up, from the times measured in the run."""

import pytest

from anomaly.live.pace import MEASURED_SNIPPETS, WARMUP_SNIPPETS, Pace, pace_line


def test_a_watch_that_keeps_up_says_so_with_where_the_time_goes():
    assert pace_line(400, 10, 1, "fp32", False, 25) == (
        "scoring 2.44 snippets/s; the stream brings 1.56/s (25 fps): a snippet takes 410 ms in fp32 (the network 400 "
        "with 1 crop, S3R 10): keeping up")


def test_falling_behind_names_the_fewest_crops_that_might_keep_up_and_a_native_bf16():
    """10 crops take 2,050 ms a snippet against the 533 ms a 30 fps stream leaves: 5 crops take at least half of
    it (1,025 ms, too long), 1 crop at least a tenth (205 ms), since fewer crops run no faster per crop."""
    assert pace_line(2000, 50, 10, "fp32", True, 30) == (
        "scoring 0.49 snippets/s; the stream brings 1.88/s (30 fps): a snippet takes 2,050 ms in fp32 (the network "
        "2,000 with 10 crops, S3R 50): falling behind, about 26% of the snippets scored, the others dropped; "
        "keeping up needs under 533 ms a snippet: 1 crop might keep up (at least 205 ms a snippet; "
        "s3r benchmark-live --crops 1 measures it); --precision auto would run bf16, native here "
        "(s3r benchmark-live --precision fp32 bf16 measures it)")


def test_the_largest_crop_count_that_might_keep_up_is_named():
    line = pace_line(900, 40, 10, "bf16", True, 25)  # 5 crops: at least 470 ms, under the 640 ms of 25 fps
    assert line.endswith("keeping up needs under 640 ms a snippet: 5 crops might keep up (at least 470 ms a "
                         "snippet; s3r benchmark-live --crops 5 measures it)")


@pytest.mark.parametrize("network_ms, crops, precision, native, advice", [
    (9000, 10, "bf16", True, "fewer crops cannot (1 crop takes at least 905 ms); a faster device is needed"),
    (800, 1, "fp32", False, "a faster device is needed"),  # 1 crop is the fewest; bf16 would be slower here
    (800, 1, "fp32", True, "--precision auto would run bf16, native here (s3r benchmark-live --precision fp32 bf16 "
                           "measures it)"),
])  # fmt: skip
def test_when_nothing_measured_can_keep_up_the_line_says_what_is_left(network_ms, crops, precision, native, advice):
    assert pace_line(network_ms, 50, crops, precision, native, 30).endswith(f"533 ms a snippet: {advice}")


def test_the_line_comes_once_after_the_warm_up_and_the_measured_snippets_from_the_median_snippet():
    said = []
    pace = Pace(1, "fp32", False, said.append)
    times = [(5.0, 1.0)] + [(0.3, 0.01), (0.5, 0.01), (0.4, 0.02), (2.0, 0.01)]  # the first: one-time costs
    assert len(times) == WARMUP_SNIPPETS + MEASURED_SNIPPETS
    for network, scoring in times[:-1]:
        pace.add(network, scoring, 25.0)
    assert said == []
    pace.add(*times[-1], 25.0)
    assert said == [pace_line(400, 20, 1, "fp32", False, 25.0)]  # the median snippet (of four: the lower), as split
    pace.add(0.1, 0.01, 25.0)
    assert len(said) == 1


def test_without_a_known_frame_rate_the_line_waits_for_one():
    said = []
    pace = Pace(1, "fp32", False, said.append)
    for _ in range(WARMUP_SNIPPETS + MEASURED_SNIPPETS + 2):
        pace.add(0.4, 0.01, None)
    assert said == []
    pace.add(0.4, 0.01, 30.0)
    assert said == [pace_line(400, 10, 1, "fp32", False, 30.0)]
