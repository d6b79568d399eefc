"""``python -m benchmarks``: every scenario side by side with its baselines; tables of medians on stdout.

Progress goes to stderr, the tables (Markdown) to stdout, so ``python -m benchmarks > results.md``
gives the text BENCHMARKS.md is made of. ``--quick`` runs each scenario once at a small size (the
test suite does that, so the benchmarks cannot rot).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
from pathlib import Path

from benchmarks import scenarios

SCENARIOS = ("known-arn", "large-stream", "aws")


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="rounds of the short runs (default 21)")
    parser.add_argument("--stream-rounds", type=int, default=5, help="rounds per large-stream size (default 5)")
    parser.add_argument("--sizes", default="10,50,100", help="large-stream sizes in MB (default 10,50,100)")
    parser.add_argument("--naive-max-mb", type=float, default=10, help="largest size to run naive at (default 10)")
    parser.add_argument("--naive-rounds", type=int, default=3, help="rounds of the naive run (default 3)")
    parser.add_argument("--import-runs", type=int, default=9, help="python -X importtime runs (default 9)")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run only this scenario (repeatable)")
    parser.add_argument("--quick", action="store_true", help="each scenario once, at small sizes")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = args.stream_rounds = args.naive_rounds = args.import_runs = 1
        args.sizes, args.naive_max_mb = "0.2,0.4", 0.4
    args.sizes = [float(size) for size in args.sizes.split(",")]
    return args


def run_all(args: argparse.Namespace, workdir: Path) -> list[scenarios.Table]:
    wanted = args.only or SCENARIOS
    tables: list[scenarios.Table] = []
    if "known-arn" in wanted:
        _progress("known ARN")
        tables += scenarios.known_arn(workdir, args.rounds, args.import_runs)
    if "large-stream" in wanted:
        _progress(f"large stream at {', '.join(f'{s:g}' for s in args.sizes)} MB")
        tables += scenarios.large_stream(workdir, args.sizes, args.naive_max_mb, args.stream_rounds, args.naive_rounds)
    if "aws" in wanted:
        _progress("AWS calls and the cold AWS path")
        tables += scenarios.aws(workdir, args.rounds)
    return tables


def header() -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"velero-irsa benchmarks, {now}: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}; "
        f"load average at start {load}. Medians; ratios are of medians.\n"
    )


def _progress(what: str) -> None:
    print(f"benchmarks: {what} …", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    print(header())
    with tempfile.TemporaryDirectory(prefix="velero-irsa-bench-") as scratch:
        for table in run_all(args, Path(scratch)):
            print(table.markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
