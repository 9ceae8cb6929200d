"""Worker processes for the heavy built-ins (`image`, `phash`, `video`): both cores, a timeout.

Decoding pixels holds the GIL and a broken file can make a decoder spin, so the heavy
built-ins run in a small pool of worker processes (one per core, at most `MAX_WORKERS`), one
file at a time each. Jobs are handed over with `submit(job, done)`: the caller goes on at once
and `done(job, outcome)` is called, on the pool's own thread, when the job ends. The daemon's
writer thread therefore never waits for a decoder (it queues the results to itself); a one-shot
scan waits for them (`enrich.HeavyRuns`).

The pool thread knows which job each worker runs and since when (a worker gets its next job
while it runs one, and starts it when it sends the result back), so:
- a job past its enricher's `timeout` (default 30 s) gets `{"error": "timed out after 30s"}`
  and only its worker is killed (a worker stuck in C code cannot be interrupted any other way);
- a worker that dies under a job (a segfault in a decoder, the kernel's OOM killer) fails that
  job alone with an `{"error": ...}`: it is recorded like any failure of the content, so the file
  is not retried on every tick until the enricher's config changes. The others carry on.
- `kill()` (a stop request, SIGTERM) ends every job with `Interrupted`: nothing is recorded for
  them, so they run again later.

Workers are started with `forkserver`, never `fork`: the daemon has threads (watchers, the
scheduler) and forking a threaded process can copy a held lock into the child.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any, NamedTuple

from daemon.meta.enrichers import run_builtins

MAX_WORKERS = 2
POLL_S = 0.2
# A worker has its next job in its pipe when it finishes one: it does not wait for the pool
# thread, which shares the GIL with the writer (or the scan's database writes).
_JOBS_PER_WORKER = 2


class Job(NamedTuple):
    """Built-ins to run on one file in one call (`image` and `phash` share one decode)."""

    names: tuple[str, ...]
    path: bytes
    path_text: str
    timeout_s: float


# Per job: {name: value} for each of its built-ins, or the OSError that says the file itself
# could not be read (gone, replaced) or the run was interrupted: retried later.
Outcome = dict[str, Any] | OSError
Done = Callable[[Job, Outcome], None]


class Interrupted(OSError):
    """A stop request ended the job: it is run again later."""


def failed(job: Job, error: str) -> dict[str, Any]:
    """The same error for each of the job's built-ins."""
    return {name: {"error": error} for name in job.names}


class _Worker:
    """One worker process and the jobs sent to it, oldest (the one it is running) first."""

    def __init__(self, context) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), daemon=True,
                                       name="assetd-enricher")
        self.process.start()
        child.close()
        self.jobs: deque[tuple[Job, Done]] = deque()
        self.started_s = 0.0  # when the oldest job started (or was sent, if the worker idled)

    def give(self, job: Job, done: Done) -> None:
        if not self.jobs:
            self.started_s = time.monotonic()
        self.jobs.append((job, done))
        self.conn.send(job)

    def take(self) -> tuple[Job, Done]:
        """The oldest job, which has ended; the next one starts now."""
        job_done = self.jobs.popleft()
        self.started_s = time.monotonic()
        return job_done

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()
        self.process.join()
        self.conn.close()


