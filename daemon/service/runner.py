"""`assetd run`: the daemon's lifecycle, its main loop, and what signals do.

Startup: (the CLI opened and migrated the database) heartbeat row, probe each library, start
the watches, queue a scan of every library, then READY=1 once the writer has done those
scans. Watches start before the scans so nothing that changes during a scan is missed.

Threads: the main thread runs the loop below and owns the watches; the writer (writer.py) is
the only one that writes to the database after startup (the main thread reads it on SIGHUP,
to refuse another host's library); watchdog's observer threads and
APScheduler's tick job only enqueue; its verify job (scheduled_verify.py) reads files and the
database and enqueues what it found; mounttable.py's thread only posts to the inbox when the
kernel's mount table changes; a small thread pings systemd's watchdog while the main loop
keeps turning. Signal handlers only post to the inbox (inbox.py); the main loop dispatches
`handle_hup` and `handle_term`.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import assert_never

from peewee import DatabaseError, InterfaceError, OperationalError

from daemon import logs
from daemon.config import Config, ConfigError, LibraryConfig
from daemon.errors import UsageError, database_error_text
from daemon.libraries import check_owned
from daemon.scan.probe import probe
from daemon.scan.scanner import skip_paths
from daemon.service import heartbeat
from daemon.service.http import HttpServer
from daemon.service.inbox import (
    Announced,
    Inbox,
    Message,
    MountsChanged,
    Signal,
    WatchLimit,
    WatchStart,
    WatchStop,
)
from daemon.service.metrics import DaemonView, Metrics
from daemon.service.mounttable import MountTableFollower
from daemon.service.notify import SystemdNotifier
from daemon.service.progress import StopFlag
from daemon.service.queue import STARTUP, Announce, Reprobe, Rescan, ScanQueue
from daemon.service.scheduled_verify import ScheduledVerify
from daemon.service.ticker import Ticker
from daemon.service.watcher import WatchSet
from daemon.service.writer import Writer
from daemon.store import Store, redact_url
from daemon.store import changes as feed

LOOP_WAKE_S = 1.0
# SIGTERM must end the process within 5 s; this is the writer's share of it.
WRITER_STOP_TIMEOUT_S = 4.0
STARTUP_DONE = "startup scans done"
# Changing these needs a restart: the open database, the heartbeat's identity, the socket.
RESTART_ONLY_KEYS = ("database", "host", "listen")


STARTUP_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


def open_store_waiting(url: str, host: str) -> Store | None:
    """The index, once the database can be reached; None when SIGTERM/SIGINT came first.

    A database that is down at boot must not leave the service dead (systemd would give up on
    a unit that keeps exiting): wait with backoff, logging `database.unreachable` once and
    `database.recovered` when it answers. Nothing is lost meanwhile: the startup scans that
    follow compare every library with the index.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    log = logs.get_logger()
    down_since = None
    try:
        attempt = 0
        while True:
            try:
                store = Store(url, host=host)
            except (OperationalError, InterfaceError) as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning(logs.DATABASE_UNREACHABLE, database=redact_url(url),
                                error=database_error_text(exc),
                                action="waiting for it; retrying with backoff")
                delay_s = STARTUP_BACKOFF_S[min(attempt, len(STARTUP_BACKOFF_S) - 1)]
                attempt += 1
                if stop.wait(delay_s):
                    log.info(logs.DAEMON_STOPPED, pid=os.getpid(),
                             note="stopped while waiting for the database")
                    return None
                continue
            if down_since is not None:
                log.info(logs.DATABASE_RECOVERED,
                         outage_s=round(time.monotonic() - down_since, 1))
            return store
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(store: Store, config: Config, reload_config: Callable[[], Config]) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop. `reload_config` raises ConfigError."""
    return Runner(store, config, reload_config).run()


class Runner:
    def __init__(self, store: Store, config: Config, reload_config: Callable[[], Config]):
        self.store = store
        self.config = config
        self.reload_config = reload_config
        self.pid = os.getpid()
        self.inbox = Inbox()
        self.notifier = SystemdNotifier()
        self.stop = StopFlag()
        self.queue = ScanQueue(config.daemon.settle_s)
        self.watches = WatchSet(self.queue, self.inbox.post,
                                poll_interval_s=config.daemon.tick_interval_s,
                                skip_abs=_skip_abs(config))
        self.metrics = Metrics()
        self.writer = Writer(store, config, self.queue, self.inbox.post, self.notifier, self.stop,
                             self.watches.report, self.metrics)
        self.http: HttpServer | None = None
        self.ticker = Ticker(self.queue, config.daemon.tick_interval_s)
        self.verify = ScheduledVerify(store, self.queue, self.ticker.scheduler, self.stop,
                                      lambda: self.writer.config,
                                      self.writer.files_readable)
        self.mounts = MountTableFollower(self.inbox.post)
        self.loop_alive_at = time.monotonic()
        self.started = time.monotonic()
        self._stopping = False
        self._ready = False
        self._log = logs.get_logger()

    def run(self) -> int:
        # Before anything starts: a second daemon of this host, or a config naming another
        # host's library, exits 2 having touched nothing.
        check_owned(self.store, self.config)
        heartbeat.register(self.store, self.config.daemon.host, self.pid)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
        try:
            self._start()
            while not self._stopping:
                for message in self.inbox.wait(LOOP_WAKE_S):
                    self._dispatch(message)
                self.loop_alive_at = time.monotonic()
                self._revive_dead_watches()
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.inbox.post(Signal(signum))

    def _warn_unavailable_enrichers(self) -> None:
        """Once at start: a built-in that cannot run here, or runs with less (no libmagic)."""
        from daemon.meta.enrichers import degraded_reason, unavailable_reason

        for enricher in self.config.enrichers:
            if not enricher.builtin:
                continue
            unavailable = unavailable_reason(enricher.name)
            reason = unavailable or degraded_reason(enricher.name)
            if reason:
                self._log.warning(logs.ENRICHER_UNAVAILABLE, enricher=enricher.name,
                                  reason=reason, disabled=unavailable is not None)

    def _start(self) -> None:
        daemon = self.config.daemon
        self._serve_http()
        self._log.info(logs.DAEMON_STARTED, pid=self.pid, host=daemon.host,
                       config=self.config.source, database=redact_url(daemon.database),
                       libraries=[lib.name for lib in self.config.libraries])
        self._warn_unavailable_enrichers()
        self.notifier.status("starting: scanning libraries")
        interval_s = self.notifier.watchdog_interval_s()
        if interval_s is not None:
            threading.Thread(target=self._ping_watchdog, args=(interval_s,),
                             name="assetd-watchdog", daemon=True).start()
        self.writer.start()
        for library in self.config.libraries:
            self._watch(library)
            self.queue.put(Rescan(library.name, STARTUP))
        self.queue.put(Announce(STARTUP_DONE))
        self.ticker.start()
        self.verify.schedule(self.config.daemon.verify_interval_s)
        self.mounts.start()

    def _dispatch(self, message: Message) -> None:
        match message:
            case Signal(signum=signal.SIGHUP):
                self.handle_hup()
            case Signal():
                self.handle_term(message.signum)
            case WatchStart():
                library = self.config.library(message.library)
                if library is not None and not self.watches.is_watching(library.name):
                    self._watch(library)
                    self.queue.put(Rescan(library.name, "watch started"))
            case WatchStop():
                self.watches.stop(message.library)
            case WatchLimit():
                self.watches.fall_back_to_polling(message.library, message.error)
                self.queue.put(Rescan(message.library, "fell back to polling"))
            case MountsChanged():
                self.queue.put(Reprobe())
            case Announced() if message.message == STARTUP_DONE:
                self._ready = True
                self.notifier.ready()
                self._log.info(logs.DAEMON_READY,
                               startup_s=round(time.monotonic() - self.started, 3))
                self.notifier.status(self.writer.idle_status())
            case Announced():
                pass
            case _:
                assert_never(message)

    def handle_hup(self) -> None:
        """Reload: reopen the log file, re-read the config, apply it, rescan everything.

        RELOADING=1 / READY=1 only once started: a READY=1 during the startup scans would tell
        systemd the service is up before it is.
        """
        if self._ready:
            self.notifier.reloading()
        logs.reopen()  # even when the new config is bad: logrotate moved the file away
        old = self.config
        try:
            new = self.reload_config()
            check_owned(self.store, new)
        except (OperationalError, InterfaceError) as exc:
            self._log.error(logs.CONFIG_INVALID, file=old.source, key="daemon.database",
                            error=f"could not check library owners: {database_error_text(exc)}",
                            action="kept the running config; send SIGHUP again later")
            self._reloaded()
            return
        except (ConfigError, UsageError) as exc:
            self._log.error(logs.CONFIG_INVALID, file=getattr(exc, "file", old.source),
                            key=getattr(exc, "key", None),
                            error=getattr(exc, "problem", str(exc)),
                            action="kept the running config")
            self._reloaded()
            return
        new = self._keep_restart_only_keys(old, new)
        old_names = {lib.name for lib in old.libraries}
        new_names = {lib.name for lib in new.libraries}
        removed = sorted(old_names - new_names)
        added = sorted(new_names - old_names)
        changed = {n for n in old_names & new_names if old.library(n) != new.library(n)}
        if old.daemon.tick_interval_s != new.daemon.tick_interval_s:
            # A polling observer takes its interval when it starts: restart those.
            changed |= set(self.watches.polling()) & new_names
        changed = sorted(changed)
        for name in removed + changed:
            self.watches.stop(name)
            self.queue.discard(name)
        self.config = self.writer.config = new
        self.queue.set_settle(new.daemon.settle_s)
        self.watches.poll_interval_s = new.daemon.tick_interval_s
        self.watches.skip_abs = _skip_abs(new)
        self.ticker.reschedule(new.daemon.tick_interval_s)
        self.verify.schedule(new.daemon.verify_interval_s)
        for library in new.libraries:
            if library.name in added or library.name in changed:
                self._watch(library)
            self.queue.put(Rescan(library.name, "reload"))
        self._log.info(logs.CONFIG_RELOADED, config=new.source, added=added, removed=removed,
                       changed=changed)
        self._reloaded()

    def _reloaded(self) -> None:
        if self._ready:
            self.notifier.ready()

    def handle_term(self, signum: int) -> None:
        self._log.info(logs.DAEMON_STOPPING, signal=signal.Signals(signum).name)
        self.notifier.stopping()
        self._stopping = True

    def _keep_restart_only_keys(self, old: Config, new: Config) -> Config:
        differ = [key for key in RESTART_ONLY_KEYS
                  if getattr(old.daemon, key) != getattr(new.daemon, key)]
        if not differ:
            return new
        self._log.warning("config.restart_required", keys=[f"daemon.{k}" for k in differ],
                          action="kept the running values until assetd is restarted")
        kept = {key: getattr(old.daemon, key) for key in differ}
        return dataclasses.replace(new, daemon=dataclasses.replace(new.daemon, **kept))

    def _watch(self, library: LibraryConfig) -> None:
        """Watch an online library; an offline one is watched once it is back (WatchStart)."""
        if self.watches.is_watching(library.name) or not probe(library).online:
            return
        try:
            self.watches.start(library)
        except OSError as exc:
            self._log.error("watch.failed", library=library.name,
                            error=f"{type(exc).__name__}: {exc}",
                            action="only full scans will see its changes")

    def _revive_dead_watches(self) -> None:
        """A watch dies with its root (deleted, or replaced by a new directory)."""
        for library in self.watches.dead():
            self.watches.stop(library.name)
            if probe(library).online:
                self._watch(library)
                self.queue.put(Rescan(library.name, "watch restarted"))

    def _serve_http(self) -> None:
        """Count metrics from now on; with `listen`, serve /metrics and /health on their own
        thread (it never writes). An address that cannot be bound is a usage error: exit 2."""
        self.metrics.start(self.store, DaemonView(
            libraries=lambda: [lib.name for lib in self.config.libraries],
            online=self.writer.availability.is_online,
            inotify_watches=lambda: {name: report.inotify_watches
                                     for name, report in self.watches.report().items()},
            last_tick_s=lambda: self.writer.last_tick_s,
        ), [lib.name for lib in self.config.libraries])
        listen = self.config.daemon.listen
        if not listen:
            return
        try:
            self.http = HttpServer(listen, self.metrics.registry, self._health,
                                   self._read_changes, on_exit=self.store.close)
        except OSError as exc:
            raise UsageError(f"daemon.listen: cannot listen on {listen}: "
                             f"{exc.strerror or exc}") from None
        self.http.start()

    def _read_changes(self, since: int, library: str | None, limit: int) -> feed.Page:
        """/changes, on the HTTP thread (its own connection: peewee keeps one per thread)."""
        return feed.read(self.store, since, library=library, limit=limit)

    def _health(self) -> tuple[int, dict]:
        """/health: 200 once ready with the database reachable (offline libraries are fine)."""
        try:
            self.store.query("SELECT 1")
            database = "ok"
        except (DatabaseError, InterfaceError):
            self.store.close()
            database = "unreachable"
        libraries = {lib.name: "online" if self.writer.availability.is_online(lib.name)
                     else "offline" for lib in self.config.libraries}
        status = "degraded" if database != "ok" else "ok" if self._ready else "starting"
        return (200 if status == "ok" else 503), {
            "status": status, "database": database, "libraries": libraries}

    def _ping_watchdog(self, interval_s: float) -> None:
        """WATCHDOG=1 every half WatchdogSec, but only while the main loop keeps turning."""
        while not self.stop.wait(interval_s):
            if time.monotonic() - self.loop_alive_at <= interval_s + LOOP_WAKE_S:
                self.notifier.watchdog_ping()

    def _shutdown(self) -> None:
        """Stop taking events, let the writer finish its batch, commit, unregister."""
        self.stop.request()
        if self.http is not None:
            self.http.stop()
        self.metrics.stop()
        self.queue.close()
        self.ticker.shutdown()
        self.mounts.stop()
        self.watches.stop_all()
        finished = self.writer.join(WRITER_STOP_TIMEOUT_S)
        daemon = self.config.daemon
        try:
            heartbeat.unregister(self.store, daemon.host, self.pid)
        except (OperationalError, InterfaceError):
            # In an outage: the row stays, and the next start of this host removes it.
            self._log.debug("heartbeat.unregister_failed", reason="database unreachable")
        self.inbox.close()
        if finished:
            self._log.info(logs.DAEMON_STOPPED, pid=self.pid)
        else:
            self._log.warning(logs.DAEMON_STOPPED, pid=self.pid,
                              note="the writer did not finish in time; its open transaction is "
                              "rolled back and the next start scans again")


def _skip_abs(config: Config) -> frozenset[bytes]:
    """assetd's own files, as configured and as resolved (watch paths are resolved)."""
    paths = skip_paths(config)
    return paths | {os.fsencode(os.path.realpath(p)) for p in paths}
