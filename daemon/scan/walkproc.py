"""The walk in a child process, so the scanning process spends its core on the database.

A no-change rescan of a million files is two streams compared: the walk (a `scandir` and an
`lstat` per file, and a Python object per stat: ~3 s) and the database's keys (~1 s). In one
process they take turns; here two forked children walk (`walk.walk_runs`, half of the top
directory each) and send their runs as `marshal` data (plain tuples: ~0.3 µs a file to load,
against ~3 µs to walk), while the parent reads the database. The first half comes down a pipe
(1 MiB where the system allows: how far that child runs ahead).

What the walk records in its `WalkResult` (unreadable directories, errors, special files) is
sent before the next run, in the order the walk found it: the scan relies on an unreadable
directory being known before any path that sorts after it.

Only where forking is safe (`can_fork`: one thread, as in `assetd scan`); the daemon, which
has threads, walks in its own process. The child never touches the database and leaves with
`os._exit`, so nothing it inherited (the SQLite connection) is closed or flushed twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import marshal
import os
import signal
import struct
import tempfile
import threading
from collections.abc import Iterator
from functools import partial
from typing import BinaryIO

from daemon.scan.walk import EVERY_FILE, DiskEntry, WalkOptions, WalkResult, walk_runs

_HEADER = struct.Struct("<I")
_RUN, _UNREADABLE, _ERROR, _SPECIAL = 0, 1, 2, 3
PIPE_BUFFER = 1 << 20


def can_fork() -> bool:
    return threading.active_count() == 1 and hasattr(os, "fork")


def walk_runs_forked(
    root: bytes,
    scope: bytes,
    result: WalkResult,
    options: WalkOptions = EVERY_FILE,
) -> Iterator[list[tuple]]:
    """`walk_runs`, walked by child processes; runs come as plain tuples in DiskEntry's
    field order (compare them as they are; `DiskEntry._make` one to use its names).

    Two children walk a half each of the scope's top directory, one per core. The first
    half comes down a pipe as it is walked; the second is written to an unlinked temporary
    file (a few tens of bytes a file, page cache, not memory of any process) and read once
    the first is done. With `follow_symlinks` one child walks all: a directory reached
    through links from both halves must be entered once.
    """
    walk = partial(walk_runs, root, scope, options=options)
    if options.follow_symlinks:
        yield from _read_child(*_fork_walker(walk, None, None), result)
        return
    with tempfile.TemporaryFile() as second:
        first = _fork_walker(walk, 0, None)
        try:
            later = _fork_walker(walk, 1, second.fileno())
        except BaseException:
            _stop(first[0])
            raise
        try:
            yield from _read_child(*first, result)
        except BaseException:
            _stop(later[0])
            raise
        _reap(later[0])
        second.seek(0)
        yield from _read_stream(second, result)


def _fork_walker(walk, half: int | None, out_fd: int | None) -> tuple[int, int | None]:
    """Fork a child that sends `walk(half=half)` to `out_fd`, or to a new pipe whose read
    end is returned: (pid, read fd or None)."""
    read_fd = None
    if out_fd is None:
        read_fd, out_fd = os.pipe()
        with contextlib.suppress(OSError):  # a bigger pipe where the system allows it
            fcntl.fcntl(out_fd, fcntl.F_SETPIPE_SZ, PIPE_BUFFER)
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            # Not the CLI's handlers (KeyboardInterrupt, Terminated): a stop ends a walker.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if read_fd is not None:
                os.close(read_fd)
            _walk_to(out_fd, walk(child_result := WalkResult(), half=half), child_result)
        except BaseException:  # the parent sees the stream end early, and the exit code
            code = 1
        os._exit(code)
    if read_fd is not None:
        os.close(out_fd)
    return pid, read_fd


def _read_child(pid: int, read_fd: int, result: WalkResult) -> Iterator[list[tuple]]:
    try:
        with os.fdopen(read_fd, "rb", buffering=PIPE_BUFFER) as pipe:
            yield from _read_stream(pipe, result)
    except BaseException:
        _stop(pid)
        raise
    _reap(pid)


def _read_stream(stream: BinaryIO, result: WalkResult) -> Iterator[list[tuple]]:
    while True:
        header = stream.read(_HEADER.size)
        if not header:
            return
        kind, value = marshal.loads(stream.read(_HEADER.unpack(header)[0]))
        if kind == _RUN:
            yield value
        elif kind == _UNREADABLE:
            result.unreadable.append(value)
        elif kind == _ERROR:
            result.errors.append(value)
        else:
            result.skipped_special += value


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _reap(pid: int) -> None:
    if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
        raise OSError("a walk of the library failed in its child process")


def _walk_to(fd: int, runs: Iterator[list[DiskEntry]], result: WalkResult) -> None:
    unreadable = errors = special = 0
    with os.fdopen(fd, "wb", buffering=PIPE_BUFFER) as pipe:

        def send(kind: int, value) -> None:
            data = marshal.dumps((kind, value))
            pipe.write(_HEADER.pack(len(data)))
            pipe.write(data)

        def send_recorded() -> None:
            nonlocal unreadable, errors, special
            for rel_dir in result.unreadable[unreadable:]:
                send(_UNREADABLE, rel_dir)
            for error in result.errors[errors:]:
                send(_ERROR, error)
            if result.skipped_special > special:
                send(_SPECIAL, result.skipped_special - special)
            unreadable, errors = len(result.unreadable), len(result.errors)
            special = result.skipped_special

        for run in runs:
            send_recorded()
            send(_RUN, list(map(tuple, run)))  # marshal knows tuples, not namedtuples
            # Each run goes now: a child that filled its buffer first would sit blocked on
            # the pipe while the parent worked through it, instead of walking meanwhile.
            pipe.flush()
        send_recorded()
