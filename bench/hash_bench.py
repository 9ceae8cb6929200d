"""In-process microbenchmark of ways to feed files to XXH3-128 (`xxhash.xxh3_128`).

For the record: which read loop assetd's hasher should use, and how far any of them is from
`xxhsum -H2` (C, one process) on the same bytes. Each strategy's median is reported as a ratio to
the xxhsum median measured in the same run. Files are read once untimed first so every case runs
from the page cache (dropping caches needs privileges a container does not have).

Two sections:
  large  one file (--size-mb, default 512 MiB): throughput of the read loop.
  small  --small-files N files of --small-size bytes (default off): per-file overhead (open,
         fstat, read, close), which is what a scan of many small files pays; the baseline is
         `xargs -0 xxhsum -H2` over the same files.

Strategies run round-robin (one sample of each, then the next round), so a burst of load from a
neighbour on the shared machine spreads over all of them instead of landing on one.

When `daemon/scan/hash.py` exists, its `hash_file` is timed too (`project hash_file`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import xxhash

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_HASH_MODULE = REPO_ROOT / "daemon" / "scan" / "hash.py"
MIB = 1024 * 1024
SMALL_FILES_PER_DIR = 1000

Strategy = Callable[[bytes], str]


def read_bytes(chunk_size: int) -> Strategy:
    """f.read(chunk): a fresh bytes object per chunk (the naive loop)."""

    def run(path: bytes) -> str:
        hasher = xxhash.xxh3_128()
        with open(path, "rb", buffering=0) as handle:
            while chunk := handle.read(chunk_size):
                hasher.update(chunk)
        return hasher.hexdigest()

    return run


def readinto_buffer(chunk_size: int) -> Strategy:
    """readinto a reused bytearray; update(buf) for full chunks, one copying slice at the tail."""
    buffer = bytearray(chunk_size)

    def run(path: bytes) -> str:
        hasher = xxhash.xxh3_128()
        with open(path, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                hasher.update(buffer if count == chunk_size else buffer[:count])
        return hasher.hexdigest()

    return run


def readinto_fresh_buffer(chunk_size: int) -> Strategy:
    """readinto + update(buf) with a new bytearray per call: the zero-fill is paid per file."""

    def run(path: bytes) -> str:
        buffer = bytearray(chunk_size)
        hasher = xxhash.xxh3_128()
        with open(path, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                hasher.update(buffer if count == chunk_size else buffer[:count])
        return hasher.hexdigest()

    return run


def readinto_memoryview(chunk_size: int) -> Strategy:
    """readinto a reused bytearray; update(view[:n]) every time (zero-copy slice)."""
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)

    def run(path: bytes) -> str:
        hasher = xxhash.xxh3_128()
        with open(path, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                hasher.update(view[:count])
        return hasher.hexdigest()

    return run


def whole_mmap(path: bytes) -> str:
    """mmap the file and hash it in one update() call: no read() copies at all.

    Fast, but a file truncated while mapped raises SIGBUS, which kills the process: a watcher
    hashing files that are still being written must not use it.
    """
    with open(path, "rb", buffering=0) as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return xxhash.xxh3_128().hexdigest()
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return xxhash.xxh3_128(mapped).hexdigest()


def raw_fd_guarded(path: bytes) -> str:
    """os.open + fstat + os.read to EOF + fstat + close: the torn-read guard with no file object."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        before = os.fstat(fd)
        hasher = xxhash.xxh3_128()
        while chunk := os.read(fd, MIB):
            hasher.update(chunk)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise RuntimeError(f"{path!r} changed while it was read")
    return hasher.hexdigest()


def project_strategy() -> Strategy | None:
    """assetd's own hasher, adapted to return the bare hex digest; None until it exists."""
    if not PROJECT_HASH_MODULE.is_file():
        return None
    sys.path.insert(0, str(REPO_ROOT))
    project_hash = importlib.import_module("daemon.scan.hash")

    def run(path: bytes) -> str:
        return digest_hex(project_hash.hash_file(path))

    return run


