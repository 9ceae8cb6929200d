"""The walk in a child process, so the scanning process spends its core on the database.

A no-change rescan of a million files is two streams compared: the walk (a `scandir` and an
`lstat` per file, and a Python object per stat: ~3 s) and the database's keys (~1 s). In one
process they take turns; here a forked child walks (`walk.walk_runs`, unchanged) and sends each
run down a pipe as `marshal` data (plain tuples: ~0.3 µs a file to load, against ~3 µs to walk),
while the parent reads the database. The pipe (1 MiB where the system allows) bounds how far
the child runs ahead.

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
import threading
from collections.abc import Iterator

from daemon.scan.filters import ExcludeMatcher
from daemon.scan.walk import DiskEntry, WalkResult, walk_runs

_HEADER = struct.Struct("<I")
_RUN, _UNREADABLE, _ERROR, _SPECIAL = 0, 1, 2, 3
PIPE_BUFFER = 1 << 20


def can_fork() -> bool:
    return threading.active_count() == 1 and hasattr(os, "fork")


def walk_runs_forked(
    root: bytes,
    scope: bytes,
    result: WalkResult,
    *,
    matcher: ExcludeMatcher | None = None,
    follow_symlinks: bool = False,
    skip_abs: frozenset[bytes] = frozenset(),
) -> Iterator[list[tuple]]:
    """`walk_runs`, walked by a child process; runs come as plain tuples in DiskEntry's
    field order (compare them as they are; `DiskEntry._make` one to use its names)."""
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):  # a bigger pipe where the system allows it
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BUFFER)
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_fd)
        code = 0
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _walk_to(write_fd, walk_runs(root, scope, child_result := WalkResult(),
                                         matcher=matcher, follow_symlinks=follow_symlinks,
                                         skip_abs=skip_abs), child_result)
        except BaseException:  # the parent sees the pipe end early, and the exit code
            code = 1
        os._exit(code)
    os.close(write_fd)
    finished = False
    try:
        with os.fdopen(read_fd, "rb", buffering=PIPE_BUFFER) as pipe:
            while True:
                header = pipe.read(_HEADER.size)
                if not header:
                    break
                kind, value = marshal.loads(pipe.read(_HEADER.unpack(header)[0]))
                if kind == _RUN:
                    yield value
                elif kind == _UNREADABLE:
                    result.unreadable.append(value)
                elif kind == _ERROR:
                    result.errors.append(value)
                else:
                    result.skipped_special += value
        finished = True
    finally:
        if not finished:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(f"the walk of {os.fsdecode(root)} failed in its child process")


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
