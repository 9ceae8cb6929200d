"""One scan of one library (or part of it): probe → walk → plan → hash → guard → apply.

This is the service the CLI's `scan` and the daemon's watcher, tick and rescans all call, so
that every path into the index makes the same decisions.
"""

from __future__ import annotations

import os
import time
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from functools import cached_property

from daemon import logs
from daemon.config import Config, LibraryConfig
from daemon.errors import UsageError
from daemon.libraries import resolve_path, select_libraries
from daemon.meta.enrichers import active_enrichers, enricher_set_checksum
from daemon.scan.apply import apply_plan, mark_missing, path_text
from daemon.scan.filters import ExcludeMatcher
from daemon.scan.hash import HASHED, TORN, VANISHED, Hashed
from daemon.scan.hashpool import Hasher, Pending
from daemon.scan.plan import (
    PagesAhead,
    Plan,
    PlanStream,
    add_sources,
    identity,
    in_parts,
    mass_missing_exceeded,
    match_moves_by_hash,
)
from daemon.scan.probe import probe
from daemon.scan.progress import Progress
from daemon.scan.sniffed import SniffedInsights
from daemon.scan.walk import DiskEntry, WalkOptions, WalkResult, keyed_runs, walk_runs
from daemon.scan.walkproc import walk_runs_in_children
from daemon.store import Store, deferred_indexes, queries, sqlite_path
from daemon.store.models import Library
from daemon.store.rows import DbRow
from daemon.units import iso_utc

# A long scan is applied in parts of this many files or bytes to read, so a stop or a crash
# keeps the work already done; most scans fit in one part.
PART_FILES = 10_000
PART_BYTES = 8 << 30
# Pages of keys (`queries.SNAPSHOT_PAGE_ROWS` rows, ~55 B a row) read while the walkers keep
# the merge waiting: ~9 MB at most.
PAGES_AHEAD = 32

STAT_KEYS = (
    "discovered", "created", "updated", "unchanged", "moved", "missing", "restored", "hashed",
    "errors",
)


@dataclass(frozen=True)
class ScanOptions:
    dry_run: bool = False
    hash_files: bool = True
    allow_mass_missing: bool = False
    # Watcher events say a file was deleted: that is an observation, not an outage to guard.
    observed_deletes: bool = False
    # Enrichment follows: record the built-in `mime` insight from the bytes the hash reads,
    # so no new file is read twice (scan/sniffed.py).
    sniff: bool = False
    # With `sniff`: make each part's new files `ready` as it is applied where the sniffed
    # `mime` is all they wait for (`reconcile.settle_created`). A one-shot scan and the
    # daemon's whole-library scans do; a watcher's batch leaves it to the tick.
    settle_parts: bool = False


@dataclass(frozen=True)
class ScanError:
    """A file (or directory) the scan could not read; `rel_path` keeps the exact name."""

    rel_path: bytes
    error: str

    def as_json(self) -> dict[str, str]:
        return {"path": path_text(self.rel_path), "error": self.error}


@dataclass
class LibraryScan:
    name: str
    online: bool
    reason: str | None = None
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAT_KEYS, 0))
    errors: list[ScanError] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.online:
            return "offline"
        return "partial" if self.stats["errors"] else "ok"

    def as_json(self) -> dict:
        return {"name": self.name, "online": self.online, "reason": self.reason,
                "stats": self.stats, "errors": [e.as_json() for e in self.errors]}


def skip_paths(config: Config) -> frozenset[bytes]:
    """assetd's own files are never indexed, even when they live inside a library."""
    paths = set()
    db_file = sqlite_path(config.daemon.database)
    if db_file:
        paths |= {db_file + suffix for suffix in ("", "-wal", "-shm", "-journal", "-locks")}
    if config.daemon.log_file:
        paths.add(os.path.abspath(config.daemon.log_file))
    return frozenset(os.fsencode(p) for p in paths)


