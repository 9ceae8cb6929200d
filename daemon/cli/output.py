"""Output helpers: stable JSON, human numbers, and the TTY progress bar on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from daemon.jsonlines import json_line
from daemon.scan.progress import Progress
from daemon.units import human_bytes, human_rate, plural


def print_json(obj: Any) -> None:
    print(json_line(obj))


def print_json_lines(objs: Iterable[Any]) -> None:
    for obj in objs:
        print(json_line(obj))


# How a name is shown to people: every character that could break the line or hide in it gets
# a backslash escape, and so does the backslash itself, so `\\xff` (a name with those four
# characters) and `\xff` (the byte 0xff, not UTF-8) can be told apart. JSON output keeps the
# contract's form instead (undecodable bytes as \xNN, everything else as JSON escapes it).
_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_SURROGATE_LOW, _SURROGATE_HIGH = 0xDC80, 0xDCFF  # surrogateescape's stand-ins for bytes >= 0x80


def display_path(rel_path: bytes) -> str:
    """A file name for human output: one line, unambiguous, readable where it can be."""
    text = rel_path.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_display_char(ch) for ch in text)


def _display_char(ch: str) -> str:
    if ch in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[ch]
    code = ord(ch)
    if _SURROGATE_LOW <= code <= _SURROGATE_HIGH:
        return f"\\x{code - 0xDC00:02x}"
    if ch.isprintable():
        return ch
    if code < 0x80:
        return f"\\x{code:02x}"
    # Not \xNN even below 0x100: U+0085 (bytes c2 85) is not the undecodable byte 0x85.
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def display_text(text: str) -> str:
    """Free text (a tag, an error message) for one human line: control characters escaped."""
    return "".join(_display_char(ch) if ch in "\n\t\r" or not ch.isprintable() else ch
                   for ch in text)


def human_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


class TtyProgress(Progress):
    """One redrawn line on stderr: the phase (walk, hash, enrich), the library, files, bytes
    done of the total, the rate, and an estimate of the time left.

    The scanner reports a library's walk only when it is over (`discovered`), so the walk line
    names the library being listed (the next one of `libraries`, in scan order, once the
    previous one is hashed) rather than counting up.
    """

    REDRAW_S = 0.1
    ETA_AFTER_S = 1.0  # the first second's rate says little (cold cache, small files first)

    def __init__(self, stream=sys.stderr, clock: Callable[[], float] = time.monotonic,
                 libraries: Iterable[str] = ()):
        self.stream = stream
        self.clock = clock
        self.phase, self.library = "walk", ""
        self.files = self.files_done = 0
        self.total_bytes = self.done_bytes = 0
        self.started = clock()
        self.last_draw = -self.REDRAW_S
        self.libraries = list(libraries)
        self._draw(f"walk: listing {self.libraries[0] if self.libraries else 'the libraries'}",
                   force=True)

    def discovered(self, library: str, files: int) -> None:
        self.library = library
        self._draw(f"walk {library}: {plural(files, 'file')} found", force=True)

    def hashing(self, library: str, files: int, total_bytes: int) -> None:
        self._start("hash", library, files, total_bytes)
        if not files:
            self._next_walk()

    def hashed_bytes(self, n: int) -> None:
        self.done_bytes += n
        done = self.done_bytes >= self.total_bytes
        self._draw(self.line(), force=done)
        if done:
            self._next_walk()

    def _next_walk(self) -> None:
        """The library after this one is listed next (a guess only with --path scopes)."""
        if self.library in self.libraries:
            following = self.libraries[self.libraries.index(self.library) + 1:]
            if following:
                self._draw(f"walk: listing {following[0]}", force=True)

    def enriching(self, library: str, files: int, total_bytes: int) -> None:
        """The enrichers are about to run on (at most) this many files of `library`."""
        self._start("enrich", library, files, total_bytes)

    def enriched_file(self, size: int) -> None:
        self.files_done += 1
        self.done_bytes += size
        self._draw(self.line())

    def _start(self, phase: str, library: str, files: int, total_bytes: int) -> None:
        self.phase, self.library, self.files, self.total_bytes = phase, library, files, total_bytes
        self.files_done = self.done_bytes = 0
        self.started = self.clock()
        if files:
            self._draw(self.line(), force=True)

    def line(self) -> str:
        elapsed_s = max(self.clock() - self.started, 1e-6)
        rate = self.done_bytes / elapsed_s
        percent = 100 * self.done_bytes / self.total_bytes if self.total_bytes else 100
        files = (f"{self.files_done:,} of {plural(self.files, 'file')}" if self.phase == "enrich"
                 else plural(self.files, "file"))
        left_s = (self.total_bytes - self.done_bytes) / rate if rate else None
        eta = (f", ETA {human_eta(left_s)}"
               if left_s is not None and elapsed_s >= self.ETA_AFTER_S else "")
        return (f"{self.phase} {self.library}: {files}, {human_bytes(self.done_bytes)} of "
                f"{human_bytes(self.total_bytes)} ({percent:.0f}%), {human_rate(rate)}{eta}")

    def _draw(self, text: str, *, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self.last_draw < self.REDRAW_S:
            return
        self.last_draw = now
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\x1b[2K")
        self.stream.flush()


def human_eta(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
