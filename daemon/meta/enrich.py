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

The heavy built-ins (`image`, `phash`, `video`) run in worker processes, a few files at a time,
each with its enricher's timeout (`workers.py`): both cores, and a decoder that hangs on one
file costs at most that timeout.

A failure of the content (`{"error": ...}`) is logged as `enrich.failed` at warning, at most
`FAILURES_LOGGED` lines per enricher per run (a one-shot scan, a daemon tick), then counted in
the run's one `enrich.finished` summary: a library of broken files must not flood the journal.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

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
from daemon.store import Store, queries
from daemon.store.models import STATE_ENRICHING, STATE_NEW

_CHUNK_FILES = 500
_BATCH_INSIGHTS = 500
# Heavy (file, enricher) jobs handed to the workers at once, per worker: a 400-JPEG test ran
# 3.8 ms/file at 2 per worker, 3.3 at 8 (IPC and the wait for the slowest of the batch).
_HEAVY_BATCH_PER_WORKER = 4
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


# Up to this many unsettled files, they are found through the (state, enricher_checksum)
# index and sorted (an idle tick at a million ready files: 2 ms); past it, by walking the
# library in id order, which sorts nothing (sorting every unsettled row for each chunk of
# 500 made the first tick of a fresh million-file index quadratic).
_BY_STATE_INDEX_MAX = 20_000


def _unsettled_chunk_query(store: Store, library_id: int, set_checksum: str):
    """`chunk(after_id)`: the next files of the library that are not `ready`, by id."""
    unsettled, params = queries.unsettled_condition(set_checksum)
    [(count,)] = store.query(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM file WHERE {unsettled} AND +library_id = ?"
        " LIMIT ?) AS unsettled", [*params, library_id, _BY_STATE_INDEX_MAX + 1])
    columns = "id, content_hash, rel_path, path_text, size, mtime_ns"
    if count <= _BY_STATE_INDEX_MAX:
        sql = (f"SELECT {columns} FROM file WHERE {unsettled} AND +library_id = ? AND id > ?"
               " AND NOT is_missing AND content_hash IS NOT NULL ORDER BY id LIMIT ?")
    else:
        sql = (f"SELECT {columns} FROM file WHERE library_id = ? AND id > ? AND NOT is_missing"
               f" AND content_hash IS NOT NULL AND {unsettled} ORDER BY id LIMIT ?")

    def chunk(after_id: int) -> list[tuple]:
        if count <= _BY_STATE_INDEX_MAX:
            return store.query(sql, [*params, library_id, after_id, _CHUNK_FILES])
        return store.query(sql, [library_id, after_id, *params, _CHUNK_FILES])

    return chunk


def _current_mime_texts(store: Store, hashes: Iterable[str]) -> dict[str, str]:
    hashes = sorted(hashes)
    rows = store.query(
        "SELECT content_hash, value FROM insight WHERE content_hash IN ("
        + ", ".join("?" for _ in hashes) + ") AND kind = ? AND is_current",
        [*hashes, MIME_KIND],
    )
    return dict(rows)


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
    hashes = sorted(hashes)
    rows = store.query(
        "SELECT DISTINCT i.content_hash, i.kind FROM insight i WHERE i.content_hash IN ("
        + ", ".join("?" for _ in hashes) + f") AND ({' OR '.join(conditions)})",
        [*hashes, *params],
    )
    return {(content_hash, kind) for content_hash, kind in rows}


def pending_estimate(store: Store, config: Config, library: str) -> tuple[int, int]:
    """(files, bytes) the enrichers may still read in a library, for a progress line.

    An upper bound: the present, hashed files that are not ready under the current enricher
    set, some of which turn out to have nothing pending (a copy of content already enriched).
    """
    row = queries.get_library(library)
    if row is None:
        return 0, 0
    unsettled, unsettled_params = queries.unsettled_condition(
        enricher_set_checksum(active_enrichers(config.enrichers)))
    [(files, total_bytes)] = store.query(
        f"SELECT COUNT(*), SUM(size) FROM file WHERE {unsettled} AND +library_id = ?"
        " AND NOT is_missing AND content_hash IS NOT NULL",
        [*unsettled_params, row.id],
    )
    return int(files or 0), int(total_bytes or 0)


