"""The watcher in-process: event mapping, and the kernel conditions watchdog keeps to itself.

The overflow and watch-limit paths are injected here (an IN_Q_OVERFLOW event fed to the
library's inotify instance, ENOSPC from inotify_add_watch); test_overflow.py overflows a real
kernel queue against the real daemon.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from watchdog.events import (
    DirDeletedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD

from daemon.config import LibraryConfig
from daemon.service.inbox import WatchLimit
from daemon.service.queue import Rescan, ScanQueue
from daemon.service.watcher import LibraryEvents, WatchSet

OVERFLOW = InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b"")


def take_all(queue: ScanQueue) -> list:
    queue.set_settle(0)
    work = []
    while (item := queue.next(timeout_s=0)) is not None:
        work.append(item)
    return work


def scopes(queue: ScanQueue) -> set[bytes]:
    return {scope for batch in take_all(queue) for scope in (batch.scopes or (b"<all>",))}


def wait_until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        time.sleep(0.02)
    return value


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "lib"
    path.mkdir()
    return path


@pytest.fixture
def watch_set(root: Path, tmp_path: Path):
    posted: list = []
    queue = ScanQueue(0.05)
    watches = WatchSet(queue, posted.append, poll_interval_s=0.1,
                       skip_abs=frozenset({os.fsencode(tmp_path / "lib" / "index.db")}))
    watches.posted = posted
    watches.queue = queue
    yield watches
    watches.stop_all()


def test_events_become_rel_paths_with_excludes_and_own_files_dropped(root: Path):
    queue = ScanQueue(0)
    library = LibraryConfig(name="photos", path=str(root), exclude=("*.tmp", ".cache/**"))
    events = LibraryEvents(library, str(root), queue,
                           frozenset({os.fsencode(root / "index.db")}))
    for event in (
        FileCreatedEvent(str(root / "a.jpg")),
        FileModifiedEvent(os.fsencode(root) + b"/caf\xe9.jpg"),  # not UTF-8: kept as bytes
        FileCreatedEvent(str(root / "x.tmp")),
        FileCreatedEvent(str(root / ".cache" / "t.jpg")),
        FileModifiedEvent(str(root / "index.db")),
        FileCreatedEvent("/elsewhere/b.jpg"),
        FileMovedEvent(str(root / "in.tmp"), str(root / "done.jpg")),  # excluded → kept
        FileMovedEvent(str(root / "gone.jpg"), str(root / "gone.tmp")),  # kept → excluded
    ):
        events.on_any_event(event)
    assert scopes(queue) == {b"a.jpg", b"caf\xe9.jpg", b"done.jpg", b"gone.jpg"}


def test_move_is_one_batch_and_root_deletion_a_full_scan(root: Path):
    queue = ScanQueue(0)
    events = LibraryEvents(LibraryConfig(name="photos", path=str(root)), str(root), queue,
                           frozenset())
    events.on_any_event(FileMovedEvent(str(root / "a" / "x.jpg"), str(root / "b" / "x.jpg")))
    [batch] = take_all(queue)
    assert batch.scopes == (b"a/x.jpg", b"b/x.jpg")
    events.on_any_event(DirDeletedEvent(str(root)))
    [batch] = take_all(queue)
    assert batch.scopes is None


def test_real_inotify_events_reach_the_queue(root: Path, watch_set: WatchSet):
    watch_set.start(LibraryConfig(name="photos", path=str(root)))
    (root / "sub").mkdir()
    (root / "sub" / "new.jpg").write_text("x")
    os.rename(root / "sub" / "new.jpg", root / "moved.jpg")
    seen: set[bytes] = set()
    wait_until(lambda: seen.update(scopes(watch_set.queue)) or {b"sub", b"moved.jpg"} <= seen)


def test_injected_overflow_logs_and_queues_a_full_rescan(root: Path, watch_set: WatchSet):
    watch_set.start(LibraryConfig(name="photos", path=str(root)))
    inotify_fd = watch_set.get("photos").inotify_fd
    with capture_logs() as logged:
        inotify_fd.handle_event(OVERFLOW)  # what the InotifyFD thread does on IN_Q_OVERFLOW
    assert [e["event"] for e in logged] == ["watch.overflow"]
    assert logged[0]["library"] == "photos"
    assert take_all(watch_set.queue) == [Rescan("photos")]
    # watchdog rebuilt its watches: events still arrive afterwards.
    (root / "after.jpg").write_text("x")
    wait_until(lambda: b"after.jpg" in scopes(watch_set.queue))


def _fail_watches_under(monkeypatch, marker: bytes, errno_value: int = errno.ENOSPC) -> None:
    real_add_callback = InotifyFD.add_callback

    def add_callback(self, path, *args, **kwargs):
        if marker in path:
            raise OSError(errno_value, "inotify watch limit reached")
        return real_add_callback(self, path, *args, **kwargs)

    monkeypatch.setattr(InotifyFD, "add_callback", add_callback)


def test_out_of_watches_below_the_root_falls_back_to_polling_once(
        root: Path, watch_set: WatchSet, monkeypatch):
    for name in ("deep1", "deep2"):
        (root / name).mkdir()
    _fail_watches_under(monkeypatch, b"/deep")
    library = LibraryConfig(name="photos", path=str(root))

    watch_set.start(library)  # watchdog itself ignores failures below the root
    assert watch_set.posted == [
        WatchLimit("photos", "ENOSPC: [Errno 28] inotify watch limit reached")]
    with capture_logs() as logged:
        watch_set.fall_back_to_polling("photos", watch_set.posted[0].error)
        watch_set.fall_back_to_polling("photos", watch_set.posted[0].error)
    warnings = [e for e in logged if e["event"] == "watch.fallback_polling"]
    assert len(warnings) == 1
    assert "fs.inotify.max_user_watches" in warnings[0]["hint"]
    assert watch_set.get("photos").polling

    (root / "deep1" / "seen-by-polling.jpg").write_text("x")
    wait_until(lambda: b"deep1/seen-by-polling.jpg" in scopes(watch_set.queue))


def test_out_of_watches_at_the_root_polls_from_the_start(root: Path, watch_set: WatchSet,
                                                         monkeypatch):
    _fail_watches_under(monkeypatch, os.fsencode(root), errno.EMFILE)
    with capture_logs() as logged:
        watch_set.start(LibraryConfig(name="photos", path=str(root)))
    assert [e["event"] for e in logged if e["log_level"] == "warning"] == [
        "watch.fallback_polling"]
    assert watch_set.get("photos").polling
    (root / "a.jpg").write_text("x")
    wait_until(lambda: b"a.jpg" in scopes(watch_set.queue))


def test_a_watch_dies_with_its_root(root: Path, watch_set: WatchSet):
    library = LibraryConfig(name="photos", path=str(root))
    watch_set.start(library)
    assert watch_set.dead() == []
    root.rmdir()
    assert wait_until(lambda: watch_set.dead()) == [library]