def scan_library(
    store: Store,
    config: Config,
    library: LibraryConfig,
    *,
    scopes: list[bytes] | None = None,
    options: ScanOptions = ScanOptions(),
    progress: Progress | None = None,
) -> LibraryScan:
    """Scan `scopes` (rel paths, files or directories; None = the whole root) of a library."""
    scopes = scopes or [b""]
    progress = progress or Progress()
    probed = probe(library)
    row = None if options.dry_run else queries.ensure_library(store, library, config.daemon.host)
    if row is None:
        row = queries.get_library(library.name)
    result = LibraryScan(library.name, probed.online, probed.reason)
    if not probed.online:
        if not options.dry_run:
            queries.set_library_online(store, row.id, False, probed.reason)
        return result

    # Walk, plan, hash, guard, apply: the part that must not run twice at once.
    target = ScanTarget(store, config, library, row, scopes, options, progress)
    if options.dry_run:
        return _ScanRun(target, result).execute()
    with store.scan_lock(library.name, on_wait=lambda: logs.get_logger().warning(
        "scan.waiting", library=library.name,
        why="another scan of this library is running (the daemon, or another assetd scan); "
        "waiting for it to finish",
    )):
        return _ScanRun(target, result).execute()


@dataclass(frozen=True)
class ScanTarget:
    """What one scan of a library works on and with."""

    store: Store
    config: Config
    library: LibraryConfig
    row: Library | None  # the library's row (None: `--dry-run` of a library never indexed)
    scopes: list[bytes]  # rel paths; [b""] is the whole root
    options: ScanOptions
    progress: Progress


def normalize_scopes(scopes: list[bytes]) -> list[bytes]:
    """Scopes without duplicates or scopes inside another one (each path is merged once)."""
    if b"" in scopes:
        return [b""]
    kept: list[bytes] = []
    # Keyed `scope/`, a scope sorts right before everything under it (`a.txt` < `a` < `a/b`).
    for scope in sorted(set(scopes), key=lambda scope: scope + b"/"):
        if not kept or not (scope == kept[-1] or scope.startswith(kept[-1] + b"/")):
            kept.append(scope)
    return kept


