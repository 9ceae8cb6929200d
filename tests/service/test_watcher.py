"""The watcher in-process: event mapping, and the kernel conditions beyond the events.

Both kernel conditions are injected, never borrowed from the machine: an IN_Q_OVERFLOW event
is fed to the library's real inotify instance (watchdog then repairs its watches and calls
the public `on_events_lost`), and a watch limit is the test's own (`inotify_with_watch_limit`),
because the kernel's `max_user_watches` is shared by every process of the user, parallel test
workers included. test_overflow.py overflows a real kernel queue against the real daemon.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest
from watchdog.events import (
    DirDeletedEvent,
    EventsLostEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent

from daemon.config import LibraryConfig
from daemon.service.inbox import WatchLimit
from daemon.service.queue import Rescan, ScanQueue
from daemon.service.watcher import LibraryEvents, WatchLimitInotifyFD, WatchSet

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


def inotify_with_watch_limit(limit: int) -> type[WatchLimitInotifyFD]:
    """An inotify instance that runs out after `limit` watches, as the kernel does."""

    class LimitedInotifyFD(WatchLimitInotifyFD):
        added = 0
        attempts = 0

        def add_watch(self, path, mask, callback, id_):
            self.attempts += 1
            if self.added >= limit:
                raise OSError(errno.ENOSPC, "inotify watch limit reached")
            wd = super().add_watch(path, mask, callback, id_)
            self.added += 1
            return wd

    return LimitedInotifyFD


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "lib"
    path.mkdir()
    return path


@pytest.fixture
def make_watch_set(tmp_path: Path):
    made: list[WatchSet] = []

    def make(**options) -> WatchSet:
        posted: list = []
        queue = ScanQueue(0.05)
        watches = WatchSet(queue, posted.append, poll_interval_s=0.1,
                           skip_abs=frozenset({os.fsencode(tmp_path / "lib" / "index.db")}),
                           **options)
        watches.posted = posted
        watches.queue = queue
        made.append(watches)
        return watches

    yield make
    for watches in made:
        watches.stop_all()


@pytest.fixture
def watch_set(make_watch_set) -> WatchSet:
    return make_watch_set()


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


def test_a_loss_is_a_rescan_of_the_library_not_a_change_at_the_root(root: Path, log_capture):
    queue = ScanQueue(0)
    events = LibraryEvents(LibraryConfig(name="photos", path=str(root)), str(root), queue,
                           frozenset())
    events.dispatch(EventsLostEvent(str(root), is_directory=True))
    assert take_all(queue) == [Rescan("photos")]
    assert [e["event"] for e in log_capture.events()] == ["watch.overflow"]


def test_injected_overflow_logs_and_queues_a_full_rescan(root: Path, watch_set: WatchSet,
                                                         log_capture):
    watch_set.start(LibraryConfig(name="photos", path=str(root)))
    watch = watch_set.get("photos")
    assert not watch.polling and watch.inotify_fd is not None
    watch.inotify_fd.handle_event(OVERFLOW)  # what the InotifyFD thread does on IN_Q_OVERFLOW

    [overflow] = log_capture.wait_for("watch.overflow")
    assert overflow["library"] == "photos" and overflow["log_level"] == "warning"
    work: list = []
    wait_until(lambda: work.extend(take_all(watch_set.queue)) or Rescan("photos") in work)
    # watchdog rebuilt its watches: events still arrive afterwards.
    (root / "after.jpg").write_text("x")
    wait_until(lambda: b"after.jpg" in scopes(watch_set.queue))
    assert len(log_capture.named("watch.overflow")) == 1


def test_out_of_watches_at_start_polls_from_the_start(root: Path, make_watch_set, log_capture):
    for name in ("deep1", "deep2"):
        (root / name).mkdir()
    watch_set = make_watch_set(inotify_factory=inotify_with_watch_limit(2))

    watch_set.start(LibraryConfig(name="photos", path=str(root)))  # root + deep1, not deep2

    assert watch_set.get("photos").polling
    [warning] = log_capture.named("watch.fallback_polling")
    assert warning["log_level"] == "warning" and warning["library"] == "photos"
    assert "ENOSPC" in warning["error"]
    assert "fs.inotify.max_user_watches" in warning["hint"]
    assert warning["watches_needed"] == 3  # root, deep1, deep2
    assert watch_set.report()["photos"].mode == "polling"
    assert "needs 3" in watch_set.report()["photos"].reason
    assert watch_set.posted == []  # decided at start: nothing for the main loop to do
    (root / "deep2" / "seen-by-polling.jpg").write_text("x")
    wait_until(lambda: b"deep2/seen-by-polling.jpg" in scopes(watch_set.queue))


def test_no_inotify_instance_left_polls_from_the_start(root: Path, make_watch_set, log_capture):
    def no_instances(on_watch_limit):
        raise OSError(errno.EMFILE, "inotify instance limit reached")

    watch_set = make_watch_set(inotify_factory=no_instances)
    watch_set.start(LibraryConfig(name="photos", path=str(root)))
    assert watch_set.get("photos").polling
    assert [e["event"] for e in log_capture.events() if e["log_level"] == "warning"] == [
        "watch.fallback_polling"]
    (root / "a.jpg").write_text("x")
    wait_until(lambda: b"a.jpg" in scopes(watch_set.queue))


def test_out_of_watches_while_running_falls_back_to_polling_once(root: Path, make_watch_set,
                                                                 log_capture):
    (root / "old").mkdir()
    watch_set = make_watch_set(inotify_factory=inotify_with_watch_limit(2))
    library = LibraryConfig(name="photos", path=str(root))
    watch_set.start(library)
    assert not watch_set.get("photos").polling and watch_set.posted == []
    assert watch_set.report()["photos"].inotify_watches == 2  # root, old

    (root / "new1").mkdir()  # watchdog only logs a failure below the root while running
    (root / "new2").mkdir()
    inotify_fd = watch_set.get("photos").inotify_fd
    seen: set[bytes] = set()
    # Both directories' events are out, so both failed watches were handled.
    wait_until(lambda: seen.update(scopes(watch_set.queue)) or {b"new1", b"new2"} <= seen)
    assert inotify_fd.attempts == 4  # root, old, new1, new2
    assert watch_set.posted == [
        WatchLimit("photos", "ENOSPC: [Errno 28] inotify watch limit reached")]

    watch_set.fall_back_to_polling("photos", watch_set.posted[0].error)
    watch_set.fall_back_to_polling("photos", watch_set.posted[0].error)
    warnings = log_capture.named("watch.fallback_polling")
    assert len(warnings) == 1
    assert "fs.inotify.max_user_watches" in warnings[0]["hint"]
    assert watch_set.get("photos").polling

    (root / "new1" / "seen-by-polling.jpg").write_text("x")
    wait_until(lambda: b"new1/seen-by-polling.jpg" in scopes(watch_set.queue))


def test_a_watch_dies_with_its_root(root: Path, watch_set: WatchSet):
    library = LibraryConfig(name="photos", path=str(root))
    watch_set.start(library)
    assert watch_set.dead() == []
    root.rmdir()
    assert wait_until(lambda: watch_set.dead()) == [library]
