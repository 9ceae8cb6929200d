"""Filesystem events → the scan queue: one watchdog observer per library.

inotify (watchdog's InotifyEmitter) or a PollingObserver, as `watch` and the root's filesystem
decide (mounts.py: NFS/SMB/FUSE are polled, inotify never hears about changes made by other
machines), and polling for libraries that ran out of inotify watches. The watcher only
enqueues; every decision about the index is the writer's, through a scoped scan.

Two kernel conditions matter beyond the events themselves:
- IN_Q_OVERFLOW: the kernel dropped events. watchdog (>= 7.1.1) repairs its watches, then
  hands the handler an `EventsLostEvent` through the public `on_events_lost`. We answer with
  `watch.overflow` and a full rescan of the library: only a scan can tell what changed.
- ENOSPC / EMFILE from inotify_add_watch (out of `fs.inotify.max_user_watches`, or of
  instances). At start watchdog raises it from `observer.start()` and we poll the library
  from the beginning. Later (a new directory while running) watchdog only logs it and leaves
  the subtree unwatched, so our inotify instance (`WatchLimitInotifyFD`, the one piece that
  still needs watchdog internals: `InotifyFD.add_callback`) reports it and we switch the
  library to polling, with one warning that names the sysctl to raise and how many watches
  the library needs (one per directory).
How many watches each library holds (`status --json`, `/metrics`) is watchdog's own count of
the watches it holds (`InotifyFD._watch_for_wd`, a second internal): reading the kernel's
/proc/self/fdinfo instead costs a line per watch on every heartbeat.
tests/service/test_watcher.py injects both (an IN_Q_OVERFLOW fed to the real inotify
instance, a watch limit of the test's own); tests/service/test_overflow.py overflows a real
kernel queue against the real daemon.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import NamedTuple

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    EventsLostEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyEmitter
from watchdog.observers.inotify_c import (
    CallbackId,
    InotifyFD,
    Mask,
    WatchCallback,
    WatchDescriptor,
)
from watchdog.observers.polling import PollingObserver

from daemon import logs
from daemon.config import LibraryConfig
from daemon.mounts import WatchMode, choose_watch_mode, max_user_watches
from daemon.scan.apply import path_text
from daemon.scan.filters import ExcludeMatcher
from daemon.service.inbox import Message, WatchLimit
from daemon.service.queue import Rescan, ScanQueue

# Only what can change the index. Opens, reads and close-without-write are left out of the
# kernel mask on purpose: hashing a file opens and reads it, and must not wake us up again.
# EventsLostEvent is not a kernel event: a filter that omits it never hears of an overflow.
WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent, FileDeletedEvent,
    FileMovedEvent, DirCreatedEvent, DirDeletedEvent, DirMovedEvent, EventsLostEvent,
]
WATCH_LIMIT_ERRNOS = (errno.ENOSPC, errno.EMFILE)
WATCH_LIMIT_HINT = (
    "out of inotify watches: raise fs.inotify.max_user_watches (and "
    "fs.inotify.max_user_instances), e.g. in /etc/sysctl.d/90-assetd.conf, then restart assetd; "
    "until then this library is polled"
)
def count_directories(root: str, follow_symlinks: bool) -> int:
    """The watches a recursive inotify watch of `root` needs: one per directory."""
    count, stack = 0, [root]
    while stack:
        count += 1
        try:
            with os.scandir(stack.pop()) as entries:
                stack.extend(e.path for e in entries
                             if e.is_dir(follow_symlinks=follow_symlinks))
        except OSError:
            continue
    return count


class LibraryEvents(FileSystemEventHandler):
    """One library's watchdog events as rel paths in the queue; excluded paths dropped here."""

    def __init__(self, library: LibraryConfig, root: str, queue: ScanQueue,
                 skip_abs: frozenset[bytes]):
        self.library = library
        self._root = os.fsencode(root)
        self._queue = queue
        self._skip_abs = skip_abs
        self._matcher = ExcludeMatcher(library.exclude)

    def dispatch(self, event: FileSystemEvent) -> None:
        # The base class also passes a loss to on_any_event, whose path (the root) is no change.
        if isinstance(event, EventsLostEvent):
            self.on_events_lost(event)
        else:
            self.on_any_event(event)

    def on_events_lost(self, event: EventsLostEvent) -> None:
        """The kernel dropped events (watchdog has repaired its watches): rescan the library."""
        logs.get_logger().warning(
            logs.WATCH_OVERFLOW, library=self.library.name,
            reason="inotify queue overflowed; events were lost; rescanning the library",
        )
        self._queue.put(Rescan(self.library.name, "inotify queue overflow"))

    def on_any_event(self, event: FileSystemEvent) -> None:
        src = self._rel(event.src_path, is_dir=event.is_directory)
        dst = None
        if isinstance(event, FileSystemMovedEvent):
            dst = self._rel(event.dest_path, is_dir=event.is_directory)
        # Not bound once at start: a SIGHUP may change the log level.
        logs.get_logger().debug(
            "watch.event", library=self.library.name, kind=event.event_type,
            path=None if src is None else path_text(src),
            dest=None if dst is None else path_text(dst),
        )
        if src is not None and dst is not None:
            self._queue.add_move(self.library.name, src, dst)
        elif src is not None or dst is not None:
            self._queue.add(self.library.name, src if dst is None else dst)

    def _rel(self, path: bytes | str, *, is_dir: bool) -> bytes | None:
        """The rel path, or None when outside the root, one of our own files, or excluded."""
        absolute = os.fsencode(path)
        if not absolute or any(
            absolute == skip or absolute.startswith(skip + b"/") for skip in self._skip_abs
        ):
            return None
        if absolute == self._root:
            return b""
        if not absolute.startswith(self._root + b"/"):
            return None
        rel = absolute[len(self._root) + 1:]
        if self._matcher.excluded_anywhere(rel) or (
            is_dir and self._matcher.excluded(rel, is_dir=True)
        ):
            return None
        return rel


