"""End-to-end scan benchmark: assetd against `find` and `xxhsum` on the same tree, in the same run.

The machine is shared and noisy, so no figure here is meaningful on its own: every assetd time is
reported as a ratio to a baseline measured a few seconds earlier on the same files.

    cold scan  / baseline hash   (find -print0 | xargs -0 xxhsum -H2)
    rescan     / baseline walk   (find -printf '%s %T@ %i %p')
    large file / xxhsum -H2 of that one file

Page cache: dropping caches needs root outside a container, so every case runs warm instead. Each
baseline is run once untimed first, which also pulls the whole tree into the page cache; the
assetd figures therefore measure CPU + syscalls + database work, not the disk.

Stdlib only; assetd runs as a subprocess (`PYTHON -m daemon`, from the repository root).
See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The CLI is daemon/cli.py or the package daemon/cli/; either makes `python -m daemon` work.
CLI_CANDIDATES = (REPO_ROOT / "daemon" / "cli.py", REPO_ROOT / "daemon" / "cli" / "__init__.py")
TREE_MANIFEST = "tree.json"
WRITE_CHUNK_BYTES = 16 * 1024 * 1024


class BenchError(RuntimeError):
    """A benchmark precondition or a correctness check failed."""


@dataclass
class Timing:
    """Wall-clock samples of one case, in seconds."""

    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples)

    @property
    def min_s(self) -> float:
        return min(self.samples)


@dataclass
class Row:
    """One line of the result table."""

    case: str
    seconds: float
    min_seconds: float
    baseline: str | None = None
    ratio: float | None = None
    files_per_s: float | None = None
    mib_per_s: float | None = None
    note: str = ""


# --------------------------------------------------------------------------------------------
# tree generation


def tree_layout(files: int, dirs: int) -> list[tuple[str, int]]:
    """(relative directory, number of files) pairs: `dirs` leaf dirs, two levels deep."""
    dirs = max(1, min(dirs, files))
    per_dir = math.ceil(files / dirs)
    layout = []
    remaining = files
    for index in range(dirs):
        count = min(per_dir, remaining)
        if count <= 0:
            break
        layout.append((f"g{index // 10:03d}/d{index:04d}", count))
        remaining -= count
    return layout


def write_random_file(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        left = size
        while left > 0:
            chunk = min(left, WRITE_CHUNK_BYTES)
            handle.write(os.urandom(chunk))
            left -= chunk


def ensure_small_tree(root: Path, manifest: Path, files: int, size: int, dirs: int) -> bool:
    """Create the small-file tree unless `manifest` says an identical one is already there.

    Returns True when the tree was reused. Content is random so every file has its own hash.
    """
    wanted = {"files": files, "size": size, "dirs": dirs}
    if root.is_dir() and manifest.is_file() and json.loads(manifest.read_text()) == wanted:
        return True
    shutil.rmtree(root, ignore_errors=True)
    manifest.unlink(missing_ok=True)
    for rel_dir, count in tree_layout(files, dirs):
        directory = root / rel_dir
        directory.mkdir(parents=True)
        for index in range(count):
            (directory / f"f{index:05d}.dat").write_bytes(os.urandom(size))
    manifest.write_text(json.dumps(wanted))
    return False


def ensure_large_file(root: Path, size_mib: int) -> Path:
    path = root / f"large-{size_mib}MiB.dat"
    if path.is_file() and path.stat().st_size == size_mib * 1024 * 1024:
        return path
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    write_random_file(path, size_mib * 1024 * 1024)
    return path


# --------------------------------------------------------------------------------------------
# running things


def run_timed(
    argv: list[str], *, cwd: Path | None = None, capture: bool = False
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `argv`, return (wall seconds, completed process). Non-zero exit raises BenchError."""
    started = time.perf_counter()
    completed = subprocess.run(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise BenchError(
            f"{' '.join(argv)!s} exited {completed.returncode}: {completed.stderr.strip()[-2000:]}"
        )
    return elapsed, completed


def shell(script: str) -> list[str]:
    # pipefail: a failing `find` must not hide behind a successful `xargs`.
    return ["bash", "-o", "pipefail", "-c", script]


def measure_baseline(name: str, argv: list[str], repeat: int) -> Timing:
    run_timed(argv)  # untimed warm-up: fills the page cache and the dentry/inode caches
    timing = Timing(name)
    for _ in range(repeat):
        timing.samples.append(run_timed(argv)[0])
    return timing


class Assetd:
    """Runs `PYTHON -m daemon --config CFG ...` from the repository root."""

    def __init__(self, python: str, config: Path, database: Path):
        self.python = python
        self.config = config
        self.database = database

    def argv(self, *args: str) -> list[str]:
        return [self.python, "-m", "daemon", "--config", str(self.config), *args]

    def drop_database(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.database}{suffix}").unlink(missing_ok=True)

    def scan(self, extra_args: list[str]) -> tuple[float, dict]:
        elapsed, completed = run_timed(
            self.argv("scan", "--json", *extra_args), cwd=REPO_ROOT, capture=True
        )
        try:
            report = json.loads(completed.stdout)
        except json.JSONDecodeError as exc:
            raise BenchError(
                f"scan --json printed no JSON object ({exc}): {completed.stdout[:500]!r}"
            ) from exc
        return elapsed, report

    def file_hashes(self, library: str, root: Path) -> dict[str, str | None]:
        """rel_path → stored hash, from `files --library L --json` (paths made root-relative)."""
        _, completed = run_timed(
            self.argv("files", "--library", library, "--json"), cwd=REPO_ROOT, capture=True
        )
        prefix = f"{root}/"
        hashes = {}
        for line in completed.stdout.splitlines():
            if line.strip():
                row = json.loads(line)
                hashes[row["path"].removeprefix(prefix)] = row["hash"]
        return hashes


def write_config(path: Path, database: Path, libraries: dict[str, Path]) -> None:
    lines = [
        "[daemon]",
        f"database = {json.dumps(f'sqlite:///{database}')}",
        'log_format = "json"',
        'log_level = "warning"',
        "",
    ]
    for name, root in libraries.items():
        lines += [
            "[[library]]",
            f"name = {json.dumps(name)}",
            f"path = {json.dumps(str(root))}",
            "",
        ]
    path.write_text("\n".join(lines))


def check_stats(report: dict, expected: dict[str, int], what: str) -> None:
    stats = report.get("stats", {})
    wrong = {key: stats.get(key) for key, value in expected.items() if stats.get(key) != value}
    if wrong or report.get("status") != "ok":
        raise BenchError(
            f"{what}: expected status ok and {expected}, got status "
            f"{report.get('status')!r} and {wrong} (full stats: {stats})"
        )


# --------------------------------------------------------------------------------------------
# the cases


def xxhsum_digests(root: Path) -> dict[str, str]:
    """rel_path → `xxh128:<hex>` for every file under root, computed by xxhsum -H2."""
    completed = subprocess.run(
        shell(f"cd {sh_quote(str(root))} && find . -type f -print0 | xargs -0 xxhsum -H2"),
        capture_output=True,
        text=True,
        check=True,
    )
    digests = {}
    for line in completed.stdout.splitlines():
        hex_digest, rel_path = line.split("  ", 1)
        digests[rel_path.removeprefix("./")] = f"xxh128:{hex_digest}"
    return digests


def sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def bench_small_files(
    args: argparse.Namespace, workdir: Path, root: Path, run_assetd: bool
) -> list[Row]:
    n_files = args.files
    quoted = sh_quote(str(root))
    walk = measure_baseline(
        "baseline walk",
        shell(f"find {quoted} -type f -printf '%s %T@ %i %p\\n' > /dev/null"),
        args.repeat,
    )
    hashing = measure_baseline(
        "baseline hash",
        shell(f"find {quoted} -type f -print0 | xargs -0 xxhsum -H2 > /dev/null"),
        args.repeat,
    )
    rows = [
        Row(
            "baseline walk (find -printf)",
            walk.median_s,
            walk.min_s,
            files_per_s=n_files / walk.median_s,
        ),
        Row(
            "baseline hash (find | xargs xxhsum -H2)",
            hashing.median_s,
            hashing.min_s,
            files_per_s=n_files / hashing.median_s,
        ),
    ]
    if not run_assetd:
        return rows

    database = workdir / "index.db"
    config = workdir / "assetd.toml"
    write_config(config, database, {"bench": root})
    assetd = Assetd(args.python, config, database)
    startup = Timing("assetd --help")
    run_timed(assetd.argv("--help"), cwd=REPO_ROOT)  # compiles .pyc files, untimed
    for _ in range(args.repeat):
        startup.samples.append(run_timed(assetd.argv("--help"), cwd=REPO_ROOT)[0])

    rows.append(
        Row(
            "assetd startup (--help)",
            startup.median_s,
            startup.min_s,
            note="interpreter + CLI imports; part of every assetd figure",
        )
    )
    # The plain variant runs last: the rescan below reuses its database, and after a --no-enrich
    # scan a plain rescan would still have every file's enrichment to do.
    cold_variants = [("assetd cold scan", args.scan_arg)]
    if args.no_enrich_variant and "--no-enrich" not in args.scan_arg:
        cold_variants.insert(0, ("assetd cold scan --no-enrich", [*args.scan_arg, "--no-enrich"]))
    for label, scan_args in cold_variants:
        cold, self_reported = time_cold_scans(assetd, scan_args, n_files, args.repeat)
        rows.append(
            Row(
                label,
                cold.median_s,
                cold.min_s,
                "baseline hash",
                cold.median_s / hashing.median_s,
                n_files / cold.median_s,
                note=f"self-reported duration_s {self_reported}",
            )
        )

    if args.verify_hashes:
        verify_small_hashes(assetd, root)

    rescan = Timing("assetd rescan")
    self_reported_rescan = []
    for _ in range(args.repeat):
        elapsed, report = assetd.scan(args.scan_arg)
        check_stats(
            report,
            {"unchanged": n_files, "hashed": 0, "created": 0, "updated": 0, "missing": 0},
            "no-change rescan",
        )
        rescan.samples.append(elapsed)
        self_reported_rescan.append(report.get("duration_s"))
    rows.append(
        Row(
            "assetd no-change rescan",
            rescan.median_s,
            rescan.min_s,
            "baseline walk",
            rescan.median_s / walk.median_s,
            n_files / rescan.median_s,
            note=f"self-reported duration_s {median_or_none(self_reported_rescan)}",
        )
    )
    return rows


def time_cold_scans(
    assetd: Assetd, scan_args: list[str], n_files: int, repeat: int
) -> tuple[Timing, float | None]:
    """Scan into an empty database `repeat` times; the last run's database is left in place."""
    cold = Timing("assetd cold scan")
    self_reported = []
    for _ in range(repeat):
        assetd.drop_database()
        elapsed, report = assetd.scan(scan_args)
        check_stats(
            report,
            {"discovered": n_files, "created": n_files, "hashed": n_files},
            f"cold scan {' '.join(scan_args)}".strip(),
        )
        cold.samples.append(elapsed)
        self_reported.append(report.get("duration_s"))
    return cold, median_or_none(self_reported)


def verify_small_hashes(assetd: Assetd, root: Path) -> None:
    expected = xxhsum_digests(root)
    stored = assetd.file_hashes("bench", root)
    if stored.keys() != expected.keys():
        only_db = sorted(stored.keys() - expected.keys())[:5]
        only_disk = sorted(expected.keys() - stored.keys())[:5]
        raise BenchError(
            f"indexed paths differ from the tree: only in DB {only_db}, only on disk {only_disk}"
        )
    wrong = [path for path, digest in expected.items() if stored[path] != digest]
    if wrong:
        first = wrong[0]
        raise BenchError(
            f"{len(wrong)} hashes differ from xxhsum -H2, e.g. {first}: "
            f"stored {stored[first]!r}, xxhsum {expected[first]!r}"
        )


def median_or_none(values: list) -> float | None:
    numbers = [value for value in values if isinstance(value, int | float)]
    return round(statistics.median(numbers), 3) if numbers else None


def bench_large_file(args: argparse.Namespace, workdir: Path) -> list[Row]:
    """One large file in a library of its own: assetd's hashing throughput vs xxhsum's.

    The file lives outside the small-file root so the small-file stats checks stay exact. A scan
    of an empty library, measured alongside, gives assetd's fixed cost (startup, DB open,
    migrations), which is subtracted so the ratio compares hashing with hashing.
    """
    large_root = workdir / "large"
    path = ensure_large_file(large_root, args.large_mb)
    size_mib = args.large_mb
    baseline = measure_baseline("xxhsum large", ["xxhsum", "-H2", str(path)], args.repeat)
    expected = (
        "xxh128:"
        + subprocess.run(
            ["xxhsum", "-H2", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    rows = [
        Row(
            f"baseline xxhsum -H2 ({size_mib} MiB file)",
            baseline.median_s,
            baseline.min_s,
            mib_per_s=size_mib / baseline.median_s,
        )
    ]

    empty_root = workdir / "empty"
    empty_root.mkdir(exist_ok=True)
    database = workdir / "large.db"
    config = workdir / "large.toml"
    write_config(config, database, {"large": large_root, "empty": empty_root})
    assetd = Assetd(args.python, config, database)

    fixed = Timing("assetd empty scan")
    whole = Timing("assetd large scan")
    for _ in range(args.repeat):
        # Both timed scans run on an existing database, so creating it is in neither figure.
        assetd.drop_database()
        assetd.scan(["empty", *args.scan_arg])
        fixed.samples.append(assetd.scan(["empty", *args.scan_arg])[0])
        elapsed, report = assetd.scan(["large", *args.scan_arg])
        check_stats(report, {"created": 1, "hashed": 1}, "large-file scan")
        whole.samples.append(elapsed)
    stored = assetd.file_hashes("large", large_root).get(path.name)
    if stored != expected:
        raise BenchError(f"large file digest mismatch: assetd {stored!r}, xxhsum {expected!r}")

    net = max(whole.median_s - fixed.median_s, 1e-9)
    rows += [
        Row(
            "assetd scan of an empty library",
            fixed.median_s,
            fixed.min_s,
            note="fixed cost, subtracted below",
        ),
        Row(
            f"assetd large-file hash ({size_mib} MiB, net)",
            net,
            max(whole.min_s - fixed.median_s, 1e-9),
            "xxhsum large",
            net / baseline.median_s,
            mib_per_s=size_mib / net,
            note=f"gross {whole.median_s:.3f}s; digest matches xxhsum",
        ),
    ]
    return rows


# --------------------------------------------------------------------------------------------
# output


def format_table(rows: list[Row]) -> str:
    header = ("case", "median s", "min s", "ratio", "vs", "files/s", "MiB/s", "note")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.case,
                f"{row.seconds:.3f}",
                f"{row.min_seconds:.3f}",
                f"{row.ratio:.2f}x" if row.ratio is not None else "",
                row.baseline or "",
                f"{row.files_per_s:,.0f}" if row.files_per_s else "",
                f"{row.mib_per_s:,.0f}" if row.mib_per_s else "",
                row.note,
            )
        )
    widths = [max(len(line[col]) for line in lines) for col in range(len(header))]
    rendered = []
    for index, line in enumerate(lines):
        cells = [
            cell.ljust(width) if col in (0, 4, 7) else cell.rjust(width)
            for col, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        rendered.append("  ".join(cells).rstrip())
        if index == 0:
            rendered.append("  ".join("-" * width for width in widths))
    return "\n".join(rendered)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=100_000, help="small files (default 100000)")
    parser.add_argument("--size", type=int, default=1024, help="bytes per small file (1024)")
    parser.add_argument("--dirs", type=int, default=100, help="leaf directories (default 100)")
    parser.add_argument(
        "--large-mb",
        type=int,
        default=0,
        help="also time one large file of this many MiB (default 0: skip)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the tree and DB go; kept and reused across runs when given "
        "(default: a fresh temporary directory, deleted afterwards)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs `-m daemon` (default: this one)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed runs per case; the median is reported (default 3)",
    )
    parser.add_argument(
        "--scan-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for every `scan` (repeatable), e.g. --scan-arg=--no-enrich",
    )
    parser.add_argument(
        "--skip-no-enrich",
        dest="no_enrich_variant",
        action="store_false",
        help="do not also time a cold scan with --no-enrich (the built-in enrichers are on "
        "by default, so the plain cold scan includes them)",
    )
    parser.add_argument(
        "--no-verify-hashes",
        dest="verify_hashes",
        action="store_false",
        help="skip comparing every stored hash with xxhsum -H2 (uses `files`)",
    )
    parser.add_argument(
        "--baselines-only",
        action="store_true",
        help="time only find/xxhsum (for trying the bench without assetd)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.files < 1 or args.size < 0 or args.repeat < 1 or args.large_mb < 0:
        parser.error("--files and --repeat must be >= 1, --size and --large-mb >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("find", "xargs", "xxhsum", "bash"):
        if shutil.which(tool) is None:
            print(f"scan_bench: `{tool}` not found on PATH", file=sys.stderr)
            return 2
    run_assetd = not args.baselines_only
    if run_assetd and not any(path.is_file() for path in CLI_CANDIDATES):
        print(
            f"scan_bench: no assetd CLI in {REPO_ROOT / 'daemon'} (cli.py or cli/__init__.py); "
            "run with --baselines-only to time only find/xxhsum",
            file=sys.stderr,
        )
        return 2

    owned_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="assetd-bench-")) if owned_workdir else args.workdir
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        root = workdir / "tree"
        started = time.perf_counter()
        reused = ensure_small_tree(root, workdir / TREE_MANIFEST, args.files, args.size, args.dirs)
        generated_s = time.perf_counter() - started
        n_dirs = len(tree_layout(args.files, args.dirs))
        print(
            f"tree: {args.files} files x {args.size} B in {n_dirs} dirs at {root} "
            f"({'reused' if reused else f'generated in {generated_s:.1f}s'})",
            file=sys.stderr,
        )
        rows = bench_small_files(args, workdir, root, run_assetd)
        if run_assetd and args.large_mb > 0:
            rows += bench_large_file(args, workdir)
        elif args.large_mb > 0:
            print("large-file case skipped: it needs assetd", file=sys.stderr)
    except BenchError as exc:
        print(f"scan_bench: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if owned_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    if args.json:
        print(
            json.dumps(
                {
                    "params": {
                        "files": args.files,
                        "size": args.size,
                        "dirs": args.dirs,
                        "large_mb": args.large_mb,
                        "repeat": args.repeat,
                        "python": args.python,
                        "scan_args": args.scan_arg,
                        "cpus": os.cpu_count(),
                        "page_cache": "warm",
                    },
                    "rows": [asdict(row) for row in rows],
                },
                indent=2,
            )
        )
    else:
        print(format_table(rows))
        if not run_assetd:
            print("\n(assetd not run: --baselines-only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
