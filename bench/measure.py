"""Run one command and measure it: wall time and peak RSS, from the kernel's own accounting.

The peak RSS comes from GNU time (`/usr/bin/time -f %M`): `ru_maxrss` of the command as `time`
waited for it. Not from our own `wait4()`: Linux carries the high-water mark of the address
space a process had before `exec` into its `ru_maxrss`, and a child forked from this Python
process starts out with this process's high-water mark, so a 2 MB `find` would be reported as
big as the bench itself. Without GNU time the bench falls back to `wait4()`, and a peak RSS is
then only an upper bound (`rss_source` in the JSON says which). Through `bash -c 'a | b'`, the
figure is that of the biggest process in the pipeline.

Output goes to a temporary file, not a pipe, so reading it cannot hold the child up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from treemem import TreeSampler


class BenchError(RuntimeError):
    """A command failed or gave a result that makes its figure meaningless."""


@dataclass
class Run:
    wall_s: float
    peak_rss_kib: int
    returncode: int
    stdout: str
    peak_tree_mib: float | None = None


GNU_TIME = "/usr/bin/time"
TREE_SAMPLE_S = 0.25  # each sample reads /proc: a few ms of CPU, kept off the measured cores
RSS_SOURCE = "GNU time" if shutil.which(GNU_TIME) else "wait4 (upper bound)"


def run_command(argv: list[str], *, env: dict[str, str] | None = None,
                cwd: Path | None = None, check: bool = True, sample_tree: bool = False,
                keep_stdout: bool = True) -> Run:
    """Run argv to its end; with `sample_tree`, also the peak PSS of its process tree.
    Without `keep_stdout` its output goes to /dev/null (a line per file: 200 MB at 1M)."""
    with (tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err,
          tempfile.NamedTemporaryFile("r") as rss):
        timed = argv
        if RSS_SOURCE == "GNU time":
            timed = [GNU_TIME, "-q", "-f", "%M", "-o", rss.name, *argv]
        started = time.perf_counter()
        proc = subprocess.Popen(timed, stdin=subprocess.DEVNULL,
                                stdout=out if keep_stdout else subprocess.DEVNULL, stderr=err,
                                env=env, cwd=cwd)
        sampler = TreeSampler(proc.pid, TREE_SAMPLE_S) if sample_tree else None
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - started
        peak_tree_mib = sampler.stop() if sampler else None
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        reported = rss.read().split() if timed is not argv else []
        peak_kib = int(reported[-1]) if reported and reported[-1].isdigit() else usage.ru_maxrss
        run = Run(wall_s, peak_kib, proc.returncode, out.read(), peak_tree_mib)
        if check and run.returncode != 0:
            tail = err.read().strip().splitlines()[-3:]
            raise BenchError(f"{' '.join(argv)} exited {run.returncode}: {' | '.join(tail)}")
    return run


def shell(command: str) -> list[str]:
    return ["bash", "-o", "pipefail", "-c", command]


def quote(text: str | Path) -> str:
    return "'" + str(text).replace("'", "'\\''") + "'"


@dataclass
class Samples:
    """The runs of one figure; the minimum is reported (the least disturbed by neighbours)."""

    walls: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    tree_mib: list[float] = field(default_factory=list)

    def add(self, run: Run) -> Run:
        self.walls.append(run.wall_s)
        self.rss_kib.append(run.peak_rss_kib)
        if run.peak_tree_mib is not None:
            self.tree_mib.append(run.peak_tree_mib)
        return run

    @property
    def min_s(self) -> float:
        return min(self.walls)

    def as_json(self) -> dict:
        figures = {
            "min_s": round(self.min_s, 4),
            "samples_s": [round(wall, 4) for wall in self.walls],
            "peak_rss_mib": round(max(self.rss_kib) / 1024, 1),
        }
        if self.tree_mib:
            figures["peak_tree_pss_mib"] = max(self.tree_mib)
        return figures
