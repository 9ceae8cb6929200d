"""The main loop's inbox: signal handlers and other threads post, the main loop acts.

As in gunicorn's arbiter, a signal handler only appends to a small queue and writes one byte to
a self-pipe that the main loop waits on. `deque.append` takes no lock, so a handler that
interrupts the main thread anywhere cannot deadlock on it (a `queue.Queue` could: its mutex may
be held by the very code the signal interrupted).
"""

from __future__ import annotations

import contextlib
import os
import select
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Signal:
    signum: int


@dataclass(frozen=True)
class WatchStart:
    """Watch this library if it is not watched (then rescan it: events before were lost)."""

    library: str


@dataclass(frozen=True)
class WatchStop:
    library: str


@dataclass(frozen=True)
class WatchLimit:
    """inotify ran out of watches or instances for this library: poll it instead."""

    library: str
    error: str


@dataclass(frozen=True)
class MountsChanged:
    """The kernel's mount table changed: probe the libraries again now (mounttable.py)."""


@dataclass(frozen=True)
class Announced:
    """The writer reached an `Announce` job (e.g. the startup scans are done)."""

    message: str


Message = Signal | WatchStart | WatchStop | WatchLimit | MountsChanged | Announced


class Inbox:
    def __init__(self) -> None:
        self._messages: deque[Message] = deque()
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def post(self, message: Message) -> None:
        """Safe from any thread and from a signal handler."""
        self._messages.append(message)
        # A full pipe already guarantees a wake-up.
        with contextlib.suppress(BlockingIOError):
            os.write(self._write_fd, b"\0")

    def wait(self, timeout_s: float) -> list[Message]:
        """The messages posted so far, waiting up to `timeout_s` for the first one."""
        if not self._messages:
            with contextlib.suppress(InterruptedError):
                select.select([self._read_fd], [], [], timeout_s)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 4096):
                pass
        messages = []
        while self._messages:
            messages.append(self._messages.popleft())
        return messages

    def close(self) -> None:
        os.close(self._read_fd)
        os.close(self._write_fd)