def enrich_library(
    store: Store, config: Config, library: LibraryConfig, *, budget_s: float | None = None,
    stop: Callable[[], bool] | None = None, on_file: Callable[[int], None] | None = None,
    tally: EnrichTally | None = None,
) -> int:
    """Run what is pending in one online library; returns the number of insights written.

    With `budget_s`, no new run starts after that many seconds (the daemon's tick shares
    its time between libraries); what is left waits for the next call. `stop()` true ends it
    between files and interrupts a running external command (the daemon is stopping).
    `on_file(size)` is called once per file the enrichers read (the scan's progress line).
    Without a `tally`, it logs its own `enrich.finished` summary.
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
            [STATE_ENRICHING, STATE_NEW, row.id],
        )
    root = os.fsencode(library.path)
    # bound once: a lazy proxy re-binds on every call
    log = logs.get_logger().bind(library=library.name)
    own_tally = tally is None
    tally = tally or EnrichTally(library.name)
    results = _Results(store, tally)
    heavy: list[Work] = []

    def drain() -> None:
        """Run the heavy work waiting and write every result (between chunks, and at the end)."""
        nonlocal heavy
        if heavy:
            results.add_all(heavy, _run_heavy(row.id, root, heavy, library, log, stop))
            heavy = []
        results.flush()
        results.fresh_mime.clear()  # the next chunk reads `mime` from the database

    last_path = None
    for work in pending_work(store, config, row.id, before_next_chunk=drain):
        now = time.monotonic()
        if (deadline is not None and now >= deadline) or (stop is not None and stop()):
            break
        if on_file is not None and work.rel_path != last_path:
            on_file(work.size)
        last_path = work.rel_path
        if work.waits_for_mime and not _content_applies(work, results.fresh_mime):
            continue
        if work.enricher.builtin and work.enricher.name in HEAVY_BUILTINS:
            heavy.append(work)
            if len(heavy) >= _HEAVY_BATCH_PER_WORKER * workers.POOL.workers:
                results.add_all(heavy, _run_heavy(row.id, root, heavy, library, log, stop))
                heavy = []
        else:
            results.add(work, _run(row.id, root, work, library.follow_symlinks, log, stop))
        results.flush_if_due()
    drain()
    if own_tally:
        tally.log_summary()
    return results.written


class _Results:
    """Insights waiting to be written, in batches; `mime` values the next enrichers need."""

    def __init__(self, store: Store, tally: EnrichTally):
        self.store, self.tally = store, tally
        self.batch: list[NewInsight] = []
        self.fresh_mime: dict[str, str] = {}
        self.written = 0
        self.flushed_at = time.monotonic()

    def add(self, work: Work, result: NewInsight | None) -> None:
        if result is None:
            return
        self.batch.append(result)
        if work.enricher.name == MIME_KIND and work.enricher.builtin:
            self.fresh_mime[work.content_hash] = mime_text(result.value)
        self.tally.add(work, result.value)

    def add_all(self, works: list[Work], results: list[NewInsight | None]) -> None:
        for work, result in zip(works, results, strict=True):
            self.add(work, result)

    def flush_if_due(self) -> None:
        # Results wait at most a second: a slow enricher still shows progress.
        if len(self.batch) >= _BATCH_INSIGHTS or (
                self.batch and time.monotonic() - self.flushed_at >= 1.0):
            self.flush()

    def flush(self) -> None:
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

    The daemon's tick enriches in quarter-second slices; it passes one tally to all of a
    library's slices, so a tick logs one summary per library, not one per slice.
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
    tally: EnrichTally | None = None,
) -> int:
    """`scan`'s enrich step: each named library (none when `names` is empty), `budget_s` each."""
    if not names:
        return 0
    return sum(
        enrich_library(store, config, library, budget_s=budget_s, stop=stop, on_file=on_file,
                       tally=tally)
        for library in select_libraries(config, names)
    )


def _run(
    library_id: int, root: bytes, work: Work, follow_symlinks: bool, log,
    stop: Callable[[], bool] | None,
) -> NewInsight | None:
    """Run one enricher on one file; the insight to record, or None to retry later."""
    path = root + b"/" + work.rel_path
    if not _still_hashed_bytes(path, work, follow_symlinks):
        return None
    try:
        value = run_enricher(work.enricher, path, work.path_text, stop)
    except OSError as exc:
        log.debug("enrich.skipped", path=work.path_text, enricher=work.enricher.name,
                  why=describe_os_error(exc))
        return None
    if not _still_hashed_bytes(path, work, follow_symlinks):
        return None
    log.debug("enrich.ran", path=work.path_text, enricher=work.enricher.name,
              error=value.get("error") if isinstance(value, dict) else None)
    return NewInsight(work.content_hash, library_id, work.rel_path, work.enricher.name, value,
                      work.enricher.name, work.checksum, time.time())


def _run_heavy(
    library_id: int, root: bytes, works: list[Work], library: LibraryConfig, log,
    stop: Callable[[], bool] | None,
) -> list[NewInsight | None]:
    """Heavy built-ins in the worker processes, one timeout each; None: retry later."""
    paths = [root + b"/" + work.rel_path for work in works]
    ready = [_still_hashed_bytes(path, work, library.follow_symlinks)
             for path, work in zip(paths, works, strict=True)]
    jobs = [workers.Job(work.enricher.name, path, work.path_text, work.enricher.timeout_s)
            for path, work, ok in zip(paths, works, ready, strict=True) if ok]
    try:
        values = iter(workers.POOL.run(jobs, stop))
    except workers.Interrupted as exc:
        log.debug("enrich.interrupted", why=str(exc))
        return [None] * len(works)
    out: list[NewInsight | None] = []
    for path, work, ok in zip(paths, works, ready, strict=True):
        value = next(values) if ok else None
        if isinstance(value, OSError):
            log.debug("enrich.skipped", path=work.path_text, enricher=work.enricher.name,
                      why=describe_os_error(value))
            value = None
        if value is None or not _still_hashed_bytes(path, work, library.follow_symlinks):
            out.append(None)
            continue
        out.append(NewInsight(work.content_hash, library_id, work.rel_path, work.enricher.name,
                              value, work.enricher.name, work.checksum, time.time()))
    return out


def _still_hashed_bytes(path: bytes, work: Work, follow_symlinks: bool) -> bool:
    try:
        st = os.stat(path, follow_symlinks=follow_symlinks)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns) == (work.size, work.mtime_ns)
