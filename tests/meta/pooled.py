"""Run jobs in a worker pool and wait for every outcome (what a one-shot scan does)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from daemon.meta import workers


def run_jobs(pool: workers.HeavyPool, jobs: Sequence[workers.Job],
             stop: Callable[[], bool] | None = None) -> list[workers.Outcome]:
    """Each job's outcome, in order; `stop()` true kills the pool (the jobs end Interrupted)."""
    outcomes: list[workers.Outcome | None] = [None] * len(jobs)
    finished = threading.Semaphore(0)
    for index, job in enumerate(jobs):
        def done(_job: workers.Job, outcome: workers.Outcome, index: int = index) -> None:
            outcomes[index] = outcome
            finished.release()
        pool.submit(job, done)
    for _ in jobs:
        while not finished.acquire(timeout=workers.POLL_S):
            if stop is not None and stop():
                pool.kill()
    return [outcome for outcome in outcomes if outcome is not None]
