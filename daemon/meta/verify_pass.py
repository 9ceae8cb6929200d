"""One scheduled-verify pass per library: where it stands, what is due, and the read budget.

A pass re-reads every hashed file of a library once per `verify_interval`, in file id order.
It is paced by bytes, not by files: by the time a fraction f of the interval has gone by,
about f of the bytes hashed when the pass started have been re-read (a library of one 40 GB
video and 10,000 photos would otherwise read the video in one go or leave it for the end).
Once the interval is over, whatever is left (files added since the pass started) is due at
once, within the read budget. The pass ends when no file is left after the cursor; the next
one starts an interval after this one started, or now if it ran late.

The cursor is stored in the `setting` table after every step, so a restarted daemon goes on
from the last file it verified, with the same pass start: a daemon that was stopped for a
week is behind, and catches up at `verify_rate`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from daemon.store import Store, changes
from daemon.store.hashes import from_db

SETTING_PREFIX = "verify.cursor."


@dataclass(frozen=True)
class VerifyCursor:
    """A library's pass: started at `pass_started_at` (Unix time), covering `of_files` files
    of `of_bytes` bytes at its start; `files` and `bytes` visited so far, the last being
    `last_file_id`; `mismatches` found in this pass."""

    pass_started_at: float
    of_files: int
    of_bytes: int
    last_file_id: int = 0
    files: int = 0
    bytes: int = 0
    mismatches: int = 0

    def to_text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> VerifyCursor:
        return cls(**json.loads(text))

    def visited(self, file_id: int, size: int, mismatch: bool) -> VerifyCursor:
        return replace(self, last_file_id=file_id, files=self.files + 1,
                       bytes=self.bytes + size, mismatches=self.mismatches + mismatch)

    def is_due(self, now: float, interval_s: float) -> bool:
        """True while the pass is behind its schedule: the next file should be read now."""
        elapsed_s = now - self.pass_started_at
        if elapsed_s >= interval_s:
            return True
        if elapsed_s < 0:
            return False
        # An empty library (or one of empty files) paces by files instead.
        done = (self.bytes / self.of_bytes if self.of_bytes
                else self.files / self.of_files if self.of_files else 1.0)
        return done < elapsed_s / interval_s

    def next_pass_start(self, now: float, interval_s: float) -> float:
        return max(self.pass_started_at + interval_s, now)


def setting_key(library: str) -> str:
    return SETTING_PREFIX + library


def load_cursor(store: Store, library: str) -> VerifyCursor | None:
    text = changes.get_setting(store, setting_key(library))
    return None if text is None else VerifyCursor.from_text(text)


def new_pass(store: Store, library_id: int, started_at: float) -> VerifyCursor:
    """A pass over what is hashed now (files hashed later are covered if they come after the
    cursor, and by the next pass in any case)."""
    files, total_bytes = store.query(
        "SELECT count(*), coalesce(sum(size), 0) FROM file WHERE library_id = ?"
        " AND NOT is_missing AND content_hash IS NOT NULL", [library_id])[0]
    return VerifyCursor(started_at, int(files), int(total_bytes))


def rows_after(store: Store, library_id: int, after_id: int,
               limit: int) -> list[tuple[int, bytes, int, int, str]]:
    """(id, rel_path, size, mtime_ns, content_hash) of the next hashed files, in id order."""
    from daemon.store import queries  # not at the top: `status` reads cursors, no queries

    rows = store.query(
        "SELECT id, rel_path, size, mtime_ns, content_hash FROM"
        f" {queries.in_id_order(store)} WHERE library_id = ? AND id > ? AND NOT is_missing"
        " AND content_hash IS NOT NULL ORDER BY id LIMIT ?",
        [library_id, after_id, limit])
    return [(file_id, bytes(rel_path), size, mtime_ns, from_db(digest))
            for file_id, rel_path, size, mtime_ns, digest in rows]


class ReadBudget:
    """A token bucket of bytes: reads average at most `rate` bytes per second.

    `spend(n)` after reading n bytes sleeps until the bucket is out of debt. The bucket
    holds at most one second of reading, so an idle hour does not become a burst of an hour's
    budget. `sleep(s)` returns True when the sleep was cut short by a stop request.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], bool]):
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._tokens = rate
        self._at = clock()

    def spend(self, n: int) -> bool:
        """Take n bytes; False when stopped while waiting for the budget."""
        self._refill()
        self._tokens -= n
        if self._tokens < 0:
            if self._sleep(-self._tokens / self.rate):
                return False
            # One sleep: a debt of a rounding error left after it is paid by the next spend.
            self._refill()
        return True

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now


def step_seconds(interval_s: float) -> float:
    """How often the daemon looks for due files: ~100 steps per pass keeps the reading
    spread out, at most 10 s apart (a 30-day pass reads ~1/260,000 of the bytes per step),
    at least 0.5 s apart (a step costs a database read per library)."""
    return min(10.0, max(0.5, interval_s / 100))
