"""`assetd run`: the daemon's lifecycle, its main loop, and what signals do.

Startup: (the CLI opened and migrated the database) heartbeat row, probe each library, start
the watches, queue a scan of every library, then READY=1 once the writer has done those
scans. Watches start before the scans so nothing that changes during a scan is missed.

Threads: the main thread runs the loop below and owns the watches; the writer (writer.py) is
the only one that touches the database after startup; watchdog's observer threads and
APScheduler's thread only enqueue; a small thread pings systemd's watchdog while the main loop
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

from daemon import logs
from daemon.config import Config, ConfigError, LibraryConfig
from daemon.errors import UsageError
from daemon.scan.probe import probe
from daemon.scan.scanner import skip_paths
from daemon.service import heartbeat
from daemon.service.inbox import (
    Announced,
    Inbox,
    Message,
    Signal,
    WatchLimit,
    WatchStart,
    WatchStop,
)
from daemon.service.notify import SystemdNotifier
from daemon.service.progress import StopFlag
from daemon.service.queue import Announce, Rescan, ScanQueue
from daemon.service.ticker import Ticker
from daemon.service.watcher import WatchSet
from daemon.service.writer import Writer
from daemon.store import Store, redact_url

LOOP_WAKE_S = 1.0
# SIGTERM must end the process within 5 s; this is the writer's share of it.
WRITER_STOP_TIMEOUT_S = 4.0
STARTUP_DONE = "startup scans done"
# Changing these needs a restart: the open database and the heartbeat's identity.
RESTART_ONLY_KEYS = ("database", "host")


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
        self.writer = Writer(store, config, self.queue, self.inbox.post, self.notifier, self.stop)
        self.watches = WatchSet(self.queue, self.inbox.post,
                                poll_interval_s=config.daemon.tick_interval_s,
                                skip_abs=_skip_abs(config))
        self.ticker = Ticker(self.queue, config.daemon.tick_interval_s)
        self.loop_alive_at = time.monotonic()
        self.started = time.monotonic()
        self._stopping = False
        self._ready = False
        self._log = logs.get_logger()

    def run(self) -> int:
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
            reason = unavailable_reason(enricher.name) or degraded_reason(enricher.name)
            if reason:
                self._log.warning(logs.ENRICHER_UNAVAILABLE, enricher=enricher.name,
                                  reason=reason,
                                  disabled=unavailable_reason(enricher.name) is not None)

    def _start(self) -> None:
        daemon = self.config.daemon
        heartbeat.register(self.store, daemon.host, self.pid)
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
            self.queue.put(Rescan(library.name, "startup"))
        self.queue.put(Announce(STARTUP_DONE))
        self.ticker.start()

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, Signal):
            if message.signum == signal.SIGHUP:
                self.handle_hup()
            else:
                self.handle_term(message.signum)
        elif isinstance(message, WatchStart):
            library = self.config.library(message.library)
            if library is not None and not self.watches.is_watching(library.name):
                self._watch(library)
                self.queue.put(Rescan(library.name, "watch started"))
        elif isinstance(message, WatchStop):
            self.watches.stop(message.library)
        elif isinstance(message, WatchLimit):
            self.watches.fall_back_to_polling(message.library, message.error)
            self.queue.put(Rescan(message.library, "fell back to polling"))
        elif isinstance(message, Announced) and message.message == STARTUP_DONE:
            self._ready = True
            self.notifier.ready()
            self._log.info(logs.DAEMON_READY,
                           startup_s=round(time.monotonic() - self.started, 3))
            self.notifier.status(self.writer.idle_status())

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

    def _ping_watchdog(self, interval_s: float) -> None:
        """WATCHDOG=1 every half WatchdogSec, but only while the main loop keeps turning."""
        while not self.stop.wait(interval_s):
            if time.monotonic() - self.loop_alive_at <= interval_s + LOOP_WAKE_S:
                self.notifier.watchdog_ping()

    def _shutdown(self) -> None:
        """Stop taking events, let the writer finish its batch, commit, unregister."""
        self.stop.request()
        self.queue.close()
        self.ticker.shutdown()
        self.watches.stop_all()
        finished = self.writer.join(WRITER_STOP_TIMEOUT_S)
        daemon = self.config.daemon
        heartbeat.unregister(self.store, daemon.host, self.pid)
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
