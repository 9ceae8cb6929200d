"""Follow the kernel's mount table: a mount or unmount anywhere posts `MountsChanged`.

proc(5): /proc/self/mountinfo is pollable; poll() reports POLLPRI | POLLERR once the mount table
changed since the file was last read, so this thread reads it, waits, reads it again. It only
posts to the main loop's inbox; the writer re-probes the libraries (queue.Reprobe), so an
unmounted library goes offline, and a mounted one is scanned, within a second or two instead of
at the next tick.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable

from daemon import logs
from daemon.mounts import MOUNTINFO
from daemon.service.inbox import Message, MountsChanged

# How often the thread checks its stop event while the mount table stays the same.
POLL_TIMEOUT_MS = 500


class MountTableFollower:
    def __init__(self, post: Callable[[Message], None], path: str = MOUNTINFO):
        self._post = post
        self._path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="assetd-mounts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            mountinfo = open(self._path, "rb")  # noqa: SIM115 (kept open while following)
        except OSError as exc:
            logs.get_logger().warning("mounts.unfollowed", path=self._path,
                                      error=f"{type(exc).__name__}: {exc}",
                                      action="mounts and unmounts are noticed at the next tick")
            return
        with mountinfo:
            poller = select.poll()
            poller.register(mountinfo, select.POLLPRI | select.POLLERR)
            mountinfo.read()  # poll() reports changes made after the last read
            while not self._stop.is_set():
                if poller.poll(POLL_TIMEOUT_MS):
                    mountinfo.seek(0)
                    mountinfo.read()
                    self._post(MountsChanged())
