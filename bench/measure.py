"""Run one command and measure it: wall time and peak RSS, from the kernel's own accounting.

The peak RSS is `ru_maxrss` of `wait4()` on the child: the largest resident set of the child or
of any descendant it waited for, so `bash -c 'find | xargs xxhsum'` reports its biggest process.
Output goes to a temporary file, not a pipe, so reading it cannot hold the child up and the
child can be reaped by `wait4` itself.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class BenchError(RuntimeError):
    """A command failed or gave a result that makes its figure meaningless."""


@dataclass
class Run:
    wall_s: float
    peak_rss_kib: int
    returncode: int
    stdout: str


def run_command(argv: list[str], *, env: dict[str, str] | None = None,
                cwd: Path | None = None, check: bool = True) -> Run:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        run = Run(wall_s, usage.ru_maxrss, proc.returncode, out.read())
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

    def add(self, run: Run) -> Run:
        self.walls.append(run.wall_s)
        self.rss_kib.append(run.peak_rss_kib)
        return run

    @property
    def min_s(self) -> float:
        return min(self.walls)

    def as_json(self) -> dict:
        return {
            "min_s": round(self.min_s, 4),
            "samples_s": [round(wall, 4) for wall in self.walls],
            "peak_rss_mib": round(max(self.rss_kib) / 1024, 1),
        }