class _ScanRun:
    """One streaming scan: merge the sorted walk with the sorted rows, scope by scope, and
    hash and apply the decided work in parts as it comes; what may be half of a move waits
    for the end (plan.PlanStream). Lookups by inode and by content hash decide whether a new
    path can be a move's destination, so the rest is applied without waiting."""

    def __init__(self, target: ScanTarget, result: LibraryScan):
        store, config, library, row, options = (
            target.store, target.config, target.library, target.row, target.options)
        self.store, self.config, self.library, self.row = store, config, library, row
        self.scopes = normalize_scopes(target.scopes)
        self.options, self.progress, self.result = options, target.progress, result
        self.walked = WalkResult()
        self.stream = PlanStream(self.walked.unreadable)
        self.errors: list[tuple[bytes, str]] = []
        # Lookups only matter when the library had rows before this scan.
        self.lookups = row is not None and queries.has_files(store, row.id)
        self.sources: dict[int, DbRow] = {}  # rows the lookups found
        self.held_hashes: dict[bytes, Hashed] = {}
        self.scope_index = 0
        self.merge_done = False
        self.hashed = 0
        self.set_checksum = enricher_set_checksum(active_enrichers(config.enrichers))
        sniffing = options.sniff and options.hash_files and not options.dry_run
        self.sniffed = SniffedInsights(config) if sniffing else None
        # A walk of the whole root, in two child processes (walkproc.py; forked, or in the
        # daemon, which has threads, spawned): in a rescan the walk is half the work, in a
        # cold scan a fifth of this process's (the rest is the inserts, which the hash
        # workers wait for). A watcher's few paths are not worth a child.
        self.child_walk = self.scopes == [b""]
        self.hasher = Hasher(
            os.fsencode(library.path), library.follow_symlinks,
            sniff=self.sniffed.sniffer if self.sniffed else None,
            head_bytes=SniffedInsights.head_bytes,
            before_pool=SniffedInsights.before_pool if self.sniffed else None)

    @cached_property
    def log(self):
        """On first use: a one-shot scan logs nothing its level (warning) lets through, and
        structlog (with asyncio, ~25 ms) is imported for the first event written."""
        return logs.get_logger().bind(library=self.library.name)

    def execute(self) -> LibraryScan:
        if self.lookups or self.options.dry_run or not self.child_walk:
            return self._execute()
        # A whole scan of a library with no rows: if the index has no file at all, the file
        # table's secondary indexes are built at the end (store/deferred_indexes.py).
        with deferred_indexes.deferred(self.store):
            return self._execute()

    def _execute(self) -> LibraryScan:
        started_at = time.time()
        options, stream = self.options, self.stream
        root = os.fsencode(self.library.path)
        walk_options = WalkOptions(ExcludeMatcher(self.library.exclude),
                                   self.library.follow_symlinks, skip_paths(self.config))
        try:
            final, last, last_hashes = self._merge_and_apply(root, walk_options)
        except BaseException:  # an error, a stop request, Ctrl-C: nothing more is collected
            self.hasher.close(abandon=True)
            raise
        self.hasher.close()

        guarded = not (options.allow_mass_missing or options.observed_deletes)
        indexed = 0
        if guarded:
            indexed = stream.present_rows if self.scopes == [b""] else (
                queries.count_present(self.row.id) if self.row else 0)
        threshold = self.config.daemon.mass_missing_threshold
        missing = stream.missing_count(final)
        if guarded and mass_missing_exceeded(missing, indexed, threshold):
            return self._trip(missing, indexed, threshold, started_at)
        self._apply(last, last_hashes)
        final.missing = []  # marked by id, below
        for part in in_parts(final, PART_FILES):
            self._apply(part, last_hashes)
        if not options.dry_run:
            mark_missing(self.store, self.row, stream.missing_ids(final))
        self.errors += self.walked.errors
        self.result.stats.update(discovered=stream.discovered, missing=missing,
                                 hashed=self.hashed, errors=len(self.errors))
        self.result.stats["unchanged"] += stream.unchanged
        self.result.errors = [ScanError(rel, message) for rel, message in self.errors]
        self._finish(started_at)
        return self.result

    def _merge_and_apply(self, root: bytes, walk_options: WalkOptions):
        """The merge, each part hashed while the next is walked and applied after it; the
        last part and the held work come back unapplied, for the guard to decide."""
        stream = self.stream
        pending = None
        for index, scope in enumerate(self.scopes):
            self.scope_index = index
            db = PagesAhead(queries.key_pages(self.store, self.row.id, scope) if self.row
                            else (), max_pages=PAGES_AHEAD)
            if self.child_walk:
                runs = walk_runs_in_children(root, scope, self.walked, walk_options,
                                             keys=self.lookups, while_waiting=db.fetch_one)
            else:
                runs = keyed_runs(walk_runs(root, scope, self.walked, walk_options),
                                  keys=self.lookups)
            # Closed on the way out of an error or a stop too: the forked walkers are
            # stopped then, not left walking (walkproc.py).
            with closing(runs) as disk:
                for part in stream.consume(disk, db, max_files=PART_FILES,
                                           max_bytes=PART_BYTES):
                    submitted = self._submit(part)
                    if pending is not None:
                        self._apply(*self._collect(*pending))
                    pending = submitted
        self.merge_done = True
        last = self._submit(stream.take_part())
        if pending is not None:
            self._apply(*self._collect(*pending))
        last_part, last_hashes = self._collect(*last)
        if self.lookups:
            self._find_identity_sources(stream.held_identities())
        final = stream.final_plan(self.sources.values())
        self.sources = {}  # the final plan holds the sources it paired; the rest can go
        final_hashes = self._prepare_final(final)
        return final, last_part, last_hashes | final_hashes

    def _visited(self, rel_path: bytes) -> bool | None:
        """Has the merge passed this row's path? None: the path is outside the scan's scope."""
        for index, scope in enumerate(self.scopes):
            if not scope or rel_path == scope or rel_path.startswith(scope + b"/"):
                return self.merge_done or index < self.scope_index or (
                    index == self.scope_index and rel_path <= self.stream.position)
        return None

    def _candidates(self, rows: list[DbRow]) -> dict[int, DbRow]:
        """The rows among `rows` that may yet be a move's source.

        Outside the scope only a row already missing qualifies: a file moved out of the
        library and back under another name reaches the watcher as two batches, and the
        second must take the row the first marked missing (its id, tags, insights). A
        present row outside the scope is never touched by a partial scan.
        """
        found = {}
        for row in rows:
            visited = self._visited(row.rel_path)
            if visited is None:
                if not row.is_missing:
                    continue
                visited = True  # the merge never reaches it: missing, and staying so
            if self.stream.could_be_source(row, visited):
                found[row.id] = row
        return found

    def _submit(self, part: Plan) -> tuple[Plan, Pending]:
        """Hold back new paths that may be a move's destination; start hashing the rest."""
        self.progress.discovered(self.library.name, self.stream.discovered)
        if self.lookups and part.created:
            self._hold_identity_matches(part)
        todo = part.needs_hash() if self.options.hash_files else []
        return part, self.hasher.submit(todo)

    def _collect(self, part: Plan, pending: Pending) -> tuple[Plan, dict[bytes, Hashed]]:
        """The part's hashes; edits and new files whose bytes may be a moved file's wait."""
        hashes = self._hashes(part, pending)
        if self.lookups and hashes:
            self._hold_hash_matches(part, hashes)
        return part, hashes

    def _identity_sources(self, entries: list[DiskEntry]) -> dict[tuple, list[DbRow]]:
        """The rows that may yet be a move's source of one of `entries` (a lookup by inode),
        by their identity."""
        rows = queries.rows_by_identity(self.store, self.row.id, [e.inode for e in entries])
        by_identity: dict[tuple, list[DbRow]] = {}
        for row in self._candidates(rows).values():
            by_identity.setdefault(identity(row), []).append(row)
        return by_identity

    def _find_identity_sources(self, entries: list[DiskEntry]) -> None:
        """Add the rows that share an identity with one of `entries` and may yet be a move's
        source to `sources` (a vanished row is only held by id: `plan.VanishedIds`)."""
        if entries:
            by_identity = self._identity_sources(entries)
            for entry in entries:
                self.sources.update((row.id, row) for row in by_identity.get(identity(entry), ()))

    def _hold_identity_matches(self, part: Plan) -> None:
        by_identity = self._identity_sources(part.created)
        kept = []
        for entry in part.created:
            matches = by_identity.get(identity(entry))
            if matches:
                self.stream.hold_created(entry)
                self.sources.update((row.id, row) for row in matches)
            else:
                kept.append(entry)
        part.created = kept

    def _hold_hash_matches(self, part: Plan, hashes: dict[bytes, Hashed]) -> None:
        """A new file or an edit whose bytes are a row's that may have left its place: the
        end decides (a move, or which tags follow)."""
        wanted = [hashes[e.rel_path].content_hash
                  for e in part.created + [e for _, e in part.updated] if e.rel_path in hashes]
        if not wanted:
            return
        rows = self._candidates(queries.rows_by_hash(self.store, self.row.id, wanted))
        by_content: dict[tuple[int, str], list[DbRow]] = {}
        for row in rows.values():
            by_content.setdefault((row.size, row.content_hash), []).append(row)

        def source_for(entry: DiskEntry) -> bool:
            hashed = hashes.get(entry.rel_path)
            matches = hashed and by_content.get((hashed.size, hashed.content_hash))
            matches = [r for r in matches or () if r.rel_path != entry.rel_path]
            if not matches:
                return False
            self.sources.update((row.id, row) for row in matches)
            self.held_hashes[entry.rel_path] = hashes.pop(entry.rel_path)
            return True

        created, updated = [], []
        for entry in part.created:
            if source_for(entry):
                self.stream.hold_created(entry)
            else:
                created.append(entry)
        for db_row, entry in part.updated:
            if source_for(entry):
                self.stream.hold_updated(db_row, entry)
            else:
                updated.append((db_row, entry))
        part.created, part.updated = created, updated

    def _prepare_final(self, final: Plan) -> dict[bytes, Hashed]:
        """Hash what the held work still needs, then match moves by content."""
        hashes = {rel: h for rel, h in self.held_hashes.items()}
        if not self.options.hash_files:
            return hashes
        todo = [e for e in final.needs_hash() if e.rel_path not in hashes]
        hashes.update(self._hashes(final, self.hasher.submit(todo)))
        if self.lookups and final.created:
            wanted = [hashes[e.rel_path].content_hash for e in final.created
                      if e.rel_path in hashes]
            rows = queries.rows_by_hash(self.store, self.row.id, wanted) if wanted else []
            candidates = self._candidates(rows).values()
            vanished, moved = self.stream.vanished, {row.id for row, _ in final.moved}
            held = {row.id for row in final.missing}
            # Vanished rows are held by id: those with the new files' hashes come from here.
            final.missing += [r for r in candidates
                              if r.id in vanished and r.id not in moved and r.id not in held]
            add_sources(final, [r for r in candidates
                                if r.is_missing and r.id not in self.stream.restored_ids])
        match_moves_by_hash(final, {rel: h.content_hash for rel, h in hashes.items()})
        return hashes

    def _hashes(self, plan: Plan, pending: Pending) -> dict[bytes, Hashed]:
        """Collect `pending`; drop files that vanished from the plan (row untouched)."""
        entries = pending.entries
        if not entries:
            return {}
        progress = self.progress
        progress.hashing(self.library.name, len(entries), sum(e.size for e in entries))
        hashes: dict[bytes, Hashed] = {}
        vanished: set[bytes] = set()
        for entry, outcome, value, sniffed in self.hasher.results(pending,
                                                                  progress.hashed_bytes):
            if outcome == HASHED:
                hashes[entry.rel_path] = value
                if self.sniffed is not None:
                    self.sniffed.add(entry.rel_path, sniffed)
            elif outcome == TORN:
                self.log.debug("hash.deferred", path=path_text(entry.rel_path),
                               why="changed while read")
            elif outcome == VANISHED:
                vanished.add(entry.rel_path)
                self.errors.append((entry.rel_path,
                                    "FileNotFoundError: vanished during the scan"))
            else:
                self.errors.append((entry.rel_path, value))
        if vanished:
            _drop_vanished(plan, vanished)
        self.hashed += len(hashes)
        return hashes

    def _apply(self, part: Plan, hashes: dict[bytes, Hashed]) -> None:
        if not self.options.dry_run:
            created = apply_plan(self.store, self.row, part, hashes,
                                 known_hashes=_ReplacedContent(self),
                                 set_checksum=self.set_checksum)
            if self.sniffed is not None:
                self.sniffed.record(self.store, self.row.id, hashes)
                if created and self.options.settle_parts:
                    from daemon.reconcile import settle_created  # only with the enrichers

                    settle_created(self.store, self.config, self.row.id, *created,
                                   self.set_checksum)
        _add_part_stats(self.result.stats, part)

    def _trip(self, missing: int, indexed: int, threshold: float,
              started_at: float) -> LibraryScan:
        """The mass-missing guard tripped: nothing more is written, the library counts as
        offline for this run, and why is said."""
        result = self.result
        result.online = False
        result.reason = (
            f"mass-missing guard: {missing} of {indexed} indexed files would be "
            f"marked missing (threshold {threshold:g}); nothing was changed. If they really are "
            f"gone, run `assetd scan --allow-mass-missing {result.name}`"
        )
        logs.get_logger().warning(logs.LIBRARY_OFFLINE, library=result.name,
                                  reason=result.reason)
        if not self.options.dry_run:
            queries.record_scan(
                self.store, self.row.id, host=self.row.host, started_at=started_at,
                finished_at=time.time(), status="offline", online=False, reason=result.reason,
                scope="", stats=result.stats,
            )
        return result

    def _finish(self, started_at: float) -> None:
        finished_at, result = time.time(), self.result
        if not self.options.dry_run:
            queries.record_scan(
                self.store, self.row.id, host=self.row.host, started_at=started_at,
                finished_at=finished_at, status=result.status, online=True, reason=None,
                scope=", ".join(path_text(s) or "/" for s in self.scopes), stats=result.stats,
            )
        if logs.enabled("info"):  # else the configured level drops it
            self.log.info(
                logs.SCAN_FINISHED, dry_run=self.options.dry_run, status=result.status,
                duration_s=round(finished_at - started_at, 3), **result.stats,
            )


