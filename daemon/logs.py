"""structlog setup and the event names users tail for.

One event per line: JSON objects (`timestamp`, `level`, `event`, fields) or console lines.
The log file, when configured, is reopened on SIGHUP so logrotate can move it away.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import TextIO

import structlog

# The event names the contract promises; grep for these constants, not string literals.
DAEMON_STARTED = "daemon.started"
DAEMON_READY = "daemon.ready"
DAEMON_STOPPING = "daemon.stopping"
DAEMON_STOPPED = "daemon.stopped"
SCAN_FINISHED = "scan.finished"
LIBRARY_OFFLINE = "library.offline"
LIBRARY_ONLINE = "library.online"
WATCH_OVERFLOW = "watch.overflow"
WATCH_FALLBACK_POLLING = "watch.fallback_polling"
CONFIG_RELOADED = "config.reloaded"
CONFIG_INVALID = "config.invalid"
RECONCILE_FINISHED = "reconcile.finished"
ENRICH_FAILED = "enrich.failed"
ENRICHER_UNAVAILABLE = "enricher.unavailable"

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
LEVEL_NAMES = tuple(_LEVELS)


class ReopenableStream:
    """A text stream that writes to stderr or to a file that `reopen()` opens anew."""

    def __init__(self, path: str = ""):
        self.path = path
        self._lock = threading.Lock()
        self._file: TextIO = sys.stderr
        self.reopen()

    def reopen(self, path: str | None = None) -> None:
        with self._lock:
            if path is not None:
                self.path = path
            old = self._file
            if self.path:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            else:
                self._file = sys.stderr
            if old is not sys.stderr and old is not self._file:
                old.close()

    def write(self, text: str) -> int:
        with self._lock:
            return self._file.write(text)

    def flush(self) -> None:
        with self._lock:
            self._file.flush()

    def isatty(self) -> bool:
        return self._file.isatty()


_stream: ReopenableStream | None = None


def configure(level: str = "info", fmt: str = "auto", log_file: str = "") -> ReopenableStream:
    """Configure structlog (and route stdlib warnings, e.g. watchdog's, into it)."""
    global _stream
    if _stream is None:
        _stream = ReopenableStream(log_file)
    else:
        _stream.reopen(log_file)
    use_console = fmt == "console" or (fmt == "auto" and _stream.isatty())
    renderer = (
        structlog.dev.ConsoleRenderer(colors=False)
        if use_console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, 20)),
        logger_factory=structlog.PrintLoggerFactory(file=_stream),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(level)
    return _stream


def reopen() -> None:
    """Reopen the log file (SIGHUP), so a rotated file is let go."""
    if _stream is not None:
        _stream.reopen()


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name) if name else structlog.get_logger()


class _StructlogHandler(logging.Handler):
    """Stdlib records (watchdog, apscheduler) become structlog events on the same stream."""

    def emit(self, record: logging.LogRecord) -> None:
        log = structlog.get_logger()
        method = getattr(log, record.levelname.lower(), log.warning)
        method("stdlib." + record.name, message=record.getMessage())


def _route_stdlib(level: str) -> None:
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _StructlogHandler)]
    root.addHandler(_StructlogHandler())
    root.setLevel(max(_LEVELS.get(level, 20), logging.INFO))
    # apscheduler logs every job run at INFO: that is per-tick noise, not an operator signal.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
