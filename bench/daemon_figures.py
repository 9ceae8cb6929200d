"""The daemon figures: `assetd --config CFG run` over the tree, on an empty database.

In order, on one daemon process:

    startup      process start → `daemon.ready` (the startup scan of every file); peak RSS
                 (VmHWM) at that point
    idle         after the first tick (in builds whose startup scan did not settle its parts
                 it moved every row of a fresh index to ready, which is work, not idling),
                 utime + stime over --idle-seconds divided by the window:
                 % of one core, ticks included; then the RSS (steady)
    SIGHUP       VmHWM is reset (/proc/PID/clear_refs), SIGHUP sent; seconds until the rescan's
                 `scan.finished` (every file seen again), and the peak RSS through it
    latency      one file written at a time (in a directory that already exists); the clock
                 stops when the daemon logs the `scan.finished` that created it (the row is
                 committed before that line is written); settle is included on purpose.
                 Alongside, `assetd changes --follow --json` runs as a consumer would: the
                 second clock stops when its `created` line for the file arrives (stamped by
                 a reader thread as it comes), so it is the whole way from the write to a
                 script that follows the change feed
    burst        --burst-files files written as fast as Python can into 100 new directories;
                 seconds from the last write until `scan.finished` lines account for all of
                 them, and how many batches that took

The log (JSON, one object a line) is the probe, not the database: it works on both backends and
for any build that keeps the contract's log events, whatever its schema.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

from assetd import Assetd, write_config
from measure import TREE_SAMPLE_S, BenchError
from tree import LIVE_DIR, Tree, clear_live
from treemem import TreeSampler

CLK_TCK = os.sysconf("SC_CLK_TCK")


class DaemonLog:
    """Reads the daemon's JSON log as it grows, keeping every parsed line."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: list[dict] = []
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[dict]:
        with open(self.path, "rb") as log:
            log.seek(self._offset)
            data = log.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        new = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                new.append(entry)
        self.entries += new
        return new

    def since(self, mark: int, event: str) -> list[dict]:
        return [e for e in self.entries[mark:] if e.get("event") == event]


class Daemon:
    def __init__(self, assetd: Assetd, config: Path, log_path: Path):
        self.log_path = log_path
        self._log_file = open(log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [*assetd.argv, "--config", str(config), "--log-format", "json", "run"],
            env=assetd.env, stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=self._log_file, start_new_session=True,
        )
        self.log = DaemonLog(log_path)
        self.tree = TreeSampler(self.proc.pid, TREE_SAMPLE_S)

    def wait(self, predicate, timeout_s: float, what: str, poll_s: float = 0.02):
        deadline = time.monotonic() + timeout_s
        while True:
            self.log.poll()
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise BenchError(f"the daemon exited {self.proc.returncode} while waiting for "
                                 f"{what}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout_s:.0f}s waiting for {what}; see "
                                 f"{self.log_path}")
            time.sleep(poll_s)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: every thread

    def memory_mib(self) -> dict[str, float]:
        status = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                status[key] = round(int(value.split()[0]) / 1024, 1)
        return status

    def reset_peak(self) -> bool:
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def stop(self) -> float:
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log_file.close()
        self.tree.stop()
        return time.monotonic() - started


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[max(0, round(fraction * len(sorted_values)) - 1)]


def created(entries: list[dict]) -> int:
    return sum(int(e.get("created") or 0) for e in entries)


def measure_daemon(assetd: Assetd, backend, tree: Tree, workdir: Path, options) -> dict:
    backend.reset()
    clear_live(tree.root)
    daemon_keys = {"settle": options.settle, "tick_interval": options.tick_interval,
                   "full_rescan_interval": "24h"}
    config = write_config(workdir / f"daemon-{backend.name}.toml", backend.url,
                          {"bench": tree.root}, daemon=daemon_keys,
                          enrichers_off=() if options.daemon_enrich else ("mime", "image"))
    figures: dict = {"settle": options.settle, "tick_interval": options.tick_interval,
                     "enrichers": "default" if options.daemon_enrich else "off"}
    daemon = Daemon(assetd, config, workdir / f"daemon-{backend.name}.log")
    try:
        started = time.monotonic()
        daemon.wait(lambda: daemon.log.since(0, "daemon.ready"), 7200, "daemon.ready", 0.05)
        figures["startup_s"] = round(time.monotonic() - started, 2)
        figures["startup_indexed"] = created(daemon.log.since(0, "scan.finished"))
        figures["startup_peak_rss_mib"] = daemon.memory_mib()["VmHWM"]
        figures["startup_peak_tree_pss_mib"] = daemon.tree.take_peak()

        figures["first_tick"] = wait_first_tick(daemon, options.tick_interval_s)
        cpu_before, window_start = daemon.cpu_s(), time.monotonic()
        time.sleep(options.idle_seconds)
        cpu_used = daemon.cpu_s() - cpu_before
        window_s = time.monotonic() - window_start
        figures["idle_window_s"] = round(window_s, 1)
        figures["idle_cpu_percent"] = round(100 * cpu_used / window_s, 3)
        figures["steady_rss_mib"] = daemon.memory_mib()["VmRSS"]
        figures["steady_tree_pss_mib"] = round(daemon.tree.last_kib / 1024, 1)
        daemon.tree.take_peak()

        figures["sighup_peak_reset"] = daemon.reset_peak()
        daemon.log.poll()
        mark = len(daemon.log.entries)
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait(lambda: sum(int(e.get("discovered") or 0) for e in
                                daemon.log.since(mark, "scan.finished")) >= tree.files,
                    7200, "the SIGHUP rescan's scan.finished", 0.05)
        figures["sighup_rescan_s"] = round(time.monotonic() - started, 2)
        figures["sighup_peak_rss_mib"] = daemon.memory_mib()["VmHWM"]
        figures["sighup_peak_tree_pss_mib"] = daemon.tree.take_peak()

        follower = Follower(assetd, config, workdir / f"follow-{backend.name}.err")
        try:
            figures["latency_ms"], figures["follow_latency_ms"] = measure_latency(
                daemon, follower, tree.root, options)
        finally:
            follower.stop()
        figures["burst"] = measure_burst(daemon, tree.root, options.burst_files)
    finally:
        figures["stop_s"] = round(daemon.stop(), 2)
        clear_live(tree.root)
    return figures


