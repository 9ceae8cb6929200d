"""Hashing on every core, overlapped with the walk.

Hashing is CPU-bound Python around xxhash (open, fstat, readv, fstat, close: ~20 µs per
small file) and the GIL serialises threads, so a scan of many files hands them, in batches of
paths, to a pool of worker processes (one per core) and goes on walking and merging while they
read. Batches are `BATCH_FILES` files or `BATCH_BYTES` bytes: a part of a scan (10,000 files)
is ten batches or more, so both workers stay busy and a stop waits for ~15 ms of work; a
batch costs this process ~0.1-0.2 ms (a future, two threads of the executor, the pickles), so
128-file batches cost it ~0.1 s per 100k files. In a cold scan this process (walk, inserts)
is the slower side: the workers wait for it, not it for them. Small jobs (a watcher event, a
few edits) never start the pool (starting one costs more than hashing them), and big files are
hashed here, in the scanning process, where progress is reported per MiB and a stop request is
seen between chunks.

The pool uses `fork` where the process has a single thread (the CLI: instant start) and
`spawn` otherwise (the daemon: forking a process with threads can copy a held lock).

A worker ignores SIGINT: Ctrl-C reaches the whole process group, and the scanning process,
as it unwinds, shuts the pool down. SIGTERM keeps its default action (a forked worker would
otherwise inherit the CLI's handler, whose exception the executor's worker loop catches and
sends back as a result): the pool is stopped with it, and a scan that stops or fails ends its
workers at once (`close(abandon=True)`). Should the scanning process die without unwinding
(SIGKILL), the kernel kills them (PR_SET_PDEATHSIG): each holds copies of the pool's pipes, so
none would ever see end-of-file, and one blocked writing its results would stay blocked.
A worker that dies while it sends its results back (killed by that stop, by systemd's SIGTERM
to the whole service, by the OOM killer) would leave the executor reading the rest for good:
`_unstick` ends that read, and the scan fails or stops instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daemon.scan.hash import HASHED, Hashed, Sniffer, as_hashed, hash_batch, hash_outcome
from daemon.scan.walk import DiskEntry

if TYPE_CHECKING:  # imported with the first pool: a scan that hashes nothing needs neither
    from concurrent.futures import Future, ProcessPoolExecutor

POOL_MIN_FILES = 256  # fewer files to hash than this: no pool
BIG_FILE_BYTES = 32 << 20  # hashed in this process (progress per MiB, stop between chunks)
BATCH_FILES = 1024
BATCH_BYTES = 16 << 20


@dataclass
class Pending:
    """Files handed to the hasher and not collected yet."""

    batches: list[tuple[list[DiskEntry], Future | None]] = field(default_factory=list)

    @property
    def entries(self) -> list[DiskEntry]:
        return [entry for batch, _ in self.batches for entry in batch]


class Hasher:
    def __init__(self, root: bytes, follow_symlinks: bool, *, sniff: Sniffer | None = None,
                 head_bytes: int = 0, before_pool: Callable[[], None] | None = None):
        """`sniff(head, path_text)` runs on the first `head_bytes` bytes of every hashed
        file, in the process that read them (its result, not the bytes, comes back).
        `before_pool()` runs once, before the pool starts (what it loads, forked workers
        inherit)."""
        self.root = root
        self.follow_symlinks = follow_symlinks
        self.sniff = sniff
        self.head_bytes = head_bytes
        self.before_pool = before_pool
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, entries: list[DiskEntry]) -> Pending:
        """Start hashing `entries` (in the pool when it pays); collect with `results`."""
        pending = Pending()
        use_pool = self._pool is not None or len(entries) >= POOL_MIN_FILES
        batch: list[DiskEntry] = []
        batch_bytes = 0
        for entry in entries:
            if not use_pool or entry.size >= BIG_FILE_BYTES:
                pending.batches.append(([entry], None))
                continue
            batch.append(entry)
            batch_bytes += entry.size
            if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                pending.batches.append((batch, self._submit(batch)))
                batch, batch_bytes = [], 0
        if batch:
            pending.batches.append((batch, self._submit(batch)))
        return pending

    def _submit(self, batch: list[DiskEntry]) -> Future:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            if self.before_pool is not None:
                self.before_pool()
            method = "fork" if threading.active_count() == 1 else "spawn"
            self._pool = ProcessPoolExecutor(
                max_workers=os.cpu_count() or 1, mp_context=multiprocessing.get_context(method),
                initializer=_start_worker, initargs=(os.getpid(),))
        # Workers are started inside submit (fork: all at the first; spawn: one per call up to
        # the pool's size). Until `_start_worker` has set its own, a worker has this process's
        # handlers (KeyboardInterrupt, the CLI's Terminated): a stop signal then would print
        # its traceback. Blocked meanwhile, a signal for this process waits, it is not lost.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            return self._pool.submit(hash_batch, self.root, [e.rel_path for e in batch],
                                     self.follow_symlinks, self.sniff, self.head_bytes)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def results(
        self, pending: Pending, on_bytes: Callable[[int], None]
    ) -> Iterator[tuple[DiskEntry, str, Hashed | str | None, Any]]:
        """(entry, outcome, Hashed or error text, sniffed) per file, in submission order."""
        for batch, future in pending.batches:
            if future is None:
                entry = batch[0]
                yield entry, *hash_outcome(
                    self.root + b"/" + entry.rel_path, follow_symlinks=self.follow_symlinks,
                    on_bytes=on_bytes, sniff=self.sniff, head_bytes=self.head_bytes,
                    path_text=entry.rel_path.decode("utf-8", "backslashreplace"))
                continue
            for entry, (outcome, value, sniffed) in zip(batch, self._result(future),
                                                        strict=True):
                yield entry, outcome, as_hashed(value) if outcome == HASHED else value, sniffed
            on_bytes(sum(entry.size for entry in batch))

    def close(self, *, abandon: bool = False) -> None:
        """Stop the pool. `abandon` (the scan is failing or stopping, and throws away what
        is still being hashed): end the workers now rather than let them finish the batches
        they hold, which with the daemon's sniffing (libmagic, ~0.4 ms a file) is ~0.4 s
        each, and more than the contract's few seconds for a stop on a loaded machine."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        # What `shutdown` lets go of, kept to see it through (`_unstick`).
        manager, result_queue = pool._executor_manager_thread, pool._result_queue
        processes = list((pool._processes or {}).values())
        if abandon:
            # No public way before Python 3.14 (terminate_workers); the executor sees them
            # die, fails what they held, and its manager thread reaps them.
            for process in processes:
                process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        while manager is not None and manager.is_alive():
            manager.join(STUCK_CHECK_S)
            _unstick(manager, processes, result_queue)
        for process in processes:
            process.join()
        if result_queue is not None:
            result_queue.close()

    def _result(self, future: Future) -> list:
        """`future.result()`, which a worker that died while it sent its results back
        would otherwise leave waiting for good (see `_unstick`): the batch fails instead
        (BrokenProcessPool, as for a worker that died while it hashed)."""
        pool = self._pool
        while True:
            try:
                return future.result(timeout=STUCK_CHECK_S)
            except TimeoutError:  # concurrent.futures' since Python 3.11
                if pool is not None:
                    _unstick(pool._executor_manager_thread,
                             list((pool._processes or {}).values()), pool._result_queue)


