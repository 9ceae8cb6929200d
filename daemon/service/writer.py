"""The one thread that writes to the database.

Watcher threads, the scheduler and the main loop only enqueue (queue.py); this thread applies
event batches as scoped scans, full rescans and ticks, one at a time, so the daemon never
writes concurrently with itself and its transactions stay short (scan/apply batches them).
It also owns what the daemon believes about each library being online (availability.py) and
asks the main loop to start or stop watches when that changes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import assert_never

from peewee import InterfaceError, OperationalError

from daemon import logs
from daemon.config import Config, LibraryConfig
from daemon.errors import database_error_text
from daemon.meta import workers
from daemon.meta.enrich import HeavyRuns, write_finished
from daemon.reconcile import Watermark
from daemon.scan.backfill import Backfill
from daemon.scan.probe import Probe, probe
from daemon.scan.scanner import LibraryScan, ScanOptions, scan_library
from daemon.service import heartbeat
from daemon.service.availability import Availability, Change
from daemon.service.inbox import Announced, Message, WatchStart, WatchStop
from daemon.service.metrics import Metrics
from daemon.service.notify import SystemdNotifier
from daemon.service.progress import ScanAborted, StatusProgress, StopFlag
from daemon.service.queue import (
    STARTUP,
    Announce,
    EventBatch,
    HeavyDone,
    Job,
    Reprobe,
    Rescan,
    ScanQueue,
    Tick,
    VerifyProgress,
)
from daemon.service.scheduled_verify import record_progress
from daemon.service.ticker import run_tick
from daemon.service.watcher import WatchReport
from daemon.store import Store, deferred_indexes, queries, redact_url

# After SIGTERM an event batch may take this long to finish; a full scan stops at once.
BATCH_STOP_GRACE_S = 2.0
# `systemctl stop` signals the whole cgroup: the scan's hash workers and walker die of the same
# SIGTERM, and the scan can see them gone (fail) before the main loop has posted the stop
# request: a failure is taken for the stop's when the stop comes within this long.
STOP_FAILURE_WAIT_S = 1.0
MAX_BACKOFF_S = 30.0


class Writer:
    def __init__(self, store: Store, config: Config, queue: ScanQueue,
                 post: Callable[[Message], None], notifier: SystemdNotifier, stop: StopFlag,
                 watch_report: Callable[[], dict[str, WatchReport]], metrics: Metrics):
        self.store = store
        self.config = config  # swapped by the main loop on SIGHUP; read once per job
        self.queue = queue
        self.post = post
        self.notifier = notifier
        self.stop = stop
        self.watch_report = watch_report  # the main thread's watches, as they are now
        self.metrics = metrics
        self.last_tick_s: float | None = None  # Unix time; read by the metrics scrape
        self.availability = Availability()
        self.backfill = Backfill(store)
        # The heavy enrichers run in the worker processes while this thread goes on; each
        # that comes back queues a HeavyDone, and this thread writes the results.
        self.heavy = HeavyRuns(workers.POOL, on_finished=lambda: queue.put(HeavyDone()))
        self.reconcile_watermark = Watermark()  # each tick's passes look at what is new
        self.pid = os.getpid()
        self._last_full_scan: dict[str, float] = {}
        # Libraries whose last whole scan tripped the mass-missing guard: online by their
        # probe, but their files may be gone (an empty mount point, a disk that failed to
        # mount). A tick reads none of their files (its backfill and enrichers would try each
        # indexed file, a million missing files every tick, within the hash budget), and
        # they are scanned again at `full_rescan_interval`, when the mount table changes, on
        # SIGHUP, or on a watcher event: not at every tick.
        self.guarded: set[str] = set()
        # A new index's first start with several libraries: the file table's secondary
        # indexes are dropped at the first startup scan and built before any other work, so
        # once after all of them, not after the first (store/deferred_indexes.py).
        self._startup_deferral = len(config.libraries) > 1
        self._owes_indexes = False
        self._failures = 0
        self._database_down_since: float | None = None  # logged once when it goes and comes
        self._thread = threading.Thread(target=self._run, name="assetd-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float) -> bool:
        """True when the thread finished within the timeout (or never started)."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while (work := self.queue.next()) is not None:
                self._do(work)
        finally:
            self.store.close()  # this thread's connection (peewee keeps one per thread)

    def _do(self, work: EventBatch | Job) -> None:
        log = logs.get_logger()
        try:
            self._deferred_indexes(work)
            match work:
                case EventBatch():
                    self.apply_batch(work)
                case Rescan():
                    self.rescan(work)
                case Tick():
                    run_tick(self)
                case Reprobe():
                    self.reprobe()
                case HeavyDone():
                    write_finished(self.store, self.heavy)
                case Announce():
                    # `assetd status` shows the daemon's state from the first moment it is
                    # ready, not only after its first tick.
                    heartbeat.set_status(self.store, self.config.daemon.host, self.pid,
                                         self.heartbeat_status())
                    self.post(Announced(work.message))
                case VerifyProgress():
                    record_progress(self.store, work)
                case _:
                    assert_never(work)
            self._failures = 0
            self._database_back()
        except ScanAborted:
            log.info("writer.aborted", work=type(work).__name__,
                     why="stopping; the next start scans again")
        except (OperationalError, InterfaceError) as exc:
            self._failed(work, exc)
        except Exception as exc:
            # Failed as the daemon stops: the stop's own doing (the SIGTERM of `systemctl
            # stop` reaches every process of the service: a hash worker, the walker, the
            # resource tracker die under the scan), not an error to report and retry.
            if self.stop.wait(STOP_FAILURE_WAIT_S):
                log.info("writer.aborted", work=type(work).__name__,
                         why="stopping (the scan's worker processes got the SIGTERM too); the "
                         "next start scans again", error=f"{type(exc).__name__}: {exc}")
            else:
                self._failed(work, exc)

    def apply_batch(self, batch: EventBatch) -> None:
        config = self.config
        library = config.library(batch.library)
        # Not known online: a Rescan is queued or running (startup, reload, back online) and
        # sees these paths anyway; an offline library is never scanned.
        if library is None or not self.availability.is_online(library.name):
            return
        logs.get_logger().debug("queue.batch", library=library.name, paths=batch.paths,
                                scopes=None if batch.scopes is None else len(batch.scopes))
        progress = StatusProgress(self.notifier, self.stop, grace_s=BATCH_STOP_GRACE_S,
                                  announce=False)
        if batch.scopes is None:  # too spread out: a full scan, with the mass-missing guard
            self._full_scan(config, library, progress)
        else:
            result = scan_library(self.store, config, library, scopes=list(batch.scopes),
                                  options=ScanOptions(observed_deletes=True, sniff=True),
                                  progress=progress)
            self._after_scan(library, result)
        self.metrics.event_to_index.observe(time.monotonic() - batch.first_event_s)

    def apply_due_batches(self) -> None:
        """Apply the event batches due now (between the slices of a long tick)."""
        for batch in self.queue.take_due_batches():
            try:
                self.apply_batch(batch)
            except ScanAborted:
                raise
            except Exception as exc:  # the batch is retried as a rescan; the tick goes on
                self._failed(batch, exc)

    def _deferred_indexes(self, work: EventBatch | Job) -> None:
        """Drop the indexes at the first of the startup scans of a new index; build them
        before the first job that is not one (the startup's Announce follows them, so READY=1
        comes with them built). A build that fails (the database went away) is owed still,
        and tried again before the next job; one that a stop interrupts is the next start's
        (opening the store for `run` or `scan` builds what is missing)."""
        startup_scan = isinstance(work, Rescan) and work.reason == STARTUP
        if startup_scan and self._startup_deferral:
            self._startup_deferral = False
            self._owes_indexes = deferred_indexes.drop_if_empty(self.store)
        elif self._owes_indexes and not startup_scan:
            deferred_indexes.ensure(self.store)
            self._owes_indexes = False

    def rescan(self, job: Rescan) -> None:
        config = self.config
        library = config.library(job.library)
        if library is None:
            return
        logs.get_logger().debug("scan.started", library=library.name, reason=job.reason)
        self._full_scan(config, library, StatusProgress(self.notifier, self.stop, grace_s=0.0))
        self.notifier.status(self.idle_status())

    def _full_scan(self, config: Config, library: LibraryConfig, progress: StatusProgress):
        started = time.monotonic()
        # Paths that settled before the walk starts are covered by it.
        self.queue.discard(library.name, before_s=started)
        # sniff: the backfill's enrich then finds `mime` done, without reading the files again;
        # settle_parts: a file `mime` is all it needs is `ready` with its part, not left for
        # the next tick's lifecycle pass (at a million files, one UPDATE of them all).
        result = scan_library(self.store, config, library,
                              options=ScanOptions(sniff=True, settle_parts=True),
                              progress=progress)
        self.metrics.scans.labels(library=library.name, status=result.status).inc()
        self.metrics.scan_duration.labels(library=library.name).observe(
            time.monotonic() - started)
        self._after_scan(library, result)
        if result.online or library.name in self.guarded:
            self._last_full_scan[library.name] = started

    def reprobe(self) -> None:
        """Probe every library (the mount table changed): the offline ↔ online transitions.
        A library the mass-missing guard kept from its last scan is scanned again: its disk
        may be mounted now."""
        for library in self.config.libraries:
            self.observe(library, probe(library))
            if library.name in self.guarded and self.availability.is_online(library.name):
                self.queue.put(Rescan(library.name, "mount table changed"))

    def files_readable(self, name: str) -> bool:
        """May the tick and the scheduled verify read this library's files? Online, and not
        kept from its last scan by the mass-missing guard (`guarded`)."""
        return self.availability.is_online(name) and name not in self.guarded

    def full_scan_due(self, library: LibraryConfig) -> bool:
        last = self._last_full_scan.get(library.name)
        interval_s = self.config.daemon.full_rescan_interval_s
        return last is not None and time.monotonic() - last >= interval_s

    def _after_scan(self, library: LibraryConfig, result: LibraryScan) -> None:
        if result.online:
            self.guarded.discard(library.name)
            self.observe(library, Probe(True, None))
            return
        probed = probe(library)
        # Online by the probe but offline by the scan: the mass-missing guard tripped. The
        # scanner said why; the library stays watched and is scanned again later (`guarded`).
        if probed.online:
            self.guarded.add(library.name)
        else:
            self.observe(library, probed)

    def observe(self, library: LibraryConfig, probed: Probe) -> None:
        """Record a probe; on a change, (un)watch the library and record it offline."""
        change = self.availability.observe(library.name, probed.online, probed.reason)
        if change is Change.ONLINE:
            self.post(WatchStart(library.name))
        elif change is Change.OFFLINE:
            self.post(WatchStop(library.name))
            self.queue.discard(library.name)
            row = queries.get_library(library.name)
            if row is not None:
                queries.set_library_online(self.store, row.id, False, probed.reason)

    def beat(self) -> None:
        self.last_tick_s = time.time()
        heartbeat.beat(self.store, self.config.daemon.host, self.pid, self.heartbeat_status())

    def heartbeat_status(self) -> str:
        watches = {name: report._asdict() for name, report in self.watch_report().items()}
        return heartbeat.encode_status(self.idle_status(), watches)

    def idle_status(self) -> str:
        names = [lib.name for lib in self.config.libraries]
        offline = [name for name in names if not self.availability.is_online(name)]
        text = f"watching {len(names) - len(offline)} of {len(names)} libraries"
        return text + (f"; offline: {', '.join(offline)}" if offline else "")

    def _failed(self, work: object, exc: Exception) -> None:
        """Log, rescan what was lost, and back off (the database may be down).

        A database that cannot be reached is one `database.unreachable` warning for the whole
        outage, not an error per retry: the watches go on filling the (per-path coalesced)
        queue, every failed batch becomes a rescan of its library, and the first job that
        commits again logs `database.recovered`.
        """
        self._failures += 1
        backoff_s = min(MAX_BACKOFF_S, 2.0 ** (self._failures - 1))
        log = logs.get_logger()
        error = f"{type(exc).__name__}: {database_error_text(exc)}"
        if isinstance(exc, OperationalError | InterfaceError):
            self.store.close()  # a broken connection; the next query opens a new one
            if self._database_down_since is None:
                self._database_down_since = time.monotonic()
                log.warning(logs.DATABASE_UNREACHABLE, error=error,
                            database=redact_url(self.config.daemon.database),
                            action="watching on; retrying with backoff up to "
                            f"{MAX_BACKOFF_S:g} s; what changed meanwhile is rescanned")
            else:
                log.debug("writer.retry", work=type(work).__name__, error=error,
                          retry_in_s=backoff_s)
        else:
            log.error("writer.failed", work=type(work).__name__,
                      library=getattr(work, "library", None), error=error,
                      retry_in_s=backoff_s, exc_info=self.config.daemon.log_level == "debug")
        if isinstance(work, EventBatch | Rescan):
            self.queue.put(Rescan(work.library, "retry after a failure"))
        elif isinstance(work, Announce | VerifyProgress):
            # READY=1 still comes, after the scans queued before it; a verify's mismatches
            # are recorded once the database is back.
            self.queue.put(work)
        self.stop.wait(backoff_s)

    def _database_back(self) -> None:
        if self._database_down_since is not None:
            logs.get_logger().info(
                logs.DATABASE_RECOVERED,
                outage_s=round(time.monotonic() - self._database_down_since, 1))
            self._database_down_since = None