def digest_hex(result: object) -> str:
    """Find the `xxh128:<hex>` string in whatever hash_file returns (str, tuple or object)."""
    candidates: list[object] = [result]
    if isinstance(result, tuple | list):
        candidates += list(result)
    candidates += [getattr(result, name, None) for name in ("content_hash", "hash", "digest")]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.startswith("xxh128:"):
            return candidate.removeprefix("xxh128:")
    raise TypeError(f"cannot find an xxh128: digest in hash_file's result {result!r}")


def build_strategies(chunk_sizes: list[int], *, small: bool) -> dict[str, Strategy]:
    strategies: dict[str, Strategy] = {}
    for chunk_size in chunk_sizes:
        label = f"{chunk_size // 1024} KiB"
        strategies[f"read() new bytes, {label}"] = read_bytes(chunk_size)
        strategies[f"readinto + update(buf), {label}"] = readinto_buffer(chunk_size)
        if small:
            strategies[f"same, new buffer per file, {label}"] = readinto_fresh_buffer(chunk_size)
        strategies[f"readinto + update(view[:n]), {label}"] = readinto_memoryview(chunk_size)
    strategies["mmap + one update()"] = whole_mmap
    if small:
        strategies["os.open/fstat/os.read/fstat (guarded)"] = raw_fd_guarded
    project = project_strategy()
    if project is not None:
        strategies["project hash_file"] = project
    return strategies


# --------------------------------------------------------------------------------------------
# data


def ensure_large_file(path: Path, size_mib: int) -> None:
    if path.is_file() and path.stat().st_size == size_mib * MIB:
        return
    with open(path, "wb") as handle:
        for _ in range(size_mib):
            handle.write(os.urandom(MIB))


def make_small_files(root: Path, count: int, size: int) -> list[bytes]:
    paths = []
    for index in range(count):
        directory = root / f"d{index // SMALL_FILES_PER_DIR:04d}"
        if index % SMALL_FILES_PER_DIR == 0:
            directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"f{index:06d}.dat"
        path.write_bytes(os.urandom(size))
        paths.append(os.fsencode(path))
    return paths


def warm_page_cache(paths: list[bytes]) -> None:
    buffer = bytearray(4 * MIB)
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass


