"""Scan progress as systemd's STATUS= line, and the way a stop request ends a long scan.

`systemctl status assetd` shows e.g. "indexing photos: 41,200 files, 3.1 GB/s". The same
callbacks are where a scan notices that the daemon is stopping: raising `ScanAborted` from a
progress report ends the scan between files: the parts of the plan already applied stay (each
is consistent on its own), the rest is not written, and the next start scans again. An event
batch gets a grace period to finish (it is small and the contract says the current batch is
finished); a full scan is abandoned at once.
"""

from __future__ import annotations

import threading
import time

from daemon.scan.progress import Progress
from daemon.service.notify import SystemdNotifier
from daemon.units import human_rate

STATUS_EVERY_S = 1.0


class ScanAborted(Exception):
    """The daemon is stopping; the scan's plan was not applied."""


class StopFlag:
    """Set once by the main loop; read by the writer's scans between files and chunks."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._requested_at = 0.0

    def request(self) -> None:
        self._requested_at = time.monotonic()
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout_s: float) -> bool:
        """Sleep up to `timeout_s`; True (at once) when a stop is requested."""
        return self._event.wait(timeout_s)

    def check(self, grace_s: float = 0.0) -> None:
        """Raise ScanAborted once a stop was requested more than `grace_s` ago."""
        if self._event.is_set() and time.monotonic() - self._requested_at >= grace_s:
            raise ScanAborted()


class StatusProgress(Progress):
    """One scan's progress: STATUS= at most once a second; aborts on a stop request."""

    def __init__(self, notifier: SystemdNotifier, stop: StopFlag, *, grace_s: float,
                 announce: bool = True):
        self._notifier = notifier
        self._stop = stop
        self._grace_s = grace_s
        self._announce = announce
        self._library = ""
        self._files = 0
        self._hashed_bytes = 0
        self._hash_started = time.monotonic()
        self._last_status = 0.0

    def discovered(self, library: str, files: int) -> None:
        self._stop.check(self._grace_s)
        self._library, self._files = library, files
        self._status(f"indexing {library}: {files:,} files")

    def hashing(self, library: str, files: int, total_bytes: int) -> None:
        self._stop.check(self._grace_s)
        self._hashed_bytes, self._hash_started = 0, time.monotonic()

    def hashed_bytes(self, n: int) -> None:
        self._stop.check(self._grace_s)
        self._hashed_bytes += n
        now = time.monotonic()
        if now - self._last_status >= STATUS_EVERY_S:
            rate = self._hashed_bytes / max(now - self._hash_started, 1e-6)
            self._status(f"indexing {self._library}: {self._files:,} files, {human_rate(rate)}")

    def _status(self, text: str) -> None:
        if self._announce:
            self._last_status = time.monotonic()
            self._notifier.status(text)
