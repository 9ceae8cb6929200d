"""Run the enrichers on content they have not seen: once per (content hash, enricher config).

Work is found per library from the files that are not `ready` under the current enricher set
(a ready file has nothing pending, so a steady library costs one indexed query). For each
such file, every enricher whose `match` selects its path and that has no satisfying insight
for its hash (see `insights.satisfied_condition`) is pending; one file per (hash, enricher)
is read. A moved or copied file has the same hash, so nothing runs for it again.

The file is stat'ed before and after the enricher: if its size or mtime differ from the row,
the bytes are not the hashed ones, and the result is dropped (the next scan re-hashes it).
No transaction is held while an enricher runs; results are written in batches.

The media built-ins choose files by content (`meta/content.py`): for a file whose `mime` is
still pending, `mime` runs first and its fresh value decides whether `image`, `audio` ... run.

The heavy built-ins (`image`, `phash`, `video`) run in worker processes (`workers.py`), each
file with its enricher's timeout: both cores, and a decoder that hangs on one file costs at
most that timeout. They are handed over without waiting (`HeavyRuns`), at most
`_IN_FLIGHT_PER_WORKER` jobs per worker at a time: in the daemon the writer thread goes on
applying watcher batches while they run, and writes their results when they come back; a
one-shot scan waits for all of them before it returns. `image` and `phash` pending on one file
are one job, one decode.

A failure of the content (`{"error": ...}`) is logged as `enrich.failed` at warning, at most
`FAILURES_LOGGED` lines per enricher per run (a one-shot scan, a daemon tick), then counted in
the run's one `enrich.finished` summary: a library of broken files must not flood the journal.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, NamedTuple

from daemon import logs
from daemon.config import Config, EnricherConfig, LibraryConfig
from daemon.errors import describe_os_error
from daemon.libraries import select_libraries
from daemon.meta import workers
from daemon.meta.content import MIME_KIND, RULES, mime_text
from daemon.meta.enrichers import (
    HEAVY_BUILTINS,
    active_enrichers,
    enricher_checksum,
    enricher_set_checksum,
    run_enricher,
)
from daemon.meta.insights import NewInsight, record_insights, satisfied_condition
from daemon.meta.match import GlobSet
from daemon.scan.probe import probe
from daemon.store import Store, labels, queries
from daemon.store.hashes import all_to_db, from_db
from daemon.store.models import STATE_CODES, STATE_ENRICHING, STATE_NEW
from daemon.store.paths import shown

_CHUNK_FILES = 500
_BATCH_INSIGHTS = 500
FAILURES_LOGGED = 3  # per enricher per run; the rest are only counted in enrich.finished


class Work(NamedTuple):
    content_hash: str
    enricher: EnricherConfig
    checksum: str
    rel_path: bytes
    path_text: str
    size: int
    mtime_ns: int
    # A media built-in on a file whose `mime` runs just before it: that value decides.
    waits_for_mime: bool = False


def pending_work(store: Store, config: Config, library_id: int,
                 before_next_chunk: Callable[[], None] | None = None) -> Iterator[Work]:
    """(hash, enricher) pairs of this library that still need a run, one file each.

    Lazily, in chunks of files by id: a caller with a time budget stops early and pays only
    for the chunks it looked at. Memory is one chunk's: `before_next_chunk()` lets the caller
    write what it ran, so the next chunk's look-up in the database sees it (a copy in a later
    chunk is not run again) without a set of every (hash, enricher) seen, which held ~200 MB
    at a million files.
    """
    active = sorted(active_enrichers(config.enrichers), key=lambda e: e.name != MIME_KIND)
    set_checksum = enricher_set_checksum(active)
    enrichers = [(e, enricher_checksum(e), GlobSet(e.match)) for e in active]
    mime_active = next(((e, g) for e, _, g in enrichers if e.builtin and e.name == MIME_KIND),
                       None)
    if not enrichers:
        return  # nothing can be pending; the lifecycle pass makes the files ready
    chunk = _unsettled_chunk_query(store, library_id, set_checksum)
    last_id = 0
    while True:
        if last_id and before_next_chunk is not None:
            before_next_chunk()
        rows = chunk(last_id)
        if not rows:
            return
        last_id = rows[-1][0]
        hashes = {row[1] for row in rows}
        seen = _satisfied(store, hashes, enrichers)
        mime_texts = _current_mime_texts(store, hashes)
        for _, content_hash, rel_path, path_text, size, mtime_ns in rows:
            mime_pending = mime_active is not None and (content_hash, MIME_KIND) not in seen \
                and mime_active[1].matches(path_text)
            for enricher, checksum, globs in enrichers:
                key = (content_hash, enricher.name)
                if key in seen or not globs.matches(path_text):
                    continue
                rule = RULES.get(enricher.name) if enricher.builtin else None
                waits = rule is not None and mime_pending
                if rule is not None and not waits:
                    known = mime_texts.get(content_hash)
                    if not (rule.applies_to_mime_text(known) if known is not None
                            else rule.applies_by_path(path_text)):
                        continue
                seen.add(key)
                yield Work(content_hash, enricher, checksum, bytes(rel_path), path_text,
                           size, mtime_ns, waits)


# Up to this many unsettled files, they are found through the (state, checksum_label)
# index and sorted (an idle tick at a million ready files: 2 ms); past it, by walking the
# library in id order, which sorts nothing (sorting every unsettled row for each chunk of
# 500 made the first tick of a fresh million-file index quadratic).
_BY_STATE_INDEX_MAX = 20_000


def _unsettled_chunk_query(store: Store, library_id: int, set_checksum: str):
    """`chunk(after_id)`: the next files of the library that are not `ready`, by id."""
    unsettled, params = queries.unsettled_condition(store, set_checksum)
    [(count,)] = store.query(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM file WHERE {unsettled} AND +library_id = ?"
        " LIMIT ?) AS unsettled", [*params, library_id, _BY_STATE_INDEX_MAX + 1])
    columns = "id, content_hash, rel_path, path_text, size, mtime_ns"
    if count <= _BY_STATE_INDEX_MAX:
        sql = (f"SELECT {columns} FROM file WHERE {unsettled} AND +library_id = ? AND id > ?"
               " AND NOT is_missing AND content_hash IS NOT NULL ORDER BY id LIMIT ?")
    else:
        # In id order from the primary key: any index the planner may prefer (the library's
        # (library_id, rel_path), the state index) needs every matching row sorted per chunk.
        sql = (f"SELECT {columns} FROM {queries.in_id_order(store)} WHERE library_id = ?"
               f" AND id > ? AND NOT is_missing AND content_hash IS NOT NULL AND {unsettled}"
               " ORDER BY id LIMIT ?")

    def chunk(after_id: int) -> list[tuple]:
        if count <= _BY_STATE_INDEX_MAX:
            rows = store.query(sql, [*params, library_id, after_id, _CHUNK_FILES])
        else:
            rows = store.query(sql, [library_id, after_id, *params, _CHUNK_FILES])
        return [(file_id, from_db(digest), rel_path, shown(rel_path, text), *rest)
                for file_id, digest, rel_path, text, *rest in rows]

    return chunk


def _current_mime_texts(store: Store, hashes: Iterable[str]) -> dict[str, str]:
    digests = all_to_db(sorted(hashes))
    rows = store.query(
        f"SELECT content_hash, {labels.insight_value('insight')} FROM insight"
        " WHERE content_hash IN ("
        + ", ".join("?" for _ in digests) + f") AND {labels.insight_kind_is('insight')}"
        " AND is_current",
        [*digests, MIME_KIND],
    )
    return {from_db(digest): text for digest, text in rows}


def _satisfied(
    store: Store, hashes: Iterable[str], enrichers: list[tuple[EnricherConfig, str, GlobSet]]
) -> set[tuple[str, str]]:
    if not enrichers:
        return set()
    conditions, params = [], []
    for enricher, checksum, _ in enrichers:
        sql, sql_params = satisfied_condition(enricher, checksum)
        conditions.append(sql)
        params += sql_params
    digests = all_to_db(sorted(hashes))
    rows = store.query(
        f"SELECT DISTINCT i.content_hash, {labels.insight_kind('i')} FROM insight i"
        " WHERE i.content_hash IN ("
        + ", ".join("?" for _ in digests) + f") AND ({' OR '.join(conditions)})",
        [*digests, *params],
    )
    return {(from_db(digest), kind) for digest, kind in rows}


def pending_estimate(store: Store, config: Config, library: str) -> tuple[int, int]:
    """(files, bytes) the enrichers may still read in a library, for a progress line.

    An upper bound: the present, hashed files that are not ready under the current enricher
    set, some of which turn out to have nothing pending (a copy of content already enriched).
    """
    row = queries.get_library(library)
    if row is None:
        return 0, 0
    unsettled, unsettled_params = queries.unsettled_condition(
        store, enricher_set_checksum(active_enrichers(config.enrichers)))
    [(files, total_bytes)] = store.query(
        f"SELECT COUNT(*), SUM(size) FROM file WHERE {unsettled} AND +library_id = ?"
        " AND NOT is_missing AND content_hash IS NOT NULL",
        [*unsettled_params, row.id],
    )
    return int(files or 0), int(total_bytes or 0)


def enrich_library(
    store: Store, config: Config, library: LibraryConfig, *, budget_s: float | None = None,
    stop: Callable[[], bool] | None = None, on_file: Callable[[int], None] | None = None,
    heavy: HeavyRuns | None = None,
) -> int:
    """Run what is pending in one online library; returns the number of insights written.

    With `budget_s`, no new run starts after that many seconds (the daemon's tick shares
    its time between libraries); what is left waits for the next call. `stop()` true ends it
    between files and interrupts a running external command (the daemon is stopping).
    `on_file(size)` is called once per file the enrichers read (the scan's progress line).

    The heavy built-ins go to the worker pool through `heavy`. Without one (a one-shot scan)
    every run ends before this returns, and the library's `enrich.finished` is logged here.
    With the daemon's, this returns when the budget is spent even though runs are still in
    the workers: their results are written when they come back (`write_finished`), and the
    tick logs the summaries.
    """
    row = queries.get_library(library.name)
    if row is None or not probe(library).online:
        return 0
    deadline = None if budget_s is None else time.monotonic() + budget_s
    with store.write_tx():
        store.execute(
            # state first, +library_id: the state index, not a walk through the library
            "UPDATE file SET state = ? WHERE state = ? AND +library_id = ?"
            " AND content_hash IS NOT NULL",
            [STATE_CODES[STATE_ENRICHING], STATE_CODES[STATE_NEW], row.id],
        )
    one_shot = heavy is None
    heavy = heavy or HeavyRuns(workers.POOL)
    results = _Results(store, heavy)
    root, library_log = os.fsencode(library.path), None

    def submit(works: list[Work]) -> None:
        # The logger on first use: a rescan with nothing to enrich imports no structlog
        # (with asyncio, ~25 ms of a 0.3 s rescan of 100k files).
        nonlocal library_log
        if works:
            library_log = library_log or logs.get_logger().bind(library=library.name)
            heavy.submit(row.id, library, root, library_log, works)

    file_works: list[Work] = []  # the heavy built-ins pending on one file, run in one job

    def drain() -> None:
        """Write every result back so far (between chunks: the next chunk's query sees them)."""
        results.add_finished()
        results.flush()
        results.fresh_mime.clear()  # the next chunk reads `mime` from the database

    def out_of_time() -> bool:
        return (deadline is not None and time.monotonic() >= deadline) or (
            stop is not None and stop())

    last_path = None
    for work in pending_work(store, config, row.id, before_next_chunk=drain):
        if out_of_time():
            break
        if work.rel_path != last_path:
            if on_file is not None:
                on_file(work.size)
            submit(file_works)
            file_works = []
        last_path = work.rel_path
        if work.waits_for_mime and not _content_applies(work, results.fresh_mime):
            continue
        if (work.content_hash, work.enricher.name) in heavy.in_flight:
            continue  # a copy's run is in the workers (the daemon's earlier slice)
        if work.enricher.builtin and work.enricher.name in HEAVY_BUILTINS:
            file_works.append(work)
            while heavy.full() and not out_of_time():
                heavy.wait(_wait_s(deadline))
                results.add_finished()
        else:
            results.add(library.name, work,
                        _run(row.id, library, work, results.log_for(library.name), stop))
        results.add_finished()
        results.flush_if_due()
    submit(file_works)
    while one_shot and heavy.in_flight:
        if stop is not None and stop():
            heavy.pool.kill()  # the unfinished come back Interrupted: run again later
        heavy.wait(workers.POLL_S)
        results.add_finished()
        results.flush_if_due()
    drain()
    if one_shot:
        heavy.log_summaries()
    return results.written


def _wait_s(deadline: float | None) -> float:
    left_s = workers.POLL_S if deadline is None else deadline - time.monotonic()
    return max(0.0, min(workers.POLL_S, left_s))


# Heavy jobs in the workers at once, per worker: enough that a worker finds its next file
# waiting (a 400-JPEG test ran 3.8 ms/file at 2 per worker, 3.3 at 8), few enough that the
# daemon's stop or a config change finds little in flight.
_IN_FLIGHT_PER_WORKER = 4


class _Submitted(NamedTuple):
    library_id: int
    library: LibraryConfig
    path: bytes
    works: list[Work]
    log: Any


class HeavyRuns:
    """Heavy built-ins handed to the worker pool, and the results that came back.

    `submit`, `in_flight` and `take_finished` belong to one thread (the daemon's writer, or
    the scan): a (hash, enricher) stays in `in_flight` until its result is taken, so a copy
    of the content is not run twice meanwhile. The pool's thread only appends to the finished
    list and calls `on_finished()` (the daemon queues a write of the results to its writer).
    """

    def __init__(self, pool: workers.HeavyPool, on_finished: Callable[[], None] | None = None):
        self.pool = pool
        self.in_flight: set[tuple[str, str]] = set()
        self.max_in_flight = _IN_FLIGHT_PER_WORKER * pool.workers
        self._jobs = 0
        self._finished: list[tuple[_Submitted, workers.Outcome]] = []
        self._cond = threading.Condition()
        self._on_finished = on_finished
        self._tallies: dict[str, EnrichTally] = {}

    def full(self) -> bool:
        return self._jobs >= self.max_in_flight

    def submit(self, library_id: int, library: LibraryConfig, root: bytes, log,
               works: list[Work]) -> None:
        """Run the heavy built-ins pending on one file, in one job (one decode for two)."""
        if not works:
            return
        path = root + b"/" + works[0].rel_path
        if not _still_hashed_bytes(path, works[0], library.follow_symlinks):
            return  # changed since it was hashed: the next scan re-hashes it
        job = workers.Job(tuple(w.enricher.name for w in works), path, works[0].path_text,
                          max(w.enricher.timeout_s for w in works))
        self.in_flight.update((w.content_hash, w.enricher.name) for w in works)
        self._jobs += 1
        self.pool.submit(job, partial(self._done, _Submitted(library_id, library, path, works,
                                                             log)))

    def _done(self, submitted: _Submitted, _job: workers.Job, outcome: workers.Outcome):
        with self._cond:
            self._finished.append((submitted, outcome))
            self._cond.notify_all()
        if self._on_finished is not None:
            self._on_finished()

    def wait(self, timeout_s: float) -> None:
        """Until a job has finished, at most `timeout_s`."""
        with self._cond:
            if not self._finished:
                self._cond.wait(timeout_s)

    def take_finished(self) -> list[tuple[str, Work, NewInsight | None]]:
        """(library name, work, insight or None to retry later) of every job that ended."""
        with self._cond:
            finished, self._finished = self._finished, []
        out = []
        for submitted, outcome in finished:
            self._jobs -= 1
            # the bytes the workers read are still the hashed ones (one stat for the job)
            unchanged = not isinstance(outcome, OSError) and _still_hashed_bytes(
                submitted.path, submitted.works[0], submitted.library.follow_symlinks)
            for work in submitted.works:
                self.in_flight.discard((work.content_hash, work.enricher.name))
                out.append((submitted.library.name, work,
                            _heavy_insight(submitted, work, outcome, unchanged)))
        return out

    def tally(self, library: str) -> EnrichTally:
        if library not in self._tallies:
            self._tallies[library] = EnrichTally(library)
        return self._tallies[library]

    def log_summaries(self) -> None:
        """One `enrich.finished` per library since the last call (a scan, a daemon tick)."""
        for tally in self._tallies.values():
            tally.log_summary()
        self._tallies.clear()


def write_finished(store: Store, heavy: HeavyRuns) -> int:
    """Write the results that came back from the workers (the daemon's writer, between jobs)."""
    results = _Results(store, heavy)
    results.add_finished()
    results.flush()
    return results.written


def _heavy_insight(submitted: _Submitted, work: Work, outcome: workers.Outcome,
                   unchanged: bool) -> NewInsight | None:
    """The insight to record, or None to run again later."""
    if isinstance(outcome, OSError):  # the file, not its content
        submitted.log.debug("enrich.skipped", path=work.path_text, enricher=work.enricher.name,
                            why=describe_os_error(outcome))
        return None
    if not unchanged:
        return None
    value = outcome[work.enricher.name]
    submitted.log.debug("enrich.ran", path=work.path_text, enricher=work.enricher.name,
                        error=value.get("error") if isinstance(value, dict) else None)
    return NewInsight(work.content_hash, submitted.library_id, work.rel_path, work.enricher.name,
                      value, work.enricher.name, work.checksum, time.time())


class _Results:
    """Insights waiting to be written, in batches; `mime` values the next enrichers need."""

    def __init__(self, store: Store, heavy: HeavyRuns):
        self.store, self.heavy = store, heavy
        self.batch: list[NewInsight] = []
        self.fresh_mime: dict[str, str] = {}
        self.written = 0
        self.flushed_at = time.monotonic()

    def log_for(self, library: str):
        return self.heavy.tally(library).log

    def add(self, library: str, work: Work, result: NewInsight | None) -> None:
        if result is None:
            return
        self.batch.append(result)
        if work.enricher.name == MIME_KIND and work.enricher.builtin:
            self.fresh_mime[work.content_hash] = mime_text(result.value)
        self.heavy.tally(library).add(work, result.value)

    def add_finished(self) -> None:
        for library, work, result in self.heavy.take_finished():
            self.add(library, work, result)

    def flush_if_due(self) -> None:
        # Results wait at most a second: a slow enricher still shows progress.
        if len(self.batch) >= _BATCH_INSIGHTS or (
                self.batch and time.monotonic() - self.flushed_at >= 1.0):
            self.flush()

    def flush(self) -> None:
        if self.batch:
            record_insights(self.store, self.batch)
        self.written += len(self.batch)
        self.batch, self.flushed_at = [], time.monotonic()


def _content_applies(work: Work, fresh_mime: dict[str, str]) -> bool:
    """The `mime` that just ran on this content says whether `work`'s enricher applies."""
    text = fresh_mime.get(work.content_hash)
    return text is not None and RULES[work.enricher.name].applies_to_mime_text(text)


class EnrichTally:
    """Per-enricher counts of one run over a library: a few `enrich.failed` lines, then one
    `enrich.finished` summary at info (per file, only `enrich.ran` at debug).

    The daemon's tick enriches in quarter-second slices, and heavy results come back between
    them: one tally per library (`HeavyRuns.tally`) counts them all, so a tick logs one
    summary per library, not one per slice.
    """

    def __init__(self, library: str) -> None:
        self.log = logs.get_logger().bind(library=library)
        self.ran: dict[str, int] = {}
        self.failed: dict[str, int] = {}

    def add(self, work: Work, value: object) -> None:
        name = work.enricher.name
        self.ran[name] = self.ran.get(name, 0) + 1
        error = value.get("error") if isinstance(value, dict) else None
        if error is None or not isinstance(error, str) or set(value) != {"error"}:
            return  # a partial result with an "error" (an undecodable image) is still a result
        self.failed[name] = self.failed.get(name, 0) + 1
        if self.failed[name] <= FAILURES_LOGGED:
            self.log.warning(logs.ENRICH_FAILED, enricher=name, path=work.path_text,
                             error=error)

    def log_summary(self) -> None:
        if not self.ran:
            return
        unlogged = {name: n - FAILURES_LOGGED for name, n in self.failed.items()
                    if n > FAILURES_LOGGED}
        self.log.info(logs.ENRICH_FINISHED, ran=dict(sorted(self.ran.items())),
                      failed=dict(sorted(self.failed.items())),
                      **({"failures_not_logged": unlogged} if unlogged else {}))


def enrich_libraries(
    store: Store, config: Config, names: list[str], budget_s: float | None = None,
    stop: Callable[[], bool] | None = None, on_file: Callable[[int], None] | None = None,
    heavy: HeavyRuns | None = None,
) -> int:
    """`scan`'s enrich step: each named library (none when `names` is empty), `budget_s` each."""
    if not names:
        return 0
    return sum(
        enrich_library(store, config, library, budget_s=budget_s, stop=stop, on_file=on_file,
                       heavy=heavy)
        for library in select_libraries(config, names)
    )


def _run(
    library_id: int, library: LibraryConfig, work: Work, log, stop: Callable[[], bool] | None,
) -> NewInsight | None:
    """Run one enricher on one file; the insight to record, or None to retry later."""
    path = os.fsencode(library.path) + b"/" + work.rel_path
    if not _still_hashed_bytes(path, work, library.follow_symlinks):
        return None
    try:
        value = run_enricher(work.enricher, path, work.path_text, stop)
    except OSError as exc:
        log.debug("enrich.skipped", path=work.path_text, enricher=work.enricher.name,
                  why=describe_os_error(exc))
        return None
    if not _still_hashed_bytes(path, work, library.follow_symlinks):
        return None
    log.debug("enrich.ran", path=work.path_text, enricher=work.enricher.name,
              error=value.get("error") if isinstance(value, dict) else None)
    return NewInsight(work.content_hash, library_id, work.rel_path, work.enricher.name, value,
                      work.enricher.name, work.checksum, time.time())


def _still_hashed_bytes(path: bytes, work: Work, follow_symlinks: bool) -> bool:
    try:
        st = os.stat(path, follow_symlinks=follow_symlinks)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns) == (work.size, work.mtime_ns)
