"""Worker processes for the heavy built-ins (`image`, `phash`, `video`): both cores, a timeout.

Decoding pixels holds the GIL and a broken file can make a decoder spin, so the heavy
built-ins run in a small process pool (one worker per core, at most `MAX_WORKERS`), a batch of
files at a time. Each file gets its enricher's `timeout` (default 30 s): past it the value is
`{"error": "timed out after 30s"}` and the pool is killed and started again (a worker stuck in
C code cannot be interrupted any other way). A stop request (SIGTERM) kills the pool within
`POLL_S` and nothing is recorded for the unfinished files, so they run again later.

Workers are started with `forkserver`, never `fork`: the daemon has threads (watchers, the
scheduler) and forking a threaded process can copy a held lock into the child.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, NamedTuple

from daemon.meta.enrichers import run_builtin

MAX_WORKERS = 2
POLL_S = 0.2


class Job(NamedTuple):
    name: str
    path: bytes
    path_text: str
    timeout_s: float


class Interrupted(OSError):
    """A stop request ended the batch: unfinished files are run again later."""


class HeavyPool:
    def __init__(self, workers: int | None = None):
        self.workers = workers or max(1, min(MAX_WORKERS, os.cpu_count() or 1))
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def run(self, jobs: Sequence[Job], stop: Callable[[], bool] | None = None
            ) -> list[Any | OSError]:
        """Each job's value, or the OSError it raised (the file, not its content: retry)."""
        executor = self._ensure()
        started = time.monotonic()
        futures: dict[Future, int] = {}
        results: list[Any] = [None] * len(jobs)
        try:
            for index, job in enumerate(jobs):
                futures[executor.submit(run_builtin, job.name, job.path, job.path_text,
                                        job.timeout_s)] = index
        except BrokenProcessPool:
            self.kill()
            raise Interrupted("enricher workers died; retried later") from None
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
            for future in done:
                results[futures[future]] = _outcome(future)
            if stop is not None and stop() and pending:
                self.kill()
                raise Interrupted("stopping: enricher workers killed, to be run again")
            late = [f for f in pending
                    if time.monotonic() - started > jobs[futures[f]].timeout_s]
            if late:
                for future in late:
                    results[futures[future]] = {
                        "error": f"timed out after {jobs[futures[future]].timeout_s:g}s"}
                # The others of the batch are lost with the pool: run again later.
                for future in pending - set(late):
                    results[futures[future]] = Interrupted("worker pool restarted")
                self.kill()
                break
        return results

    def _ensure(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("forkserver"))
            return self._executor

    def kill(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is None:
            return
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            with contextlib.suppress(OSError):
                process.kill()
        executor.shutdown(wait=True, cancel_futures=True)


def _outcome(future: Future) -> Any:
    try:
        return future.result()
    except OSError as exc:
        return exc
    except BrokenProcessPool:
        return Interrupted("enricher worker died; retried later")
    except Exception as exc:  # a bug in a built-in: recorded, not fatal to the daemon
        return {"error": f"{type(exc).__name__}: {exc}"}


POOL = HeavyPool()
atexit.register(POOL.kill)
