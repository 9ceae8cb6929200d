"""The scan queue: watcher events coalesced per path, and the writer's other jobs.

Watcher threads call `add` / `add_move`; the ticker and the main loop `put` jobs; the one
writer thread takes work with `next`. An event path is *due* once it has been quiet for
`settle_s` (create + modify + modify is one index of the final bytes), or once it has been
pending for `max_delay_s` (a file appended to forever is still indexed now and then).

Coalescing rules, each there for a reason:
- A path under a pending directory only refreshes that directory: a created, moved or deleted
  directory is one scoped scan, not one per file inside it.
- A move links source and destination, so both land in the same batch: the scoped scan of
  [src, dst] then pairs the vanished row with the new file by inode and keeps the row.
- Many due paths in one directory become that directory (Syncthing's watchaggregator does the
  same); past `max_scopes` the deepest scopes are merged into their parents until they fit, and
  a batch that reaches the root becomes a full scan of the library.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from daemon.meta.verify import Mismatch
from daemon.meta.verify_pass import VerifyCursor

DIR_AGGREGATE_PATHS = 128  # more due paths than this in one directory: scan the directory
MAX_SCOPES = 512  # more scopes than this in one batch: merge upwards
MIN_MAX_DELAY_S = 5.0


STARTUP = "startup"  # the reason of the daemon's first scan of each library


@dataclass(frozen=True)
class Rescan:
    """A full scan of one library (startup, overflow, reload, back online, periodic)."""

    library: str
    reason: str = field(default="", compare=False)


@dataclass(frozen=True)
class Tick:
    """Backfill, enrichers, reconcile passes, probes, due full scans (see ticker.py)."""


@dataclass(frozen=True)
class Reprobe:
    """Probe every library now (the mount table changed): offline or back, without a tick."""


@dataclass(frozen=True)
class Announce:
    """Handed back to the main loop once every job queued before it is done (READY=1)."""

    message: str


@dataclass(frozen=True)
class VerifyProgress:
    """What a scheduled-verify step found (service/scheduled_verify.py), for the writer to
    record: the mismatches as `corrupt` changes, and the library's cursor."""

    library: str
    cursor: VerifyCursor
    mismatches: tuple[Mismatch, ...] = ()
    finished: VerifyCursor | None = None  # the pass that ended in this step


@dataclass(frozen=True)
class HeavyDone:
    """Heavy enrichers came back from the worker processes: write their results."""


Job = Rescan | Tick | Reprobe | Announce | VerifyProgress | HeavyDone


@dataclass(frozen=True)
class EventBatch:
    """Scopes (rel paths, files or directories) of one library to scan together."""

    library: str
    scopes: tuple[bytes, ...] | None  # None: too spread out, scan the whole library
    paths: int  # how many pending event paths it stands for
    # The queue's clock (time.monotonic) at its oldest event: event → index latency.
    first_event_s: float = field(default=0.0, compare=False)


@dataclass
class _Pending:
    first_s: float
    last_s: float


def parent_of(rel_path: bytes) -> bytes:
    return rel_path.rpartition(b"/")[0]


def _ancestors(rel_path: bytes) -> Iterable[bytes]:
    """b"" (the root) first, then each parent directory, outermost first."""
    yield b""
    start = 0
    while (slash := rel_path.find(b"/", start)) != -1:
        yield rel_path[:slash]
        start = slash + 1


def _under_pending(pending: dict[bytes, _Pending], rel_path: bytes) -> bool:
    return bool(rel_path) and any(a in pending for a in _ancestors(rel_path))


def collapse(paths: Iterable[bytes]) -> set[bytes]:
    """Drop every path that lies under another one in the set."""
    kept: set[bytes] = set()
    for path in sorted(set(paths), key=lambda p: p.count(b"/") if p else -1):
        if path in kept or (path and any(a in kept for a in _ancestors(path))):
            continue
        kept.add(path)
    return kept


def aggregate_scopes(
    paths: Iterable[bytes],
    *,
    dir_aggregate_paths: int = DIR_AGGREGATE_PATHS,
    max_scopes: int = MAX_SCOPES,
) -> tuple[bytes, ...] | None:
    """The scopes to scan for these paths, or None for the whole library."""
    scopes = collapse(paths)
    if b"" in scopes:
        return None
    by_parent: dict[bytes, list[bytes]] = defaultdict(list)
    for scope in scopes:
        by_parent[parent_of(scope)].append(scope)
    merged: set[bytes] = set()
    for parent, children in by_parent.items():
        # Files at the root stay single scopes: the root as a scope is a full scan.
        if parent and len(children) > dir_aggregate_paths:
            merged.add(parent)
        else:
            merged.update(children)
    scopes = collapse(merged)
    while len(scopes) > max_scopes:
        deepest = max(scope.count(b"/") for scope in scopes)
        scopes = collapse(
            parent_of(scope) if scope.count(b"/") == deepest else scope for scope in scopes
        )
        if b"" in scopes:
            return None
    return tuple(sorted(scopes))