class _ReplacedContent:
    """`apply_plan`'s `known_hashes` for a part of this scan: the hashes of content that left
    its place so far (`PlanStream.replaced`), and those of the rows that vanished, which the
    stream holds by id: looked up for the few hashes asked about (an edit's new bytes)."""

    def __init__(self, run: _ScanRun):
        self.run = run

    def __contains__(self, content_hash: object) -> bool:
        stream = self.run.stream
        if content_hash in stream.replaced:
            return True
        if not isinstance(content_hash, str) or not len(stream.vanished):
            return False
        rows = queries.rows_by_hash(self.run.store, self.run.row.id, [content_hash])
        return any(row.id in stream.vanished for row in rows)


def _add_part_stats(stats: dict[str, int], part: Plan) -> None:
    for key, items in (("created", part.created), ("updated", part.updated),
                       ("unchanged", part.unchanged), ("moved", part.moved),
                       ("restored", part.restored)):
        stats[key] += len(items)


def _drop_vanished(plan: Plan, vanished: set[bytes]) -> None:
    def keep(entry: DiskEntry) -> bool:
        return entry.rel_path not in vanished

    plan.created = [e for e in plan.created if keep(e)]
    plan.updated = [(r, e) for r, e in plan.updated if keep(e)]
    plan.moved = [(r, e) for r, e in plan.moved if keep(e)]
    plan.restored = [(r, e) for r, e in plan.restored if keep(e)]
    plan.unchanged = [r for r in plan.unchanged if r.rel_path not in vanished]


