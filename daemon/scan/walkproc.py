"""The walk in a child process, so the scanning process spends its core on the database.

A no-change rescan of a million files is two streams compared: the walk (a `scandir` and an
`lstat` per file, and a Python object per stat: ~3 s) and the database's keys (~1 s). In one
process they take turns; here two forked children walk (`walk.walk_runs`, half of the top
directory each) and send their runs, in a rescan as their keys (`keys.encode_keys`, which the
parent compares with the database's in one bytes comparison, and decodes only for a run that
differs), in a cold scan as `marshal` data (plain tuples: ~0.1 µs a file to load, against ~3 µs
to walk), while the parent reads the database. The first half comes down a pipe (1 MiB
where the system allows: how far that child runs ahead).

While the first child's pipe has nothing to read, the parent does other work it will need
(`while_waiting`: the scanner fetches the database's next pages of keys). Otherwise, in a
no-change rescan, it read the second half's keys only after both children were done, on
one core while the other idled: ~20 % of the walk's wall time at 100k files.

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
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import BinaryIO, NamedTuple

from daemon.keys import decode_keys, encode_keys
from daemon.scan.walk import (
    EVERY_FILE,
    DiskEntry,
    WalkOptions,
    WalkResult,
    WalkRun,
    run_of,
    walk_runs,
)

_HEADER = struct.Struct("<I")
_RUN, _UNREADABLE, _ERROR, _SPECIAL = 0, 1, 2, 3
PIPE_BUFFER = 1 << 20


def can_fork() -> bool:
    return threading.active_count() == 1 and hasattr(os, "fork")


def walk_runs_in_children(
    root: bytes,
    scope: bytes,
    result: WalkResult,
    options: WalkOptions = EVERY_FILE,
    *,
    keys: bool = True,
    spawn: bool | None = None,
    while_waiting: Callable[[], bool] | None = None,
) -> Iterator[WalkRun]:
    """`walk.keyed_runs(walk_runs(...))`, walked by child processes; a run's entries come as
    plain tuples in DiskEntry's field order (`DiskEntry._make` one to use its names).
    Without `keys` (a library with no rows yet) the runs' keys are b"", not spelled.

    Two children walk a half each of the scope's top directory, one per core. The first
    half comes down a pipe as it is walked; the second is written to an unlinked temporary
    file (a few tens of bytes a file, page cache, not memory of any process) and read once
    the first is done. With `follow_symlinks` one child walks all: a directory reached
    through links from both halves must be entered once.

    The children are forked where that is safe (`can_fork`), else (`spawn`, the daemon,
    which has threads) started as `python -m daemon.scan.walkproc`: ~50 ms each to start,
    against ~3 s of walking a million files in the scanning process.

    `while_waiting()` is called whenever the first child's pipe has nothing to read yet,
    until it returns False (nothing more to do for now); then the read waits.
    """
    spawn = not can_fork() if spawn is None else spawn
    start = partial(_spawn_walker if spawn else _fork_walker,
                    _WalkSpec(root, scope, options, keys))
    if options.follow_symlinks:
        yield from _read_child(start(None, None), result, while_waiting)
        return
    with tempfile.TemporaryFile() as second:
        first = start(0, None)
        try:
            later = start(1, second.fileno())
        except BaseException:
            first.stop()
            raise
        try:
            yield from _read_child(first, result, while_waiting)
        except BaseException:
            later.stop()
            raise
        _reaped(later)
        second.seek(0)
        yield from _read_stream(second, result)


class _WalkSpec(NamedTuple):
    """What a child walks (pickled for a spawned one)."""

    root: bytes
    scope: bytes
    options: WalkOptions
    keys: bool

    def run(self, half: int | None, out_fd: int) -> None:
        result = WalkResult()
        _walk_to(out_fd, walk_runs(self.root, self.scope, result, self.options, half=half),
                 result, self.keys)


class _Child(NamedTuple):
    stop: Callable[[], None]  # kill and reap
    wait: Callable[[], int]  # reap: the exit code
    read_fd: int | None  # the pipe it writes to, or None (it writes to a file)


def _out_pipe(out_fd: int | None) -> tuple[int | None, int]:
    """(read end or None, the fd the child writes to): a new pipe when `out_fd` is None."""
    if out_fd is not None:
        return None, out_fd
    read_fd, out_fd = os.pipe()
    with contextlib.suppress(OSError):  # a bigger pipe where the system allows it
        fcntl.fcntl(out_fd, fcntl.F_SETPIPE_SZ, PIPE_BUFFER)
    return read_fd, out_fd


def _fork_walker(spec: _WalkSpec, half: int | None, out_fd: int | None) -> _Child:
    """Fork a child that sends its half of the walk to `out_fd`, or to a new pipe."""
    read_fd, out_fd = _out_pipe(out_fd)
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            # Not the CLI's handlers (KeyboardInterrupt, Terminated): a stop ends a walker.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if read_fd is not None:
                os.close(read_fd)
            spec.run(half, out_fd)
        except BaseException:  # the parent sees the stream end early, and the exit code
            code = 1
        os._exit(code)
    if read_fd is not None:
        os.close(out_fd)
    return _Child(partial(_stop, pid), partial(_wait, pid), read_fd)


def _spawn_walker(spec: _WalkSpec, half: int | None, out_fd: int | None) -> _Child:
    """Start `python -m daemon.scan.walkproc` on its half: a new process (no copy of a lock
    another thread held), told what to walk on its stdin."""
    read_fd, out_fd = _out_pipe(out_fd)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "daemon.scan.walkproc", str(out_fd)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, pass_fds=(out_fd,))
    except BaseException:
        if read_fd is not None:
            os.close(read_fd)
            os.close(out_fd)
        raise
    if read_fd is not None:
        os.close(out_fd)
    try:
        with process.stdin:
            process.stdin.write(pickle.dumps((spec, half)))
    except BaseException:
        _kill(process)
        raise
    return _Child(partial(_kill, process), process.wait, read_fd)


def _kill(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()


def _main() -> None:
    """A spawned walker: the spec on stdin, the runs to the fd named by argv[1]."""
    spec, half = pickle.loads(sys.stdin.buffer.read())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scanning process decides when to stop
    spec.run(half, int(sys.argv[1]))


def _read_child(child: _Child, result: WalkResult,
                while_waiting: Callable[[], bool] | None) -> Iterator[WalkRun]:
    try:
        try:
            yield from _read_stream(_PipeReader(child.read_fd, while_waiting), result)
        finally:
            os.close(child.read_fd)
    except BaseException:
        child.stop()
        raise
    _reaped(child)


class _PipeReader:
    """`read(size)` of a pipe, which lets `while_waiting` work before a read would block.

    One buffer, filled in place (`os.readv`): a bytearray grown and trimmed per read would
    be reallocated, i.e. mapped and unmapped, at every megabyte that passes."""

    def __init__(self, fd: int, while_waiting: Callable[[], bool] | None):
        self._fd = fd
        self._while_waiting = while_waiting
        self._buffer = bytearray(PIPE_BUFFER)
        self._start = self._end = 0  # the bytes not read yet
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def read(self, size: int) -> bytes:
        """`size` bytes, or fewer at the end of the stream."""
        if self._end - self._start < size:
            self._fill(size)
        start = self._start
        self._start = min(start + size, self._end)
        with memoryview(self._buffer) as view:
            return bytes(view[start:self._start])

    def _fill(self, size: int) -> None:
        """At least `size` bytes not read yet in the buffer, unless the stream ends first."""
        unread = self._end - self._start
        if size > len(self._buffer):  # a frame bigger than the buffer: a huge directory
            self._buffer.extend(bytes(size - len(self._buffer)))
        self._buffer[:unread] = self._buffer[self._start:self._end]  # same size: in place
        self._start, self._end = 0, unread
        while self._end < size:
            while self._while_waiting is not None and not self._poll.poll(0) and (
                    self._while_waiting()):
                pass
            with memoryview(self._buffer) as view:
                read = os.readv(self._fd, [view[self._end:]])
            if not read:
                return
            self._end += read


def _read_stream(stream: BinaryIO | _PipeReader, result: WalkResult) -> Iterator[WalkRun]:
    while True:
        header = stream.read(_HEADER.size)
        if not header:
            return
        kind, value = marshal.loads(stream.read(_HEADER.unpack(header)[0]))
        if kind == _RUN:
            if value.__class__ is bytes:
                yield WalkRun(value, partial(decode_keys, value))
            else:
                yield run_of(value)
        elif kind == _UNREADABLE:
            result.unreadable.append(value)
        elif kind == _ERROR:
            result.errors.append(value)
        else:
            result.skipped_special += value


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _wait(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


class WalkerKilled(OSError):
    """A walk's child process died of a signal: in the daemon, most often the SIGTERM that
    `systemctl stop` sends every process of the service, which stops the daemon too (its
    writer then takes the scan for stopped, not failed); else the OOM killer or a user."""


def _reaped(child: _Child) -> None:
    code = child.wait()
    if code < 0:
        raise WalkerKilled(f"a walk of the library stopped: its child process was killed by "
                           f"{signal.Signals(-code).name}")
    if code != 0:
        raise OSError("a walk of the library failed in its child process")


def _walk_to(fd: int, runs: Iterator[list[DiskEntry]], result: WalkResult,
             keys: bool) -> None:
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
            # A rescan's runs as their keys, which the parent compares as they are and
            # decodes only for a run that differs; a cold scan's as tuples (marshal knows
            # tuples, not namedtuples), which the parent loads ~4x faster than it decodes.
            send(_RUN, encode_keys(run) if keys else list(map(tuple, run)))
            # Each run goes now: a child that filled its buffer first would sit blocked on
            # the pipe while the parent worked through it, instead of walking meanwhile.
            pipe.flush()
        send_recorded()


if __name__ == "__main__":
    _main()