class WatchLimitInotifyFD(InotifyFD):
    """An inotify instance that reports running out of watches (see the module docstring)."""

    def __init__(self, on_watch_limit: Callable[[OSError], None]):
        super().__init__()
        self._on_watch_limit = on_watch_limit

    def add_callback(self, path: bytes, mask: Mask, callback: WatchCallback,
                     id_: CallbackId) -> WatchDescriptor:
        try:
            return self.add_watch(path, mask, callback, id_)
        except OSError as exc:
            if exc.errno in WATCH_LIMIT_ERRNOS:
                self._on_watch_limit(exc)
            raise

    def add_watch(self, path: bytes, mask: Mask, callback: WatchCallback,
                  id_: CallbackId) -> WatchDescriptor:
        """inotify_add_watch. Tests override it to give an instance a watch limit of its own:
        the kernel's limits are shared by every process of the user."""
        return super().add_callback(path, mask, callback, id_)

    def watch_count(self) -> int:
        """The watches this instance holds (see the module docstring)."""
        return len(self._watch_for_wd)


InotifyFactory = Callable[[Callable[[OSError], None]], WatchLimitInotifyFD]


class _LibraryInotifyObserver(BaseObserver):
    """watchdog's InotifyObserver, with our inotify instance instead of a plain one."""

    def __init__(self, inotify_fd: WatchLimitInotifyFD, *, timeout: float = 1.0):
        self._inotify_fd = inotify_fd
        inotify_fd.start()
        super().__init__(InotifyEmitter, timeout=timeout, inotify_fd=inotify_fd)

    def on_thread_stop(self) -> None:
        super().on_thread_stop()
        self._inotify_fd.stop()
        self._inotify_fd.join()


class LibraryWatch:
    """The observer of one library: inotify, or polling every `poll_interval_s`."""

    def __init__(self, library: LibraryConfig, root: str, handler: LibraryEvents, *,
                 mode: WatchMode, poll_interval_s: float, post: Callable[[Message], None],
                 inotify_factory: InotifyFactory):
        self.library = library
        self.root = root
        self.mode = mode
        self.polling = mode.polling
        self._handler = handler
        self._poll_interval_s = poll_interval_s
        self._post = post
        self._inotify_factory = inotify_factory
        self._started = False
        self._limit_reported = False
        self._observer: BaseObserver | None = None
        # The kernel side of an inotify watch; tests feed it events (IN_Q_OVERFLOW).
        self.inotify_fd: WatchLimitInotifyFD | None = None

    def start(self) -> None:
        """Start watching; raises OSError (ENOSPC/EMFILE included) if the tree cannot be."""
        inotify_fd = None
        if self.polling:
            observer: BaseObserver = PollingObserver(timeout=self._poll_interval_s)
        else:
            inotify_fd = self._inotify_factory(self.on_watch_limit)
            observer = _LibraryInotifyObserver(inotify_fd)
        observer.schedule(self._handler, self.root, recursive=True, event_filter=WATCHED_EVENTS,
                          follow_symlink=self.library.follow_symlinks)
        try:
            observer.start()
        except OSError:
            observer.stop()  # the observer thread never ran; this stops the inotify thread
            raise
        self._observer, self.inotify_fd = observer, inotify_fd
        self._started = True

    def stop(self) -> None:
        observer, self._observer, self.inotify_fd = self._observer, None, None
        if observer is None:
            return
        observer.stop()
        observer.join()

    def watch_count(self) -> int:
        inotify_fd = self.inotify_fd
        return 0 if inotify_fd is None else inotify_fd.watch_count()

    @property
    def alive(self) -> bool:
        """False once watchdog gave up, e.g. after the root was deleted (IN_DELETE_SELF)."""
        observer = self._observer
        return (
            observer is not None
            and observer.is_alive()
            and bool(observer.emitters)
            and all(emitter.is_alive() for emitter in observer.emitters)
        )

    def on_watch_limit(self, error: OSError) -> None:
        """Out of watches while running (at start, `start()` raises and the caller decides).

        Called on watchdog's inotify thread: only posts to the main loop.
        """
        if self._started and not self._limit_reported:
            self._limit_reported = True
            self._post(WatchLimit(self.library.name, f"{errno.errorcode[error.errno]}: {error}"))