def wait_first_tick(daemon: Daemon, tick_interval_s: float) -> dict | None:
    """Wait out the first tick after READY: builds whose startup scan did not settle its parts
    moved every row of a fresh index to `ready` there (seconds of work at 1M files), which is
    not idling. It logs `reconcile.finished` when it changed something; a first tick with
    nothing to do (a startup scan that settled its parts) logs nothing, so after two tick
    intervals (and 10 s) the window starts anyway and this is None."""
    ready_at = time.monotonic()
    mark = next(i for i, e in enumerate(daemon.log.entries) if e.get("event") == "daemon.ready")
    try:
        daemon.wait(lambda: daemon.log.since(mark, "reconcile.finished"),
                    2 * tick_interval_s + 10, "the first tick", poll_s=0.05)
    except BenchError:
        if daemon.proc.poll() is not None:
            raise
        return None
    first = daemon.log.since(mark, "reconcile.finished")[0]
    time.sleep(1)
    return {"seen_after_ready_s": round(time.monotonic() - ready_at - 1, 2),
            "duration_s": first.get("duration_s"), "changes": first.get("changes")}


class Follower:
    """`assetd changes --follow --json`, each `created` line's path and arrival time queued."""

    def __init__(self, assetd: Assetd, config: Path, err_path: Path):
        self._err = open(err_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [*assetd.argv, "--config", str(config), "changes", "--follow", "--json"],
            env=assetd.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._err, start_new_session=True)
        self.created: queue.Queue[tuple[str, float]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            arrived = time.monotonic()
            change = json.loads(line)
            if change.get("kind") == "created":
                self.created.put((change["path"], arrived))

    def wait_created(self, path_suffix: str, timeout_s: float) -> float:
        """When the `created` line of the path ending in `path_suffix` arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                path, arrived = self.created.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchError(f"`assetd changes --follow` printed no created line for "
                                 f"{path_suffix} within {timeout_s:.0f}s") from None
            if path.endswith(path_suffix):
                return arrived

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(30)
        self._err.close()


def measure_latency(daemon: Daemon, follower: Follower, root: Path, options
                    ) -> tuple[dict, dict]:
    directory = root / LIVE_DIR / "latency"
    directory.mkdir(parents=True)
    # The follower first prints the whole feed so far (a line per indexed file): a marker
    # file tells when it has caught up. The new directory is an event of its own too.
    (directory / "caught-up.dat").write_bytes(b"marker")
    follower.wait_created("latency/caught-up.dat", 3600)
    time.sleep(max(0.5, 5 * options.settle_s))
    latencies_ms, follow_ms = [], []
    for index in range(options.latency_files):
        daemon.log.poll()
        mark = len(daemon.log.entries)
        name = f"f{index:04d}.dat"
        (directory / name).write_bytes(os.urandom(4096))
        written = time.monotonic()
        daemon.wait(lambda m=mark: created(daemon.log.since(m, "scan.finished")) >= 1, 60,
                    f"latency file {index} committed", poll_s=0.002)
        latencies_ms.append((time.monotonic() - written) * 1000)
        follow_ms.append((follower.wait_created("latency/" + name, 60) - written) * 1000)
        time.sleep(0.02)
    return _summary(latencies_ms), _summary(follow_ms)


def _summary(values_ms: list[float]) -> dict:
    values_ms = sorted(values_ms)
    return {
        "files": len(values_ms),
        "p50": round(statistics.median(values_ms), 1),
        "p95": round(percentile(values_ms, 0.95), 1),
        "max": round(values_ms[-1], 1),
    }


def measure_burst(daemon: Daemon, root: Path, files: int) -> dict:
    burst = root / LIVE_DIR / "burst"
    daemon.log.poll()
    mark = len(daemon.log.entries)
    started = time.monotonic()
    for index in range(files):
        directory = burst / f"d{index // 100:03d}"
        if index % 100 == 0:
            directory.mkdir(parents=True)
        (directory / f"f{index:05d}.dat").write_bytes(os.urandom(1024))
    last_write = time.monotonic()
    daemon.wait(lambda: created(daemon.log.since(mark, "scan.finished")) >= files, 600,
                f"{files} burst files committed", poll_s=0.005)
    done = time.monotonic()
    return {
        "files": files,
        "write_s": round(last_write - started, 2),
        "last_commit_after_last_write_s": round(done - last_write, 3),
        "batches": sum(1 for e in daemon.log.since(mark, "scan.finished") if e.get("created")),
    }
