"""The periodic tick: the scheduler that enqueues it, and what the writer does with it.

APScheduler's BackgroundScheduler runs one interval job with `max_instances=1` and
`coalesce=True`, and that job only puts a `Tick` in the scan queue (where an already waiting
tick absorbs it): the writer thread runs it, so a tick never writes concurrently with event
batches, and a slow tick delays the next one instead of stacking them.

A tick, in order: re-probe every library (offline ↔ online transitions, logged once), then per
online library backfill hashing and the enrichers, then the reconcile passes, then drop the
changes older than `change_retention` from the change feed, then queue the full scans that
`full_rescan_interval` asks for, then the heartbeat. The long steps run in slices of
`SLICE_S` with the due event batches applied in between, so a tick with a 20 s hash
budget does not hold up event latency for 20 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC
from functools import partial
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from daemon import reconcile
from daemon.config import LibraryConfig
from daemon.meta.enrich import enrich_libraries
from daemon.scan.probe import probe
from daemon.service.queue import Rescan, ScanQueue, Tick
from daemon.store import changes as feed
from daemon.store import queries

if TYPE_CHECKING:
    from daemon.service.writer import Writer

SLICE_S = 0.25
TICK_JOB_ID = "tick"


class Ticker:
    def __init__(self, queue: ScanQueue, interval_s: float):
        self._queue = queue
        self._interval_s = interval_s
        self._scheduler = BackgroundScheduler(timezone=UTC)

    def start(self) -> None:
        self._scheduler.add_job(
            self._queue.put, "interval", args=[Tick()], seconds=self._interval_s,
            id=TICK_JOB_ID, max_instances=1, coalesce=True,
            # A late tick runs late rather than being skipped with a warning.
            misfire_grace_time=None,
        )
        self._scheduler.start()

    @property
    def scheduler(self) -> BackgroundScheduler:
        """The daemon's one scheduler: the scheduled verify adds its own job to it."""
        return self._scheduler

    def reschedule(self, interval_s: float) -> None:
        if interval_s != self._interval_s:
            self._interval_s = interval_s
            self._scheduler.reschedule_job(TICK_JOB_ID, trigger="interval", seconds=interval_s)

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def run_tick(writer: Writer) -> None:
    config = writer.config
    for library in config.libraries:
        writer.observe(library, probe(library))
    online = [lib for lib in config.libraries if writer.availability.is_online(lib.name)]
    budget_s = config.daemon.hash_budget_s
    for library in (lib for lib in online if writer.files_readable(lib.name)):
        row = queries.get_library(library.name)
        if row is None:  # never scanned yet: its startup scan is still queued
            continue
        _in_slices(writer, budget_s, partial(_backfill_slice, writer, library, row.id))
        _in_slices(writer, budget_s, partial(_enrich_slice, writer, library))
    writer.heavy.log_summaries()  # one enrich.finished per library per tick
    # logs reconcile.finished itself
    changes = reconcile.run_passes(writer.store, config, writer.reconcile_watermark)
    for name, count in changes.items():
        writer.metrics.reconcile_changes.labels(name).inc(count)
    retention_s = config.daemon.change_retention_s
    if retention_s is not None:
        feed.drop_older_than(writer.store, time.time() - retention_s)
    for library in online:
        if writer.full_scan_due(library):
            writer.queue.put(Rescan(library.name, "full_rescan_interval"))
    writer.beat()


def _in_slices(writer: Writer, budget_s: float, step: Callable[[float], tuple[bool, bool]]):
    """Call `step(slice_s) -> (done, progressed)` until done or `budget_s` is spent.

    A slice that made no progress (its set-up alone took longer) is doubled for the next call.
    """
    deadline = time.monotonic() + budget_s
    slice_s = SLICE_S
    while (left_s := deadline - time.monotonic()) > 0:
        writer.stop.check()
        done, progressed = step(min(slice_s, left_s))
        writer.apply_due_batches()
        if done:
            return
        if not progressed:
            slice_s *= 2


def _backfill_slice(writer: Writer, library: LibraryConfig, library_id: int,
                    slice_s: float) -> tuple[bool, bool]:
    def on_bytes(_n: int) -> None:
        writer.stop.check()

    result = writer.backfill.run(library, library_id, budget_s=slice_s, on_bytes=on_bytes)
    return result.exhausted, result.exhausted or result.hashed + result.deferred + result.errors > 0


def _enrich_slice(writer: Writer, library: LibraryConfig, slice_s: float) -> tuple[bool, bool]:
    started = time.monotonic()
    # The heavy enrichers are handed to the workers, not waited for: their results are
    # written as they come back, between the writer's other jobs.
    written = enrich_libraries(writer.store, writer.config, [library.name], budget_s=slice_s,
                               stop=writer.stop.is_set, heavy=writer.heavy)
    # Ended well within the slice: it went through everything pending (what is left is in
    # the workers). Results of earlier slices may have been written on the way; they must
    # not keep the tick polling until its budget is spent.
    return time.monotonic() - started < slice_s, written > 0