class ScanQueue:
    """Thread-safe; see the module docstring. `clock` is injectable for tests."""

    def __init__(
        self,
        settle_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: dict[str, dict[bytes, _Pending]] = defaultdict(dict)
        self._links: dict[tuple[str, bytes], set[bytes]] = defaultdict(set)
        self._ready: deque[EventBatch] = deque()
        self._jobs: deque[Job] = deque()
        self._closed = False
        self.set_settle(settle_s)

    def set_settle(self, settle_s: float) -> None:
        """Set `settle_s` (and `max_delay_s` from it); pending paths keep their timestamps."""
        with self._cond:
            self.settle_s = settle_s
            self.max_delay_s = max(MIN_MAX_DELAY_S, 10 * settle_s)
            self._cond.notify_all()

    def add(self, library: str, rel_path: bytes) -> None:
        with self._cond:
            if not self._closed:
                self._touch(library, rel_path, self._clock())

    def add_move(self, library: str, src: bytes, dst: bytes) -> None:
        with self._cond:
            if self._closed:
                return
            now = self._clock()
            src_key = self._touch(library, src, now)
            dst_key = self._touch(library, dst, now)
            if src_key != dst_key:
                self._links[(library, src_key)].add(dst_key)
                self._links[(library, dst_key)].add(src_key)

    def put(self, job: Job) -> None:
        """Queue a job unless an equal one is already waiting (ticks and rescans coalesce)."""
        with self._cond:
            if not self._closed and job not in self._jobs:
                self._jobs.append(job)
                self._cond.notify_all()

    def discard(self, library: str, *, before_s: float | None = None) -> int:
        """Forget a library's event paths last touched before `before_s` (default: all).

        A full scan that starts now sees the final state of those paths anyway.
        """
        with self._cond:
            pending = self._pending.get(library, {})
            dropped = [p for p, t in pending.items() if before_s is None or t.last_s < before_s]
            self._remove(library, dropped)
            self._ready = deque(b for b in self._ready if b.library != library)
            return len(dropped)

    def next(self, timeout_s: float | None = None) -> EventBatch | Job | None:
        """The next work: due event batches first (latency), then jobs. None on close/timeout."""
        deadline = None if timeout_s is None else self._clock() + timeout_s
        with self._cond:
            while not self._closed:
                work = self._take()
                if work is not None:
                    return work
                wait_s = self._time_to_next_due()
                if deadline is not None:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        return None
                    wait_s = remaining if wait_s is None else min(wait_s, remaining)
                self._cond.wait(wait_s)
            return None

    def take_due_batches(self) -> list[EventBatch]:
        """Every batch due now, without waiting (the tick applies them between slices)."""
        with self._cond:
            if self._closed:
                return []
            self._release_due(self._clock())
            batches = list(self._ready)
            self._ready.clear()
            return batches

    def close(self) -> None:
        """Stop accepting work; `next` returns None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def pending_paths(self) -> int:
        with self._cond:
            return sum(len(paths) for paths in self._pending.values())

    # Everything below runs under self._cond.

    def _touch(self, library: str, rel_path: bytes, now: float) -> bytes:
        pending = self._pending[library]
        if not pending and not self._ready:
            self._cond.notify_all()  # the writer may be waiting without a timeout
        for key in (*_ancestors(rel_path), rel_path) if rel_path else (b"",):
            entry = pending.get(key)
            if entry is not None:
                entry.last_s = now
                return key
        pending[rel_path] = _Pending(now, now)
        return rel_path

    def _take(self) -> EventBatch | Job | None:
        if not self._ready:
            self._release_due(self._clock())
        if self._ready:
            return self._ready.popleft()
        if self._jobs:
            return self._jobs.popleft()
        return None

    def _is_due(self, entry: _Pending, now: float) -> bool:
        return now - entry.last_s >= self.settle_s or now - entry.first_s >= self.max_delay_s

    def _time_to_next_due(self) -> float | None:
        now = self._clock()
        waits = [
            min(entry.last_s + self.settle_s, entry.first_s + self.max_delay_s) - now
            for pending in self._pending.values()
            for path, entry in pending.items()
            if not _under_pending(pending, path)
        ]
        return max(0.0, min(waits)) if waits else None

    def _release_due(self, now: float) -> None:
        for library, pending in list(self._pending.items()):
            # A path under a pending directory waits for it: rm -rf reports the files before
            # their directory, and the directory's scan covers them all.
            batch = {
                path for path, entry in pending.items()
                if self._is_due(entry, now) and not _under_pending(pending, path)
            }
            if not batch:
                continue
            while True:
                # A move's partner comes along even if it is not settled yet, and so does a
                # path the batch's directories cover (with its own partners).
                extra = {
                    partner
                    for path in batch
                    for partner in self._links.get((library, path), ())
                    if partner in pending
                }
                extra |= {p for p in pending if any(a in batch for a in _ancestors(p))}
                extra -= batch
                if not extra:
                    break
                batch |= extra
            first_event_s = min(pending[path].first_s for path in batch)
            self._remove(library, batch)
            self._ready.append(EventBatch(library, aggregate_scopes(batch), len(batch),
                                          first_event_s))

    def _remove(self, library: str, paths: Iterable[bytes]) -> None:
        pending = self._pending.get(library)
        if pending is None:
            return
        for path in paths:
            pending.pop(path, None)
            for partner in self._links.pop((library, path), ()):
                self._links.get((library, partner), set()).discard(path)
        if not pending:
            del self._pending[library]
