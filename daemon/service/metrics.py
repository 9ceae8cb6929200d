"""The daemon's Prometheus metrics (served by http.py when `listen` is set).

Two kinds, so a scrape stays cheap at a million files:
- Counters and histograms the daemon updates as it works: the writer after each full scan
  and event batch, the ticker after the reconcile passes, and three counters fed by the
  warnings the contract names (`watch.overflow`, `enrich.failed`, `verify.mismatch`) through a
  log listener, so the code that logs them needs no metrics of its own. Being warnings, they
  are not counted with `log_level = "error"` or above.
- Gauges read at scrape time by `IndexCollector`: one pass of conditional counts over the file
  table (`FILE_COUNTS_SQL`), never a query per library or per state, plus what the daemon
  holds in memory (libraries online, inotify watches, the last tick).
The scrape runs on the HTTP thread, which only reads the database.

The pass over the file table costs 0.3 s at a million files: a scrape every 15 s spent 2 % of
a core on it, four times the daemon's whole idle budget. So the counts are kept between
scrapes and counted again only when the index may have changed (SQLite's `data_version`;
PostgreSQL has none: always), and no sooner than `COUNT_CPU_SHARE` allows after what the last
count cost: at a million files, at most once a minute; at a few thousand, at most every few
milliseconds. Each scrape still asks the database something, so `assetd_database_up` is live.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from peewee import DatabaseError, InterfaceError
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon import __version__, logs
from daemon.mounts import max_user_watches
from daemon.store import Store
from daemon.store.models import STATE_CODES

# A scan of a small library takes milliseconds, of a million files many minutes.
SCAN_BUCKETS_S = (0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, float("inf"))
# settle (200 ms by default) is the floor of event → index latency.
EVENT_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, float("inf"))
STATES = ("new", "enriching", "ready")
# One pass over the file table, in library_id order (its index), no sort: at 1M rows this took
# 1.5 s against 1.2 s for `status`'s own count query, where GROUP BY library, state, is_missing
# took 2.3-4.3 s (a temporary B-tree for the grouping). Measured on a shared 2-core machine.
FILE_COUNTS_SQL = (
    "SELECT library_id,"
    " SUM(CASE WHEN is_missing THEN 1 ELSE 0 END),"
    + "".join(f" SUM(CASE WHEN NOT is_missing AND state = {STATE_CODES[state]} THEN 1 ELSE 0 END),"
              for state in STATES)
    + " SUM(CASE WHEN NOT is_missing AND content_hash IS NULL THEN 1 ELSE 0 END)"
    " FROM file GROUP BY library_id"
)
# The share of a core the scrapes may spend counting files (see the module docstring).
COUNT_CPU_SHARE = 0.005


@dataclass
class DaemonView:
    """What the collector asks the running daemon (each callable is safe from any thread)."""

    libraries: Callable[[], list[str]]
    online: Callable[[str], bool]
    inotify_watches: Callable[[], dict[str, int]]
    last_tick_s: Callable[[], float | None]


class Metrics:
    def __init__(self) -> None:
        # No `_created` series beside every counter: the daemon's start time is in
        # process_start_time_seconds already.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        r = self.registry
        self.scans = Counter("assetd_scans", "Full scans by library and status "
                             "(ok, partial, offline)", ["library", "status"], registry=r)
        self.scan_duration = Histogram("assetd_scan_duration_seconds", "Full scan duration",
                                       ["library"], buckets=SCAN_BUCKETS_S, registry=r)
        self.event_to_index = Histogram("assetd_event_to_index_seconds",
                                        "Watcher event to committed row (oldest event of "
                                        "each batch)", buckets=EVENT_BUCKETS_S, registry=r)
        self.watch_overflows = Counter("assetd_watch_overflows", "inotify queue overflows",
                                       ["library"], registry=r)
        self.enrich_failures = Counter("assetd_enrich_failures", "Enricher failures",
                                       ["enricher"], registry=r)
        self.reconcile_changes = Counter("assetd_reconcile_changes",
                                         "Rows changed by the reconcile passes", ["pass"],
                                         registry=r)
        self.verify_mismatches = Counter("assetd_verify_mismatches",
                                         "Hash mismatches found by verify", ["library"],
                                         registry=r)
        ProcessCollector(registry=r)
        self._remove_listener: Callable[[], None] | None = None

    def start(self, store: Store, view: DaemonView, library_names: list[str]) -> None:
        """Serve the index gauges and count the contract's warnings from now on."""
        for name in library_names:  # a counter that exists at 0 is one an alert can watch
            self.verify_mismatches.labels(library=name)
            self.watch_overflows.labels(library=name)
        self.registry.register(IndexCollector(store, view))
        self._remove_listener = logs.add_listener(self._on_log_event)

    def stop(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None

    def _on_log_event(self, event: dict) -> None:
        match event.get("event"):
            case logs.WATCH_OVERFLOW:
                self.watch_overflows.labels(library=str(event.get("library"))).inc()
            case logs.ENRICH_FAILED:
                self.enrich_failures.labels(enricher=str(event.get("enricher"))).inc(
                    _count(event))
            case logs.ENRICH_FINISHED:
                # Past a few enrich.failed lines per run, the summary counts the rest.
                for enricher, count in (event.get("failures_not_logged") or {}).items():
                    self.enrich_failures.labels(enricher=str(enricher)).inc(count)
            case logs.VERIFY_MISMATCH:
                self.verify_mismatches.labels(library=str(event.get("library"))).inc(
                    _count(event))


def _count(event: dict) -> int:
    """A summary line (`count`) stands for that many failures, a per-file line for one."""
    count = event.get("count")
    return count if isinstance(count, int) and count > 0 else 1


@dataclass(frozen=True)
class _Counted:
    """The file counts of a scrape, what they cost, and the index version they saw."""

    names: tuple[str, ...]
    counts: dict
    unhashed: dict
    version: int | None  # SQLite's data_version before counting; None on PostgreSQL
    at_s: float
    cost_s: float


class IndexCollector(Collector):
    def __init__(self, store: Store, view: DaemonView,
                 clock: Callable[[], float] = time.monotonic):
        self._store = store
        self._view = view
        self._clock = clock
        self._counted: _Counted | None = None

    def collect(self) -> Iterator[Metric]:
        names = self._view.libraries()
        files = GaugeMetricFamily("assetd_files", "Indexed files by library and state (missing: "
                                  "marked missing)", labels=["library", "state"])
        unhashed = GaugeMetricFamily("assetd_unhashed_files", "Present files without a hash",
                                     labels=["library"])
        database_up = GaugeMetricFamily("assetd_database_up", "1 if the index could be read")
        try:
            counts, unhashed_counts = self._file_counts(names)
        except (DatabaseError, InterfaceError):
            self._store.close()  # a broken connection; the next scrape opens a new one
            self._counted = None  # a new connection's data_version starts again
            database_up.add_metric([], 0)
        else:
            database_up.add_metric([], 1)
            for (library, state), count in sorted(counts.items()):
                files.add_metric([library, state], count)
            for library, count in sorted(unhashed_counts.items()):
                unhashed.add_metric([library], count)
            yield files
            yield unhashed
        yield database_up
        yield from self._daemon_gauges(names)

    def _file_counts(self, names: list[str]) -> tuple[dict, dict]:
        """The counts, from the last scrape's where they are still good (module docstring);
        asks the database at least its version (PostgreSQL: `SELECT 1`) every time."""
        store, now = self._store, self._clock()
        if store.is_sqlite:
            version = store.query("PRAGMA data_version")[0][0]
        else:  # reachable? PostgreSQL cannot say whether the table changed
            store.query("SELECT 1")
            version = None
        last = self._counted
        if last is not None and last.names == tuple(names) and (
                (version is not None and version == last.version)
                or now - last.at_s < last.cost_s / COUNT_CPU_SHARE):
            return last.counts, last.unhashed
        counts, unhashed = self._count(names)
        self._counted = _Counted(tuple(names), counts, unhashed, version, now,
                                 self._clock() - now)
        return counts, unhashed

    def _count(self, names: list[str]) -> tuple[dict, dict]:
        counts = {(name, state): 0 for name in names for state in (*STATES, "missing")}
        unhashed = dict.fromkeys(names, 0)
        library_names = dict(self._store.query("SELECT id, name FROM library"))
        for library_id, missing, *per_state, null_hashes in self._store.query(FILE_COUNTS_SQL):
            library = library_names.get(library_id, str(library_id))
            counts[(library, "missing")] = int(missing or 0)
            for state, count in zip(STATES, per_state, strict=True):
                counts[(library, state)] = int(count or 0)
            unhashed[library] = int(null_hashes or 0)
        return counts, unhashed

    def _daemon_gauges(self, names: list[str]) -> Iterator[Metric]:
        online = GaugeMetricFamily("assetd_library_online", "1 while the library is online",
                                   labels=["library"])
        for name in names:
            online.add_metric([name], 1 if self._view.online(name) else 0)
        yield online
        watches = GaugeMetricFamily("assetd_inotify_watches",
                                    "inotify watches held per library (0 when polled)",
                                    labels=["library"])
        held = self._view.inotify_watches()
        for name in names:
            watches.add_metric([name], held.get(name, 0))
        yield watches
        limit = max_user_watches()
        if limit is not None:
            yield GaugeMetricFamily("assetd_inotify_watches_limit",
                                    "fs.inotify.max_user_watches", value=limit)
        last_tick_s = self._view.last_tick_s()
        if last_tick_s is not None:
            yield GaugeMetricFamily("assetd_last_tick_timestamp_seconds",
                                    "When the last tick finished (Unix time)", value=last_tick_s)
        build = GaugeMetricFamily("assetd_build_info", "assetd's version", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
