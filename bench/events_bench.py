"""The daemon under watch: event latency, a burst, and the cost of idling over a big library.

Starts the real `python -m daemon run` over one library (SQLite in the work dir) and measures:

    startup        the startup scan of the pre-generated tree, until READY (daemon.ready)
    idle CPU       utime + stime of the daemon from /proc/PID/stat over --idle-seconds
    RSS            VmRSS / VmHWM from /proc/PID/status after the idle window
    latency        one file written, until its row has the file's hash (p50 / p95 / max)
    burst          --burst-files written as fast as possible; seconds from the last write
                   until every one of them is hashed in the index, and how many batches it took

The latency clock stops when the bench, polling the database every --poll-ms, sees the hash:
the figures include up to one poll interval and always include `settle` (the quiet time the
daemon waits for on purpose, 200 ms by default). Nothing is asserted: figures are reported.
The machine is shared; run it more than once before reading much into one number.

Stdlib only. See bench/README.md ("events_bench.py").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    pass


@dataclass
class Results:
    tree_files: int = 0
    startup_s: float = 0.0
    idle_window_s: float = 0.0
    idle_cpu_percent: float = 0.0
    idle_ticks: int = 0
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    burst_files: int = 0
    burst_write_s: float = 0.0
    burst_indexed_after_last_write_s: float = 0.0
    burst_batches: int = 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree-files", type=int, default=100_000,
                   help="files in the library before the daemon starts (default 100,000)")
    p.add_argument("--tree-dirs", type=int, default=1000, help="directories they are spread over")
    p.add_argument("--idle-seconds", type=float, default=30.0, help="idle CPU window")
    p.add_argument("--latency-files", type=int, default=200,
                   help="files written one at a time for the latency figures")
    p.add_argument("--burst-files", type=int, default=10_000)
    p.add_argument("--settle", default="200ms", help="[daemon] settle (default: the default)")
    p.add_argument("--tick-interval", default="60s",
                   help="[daemon] tick_interval (default: the default)")
    p.add_argument("--enrich", action="store_true",
                   help="keep the built-in enrichers on (off by default: the first ticks over a "
                   "fresh 100k-file library would be enriching, not idling)")
    p.add_argument("--poll-ms", type=float, default=5.0, help="latency polling interval")
    p.add_argument("--workdir", type=Path, help="keep the work dir (tree reused if it matches)")
    p.add_argument("--python", default=sys.executable, help="interpreter running the daemon")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    return p.parse_args(argv)


def ensure_tree(root: Path, files: int, dirs: int) -> None:
    manifest = root.parent / "tree.json"
    wanted = {"files": files, "dirs": dirs}
    if root.is_dir() and manifest.is_file() and json.loads(manifest.read_text()) == wanted:
        return
    shutil.rmtree(root, ignore_errors=True)
    per_dir = -(-files // max(dirs, 1)) if files else 0
    for index in range(files):
        directory = root / f"d{index // per_dir:04d}"
        if index % per_dir == 0:
            directory.mkdir(parents=True)
        (directory / f"f{index:06d}.dat").write_bytes(os.urandom(1024))
    root.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(wanted))


def write_config(workdir: Path, root: Path, args: argparse.Namespace) -> Path:
    lines = [
        "[daemon]",
        f'database = "sqlite:///{workdir}/index.db"',
        f'settle = "{args.settle}"',
        f'tick_interval = "{args.tick_interval}"',
        "",
        "[[library]]",
        'name = "bench"',
        f'path = "{root}"',
    ]
    if not args.enrich:
        for name in ("mime", "image"):
            lines += ["", "[[enricher]]", f'name = "{name}"', "enabled = false"]
    config = workdir / "assetd.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


class Daemon:
    def __init__(self, python: str, config: Path, log_path: Path):
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 (closed in stop())
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "ASSETD_CONFIG"):
            env.pop(var, None)
        self.proc = subprocess.Popen(
            [python, "-m", "daemon", "--config", str(config), "--log-format", "json", "run"],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    def events(self, name: str) -> list[dict]:
        found = []
        for line in self.log_path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("event") == name:
                found.append(entry)
        return found

    def wait_event(self, name: str, timeout_s: float) -> None:
        wait_until(lambda: self.events(name), timeout_s, f"log event {name}", self)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def rss_mib(self) -> tuple[float, float]:
        status = dict(
            line.split(":", 1) for line in
            Path(f"/proc/{self.proc.pid}/status").read_text().splitlines() if ":" in line
        )
        return (int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait_until(predicate, timeout_s: float, what: str, daemon: Daemon | None = None,
               poll_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if daemon is not None and daemon.proc.poll() is not None:
            raise BenchError(f"the daemon exited {daemon.proc.returncode} while waiting for "
                             f"{what}; see {daemon.log_path}")
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)


class Index:
    def __init__(self, db_path: Path):
        self.conn = sqlite3.connect(db_path, timeout=60)

    def hash_of(self, rel_path: bytes) -> str | None:
        row = self.conn.execute("SELECT content_hash FROM file WHERE rel_path = ?",
                                (rel_path,)).fetchone()
        return row[0] if row else None

    def hashed_under(self, prefix: bytes) -> int:
        return self.conn.execute(
            "SELECT COUNT(*) FROM file WHERE rel_path >= ? AND rel_path < ?"
            " AND content_hash IS NOT NULL AND NOT is_missing",
            (prefix + b"/", prefix + b"0"),
        ).fetchone()[0]


def measure_idle(daemon: Daemon, seconds: float, results: Results) -> None:
    ticks_before = len(daemon.events("reconcile.finished"))
    cpu_before, started = daemon.cpu_s(), time.monotonic()
    time.sleep(seconds)
    cpu_after, elapsed = daemon.cpu_s(), time.monotonic() - started
    results.idle_window_s = round(elapsed, 1)
    results.idle_cpu_percent = round(100 * (cpu_after - cpu_before) / elapsed, 2)
    results.idle_ticks = len(daemon.events("reconcile.finished")) - ticks_before
    results.rss_mib, results.peak_rss_mib = (round(x, 1) for x in daemon.rss_mib())


def measure_latency(daemon: Daemon, index: Index, root: Path, files: int, poll_s: float,
                    results: Results) -> None:
    latencies_ms = []
    for i in range(files):
        name = f"latency-{i:05d}.dat"
        (root / name).write_bytes(os.urandom(4096))
        written = time.monotonic()
        wait_until(lambda n=name: index.hash_of(n.encode()), 30, f"{name} hashed", daemon,
                   poll_s=poll_s)
        latencies_ms.append((time.monotonic() - written) * 1000)
    latencies_ms.sort()
    results.latency_ms = {
        "p50": round(statistics.median(latencies_ms), 1),
        "p95": round(latencies_ms[max(0, round(0.95 * len(latencies_ms)) - 1)], 1),
        "max": round(latencies_ms[-1], 1),
        "files": len(latencies_ms),
    }


def measure_burst(daemon: Daemon, index: Index, root: Path, files: int,
                  results: Results) -> None:
    batches_before = len(daemon.events("scan.finished"))
    burst = root / "burst"
    started = time.monotonic()
    for i in range(files):
        directory = burst / f"d{i // 100:03d}"
        if i % 100 == 0:
            directory.mkdir(parents=True)
        (directory / f"f{i:05d}.dat").write_bytes(os.urandom(1024))
    last_write = time.monotonic()
    wait_until(lambda: index.hashed_under(b"burst") == files, 300, f"{files} burst files",
               daemon, poll_s=0.02)
    done = time.monotonic()
    results.burst_files = files
    results.burst_write_s = round(last_write - started, 2)
    results.burst_indexed_after_last_write_s = round(done - last_write, 2)

    def batches() -> list[dict]:
        return [e for e in daemon.events("scan.finished")[batches_before:] if e.get("created")]

    # The rows are committed just before their scan.finished line is written.
    wait_until(lambda: sum(e["created"] for e in batches()) >= files, 30, "burst log lines",
               daemon)
    results.burst_batches = len(batches())


def run(args: argparse.Namespace, workdir: Path) -> Results:
    results = Results(tree_files=args.tree_files)
    root = workdir / "tree"
    started = time.monotonic()
    ensure_tree(root, args.tree_files, args.tree_dirs)
    print(f"tree: {args.tree_files:,} files ready in {time.monotonic() - started:.1f}s",
          file=sys.stderr)
    for stale in ("index.db", "index.db-wal", "index.db-shm", "latency", "burst"):
        target = (root / stale) if stale in ("latency", "burst") else workdir / stale
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    for stale in root.glob("latency-*.dat"):
        stale.unlink()
    shutil.rmtree(workdir / "index.db-locks", ignore_errors=True)
    config = write_config(workdir, root, args)
    daemon = Daemon(args.python, config, workdir / "daemon.log")
    try:
        started = time.monotonic()
        daemon.wait_event("daemon.ready", 3600)
        results.startup_s = round(time.monotonic() - started, 1)
        print(f"startup scan done in {results.startup_s}s; idling {args.idle_seconds:.0f}s",
              file=sys.stderr)
        measure_idle(daemon, args.idle_seconds, results)
        index = Index(workdir / "index.db")
        print(f"latency: {args.latency_files} files one at a time", file=sys.stderr)
        measure_latency(daemon, index, root, args.latency_files, args.poll_ms / 1000, results)
        print(f"burst: {args.burst_files:,} files", file=sys.stderr)
        measure_burst(daemon, index, root, args.burst_files, results)
    finally:
        daemon.stop()
    return results


def report(results: Results, args: argparse.Namespace) -> None:
    lat = results.latency_ms
    print(f"library watched:  {results.tree_files:,} files; startup scan to READY "
          f"{results.startup_s}s")
    print(f"idle CPU:         {results.idle_cpu_percent}% over {results.idle_window_s}s "
          f"({results.idle_ticks} tick(s) in the window, tick_interval {args.tick_interval})")
    print(f"RSS:              {results.rss_mib} MiB (peak {results.peak_rss_mib} MiB)")
    print(f"event → hashed:   p50 {lat['p50']} ms, p95 {lat['p95']} ms, max {lat['max']} ms "
          f"({lat['files']} files, settle {args.settle}, polled every {args.poll_ms:g} ms)")
    print(f"burst:            {results.burst_files:,} files written in {results.burst_write_s}s, "
          f"all hashed {results.burst_indexed_after_last_write_s}s after the last write, in "
          f"{results.burst_batches} batches")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path("/proc/self/stat").exists():
        print("events_bench: needs Linux (/proc, inotify)", file=sys.stderr)
        return 2
    owned = args.workdir is None
    workdir = (Path(tempfile.mkdtemp(prefix="assetd-events-")) if owned else args.workdir)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = run(args, workdir)
    except BenchError as exc:
        print(f"events_bench: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(asdict(results)))
    else:
        report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
