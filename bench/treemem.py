"""Memory of a whole process tree, sampled: a build that hashes in worker processes uses the sum.

The kernel's peak RSS (`ru_maxrss`, `VmHWM`) is per process: for a scan that hashes in a pool of
worker processes it is the biggest one, not what the scan costs the machine. So while a command
runs, a thread sums the PSS (`/proc/PID/smaps_rollup`: resident pages, shared ones divided among
the processes sharing them, so nothing is counted twice) of the process and all its descendants
every `interval_s`, and keeps the largest sum. A sample can miss a peak shorter than the
interval, so this is a lower bound of the true peak, next to the exact per-process figure.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def tree_pss_kib(root_pid: int) -> int:
    children = _children_map()
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


class TreeSampler:
    """Samples `tree_pss_kib(pid)` in a thread until stopped; `take_peak` starts a new phase."""

    def __init__(self, pid: int, interval_s: float = 0.1):
        self.pid = pid
        self.interval_s = interval_s
        self.peak_kib = 0
        self.last_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-pss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = tree_pss_kib(self.pid)
            if sample:
                self.last_kib = sample
                self.peak_kib = max(self.peak_kib, sample)
            self._stop.wait(self.interval_s)

    def take_peak(self) -> float:
        """The peak since the last call, in MiB; the next phase starts from the current sample."""
        peak, self.peak_kib = self.peak_kib, self.last_kib
        return round(peak / 1024, 1)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak_kib / 1024, 1)
