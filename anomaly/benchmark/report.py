"""The detector benchmark's report: the printed table (``format_report``) and the JSON file (``result_json``)."""

import json
import math
from dataclasses import asdict

from anomaly.benchmark.detector import PROTOCOL_EVALUATIONS, PROTOCOL_STEPS, BenchmarkResult
from anomaly.benchmark.inputs import QUANTIZE_SIZE, SHAPES


def _format_value(row: str, value: float) -> str:
    if "(h)" in row:
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.1f}"


def format_report(result: BenchmarkResult) -> str:
    settings = result.settings
    lines = [
        f"S3R benchmark: device {settings['device']} ({result.device}), precision {settings['precision']}, "
        f"shape {settings['shape']}",
        f"  training: 2 x {settings['batch_size']} videos x {settings['num_crops']} crops x {QUANTIZE_SIZE} snippets x "
        f"{settings['feature_size']} channels, {settings['num_atoms'] or SHAPES[settings['shape']].num_atoms} atoms; "
        f"{settings['steps']} timed steps after {settings['warmup']} warm-up",
        f"  test set: {result.test_videos} videos, {result.test_snippets:,} snippets (full split: "
        f"{len(SHAPES[settings['shape']].test_lengths)} videos, {result.full_test_snippets:,}); "
        f"{settings['repeats']} timed evaluations after {settings['warmup']} warm-up",
        f"  fast evaluation: {result.chunks} chunks of at most {result.max_snippets:,} padded positions, "
        f"{result.padded_positions:,} positions for {result.test_snippets:,} snippets "
        f"({100 * (result.padded_positions / result.test_snippets - 1):.1f} % padding and gaps)",
        f"  protocol: {PROTOCOL_STEPS:,} steps + {PROTOCOL_EVALUATIONS:,} evaluations; times: medians; memory: {result.memory_kind}",
    ]
    lines += [f"  note: {note}" for note in result.notes]
    header = f"{'':32}{'one at a time':>16}{'fast':>14}{'ratio (one/fast)':>20}"
    lines += ["", header, "-" * len(header)]
    for row, values in result.rows.items():
        ratio = values["one"] / values["fast"] if values["fast"] else math.inf
        line = f"{row:32}{_format_value(row, values['one']):>16}{_format_value(row, values['fast']):>14}"
        lines.append(line if "GFLOP/s" in row or "% of peak" in row else f"{line}{ratio:>19.2f}x")
    if result.peak_gflops:
        lines += ["", f"peak ({settings['precision']}, GFLOP/s, the better of a measurement before and after the "
                      "runs; '% of peak' above is of the best):"]
        lines += [f"  {name}: {rate:,.1f}" for name, rate in result.peak_gflops.items()]
    if result.libraries:
        lines += ["", "where each path's operator time goes, by library (torch.profiler, one run):"]
        for path, shares in result.libraries.items():
            ordered = sorted(shares.items(), key=lambda item: -item[1])
            lines.append(f"  {path}: " + ", ".join(f"{library} {100 * share:.0f} %" for library, share in ordered))
    if result.kernels:
        lines += ["", "convolution kernels chosen by a one-time measurement (best time per candidate):"]
        for key, (chosen, times) in result.kernels.items():
            timings = ", ".join(f"{name} {seconds * 1000:.2f} ms" for name, seconds in times.items())
            lines.append(f"  {key}: {chosen} ({timings or 'the default: too little work to time reliably'})")
    if result.checks:
        lines += ["", "check:"]
        lines += [f"  {name}: {value:.3g}" for name, value in result.checks.items()]
    if result.breakdown:
        one_total, fast_total = result.breakdown["one"]["total"], result.breakdown["fast"]["total"]
        lines += [
            "",
            f"where the time goes (ms; one forward of {result.breakdown_snippets:,} snippets of similar length, after a "
            "warm-up; the sections are timed with the device synchronised around each):",
            f"{'section':40}{'one at a time':>16}{'%':>6}{'fast':>12}{'%':>6}",
        ]
        for section in result.breakdown["one"]:
            one, fast = result.breakdown["one"][section], result.breakdown["fast"][section]
            lines.append(
                f"{section:40}{one:>16,.1f}{100 * one / one_total:>6.1f}{fast:>12,.1f}{100 * fast / fast_total:>6.1f}"
            )
    return "\n".join(lines)


def result_json(result: BenchmarkResult) -> str:
    return json.dumps(asdict(result), indent=2)