@dataclass
class ScanReport:
    dry_run: bool
    duration_s: float
    finished_at: float
    libraries: list[LibraryScan]

    @property
    def status(self) -> str:
        statuses = {lib.status for lib in self.libraries}
        return next((s for s in ("offline", "partial") if s in statuses), "ok")

    @property
    def stats(self) -> dict[str, int]:
        return {key: sum(lib.stats[key] for lib in self.libraries) for key in STAT_KEYS}

    def as_json(self) -> dict:
        return {
            "status": self.status, "dry_run": self.dry_run, "duration_s": self.duration_s,
            "finished_at": iso_utc(self.finished_at), "stats": self.stats,
            "libraries": [lib.as_json() for lib in self.libraries],
        }


def scan(
    store: Store,
    config: Config,
    names: list[str],
    paths: list[str],
    *,
    options: ScanOptions = ScanOptions(),
    progress: Progress | None = None,
) -> ScanReport:
    """`assetd scan [LIB...] [--path DIR...]`: the libraries (or paths) in scope, in order."""
    started = time.monotonic()
    libraries = select_libraries(config, names)
    scopes: dict[str, list[bytes]] = {}
    for path in paths:
        library, rel_path = resolve_path(config, path)
        if names and library.name not in names:
            raise UsageError(f"{path}: is in library {library.name!r}, not in {', '.join(names)}")
        scopes.setdefault(library.name, []).append(rel_path)
    if paths:
        libraries = [lib for lib in libraries if lib.name in scopes]
    # A new index's first scan of several libraries builds the file table's secondary indexes
    # once, after them all (each library's own scan would build them after the first:
    # store/deferred_indexes.py).
    several = len(libraries) > 1 and not options.dry_run
    with deferred_indexes.deferred(store) if several else nullcontext():
        results = [
            scan_library(store, config, lib, scopes=scopes.get(lib.name), options=options,
                         progress=progress)
            for lib in libraries
        ]
    return ScanReport(options.dry_run, round(time.monotonic() - started, 3), time.time(), results)
