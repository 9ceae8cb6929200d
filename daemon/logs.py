"""structlog setup and the event names users tail for.

One event per line: JSON objects whose first keys are `timestamp`, `level`, `event` (then the
fields), or console lines. No value carries a newline (a multi-line error message, e.g. from
PostgreSQL or an enricher's stderr, is joined into one line), so `grep` and `jq` see one event
per line in either format. The log file, when configured, is reopened on SIGHUP so logrotate
can move it away; lines at `warning` and above also go to stderr (the journal) then.

structlog is imported on the first event, not at start-up: with the asyncio it imports it was
~20 ms of the ~180 ms `assetd status` took to start, and most one-shot commands log nothing.
`configure` records the settings; the first `get_logger` applies them.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, TextIO

if TYPE_CHECKING:
    import logging

    import structlog

# The event names the contract promises; grep for these constants, not string literals.
DAEMON_STARTED = "daemon.started"
DAEMON_READY = "daemon.ready"
DAEMON_STOPPING = "daemon.stopping"
DAEMON_STOPPED = "daemon.stopped"
DATABASE_UNREACHABLE = "database.unreachable"
DATABASE_RECOVERED = "database.recovered"
SCAN_FINISHED = "scan.finished"
LIBRARY_OFFLINE = "library.offline"
LIBRARY_ONLINE = "library.online"
LIBRARY_ADOPTED = "library.adopted"
WATCH_OVERFLOW = "watch.overflow"
WATCH_FALLBACK_POLLING = "watch.fallback_polling"
CONFIG_RELOADED = "config.reloaded"
CONFIG_INVALID = "config.invalid"
RECONCILE_FINISHED = "reconcile.finished"
ENRICH_FINISHED = "enrich.finished"
ENRICH_FAILED = "enrich.failed"
ENRICHER_UNAVAILABLE = "enricher.unavailable"
VERIFY_MISMATCH = "verify.mismatch"
VERIFY_FINISHED = "verify.finished"

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
                directory = os.path.dirname(os.path.abspath(self.path))
                if not os.path.isdir(directory):
                    os.makedirs(directory, mode=0o700, exist_ok=True)
                # 0600 when assetd creates it: the log names every file it indexes.
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                self._file = open(fd, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
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


class _TeeLogger:
    """Writes every line to the stream; with a log file, `warning` and above also to stderr.

    structlog calls the method named after the level with the rendered line.
    """

    def __init__(self, stream: ReopenableStream):
        self._stream = stream

    def _write(self, message: str) -> None:
        self._stream.write(message + "\n")
        self._stream.flush()

    def _write_loud(self, message: str) -> None:
        self._write(message)
        if self._stream.path:
            print(message, file=sys.stderr, flush=True)

    msg = debug = info = _write
    warn = warning = error = err = critical = fatal = exception = _write_loud


def _first_keys(_logger, _method, event_dict: dict) -> dict:
    """`timestamp`, `level`, `event` first: what a reader of a JSON line looks at first."""
    head = {key: event_dict.pop(key) for key in ("timestamp", "level", "event")
            if key in event_dict}
    return {**head, **event_dict}


def _one_line(_logger, _method, event_dict: dict) -> dict:
    """A multi-line value (an error message) would split the event over several lines."""
    for key, value in event_dict.items():
        if key != "exception" and isinstance(value, str) and ("\n" in value or "\r" in value):
            event_dict[key] = " ".join(part.strip() for part in value.splitlines()
                                       if part.strip())
    return event_dict


def _drop_false_dry_run(_logger, _method, event_dict: dict) -> dict:
    """`dry_run` only when true: the daemon never dry-runs, `dry_run=False` is noise."""
    if event_dict.get("dry_run") is False:
        del event_dict["dry_run"]
    return event_dict


_stream: ReopenableStream | None = None
# Called with each event dict that passes the level filter (metrics count some warnings).
_listeners: list[Callable[[dict], None]] = []


def add_listener(listener: Callable[[dict], None]) -> Callable[[], None]:
    """Call `listener(event_dict)` for every event logged from now on; returns its remover."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def _call_listeners(_logger: object, _method: str, event_dict: dict) -> dict:
    for listener in list(_listeners):
        listener(event_dict)
    return event_dict


class _Settings(NamedTuple):
    level: str
    use_console: bool
    stream: ReopenableStream


# Settings `configure` recorded before structlog was imported; the first logger applies them.
_pending: _Settings | None = None
_pending_lock = threading.Lock()
_level_number: int | None = None  # the configured level's; None before `configure`


def enabled(level: str) -> bool:
    """Would an event at `level` be written (True before `configure`: structlog's default)?

    An event the level drops costs nothing but the import of structlog, ~25 ms with asyncio:
    a one-shot `scan` (level warning) asks first, and logs its info events only when they
    would be written.
    """
    return _level_number is None or _LEVELS[level] >= _level_number


def configure(level: str = "info", fmt: str = "auto", log_file: str = "") -> ReopenableStream:
    """Configure structlog (and route stdlib warnings, e.g. watchdog's, into it).

    Applied at once when structlog is already imported (a SIGHUP reload), else on the first
    `get_logger`.
    """
    global _stream, _pending, _level_number
    _level_number = _LEVELS.get(level, _LEVELS["info"])
    if _stream is None:
        _stream = ReopenableStream(log_file)
    else:
        _stream.reopen(log_file)
    settings = _Settings(level, fmt == "console" or (fmt == "auto" and _stream.isatty()),
                         _stream)
    with _pending_lock:
        _pending = settings
    if "structlog" in sys.modules:
        _apply_pending()
    _route_stdlib(level)
    return _stream


def _apply_pending() -> None:
    global _pending
    if _pending is None:
        return
    with _pending_lock:
        if _pending is None:  # another thread applied them meanwhile
            return
        _apply(_pending)
        _pending = None


def _apply(settings: _Settings) -> None:
    import structlog

    stream = settings.stream
    renderer = (
        structlog.dev.ConsoleRenderer(colors=False)
        if settings.use_console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _drop_false_dry_run,
            _one_line,
            _first_keys,
            _call_listeners,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(settings.level, 20)),
        logger_factory=lambda *_args: _TeeLogger(stream),
        cache_logger_on_first_use=False,
    )


def reopen() -> None:
    """Reopen the log file (SIGHUP), so a rotated file is let go."""
    if _stream is not None:
        _stream.reopen()


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    import structlog

    _apply_pending()
    return structlog.get_logger(name) if name else structlog.get_logger()


def _emit_stdlib_record(record: logging.LogRecord) -> None:
    """Stdlib records (watchdog, apscheduler) become structlog events on the same stream."""
    log = get_logger()
    method = getattr(log, record.levelname.lower(), log.warning)
    method("stdlib." + record.name, message=record.getMessage())


# The root logger's handler for stdlib records, made by the first `configure`: importing
# logging here rather than at the top keeps it out of `assetd --help`.
_stdlib_handler: logging.Handler | None = None


def _route_stdlib(level: str) -> None:
    import logging

    global _stdlib_handler
    if _stdlib_handler is None:
        _stdlib_handler = logging.Handler()
        _stdlib_handler.emit = _emit_stdlib_record  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(_stdlib_handler)  # once: a handler it already has is not added again
    root.setLevel(max(_LEVELS.get(level, 20), logging.INFO))
    # apscheduler logs every job run at INFO: that is per-tick noise, not an operator signal.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