class HeavyPool:
    def __init__(self, workers: int | None = None):
        self.workers = workers or max(1, min(MAX_WORKERS, os.cpu_count() or 1))
        self._lock = threading.Lock()
        self._queued: deque[tuple[Job, Done]] = deque()
        self._running: list[_Worker] = []  # changed by the pool thread only
        self._thread: threading.Thread | None = None
        self._closing = False
        self._wake_r, self._wake_w = -1, -1

    def submit(self, job: Job, done: Done) -> None:
        """Queue a job; `done(job, outcome)` is called on the pool's thread when it ends."""
        with self._lock:
            self._queued.append((job, done))
            if self._thread is None:
                self._start()
            elif len(self._running) < self.workers or any(
                    len(w.jobs) < _JOBS_PER_WORKER for w in self._running):
                # Only when a worker has room: otherwise the pool thread takes the job when a
                # result frees a slot, and a wake-up per job (~0.1 ms, a GIL switch) is saved.
                self._wake()

    def kill(self) -> None:
        """End the workers now; every job not finished gets `Interrupted`."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._closing = True
            self._wake()
        thread.join()

    # The pool thread. `_start` and `_wake` run under self._lock.

    def _start(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._loop, name="assetd-enrich-pool",
                                        daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe is awake already
            os.write(self._wake_w, b"x")

    def _loop(self) -> None:
        why = "enricher workers stopped; run again later"
        try:
            self._serve_jobs()
        except Exception as exc:  # cannot start a worker (no memory, no processes left)
            why = f"enricher workers failed ({type(exc).__name__}: {exc}); run again later"
        with self._lock:
            queued, self._queued = list(self._queued), deque()
            running, self._running = self._running, []
            self._thread, self._closing = None, False
            os.close(self._wake_r)
            os.close(self._wake_w)
        for worker in running:
            worker.kill()
            queued[:0] = worker.jobs
        for job, done in queued:
            done(job, Interrupted(why))

    def _serve_jobs(self) -> None:
        context = multiprocessing.get_context("forkserver")
        while True:
            with self._lock:
                if self._closing:
                    return
                self._assign(context)
                busy = [w for w in self._running if w.jobs]
            timeout_s = min((w.started_s + w.jobs[0][0].timeout_s for w in busy), default=None)
            ready = wait([self._wake_r, *(w.conn for w in busy),
                          *(w.process.sentinel for w in busy)],
                         None if timeout_s is None else max(0.0, timeout_s - time.monotonic()))
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
            for worker in busy:
                self._check(worker, ready)

    def _assign(self, context) -> None:
        while self._queued and len(self._running) < self.workers:
            self._running.append(_Worker(context))
        for depth in range(1, _JOBS_PER_WORKER + 1):  # first one job each, then the second
            for worker in self._running:
                if len(worker.jobs) < depth and self._queued:
                    worker.give(*self._queued.popleft())

    def _check(self, worker: _Worker, ready: list) -> None:
        """Hand over finished jobs; kill a worker past its job's timeout; notice a death."""
        while worker.jobs and worker.conn.poll():
            try:
                outcome = worker.conn.recv()
            except (EOFError, OSError):  # died without an answer: its job killed it
                self._fail(worker, _death(worker))
                return
            job, done = worker.take()
            done(job, outcome)
        if not worker.jobs:
            return
        if worker.process.sentinel in ready:
            self._fail(worker, _death(worker))
        elif time.monotonic() - worker.started_s >= worker.jobs[0][0].timeout_s:
            self._fail(worker, f"timed out after {worker.jobs[0][0].timeout_s:g}s")

    def _fail(self, worker: _Worker, error: str) -> None:
        """The running job gets `error`; the worker goes; the job queued behind it waits."""
        worker.kill()
        with self._lock:
            self._running.remove(worker)
            job, done = worker.jobs.popleft()
            self._queued.extendleft(reversed(worker.jobs))
        done(job, failed(job, error))


def _death(worker: _Worker) -> str:
    worker.process.join(1.0)
    code = worker.process.exitcode
    how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
           and -code in signal.valid_signals() else f"exit status {code}")
    return f"enricher worker died on this file ({how}); not retried until the config changes"


def _serve(conn: Connection) -> None:
    """A worker: run each job it is sent until the pipe closes (the pool ended)."""
    # SIGTERM/SIGINT are for the daemon, which stops its workers itself; a job killed by
    # them would be recorded as a crash of its file.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        try:
            outcome: Outcome = run_builtins(job.names, job.path, job.path_text, job.timeout_s)
        except OSError as exc:
            outcome = exc
        except Exception as exc:  # a bug in a built-in: recorded, not fatal to the daemon
            outcome = failed(job, f"{type(exc).__name__}: {exc}")
        conn.send(outcome)


POOL = HeavyPool()
atexit.register(POOL.kill)