class WatchReport(NamedTuple):
    mode: str  # inotify | polling
    reason: str
    inotify_watches: int


class WatchSet:
    """The libraries being watched. Used from the main thread only, except `report()`."""

    def __init__(self, queue: ScanQueue, post: Callable[[Message], None], *,
                 poll_interval_s: float, skip_abs: frozenset[bytes],
                 inotify_factory: InotifyFactory = WatchLimitInotifyFD):
        self._queue = queue
        self._post = post
        self._inotify_factory = inotify_factory
        self.poll_interval_s = poll_interval_s
        self.skip_abs = skip_abs
        self._watches: dict[str, LibraryWatch] = {}
        # What report() reads from other threads: replaced whole, never changed in place.
        self._published: tuple[LibraryWatch, ...] = ()
        self._forced_polling: dict[str, WatchMode] = {}

    def is_watching(self, name: str) -> bool:
        return name in self._watches

    def get(self, name: str) -> LibraryWatch | None:
        return self._watches.get(name)

    def polling(self) -> list[str]:
        return [name for name, watch in self._watches.items() if watch.polling]

    def start(self, library: LibraryConfig) -> None:
        """Watch a library (its root must exist); falls back to polling at the watch limits."""
        root = os.path.realpath(library.path)
        handler = LibraryEvents(library, root, self._queue, self.skip_abs)
        mode = self._forced_polling.get(library.name) or choose_watch_mode(library)
        watch = self._watch(library, root, handler, mode=mode)
        try:
            watch.start()
        except OSError as exc:
            if mode.polling or exc.errno not in WATCH_LIMIT_ERRNOS:
                raise
            mode = self._warn_fallback(library, f"{errno.errorcode[exc.errno]}: {exc}")
            watch = self._watch(library, root, handler, mode=mode)
            watch.start()
        self._watches[library.name] = watch
        self._published = tuple(self._watches.values())
        logs.get_logger().debug("watch.started", library=library.name, mode=mode.name,
                                reason=mode.reason)

    def _watch(self, library: LibraryConfig, root: str, handler: LibraryEvents, *,
               mode: WatchMode) -> LibraryWatch:
        return LibraryWatch(library, root, handler, mode=mode,
                            poll_interval_s=self.poll_interval_s, post=self._post,
                            inotify_factory=self._inotify_factory)

    def stop(self, name: str) -> None:
        watch = self._watches.pop(name, None)
        self._published = tuple(self._watches.values())
        if watch is not None:
            watch.stop()

    def stop_all(self) -> None:
        for name in list(self._watches):
            self.stop(name)

    def fall_back_to_polling(self, name: str, error: str) -> None:
        """Out of watches while running (a new directory): poll the library from now on."""
        watch = self._watches.get(name)
        if watch is None or watch.polling:
            return
        self._warn_fallback(watch.library, error)
        self.stop(name)
        self.start(watch.library)

    def dead(self) -> list[LibraryConfig]:
        return [w.library for w in self._watches.values() if not w.alive]

    def report(self) -> dict[str, WatchReport]:
        """Each watched library's mode, why, and the inotify watches it holds (any thread)."""
        return {watch.library.name: WatchReport(watch.mode.name, watch.mode.reason,
                                                watch.watch_count())
                for watch in self._published}

    def _warn_fallback(self, library: LibraryConfig, error: str) -> WatchMode:
        limit = max_user_watches()
        needed = count_directories(os.path.realpath(library.path), library.follow_symlinks)
        mode = WatchMode(True, f"out of inotify watches: needs {needed} (one per directory), "
                               f"fs.inotify.max_user_watches is {limit}")
        self._forced_polling[library.name] = mode
        logs.get_logger().warning(logs.WATCH_FALLBACK_POLLING, library=library.name,
                                  error=error, watches_needed=needed,
                                  max_user_watches=limit, hint=WATCH_LIMIT_HINT,
                                  poll_interval_s=self.poll_interval_s)
        return mode
