"""One scan of one library (or part of it): probe → walk → plan → hash → guard → apply.

This is the service the CLI's `scan` and the daemon's watcher, tick and rescans all call, so
that every path into the index makes the same decisions.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from daemon import logs
from daemon.config import Config, LibraryConfig
from daemon.errors import UsageError, describe_os_error
from daemon.libraries import resolve_path, select_libraries
from daemon.scan.apply import apply_plan, mark_missing, path_text, replaced_content
from daemon.scan.filters import ExcludeMatcher
from daemon.scan.hash import Hashed, TornReadError, hash_file
from daemon.scan.plan import (
    Plan,
    make_plan,
    mass_missing_exceeded,
    match_moves_by_hash,
    split_plan,
)
from daemon.scan.probe import probe
from daemon.scan.walk import DiskEntry, WalkResult, walk
from daemon.store import Store, queries, sqlite_path
from daemon.units import iso_utc

# A long scan is applied in parts of this many files or bytes to read, so a stop or a crash
# keeps the work already done; most scans fit in one part.
PART_FILES = 20_000
PART_BYTES = 8 << 30

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


class Progress:
    """What a scan reports while it runs; the CLI draws a bar, the daemon a STATUS= line."""

    def discovered(self, library: str, files: int) -> None:
        pass

    def hashing(self, library: str, files: int, total_bytes: int) -> None:
        pass

    def hashed_bytes(self, n: int) -> None:
        pass


@dataclass
class LibraryScan:
    name: str
    online: bool
    reason: str | None = None
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAT_KEYS, 0))
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.online:
            return "offline"
        return "partial" if self.stats["errors"] else "ok"

    def as_json(self) -> dict:
        return {"name": self.name, "online": self.online, "reason": self.reason,
                "stats": self.stats, "errors": self.errors}


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

    if options.dry_run:
        return _scan_online(store, config, library, row, scopes, options, progress, result)
    with store.scan_lock(library.name, on_wait=lambda: logs.get_logger().warning(
        "scan.waiting", library=library.name,
        why="another scan of this library is running (the daemon, or another assetd scan); "
        "waiting for it to finish",
    )):
        return _scan_online(store, config, library, row, scopes, options, progress, result)


def _scan_online(store, config, library, row, scopes, options, progress, result) -> LibraryScan:
    """Walk, plan, hash, guard, apply: the part that must not run twice at once."""
    log = logs.get_logger().bind(library=library.name)
    started_at = time.time()
    walked = _walk_scopes(config, library, scopes)
    progress.discovered(library.name, len(walked.entries))
    snapshot = queries.file_snapshot(store, row.id, scopes) if row else {}
    plan = make_plan(walked.entries, snapshot, unreadable=walked.unreadable)
    errors = [(rel, message) for rel, message in walked.errors]

    guarded = not (options.allow_mass_missing or options.observed_deletes)
    indexed = 0
    if guarded:
        indexed = sum(1 for r in snapshot.values() if not r.is_missing) if scopes == [b""] \
            else (queries.count_present(row.id) if row else 0)
    threshold = config.daemon.mass_missing_threshold

    def guard_trips(not_yet_matched: int) -> bool:
        # Even if every new file not looked at yet turned out to be a moved one, would too
        # many still be missing?
        return guarded and mass_missing_exceeded(
            len(plan.missing) - not_yet_matched, indexed, threshold)

    known_hashes = replaced_content(plan)
    parts = split_plan(plan, max_files=PART_FILES, max_bytes=PART_BYTES)
    unmatched = len(plan.created)
    hashed = 0
    for part in parts:
        if guard_trips(unmatched):
            return _tripped(store, result, row, plan, indexed, threshold, options, started_at)
        unmatched -= len(part.created)
        hashes: dict[bytes, Hashed] = {}
        if options.hash_files:
            hashes = _hash_entries(library, part, progress, errors, log)
            match_moves_by_hash(
                part, {rel: h.content_hash for rel, h in hashes.items()}, sources=plan)
        # With one part (every small scan) the guard is decided before anything is written.
        if len(parts) == 1 and guard_trips(0):
            return _tripped(store, result, row, plan, indexed, threshold, options, started_at)
        if not options.dry_run:
            apply_plan(store, row.id, part, hashes, known_hashes=known_hashes)
        hashed += len(hashes)
        _add_part_stats(result.stats, part)
    if guard_trips(0):
        return _tripped(store, result, row, plan, indexed, threshold, options, started_at)
    if not options.dry_run:
        mark_missing(store, [r.id for r in plan.missing])
    result.stats.update(discovered=len(walked.entries), missing=len(plan.missing),
                        hashed=hashed, errors=len(errors))
    result.errors = [{"path": path_text(rel), "error": message} for rel, message in errors]
    _finish(store, result, row, scopes, options, started_at, log)
    return result


def _add_part_stats(stats: dict[str, int], part: Plan) -> None:
    for key, items in (("created", part.created), ("updated", part.updated),
                       ("unchanged", part.unchanged), ("moved", part.moved),
                       ("restored", part.restored)):
        stats[key] += len(items)


def _walk_scopes(config: Config, library: LibraryConfig, scopes: list[bytes]) -> WalkResult:
    merged = WalkResult()
    matcher = ExcludeMatcher(library.exclude)
    for scope in scopes:
        part = walk(
            os.fsencode(library.path), scope, matcher=matcher,
            follow_symlinks=library.follow_symlinks, skip_abs=skip_paths(config),
        )
        merged.entries.update(part.entries)
        merged.unreadable += part.unreadable
        merged.errors += part.errors
        merged.skipped_special += part.skipped_special
    return merged


def _hash_entries(library, plan: Plan, progress: Progress, errors: list, log) -> dict:
    """Hash what the plan needs; drop files that vanished from the plan (row untouched)."""
    todo = plan.needs_hash()
    progress.hashing(library.name, len(todo), sum(e.size for e in todo))
    root = os.fsencode(library.path)
    hashes: dict[bytes, Hashed] = {}
    vanished: set[bytes] = set()
    for entry in todo:
        try:
            hashes[entry.rel_path] = hash_file(
                root + b"/" + entry.rel_path,
                follow_symlinks=library.follow_symlinks,
                on_bytes=progress.hashed_bytes,
            )
        except TornReadError:
            log.debug("hash.deferred", path=path_text(entry.rel_path), why="changed while read")
        except FileNotFoundError:
            vanished.add(entry.rel_path)
            errors.append((entry.rel_path, "FileNotFoundError: vanished during the scan"))
        except OSError as exc:
            errors.append((entry.rel_path, describe_os_error(exc)))
    if vanished:
        _drop_vanished(plan, vanished)
    return hashes


def _drop_vanished(plan: Plan, vanished: set[bytes]) -> None:
    def keep(entry: DiskEntry) -> bool:
        return entry.rel_path not in vanished

    plan.created = [e for e in plan.created if keep(e)]
    plan.updated = [(r, e) for r, e in plan.updated if keep(e)]
    plan.moved = [(r, e) for r, e in plan.moved if keep(e)]
    plan.restored = [(r, e) for r, e in plan.restored if keep(e)]
    plan.unchanged = [r for r in plan.unchanged if r.rel_path not in vanished]


def _tripped(store, result, row, plan, indexed, threshold, options, started_at) -> LibraryScan:
    result.online = False
    result.reason = (
        f"mass-missing guard: {len(plan.missing)} of {indexed} indexed files would be marked "
        f"missing (threshold {threshold:g}); nothing was changed. If they really are gone, run "
        f"`assetd scan --allow-mass-missing {result.name}`"
    )
    logs.get_logger().warning(logs.LIBRARY_OFFLINE, library=result.name, reason=result.reason)
    if not options.dry_run:
        queries.record_scan(
            store, row.id, host=row.host, started_at=started_at, finished_at=time.time(),
            status="offline", online=False, reason=result.reason, scope="", stats=result.stats,
        )
    return result


def _finish(store, result, row, scopes, options, started_at, log) -> None:
    finished_at = time.time()
    if not options.dry_run:
        queries.record_scan(
            store, row.id, host=row.host, started_at=started_at, finished_at=finished_at,
            status=result.status, online=True, reason=None,
            scope=", ".join(path_text(s) or "/" for s in scopes), stats=result.stats,
        )
    log.info(
        logs.SCAN_FINISHED, dry_run=options.dry_run, status=result.status,
        duration_s=round(finished_at - started_at, 3), **result.stats,
    )


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
    results = [
        scan_library(store, config, lib, scopes=scopes.get(lib.name), options=options,
                     progress=progress)
        for lib in libraries
    ]
    return ScanReport(options.dry_run, round(time.monotonic() - started, 3), time.time(), results)
