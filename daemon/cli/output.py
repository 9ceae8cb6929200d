"""Output helpers: stable JSON, human numbers, and the TTY progress bar on stderr."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from typing import Any

from daemon.scan.scanner import Progress
from daemon.units import human_bytes, human_rate


def print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def print_json_lines(objs: Iterable[Any]) -> None:
    for obj in objs:
        print(json.dumps(obj, ensure_ascii=False))


def human_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


class TtyProgress(Progress):
    """One redrawn line on stderr: files discovered, bytes hashed, throughput."""

    REDRAW_S = 0.1

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.library = ""
        self.total_bytes = 0
        self.done_bytes = 0
        self.started = time.monotonic()
        self.last_draw = 0.0

    def discovered(self, library: str, files: int) -> None:
        self.library = library
        self._draw(f"{library}: {files:,} files discovered")

    def hashing(self, library: str, files: int, total_bytes: int) -> None:
        self.library, self.total_bytes, self.done_bytes = library, total_bytes, 0
        self.started = time.monotonic()
        if files:
            self._draw(f"{library}: hashing {files:,} files ({human_bytes(total_bytes)})")

    def hashed_bytes(self, n: int) -> None:
        self.done_bytes += n
        now = time.monotonic()
        if now - self.last_draw < self.REDRAW_S:
            return
        rate = self.done_bytes / max(now - self.started, 1e-6)
        percent = 100 * self.done_bytes / self.total_bytes if self.total_bytes else 100
        self._draw(f"{self.library}: hashed {human_bytes(self.done_bytes)} of "
                   f"{human_bytes(self.total_bytes)} ({percent:.0f}%), {human_rate(rate)}")

    def _draw(self, text: str) -> None:
        self.last_draw = time.monotonic()
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\x1b[2K")
        self.stream.flush()