STUCK_CHECK_S = 0.5


def _unstick(manager: threading.Thread | None, processes: list, result_queue: Any) -> None:
    """End the executor's manager thread's read of a result a dead worker left half sent.

    All workers send their results down one pipe, whose writing end this process holds too
    (multiprocessing's queue), so a worker killed while it writes (a result bigger than
    the pipe's 64 KiB is written while the manager thread reads it: a stop's `terminate`,
    systemd's SIGTERM to the service's every process, the OOM killer) leaves the manager
    thread reading the rest of that message, for good: the pipe never reaches end-of-file
    and nobody writes to it again. The scan then waited forever on its batch, or on
    `shutdown`. Once a worker has died, the pool is broken (its executor would end the
    others itself, had it seen it): the others are ended, and when none is left, zeros are
    written into the pipe, which the manager thread reads as the rest of the message (or
    as an empty one), fails to unpickle, and takes, as it should, for a broken pool: it
    fails the futures still pending with BrokenProcessPool and ends.
    """
    if manager is None or not manager.is_alive() or result_queue is None:
        return
    if not any(process.exitcode not in (None, 0) for process in processes):
        return  # the workers are alive (or left when asked): nothing is lost
    for process in processes:
        if process.exitcode is None:
            process.terminate()
    if any(process.exitcode is None for process in processes):
        return  # still dying: the next check
    fd = result_queue._writer.fileno()
    os.set_blocking(fd, False)
    with contextlib.suppress(BlockingIOError):  # full: the manager thread is not reading
        os.write(fd, bytes(1 << 16))


PR_SET_PDEATHSIG = 1  # linux/prctl.h
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _start_worker(parent_pid: int) -> None:
    """A worker's set-up: leave Ctrl-C to the scanning process, die of SIGTERM, and die
    with the scanning process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by `Hasher._submit`
    if sys.platform.startswith("linux"):
        import ctypes

        # Sent when the thread that started the worker ends: the scan's, which closes the
        # pool before it returns.
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl could take effect
        os._exit(1)
