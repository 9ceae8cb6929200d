"""The daemon's scheduled verify: every hashed file re-read once per `verify_interval`.

An APScheduler interval job of its own (on the ticker's scheduler, `max_instances=1`,
`coalesce=True`) runs a *step* every `step_seconds(interval)`: per online library, it reads
the files its pass is due for (verify_pass.py paces by bytes), at most `STEP_WORK_S` of
reading per step, within `verify_rate` (a token bucket shared by the libraries). The reading
and hashing run on the scheduler's worker thread, not on the writer: one 40 GB file takes
800 s at 50 MB/s and must not hold up watcher batches. The step only reads the database; what
it found goes to the writer as one `VerifyProgress` job per library, which records each
mismatch as a `corrupt` change and stores the cursor in the same transaction, then logs
`verify.mismatch` (counted by metrics.py as `assetd_verify_mismatches_total`).

A file is compared with `compare_file` (the manual `assetd verify` uses it too): a file whose
size or mtime changed was changed on purpose and is left to the scan, and the stored hash is
never rewritten. So a rotten file is reported once per pass, every interval, until it is
restored or replaced: a mismatch that is only reported once would be forgotten.

An offline library is skipped and keeps its cursor. A library that goes offline during a
step (its root unmounted under the reader: every file "gone") keeps the cursor it had.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from peewee import InterfaceError, OperationalError

from daemon import logs
from daemon.config import Config, LibraryConfig
from daemon.errors import database_error_text
from daemon.meta.verify import Mismatch, Outcome, compare_file, record_corrupt
from daemon.meta.verify_pass import (
    ReadBudget,
    VerifyCursor,
    load_cursor,
    new_pass,
    rows_after,
    setting_key,
    step_seconds,
)
from daemon.scan.probe import probe
from daemon.service.progress import ScanAborted, StopFlag
from daemon.service.queue import ScanQueue, VerifyProgress
from daemon.store import Store, changes, queries

VERIFY_JOB_ID = "verify"
# A step reads for at most this long, then hands its progress to the writer: a daemon far
# behind (stopped for a week) catches up in steps, with its cursor stored every 10 s.
STEP_WORK_S = 10.0
ROWS_PER_QUERY = 200


class ScheduledVerify:
    """Owns the verify job. `schedule` is the main thread's; everything else runs in the
    job, one step at a time (`max_instances=1`), so the cursors need no lock."""

    def __init__(self, store: Store, queue: ScanQueue, scheduler: BackgroundScheduler,
                 stop: StopFlag, config: Callable[[], Config],
                 files_readable: Callable[[str], bool]):
        self._store = store
        self._queue = queue
        self._scheduler = scheduler
        self._stop = stop
        self._config = config  # the running config (SIGHUP swaps it)
        self._files_readable = files_readable  # online, not kept by the mass-missing guard
        self._interval_s: float | None = None
        self._cursors: dict[str, VerifyCursor] = {}
        self._budget: ReadBudget | None = None

    def schedule(self, interval_s: float | None) -> None:
        """At start and on SIGHUP: add, move or remove the job (None: no scheduled verify)."""
        if interval_s == self._interval_s:
            return
        step_s = None if interval_s is None else step_seconds(interval_s)
        if self._interval_s is not None:
            self._scheduler.remove_job(VERIFY_JOB_ID)
        if step_s is not None:
            self._scheduler.add_job(self.step, "interval", seconds=step_s, id=VERIFY_JOB_ID,
                                    max_instances=1, coalesce=True, misfire_grace_time=None)
        self._interval_s = interval_s

    def step(self) -> None:
        """One step over every online library; reads only (the writer records)."""
        config = self._config()
        interval_s = config.daemon.verify_interval_s
        if interval_s is None:
            return
        if self._budget is None or self._budget.rate != config.daemon.verify_rate:
            self._budget = ReadBudget(config.daemon.verify_rate, sleep=self._stop.wait)
        deadline = time.monotonic() + STEP_WORK_S
        try:
            for library in config.libraries:
                if self._stop.is_set():
                    return
                if self._files_readable(library.name):
                    self._step_library(library, interval_s, deadline)
        except ScanAborted:
            return  # stopping: the cursor stored last is where the next start goes on
        except (OperationalError, InterfaceError) as exc:
            # The writer logs the outage once; the next step tries again.
            logs.get_logger().debug("verify.deferred", error=database_error_text(exc))
        finally:
            self._store.close()  # this thread's connection (peewee keeps one per thread)

    def _step_library(self, library: LibraryConfig, interval_s: float,
                      deadline: float) -> None:
        cached = self._cursors.get(library.name)
        if cached is not None and not cached.is_due(time.time(), interval_s):
            return  # nothing due: no database read, no probe
        row = queries.get_library(library.name)
        if row is None or not probe(library).online:
            return
        cursor = cached or load_cursor(self._store, library.name) \
            or new_pass(self._store, row.id, time.time())
        before, mismatches, finished = cursor, [], None
        root = os.fsencode(library.path)
        while cursor.is_due(time.time(), interval_s) and time.monotonic() < deadline:
            rows = rows_after(self._store, row.id, cursor.last_file_id, ROWS_PER_QUERY)
            if not rows:
                finished = cursor
                cursor = new_pass(self._store, row.id,
                                  cursor.next_pass_start(time.time(), interval_s))
                break
            for file_id, rel_path, size, mtime_ns, expected in rows:
                compared = compare_file(root, rel_path, (size, mtime_ns), expected,
                                        follow_symlinks=library.follow_symlinks,
                                        on_bytes=self._spend)
                if compared.outcome is Outcome.MISMATCH:
                    mismatches.append(Mismatch(library.name, rel_path, expected,
                                               compared.detail))
                elif compared.outcome is Outcome.FAILED:
                    logs.get_logger().debug("verify.failed", library=library.name,
                                            path=rel_path.decode("utf-8", "backslashreplace"),
                                            error=compared.detail)
                cursor = cursor.visited(file_id, size, compared.outcome is Outcome.MISMATCH)
                if not cursor.is_due(time.time(), interval_s) or time.monotonic() >= deadline:
                    break
        if cursor == before or not probe(library).online:
            return
        self._cursors[library.name] = cursor
        self._queue.put(VerifyProgress(library.name, cursor, tuple(mismatches), finished))

    def _spend(self, n: int) -> None:
        """After each chunk read (1 MiB): stop at once when asked, else keep to the rate."""
        assert self._budget is not None
        if self._stop.is_set() or not self._budget.spend(n):
            raise ScanAborted()


def record_progress(store: Store, progress: VerifyProgress) -> None:
    """The writer's half: the `corrupt` changes and the cursor in one transaction, then the
    warnings. A cursor never goes back: a step retried after a database outage may come
    after a newer one."""
    key = setting_key(progress.library)
    with store.write_tx():
        stored = load_cursor(store, progress.library)
        if stored is None or _position(progress.cursor) >= _position(stored):
            changes.set_setting(store, key, progress.cursor.to_text())
        record_corrupt(store, progress.mismatches)
    log = logs.get_logger()
    for mismatch in progress.mismatches:
        log.warning(logs.VERIFY_MISMATCH, **mismatch.as_json())
    if progress.finished is not None:
        done = progress.finished
        log.info(logs.VERIFY_FINISHED, library=progress.library, files=done.files,
                 bytes=done.bytes, mismatches=done.mismatches,
                 duration_s=round(time.time() - done.pass_started_at, 1))


def _position(cursor: VerifyCursor) -> tuple[float, int]:
    return cursor.pass_started_at, cursor.files
