"""assetd's benchmark: every figure as a ratio to a baseline tool measured in the same run.

    .venv/bin/python bench/run.py                        # 100k files, 3 rounds, both backends
    .venv/bin/python bench/run.py --files 1000000 --rounds 1 --backends sqlite
    .venv/bin/python bench/run.py --assetd /other/checkout/.venv/bin/assetd --json out.json

Generates (or reuses) a seeded tree, then per round and backend runs each baseline next to the
assetd command it is compared with, then the large-file round, then the daemon figures. Prints
a Markdown table; `--json OUT` writes every figure. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from assetd import Assetd
from backends import DEFAULT_PG_SERVER, Postgres, Sqlite
from daemon_figures import measure_daemon
from measure import RSS_SOURCE, BenchError, Samples, run_command
from report import compare_table, figures_json, markdown_table
from scan_figures import BackendFigures, LargeFile, large_file_round, scan_round, warm_up
from tree import default_cache_dir, ensure_large_file, ensure_tree

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def seconds(text: str) -> float:
    match = DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration such as 200ms, 20s or 1m")
    return float(match[1]) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[match[2]]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--files", type=int, default=100_000,
                   help="files in the tree (100000; 1000000 for the large run)")
    p.add_argument("--dirs", type=int, default=1000, help="directories they are spread over")
    p.add_argument("--seed", type=int, default=1, help="seed of the tree's sizes and bytes")
    p.add_argument("--rounds", type=int, default=3, help="rounds; each figure is the min")
    p.add_argument("--backends", default="sqlite,postgres",
                   help="comma-separated: sqlite, postgres")
    p.add_argument("--pg-server", default=DEFAULT_PG_SERVER,
                   help="PostgreSQL server URL; the bench creates and drops its own database")
    p.add_argument("--assetd", metavar="PATH",
                   help="assetd executable to measure (default: the one next to this Python, "
                   "else `python -m daemon` from this checkout)")
    p.add_argument("--json", metavar="OUT", type=Path, help="write every figure to OUT")
    p.add_argument("--table-from", metavar="JSON", type=Path,
                   help="measure nothing: print the table of a JSON file an earlier run wrote")
    p.add_argument("--compare", metavar=("BEFORE", "AFTER"), nargs=2, type=Path,
                   help="measure nothing: print two saved runs' figures side by side")
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                   help="where generated trees (and the large file) are kept between runs")
    p.add_argument("--workdir", type=Path,
                   help="databases, configs, daemon logs (default: a temporary directory, "
                   "removed afterwards)")
    p.add_argument("--large-mib", type=int, default=2048,
                   help="size of the large-file figure's file; 0 skips it (it needs the disk "
                   "space, and RAM to stay cached)")
    p.add_argument("--no-daemon", action="store_true", help="skip the daemon figures")
    p.add_argument("--no-scans", action="store_true",
                   help="skip the scan rounds and the large file: daemon figures only")
    p.add_argument("--idle-seconds", type=float, default=60, help="daemon idle CPU window")
    p.add_argument("--tick-interval", default="20s", help="the daemon's tick_interval")
    p.add_argument("--settle", default="200ms", help="the daemon's settle")
    p.add_argument("--latency-files", type=int, default=50,
                   help="files written one at a time for the event latency")
    p.add_argument("--burst-files", type=int, default=10_000, help="files in the burst")
    p.add_argument("--daemon-enrich", action="store_true",
                   help="keep the built-in enrichers on in the daemon (off by default: its "
                   "backfill would still be enriching the fresh index during the idle window)")
    args = p.parse_args(argv)
    if args.files < 1 or args.dirs < 1 or args.files % args.dirs:
        p.error("--files must be a positive multiple of --dirs")
    args.backend_names = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not args.backend_names or set(args.backend_names) - {"sqlite", "postgres"}:
        p.error("--backends: a comma-separated list of sqlite and postgres")
    try:
        args.tick_interval_s = seconds(args.tick_interval)
        args.settle_s = seconds(args.settle)
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    return args


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, workdir: Path) -> dict:
    assetd = Assetd(args.assetd)
    started = time.monotonic()
    tree, reused = ensure_tree(args.cache_dir, args.seed, args.dirs, args.files // args.dirs)
    say(f"tree {tree.root}: {tree.files:,} files, {tree.total_bytes / 2**20:.0f} MiB "
        f"({'reused' if reused else f'generated in {time.monotonic() - started:.0f}s'})")
    backends = {name: Sqlite(workdir) if name == "sqlite" else Postgres(args.pg_server)
                for name in args.backend_names}
    result: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_before": os.getloadavg()},
        "assetd": assetd.describe(),
        "params": {key: getattr(args, key) for key in (
            "files", "dirs", "seed", "rounds", "backend_names", "large_mib", "idle_seconds",
            "tick_interval", "settle", "latency_files", "burst_files", "daemon_enrich")},
        "tree": {"root": str(tree.root), "files": tree.files, "bytes": tree.total_bytes},
        "page_cache": "warm",
        "rss_source": RSS_SOURCE,
    }
    try:
        warm_up(assetd, tree)
        baselines = {"hash": Samples(), "walk": Samples()}
        per_backend = {name: BackendFigures() for name in backends}
        for round_index in range(0 if args.no_scans else args.rounds):
            for name, backend in backends.items():
                say(f"round {round_index + 1}/{args.rounds}: {name}")
                scan_round(assetd, backend, tree, workdir, baselines, per_backend[name],
                           measure_size=round_index == args.rounds - 1)
        if args.large_mib and not args.no_scans:
            large = ensure_large_file(args.cache_dir, args.seed, args.large_mib)
            run_command(["xxhsum", "-H2", str(large)])  # into the page cache
            large_figures = LargeFile()
            backend = next(iter(backends.values()))
            for round_index in range(args.rounds):
                say(f"large file {args.large_mib} MiB: round {round_index + 1}/{args.rounds}")
                large_file_round(assetd, backend, large, workdir, large_figures)
            result["large_file"] = large_figures.as_json(args.large_mib)
        if not args.no_daemon:
            for name, backend in backends.items():
                say(f"daemon on {name}")
                per_backend[name].daemon = measure_daemon(assetd, backend, tree, workdir, args)
    finally:
        for backend in backends.values():
            backend.drop()
    result["baselines"] = {name: samples.as_json() for name, samples in baselines.items()
                           if samples.walls}
    result["backends"] = figures_json(result["baselines"], per_backend)
    result["machine"]["load_after"] = os.getloadavg()
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table_from:
        print(markdown_table(json.loads(args.table_from.read_text())))
        return 0
    if args.compare:
        before, after = (json.loads(path.read_text()) for path in args.compare)
        print(compare_table(before, after))
        return 0
    missing = [tool for tool in ("find", "xargs", "xxhsum", "bash") if not shutil.which(tool)]
    if "postgres" in args.backend_names and not shutil.which("psql"):
        missing.append("psql")
    if missing:
        print(f"bench: not on PATH: {', '.join(missing)}", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="assetd-bench-"))
    workdir = workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        result = run(args, workdir)
    except BenchError as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    table = markdown_table(result)
    result["table_markdown"] = table
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
