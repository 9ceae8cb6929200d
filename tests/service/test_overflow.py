"""A real inotify queue overflow, answered with `watch.overflow` and a full rescan.

The daemon is frozen with SIGSTOP, so nothing reads its inotify queue, while more events
than `fs.inotify.max_queued_events` happen; the kernel drops the rest and queues
IN_Q_OVERFLOW. Files created after the queue filled exist only for a rescan to find.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.service.conftest import write

MAX_QUEUED_EVENTS = Path("/proc/sys/fs/inotify/max_queued_events")
EVENTS_PER_NEW_FILE = 3  # IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE (opens and reads are not watched)


@pytest.mark.skipif(not MAX_QUEUED_EVENTS.exists(), reason="not Linux inotify")
def test_queue_overflow_is_answered_with_a_rescan(daemon_env, index, make_daemon):
    root = daemon_env.library("photos")
    daemon = make_daemon().start()
    files = int(MAX_QUEUED_EVENTS.read_text()) // EVENTS_PER_NEW_FILE + 1000

    daemon.signal(signal.SIGSTOP)
    try:
        for i in range(files):  # in the root: a new directory would not be watched yet
            write(root / f"{i}.dat", str(i))
    finally:
        daemon.signal(signal.SIGCONT)

    overflow = daemon.wait_log("watch.overflow", timeout=30)
    assert overflow["library"] == "photos"
    daemon.wait_for(
        lambda: sum(1 for r in index.rows().values() if r["hash"]) == files, timeout=60,
        message=f"{files} hashed rows")
    full_scans = daemon.wait_for(  # scan.finished is logged just after its commit
        lambda: [e for e in daemon.events("scan.finished") if e["discovered"] == files])
    assert full_scans[0]["created"] > 0, "a full scan found the files whose events were lost"
    assert daemon.stop() == 0
