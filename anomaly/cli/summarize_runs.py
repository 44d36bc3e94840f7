"""Summarize training runs over seeds (``s3r summarize``; ``tools/summarize_runs.py`` runs it).

    s3r summarize logs/seed-*            # run folders (logs/<version>) or curve CSVs, globs too

Prints each run's best value and step, then per dataset the mean ± sample standard deviation (ddof=1), min and
max over the runs beside the S3R paper's figure, and writes ``<output_dir>/runs_summary.csv`` and
``runs_summary.png`` (a strip plot). See ``anomaly.engine.summary``.
"""

import glob
from pathlib import Path
from typing import List

from anomaly.cli.command import CommandArguments
from anomaly.engine.summary import curve_files, plot_runs, read_run, runs_table, summarize, summary_table, write_summary_csv
from anomaly.errors import InputError
from anomaly.files import check_writable_folder, ensure_folder


class Arguments(CommandArguments):
    runs: List[str]  # run folders (logs/<version>) or curve CSVs; glob patterns are expanded
    output_dir: Path = Path("output/summary")  # where runs_summary.csv and runs_summary.png go

    def configure(self) -> None:
        self.add_argument("runs", nargs="+")


def expand(patterns: List[str]) -> List[Path]:
    """Each pattern's matches (sorted), or the pattern itself when it holds no glob characters."""
    paths: List[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise InputError(pattern, "matches no run folder")
        paths += [Path(match) for match in matches]
    return paths


def run(args: Arguments) -> int:
    check_writable_folder(args.output_dir)
    results = [read_run(curve) for run in expand(args.runs) for curve in curve_files(run)]
    summaries = summarize(results)
    ensure_folder(args.output_dir)  # only once every input was read
    csv_path, png_path = args.output_dir / "runs_summary.csv", args.output_dir / "runs_summary.png"
    write_summary_csv(results, summaries, csv_path)
    plot_runs(results, summaries, png_path)
    print(runs_table(results))
    print(summary_table(summaries))
    print(f"wrote {csv_path} and {png_path}")
    return 0