def xxhsum_over(paths: list[bytes]) -> tuple[float, list[str]]:
    """Time `xargs -0 xxhsum -H2` over `paths` (one xxhsum per xargs batch, like the scan bench)."""
    started = time.perf_counter()
    completed = subprocess.run(
        ["xargs", "-0", "xxhsum", "-H2"],
        input=b"\0".join(paths),
        capture_output=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    return elapsed, [line.split()[0].decode() for line in completed.stdout.splitlines()]


# --------------------------------------------------------------------------------------------
# measuring


def run_section(
    paths: list[bytes], strategies: dict[str, Strategy], repeat: int
) -> dict[str, list[float]]:
    """Round-robin samples of xxhsum and every strategy over `paths`; digests are checked."""
    warm_page_cache(paths)
    _, expected = xxhsum_over(paths)  # untimed warm-up; also the reference digests
    samples: dict[str, list[float]] = {"xxhsum -H2": [], **{name: [] for name in strategies}}
    for _ in range(repeat):
        samples["xxhsum -H2"].append(xxhsum_over(paths)[0])
        for name, strategy in strategies.items():
            started = time.perf_counter()
            digests = [strategy(path) for path in paths]
            samples[name].append(time.perf_counter() - started)
            if digests != expected:
                bad = next(i for i, digest in enumerate(digests) if digest != expected[i])
                raise RuntimeError(
                    f"{name} gave {digests[bad]} for {paths[bad]!r}, xxhsum {expected[bad]}"
                )
    return samples


def summarize(section: str, samples: dict[str, list[float]], n_files: int, mib: float) -> list:
    baseline_s = statistics.median(samples["xxhsum -H2"])
    rows = []
    for name, times in samples.items():
        median_s = statistics.median(times)
        rows.append(
            {
                "section": section,
                "case": name,
                "median_s": median_s,
                "min_s": min(times),
                "ratio": median_s / baseline_s,
                "mib_per_s": mib / median_s,
                "us_per_file": median_s / n_files * 1e6,
            }
        )
    return rows


def print_rows(title: str, rows: list[dict]) -> None:
    width = max(len(row["case"]) for row in rows)
    print(f"\n{title}")
    print(f"{'case'.ljust(width)}  median s   min s  vs xxhsum   MiB/s  us/file")
    print(f"{'-' * width}  --------  ------  ---------  ------  -------")
    for row in rows:
        print(
            f"{row['case'].ljust(width)}  {row['median_s']:8.3f}  {row['min_s']:6.3f}  "
            f"{row['ratio']:8.2f}x  {row['mib_per_s']:6,.0f}  {row['us_per_file']:7,.1f}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size-mb", type=int, default=512, help="large file size in MiB (512; 0 skips it)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the data goes; the large file is kept and reused (default: a temporary dir)",
    )
    parser.add_argument(
        "--chunk-kib",
        default="1024",
        help="comma-separated chunk sizes in KiB (default 1024), e.g. 64,1024,8192",
    )
    parser.add_argument(
        "--small-files", type=int, default=0, help="also time N small files (default 0: skip)"
    )
    parser.add_argument("--small-size", type=int, default=1024, help="bytes per small file (1024)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; median reported (5)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.size_mb < 0 or args.small_files < 0 or args.repeat < 1:
        parser.error("--size-mb and --small-files must be >= 0, --repeat >= 1")
    if args.size_mb == 0 and args.small_files == 0:
        parser.error("nothing to do: --size-mb 0 and --small-files 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("xxhsum") is None or shutil.which("xargs") is None:
        print("hash_bench: `xxhsum` and `xargs` must be on PATH", file=sys.stderr)
        return 2
    chunk_sizes = [int(part) * 1024 for part in args.chunk_kib.split(",") if part.strip()]
    owned = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="assetd-hash-bench-")) if owned else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    try:
        if args.size_mb:
            large = workdir / f"large-{args.size_mb}MiB.bin"
            ensure_large_file(large, args.size_mb)
            samples = run_section(
                [os.fsencode(large)], build_strategies(chunk_sizes, small=False), args.repeat
            )
            rows += summarize("large", samples, 1, args.size_mb)
        if args.small_files:
            small_root = workdir / "small"
            shutil.rmtree(small_root, ignore_errors=True)
            paths = make_small_files(small_root, args.small_files, args.small_size)
            samples = run_section(paths, build_strategies([MIB], small=True), args.repeat)
            rows += summarize(
                "small", samples, args.small_files, args.small_files * args.small_size / MIB
            )
            shutil.rmtree(small_root, ignore_errors=True)
    except RuntimeError as exc:
        print(f"hash_bench: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)

    params = {
        "size_mb": args.size_mb,
        "small_files": args.small_files,
        "small_size": args.small_size,
        "repeat": args.repeat,
        "xxhash": xxhash.VERSION,
        "libxxhash": xxhash.XXHASH_VERSION,
        "page_cache": "warm",
    }
    if args.json:
        print(json.dumps({"params": params, "rows": rows}, indent=2))
        return 0
    if args.size_mb:
        print_rows(
            f"large: one {args.size_mb} MiB file",
            [row for row in rows if row["section"] == "large"],
        )
    if args.small_files:
        print_rows(
            f"small: {args.small_files} files x {args.small_size} B",
            [row for row in rows if row["section"] == "small"],
        )
    print(
        f"\n(page cache warm, {args.repeat} rounds, median; python-xxhash {xxhash.VERSION}, "
        f"libxxhash {xxhash.XXHASH_VERSION}; xxhsum is the Debian binary)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
